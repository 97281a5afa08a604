"""The contract of a file-format loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from grounded.models import ParsedDocument


@dataclass(slots=True)
class Loaded:
    """Documents read from one file, and the parts of it that could not be read."""

    documents: list[ParsedDocument] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


class Loader(Protocol):
    """Parses the bytes of one file into one or more documents.

    Raises `LoadError` with a reason a user can act on ("not valid UTF-8 at byte 812").
    """

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File name endings this loader reads, lower case, with the dot."""
        ...

    def load(self, data: bytes, source: str, uri: str) -> list[ParsedDocument] | Loaded: ...
