"""Fusion and collapsing are pure functions; their arithmetic is pinned here."""

from __future__ import annotations

import pytest

from grounded.models import Chunk, Hit
from grounded.retrieve.fusion import collapse_overlapping, reciprocal_rank_fusion
from grounded.types import ChunkId, DocId


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], [1.0, 1.0], k=60)
    scores = dict(fused)
    assert [item for item, _ in fused][:2] == ["a", "c"]
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["d"] == pytest.approx(1 / 63)


def test_rrf_weights_shift_the_balance_and_zero_drops_a_ranking() -> None:
    dense_heavy = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], [2.0, 1.0])
    assert dense_heavy[0][0] == "a"
    keyword_only = reciprocal_rank_fusion([["a", "b"], ["b", "x"]], [0.0, 1.0])
    assert [item for item, _ in keyword_only] == ["b", "x"]


def hit(chunk_id: str, doc: str, section: tuple[str, ...], start: int, end: int) -> Hit:
    chunk = Chunk(ChunkId(chunk_id), DocId(doc), 0, "t", section, start, end, 1, chunk_id)
    return Hit(chunk=chunk, source=doc, title=doc, collection="default", score=1.0)


def test_collapse_keeps_the_best_of_overlapping_chunks_of_one_section() -> None:
    hits = [
        hit("a2", "d", ("S",), 900, 1800),
        hit("a1", "d", ("S",), 0, 1000),  # overlaps a2: dropped
        hit("b", "d", ("T",), 950, 1700),  # other section: kept
        hit("a3", "d", ("S",), 1800, 2600),  # touches a2 only at the boundary: kept
        hit("e", "other", ("S",), 0, 1000),  # other document: kept
    ]
    assert [h.chunk.chunk_id for h in collapse_overlapping(hits)] == ["a2", "b", "a3", "e"]
