"""SQL fragments built from user input. Values are always bound parameters, never spliced."""

from __future__ import annotations

import math
import sqlite3
import threading
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
REMEMBERED_TERMS = 50_000


class TermCounts:
    """How many chunks hold each query term, remembered until the keyword index changes.

    FTS5 stores no per-term document count, so telling a common word from a rare one means
    walking its postings (about 2 ms for a word in a third of 100k chunks), and the same
    common words come back query after query. Every change to the indexed chunks is a row
    in `ann_log`, so its last sequence number says whether the counts still hold.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._counts: dict[str, int] = {}

    def selective(self, conn: sqlite3.Connection, text: str, total: int) -> list[str]:
        """The question's terms minus those in a large share of all chunks.

        BM25 gives such terms almost no weight, but FTS5 must score every chunk that
        contains any query term, so one common word costs more than all the rare ones
        together. When every term is common, keyword search has nothing to rank by and
        returns nothing: the dense half of hybrid search answers alone.
        """
        terms = query_terms(text)
        cap = max(MIN_CAP, int(total * COMMON_SHARE))
        if len(terms) <= 1 or total <= cap:
            return terms
        counts = self._current(conn)
        for term in terms:
            if term not in counts:
                counts[term] = conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? "
                    "LIMIT ?)",
                    (f'"{term}"', cap + 1),
                ).fetchone()[0]
        return [t for t in terms if 0 < counts[t] <= cap]

    def _current(self, conn: sqlite3.Connection) -> dict[str, int]:
        (version,) = conn.execute("SELECT coalesce(max(seq), 0) FROM ann_log").fetchone()
        with self._lock:
            if version != self._version or len(self._counts) > REMEMBERED_TERMS:
                # A fresh dict, not clear(): another reader may still be filling the old one.
                self._version, self._counts = version, {}
            return self._counts
