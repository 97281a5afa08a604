"""PDF via pdfplumber: headings found by font size, running headers and footers dropped.

PDFs carry no structure, only glyphs with sizes. The body size is the size most characters
have; larger lines are headings, levelled by size; smaller lines and lines repeated on most
pages (page numbers, running titles) are page furniture, not content.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

from grounded.errors import LoadError
from grounded.ingest.loaders.text import title_from_source
from grounded.ingest.structure import Block, assemble, body, first_heading, heading
from grounded.models import ParsedDocument

_DIGITS = re.compile(r"\d+")
_BULLET = re.compile(r"^([-•▪◦*]|\d+[.)])\s")


@dataclass(frozen=True, slots=True)
class Line:
    page: int
    top: float
    bottom: float
    size: float
    text: str
    margin: bool  # in the top or bottom 8% of the page, where running heads live


def _lines_of_page(page: object, page_no: int) -> list[Line]:
    words = page.extract_words(extra_attrs=["size"], keep_blank_chars=False, use_text_flow=True)  # type: ignore[attr-defined]
    height = float(page.height)  # type: ignore[attr-defined]
    lines: list[Line] = []
    current: list[dict[str, object]] = []
    for word in words:
        if current and abs(float(word["top"]) - float(current[-1]["top"])) > 2.0:  # type: ignore[arg-type]
            lines.append(_make_line(current, page_no, height))
            current = []
        current.append(word)
    if current:
        lines.append(_make_line(current, page_no, height))
    return lines


def _make_line(words: list[dict[str, object]], page_no: int, height: float) -> Line:
    size = max(round(float(w["size"]), 1) for w in words)  # type: ignore[arg-type]
    top = min(float(w["top"]) for w in words)  # type: ignore[arg-type]
    bottom = max(float(w["bottom"]) for w in words)  # type: ignore[arg-type]
    return Line(
        page=page_no,
        top=top,
        bottom=bottom,
        size=size,
        text=" ".join(str(w["text"]) for w in words),
        margin=bottom < height * 0.08 or top > height * 0.92,
    )


def _furniture(lines: list[Line], pages: int, body_size: float) -> set[str]:
    """Margin lines (digits ignored) that repeat on at least half the pages of a 3+ page file.

    Lines set larger than the body are headings, even at the top of every page.
    """
    if pages < 3:
        return set()
    margins = {(ln.page, ln.text) for ln in lines if ln.margin and ln.size <= body_size}
    per_page = Counter(_DIGITS.sub("#", text) for _, text in margins)
    return {text for text, count in per_page.items() if count >= max(3, pages // 2)}


def lines_to_blocks(lines: list[Line], pages: int) -> list[Block]:
    sizes = Counter[float]()
    for line in lines:
        sizes[line.size] += len(line.text)
    if not sizes:
        return []
    body_size = sizes.most_common(1)[0][0]
    heading_sizes = sorted({ln.size for ln in lines if ln.size >= body_size + 1.0}, reverse=True)
    level_of = {size: min(i + 1, 6) for i, size in enumerate(heading_sizes)}
    furniture = _furniture(lines, pages, body_size)
    blocks: list[Block] = []
    paragraph: list[str] = []
    previous: Line | None = None

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(body(_join_lines(paragraph)))
            paragraph.clear()

    for line in lines:
        if line.size < body_size - 1.0 or (
            line.margin and line.size <= body_size and _DIGITS.sub("#", line.text) in furniture
        ):
            continue
        if line.size in level_of:
            end_paragraph()
            if (
                blocks
                and blocks[-1].level == level_of[line.size]
                and previous is not None
                and previous.size == line.size
                and line.top - previous.bottom < line.size
            ):
                blocks[-1] = heading(f"{blocks[-1].text} {line.text}", blocks[-1].level)
            else:
                blocks.append(heading(line.text, level_of[line.size]))
        else:
            gap = line.top - previous.bottom if previous and previous.page == line.page else 0.0
            if gap > line.size * 0.9 or _BULLET.match(line.text):
                end_paragraph()
            paragraph.append(line.text)
        previous = line
    end_paragraph()
    return blocks


def _join_lines(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        # Re-join words hyphenated across a line break ("instal-" + "lation").
        text = text[:-1] + line if text.endswith("-") and line[:1].islower() else f"{text} {line}"
    return text


class PdfLoader:
    suffixes = (".pdf",)

    def load(self, data: bytes, source: str, uri: str) -> list[ParsedDocument]:
        if not data.strip():
            raise LoadError("empty file")
        if not data.lstrip().startswith(b"%PDF"):
            raise LoadError("not a PDF file (no %PDF header)")
        lines, pages, meta_title = _read_pdf(data)
        blocks = lines_to_blocks(lines, pages)
        text, sections = assemble(blocks)
        if not sections:
            raise LoadError("PDF has no extractable text (scanned images need OCR first)")
        title = meta_title or first_heading(blocks) or title_from_source(source)
        return [
            ParsedDocument(
                source=source,
                uri=uri,
                title=title,
                format="pdf",
                text=text,
                sections=sections,
                metadata={"pages": pages},
            )
        ]


def _read_pdf(data: bytes) -> tuple[list[Line], int, str]:
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            lines: list[Line] = []
            for number, page in enumerate(pdf.pages, start=1):
                lines.extend(_lines_of_page(page, number))
            title = str((pdf.metadata or {}).get("Title") or "").strip()
            return lines, len(pdf.pages), title
    except (PDFSyntaxError, PSException, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from exc
    except Exception as exc:
        # pdfminer raises assorted internal errors on damaged files; none is ours to fix.
        raise LoadError(f"corrupt or unreadable PDF ({type(exc).__name__}): {exc}") from exc
