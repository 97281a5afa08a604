"""Model cascading: most questions to a small model, hard ones to a large one.

The first choice is made from what is known before generation — the tier, the length of
the question, how well retrieval matched. The second look comes after the small model has
answered: if too few of its sentences are supported by a retrieved passage (cosine of
sentence and passage embeddings), the large model answers instead. The small answer is
held back until it has been checked, so the client only ever sees one answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounded.gateway.admission import AdmissionError
from grounded.generate.protocol import ChatBackend, Delta, GenerationRequest
from grounded.ingest.embedders.protocol import Embedder
from grounded.models import Hit
from grounded.settings import RoutingSettings

_CITATION = re.compile(r"\[\d+\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE_WORDS = 4


@dataclass
class RouteDecision:
    model: str
    reason: str
    escalated: bool = False
    support: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reason": self.reason,
            "escalated": self.escalated,
            "support": None if self.support is None else round(self.support, 3),
        }


class Router:
    def __init__(self, settings: RoutingSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.name

    def choose(self, tier: str, question: str, best_similarity: float | None) -> RouteDecision:
        """`best_similarity`: cosine of the question and its best passage (None: no retrieval)."""
        small, large = self.settings.small_model, self.settings.large_model
        assert small and large, "routing needs small_model and large_model"
        if tier in self.settings.large_tiers:
            return RouteDecision(large, f"tier {tier} always gets the large model")
        words = len(question.split())
        if words > self.settings.long_question_words:
            return RouteDecision(large, f"long question ({words} words)")
        floor = self.settings.min_retrieval_score
        if best_similarity is not None and best_similarity < floor:
            return RouteDecision(
                large, f"weak retrieval (best passage {best_similarity:.2f} < {floor})"
            )
        return RouteDecision(small, "default: small model")


class SupportCheck:
    """Share of an answer's sentences that some passage supports (cosine ≥ similarity)."""

    def __init__(self, embedder: Embedder, similarity: float) -> None:
        self._embedder = embedder
        self._similarity = similarity

    def __call__(self, answer: str, passages: Sequence[Hit]) -> float:
        sentences = [
            s
            for s in (_CITATION.sub("", part).strip() for part in _SENTENCE_END.split(answer))
            if len(s.split()) >= MIN_SENTENCE_WORDS
        ]
        if not sentences or not passages:
            return 0.0
        vectors = self._embedder.embed([*sentences, *(h.chunk.text for h in passages)])
        similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
        return float(np.mean(similarity.max(axis=1) >= self._similarity))


Admit = Callable[[], Awaitable[Callable[[], None]]]


class CascadeBackend:
    """The small model answers; if its answer is weakly supported, the large one does."""

    def __init__(
        self,
        small: ChatBackend,
        large: ChatBackend,
        decision: RouteDecision,
        support: SupportCheck,
        threshold: float,
        large_name: str,
        admit_large: Admit | None = None,
    ) -> None:
        self._small, self._large = small, large
        self._decision = decision
        self._support = support
        self._threshold = threshold
        self._large_name = large_name
        self._admit_large = admit_large

    @property
    def name(self) -> str:
        return self._small.name

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        held = [delta async for delta in self._small.stream(request)]
        text = "".join(d.text for d in held)
        support = await asyncio.to_thread(self._support, text, request.passages)
        self._decision.support = support
        if support >= self._threshold:
            for delta in held:
                yield delta
            return
        try:
            release = await self._admit_large() if self._admit_large else None
        except AdmissionError as exc:
            # The large model is full: the small answer is still an answer; say why it stayed.
            self._decision.reason += f"; escalation refused ({exc.status}): kept small answer"
            for delta in held:
                yield delta
            return
        try:
            self._decision.model = self._large_name
            self._decision.escalated = True
            self._decision.reason += (
                f"; escalated: {support:.0%} of the small answer supported < {self._threshold:.0%}"
            )
            async for delta in self._large.stream(request):
                yield delta
        finally:
            if release is not None:
                release()

    async def ready(self) -> bool:
        return await self._small.ready()

    async def close(self) -> None:
        return None  # the two backends are owned (and closed) by the Answerer
