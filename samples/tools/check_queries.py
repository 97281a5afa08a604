"""Check that every labelled (source, section) in samples/queries.jsonl exists.

Usage (from the repository root):

    /tmp/probe-venv/bin/python samples/tools/check_queries.py          # check
    /tmp/probe-venv/bin/python samples/tools/check_queries.py --list   # print all heading paths

Heading paths are built independently of the Grounded ingester:

- Markdown (.md): ATX/setext headings found by markdown-it-py.
- HTML (.html): h1, h2 and h3 elements inside <main>, in document order.
- PDF (.pdf): text lines whose font is bold at 20 pt ("#"), 15 pt ("##") or
  12 pt ("###"), per the rendering rules in make_pdf.py.

A section path is the heading texts from the top-level heading down to the
heading in question, joined with " > ".
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from markdown_it import MarkdownIt
from selectolax.lexbor import LexborHTMLParser as HTMLParser
import pdfplumber

SAMPLES = Path(__file__).resolve().parents[1]
SUPPORT = SAMPLES / "support"
QUERIES = SAMPLES / "queries.jsonl"

PDF_HEADING_SIZES = {20: 1, 15: 2, 12: 3}
SEP = " > "


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _paths(headings: list[tuple[int, str]]) -> list[str]:
    """Turn (level, text) headings in document order into section paths."""
    stack: list[tuple[int, str]] = []
    out: list[str] = []
    for level, text in headings:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        out.append(SEP.join(t for _, t in stack))
    return out


def markdown_headings(path: Path) -> list[tuple[int, str]]:
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(path.read_text(encoding="utf-8"))
    result = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            inline = tokens[i + 1]
            text = "".join(
                child.content for child in (inline.children or [])
                if child.type in ("text", "code_inline", "softbreak")
            ) or inline.content
            result.append((level, _norm(text)))
    return result


def html_headings(path: Path) -> list[tuple[int, str]]:
    tree = HTMLParser(path.read_text(encoding="utf-8"))
    main = tree.css_first("main")
    if main is None:
        raise ValueError(f"{path}: no <main> element")
    result = []
    for node in main.css("h1, h2, h3"):
        result.append((int(node.tag[1]), _norm(node.text(deep=True))))
    return result


def pdf_headings(path: Path) -> list[tuple[int, str]]:
    result: list[tuple[int, str]] = []
    prev_was_heading_level = None
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            for line in page.extract_text_lines(return_chars=True, strip=True):
                chars = [c for c in line["chars"] if c["text"].strip()]
                if not chars:
                    continue
                size = round(chars[0]["size"])
                bold = all("Bold" in c["fontname"] for c in chars)
                uniform = all(round(c["size"]) == size for c in chars)
                level = PDF_HEADING_SIZES.get(size) if (bold and uniform) else None
                if level is None:
                    prev_was_heading_level = None
                    continue
                text = _norm(line["text"])
                if prev_was_heading_level == level and result:
                    # A long heading wrapped onto a second line.
                    result[-1] = (level, result[-1][1] + " " + text)
                else:
                    result.append((level, text))
                prev_was_heading_level = level
    return result


def collect() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for path in sorted(SUPPORT.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(SUPPORT).as_posix()
        suffix = path.suffix.lower()
        if suffix == ".md":
            heads = markdown_headings(path)
        elif suffix in (".html", ".htm"):
            heads = html_headings(path)
        elif suffix == ".pdf":
            heads = pdf_headings(path)
        else:
            continue
        sections[rel] = _paths(heads)
    return sections


def main(argv: list[str]) -> int:
    sections = collect()
    problems: list[str] = []

    for rel, paths in sections.items():
        if not paths:
            problems.append(f"{rel}: no headings found")
            continue
        tops = [p for p in paths if SEP not in p]
        if len(tops) != 1:
            problems.append(f"{rel}: expected exactly one top-level heading, found {len(tops)}")
        for dup, n in Counter(paths).items():
            if n > 1:
                problems.append(f"{rel}: duplicate section path {dup!r} ({n}x)")

    if "--list" in argv:
        for rel, paths in sections.items():
            print(f"== {rel} ({len(paths)} sections)")
            for p in paths:
                print("   " + p)
        print()

    valid = {rel: set(paths) for rel, paths in sections.items()}
    n_queries = 0
    used_sources: Counter[str] = Counter()
    seen_queries: set[str] = set()
    for line_no, raw in enumerate(QUERIES.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        n_queries += 1
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"queries.jsonl:{line_no}: invalid JSON ({exc})")
            continue
        query = obj.get("query")
        relevant = obj.get("relevant")
        if not isinstance(query, str) or not query.strip():
            problems.append(f"queries.jsonl:{line_no}: missing query text")
        elif query.strip().lower() in seen_queries:
            problems.append(f"queries.jsonl:{line_no}: duplicate query {query!r}")
        else:
            seen_queries.add(query.strip().lower())
        if not isinstance(relevant, list) or not relevant:
            problems.append(f"queries.jsonl:{line_no}: 'relevant' must be a non-empty list")
            continue
        for item in relevant:
            source = item.get("source")
            section = item.get("section")
            if source not in valid:
                problems.append(f"queries.jsonl:{line_no}: unknown source {source!r}")
                continue
            used_sources[source] += 1
            if section not in valid[source]:
                close = [p for p in valid[source] if section and p.split(SEP)[-1] == section.split(SEP)[-1]]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"queries.jsonl:{line_no}: section {section!r} not found in {source}{hint}"
                )

    total_sections = sum(len(p) for p in sections.values())
    print(f"sources: {len(sections)}, sections: {total_sections}, queries: {n_queries}")
    unused = sorted(set(sections) - set(used_sources))
    if unused:
        print("sources without any labelled query: " + ", ".join(unused))
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print("OK: every labelled section exists")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
