"""Chunks fit the embedder, follow the document's structure and overlap their neighbours."""

from __future__ import annotations

import itertools

import pytest

from grounded.ingest.embedders.minilm import tokenizer_file
from grounded.ingest.loaders.markdown import parse_markdown
from grounded.ingest.split import Splitter, load_tokenizer
from grounded.models import ParsedDocument

TOKENIZER = load_tokenizer(tokenizer_file())
SENTENCE = "The restocking fee for opened laptops is fifteen percent of the purchase price. "


def long_doc(paragraphs: int = 12) -> ParsedDocument:
    body = "\n\n".join(
        f"Paragraph {p}. " + " ".join(f"Sentence {p}.{s} says {SENTENCE}" for s in range(6))
        for p in range(paragraphs)
    )
    text = f"# Returns\n\n## Electronics\n\n### Laptops\n\n{body}\n\n### Phones\n\nPhones: 14 days."
    return parse_markdown(text, "returns.md", "/x/returns.md")


def counted(text: str) -> int:
    return len(TOKENIZER.encode(text, add_special_tokens=True).ids)


@pytest.mark.parametrize(("limit", "overlap"), [(256, 38), (384, 64), (512, 96)])
def test_every_chunk_fits_the_budget_with_its_heading_path(limit: int, overlap: int) -> None:
    chunks = Splitter(TOKENIZER, limit, overlap).split(long_doc(), "d1")  # type: ignore[arg-type]
    assert len(chunks) > 3
    for chunk in chunks:
        assert counted(chunk.embed_text) <= limit
        assert chunk.token_count == counted(chunk.embed_text)
    # Budgets are used, not wasted: the long section's chunks are mostly full.
    laptop = [c for c in chunks if c.section[-1] == "Laptops"]
    assert sum(c.token_count for c in laptop[:-1]) / len(laptop[:-1]) > 0.75 * limit


def test_chunks_respect_sections_and_carry_their_heading_path() -> None:
    chunks = Splitter(TOKENIZER, 256, 38).split(long_doc(), "d1")  # type: ignore[arg-type]
    paths = [c.section_path for c in chunks]
    assert paths[-1] == "Returns > Electronics > Phones"
    assert chunks[-1].text == "Phones: 14 days."
    assert chunks[0].embed_text.startswith("Returns > Electronics > Laptops\n")
    assert all("Phones:" not in c.text for c in chunks[:-1])


def test_offsets_point_at_the_chunk_text_and_neighbours_overlap() -> None:
    doc = long_doc()
    chunks = Splitter(TOKENIZER, 256, 38).split(doc, "d1")  # type: ignore[arg-type]
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
    laptop = [c for c in chunks if c.section[-1] == "Laptops"]
    for before, after in itertools.pairwise(laptop):
        assert after.start < before.end, "consecutive chunks share text"
        shared = counted(doc.text[after.start : before.end]) - 2
        assert 0 < shared <= 38


def test_sentence_longer_than_the_budget_is_cut_without_losing_text() -> None:
    words = " ".join(f"word{i}" for i in range(900))
    doc = parse_markdown(f"# Spec\n\n{words}", "spec.md", "/x/spec.md")
    chunks = Splitter(TOKENIZER, 128, 16).split(doc, "d1")  # type: ignore[arg-type]
    assert len(chunks) > 5
    assert all(c.token_count <= 128 for c in chunks)
    covered = "".join(doc.text[c.start : c.end] for c in chunks)
    for i in (0, 450, 899):
        assert f"word{i}" in covered


def test_chunk_ids_are_stable_and_content_addressed() -> None:
    splitter = Splitter(TOKENIZER, 256, 38)
    first = splitter.split(long_doc(), "d1")  # type: ignore[arg-type]
    again = splitter.split(long_doc(), "d1")  # type: ignore[arg-type]
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    other_doc = splitter.split(long_doc(), "d2")  # type: ignore[arg-type]
    assert not {c.chunk_id for c in first} & {c.chunk_id for c in other_doc}
    assert [c.content_hash for c in first] == [c.content_hash for c in other_doc]
