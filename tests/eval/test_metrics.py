"""Retrieval metrics at section level."""

from __future__ import annotations

import math

import pytest

from grounded.eval.metrics import Relevant, dedupe_sections, judge, mrr_at, ndcg_at, recall_at


def test_section_labels_match_their_subsections_only() -> None:
    label = Relevant("returns.md", "Returns > Electronics")
    assert label.matches("returns.md", "Returns > Electronics")
    assert label.matches("returns.md", "Returns > Electronics > Laptops")
    assert not label.matches("returns.md", "Returns > Electronics Extra")
    assert not label.matches("faq.html", "Returns > Electronics")
    assert Relevant("faq.html").matches("faq.html", "anything")


def test_metrics_on_a_known_ranking() -> None:
    relevant = [Relevant("a.md", "A"), Relevant("b.md", "B")]
    ranked = dedupe_sections(
        [("x.md", "X"), ("a.md", "A > 1"), ("a.md", "A > 1"), ("y.md", "Y"), ("b.md", "B")]
    )
    judged = judge(ranked, relevant)
    assert judged == [None, 0, None, 1]
    assert recall_at(judged, 2, 1) == 0.0
    assert recall_at(judged, 2, 2) == 0.5
    assert recall_at(judged, 2, 5) == 1.0
    assert mrr_at(judged, 10) == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at(judged, 2, 10) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)


def test_a_label_is_credited_once() -> None:
    judged = judge([("a.md", "A"), ("a.md", "A > 2")], [Relevant("a.md", "A")])
    assert recall_at(judged, 1, 10) == 1.0
    assert ndcg_at(judged, 1, 10) == 1.0
