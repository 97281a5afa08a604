"""Search latency and recall at scale, through the Store API (SQLite + usearch).

    python bench/retrieval.py --sizes 10000,100000,1000000 --hybrid-at 100000

Vectors are synthetic but clustered (1,000 centres plus noise, unit length), as real
embeddings are; uniform random vectors in 384 dims are unrealistically hard for any ANN.
Chunk texts are drawn from a Zipf distribution over the PostgreSQL manual's vocabulary (or
a built-in word list), so BM25 sees realistic term statistics. Dense recall@10 is measured
against exact brute force over the same vectors; query embedding time is excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, p50, percentile, print_table, save

from grounded.models import Chunk, Document, EmbeddedChunk, SearchFilter
from grounded.retrieve.fusion import collapse_overlapping, reciprocal_rank_fusion
from grounded.store.sqlite import SqliteStore
from grounded.types import ChunkId, DocId

DIM = 384
PER_DOC = 200


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), n)
    vectors = centres[picks] + rng.standard_normal((n, DIM)).astype(np.float32) * 0.06
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def vocabulary() -> list[str]:
    manual = Path("/usr/share/doc/postgresql-doc-15/html")
    words: dict[str, int] = {}
    if manual.is_dir():
        import re

        for path in sorted(manual.glob("*.html"))[:300]:
            for word in re.findall(r"[a-z]{3,}", path.read_text(errors="ignore").lower()):
                words[word] = words.get(word, 0) + 1
    if len(words) < 1000:
        return [f"term{i}" for i in range(20000)]
    return [w for w, _ in sorted(words.items(), key=lambda kv: -kv[1])]


def texts(n: int, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, size=(n, 120)) - 1, len(vocab) - 1)
    return [" ".join(vocab[r] for r in row) for row in ranks]


async def build(
    store: SqliteStore, n: int, rng: np.random.Generator, centres: np.ndarray, vocab: list[str]
) -> tuple[np.ndarray, float]:
    await store.bind_embedder("synthetic", DIM)
    all_vectors = []
    started = time.perf_counter()
    for doc_no in range(0, n // PER_DOC):
        vectors = clustered(PER_DOC, rng, centres)
        all_vectors.append(vectors)
        doc_id = DocId(f"doc{doc_no}")
        body = texts(PER_DOC, rng, vocab)
        chunks = [
            EmbeddedChunk(
                Chunk(
                    ChunkId(f"{doc_no}-{i}"),
                    doc_id,
                    i,
                    body[i],
                    (f"Section {i // 10}",),
                    i * 800,
                    i * 800 + 700,
                    200,
                    f"{doc_no}-{i}",
                ),
                vectors[i],
            )
            for i in range(PER_DOC)
        ]
        document = Document(
            doc_id,
            "default",
            f"doc{doc_no}.md",
            f"/x/doc{doc_no}.md",
            "t",
            "markdown",
            str(doc_no),
            0.0,
            PER_DOC,
            {"shard": doc_no % 10},
        )
        await store.write_document(document, chunks, None)
    return np.concatenate(all_vectors), time.perf_counter() - started


async def measure(n: int, queries: int, hybrid: bool, expansion: int) -> dict[str, float]:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    vocab = vocabulary()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp), expansion_search=expansion)
        matrix, build_s = await build(store, n, rng, centres, vocab)
        query_vectors = clustered(queries, rng, centres)
        query_texts = [" ".join(t.split()[:6]) for t in texts(queries, rng, vocab)]
        latencies, recalls = [], []
        for q in query_vectors:
            started = time.perf_counter()
            found = await store.dense_search(q, 10, SearchFilter())
            latencies.append((time.perf_counter() - started) * 1000)
            exact = np.argsort(-(matrix @ q))[:10]
            truth = {f"{i // PER_DOC}-{i % PER_DOC}" for i in exact}
            recalls.append(len(truth & {s.chunk_id for s in found}) / 10)
        result = {
            "chunks": n,
            "build_s": build_s,
            "dense_p50_ms": p50(latencies),
            "dense_p99_ms": percentile(latencies, 99),
            "recall_at_10": float(np.mean(recalls)),
        }
        filtered = []
        for q in query_vectors[:100]:
            started = time.perf_counter()
            await store.dense_search(q, 10, SearchFilter(metadata={"shard": 3}))
            filtered.append((time.perf_counter() - started) * 1000)
        result["dense_filtered_10pct_p50_ms"] = p50(filtered)
        if hybrid:
            hybrid_ms = []
            for q, text in zip(query_vectors, query_texts, strict=True):
                started = time.perf_counter()
                dense, keyword = await asyncio.gather(
                    store.dense_search(q, 40, SearchFilter()),
                    store.keyword_search(text, 40, SearchFilter()),
                )
                fused = reciprocal_rank_fusion(
                    [[s.chunk_id for s in dense], [s.chunk_id for s in keyword]], [1.0, 1.0]
                )
                hits = await store.hits([c for c, _ in fused])
                collapse_overlapping([hits[c] for c, _ in fused if c in hits])
                hybrid_ms.append((time.perf_counter() - started) * 1000)
            result["hybrid_p50_ms"] = p50(hybrid_ms)
            result["hybrid_p99_ms"] = percentile(hybrid_ms, 99)
        await store.close()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--hybrid-at", type=int, default=100000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--expansion", type=int, default=128, help="usearch expansion_search")
    args = parser.parse_args()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        console.print(f"building {n:,} chunks …")
        results.append(asyncio.run(measure(n, args.queries, n == args.hybrid_at, args.expansion)))
    rows = [
        [
            r["chunks"],
            r["build_s"],
            r["dense_p50_ms"],
            r["dense_p99_ms"],
            r["recall_at_10"],
            r["dense_filtered_10pct_p50_ms"],
            r.get("hybrid_p50_ms", "-"),
            r.get("hybrid_p99_ms", "-"),
        ]
        for r in results
    ]
    print_table(
        f"Store search (expansion_search={args.expansion}; ms, query embedding excluded)",
        [
            "chunks",
            "build s",
            "dense p50",
            "dense p99",
            "recall@10",
            "filtered p50",
            "hybrid p50",
            "hybrid p99",
        ],
        rows,
    )
    console.print(f"saved {save('retrieval', {'expansion': args.expansion, 'results': results})}")


if __name__ == "__main__":
    main()
