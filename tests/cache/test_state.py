"""Both cache state backends against one contract: entries with TTL, logs read from a
position, prefix flush."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from grounded.cache.state import CacheState, MemoryState, RedisState

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[CacheState]:
    backend: CacheState
    if request.param == "memory":
        backend = MemoryState(max_entries=3)
    else:
        backend = RedisState(request.getfixturevalue("redis_url"))
    yield backend
    await backend.close()


def unique() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


async def test_entries_round_trip_and_expire(state: CacheState) -> None:
    p = unique()
    await state.put(p + "a", b"answer", 60)
    await state.put(p + "short", b"gone soon", 0.05)
    assert await state.get(p + "a") == b"answer"
    await asyncio.sleep(0.1)
    assert await state.get(p + "short") is None
    await state.delete([p + "a"])
    assert await state.get(p + "a") is None


async def test_log_reads_only_what_came_after(state: CacheState) -> None:
    log = unique() + "questions"
    await state.append(log, b"one")
    await state.append(log, b"two")
    first = await state.read(log, "")
    assert [item for _, item in first] == [b"one", b"two"]
    await state.append(log, b"three")
    assert [item for _, item in await state.read(log, first[-1][0])] == [b"three"]


async def test_flush_removes_one_prefix_only(state: CacheState) -> None:
    mine, theirs = unique(), unique()
    await state.put(mine + "x", b"1", 60)
    await state.append(mine + "log", b"v")
    await state.put(theirs + "x", b"2", 60)
    assert await state.flush(mine) == 2
    assert await state.get(mine + "x") is None and await state.read(mine + "log", "") == []
    assert await state.get(theirs + "x") == b"2"


async def test_flush_prefix_is_literal_not_a_pattern(state: CacheState) -> None:
    base = unique()
    await state.put(base + "a*b", b"1", 60)
    await state.put(base + "aXb", b"2", 60)
    await state.flush(base + "a*")
    assert await state.get(base + "aXb") == b"2"


async def test_memory_state_is_bounded_least_recently_used_first() -> None:
    state = MemoryState(max_entries=2)
    await state.put("a", b"1", 60)
    await state.put("b", b"2", 60)
    await state.get("a")
    await state.put("c", b"3", 60)
    assert await state.get("b") is None and await state.get("a") == b"1"


async def test_memory_state_logs_are_bounded_together_oldest_first() -> None:
    state = MemoryState(max_entries=3)
    for i in range(4):
        await state.append(f"scope-{i % 2}:questions", f"item-{i}".encode())
    await state.append("scope-2:questions", b"item-4")
    # Five items, room for three: item-0 and item-1 went, emptying nothing but their slots.
    assert [v for _, v in await state.read("scope-0:questions", "")] == [b"item-2"]
    assert [v for _, v in await state.read("scope-1:questions", "")] == [b"item-3"]
    for i in range(5, 8):
        await state.append(f"scope-{i}:questions", f"item-{i}".encode())
    assert await state.read("scope-0:questions", "") == []
    assert await state.read("scope-2:questions", "") == []
    assert [v for _, v in await state.read("scope-7:questions", "")] == [b"item-7"]
    assert await state.flush("scope-") == 3


async def test_memory_state_flush_keeps_the_log_bound_exact() -> None:
    state = MemoryState(max_entries=10, max_log=2)
    await state.append("a:log", b"1")
    await state.append("b:log", b"2")
    await state.flush("a:")
    await state.append("c:log", b"3")
    assert [v for _, v in await state.read("b:log", "")] == [b"2"]
    await state.append("c:log", b"4")
    assert await state.read("b:log", "") == []
    assert [v for _, v in await state.read("c:log", "")] == [b"3", b"4"]
