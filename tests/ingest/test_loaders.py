"""Every supported format yields clean text with heading paths; bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fpdf import FPDF

from grounded.errors import LoadError
from grounded.ingest.loaders import load_file

MB = 1_000_000


def sections(path: Path) -> dict[str, str]:
    doc = load_file(path, path.name, 50 * MB).documents[0]
    return {" > ".join(s.heading_path): s.text for s in doc.sections}


def test_markdown_headings_lists_tables_and_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "returns.md"
    path.write_text(
        "---\ntitle: Returns\nproduct: laptop\n---\n"
        "# Returns\n\nIntro with **bold** and a [link](x).\n\n"
        "## Electronics\n\n### Laptops\n\n- 30 days\n- 15% fee if opened\n\n"
        "| Category | Days |\n|---|---|\n| Phones | 14 |\n\n```\ncode block\n```\n",
        encoding="utf-8",
    )
    doc = load_file(path, "returns.md", MB).documents[0]
    found = {" > ".join(s.heading_path): s.text for s in doc.sections}
    assert found["Returns"] == "Intro with bold and a link."
    laptops = found["Returns > Electronics > Laptops"]
    assert "- 30 days" in laptops and "Category | Days" in laptops and "Phones | 14" in laptops
    assert "code block" in laptops
    assert doc.title == "Returns" and doc.metadata == {"title": "Returns", "product": "laptop"}
    for section in doc.sections:
        assert doc.text[section.start : section.end] == section.text


def test_html_drops_navigation_cookie_banners_and_footers(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Shipping | Shop</title><style>p{}</style></head><body>"
        "<header><a href='/'>Home</a><a>Account</a></header><nav>Shop / Help / Shipping</nav>"
        "<div class='cookie-banner'>We use cookies</div>"
        "<main><h1>Shipping</h1><p>We ship &amp; deliver.</p><h2>Express</h2>"
        "<ul><li>1&ndash;2 business days</li></ul>"
        "<table><tr><th>Zone</th><th>Days</th></tr><tr><td>EU</td><td>7</td></tr></table>"
        "<script>track()</script></main><footer>&copy; 2026 Shop</footer></body></html>",
        encoding="utf-8",
    )
    doc = load_file(path, "page.html", MB).documents[0]
    assert doc.title == "Shipping"
    for junk in ("Home", "cookies", "2026", "track", "Shop / Help"):
        assert junk not in doc.text
    found = {" > ".join(s.heading_path): s.text for s in doc.sections}
    assert found["Shipping"] == "We ship & deliver."
    assert found["Shipping > Express"] == "- 1–2 business days\n\nZone | Days\n\nEU | 7"


def make_pdf(path: Path, pages: int = 3) -> None:
    pdf = FPDF()
    pdf.set_auto_page_break(auto=True, margin=20)
    for page in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 20)
        pdf.multi_cell(0, 10, f"Chapter {page}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, "Battery and charging", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(
            0,
            5,
            "The battery holds 72 Wh. It charges to 80% in 45 minutes with the 65 W adapter.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(4)
        pdf.multi_cell(0, 5, "A second paragraph about care.", new_x="LMARGIN", new_y="NEXT")
        pdf.set_auto_page_break(auto=False)
        pdf.set_y(-15)
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 5, f"User Manual - page {page}")
        pdf.set_auto_page_break(auto=True, margin=20)
    pdf.output(str(path))


def test_pdf_headings_by_font_size_and_page_furniture_removed(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    make_pdf(path)
    doc = load_file(path, "manual.pdf", MB).documents[0]
    found = {" > ".join(s.heading_path): s.text for s in doc.sections}
    assert "Chapter 2 > Battery and charging" in found
    text = found["Chapter 2 > Battery and charging"]
    assert "72 Wh" in text and "80% in 45 minutes" in text
    assert "\n\n" in text, "paragraph break kept"
    assert "page 2" not in doc.text and "User Manual" not in doc.text
    assert doc.metadata["pages"] == 3


def test_jsonl_loads_good_records_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    lines = [
        json.dumps(
            {"id": "q1", "title": "Refunds", "text": "Refunds take 5-7 days.", "lang": "en"}
        ),
        "{not json",
        json.dumps(
            {
                "id": "q3",
                "text": "# Warranty\n\nTwo years.",
                "format": "markdown",
                "metadata": {"product": "laptop"},
            }
        ),
        json.dumps({"id": "q4", "text": ""}),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    loaded = load_file(path, "faq.jsonl", MB)
    assert [d.source for d in loaded.documents] == ["faq.jsonl#q1", "faq.jsonl#q3"]
    assert loaded.documents[0].metadata["lang"] == "en"
    assert loaded.documents[1].sections[0].heading_path == ("Warranty",)
    assert loaded.documents[1].metadata["product"] == "laptop"
    reasons = dict(loaded.failures)
    assert "invalid JSON" in reasons["faq.jsonl#2"]
    assert "no non-empty 'text'" in reasons["faq.jsonl#q4"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"   \n\n  ", "empty file"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary file"),
        ("latin1.md", "Café crème".encode("latin-1"), "not valid UTF-8"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "PDF"),
        ("fake.pdf", b"hello, not a pdf", "not a PDF"),
        ("image.png", b"\x89PNG", "unsupported file type"),
    ],
)
def test_bad_files_fail_with_a_plain_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(path, name, MB)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(LoadError, match="over the"):
        load_file(path, "big.txt", 100)


def test_unicode_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_text(
        "The ﬁle is ＡＢＣ\u00a0\u00a0spaced\ttabs.\r\n\r\n\r\n\r\nNext.", encoding="utf-8"
    )
    doc = load_file(path, "u.txt", MB).documents[0]
    assert doc.text == "The file is ABC spaced tabs.\n\nNext."


def test_html_reference_page_is_rooted_at_its_title_and_boxes_are_not_sections(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sql-select.html"
    path.write_text(
        "<html><head><title>SELECT</title></head><body><div class='navheader'>Prev Up</div>"
        "<div class='refnamediv'><h2>SELECT</h2><p>retrieve rows</p></div>"
        "<div class='refsect1'><h2>Parameters</h2>"
        "<div class='refsect2' id='SQL-FOR-UPDATE-SHARE'><h3>The Locking Clause</h3>"
        "<p>FOR UPDATE locks rows.</p><div class='note'><h3 class='title'>Note</h3>"
        "<p>Avoid locking too much.</p></div><p>More about locking.</p></div></div>"
        "</body></html>",
        encoding="utf-8",
    )
    found = sections(path)
    assert found["SELECT"] == "retrieve rows"
    locking = found["SELECT > Parameters > The Locking Clause"]
    assert (
        locking
        == "FOR UPDATE locks rows.\n\nNote:\n\nAvoid locking too much.\n\nMore about locking."
    )
    assert not any("Note" in path for path in found)
