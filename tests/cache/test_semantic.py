"""The cached-question index: fed from the shared log, large backlogs built off the loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from grounded.cache.semantic import BACKGROUND_AFTER, SemanticIndex
from grounded.cache.state import MemoryState

pytestmark = pytest.mark.anyio


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def test_a_second_process_finds_what_the_first_logged() -> None:
    state = MemoryState()
    writer, reader = SemanticIndex(state, 32), SemanticIndex(state, 32)
    vectors = unit_vectors(20)
    for i, vector in enumerate(vectors):
        await writer.add("scope", f"entry-{i}", vector)
    found = await reader.nearest("scope", vectors[7], 1)
    assert found[0][0] == "entry-7" and found[0][1] == pytest.approx(1.0, abs=1e-2)
    await writer.add("scope", "late", vectors[3] * -1)
    assert (await reader.nearest("scope", vectors[3] * -1, 1))[0][0] == "late"
    assert await reader.nearest("other-scope", vectors[0]) == []


async def test_a_large_backlog_is_indexed_in_the_background() -> None:
    state = MemoryState()
    writer, joiner = SemanticIndex(state, 32), SemanticIndex(state, 32)
    vectors = unit_vectors(BACKGROUND_AFTER + 100, seed=1)
    for i, vector in enumerate(vectors):
        await writer.add("scope", f"entry-{i}", vector)
    assert await joiner.nearest("scope", vectors[5], 1) == []  # building: exact hits only
    await joiner.warm("scope")
    assert (await joiner.nearest("scope", vectors[5], 1))[0][0] == "entry-5"


async def test_only_the_most_recently_used_scopes_are_held() -> None:
    state = MemoryState()
    index = SemanticIndex(state, 32, max_scopes=2)
    vectors = unit_vectors(3, seed=2)
    for i, scope in enumerate(("a", "b", "c")):
        await index.add(scope, f"entry-{scope}", vectors[i])
        assert (await index.nearest(scope, vectors[i], 1))[0][0] == f"entry-{scope}"
    assert len(index) == 2  # "a" was dropped for "c"
    await index.nearest("b", vectors[1], 1)  # now "c" is the least recently used
    # A dropped scope is rebuilt from the log, including what was logged while it was out.
    await index.add("a", "entry-a2", vectors[2])
    found = await index.nearest("a", vectors[0], 2)
    assert [key for key, _ in found] == ["entry-a", "entry-a2"]
    assert len(index) == 2
    assert (await index.nearest("b", vectors[1], 1))[0][0] == "entry-b"
    await index.warm("c")
    assert (await index.nearest("c", vectors[2], 1))[0][0] == "entry-c"


async def test_a_scope_with_nothing_logged_holds_no_index() -> None:
    index = SemanticIndex(MemoryState(), 32)
    for i in range(50):
        assert await index.nearest(f"prefix-{i}", unit_vectors(1)[0]) == []
        await index.warm(f"other-{i}")
    assert len(index) == 0


class RoundTripState(MemoryState):
    """Reads give way to other tasks, as a read from Redis does."""

    async def read(self, log: str, after: str) -> list[tuple[str, bytes]]:
        await asyncio.sleep(0)
        return await super().read(log, after)


async def test_concurrent_lookups_index_each_item_once() -> None:
    state = RoundTripState()
    index = SemanticIndex(state, 32)
    vectors = unit_vectors(5, seed=3)
    for i, vector in enumerate(vectors):
        await index.add("scope", f"entry-{i}", vector)
    await asyncio.gather(*(index.nearest("scope", vectors[0]) for _ in range(3)))
    await index.add("scope", "entry-5", vectors[0] * -1)
    await asyncio.gather(*(index.nearest("scope", vectors[0]) for _ in range(3)))
    found = await index.nearest("scope", vectors[0], 10)
    assert sorted(key for key, _ in found) == [f"entry-{i}" for i in range(6)]
