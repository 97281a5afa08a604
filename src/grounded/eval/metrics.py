"""Ranking metrics over section-level results (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from grounded.models import SECTION_SEPARATOR


@dataclass(frozen=True, slots=True)
class Relevant:
    source: str
    section: str | None = None

    def matches(self, source: str, section: str) -> bool:
        if source != self.source:
            return False
        if not self.section:
            return True
        return section == self.section or section.startswith(self.section + SECTION_SEPARATOR)


def first_match(relevant: Sequence[Relevant], source: str, section: str) -> int | None:
    for i, item in enumerate(relevant):
        if item.matches(source, section):
            return i
    return None


def judge(ranked: Sequence[tuple[str, str]], relevant: Sequence[Relevant]) -> list[int | None]:
    """For each ranked (source, section), the index of the label it satisfies, if any."""
    return [first_match(relevant, source, section) for source, section in ranked]


def recall_at(judged: Sequence[int | None], n_relevant: int, k: int) -> float:
    found = {j for j in judged[:k] if j is not None}
    return len(found) / n_relevant if n_relevant else 0.0


def mrr_at(judged: Sequence[int | None], k: int) -> float:
    for rank, j in enumerate(judged[:k], start=1):
        if j is not None:
            return 1.0 / rank
    return 0.0


def ndcg_at(judged: Sequence[int | None], n_relevant: int, k: int) -> float:
    credited: set[int] = set()
    dcg = 0.0
    for rank, j in enumerate(judged[:k], start=1):
        if j is not None and j not in credited:
            credited.add(j)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(n_relevant, k) + 1))
    return dcg / ideal if ideal else 0.0


def dedupe_sections(ranked: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Section level: a section counts once, at its best rank."""
    return list(dict.fromkeys(ranked))
