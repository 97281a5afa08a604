"""`grounded eval retrieval`: dense, BM25 and hybrid side by side on labelled questions."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from grounded.errors import InputError
from grounded.eval.metrics import Relevant, dedupe_sections, judge, mrr_at, ndcg_at, recall_at
from grounded.models import SearchFilter
from grounded.retrieve.hybrid import Mode, Retriever

MODES: tuple[Mode, ...] = ("dense", "keyword", "hybrid")


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    query: str
    relevant: tuple[Relevant, ...]


@dataclass(frozen=True, slots=True)
class ModeScores:
    mode: str
    queries: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    ndcg_at_10: float
    p50_ms: float


def load_queries(path: Path) -> list[LabelledQuery]:
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            relevant = tuple(
                Relevant(str(r["source"]), r.get("section")) for r in record["relevant"]
            )
            queries.append(LabelledQuery(str(record["query"]), relevant))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{number}: expected {{query, relevant: [{{source, section}}]}}"
            ) from exc
    if not queries:
        raise InputError(f"{path} holds no queries")
    return queries


async def evaluate(
    retriever: Retriever, queries: list[LabelledQuery], where: SearchFilter
) -> list[ModeScores]:
    results = []
    for mode in MODES:
        rows: list[tuple[float, float, float, float, float]] = []
        latencies = []
        for q in queries:
            started = time.perf_counter()
            retrieval = await retriever.search(q.query, k=10, where=where, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = dedupe_sections([(h.source, h.chunk.section_path) for h in retrieval.hits])
            judged = judge(ranked, q.relevant)
            n = len(q.relevant)
            rows.append(
                (
                    recall_at(judged, n, 1),
                    recall_at(judged, n, 5),
                    recall_at(judged, n, 10),
                    mrr_at(judged, 10),
                    ndcg_at(judged, n, 10),
                )
            )
        r1, r5, r10, mrr, ndcg = (statistics.fmean(column) for column in zip(*rows, strict=True))
        results.append(
            ModeScores(mode, len(queries), r1, r5, r10, mrr, ndcg, statistics.median(latencies))
        )
    return results
