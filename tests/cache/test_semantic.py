"""The cached-question index: fed from the shared log, large backlogs built off the loop."""

from __future__ import annotations

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
