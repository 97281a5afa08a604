"""Structure-aware chunking with a budget counted by the embedder's own tokenizer.

Sections (heading paths) come first: a chunk never spans two sections. Inside a section,
sentences are packed greedily up to the budget, and the next chunk repeats the trailing
sentences that fit in the overlap. A sentence longer than the budget is cut at word-piece
boundaries. The heading path is embedded with each chunk, so it is charged to the budget.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from grounded.models import SECTION_SEPARATOR, Chunk, ParsedDocument, Section
from grounded.types import ChunkId, DocId

_SPECIAL_TOKENS = 2  # [CLS] and [SEP]
# Sentence ends, paragraph breaks, and line breaks before a list item; a lone line break
# inside a paragraph is a hard wrap, not a boundary.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=\S)"
    r"|\s*\n\s*\n\s*"
    r"|\s*\n(?=\s*(?:[-*•]|\d+[.)])\s)"
)


@dataclass(frozen=True, slots=True)
class Unit:
    start: int
    end: int
    tokens: int


def load_tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def sentence_spans(text: str, base: int) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > start:
            yield base + start, base + match.start()
        start = match.end()
    if start < len(text):
        yield base + start, base + len(text.rstrip())


def chunk_id_for(doc_id: DocId, content_hash: str, occurrence: int) -> ChunkId:
    digest = hashlib.sha1(f"{doc_id}|{content_hash}|{occurrence}".encode()).hexdigest()
    return ChunkId(digest[:20])


class Splitter:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap_tokens: int) -> None:
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def split(self, doc: ParsedDocument, doc_id: DocId) -> list[Chunk]:
        spans: list[tuple[tuple[str, ...], int, int]] = []
        for section in doc.sections:
            path = self._fit_heading(section.heading_path)
            budget = self.max_tokens - _SPECIAL_TOKENS - self._count(self._heading_text(path))
            spans.extend((path, s, e) for s, e in self._pack(doc.text, section, budget))
        return self._to_chunks(doc, doc_id, spans)

    def _count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    @staticmethod
    def _heading_text(path: tuple[str, ...]) -> str:
        return SECTION_SEPARATOR.join(path) + "\n" if path else ""

    def _fit_heading(self, path: tuple[str, ...]) -> tuple[str, ...]:
        # A pathological heading path must not eat the budget: keep its deepest part.
        while len(path) > 1 and self._count(self._heading_text(path)) > self.max_tokens // 4:
            path = path[1:]
        return path

    def _units(self, text: str, section: Section, budget: int) -> list[Unit]:
        spans = list(sentence_spans(text[section.start : section.end], section.start))
        encodings = self._tokenizer.encode_batch(
            [text[s:e] for s, e in spans], add_special_tokens=False
        )
        units: list[Unit] = []
        for (start, end), encoding in zip(spans, encodings, strict=True):
            if len(encoding.ids) <= budget:
                units.append(Unit(start, end, len(encoding.ids)))
                continue
            offsets = encoding.offsets
            # Windows one piece short of the budget: a word cut mid-piece re-tokenises longer.
            step = max(1, budget - 1)
            for first in range(0, len(offsets), step):
                last = min(first + step, len(offsets)) - 1
                units.append(
                    Unit(start + offsets[first][0], start + offsets[last][1], last - first + 1)
                )
        return units

    def _pack(self, text: str, section: Section, budget: int) -> Iterator[tuple[int, int]]:
        current: list[Unit] = []
        used = 0
        for unit in self._units(text, section, budget):
            if current and used + unit.tokens > budget:
                yield current[0].start, current[-1].end
                current, used = self._overlap(current, unit, budget)
            current.append(unit)
            used += unit.tokens
        if current:
            yield current[0].start, current[-1].end

    def _overlap(self, previous: list[Unit], incoming: Unit, budget: int) -> tuple[list[Unit], int]:
        carried: list[Unit] = []
        used = 0
        for unit in reversed(previous[1:]):
            if (
                used + unit.tokens > self.overlap_tokens
                or used + unit.tokens + incoming.tokens > budget
            ):
                break
            carried.insert(0, unit)
            used += unit.tokens
        return carried, used

    def _to_chunks(
        self, doc: ParsedDocument, doc_id: DocId, spans: list[tuple[tuple[str, ...], int, int]]
    ) -> list[Chunk]:
        texts = [doc.text[s:e] for _, s, e in spans]
        embed_texts = [
            self._heading_text(path) + text for (path, _, _), text in zip(spans, texts, strict=True)
        ]
        counts = [
            len(e.ids) for e in self._tokenizer.encode_batch(embed_texts, add_special_tokens=True)
        ]
        seen: dict[str, int] = {}
        chunks: list[Chunk] = []
        for ordinal, ((path, start, end), text, embed_text, count) in enumerate(
            zip(spans, texts, embed_texts, counts, strict=True)
        ):
            content_hash = hashlib.sha256(embed_text.encode()).hexdigest()[:32]
            occurrence = seen.get(content_hash, 0)
            seen[content_hash] = occurrence + 1
            chunks.append(
                Chunk(
                    chunk_id=chunk_id_for(doc_id, content_hash, occurrence),
                    doc_id=doc_id,
                    ordinal=ordinal,
                    text=text,
                    section=path,
                    start=start,
                    end=end,
                    token_count=count,
                    content_hash=content_hash,
                )
            )
        return chunks
