"""The only writer of text/event-stream: OpenAI chunk events, ending with [DONE]."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from grounded.generate.answer import PreparedAnswer
from grounded.generate.protocol import BackendError


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _chunk(
    answer: PreparedAnswer,
    delta: dict[str, Any],
    finish: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": answer.answer_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **(extra or {}),
    }


def _content_frame(answer: PreparedAnswer) -> tuple[bytes, bytes]:
    """The bytes around a token's JSON string: only the token is encoded per event."""
    marker = "\x00token\x00"
    frame = _event(_chunk(answer, {"content": marker}))
    before, _, after = frame.partition(orjson.dumps(marker))
    return before, after


async def stream_answer(answer: PreparedAnswer, include_usage: bool) -> AsyncIterator[bytes]:
    citations = [c.as_dict() for c in answer.citations]
    before, after = _content_frame(answer)
    yield _event(
        _chunk(
            answer,
            {"role": "assistant", "content": ""},
            extra={"grounded": {"citations": citations}},
        )
    )
    try:
        async with aclosing(answer.stream()) as deltas:
            async for delta in deltas:
                if delta.text:
                    yield before + orjson.dumps(delta.text) + after
    except BackendError as exc:
        # The client already has part of an answer: end the stream well-formed, with an error
        # it can see, rather than cutting it off or passing it off as complete.
        yield _event(
            {
                "error": {
                    "message": exc.public_message,
                    "type": "server_error",
                    "code": "upstream_error",
                }
            }
        )
        yield b"data: [DONE]\n\n"
        return
    finish = answer.finish_reason or "stop"
    yield _event(
        _chunk(
            answer,
            {},
            finish,
            extra={
                "grounded": {
                    "degraded": answer.degraded,
                    "cache": answer.cache or "miss",
                    "prompt_version": answer.prompt.version,
                    "standalone_query": answer.standalone_query,
                }
            },
        )
    )
    if include_usage and answer.usage is not None:
        usage = answer.usage
        yield _event(
            {
                "id": answer.answer_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": answer.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
        )
    yield b"data: [DONE]\n\n"
