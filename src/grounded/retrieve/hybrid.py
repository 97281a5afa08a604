"""Hybrid retrieval: one question, dense and keyword search side by side, fused."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Literal

from grounded.models import Hit, SearchFilter
from grounded.retrieve.fusion import collapse_overlapping, reciprocal_rank_fusion
from grounded.retrieve.query_embedding import QueryEmbedder
from grounded.settings import RetrieveSettings
from grounded.store.protocol import Scored, Store

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True, slots=True)
class Retrieval:
    hits: list[Hit]
    dense: list[Scored]
    keyword: list[Scored]


class Retriever:
    def __init__(self, store: Store, embedder: QueryEmbedder, settings: RetrieveSettings) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings

    @property
    def query_embedder(self) -> QueryEmbedder:
        return self._embedder

    async def search(
        self,
        question: str,
        k: int | None = None,
        where: SearchFilter | None = None,
        mode: Mode = "hybrid",
    ) -> Retrieval:
        k = k or self._settings.k
        where = where or SearchFilter()
        depth = max(self._settings.candidates, k * 3)
        dense, keyword = await asyncio.gather(
            self._dense(question, depth, where) if mode != "keyword" else _nothing(),
            self._store.keyword_search(question, depth, where) if mode != "dense" else _nothing(),
        )
        weights = (self._settings.dense_weight, self._settings.keyword_weight)
        fused = reciprocal_rank_fusion(
            [[s.chunk_id for s in dense], [s.chunk_id for s in keyword]],
            weights if mode == "hybrid" else (1.0, 1.0),
            self._settings.rrf_k,
        )
        dense_rank = {s.chunk_id: i for i, s in enumerate(dense, start=1)}
        keyword_rank = {s.chunk_id: i for i, s in enumerate(keyword, start=1)}
        ranked: list[Hit] = []
        kept: list[Hit] = []
        start, batch = 0, 2 * k
        # Only the top k survive, so chunk rows (text, provenance) are read for the leaders
        # first, and for more only when collapsing overlaps left fewer than k.
        while start < len(fused) and len(kept) < k:
            window = fused[start : start + batch]
            details = await self._store.hits([chunk_id for chunk_id, _ in window])
            ranked += [
                dataclasses.replace(
                    details[chunk_id],
                    score=score,
                    dense_rank=dense_rank.get(chunk_id),
                    keyword_rank=keyword_rank.get(chunk_id),
                )
                for chunk_id, score in window
                if chunk_id in details
            ]
            kept = collapse_overlapping(ranked) if self._settings.collapse else ranked
            start, batch = start + batch, batch * 2
        return Retrieval(hits=kept[:k], dense=dense, keyword=keyword)

    async def _dense(self, question: str, depth: int, where: SearchFilter) -> list[Scored]:
        vector = await self._embedder.embed_query(question)
        return await self._store.dense_search(vector, depth, where)


async def _nothing() -> list[Scored]:
    return []
