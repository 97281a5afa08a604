"""A backend that streams an answer already given: cache hits use the same path, format and
request log as generated answers, and cost no tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from grounded.generate.protocol import Delta, GenerationRequest, Usage

_PIECES = re.compile(r"\S+\s*|\s+")


class ReplayBackend:
    def __init__(self, text: str, name: str) -> None:
        self._text = text
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        for piece in _PIECES.findall(self._text):
            yield Delta(piece)
        yield Delta(finish_reason="stop", usage=Usage(0, 0))

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
