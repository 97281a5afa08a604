"""The contract of a generation backend, and the values that cross it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from grounded.errors import GroundedError
from grounded.models import Hit


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """One piece of a streamed answer; the last one carries finish_reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    messages: Sequence[Message]
    max_tokens: int
    question: str
    passages: Sequence[Hit] = field(default_factory=tuple)
    temperature: float | None = None
    affinity: str | None = None  # same value, same worker when possible (its prefix cache)


class BackendError(GroundedError):
    """The model server failed. `before_output` says whether anything was streamed yet."""

    code = "upstream_error"
    http_status = 502

    def __init__(self, message: str, before_output: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.before_output = before_output
        self.status = status  # the model server's HTTP status, when it answered with one

    @property
    def public_message(self) -> str:
        """What a client is told: never worker addresses or upstream bodies (the request
        log keeps the full message)."""
        if not self.before_output:
            return "the model server failed while answering; this answer is incomplete"
        status = f" (it answered {self.status})" if self.status else ""
        return f"the model server could not answer{status}"


class ChatBackend(Protocol):
    @property
    def name(self) -> str: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Yield the answer; closing the iterator early must release the upstream request."""
        ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...
