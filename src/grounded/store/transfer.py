"""Copy one store into another, vectors included: moving from the embedded store to
PostgreSQL costs no re-embedding. Re-running skips documents already copied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grounded.errors import StoreError
from grounded.store.protocol import Store

PAGE = 200


@dataclass
class TransferReport:
    documents: int = 0
    chunks: int = 0
    skipped: int = 0
    duplicates: int = 0


async def copy_store(
    source: Store, target: Store, progress: Callable[[int, int], None] | None = None
) -> TransferReport:
    stats = await source.stats()
    if stats.embedder is None or stats.dimension is None:
        raise StoreError("the source index is empty: nothing to copy")
    await target.bind_embedder(stats.embedder, stats.dimension)
    report = TransferReport()
    for collection in sorted(stats.collections):
        minhashes = {s.doc_id: s.minhash for s in await source.signatures(collection)}
        offset = 0
        while page := await source.list_documents(collection, limit=PAGE, offset=offset):
            offset += len(page)
            for doc in page:
                existing = await target.get_document(doc.doc_id)
                if existing is not None and existing.content_hash == doc.content_hash:
                    report.skipped += 1
                else:
                    chunks = await source.document_chunks(doc.doc_id)
                    await target.write_document(doc, chunks, minhashes.get(doc.doc_id))
                    report.documents += 1
                    report.chunks += len(chunks)
                if progress is not None:
                    progress(report.documents + report.skipped, stats.documents)
    for record in await source.duplicates():
        await target.record_duplicate(record)
        report.duplicates += 1
    return report
