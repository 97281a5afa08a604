"""HTML via selectolax (lexbor): keep the main content and its headings, drop the chrome.

Navigation, headers, footers, cookie banners, tables of contents and scripts are removed
before any text is read; the content root is <main>, else <article>, else <body>.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from grounded.errors import LoadError
from grounded.ingest.loaders._decode import decode_utf8
from grounded.ingest.loaders.text import title_from_source
from grounded.ingest.structure import Block, assemble, body, first_heading, heading
from grounded.models import ParsedDocument

_DROP_TAGS = (
    "script, style, noscript, template, nav, header, footer, aside, form, iframe, svg, "
    "button, select, dialog, [role=navigation], [role=banner], [role=contentinfo], "
    "[aria-hidden=true], [hidden]"
)
# Class names are a site's own description of an element, so a boilerplate word anywhere in
# them counts. Ids also name content anchors ("SQL-FOR-UPDATE-SHARE"), so an id must be
# nothing but such a word.
_BOILERPLATE_CLASS = re.compile(
    r"(^|[\s_-])(nav\w*|navbar|menu|breadcrumbs?|cookie\w*|consent|banner|sidebar|footer|header|"
    r"toc|skip|share|social|advert\w*|promo|newsletter)($|[\s_-])",
    re.IGNORECASE,
)
_BOILERPLATE_ID = re.compile(
    r"^(site[_-])?(nav|navbar|navigation|menu|breadcrumbs?|cookies?|cookie[_-](banner|notice)|"
    r"consent|sidebar|footer|header|banner|toc)$",
    re.IGNORECASE,
)
# Admonition titles ("Note", "Tip") are labels of a box, not sections of the page.
_ADMONITIONS = {"note", "notes", "tip", "tips", "caution", "warning", "important", "hint"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LEAF_BLOCKS = {
    "p",
    "li",
    "pre",
    "blockquote",
    "dt",
    "dd",
    "figcaption",
    "caption",
    "address",
    "div",
    "section",
    "article",
    "main",
    "body",
    "td",
    "th",
    "summary",
    "details",
}
_BLOCK_TAGS = {
    *_LEAF_BLOCKS,
    *_HEADINGS,
    "tr",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "ul",
    "ol",
    "dl",
}
_BLOCK_SELECTOR = ", ".join(sorted(_BLOCK_TAGS))


def _is_boilerplate(node: LexborNode) -> bool:
    attrs = node.attributes
    classes, element_id = attrs.get("class") or "", (attrs.get("id") or "").strip()
    return bool(_BOILERPLATE_CLASS.search(classes)) or bool(_BOILERPLATE_ID.match(element_id))


def strip_chrome(root: LexborNode) -> None:
    for node in root.css(_DROP_TAGS):
        node.decompose()
    for node in root.css("[class], [id]"):
        if node.parent is not None and _is_boilerplate(node) and node.tag not in ("body", "html"):
            node.decompose()


def _has_block_descendant(node: LexborNode) -> bool:
    # css_first matches the node itself too, so ask each child rather than the node.
    return any(child.css_first(_BLOCK_SELECTOR) is not None for child in node.iter())


def _text(node: LexborNode) -> str:
    return node.text(deep=True, separator=" ", strip=False)


def walk(node: LexborNode, blocks: list[Block]) -> None:
    tag = node.tag
    if tag in _HEADINGS:
        text = _text(node)
        if " ".join(text.split()).lower().rstrip(":") in _ADMONITIONS:
            blocks.append(body(" ".join(text.split()) + ":"))
        else:
            blocks.append(heading(text, _HEADINGS[tag]))
    elif tag == "tr":
        cells = [" ".join(_text(c).split()) for c in node.iter() if c.tag in ("td", "th")]
        blocks.append(body(" | ".join(c for c in cells if c)))
    elif tag in _LEAF_BLOCKS and not _has_block_descendant(node):
        text = _text(node)
        blocks.append(body(f"- {text}" if tag == "li" else text))
    else:
        inline: list[str] = []
        for child in node.iter(include_text=True):
            if child.tag not in _BLOCK_TAGS and not _has_block_descendant(child):
                inline.append(child.text(deep=True, separator=" ") or "")
                continue
            if "".join(inline).strip():
                blocks.append(body("".join(inline)))
            inline.clear()
            walk(child, blocks)
        if "".join(inline).strip():
            blocks.append(body("".join(inline)))


def content_root(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in ("main", "[role=main]", "article"):
        node = tree.css_first(selector)
        if node is not None and node.text(strip=True):
            return node
    return tree.body


def _rooted(blocks: list[Block], page_title: str) -> list[Block]:
    """Give a page without an <h1> its <title> as the root of every heading path.

    Manuals often set the page name in an <h2> beside "Synopsis" and "Parameters"; without a
    root those sections would not say which page they belong to.
    """
    if not page_title or any(b.level == 1 for b in blocks):
        return blocks
    first = next((i for i, b in enumerate(blocks) if b.level), None)
    if first is not None and " ".join(blocks[first].text.split()) == page_title:
        blocks = blocks[:first] + blocks[first + 1 :]
    return [heading(page_title, 1), *blocks]


class HtmlLoader:
    suffixes = (".html", ".htm", ".xhtml")

    def load(self, data: bytes, source: str, uri: str) -> list[ParsedDocument]:
        return [parse_html(decode_utf8(data), source, uri)]


def parse_html(raw: str, source: str, uri: str) -> ParsedDocument:
    tree = LexborHTMLParser(raw)
    title_node = tree.css_first("title")
    page_title = " ".join(title_node.text().split()) if title_node else ""
    root = content_root(tree)
    if root is None:
        raise LoadError("HTML has no body")
    strip_chrome(root)
    blocks: list[Block] = []
    walk(root, blocks)
    blocks = _rooted(blocks, page_title)
    text, sections = assemble(blocks)
    if not sections:
        raise LoadError("no text in the HTML after removing navigation and scripts")
    title = first_heading(blocks) or page_title or title_from_source(source)
    return ParsedDocument(
        source=source,
        uri=uri,
        title=title,
        format="html",
        text=text,
        sections=sections,
    )
