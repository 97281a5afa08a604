"""SQL fragments built from user input. Values are always bound parameters, never spliced."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping

from grounded.errors import InputError
from grounded.models import SearchFilter
from grounded.store.terms import check_metadata_key, query_terms


def check_metadata_values(metadata: Mapping[str, object]) -> None:
    """JSON has no NaN or infinity: stored, json.dumps would write them anyway and every
    json_extract over that row would fail; as a filter value SQLite would bind NaN as NULL."""
    for key, value in metadata.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"metadata {key[:40]!r} is {value}; values must be finite numbers")


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
    check_metadata_values(where.metadata)
    for key, value in where.metadata.items():
        check_metadata_key(key)
        clauses.append("json_extract(d.metadata, ?) = ?")
        params.extend([f'$."{key}"', int(value) if isinstance(value, bool) else value])
    return " AND ".join(clauses), params


def is_unfiltered(where: SearchFilter) -> bool:
    return where.collection is None and not where.source_prefix and not where.metadata


def fts_or(terms: list[str]) -> str | None:
    """An FTS5 OR-query of these terms, each quoted so no operator syntax leaks in."""
    return " OR ".join(f'"{term}"' for term in terms) if terms else None


COMMON_SHARE = 0.35  # a term in more than this share of chunks is dropped from the query
MIN_CAP = 200


def selective_terms(conn: sqlite3.Connection, text: str, total: int) -> list[str]:
    """The question's terms minus those in a large share of all chunks.

    BM25 gives such terms almost no weight, but FTS5 must score every chunk that contains
    any query term, so one common word costs more than all the rare ones together. When
    every term is common, keyword search has nothing to rank by and returns nothing: the
    dense half of hybrid search answers alone.
    """
    terms = query_terms(text)
    cap = max(MIN_CAP, int(total * COMMON_SHARE))
    if len(terms) <= 1 or total <= cap:
        return terms
    frequency = {
        term: conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
            (f'"{term}"', cap + 1),
        ).fetchone()[0]
        for term in terms
    }
    return [t for t in terms if 0 < frequency[t] <= cap]
