"""The data that flows between stages: plain frozen dataclasses, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from grounded.types import ChunkId, DocId, Metadata, Vector

SECTION_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path; offsets index the document's clean text."""

    heading_path: tuple[str, ...]
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a loader produces: clean text split by structure, before chunking."""

    source: str
    uri: str
    title: str
    format: str
    text: str
    sections: tuple[Section, ...]
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document version."""

    doc_id: DocId
    collection: str
    source: str
    uri: str
    title: str
    format: str
    content_hash: str
    ingested_at: float
    chunk_count: int
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable unit. `content_hash` covers exactly the text that was embedded."""

    chunk_id: ChunkId
    doc_id: DocId
    ordinal: int
    text: str
    section: tuple[str, ...]
    start: int
    end: int
    token_count: int
    content_hash: str

    @property
    def section_path(self) -> str:
        return SECTION_SEPARATOR.join(self.section)

    @property
    def embed_text(self) -> str:
        """The heading path travels with the text so both the embedder and BM25 see it."""
        if not self.section:
            return self.text
        return f"{self.section_path}\n{self.text}"


@dataclass(frozen=True, slots=True)
class EmbeddedChunk:
    chunk: Chunk
    vector: Vector
    duplicate_of: ChunkId | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: the chunk, where it came from, and why it ranked."""

    chunk: Chunk
    source: str
    title: str
    collection: str
    score: float
    metadata: Metadata = field(default_factory=dict)
    dense_rank: int | None = None
    keyword_rank: int | None = None


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Restricts a search; every field that is set must match."""

    collection: str | None = None
    source_prefix: str | None = None
    metadata: Metadata = field(default_factory=dict)
