"""The PostgreSQL store against the same contract, plus what only it has: migrations,
server errors, concurrent writers."""

from __future__ import annotations

import asyncio

import pytest

from grounded.errors import StoreError
from grounded.models import SearchFilter
from grounded.settings import PostgresSettings
from grounded.store.postgres import PostgresStore
from grounded.store.postgres.connect import connect_once
from grounded.store.postgres.migrate import LATEST, current_version, migrate
from grounded.store.protocol import Store
from tests.store.contract import DIM, OpenStore, StoreContract, chunks_for, document, seeded, unit
from tests.support.postgres import fresh_schema


@pytest.fixture
def schema(postgres_url: str) -> PostgresSettings:
    return fresh_schema(postgres_url)


@pytest.fixture
def open_store(postgres_url: str, schema: PostgresSettings) -> OpenStore:
    async def open_() -> Store:
        return PostgresStore(postgres_url, schema)

    return open_


class TestPostgresStore(StoreContract):
    pass


@pytest.mark.anyio
async def test_migrate_is_safe_to_rerun_and_concurrent(postgres_url: str) -> None:
    settings = PostgresSettings(schema_name="t_migrate_twice")

    async def run() -> int:
        conn = await connect_once(postgres_url, settings)
        try:
            return len(await migrate(conn, settings.schema_name))
        finally:
            await conn.close()

    applied = await asyncio.gather(run(), run(), run())
    assert sorted(applied) == [0, 0, LATEST]
    conn = await connect_once(postgres_url, settings)
    assert await current_version(conn, settings.schema_name) == LATEST
    await conn.close()


@pytest.mark.anyio
async def test_unmigrated_schema_says_to_migrate(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, PostgresSettings(schema_name="t_never_migrated"))
    with pytest.raises(StoreError, match="grounded db migrate"):
        await store.stats()
    await store.close()


@pytest.mark.anyio
async def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    store = PostgresStore(
        "postgresql://grounded:s3cret@127.0.0.1:9/grounded",
        PostgresSettings(connect_timeout=2),
    )
    with pytest.raises(StoreError, match="cannot reach PostgreSQL") as caught:
        await store.stats()
    assert "s3cret" not in str(caught.value)
    await store.close()


@pytest.mark.anyio
async def test_concurrent_writers_of_one_document_leave_one_version(
    open_store: OpenStore,
) -> None:
    stores = [await seeded(open_store)] + [await open_store() for _ in range(3)]
    for store in stores[1:]:
        await store.bind_embedder("test-embedder", DIM)

    async def write(store: Store, n: int) -> None:
        texts = [f"Version {n} paragraph {i}." for i in range(n + 1)]
        await store.write_document(
            document("race", "race.md", n + 1), chunks_for("race", texts, list(range(n + 1))), None
        )

    for _ in range(3):
        await asyncio.gather(*(write(store, n) for n, store in enumerate(stores)))
        doc = await stores[0].find_document("default", "race.md")
        assert doc is not None
        hits = await stores[0].keyword_search("version paragraph", 50, SearchFilter())
        assert len(hits) == doc.chunk_count, "chunks of exactly one version"
        assert await stores[0].check() == []
    for store in stores:
        await store.close()


@pytest.mark.anyio
async def test_filtered_dense_search_finds_k_rows_past_the_filter(open_store: OpenStore) -> None:
    store = await open_store()
    await store.bind_embedder("test-embedder", DIM)
    for n in range(60):
        collection = "rare" if n % 20 == 0 else "common"
        await store.write_document(
            document(f"d{n}", f"d{n}.md", 1, collection=collection),
            chunks_for(f"d{n}", [f"Doc {n}."], [n]),
            None,
        )
    found = await store.dense_search(unit(5), 3, SearchFilter(collection="rare"))
    assert {s.chunk_id for s in found} == {"d0-c0", "d20-c0", "d40-c0"}
    assert (await store.dense_search(unit(5), 1, SearchFilter()))[0].chunk_id == "d5-c0"
    await store.close()
