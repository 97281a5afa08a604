"""Clean text and turn a loader's flat block list into heading-path sections.

Loaders only say "heading of level n" or "paragraph"; this module owns normalisation and
the offsets, so every format gets the same clean text and the same section rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from grounded.models import Section

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """NFKC (folds ligatures and full-width forms), no control characters, tidy whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True, slots=True)
class Block:
    """A heading (level 1-6) or a body block (level 0)."""

    text: str
    level: int = 0


def heading(text: str, level: int) -> Block:
    return Block(text=text, level=max(1, min(level, 6)))


def body(text: str) -> Block:
    return Block(text=text, level=0)


def assemble(blocks: list[Block]) -> tuple[str, tuple[Section, ...]]:
    """Join blocks into one clean text and cut it into sections by heading path.

    A section's text excludes its heading (the heading is in its path); offsets point into
    the returned text, which does include the headings.
    """
    parts: list[str] = []
    offset = 0
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    run: list[str] = []
    run_start = 0

    def flush() -> None:
        if run:
            text = "\n\n".join(run)
            heading_path = tuple(h for _, h in path)
            sections.append(Section(heading_path, text, run_start, run_start + len(text)))
            run.clear()

    for block in blocks:
        text = clean_text(block.text)
        if not text:
            continue
        if block.level:
            flush()
            text = " ".join(text.split())
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, text))
        start = offset + (2 if parts else 0)
        parts.append(text)
        offset = start + len(text)
        if not block.level:
            if not run:
                run_start = start
            run.append(text)
    flush()
    return "\n\n".join(parts), tuple(sections)


def first_heading(blocks: list[Block]) -> str | None:
    for block in blocks:
        if block.level and block.text.strip():
            return " ".join(block.text.split())
    return None
