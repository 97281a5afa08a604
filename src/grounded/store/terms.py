"""Keyword-query terms and filter keys, shared by every store backend.

Terms are runs of word characters only, so whatever a backend builds from them (an FTS5
MATCH string, a tsquery) can hold no operator syntax from the user's text.
"""

from __future__ import annotations

import re

from grounded.errors import InputError

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


def query_terms(text: str) -> list[str]:
    """Lower-cased distinct terms of a question, stop words dropped unless nothing else is left."""
    terms = [t.lower() for t in _TERM.findall(text)]
    kept = [t for t in terms if t not in _STOPWORDS] or terms
    return list(dict.fromkeys(kept))[:MAX_TERMS]


def check_metadata_key(key: str) -> None:
    if not _METADATA_KEY.match(key):
        raise InputError(f"metadata filter key {key[:40]!r} must match [A-Za-z0-9_-]{{1,64}}")
