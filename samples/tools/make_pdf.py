"""Render the Aurora X14 manual source (Markdown subset) to a PDF with fpdf2.

Usage (from the repository root):

    /tmp/probe-venv/bin/python samples/tools/make_pdf.py

Reads  samples/tools/aurora-x14-laptop.md
Writes samples/support/manuals/aurora-x14-laptop.pdf

Rendering rules (the ingester detects headings by font size, so keep them):

- core font Helvetica only; text must be latin-1 (no em dashes, curly quotes)
- "# "   heading: 20 pt bold
- "## "  heading: 15 pt bold
- "### " heading: 12 pt bold
- body text: 10 pt regular, rendered with multi_cell
- "- " bullet lines: rendered as body text, keeping the "- " prefix
- footer on every page: 8 pt regular, "Aurora X14 User Manual - page N"

Supported source syntax: headings, paragraphs (one line each, separated by
blank lines), "- " bullets and "1. " numbered steps (both rendered as body
text lines). No inline formatting.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tools" / "aurora-x14-laptop.md"
TARGET = ROOT / "support" / "manuals" / "aurora-x14-laptop.pdf"

FONT = "Helvetica"
HEADING_SIZES = {1: 20, 2: 15, 3: 12}
BODY_SIZE = 10
FOOTER_SIZE = 8
FOOTER_TEXT = "Aurora X14 User Manual - page {n}"

BODY_LINE_H = 5.0
BULLET_INDENT = 4.0


class ManualPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", FOOTER_SIZE)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, FOOTER_TEXT.format(n=self.page_no()), align="C")
        self.set_text_color(0, 0, 0)


def parse(text: str) -> list[tuple[str, object]]:
    """Return a list of blocks: ("h", (level, text)), ("p", text), ("li", text)."""
    blocks: list[tuple[str, object]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("#"):
            marks, _, title = line.partition(" ")
            level = len(marks)
            if set(marks) != {"#"} or level not in HEADING_SIZES:
                raise ValueError(f"unsupported heading: {line!r}")
            blocks.append(("h", (level, title.strip())))
        elif line.startswith("- "):
            blocks.append(("li", line))
        elif len(line) > 2 and line[0].isdigit() and ". " in line[:4]:
            blocks.append(("li", line))
        else:
            blocks.append(("p", line.strip()))
    return blocks


def render(blocks: list[tuple[str, object]]) -> ManualPDF:
    pdf = ManualPDF(format="Letter", unit="mm")
    pdf.set_margins(left=22, top=20, right=22)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title("Aurora X14 User Manual")
    pdf.set_author("Northwind Gear, Inc.")
    pdf.set_subject("User manual for the Aurora X14 laptop")
    pdf.set_creator("samples/tools/make_pdf.py")
    # Fixed date so that regenerating the PDF gives byte-identical output.
    pdf.set_creation_date(datetime(2025, 2, 3, tzinfo=timezone.utc))
    pdf.add_page()

    prev = None
    for kind, value in blocks:
        if kind == "h":
            level, title = value  # type: ignore[misc]
            size = HEADING_SIZES[level]
            # Start major sections on a fresh page once the document is under way,
            # and never leave a heading stranded at the bottom of a page.
            if level == 2 and pdf.get_y() > 200:
                pdf.add_page()
            elif pdf.get_y() > pdf.h - 45:
                pdf.add_page()
            space_before = {1: 0, 2: 7, 3: 4}[level]
            if prev is not None and pdf.get_y() > 25:
                pdf.ln(space_before)
            pdf.set_font(FONT, "B", size)
            pdf.multi_cell(0, size * 0.5, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln({1: 4, 2: 2.5, 3: 1.5}[level])
        elif kind == "p":
            if prev in ("p", "li"):
                pdf.ln(2)
            pdf.set_font(FONT, "", BODY_SIZE)
            pdf.multi_cell(0, BODY_LINE_H, str(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        elif kind == "li":
            if prev == "p":
                pdf.ln(1.5)
            pdf.set_font(FONT, "", BODY_SIZE)
            pdf.set_x(pdf.l_margin + BULLET_INDENT)
            pdf.multi_cell(
                pdf.epw - BULLET_INDENT, BODY_LINE_H, str(value),
                new_x=XPos.LMARGIN, new_y=YPos.NEXT,
            )
            pdf.ln(0.8)
        prev = kind
    return pdf


def main() -> int:
    text = SOURCE.read_text(encoding="utf-8")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        line_no = text.count("\n", 0, exc.start) + 1
        print(f"non latin-1 character {bad!r} on line {line_no} of {SOURCE}", file=sys.stderr)
        return 1
    pdf = render(parse(text))
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(TARGET))
    print(f"wrote {TARGET} ({pdf.page_no()} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
