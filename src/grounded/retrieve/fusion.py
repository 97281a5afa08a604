"""Rank fusion and collapsing as pure functions over ranked lists."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from grounded.models import Hit

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], weights: Sequence[float], k: int = 60
) -> list[tuple[K, float]]:
    """Weighted RRF: score(d) = sum_i w_i / (k + rank_i(d)), ranks starting at 1."""
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight <= 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def collapse_overlapping(hits: Sequence[Hit]) -> list[Hit]:
    """Drop a hit whose text overlaps or abuts a better hit from the same section.

    Neighbouring chunks of one section share their overlap; showing both wastes a slot of
    top-k and of the prompt on text the reader has already seen.
    """
    kept: list[Hit] = []
    spans: dict[tuple[str, tuple[str, ...]], list[tuple[int, int]]] = {}
    for hit in hits:
        key = (hit.chunk.doc_id, hit.chunk.section)
        taken = spans.setdefault(key, [])
        if any(hit.chunk.start < end and start < hit.chunk.end for start, end in taken):
            continue
        taken.append((hit.chunk.start, hit.chunk.end))
        kept.append(hit)
    return kept
