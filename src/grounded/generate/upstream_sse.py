"""Parse an OpenAI-style Server-Sent Events stream into our own `Delta`s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from grounded.generate.protocol import BackendError, Delta, Usage


async def events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payload of each ``data:`` event, until ``[DONE]``."""
    async for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"model server sent malformed event: {payload[:80]!r}") from exc
        if isinstance(event, dict):
            if "error" in event:
                raise BackendError(f"model server error: {event['error']}")
            yield event
    raise BackendError("model server closed the stream before [DONE]", before_output=False)


def to_delta(event: dict[str, Any]) -> Delta | None:
    usage = event.get("usage")
    parsed_usage = (
        Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        if isinstance(usage, dict)
        else None
    )
    choices = event.get("choices") or []
    if not choices:
        return Delta(usage=parsed_usage) if parsed_usage else None
    choice = choices[0]
    text = (choice.get("delta") or {}).get("content") or ""
    finish = choice.get("finish_reason")
    if not text and not finish and not parsed_usage:
        return None
    return Delta(text=text, finish_reason=finish, usage=parsed_usage)
