"""Markdown via markdown-it-py (CommonMark + tables); optional `key: value` front matter."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from grounded.errors import LoadError
from grounded.ingest.loaders._decode import decode_utf8
from grounded.ingest.loaders.text import title_from_source
from grounded.ingest.structure import Block, assemble, body, first_heading, heading
from grounded.models import ParsedDocument
from grounded.types import Metadata

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_PARSER = MarkdownIt("commonmark").enable("table")


def inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("softbreak", "hardbreak"):
            parts.append("\n" if child.type == "hardbreak" else " ")
        elif child.type in ("text", "code_inline", "html_inline") or child.type == "image":
            parts.append(child.content)
    return "".join(parts)


def markdown_blocks(tokens: Sequence[Token]) -> list[Block]:
    blocks: list[Block] = []
    level = 0
    row: list[str] | None = None
    list_depth = 0
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            level = int(token.tag[1])
        elif kind == "heading_close":
            level = 0
        elif kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.append(body(" | ".join(row)))
            row = None
        elif kind == "inline":
            text = inline_text(token)
            if level:
                blocks.append(heading(text, level))
            elif row is not None:
                row.append(text)
            else:
                blocks.append(body(f"- {text}" if list_depth else text))
        elif kind in ("fence", "code_block"):
            blocks.append(body(token.content))
    return blocks


def split_front_matter(text: str) -> tuple[str, Metadata]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    meta: Metadata = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip()] = value.strip().strip("\"'")
    return text[match.end() :], meta


class MarkdownLoader:
    suffixes = (".md", ".markdown", ".mdx")

    def load(self, data: bytes, source: str, uri: str) -> list[ParsedDocument]:
        return [parse_markdown(decode_utf8(data), source, uri)]


def parse_markdown(raw: str, source: str, uri: str, meta: Metadata | None = None) -> ParsedDocument:
    raw, front = split_front_matter(raw)
    blocks = markdown_blocks(_PARSER.parse(raw))
    text, sections = assemble(blocks)
    if not sections:
        raise LoadError("no text after clean-up")
    metadata = {**front, **(meta or {})}
    title = str(front.get("title") or first_heading(blocks) or title_from_source(source))
    return ParsedDocument(
        source=source,
        uri=uri,
        title=title,
        format="markdown",
        text=text,
        sections=sections,
        metadata=metadata,
    )
