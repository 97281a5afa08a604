"""The answer you get without a language model: the passages' own most relevant sentences.

It is the embedded default and the fallback when a model server is down. It never writes
a word of its own beyond a fixed preface saying it is an extract: every sentence comes
verbatim from a retrieved passage and carries that passage's citation number.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np

from grounded.generate.protocol import Delta, GenerationRequest, Usage
from grounded.ingest.embedders.protocol import Embedder
from grounded.ingest.split import sentence_spans

PREFACE = "From the documents (an extract of the most relevant sentences, not a written answer):"
NOT_FOUND = "I could not find this in the documents."
MAX_SENTENCES = 3
MAX_CANDIDATES = 60


class ExtractiveBackend:
    def __init__(
        self, embedder: Embedder, name: str = "extractive", min_score: float = 0.3
    ) -> None:
        self._embedder = embedder
        self._name = name
        self._min_score = min_score

    @property
    def name(self) -> str:
        return self._name

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        answer = await asyncio.to_thread(self.compose, request)
        words = answer.split(" ")
        for i, word in enumerate(words):
            yield Delta(text=word if i == 0 else f" {word}")
        prompt_tokens = sum(len(h.chunk.text.split()) for h in request.passages)
        usage = Usage(prompt_tokens + len(request.question.split()), len(words))
        yield Delta(finish_reason="stop", usage=usage)

    def compose(self, request: GenerationRequest) -> str:
        candidates: list[tuple[int, str]] = []
        for number, hit in enumerate(request.passages, start=1):
            text = hit.chunk.text
            for start, end in sentence_spans(text, 0):
                sentence = " ".join(text[start:end].split()).lstrip("-• ").strip()
                if len(sentence.split()) >= 4:
                    candidates.append((number, sentence))
        candidates = candidates[:MAX_CANDIDATES]
        if not candidates:
            return NOT_FOUND
        vectors = self._embedder.embed([request.question, *(s for _, s in candidates)])
        scores = vectors[1:] @ vectors[0]
        chosen: list[int] = []
        for index in np.argsort(-scores):
            if scores[index] < self._min_score or len(chosen) == MAX_SENTENCES:
                break
            if all(float(vectors[1 + index] @ vectors[1 + j]) < 0.9 for j in chosen):
                chosen.append(int(index))
        if not chosen:
            return NOT_FOUND
        body = " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in chosen)
        return f"{PREFACE} {body}"

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
