"""What must happen however an answer ends: its finishers run (the worker slot is freed and
usage charged) even when the request log cannot be written; usage is estimated when the
model never reported it; an escalation the large model cannot take keeps the small answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from grounded.gateway.admission import Shed
from grounded.gateway.routing import CascadeBackend, RouteDecision
from grounded.generate.answer import PreparedAnswer
from grounded.generate.prompt import Prompt
from grounded.generate.protocol import Delta, GenerationRequest, Message, Usage
from grounded.generate.replay import ReplayBackend
from grounded.observe.requestlog import RequestLog


class BrokenLog(RequestLog):
    def write(self, record: dict[str, Any]) -> None:
        raise OSError("No space left on device")


class Silent:
    """A backend that streams text but never reports usage (some servers omit it)."""

    name = "silent"

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        for word in ["Laptops", " can", " be", " returned", " in", " 30", " days."]:
            yield Delta(word)
        yield Delta(finish_reason="stop")

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def answer(backend: Any, log: RequestLog, prompt_tokens: int = 100) -> PreparedAnswer:
    return PreparedAnswer(
        answer_id="chatcmpl-test",
        model="m",
        question="Can I return a laptop?",
        standalone_query="Can I return a laptop?",
        citations=[],
        prompt=Prompt([Message("user", "q")], [], prompt_tokens, 0),
        backend=backend,
        fallback=None,
        log=log,
        max_tokens=64,
        temperature=None,
        started=0.0,
        retrieval_ms=0.0,
    )


async def drain(prepared: PreparedAnswer) -> None:
    async for _ in prepared.stream():
        pass


def test_finishers_run_even_when_the_log_cannot_be_written() -> None:
    finished: list[str] = []
    prepared = answer(ReplayBackend("an answer", "m"), BrokenLog(None))
    prepared.finishers.append(lambda a: finished.append(a.answer_id))
    with pytest.raises(OSError):
        asyncio.run(drain(prepared))
    assert finished == ["chatcmpl-test"]
    prepared.finish()  # idempotent: a second call (the response's own) does nothing
    assert finished == ["chatcmpl-test"]


def test_usage_is_estimated_when_the_model_never_reports_it(tmp_path: Path) -> None:
    prepared = answer(Silent(), RequestLog(tmp_path / "log.jsonl"))
    asyncio.run(drain(prepared))
    assert prepared.usage is None
    assert prepared.tokens_used() >= 100 + 7  # prompt plus about one token per word
    reported = answer(ReplayBackend("x", "m"), RequestLog(None))
    reported.usage = Usage(10, 5)
    assert reported.tokens_used() == 15


def test_escalation_refused_by_a_full_large_model_keeps_the_small_answer() -> None:
    async def full() -> Any:
        raise Shed("model large is full", retry_after_s=1.0)

    decision = RouteDecision("small", "default: small model")
    cascade = CascadeBackend(
        Silent(),
        ReplayBackend("the large answer", "large"),
        decision,
        support=lambda text, passages: 0.0,  # type: ignore[arg-type]
        threshold=0.9,
        large_name="large",
        admit_large=full,
    )

    async def collect() -> str:
        request = GenerationRequest([Message("user", "q")], 64, "q")
        return "".join([d.text async for d in cascade.stream(request)])

    assert asyncio.run(collect()) == "Laptops can be returned in 30 days."
    assert decision.model == "small" and not decision.escalated
    assert "escalation refused" in decision.reason
