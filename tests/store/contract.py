"""The behaviour every `Store` backend must show. A backend's test module subclasses
`StoreContract` and provides the `open_store` fixture: a factory that opens the store
under test on one location (calling it twice opens a second handle on the same data)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from grounded.errors import ConfigError, InputError
from grounded.models import Chunk, Document, EmbeddedChunk, SearchFilter
from grounded.store.protocol import DuplicateRecord, Scored, Store
from grounded.types import ChunkId, DocId

DIM = 16
OpenStore = Callable[[], Awaitable[Store]]


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def document(
    doc_id: str, source: str, chunks: int, collection: str = "default", **meta: object
) -> Document:
    return Document(
        doc_id=DocId(doc_id),
        collection=collection,
        source=source,
        uri=f"/corpus/{source}",
        title=source.title(),
        format="markdown",
        content_hash=f"hash-{doc_id}-{chunks}",
        ingested_at=time.time(),
        chunk_count=chunks,
        metadata=dict(meta),  # type: ignore[arg-type]
    )


def chunks_for(
    doc_id: str, texts: list[str], seeds: list[int], section: tuple[str, ...] = ("Policy",)
) -> list[EmbeddedChunk]:
    out = []
    for i, (text, seed) in enumerate(zip(texts, seeds, strict=True)):
        chunk = Chunk(
            chunk_id=ChunkId(f"{doc_id}-c{i}"),
            doc_id=DocId(doc_id),
            ordinal=i,
            text=text,
            section=section,
            start=i * 100,
            end=i * 100 + len(text),
            token_count=len(text.split()),
            content_hash=f"h-{doc_id}-{seed}",
        )
        out.append(EmbeddedChunk(chunk, unit(seed)))
    return out


async def seeded(open_store: OpenStore) -> Store:
    store = await open_store()
    await store.bind_embedder("test-embedder", DIM)
    await store.write_document(
        document("laptops", "returns/laptops.md", 2, product="laptop", public=True),
        chunks_for(
            "laptops",
            [
                "Laptops can be returned within 30 days.",
                "Opened laptops carry a 15% restocking fee.",
            ],
            [1, 2],
        ),
        None,
    )
    await store.write_document(
        document("phones", "returns/phones.md", 1, product="phone", public=False),
        chunks_for("phones", ["Phones can be returned within 14 days."], [3]),
        None,
    )
    await store.write_document(
        document("tents", "warranty/tents.md", 1, collection="outdoor", product="tent"),
        chunks_for("tents", ["Tents carry a 5 year warranty."], [4]),
        None,
    )
    return store


@pytest.mark.anyio
class StoreContract:
    async def test_documents_round_trip(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        doc = await store.find_document("default", "returns/laptops.md")
        assert doc is not None and doc.chunk_count == 2 and doc.metadata["product"] == "laptop"
        assert await store.get_document(doc.doc_id) == doc
        listed = await store.list_documents("default")
        assert [d.source for d in listed] == ["returns/laptops.md", "returns/phones.md"]
        assert [d.source for d in await store.list_documents(source_prefix="warranty/")] == [
            "warranty/tents.md"
        ]
        assert await store.find_document("outdoor", "returns/laptops.md") is None
        await store.close()

    async def test_dense_search_ranks_by_cosine(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        found = await store.dense_search(unit(3), 3, SearchFilter())
        assert found[0].chunk_id == "phones-c0" and found[0].score == pytest.approx(1.0, abs=1e-4)
        assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
        await store.close()

    async def test_keyword_search_uses_bm25_and_stems(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        found = await store.keyword_search("restocking fees on laptop", 5, SearchFilter())
        assert found[0].chunk_id == "laptops-c1"
        assert await store.keyword_search("the of and", 5, SearchFilter()) == []
        await store.close()

    async def test_a_common_word_counts_again_once_it_is_rare(self, open_store: OpenStore) -> None:
        # Words in over a third of all chunks are left out of keyword queries; the share
        # must follow deletes, or a word once common would stay unsearchable for good.
        store = await open_store()
        await store.bind_embedder("test-embedder", DIM)
        for d in range(20):
            word = "refund " if d < 10 else "warranty " if d >= 18 else ""
            texts = [f"{word}parcel {d} {i}" for i in range(40)]
            await store.write_document(
                document(f"d{d}", f"d{d}.md", 40), chunks_for(f"d{d}", texts, list(range(40))), None
            )

        def docs(found: list[Scored]) -> set[int]:
            return {int(s.chunk_id.split("-")[0][1:]) for s in found}

        assert docs(await store.keyword_search("refund warranty", 200, SearchFilter())) == {18, 19}
        for d in range(7):
            await store.delete_document(DocId(f"d{d}"))
        found = await store.keyword_search("refund warranty", 200, SearchFilter())
        assert docs(found) == {7, 8, 9, 18, 19}
        await store.close()

    async def test_heading_path_is_keyword_indexed(self, open_store: OpenStore) -> None:
        store = await open_store()
        await store.bind_embedder("test-embedder", DIM)
        await store.write_document(
            document("x", "x.md", 1),
            chunks_for("x", ["Thirty days."], [9], section=("Returns", "Camcorders")),
            None,
        )
        assert [
            s.chunk_id for s in await store.keyword_search("camcorders", 5, SearchFilter())
        ] == ["x-c0"]
        await store.close()

    async def test_hostile_query_text_is_data_not_syntax(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        for text in (
            'laptops" OR "phones',
            "NEAR(a b) AND * ^ : -",
            "'; DROP TABLE chunks; --",
            '"""',
            "()",
        ):
            await store.keyword_search(text, 5, SearchFilter())
            await store.dense_search(
                unit(1), 5, SearchFilter(source_prefix=text, metadata={"product": text})
            )
        assert (await store.stats()).chunks == 4
        with pytest.raises(InputError):
            await store.dense_search(unit(1), 5, SearchFilter(metadata={'a") OR 1=1 --': "x"}))
        await store.close()

    async def test_filters_restrict_both_searches(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        cases = [
            (SearchFilter(collection="outdoor"), {"tents-c0"}),
            (SearchFilter(collection="default", source_prefix="returns/ph"), {"phones-c0"}),
            (SearchFilter(metadata={"product": "laptop"}), {"laptops-c0", "laptops-c1"}),
            (SearchFilter(metadata={"public": False}), {"phones-c0"}),
            (SearchFilter(collection="nope"), set()),
        ]
        for where, expected in cases:
            dense = {s.chunk_id for s in await store.dense_search(unit(4), 10, where)}
            keyword = {
                s.chunk_id
                for s in await store.keyword_search("returned warranty fee days", 10, where)
            }
            assert dense == expected, where
            assert keyword <= expected and (keyword or not expected), where
        await store.close()

    async def test_a_collection_never_returns_another_collections_chunks(
        self, open_store: OpenStore
    ) -> None:
        # Tenants are collections: tenant b's first upload, after a search of tenant a's
        # only collection, must stay out of a's results.
        store = await open_store()
        await store.bind_embedder("test-embedder", DIM)
        mine = SearchFilter(collection="tenant-a:docs")
        await store.write_document(
            document("a", "a.md", 1, collection="tenant-a:docs"),
            chunks_for("a", ["Refunds are paid within thirty days."], [1]),
            None,
        )
        assert [s.chunk_id for s in await store.dense_search(unit(2), 5, mine)] == ["a-c0"]
        assert [s.chunk_id for s in await store.keyword_search("refunds", 5, mine)] == ["a-c0"]
        await store.write_document(
            document("b", "b.md", 3, collection="tenant-b:docs"),
            chunks_for("b", ["Refunds: tenant b's policy."] * 3, [2, 3, 4]),
            None,
        )
        for k in (1, 5):
            assert [s.chunk_id for s in await store.dense_search(unit(2), k, mine)] == ["a-c0"]
            keyword = await store.keyword_search("refunds policy", k, mine)
            assert [s.chunk_id for s in keyword] == ["a-c0"]
        other = await store.dense_search(unit(1), 5, SearchFilter(collection="tenant-b:docs"))
        assert {s.chunk_id for s in other} == {"b-c0", "b-c1", "b-c2"}
        await store.close()

    async def test_non_finite_metadata_is_refused_as_input(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        for value in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(InputError, match="finite"):
                await store.write_document(
                    document("bad", "bad.md", 1, score=value),
                    chunks_for("bad", ["Refunds are paid within thirty days."], [5]),
                    None,
                )
            where = SearchFilter(metadata={"score": value})
            with pytest.raises(InputError, match="finite"):
                await store.dense_search(unit(1), 5, where)
            with pytest.raises(InputError, match="finite"):
                await store.keyword_search("returned", 5, where)
        assert await store.get_document(DocId("bad")) is None
        laptops = SearchFilter(metadata={"product": "laptop"})
        assert len(await store.dense_search(unit(1), 5, laptops)) == 2
        await store.close()

    async def test_rewrite_replaces_every_chunk_atomically(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        await store.write_document(
            document("laptops", "returns/laptops.md", 1),
            chunks_for("laptops", ["Laptops now have a 45 day window."], [7]),
            None,
        )
        hits = await store.keyword_search("restocking", 5, SearchFilter())
        assert hits == []
        dense = await store.dense_search(unit(2), 10, SearchFilter())
        assert "laptops-c1" not in {s.chunk_id for s in dense}
        assert (await store.stats()).chunks == 3
        await store.close()

    async def test_delete_removes_from_every_index(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        assert await store.delete_document(DocId("phones"))
        assert not await store.delete_document(DocId("phones"))
        assert await store.get_document(DocId("phones")) is None
        assert "phones-c0" not in {
            s.chunk_id for s in await store.dense_search(unit(3), 10, SearchFilter())
        }
        assert await store.keyword_search("phones", 5, SearchFilter()) == []
        assert await store.hits([ChunkId("phones-c0")]) == {}
        await store.close()

    async def test_hits_carry_provenance(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        hit = (await store.hits([ChunkId("laptops-c1")]))[ChunkId("laptops-c1")]
        assert hit.source == "returns/laptops.md" and hit.collection == "default"
        assert hit.chunk.section == ("Policy",) and hit.chunk.start == 100
        assert hit.metadata["product"] == "laptop"
        await store.close()

    async def test_vectors_are_reusable_by_content_hash(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        found = await store.vectors_by_hash(["h-laptops-2", "missing"])
        assert list(found) == ["h-laptops-2"]
        np.testing.assert_allclose(found["h-laptops-2"], unit(2), atol=1e-6)
        await store.close()

    async def test_document_chunks_export_everything_in_order(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        exported = await store.document_chunks(DocId("laptops"))
        assert [e.chunk.chunk_id for e in exported] == ["laptops-c0", "laptops-c1"]
        assert exported[1].chunk.text == "Opened laptops carry a 15% restocking fee."
        np.testing.assert_allclose(exported[1].vector, unit(2), atol=1e-6)
        assert exported[0].duplicate_of is None
        assert await store.document_chunks(DocId("missing")) == []
        await store.close()

    async def test_similar_chunks_only_across_documents_in_one_collection(
        self, open_store: OpenStore
    ) -> None:
        store = await seeded(open_store)
        queries = np.stack([unit(1), unit(4), unit(99)])
        found = await store.similar_chunks(queries, "default", DocId("other"), 0.99)
        assert found == ["laptops-c0", None, None]
        assert await store.similar_chunks(queries[:1], "default", DocId("laptops"), 0.99) == [None]
        await store.close()

    async def test_copied_chunks_stay_hidden_until_their_original_goes(
        self, open_store: OpenStore
    ) -> None:
        store = await seeded(open_store)
        copy = chunks_for("faq", ["Laptops can be returned within 30 days!"], [1])[0]
        await store.write_document(
            document("faq", "faq.md", 1),
            [EmbeddedChunk(copy.chunk, copy.vector, duplicate_of=ChunkId("laptops-c0"))],
            None,
        )
        dense = await store.dense_search(unit(1), 10, SearchFilter())
        assert "faq-c0" not in {s.chunk_id for s in dense}
        assert (await store.stats()).duplicate_chunks == 1
        await store.delete_document(DocId("laptops"))
        dense = await store.dense_search(unit(1), 10, SearchFilter())
        assert dense[0].chunk_id == "faq-c0"
        assert [
            s.chunk_id
            for s in await store.keyword_search("returned", 5, SearchFilter(collection="default"))
        ].count("faq-c0") == 1
        await store.close()

    async def test_duplicate_documents_are_recorded(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        record = DuplicateRecord(
            "default", "copy.md", DocId("laptops"), "returns/laptops.md", "near", 1.0
        )
        await store.record_duplicate(record)
        assert await store.duplicates("default") == [record]
        await store.clear_duplicate("default", "copy.md")
        assert await store.duplicates() == []
        await store.close()

    async def test_data_survives_reopen_and_is_seen_by_a_second_handle(
        self, open_store: OpenStore
    ) -> None:
        store = await seeded(open_store)
        other = await open_store()
        await other.bind_embedder("test-embedder", DIM)
        await store.write_document(
            document("late", "late.md", 1), chunks_for("late", ["Late news."], [42]), None
        )
        assert (await other.dense_search(unit(42), 1, SearchFilter()))[0].chunk_id == "late-c0"
        await store.close()
        await other.close()
        reopened = await open_store()
        await reopened.bind_embedder("test-embedder", DIM)
        assert (await reopened.dense_search(unit(42), 1, SearchFilter()))[0].chunk_id == "late-c0"
        assert (await reopened.stats()).documents == 4
        await reopened.close()

    async def test_embedder_is_bound_to_the_index(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        with pytest.raises(ConfigError, match="test-embedder"):
            await store.bind_embedder("another-model", 768)
        await store.close()

    async def test_stats_count_what_is_stored(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        stats = await store.stats()
        assert (stats.documents, stats.chunks, stats.indexed_chunks) == (3, 4, 4)
        assert stats.collections == {"default": 2, "outdoor": 1}
        assert (stats.embedder, stats.dimension) == ("test-embedder", DIM)
        await store.close()

    async def test_check_reports_a_consistent_store(self, open_store: OpenStore) -> None:
        store = await seeded(open_store)
        await store.delete_document(DocId("phones"))
        assert await store.check() == []
        await store.close()
