"""Nearest cached questions, per scope, in a local HNSW index fed by the shared log.

Each process keeps its own small index and catches up from the state's log before every
lookup, so an answer cached by one replica is found by the others; entries that expired
or were invalidated are simply missing from the state when a candidate is fetched.

Scopes come from request options (collection, source prefix, metadata), so a client can
make any number of them: only the most recently used are held in memory. The log is the
source of truth, so a scope dropped here is rebuilt from it when it is next looked up.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

# onnxruntime must be loaded before usearch (see grounded.store.sqlite.ann).
import onnxruntime  # noqa: F401
from usearch.index import Index

from grounded.cache.state import CacheState
from grounded.types import Vector

_SEPARATOR = b"\n"  # log item: entry key (never holds a newline), then float32 vector


BACKGROUND_AFTER = 512  # a longer backlog is indexed off the event loop
MAX_SCOPES = 256  # scope indexes held in memory; the least recently used goes first


@dataclass
class _ScopeIndex:
    index: Index
    keys: list[str] = field(default_factory=list)
    position: str = ""
    building: asyncio.Task[None] | None = None


class SemanticIndex:
    def __init__(self, state: CacheState, dimension: int, max_scopes: int = MAX_SCOPES) -> None:
        self._state = state
        self._dimension = dimension
        self._max_scopes = max_scopes
        self._scopes: OrderedDict[str, _ScopeIndex] = OrderedDict()

    def __len__(self) -> int:
        """Scope indexes held in memory."""
        return len(self._scopes)

    @staticmethod
    def log_name(scope: str) -> str:
        return f"{scope}:questions"

    async def add(self, scope: str, entry_key: str, vector: Vector) -> None:
        item = entry_key.encode() + _SEPARATOR + np.asarray(vector, dtype=np.float32).tobytes()
        await self._state.append(self.log_name(scope), item)

    async def nearest(self, scope: str, vector: Vector, count: int = 3) -> list[tuple[str, float]]:
        scope_index = await self._caught_up(scope)
        if scope_index is None or scope_index.building is not None or not scope_index.keys:
            return []  # nothing logged, or still indexing a large backlog: exact hits only
        found = scope_index.index.search(np.asarray(vector, dtype=np.float32), count)
        return [
            (scope_index.keys[int(label)], 1.0 - float(distance))
            for label, distance in zip(found.keys, found.distances, strict=True)
        ]

    def forget(self, scope_prefix: str) -> None:
        for scope in [s for s in self._scopes if s.startswith(scope_prefix)]:
            del self._scopes[scope]

    async def warm(self, scope: str) -> None:
        """Index everything logged so far for this scope (a replica starting up, a benchmark)."""
        while True:
            scope_index = await self._caught_up(scope)
            if scope_index is None or scope_index.building is None:
                return
            await scope_index.building

    async def _caught_up(self, scope: str) -> _ScopeIndex | None:
        """This scope's index with everything logged so far, or None if nothing is logged."""
        scope_index = self._scopes.get(scope)
        if scope_index is not None:
            self._scopes.move_to_end(scope)
            if scope_index.building is not None:
                if not scope_index.building.done():
                    return scope_index
                scope_index.building = None
        position = scope_index.position if scope_index is not None else ""
        items = await self._state.read(self.log_name(scope), position)
        if scope_index is None:
            # A lookup that raced this one may have built the index while the log was read.
            scope_index = self._scopes.get(scope)
            if scope_index is not None:
                return scope_index
            if not items:
                return None  # an index per scope nobody cached into would grow without bound
            scope_index = self._hold(scope)
        elif scope_index.position != position:
            return scope_index  # a concurrent lookup already added these items
        if not items:
            return scope_index
        keys, vectors = self._decode(items)
        scope_index.position = items[-1][0]
        if len(keys) > BACKGROUND_AFTER:
            # Thousands of entries (a replica joining a large shared cache): building the
            # graph takes seconds, so it happens on a thread while requests carry on.
            scope_index.building = asyncio.create_task(
                asyncio.to_thread(_add, scope_index, keys, vectors)
            )
        elif keys:
            _add(scope_index, keys, vectors)
        return scope_index

    def _hold(self, scope: str) -> _ScopeIndex:
        scope_index = _ScopeIndex(
            Index(ndim=self._dimension, metric="cos", dtype="f16", expansion_add=64)
        )
        self._scopes[scope] = scope_index
        while len(self._scopes) > self._max_scopes:
            # A background build of a dropped scope finishes into an index nobody holds.
            self._scopes.popitem(last=False)
        return scope_index

    def _decode(self, items: list[tuple[str, bytes]]) -> tuple[list[str], list[np.ndarray]]:
        keys: list[str] = []
        vectors: list[np.ndarray] = []
        for _, item in items:
            key, _, raw = item.partition(_SEPARATOR)
            if len(raw) == self._dimension * 4:
                keys.append(key.decode())
                vectors.append(np.frombuffer(raw, dtype=np.float32))
        return keys, vectors


def _add(scope_index: _ScopeIndex, keys: list[str], vectors: list[np.ndarray]) -> None:
    start = len(scope_index.keys)
    labels = np.arange(start, start + len(keys), dtype=np.uint64)
    scope_index.index.add(labels, np.stack(vectors))
    scope_index.keys.extend(keys)
