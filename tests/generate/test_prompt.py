"""Prompt assembly fits the window; follow-ups are rewritten; extracts invent nothing."""

from __future__ import annotations

import asyncio

from grounded.generate.extractive import NOT_FOUND, PREFACE, ExtractiveBackend
from grounded.generate.prompt import PROMPT_VERSION, build_prompt
from grounded.generate.protocol import GenerationRequest, Message
from grounded.generate.rewrite import heuristic_rewrite, looks_like_follow_up
from grounded.ingest.embedders.onnx import OnnxEmbedder
from grounded.models import Chunk, Hit
from grounded.types import ChunkId, DocId


def words(text: str) -> int:
    return len(text.split())


def hit(n: int, text: str) -> Hit:
    chunk = Chunk(
        ChunkId(f"c{n}"), DocId("d"), n, text, ("Returns", f"Part {n}"), 0, len(text), 1, "h"
    )
    return Hit(chunk=chunk, source=f"doc{n}.md", title="t", collection="default", score=1.0 / n)


def test_passages_are_numbered_in_rank_order_with_their_provenance() -> None:
    prompt = build_prompt("q?", [hit(1, "alpha"), hit(2, "beta")], [], 4096, 256, words)
    system = prompt.messages[0].content
    assert "[1] (doc1.md — Returns > Part 1)\nalpha" in system
    assert system.index("[1]") < system.index("[2]")
    assert "ONLY the numbered passages" in system and "could not find it" in system
    assert prompt.messages[-1] == Message("user", "q?") and prompt.version == PROMPT_VERSION


def test_budget_drops_and_trims_passages_then_oldest_history() -> None:
    long = " ".join(f"w{i}" for i in range(300))
    hits = [hit(n, long) for n in range(1, 6)]
    history = [
        Message("user", "old " * 50),
        Message("assistant", "older " * 50),
        Message("user", "recent question"),
        Message("assistant", "recent answer"),
    ]
    prompt = build_prompt("and phones?", hits, history, 900, 100, words)
    total = sum(words(m.content) + 4 for m in prompt.messages)
    assert total <= 900 - 100
    assert 1 <= len(prompt.passages) < 5
    assert prompt.messages[0].content.count("…") <= 1, "only the last passage is trimmed"
    kept = [m.content for m in prompt.messages[1:-1]]
    assert "recent answer" in kept or prompt.dropped_history == len(history)
    assert "old " * 50 not in kept or "recent answer" in kept, "oldest history goes first"


def test_no_passages_says_so() -> None:
    prompt = build_prompt("q?", [], [], 4096, 256, words)
    assert "no passages were found" in prompt.messages[0].content and prompt.passages == []


def test_follow_up_detection_and_heuristic_rewrite(embedder: OnnxEmbedder) -> None:
    history = [
        Message("user", "Can I return a laptop after 45 days?"),
        Message("assistant", "30 days."),
    ]
    assert looks_like_follow_up("and for phones?")
    assert looks_like_follow_up("what about tents")
    assert not looks_like_follow_up("How long does express shipping take to Canada?")
    assert (
        heuristic_rewrite("and for phones?", history, embedder)
        == "Can I return a phones after 45 days?"
    )
    assert heuristic_rewrite("How long is shipping?", history, embedder) == "How long is shipping?"
    assert heuristic_rewrite("and for phones?", [], embedder) == "and for phones?"


def test_extract_quotes_passages_verbatim_and_admits_ignorance(embedder: OnnxEmbedder) -> None:
    backend = ExtractiveBackend(embedder)
    passages = [
        hit(1, "Laptops can be returned within 30 days. Opened ones carry a 15% fee."),
        hit(2, "Tents have a 5-year warranty against manufacturing defects."),
    ]
    answer = backend.compose(
        GenerationRequest([], 100, "How long do I have to return a laptop?", passages)
    )
    assert answer.startswith(PREFACE)
    assert "Laptops can be returned within 30 days. [1]" in answer
    unrelated = backend.compose(
        GenerationRequest([], 100, "What is the capital of Peru?", passages)
    )
    assert unrelated == NOT_FOUND
    assert backend.compose(GenerationRequest([], 100, "anything", [])) == NOT_FOUND

    async def collect() -> list[str]:
        request = GenerationRequest([], 100, "return a laptop", passages)
        return [d.text async for d in backend.stream(request)]

    pieces = asyncio.run(collect())
    assert len(pieces) > 10 and "".join(pieces).startswith(PREFACE)
