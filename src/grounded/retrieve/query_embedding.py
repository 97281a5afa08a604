"""Query embeddings: off the event loop, cached by the question's hash."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from grounded.ingest.embedders.protocol import Embedder
from grounded.types import Vector


class QueryEmbedder:
    def __init__(self, embedder: Embedder, cache_size: int = 4096) -> None:
        self._embedder = embedder
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size

    async def embed_query(self, question: str) -> Vector:
        key = hashlib.sha256(" ".join(question.split()).encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        vector: Vector = (await asyncio.to_thread(self._embedder.embed, [question]))[0]
        self._cache[key] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vector
