"""The contract every store backend meets (embedded SQLite + ANN; PostgreSQL + pgvector).

Methods speak of documents, chunks and searches, never of tables or files. Every write of
a document is atomic: readers see the old version or the new one, never a mix, and a
crash leaves the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from grounded.models import Document, EmbeddedChunk, Hit, SearchFilter
from grounded.types import ChunkId, DocId, Matrix, Vector


@dataclass(frozen=True, slots=True)
class Scored:
    chunk_id: ChunkId
    score: float


@dataclass(frozen=True, slots=True)
class DuplicateRecord:
    collection: str
    source: str
    duplicate_of: DocId
    duplicate_of_source: str
    kind: str
    detected_at: float


@dataclass(frozen=True, slots=True)
class StoreStats:
    documents: int
    chunks: int
    indexed_chunks: int
    duplicate_chunks: int
    duplicate_documents: int
    collections: dict[str, int]
    embedder: str | None
    dimension: int | None
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Signature:
    doc_id: DocId
    source: str
    content_hash: str
    minhash: bytes | None


class Store(Protocol):
    async def bind_embedder(self, name: str, dimension: int) -> None:
        """Fix the embedder of this index; raises ConfigError if it was built with another."""
        ...

    async def get_document(self, doc_id: DocId) -> Document | None: ...

    async def find_document(self, collection: str, source: str) -> Document | None: ...

    async def list_documents(
        self,
        collection: str | None = None,
        source_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Document]: ...

    async def signatures(self, collection: str) -> list[Signature]:
        """Content hashes and MinHash signatures of a collection, for duplicate detection."""
        ...

    async def vectors_by_hash(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of chunks with these content hashes (reuse instead of re-embedding)."""
        ...

    async def similar_chunks(
        self, vectors: Matrix, collection: str, exclude_doc: DocId, threshold: float
    ) -> list[ChunkId | None]:
        """For each vector, an indexed chunk of another document at cosine >= threshold."""
        ...

    async def document_chunks(self, doc_id: DocId) -> list[EmbeddedChunk]:
        """Every chunk of a document in order, with its vector and copy mark (for exports)."""
        ...

    async def write_document(
        self, document: Document, chunks: Sequence[EmbeddedChunk], minhash: bytes | None
    ) -> None:
        """Insert or atomically replace a document with all its chunks."""
        ...

    async def delete_document(self, doc_id: DocId) -> bool: ...

    async def record_duplicate(self, record: DuplicateRecord) -> None: ...

    async def clear_duplicate(self, collection: str, source: str) -> None: ...

    async def duplicates(self, collection: str | None = None) -> list[DuplicateRecord]: ...

    async def dense_search(self, vector: Vector, k: int, where: SearchFilter) -> list[Scored]: ...

    async def keyword_search(self, query: str, k: int, where: SearchFilter) -> list[Scored]: ...

    async def hits(self, chunk_ids: Sequence[ChunkId]) -> dict[ChunkId, Hit]:
        """Chunks with their document's provenance; score fields are zero."""
        ...

    async def stats(self) -> StoreStats: ...

    async def check(self) -> list[str]:
        """Problems found comparing the indexes with the documents; empty when consistent."""
        ...

    async def close(self) -> None: ...
