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


class Postings:
    """One term's scored postings: chunk keys and their BM25 contributions (higher is better)."""

    __slots__ = ("keys", "scores")

    def __init__(self, keys: np.ndarray, scores: np.ndarray) -> None:
        self.keys, self.scores = keys, scores


class _Memory:
    """What is known about one version of the index. Replaced whole, never cleared, so a
    reader still working on an older version can only ever write into that version's."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.counts: dict[str, tuple[int, int]] = {}  # term -> (count up to cap + 1, cap)
        self.postings: OrderedDict[str, Postings] = OrderedDict()
        self.filters: dict[str, np.ndarray] = {}
        self.held = 0  # postings and filter keys held, against REMEMBERED_POSTINGS


class KeywordStats:
    """Document counts, scored postings and filter keys, valid for one state of the index.

    Every change to the indexed chunks is a row in `ann_log`, so its last sequence number
    says whether what is remembered still holds; any change forgets everything. Callers
    read inside one transaction, so the version and the data come from one snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory = _Memory(-1)

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
        memory = self._current(conn)
        counts = {term: self._count(conn, memory, term, cap) for term in terms}
        return [t for t in terms if 0 < counts[t] <= cap]

    def _count(self, conn: sqlite3.Connection, memory: _Memory, term: str, cap: int) -> int:
        known = memory.counts.get(term)
        # A count that reached its cap says only "more than that cap": good for this cap
        # if it is no larger (the total, hence the cap, can grow within one version).
        if known is not None and (known[0] <= known[1] or cap <= known[1]):
            return known[0]
        # FTS5 stores no per-term document count: walk the postings, up to the cap.
        (count,) = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
            (f'"{term}"', cap + 1),
        ).fetchone()
        if len(memory.counts) < REMEMBERED_TERMS:
            memory.counts[term] = (count, cap)
        return int(count)

    def allowed(self, conn: sqlite3.Connection, where: SearchFilter) -> np.ndarray:
        """The sorted keys of the chunks `where` keeps (remembered: a tenant's collection is
        asked for on every one of its queries)."""
        name = json.dumps([where.collection, where.source_prefix, where.metadata], sort_keys=True)
        memory = self._current(conn)
        keys = memory.filters.get(name)
        if keys is None:
            condition, params = filter_sql(where)
            rows = conn.execute(
                "SELECT c.chunk_key FROM documents d JOIN chunks c ON c.doc_key = d.doc_key "
                f"WHERE {condition} ORDER BY c.chunk_key",
                params,
            ).fetchall()
            keys = np.array([key for (key,) in rows], dtype=np.int64)
            with self._lock:
                if len(memory.filters) >= REMEMBERED_FILTERS:
                    memory.held -= sum(len(k) for k in memory.filters.values())
                    memory.filters.clear()
                memory.filters[name] = keys
                memory.held += len(keys)
                self._within_bounds(memory)
        return keys

    def ranked(
        self, conn: sqlite3.Connection, terms: list[str], k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The k best chunk keys for these terms (among `allowed`, if given) and their BM25
        scores, best first; equal scores in key order."""
        memory = self._current(conn)
        parts = [self._term_postings(conn, memory, term) for term in dict.fromkeys(terms)]
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
            # Everything at least as good as the k-th score, ties included, so that the
            # cut below is by key among equals rather than arbitrary.
            kth = -np.partition(-scores, k - 1)[k - 1]
            best = scores >= kth
            touched, scores = touched[best], scores[best]
        order = np.lexsort((touched, -scores))[:k]
        return [(int(touched[i]), float(scores[i])) for i in order]

    def _term_postings(self, conn: sqlite3.Connection, memory: _Memory, term: str) -> Postings:
        with self._lock:
            postings = memory.postings.get(term)
            if postings is not None:
                memory.postings.move_to_end(term)  # the least recently used go first
                return postings
        rows = conn.execute(
            "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?",
            (f'"{term}"',),
        ).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 2)
        postings = Postings(table[:, 0].astype(np.int64), table[:, 1].copy())
        with self._lock:
            if term not in memory.postings:
                memory.postings[term] = postings
                memory.held += max(1, len(postings.keys))  # a word with no match costs too
                self._within_bounds(memory)
        return postings

    def _within_bounds(self, memory: _Memory) -> None:
        """Drop the least recently used postings, then filter keys, until under the bound."""
        while memory.held > REMEMBERED_POSTINGS and len(memory.postings) > 1:
            _, oldest = memory.postings.popitem(last=False)
            memory.held -= max(1, len(oldest.keys))
        if memory.held > REMEMBERED_POSTINGS and memory.filters:
            memory.held -= sum(len(k) for k in memory.filters.values())
            memory.filters.clear()

    def _current(self, conn: sqlite3.Connection) -> _Memory:
        (version,) = conn.execute("SELECT coalesce(max(seq), 0) FROM ann_log").fetchone()
        with self._lock:
            if version > self._memory.version:
                self._memory = _Memory(version)
            elif version < self._memory.version:
                # A snapshot older than what others already see: work from scratch and
                # keep nothing, rather than take the newer version's memory or replace it.
                return _Memory(version)
            return self._memory
