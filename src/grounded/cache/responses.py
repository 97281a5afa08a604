"""Exact and semantic answer caching with invalidation by document lineage.

An entry records the version (content hash) of every document its answer cited. A hit is
served only if each of those documents is still stored at that version, so a re-ingest or
delete anywhere — this process, a CLI run beside it, another replica — retires every
dependent answer at once, with no message passing. Every hit also needs the question's top
passages now to be the ones recorded with the entry: a document added since that outranks
them turns the hit into a miss, and a semantic hit must be answered from the same place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from grounded.cache.semantic import SemanticIndex
from grounded.cache.state import CacheState, StateUnavailable
from grounded.models import SECTION_SEPARATOR, Chunk, Hit, SearchFilter
from grounded.retrieve.query_embedding import QueryEmbedder
from grounded.settings import CacheSettings
from grounded.store.protocol import Store
from grounded.types import ChunkId, DocId, Vector

_log = logging.getLogger("grounded.cache")
_SPACE = re.compile(r"\s+")
AGREEING_PASSAGES = 3


def normalise(question: str) -> str:
    return _SPACE.sub(" ", question.strip().lower()).rstrip("?!. ")


@dataclass(frozen=True, slots=True)
class CacheScope:
    """Everything except the question that decides an answer."""

    tenant: str
    model: str
    k: int
    where: SearchFilter
    prompt_version: str
    max_tokens: int

    def key(self) -> str:
        payload = json.dumps(
            [
                self.model,
                self.k,
                self.where.collection,
                self.where.source_prefix,
                sorted(self.where.metadata.items()),
                self.prompt_version,
                self.max_tokens,
            ],
            default=str,
        )
        return f"grounded:cache:{self.tenant}:{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    question: str
    text: str
    citations: list[dict[str, Any]]
    lineage: dict[str, str]  # doc_id -> content hash the answer was built from
    top_chunks: list[str]
    prompt_tokens: int
    created: float
    kind: str = "exact"  # how it was found: exact or semantic

    def passages(self) -> list[Hit]:
        """The cited passages, rebuilt from the stored citations."""
        return [
            Hit(
                chunk=Chunk(
                    chunk_id=ChunkId(c["chunk_id"]),
                    doc_id=DocId(c["doc_id"]),
                    ordinal=0,
                    text=c["text"],
                    section=tuple(c["section"].split(SECTION_SEPARATOR)) if c["section"] else (),
                    start=0,
                    end=0,
                    token_count=0,
                    content_hash="",
                ),
                source=c["source"],
                title=c.get("title", ""),
                collection="",
                score=float(c["score"]),
            )
            for c in self.citations
        ]

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_bytes(raw: bytes, kind: str) -> CachedAnswer:
        data = json.loads(raw)
        data["kind"] = kind
        return CachedAnswer(**data)


class ResponseCache:
    def __init__(
        self,
        state: CacheState,
        store: Store,
        embedder: QueryEmbedder,
        dimension: int,
        settings: CacheSettings,
    ) -> None:
        self._state = state
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._semantic = SemanticIndex(state, dimension)

    def _for(self, scope: CacheScope) -> CacheSettings:
        """The settings of this tenant: the defaults with its own overrides applied."""
        return self._settings.for_tenant(scope.tenant)

    @staticmethod
    def _entry_key(scope: CacheScope, question: str) -> str:
        digest = hashlib.sha256(normalise(question).encode()).hexdigest()
        return f"{scope.key()}:q:{digest}"

    async def lookup(self, scope: CacheScope, question: str) -> CachedAnswer | None:
        """A current cached answer, or None (also when the state server is down)."""
        if not self._for(scope).enabled:
            return None
        try:
            return await self._lookup(scope, question)
        except StateUnavailable as exc:
            _log.warning("response cache skipped: %s", exc)
            return None

    async def _lookup(self, scope: CacheScope, question: str) -> CachedAnswer | None:
        key = self._entry_key(scope, question)
        raw = await self._state.get(key)
        vector = await self._embedder.embed_query(question)
        top: list[str] | None = None
        if raw is not None:
            entry = CachedAnswer.from_bytes(raw, "exact")
            top = await self._top_chunks(vector, scope)
            if _agree(entry.top_chunks, top) and await self._current(entry):
                return entry
            await self._state.delete([key])
        if not self._for(scope).semantic:
            return None
        return await self._semantic_hit(scope, question, vector, top)

    async def _semantic_hit(
        self, scope: CacheScope, question: str, vector: Vector, top: list[str] | None
    ) -> CachedAnswer | None:
        numbers = _numbers(question)
        similarity = self._for(scope).similarity
        candidates = [
            (key, score)
            for key, score in await self._semantic.nearest(scope.key(), vector)
            if score >= similarity
        ]
        if not candidates:
            return None
        if top is None:
            top = await self._top_chunks(vector, scope)
        for key, _ in candidates:
            raw = await self._state.get(key)
            if raw is None:
                continue
            entry = CachedAnswer.from_bytes(raw, "semantic")
            if (
                _numbers(entry.question) == numbers
                and _same_place(entry.top_chunks, top)
                and await self._current(entry)
            ):
                return entry
        return None

    async def _top_chunks(self, vector: Vector, scope: CacheScope) -> list[str]:
        found = await self._store.dense_search(vector, AGREEING_PASSAGES, scope.where)
        return [s.chunk_id for s in found]

    async def _current(self, entry: CachedAnswer) -> bool:
        return await self._versions(entry.lineage) == entry.lineage

    async def _versions(self, doc_ids: Iterable[str]) -> dict[str, str] | None:
        """The stored version of each document, or None if one of them is gone."""
        versions: dict[str, str] = {}
        for doc_id in doc_ids:
            doc = await self._store.get_document(DocId(doc_id))
            if doc is None:
                return None
            versions[doc_id] = doc.content_hash
        return versions

    async def save(
        self,
        scope: CacheScope,
        question: str,
        text: str,
        citations: list[dict[str, Any]],
        prompt_tokens: int,
    ) -> None:
        if not self._for(scope).enabled or not citations or not text.strip():
            return
        try:
            await self._save(scope, question, text, citations, prompt_tokens)
        except StateUnavailable as exc:
            _log.warning("answer not cached: %s", exc)

    async def _save(
        self,
        scope: CacheScope,
        question: str,
        text: str,
        citations: list[dict[str, Any]],
        prompt_tokens: int,
    ) -> None:
        lineage = await self._versions(dict.fromkeys(c["doc_id"] for c in citations))
        if lineage is None:
            return  # deleted while answering: nothing current to cache
        vector = await self._embedder.embed_query(question)
        entry = CachedAnswer(
            question=question,
            text=text,
            citations=citations,
            lineage=lineage,
            top_chunks=await self._top_chunks(vector, scope),
            prompt_tokens=prompt_tokens,
            created=time.time(),
        )
        key = self._entry_key(scope, question)
        await self._state.put(key, entry.to_bytes(), self._for(scope).ttl_seconds)
        if self._for(scope).semantic:
            await self._semantic.add(scope.key(), key, np.asarray(vector, dtype=np.float32))

    async def flush(self, tenant: str) -> int:
        prefix = f"grounded:cache:{tenant}:"
        self._semantic.forget(prefix)
        return await self._state.flush(prefix)

    async def close(self) -> None:
        await self._state.close()


def _agree(cached: list[str], current: list[str]) -> bool:
    """The same top passages now as when the answer was cached (order aside): a document
    added since that ranks among them turns an exact hit into a miss."""
    return bool(cached) and set(cached) == set(current)


def _same_place(cached: list[str], current: list[str]) -> bool:
    """Two questions answered from the same place: same best passage, most of the rest."""
    return (
        bool(cached and current)
        and cached[0] == current[0]
        and (len(set(cached) & set(current)) >= min(2, len(cached)))
    )


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _numbers(question: str) -> set[str]:
    # "after 20 days" and "after 45 days" embed almost alike and have different answers.
    return set(_NUMBER.findall(question))
