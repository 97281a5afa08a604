"""Keyword ranking over the FTS5 index, with per-term statistics kept between queries.

BM25 is a sum over query terms: a chunk's score for "return laptop" is its score for
"return" plus its score for "laptop", each term weighted by its own idf. So a term's
contribution to every chunk that holds it (its scored postings) can be read from FTS5 once
and reused by every later query with that term, until the index changes. A query then
costs a few array additions instead of FTS5 re-scoring every matching chunk (about 1 µs a
posting, 5-15 ms for ordinary questions at 100k chunks). The ranking is FTS5's own `bm25()`:
only where it is computed changes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict

import numpy as np

from grounded.models import SearchFilter
from grounded.store.sqlite.query import filter_sql
from grounded.store.terms import query_terms

COMMON_SHARE = 0.35  # a term in more than this share of chunks is dropped from the query
MIN_CAP = 200
REMEMBERED_TERMS = 50_000
REMEMBERED_POSTINGS = 2_000_000  # scored postings kept in memory (16 bytes each)
REMEMBERED_FILTERS = 64  # filters (a tenant's collection, say) whose chunk keys are kept


def fts_or(terms: list[str]) -> str | None:
    """An FTS5 OR-query of these terms, each quoted so no operator syntax leaks in."""
    return " OR ".join(f'"{term}"' for term in terms) if terms else None


class Postings:
    """One term's scored postings: chunk keys and their BM25 contributions (higher is better)."""

    __slots__ = ("keys", "scores")

    def __init__(self, keys: np.ndarray, scores: np.ndarray) -> None:
        self.keys, self.scores = keys, scores


class KeywordStats:
    """Document counts and scored postings per term, valid for one state of the index.

    Every change to the indexed chunks is a row in `ann_log`, so its last sequence number
    says whether what is remembered still holds; any change forgets everything.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._counts: dict[str, int] = {}
        self._postings: OrderedDict[str, Postings] = OrderedDict()
        self._held = 0
        self._filters: dict[str, np.ndarray] = {}

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
        counts = self._current(conn)[0]
        for term in terms:
            if term not in counts:
                # FTS5 stores no per-term document count: walk the postings, up to the cap.
                counts[term] = conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? "
                    "LIMIT ?)",
                    (f'"{term}"', cap + 1),
                ).fetchone()[0]
        return [t for t in terms if 0 < counts[t] <= cap]

    def allowed(self, conn: sqlite3.Connection, where: SearchFilter) -> np.ndarray:
        """The sorted keys of the chunks `where` keeps (remembered: a tenant's collection is
        asked for on every one of its queries)."""
        name = json.dumps([where.collection, where.source_prefix, where.metadata], sort_keys=True)
        self._current(conn)
        keys = self._filters.get(name)
        if keys is None:
            condition, params = filter_sql(where)
            rows = conn.execute(
                "SELECT c.chunk_key FROM documents d JOIN chunks c ON c.doc_key = d.doc_key "
                f"WHERE {condition} ORDER BY c.chunk_key",
                params,
            ).fetchall()
            keys = np.array([key for (key,) in rows], dtype=np.int64)
            if len(self._filters) >= REMEMBERED_FILTERS:
                self._filters = {}
            self._filters[name] = keys
        return keys

    def ranked(
        self, conn: sqlite3.Connection, terms: list[str], k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The k best chunk keys for these terms (among `allowed`, if given) and their BM25
        scores, best first."""
        remembered = self._current(conn)[1]
        parts = [self._term_postings(conn, term, remembered) for term in dict.fromkeys(terms)]
        parts = [p for p in parts if len(p.keys)]
        if not parts:
            return []
        keys = np.concatenate([p.keys for p in parts])
        weights = np.concatenate([p.scores for p in parts])
        if int(keys.max()) < 4 * len(keys) + 65_536:  # keys are dense enough to index by
            totals = np.bincount(keys, weights=weights)
            touched = np.flatnonzero(totals)
            scores = totals[touched]
        else:  # keys spread thin (never reused, they grow with every rewrite)
            touched, where = np.unique(keys, return_inverse=True)
            scores = np.bincount(where, weights=weights)
        if allowed is not None:
            kept = np.isin(touched, allowed, assume_unique=True)
            touched, scores = touched[kept], scores[kept]
        if len(touched) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            touched, scores = touched[best], scores[best]
        order = np.lexsort((touched, -scores))  # ties by key, so results are repeatable
        return [(int(touched[i]), float(scores[i])) for i in order]

    def _term_postings(
        self, conn: sqlite3.Connection, term: str, remembered: OrderedDict[str, Postings]
    ) -> Postings:
        with self._lock:
            postings = remembered.get(term)
            if postings is not None:
                remembered.move_to_end(term)  # the least recently used go first
                return postings
        rows = conn.execute(
            "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?",
            (f'"{term}"',),
        ).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 2)
        postings = Postings(table[:, 0].astype(np.int64), table[:, 1].copy())
        with self._lock:
            # Read after `remembered`'s version, so never older than it; kept only while
            # that version is still the current one.
            if remembered is self._postings and term not in remembered:
                remembered[term] = postings
                self._held += len(postings.keys)
                while self._held > REMEMBERED_POSTINGS and len(remembered) > 1:
                    _, oldest = remembered.popitem(last=False)
                    self._held -= len(oldest.keys)
        return postings

    def _current(
        self, conn: sqlite3.Connection
    ) -> tuple[dict[str, int], OrderedDict[str, Postings]]:
        (version,) = conn.execute("SELECT coalesce(max(seq), 0) FROM ann_log").fetchone()
        with self._lock:
            if version != self._version or len(self._counts) > REMEMBERED_TERMS:
                # Fresh containers, not clear(): another reader may still be using the old.
                self._version, self._counts = version, {}
                self._postings, self._held = OrderedDict(), 0
                self._filters = {}
            return self._counts, self._postings
