"""The embedded store against the contract, plus what only it has: the vector snapshot."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from grounded.models import SearchFilter
from grounded.store.protocol import Store
from grounded.store.sqlite import SqliteStore
from grounded.store.sqlite.keywords import KeywordStats
from grounded.types import DocId
from tests.store.contract import DIM, OpenStore, StoreContract, chunks_for, document, seeded, unit


@pytest.fixture
def open_store(tmp_path: Path) -> OpenStore:
    async def open_() -> Store:
        return SqliteStore(tmp_path / "data", exact_below=2)

    return open_


class TestSqliteStore(StoreContract):
    pass


@pytest.mark.anyio
async def test_vector_index_is_rebuilt_when_its_snapshot_is_lost(
    tmp_path: Path, open_store: OpenStore
) -> None:
    store = await seeded(open_store)
    await store.close()
    snapshots = list((tmp_path / "data" / "vectors").glob("vectors.*.usearch"))
    assert len(snapshots) == 1
    snapshots[0].write_bytes(b"torn write")
    reopened = await open_store()
    await reopened.bind_embedder("test-embedder", DIM)
    assert (await reopened.dense_search(unit(3), 1, SearchFilter()))[0].chunk_id == "phones-c0"
    await reopened.close()


@pytest.mark.anyio
async def test_snapshot_plus_log_replay_matches_the_database(open_store: OpenStore) -> None:
    store = await seeded(open_store)
    await store.close()  # snapshot written here
    writer = await open_store()
    await writer.bind_embedder("test-embedder", DIM)
    await writer.write_document(
        document("new", "new.md", 1), chunks_for("new", ["New."], [50]), None
    )
    await writer.delete_document(document("phones", "returns/phones.md", 1).doc_id)
    # No close: the snapshot on disk is now behind the log, as after a crash.
    reader = await open_store()
    await reader.bind_embedder("test-embedder", DIM)
    found = {s.chunk_id for s in await reader.dense_search(unit(50), 10, SearchFilter())}
    assert "new-c0" in found and "phones-c0" not in found
    await reader.close()


@pytest.mark.anyio
async def test_another_collection_created_mid_search_does_not_leak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The single-collection fast path decides in one read that no other collection exists;
    # tenant b's first upload can commit before the search itself reads.
    store = SqliteStore(tmp_path / "data", exact_below=2)
    await store.bind_embedder("test-embedder", DIM)
    await store.write_document(
        document("a", "a.md", 1, collection="tenant-a:docs"),
        chunks_for("a", ["Refunds are paid within thirty days."], [1]),
        None,
    )
    check = store._covers_everything

    async def then_tenant_b_uploads(where: SearchFilter) -> bool:
        covers = await check(where)
        await store.write_document(
            document("b", "b.md", 2, collection="tenant-b:docs"),
            chunks_for("b", ["Refunds: tenant b's policy.", "Refunds again."], [2, 3]),
            None,
        )
        return covers

    monkeypatch.setattr(store, "_covers_everything", then_tenant_b_uploads)
    mine = SearchFilter(collection="tenant-a:docs")
    for k in (1, 2, 5):
        assert [s.chunk_id for s in await store.dense_search(unit(2), k, mine)] == ["a-c0"]
        keyword = await store.keyword_search("refunds policy", k, mine)
        assert [s.chunk_id for s in keyword] == ["a-c0"]
    await store.close()


def test_native_libraries_load_in_any_order() -> None:
    # usearch before onnxruntime used to crash the interpreter on import.
    import subprocess
    import sys

    for first, second in (
        ("grounded.store.sqlite", "onnxruntime"),
        ("grounded.cli", "grounded.ingest.embedders.onnx"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", f"import {first}; import {second}; import onnxruntime"],
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == 0, (first, second, result.stderr[-500:])


@pytest.mark.anyio
async def test_remembered_term_scores_rank_exactly_as_fts5(tmp_path: Path) -> None:
    # Keyword queries add up each term's remembered BM25 contributions instead of asking
    # FTS5 to rank; the result must be FTS5's own ranking, and follow every write.
    store = SqliteStore(tmp_path / "data", exact_below=2)
    await store.bind_embedder("test-embedder", DIM)
    words = ["refund", "laptop", "warranty", "battery", "parcel", "courier", "return", "screen"]
    words += [f"word{i}" for i in range(60)]  # every term well under a third of the chunks
    rng = np.random.default_rng(3)
    for d in range(30):
        texts = [" ".join(rng.choice(words, size=int(rng.integers(3, 15)))) for _ in range(20)]
        await store.write_document(
            document(f"d{d}", f"d{d}.md", 20, collection=("even", "odd")[d % 2], tier=d % 3),
            chunks_for(f"d{d}", texts, list(range(20))),
            None,
        )
    conn = sqlite3.connect(tmp_path / "data" / "grounded.db")

    def fts5_ranking(terms: list[str], k: int, collection: str = "%") -> list[tuple[str, float]]:
        rows = conn.execute(
            "SELECT c.chunk_id, -bm25(chunks_fts) AS s FROM chunks_fts f "
            "JOIN chunks c ON c.chunk_key = f.rowid JOIN documents d ON d.doc_key = c.doc_key "
            "WHERE chunks_fts MATCH ? AND d.collection LIKE ? ORDER BY s DESC, f.rowid LIMIT ?",
            (" OR ".join(f'"{t}"' for t in terms), collection, k),
        ).fetchall()
        return [(chunk_id, round(score, 9)) for chunk_id, score in rows]

    async def ours(text: str, k: int, where: SearchFilter | None = None) -> list[tuple[str, float]]:
        found = await store.keyword_search(text, k, where or SearchFilter())
        return [(s.chunk_id, round(s.score, 9)) for s in found]

    for text in ["refund laptop", "battery courier screen", "warranty", "return parcel laptop"]:
        terms = text.split()
        assert await ours(text, 25) == fts5_ranking(terms, 25)
        assert await ours(text, 25) == fts5_ranking(terms, 25)  # now from memory
        odd = SearchFilter(collection="odd")
        assert await ours(text, 25, odd) == fts5_ranking(terms, 25, "odd")
        tier = await ours(text, 25, SearchFilter(collection="odd", metadata={"tier": 1}))
        assert tier and all(int(c.split("-")[0][1:]) % 6 == 1 for c, _ in tier)

    await store.write_document(
        document("new", "new.md", 1),
        chunks_for("new", ["tablet tablet tablet warranty"], [99]),
        None,
    )
    assert (await store.keyword_search("warranty tablet", 1, SearchFilter()))[0].chunk_id == (
        "new-c0"
    )
    assert await ours("refund laptop", 25) == fts5_ranking(["refund", "laptop"], 25)
    odd = SearchFilter(collection="odd")
    assert "new-c0" not in [c for c, _ in await ours("tablet warranty", 25, odd)]
    await store.write_document(
        document("new-odd", "new-odd.md", 1, collection="odd"),
        chunks_for("new-odd", ["tablet warranty tablet"], [98]),
        None,
    )
    # The filter's chunk keys were remembered before this write; they must not be reused.
    assert (await ours("tablet warranty", 25, odd))[0][0] == "new-odd-c0"
    assert await ours("refund laptop", 25, odd) == fts5_ranking(["refund", "laptop"], 25, "odd")
    await store.delete_document(DocId("new"))
    assert await store.keyword_search("tablet", 5, SearchFilter(collection="default")) == []
    conn.close()
    await store.close()


@pytest.mark.anyio
async def test_ranking_holds_when_remembered_postings_are_evicted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Postings are bounded in memory; past the bound the least recently used are dropped
    # and read again when needed, which must not change any result.
    monkeypatch.setattr("grounded.store.sqlite.keywords.REMEMBERED_POSTINGS", 30)
    store = SqliteStore(tmp_path / "data", exact_below=2)
    await store.bind_embedder("test-embedder", DIM)
    texts = [f"refund w{i % 7} w{i % 11} parcel{i % 3}" for i in range(60)]
    await store.write_document(
        document("d", "d.md", 60), chunks_for("d", texts, [*range(60)]), None
    )
    queries = ["refund w1", "w2 w3", "parcel0 w4", "w5 w6 w1", "refund w1"]
    first = [await store.keyword_search(q, 10, SearchFilter()) for q in queries]
    again = [await store.keyword_search(q, 10, SearchFilter()) for q in reversed(queries)]
    assert first == list(reversed(again))
    assert [s.chunk_id for s in first[1]][:2] and all(
        "w2" in t or "w3" in t for t in (texts[int(s.chunk_id.split("-c")[1])] for s in first[1])
    )
    await store.close()


@pytest.mark.anyio
async def test_a_count_that_reached_a_smaller_cap_is_taken_again(tmp_path: Path) -> None:
    # Counts stop at the cap (a share of all chunks). The total can grow within one version
    # of the index (another process wrote; this one has not caught up), and then a count
    # that only says "more than the old cap" must be taken again against the new one.
    db = tmp_path / "grounded.db"
    await SqliteStore(tmp_path).close()  # creates the schema
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)",
        [
            (i, f"{'courier' if i < 600 else 'depot'} {'van' if i % 20 == 0 else ''}")
            for i in range(1000)
        ],
    )
    conn.commit()
    stats = KeywordStats()
    # total 500: the cap is 200, so both counts stop at 201 and only "van" (50) is kept.
    assert stats.selective(conn, "courier depot van", total=500) == ["van"]
    # total 1000: the cap is 350, and 201 no longer proves "over the cap": count again.
    assert stats.selective(conn, "courier depot van", total=1000) == ["van"]
    conn.close()
