"""The ingest run: discover → load → dedup → chunk → embed (reusing stored vectors) → write.

Parsing runs in a worker thread ahead of embedding, so on a small machine the embedder
is the only thing the run waits for. Chunks of many documents are embedded together (the
model is fastest on full batches); each document is then written in its own transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grounded.errors import LoadError
from grounded.ingest.dedup import DuplicateIndex, DuplicateOf, content_hash
from grounded.ingest.discover import SourceFile, discover
from grounded.ingest.embedders.protocol import Embedder
from grounded.ingest.loaders import load_file
from grounded.ingest.report import IngestReport
from grounded.ingest.split import Splitter
from grounded.models import Chunk, Document, EmbeddedChunk, ParsedDocument
from grounded.settings import Settings
from grounded.store.protocol import DuplicateRecord, Store
from grounded.types import DocId, Metadata

Progress = Callable[[int, int, int], None]  # files done, files total, chunks written


def doc_id_for(collection: str, source: str) -> DocId:
    return DocId(hashlib.sha1(f"{collection}\x00{source}".encode()).hexdigest()[:16])


@dataclass(frozen=True, slots=True)
class Prepared:
    parsed: ParsedDocument
    doc_id: DocId
    chunks: list[Chunk]
    content_hash: str
    minhash: bytes


@dataclass(slots=True)
class Parsed:
    file: SourceFile
    documents: list[Prepared]
    failures: list[tuple[str, str]]


class Ingestor:
    def __init__(
        self, store: Store, embedder: Embedder, splitter: Splitter, settings: Settings
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._splitter = splitter
        self._settings = settings
        # One index per collection: a document is only ever a duplicate of one in the same
        # collection (collections of different tenants must not even learn of each other).
        self._dedup: dict[str, DuplicateIndex] = {}

    def _duplicates(self, collection: str) -> DuplicateIndex:
        if collection not in self._dedup:
            dedup = self._settings.dedup
            self._dedup[collection] = DuplicateIndex(
                dedup.near_duplicate_threshold, dedup.shingle_words, dedup.minhash_permutations
            )
        return self._dedup[collection]

    async def run(
        self,
        paths: list[Path],
        collection: str,
        prune: bool = False,
        metadata: Metadata | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        await self._store.bind_embedder(self._embedder.name, self._embedder.dimension)
        dedup = self._duplicates(collection)
        dedup.add_all(
            (s.doc_id, s.source, s.content_hash, s.minhash)
            for s in await self._store.signatures(collection)
        )
        files, ignored = discover(paths)
        report.ignored = [str(p) for p in ignored]
        batch = _Batch(self._store, self._embedder, dedup, self._settings, collection, report)
        seen: set[str] = set()
        failed_files: set[str] = set()
        queue: asyncio.Queue[Parsed | None] = asyncio.Queue(maxsize=32)
        producer = asyncio.create_task(self._produce(files, collection, metadata or {}, queue))
        done = 0
        try:
            while (parsed := await queue.get()) is not None:
                done += 1
                seen.add(parsed.file.source)
                report.failed.extend(parsed.failures)
                if parsed.failures and not parsed.documents:
                    failed_files.add(str(parsed.file.path.resolve()))
                for prepared in parsed.documents:
                    seen.add(prepared.parsed.source)
                    await batch.offer(prepared)
                if batch.full:
                    await batch.flush()
                if progress:
                    progress(done, len(files), report.chunks_written)
            await batch.flush()
        finally:
            producer.cancel()
        if progress:
            progress(done, len(files), report.chunks_written)
        if prune:
            await self._prune(collection, files, seen, failed_files, report)
        report.seconds = time.perf_counter() - started
        return report

    async def _produce(
        self,
        files: list[SourceFile],
        collection: str,
        metadata: Metadata,
        queue: asyncio.Queue[Parsed | None],
    ) -> None:
        for file in files:
            await queue.put(await asyncio.to_thread(self._prepare, file, collection, metadata))
        await queue.put(None)

    def _prepare(self, file: SourceFile, collection: str, metadata: Metadata) -> Parsed:
        max_bytes = int(self._settings.ingest.max_file_mb * 1_000_000)
        try:
            loaded = load_file(file.path, file.source, max_bytes)
        except LoadError as exc:
            return Parsed(file, [], [(file.source, str(exc))])
        prepared = []
        for parsed in loaded.documents:
            if metadata:
                parsed = _with_metadata(parsed, metadata)
            doc_id = doc_id_for(collection, parsed.source)
            prepared.append(
                Prepared(
                    parsed=parsed,
                    doc_id=doc_id,
                    chunks=self._splitter.split(parsed, doc_id),
                    content_hash=content_hash(parsed.text + repr(sorted(parsed.metadata.items()))),
                    minhash=self._duplicates(collection).signature(parsed.text),
                )
            )
        return Parsed(file, prepared, list(loaded.failures))

    async def _prune(
        self,
        collection: str,
        files: list[SourceFile],
        seen: set[str],
        failed_files: set[str],
        report: IngestReport,
    ) -> None:
        roots = {str(f.root) for f in files}
        offset = 0
        stale: list[Document] = []
        while page := await self._store.list_documents(collection, limit=1000, offset=offset):
            offset += len(page)
            for doc in page:
                under_root = any(doc.uri.startswith(root.rstrip("/") + "/") for root in roots)
                source_file = doc.source.split("#", 1)[0]
                if (
                    under_root
                    and doc.source not in seen
                    and doc.uri not in failed_files
                    and source_file not in _failed_sources(report)
                ):
                    stale.append(doc)
        for doc in stale:
            await self._store.delete_document(doc.doc_id)
            self._duplicates(collection).remove(doc.doc_id)
            report.pruned.append(doc.source)


def _failed_sources(report: IngestReport) -> set[str]:
    return {source.split("#", 1)[0] for source, _ in report.failed}


def _with_metadata(parsed: ParsedDocument, metadata: Metadata) -> ParsedDocument:
    return dataclasses.replace(parsed, metadata={**parsed.metadata, **metadata})


class _Batch:
    """Documents waiting for their chunks to be embedded together."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        dedup: DuplicateIndex,
        settings: Settings,
        collection: str,
        report: IngestReport,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._dedup = dedup
        self._settings = settings
        self._collection = collection
        self._report = report
        self._pending: list[tuple[Prepared, bool]] = []
        self._chunks = 0

    @property
    def full(self) -> bool:
        return self._chunks >= self._settings.ingest.batch_chunks

    async def offer(self, prepared: Prepared) -> None:
        """Queue a document for writing unless it is unchanged or a duplicate."""
        store, report = self._store, self._report
        source = prepared.parsed.source
        existing = await store.find_document(self._collection, source)
        if existing is not None and existing.content_hash == prepared.content_hash:
            report.unchanged.append(source)
            return
        if existing is None:
            duplicate = await self._live_duplicate(prepared)
            if duplicate is not None:
                report.duplicates.append((source, duplicate.source, duplicate.kind))
                await store.record_duplicate(
                    DuplicateRecord(
                        self._collection,
                        source,
                        duplicate.doc_id,
                        duplicate.source,
                        duplicate.kind,
                        time.time(),
                    )
                )
                return
        if not prepared.chunks:
            report.failed.append((source, "no text to index after clean-up"))
            return
        self._pending.append((prepared, existing is not None))
        self._chunks += len(prepared.chunks)
        # Register now so a near-copy later in this same run is caught too.
        self._dedup.add(prepared.doc_id, source, prepared.content_hash, prepared.minhash)

    async def _live_duplicate(self, prepared: Prepared) -> DuplicateOf | None:
        """A stored document this one copies; originals deleted since (by the API, the CLI
        or another replica) are forgotten, so re-adding a deleted text is never dropped."""
        while True:
            found = self._dedup.find(prepared.doc_id, prepared.content_hash, prepared.minhash)
            pending = any(p.doc_id == found.doc_id for p, _ in self._pending) if found else False
            if found is None or pending or await self._store.get_document(found.doc_id):
                return found
            self._dedup.remove(found.doc_id)

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._chunks = self._pending, [], 0
        vectors = await self._vectors([c for p, _ in pending for c in p.chunks])
        for prepared, replaced in pending:
            await self._write(prepared, replaced, vectors)

    async def _vectors(self, chunks: list[Chunk]) -> dict[str, np.ndarray]:
        report = self._report
        known = await self._store.vectors_by_hash([c.content_hash for c in chunks])
        missing: dict[str, str] = {}
        for chunk in chunks:
            if chunk.content_hash not in known:
                missing.setdefault(chunk.content_hash, chunk.embed_text)
        report.chunks_reused += len(chunks) - sum(1 for c in chunks if c.content_hash in missing)
        if missing:
            started = time.perf_counter()
            matrix = await asyncio.to_thread(self._embedder.embed, list(missing.values()))
            report.embed_seconds += time.perf_counter() - started
            report.chunks_embedded += len(missing)
            known.update(zip(missing.keys(), matrix, strict=True))
        return known

    async def _write(
        self, prepared: Prepared, replaced: bool, vectors: dict[str, np.ndarray]
    ) -> None:
        report = self._report
        matrix = np.stack([vectors[c.content_hash] for c in prepared.chunks])
        copies: list[object] = [None] * len(prepared.chunks)
        threshold = self._settings.dedup.chunk_similarity
        if threshold < 1.0:
            copies = list(
                await self._store.similar_chunks(
                    matrix, self._collection, prepared.doc_id, threshold
                )
            )
        embedded = [
            EmbeddedChunk(chunk, matrix[i], copies[i])  # type: ignore[arg-type]
            for i, chunk in enumerate(prepared.chunks)
        ]
        parsed = prepared.parsed
        document = Document(
            doc_id=prepared.doc_id,
            collection=self._collection,
            source=parsed.source,
            uri=parsed.uri,
            title=parsed.title,
            format=parsed.format,
            content_hash=prepared.content_hash,
            ingested_at=time.time(),
            chunk_count=len(embedded),
            metadata=parsed.metadata,
        )
        await self._store.write_document(document, embedded, prepared.minhash)
        await self._store.clear_duplicate(self._collection, parsed.source)
        report.duplicate_chunks += sum(1 for c in copies if c is not None)
        report.chunks_written += len(embedded)
        (report.updated if replaced else report.added).append(parsed.source)
