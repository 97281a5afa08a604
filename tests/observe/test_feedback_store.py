"""The feedback contract on both backends: ratings kept per tenant, newest first, never
shown to another tenant; on PostgreSQL every replica writes to the same table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grounded.observe.feedback import FeedbackStore, build_feedback_store
from grounded.observe.feedback_postgres import PostgresFeedbackStore
from grounded.observe.feedback_sqlite import SqliteFeedbackStore
from grounded.settings import load_settings
from tests.support.postgres import fresh_schema

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[FeedbackStore, FeedbackStore]]:
    """Two handles on one backend, as two replicas would hold."""
    if request.param == "sqlite":
        pair: tuple[FeedbackStore, FeedbackStore] = (
            SqliteFeedbackStore(tmp_path / "feedback.db"),
            SqliteFeedbackStore(tmp_path / "feedback.db"),
        )
    else:
        url: str = request.getfixturevalue("postgres_url")
        schema = await asyncio.to_thread(fresh_schema, url)
        pair = (PostgresFeedbackStore(url, schema), PostgresFeedbackStore(url, schema))
    yield pair
    for store in pair:
        await store.close()


async def test_feedback_is_kept_per_tenant_newest_first(
    stores: tuple[FeedbackStore, FeedbackStore],
) -> None:
    first, second = stores
    a = await first.add("acme", "chatcmpl-1", "up", None)
    b = await second.add("acme", "chatcmpl-2", "down", "wrong warranty period")
    await first.add("globex", "chatcmpl-3", "down", "globex only")
    rows = await second.for_tenant("acme")
    assert [r["id"] for r in rows] == [b, a]
    assert rows[0] == {
        "id": b,
        "answer_id": "chatcmpl-2",
        "rating": "down",
        "comment": "wrong warranty period",
        "created_at": rows[0]["created_at"],
    }
    assert "globex only" not in repr(rows)
    assert [r["answer_id"] for r in await first.for_tenant("globex")] == ["chatcmpl-3"]
    assert await first.for_tenant("initech") == []
    assert len(await first.for_tenant("acme", limit=1)) == 1


def test_the_factory_follows_the_store(tmp_path: Path) -> None:
    assert isinstance(build_feedback_store(load_settings(data_dir=tmp_path)), SqliteFeedbackStore)
    shared = build_feedback_store(load_settings(store_url="postgresql://u:p@127.0.0.1:9/db"))
    assert isinstance(shared, PostgresFeedbackStore)
