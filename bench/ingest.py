"""Ingest throughput: the whole pipeline against the embedder alone, on the same chunks.

    python bench/ingest.py --corpus samples/support
    python bench/ingest.py --corpus /usr/share/doc/postgresql-doc-15/html \
        --queries bench/queries/postgres.jsonl

Prints wall time, words, chunks/s for the pipeline and for the bare embedder on exactly the
chunks the pipeline produced (same batch size, same threads, same run), and their ratio.
With --compare-backends it also times torch vs ONNX fp32 vs ONNX int8 on a sample of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, print_table, save

from grounded.eval.retrieval import evaluate, load_queries
from grounded.ingest.embedders.factory import build_embedder
from grounded.models import SearchFilter
from grounded.runtime import Runtime
from grounded.settings import load_settings


def chunk_texts(data_dir: Path) -> tuple[list[str], int]:
    conn = sqlite3.connect(data_dir / "grounded.db")
    rows = conn.execute(
        "SELECT section, text, token_count FROM chunks ORDER BY chunk_key"
    ).fetchall()
    conn.close()
    import json

    texts = [(" > ".join(json.loads(s)) + "\n" + t) if json.loads(s) else t for s, t, _ in rows]
    return texts, sum(r[2] for r in rows)


async def ingest(
    corpus: Path, data_dir: Path, quantize: str, queries: Path | None
) -> dict[str, object]:
    settings = load_settings(
        data_dir=data_dir, embed={"quantize": quantize, "cache_dir": Path(".grounded/models")}
    )
    runtime = Runtime(settings)
    runtime.embedder.embed(["warm up"])  # export/load the model outside the timed region
    started = time.perf_counter()
    report = await runtime.ingestor.run([corpus], "default")
    wall = time.perf_counter() - started
    result: dict[str, object] = {"wall_s": wall, "report": report}
    if queries:
        retriever = await runtime.ready_for_search()
        result["eval"] = await evaluate(
            retriever, load_queries(queries), SearchFilter(collection="default")
        )
    await runtime.close()
    return result


def words_in(corpus: Path) -> int:
    from grounded.errors import LoadError
    from grounded.ingest.discover import discover
    from grounded.ingest.loaders import load_file

    total = 0
    for file in discover([corpus])[0]:
        with contextlib.suppress(LoadError):
            loaded = load_file(file.path, file.source, 10**9)
            total += sum(len(d.text.split()) for d in loaded.documents)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path("samples/support"))
    parser.add_argument(
        "--quantize", choices=["fp32", "int8"], default=None, help="default: the configured default"
    )
    parser.add_argument(
        "--queries", type=Path, default=None, help="labelled queries to evaluate after ingest"
    )
    parser.add_argument(
        "--compare-backends",
        type=int,
        default=0,
        metavar="N",
        help="also time torch / onnx fp32 / onnx int8 on N of the chunks",
    )
    args = parser.parse_args()
    quantize = args.quantize or load_settings().embed.quantize

    words = words_in(args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        outcome = asyncio.run(ingest(args.corpus, data_dir, quantize, args.queries))
        texts, pieces = chunk_texts(data_dir)
    report = outcome["report"]
    wall = float(outcome["wall_s"])  # type: ignore[arg-type]

    embedder = build_embedder(
        load_settings(embed={"quantize": quantize}).embed, Path(".grounded/models")
    )
    embedder.embed(["warm up"])
    started = time.perf_counter()
    embedder.embed(texts)
    embed_only = time.perf_counter() - started

    rows = [
        [
            "pipeline (load, dedup, chunk, embed, write)",
            len(texts),
            wall,
            len(texts) / wall,
            pieces / wall,
        ],
        [
            f"embedder only ({embedder.name})",
            len(texts),
            embed_only,
            len(texts) / embed_only,
            pieces / embed_only,
        ],
    ]
    ratio = embed_only / wall
    print_table(
        f"Ingest of {args.corpus} — {words:,} words, {len(texts):,} chunks, "
        f"failed {len(report.failed)}, duplicates {len(report.duplicates)}",  # type: ignore[attr-defined]
        ["run", "chunks", "seconds", "chunks/s", "word pieces/s"],
        rows,
    )
    console.print(f"pipeline / embedder-only throughput: [bold]{ratio:.3f}[/bold] (target ≥ 0.85)")
    console.print(
        f"words/s end to end: {words / wall:,.0f}; "
        f"2M words would take {2_000_000 / (words / wall) / 60:.1f} min"
    )

    payload: dict[str, object] = {
        "corpus": str(args.corpus),
        "words": words,
        "chunks": len(texts),
        "word_pieces": pieces,
        "pipeline_s": wall,
        "embed_only_s": embed_only,
        "ratio": ratio,
        "embedder": embedder.name,
        "failed": len(report.failed),
        "duplicates": len(report.duplicates),  # type: ignore[attr-defined]
    }
    if "eval" in outcome:
        scores = outcome["eval"]
        print_table(
            "Retrieval quality (section level)",
            ["mode", "recall@1", "recall@5", "recall@10", "MRR@10", "nDCG@10"],
            [
                [s.mode, s.recall_at_1, s.recall_at_5, s.recall_at_10, s.mrr_at_10, s.ndcg_at_10]
                for s in scores
            ],
        )  # type: ignore[attr-defined]
        payload["eval"] = [s.__repr__() for s in scores]  # type: ignore[attr-defined]
    if args.compare_backends:
        payload["backends"] = compare_backends(texts[: args.compare_backends])
    console.print(f"saved {save('ingest', payload)}")


def compare_backends(texts: list[str]) -> list[dict[str, object]]:
    from grounded.settings import EmbedSettings

    rows, results = [], []
    baseline = None
    for label, settings in (
        ("torch", EmbedSettings(backend="torch")),
        ("onnx fp32", EmbedSettings(backend="onnx", quantize="fp32")),
        ("onnx int8", EmbedSettings(backend="onnx", quantize="int8")),
    ):
        embedder = build_embedder(settings, Path(".grounded/models"))
        embedder.embed(["warm up"])
        started = time.perf_counter()
        embedder.embed(texts)
        seconds = time.perf_counter() - started
        baseline = baseline or seconds
        rows.append([label, len(texts), seconds, len(texts) / seconds, baseline / seconds])
        results.append(
            {"backend": label, "seconds": seconds, "speedup_vs_torch": baseline / seconds}
        )
    print_table(
        "Embedding backends on the same chunks",
        ["backend", "chunks", "seconds", "chunks/s", "× torch"],
        rows,
    )
    return results


if __name__ == "__main__":
    main()
