"""Exact and near-duplicate documents are found; distinct ones with shared boilerplate are not."""

from __future__ import annotations

from grounded.ingest.dedup import DuplicateIndex, content_hash
from grounded.types import DocId

POLICY = (
    "Laptops can be returned within 30 days of delivery. Opened laptops carry a 15% restocking "
    "fee. Phones can be returned within 14 days. Refunds are issued within 5 to 7 business days "
    "after we inspect the item. Tents and jackets can be returned within 60 days, even if used "
    "outdoors, as long as they are clean and complete. Gift cards are not returnable. "
)


def index() -> DuplicateIndex:
    return DuplicateIndex(threshold=0.9, shingle_words=5, permutations=128)


def add(idx: DuplicateIndex, doc: str, source: str, text: str) -> None:
    idx.add(DocId(doc), source, content_hash(text), idx.signature(text))


def test_exact_copy_is_found_even_with_different_whitespace_and_case() -> None:
    idx = index()
    add(idx, "a", "returns.md", POLICY * 3)
    copy = (POLICY * 3).upper().replace(" ", "  ")
    found = idx.find(DocId("b"), content_hash(copy), idx.signature(copy))
    assert found is not None and found.kind == "exact" and found.source == "returns.md"


def test_near_copy_is_found_and_a_different_policy_is_not() -> None:
    idx = index()
    add(idx, "a", "returns.md", POLICY * 6)
    near = (POLICY * 6).replace(
        "Gift cards are not returnable.", "Gift cards can't be returned.", 1
    )
    found = idx.find(DocId("b"), content_hash(near), idx.signature(near))
    assert found is not None and found.kind == "near"
    different = POLICY.replace("30 days", "45 days").replace("14 days", "21 days") + (
        "Our warranty covers manufacturing defects for two years on laptops and one year on "
        "phones and headphones; accidental damage is covered only by the CarePlus plan."
    )
    assert idx.find(DocId("c"), content_hash(different), idx.signature(different)) is None


def test_a_new_version_of_the_same_document_is_not_its_own_duplicate() -> None:
    idx = index()
    add(idx, "a", "returns.md", POLICY * 6)
    edited = POLICY * 6 + "One more sentence."
    assert idx.find(DocId("a"), content_hash(edited), idx.signature(edited)) is None


def test_removed_documents_no_longer_match() -> None:
    idx = index()
    add(idx, "a", "returns.md", POLICY * 6)
    idx.remove(DocId("a"))
    assert idx.find(DocId("b"), content_hash(POLICY * 6), idx.signature(POLICY * 6)) is None
