"""Plain text: paragraphs separated by blank lines; no headings."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from grounded.errors import LoadError
from grounded.ingest.loaders._decode import decode_utf8
from grounded.ingest.structure import Block, assemble, body
from grounded.models import ParsedDocument

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def text_blocks(text: str) -> list[Block]:
    return [body(p) for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def title_from_source(source: str) -> str:
    return PurePosixPath(source.split("#", 1)[0]).stem.replace("-", " ").replace("_", " ")


class TextLoader:
    suffixes = (".txt", ".text")

    def load(self, data: bytes, source: str, uri: str) -> list[ParsedDocument]:
        return [parse_text(decode_utf8(data), source, uri)]


def parse_text(raw: str, source: str, uri: str, title: str | None = None) -> ParsedDocument:
    text, sections = assemble(text_blocks(raw))
    if not sections:
        raise LoadError("no text after clean-up")
    return ParsedDocument(
        source=source,
        uri=uri,
        title=title or title_from_source(source),
        format="text",
        text=text,
        sections=sections,
    )
