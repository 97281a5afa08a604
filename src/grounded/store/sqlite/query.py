"""SQL fragments built from user input. Values are always bound parameters, never spliced."""

from __future__ import annotations

import re

from grounded.errors import InputError
from grounded.models import SearchFilter

_METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TERM = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
MAX_TERMS = 32


def filter_sql(where: SearchFilter, documents_only: bool = False) -> tuple[str, list[object]]:
    """A condition over aliases ``c`` (chunks) and ``d`` (documents), and its parameters.

    With `documents_only` the condition names only ``d`` (copies are then not excluded).
    """
    clauses = ["1"] if documents_only else ["c.duplicate_of IS NULL"]
    params: list[object] = []
    if where.collection is not None:
        clauses.append("d.collection = ?")
        params.append(where.collection)
    if where.source_prefix:
        clauses.append("substr(d.source, 1, ?) = ?")
        params.extend([len(where.source_prefix), where.source_prefix])
    for key, value in where.metadata.items():
        if not _METADATA_KEY.match(key):
            raise InputError(f"metadata filter key {key[:40]!r} must match [A-Za-z0-9_-]{{1,64}}")
        clauses.append("json_extract(d.metadata, ?) = ?")
        params.extend([f'$."{key}"', int(value) if isinstance(value, bool) else value])
    return " AND ".join(clauses), params


def is_unfiltered(where: SearchFilter) -> bool:
    return where.collection is None and not where.source_prefix and not where.metadata


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the question's terms, each quoted so no operator syntax leaks in."""
    terms = [t.lower() for t in _TERM.findall(text)]
    kept = [t for t in terms if t not in _STOPWORDS] or terms
    unique = list(dict.fromkeys(kept))[:MAX_TERMS]
    if not unique:
        return None
    return " OR ".join(f'"{term}"' for term in unique)
