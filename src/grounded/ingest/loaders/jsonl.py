"""JSON Lines: one document per line, ``{"text": ..., "title"?, "id"?, "format"?, "metadata"?}``.

A bad line fails alone: its neighbours are still loaded and the bad one is reported.
Any other top-level scalar field is kept as metadata.
"""

from __future__ import annotations

import json
import re
from typing import Any

from grounded.errors import LoadError
from grounded.ingest.loaders._decode import decode_utf8
from grounded.ingest.loaders.html import parse_html
from grounded.ingest.loaders.markdown import parse_markdown
from grounded.ingest.loaders.protocol import Loaded
from grounded.ingest.loaders.text import parse_text
from grounded.models import ParsedDocument
from grounded.types import Metadata

_ID = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")
_RESERVED = {"text", "content", "title", "id", "format", "metadata"}


def _metadata(record: dict[str, Any]) -> Metadata:
    meta: Metadata = {}
    extra = record.get("metadata") or {}
    if not isinstance(extra, dict):
        raise LoadError("'metadata' must be an object")
    for key, value in [*record.items(), *extra.items()]:
        if key in _RESERVED and key not in extra:
            continue
        if isinstance(value, str | int | float | bool):
            meta[str(key)] = value
    return meta


def parse_record(record: object, source: str, uri: str) -> ParsedDocument:
    if not isinstance(record, dict):
        raise LoadError("line is not a JSON object")
    text = record.get("text", record.get("content"))
    if not isinstance(text, str) or not text.strip():
        raise LoadError("record has no non-empty 'text' field")
    title = record.get("title") if isinstance(record.get("title"), str) else None
    fmt = record.get("format", "text")
    meta = _metadata(record)
    if fmt == "markdown":
        doc = parse_markdown(text, source, uri, meta)
    elif fmt == "html":
        doc = parse_html(text, source, uri)
    elif fmt == "text":
        doc = parse_text(text, source, uri, title)
    else:
        raise LoadError(f"unknown format {fmt!r} (use text, markdown or html)")
    return ParsedDocument(
        source=doc.source,
        uri=doc.uri,
        title=title or doc.title,
        format=f"jsonl/{doc.format}",
        text=doc.text,
        sections=doc.sections,
        metadata={**doc.metadata, **meta},
    )


class JsonlLoader:
    suffixes = (".jsonl", ".ndjson")

    def load(self, data: bytes, source: str, uri: str) -> Loaded:
        loaded = Loaded()
        seen: set[str] = set()
        for number, line in enumerate(decode_utf8(data).splitlines(), start=1):
            if not line.strip():
                continue
            record_source = f"{source}#{number}"
            try:
                record = json.loads(line)
                record_id = str(record.get("id", number)) if isinstance(record, dict) else ""
                if not _ID.match(record_id):
                    raise LoadError(
                        f"id {record_id[:40]!r} has characters outside A-Z a-z 0-9 _.:/-"
                    )
                record_source = f"{source}#{record_id}"
                if record_source in seen:
                    raise LoadError(f"id {record_id!r} appears twice in the file")
                seen.add(record_source)
                loaded.documents.append(parse_record(record, record_source, uri))
            except json.JSONDecodeError as exc:
                loaded.failures.append((record_source, f"line {number}: invalid JSON ({exc.msg})"))
            except LoadError as exc:
                loaded.failures.append((record_source, f"line {number}: {exc}"))
        if not loaded.documents and not loaded.failures:
            raise LoadError("empty file")
        return loaded
