"""Hybrid search through the real embedder and the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from grounded.ingest.embedders.onnx import OnnxEmbedder
from grounded.models import Chunk, Document, EmbeddedChunk
from grounded.retrieve.hybrid import Retriever
from grounded.retrieve.query_embedding import QueryEmbedder
from grounded.settings import RetrieveSettings
from grounded.store.sqlite import SqliteStore
from grounded.types import ChunkId, DocId


def _document(doc: str, chunks: int) -> Document:
    return Document(
        DocId(doc), "default", f"{doc}.md", f"/x/{doc}.md", doc, "markdown", doc, 0.0, chunks, {}
    )


@pytest.mark.anyio
async def test_k_results_even_when_the_leaders_overlap(
    tmp_path: Path, embedder: OnnxEmbedder
) -> None:
    # Twelve overlapping chunks of one section lead both rankings; collapsing keeps one of
    # them, so the other four of the top five must come from further down the fused list.
    store = SqliteStore(tmp_path / "data")
    await store.bind_embedder(embedder.name, embedder.dimension)
    returns = [f"Laptops may be returned within 30 days, note {i}." for i in range(12)]
    overlapping = [
        EmbeddedChunk(
            Chunk(
                ChunkId(f"r{i}"),
                DocId("returns"),
                i,
                text,
                ("Returns",),
                i * 10,
                i * 10 + 200,
                12,
                f"r{i}",
            ),
            vector,
        )
        for i, (text, vector) in enumerate(zip(returns, embedder.embed(returns), strict=True))
    ]
    await store.write_document(_document("returns", 12), overlapping, None)
    garden = [f"Garden furniture ships in {i + 2} working days." for i in range(8)]
    for i, (text, vector) in enumerate(zip(garden, embedder.embed(garden), strict=True)):
        chunk = Chunk(ChunkId(f"g{i}"), DocId(f"g{i}"), 0, text, ("Shipping",), 0, 50, 9, f"g{i}")
        await store.write_document(_document(f"g{i}", 1), [EmbeddedChunk(chunk, vector)], None)

    retriever = Retriever(store, QueryEmbedder(embedder), RetrieveSettings())
    found = await retriever.search("can I return a laptop within 30 days", k=5)
    ids = [hit.chunk.chunk_id for hit in found.hits]
    assert len(ids) == 5
    assert ids[0].startswith("r") and sum(i.startswith("r") for i in ids) == 1
    await store.close()
