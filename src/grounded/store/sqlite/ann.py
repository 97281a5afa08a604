"""The dense index: a usearch HNSW graph kept in step with SQLite through `ann_log`.

SQLite commits first; the graph is a cache of it. A snapshot file carries in its name the
last log sequence it contains (``vectors.<seq>.usearch``), written to a temporary name and
renamed, so a crash leaves the previous snapshot intact. On open, and before each search,
the graph replays the log rows past its sequence, which is also how a server sees what
another process ingested. If the log was trimmed past the snapshot, the graph is rebuilt
from the vectors in SQLite.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# onnxruntime must be loaded before usearch: usearch's extension links its own static C++
# runtime, and importing onnxruntime after it segfaults (the other order is fine).
import onnxruntime  # noqa: F401
from usearch.index import Index

from grounded.types import Matrix

log = logging.getLogger(__name__)
_SNAPSHOT = re.compile(r"^vectors\.(\d+)\.usearch$")


class VectorIndex:
    def __init__(self, directory: Path, dimension: int, expansion_search: int) -> None:
        self._directory = directory
        self._dimension = dimension
        self._expansion_search = expansion_search
        self._lock = threading.RLock()
        self._index = self._new_index()
        self.watermark = 0

    def _new_index(self) -> Index:
        # f16 halves memory and disk against f32 at equal recall (docs/ann.md); SQLite keeps
        # the exact float32 vectors.
        return Index(
            ndim=self._dimension,
            metric="cos",
            dtype="f16",
            connectivity=16,
            expansion_add=128,
            expansion_search=self._expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> set[int]:
        with self._lock:
            return {int(k) for k in np.asarray(self._index.keys)}

    def open(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            for seq, path in self._snapshots():
                try:
                    index = self._new_index()
                    # load() into an index built here keeps our search breadth, which the file
                    # does not store (Index.restore would reset it to the library default).
                    index.load(str(path))
                except (RuntimeError, ValueError, OSError) as exc:
                    log.warning(
                        "vector snapshot %s unreadable (%s); trying an older one", path, exc
                    )
                    continue
                if index.ndim == self._dimension:
                    self._index, self.watermark = index, seq
                    break
            self.catch_up(conn)

    def _snapshots(self) -> list[tuple[int, Path]]:
        found = []
        for path in self._directory.glob("vectors.*.usearch"):
            match = _SNAPSHOT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def catch_up(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            # Two statements: SQLite answers a lone min() or max() from the index, but scans
            # the whole log when both share one SELECT — that scan was on every search.
            last = conn.execute("SELECT max(seq) FROM ann_log").fetchone()[0]
            if last is None or last <= self.watermark:
                return
            first = conn.execute("SELECT min(seq) FROM ann_log").fetchone()[0]
            if first is not None and first > self.watermark + 1 and self.watermark > 0:
                self._rebuild(conn)
                return
            changes = conn.execute(
                "SELECT seq, chunk_key, op FROM ann_log WHERE seq > ? ORDER BY seq",
                (self.watermark,),
            ).fetchall()
            if changes:
                self._replay(conn, changes)
                # Rows may have landed between the two queries; trust what was read.
                self.watermark = changes[-1][0]

    def _replay(self, conn: sqlite3.Connection, changes: Sequence[tuple[int, int, int]]) -> None:
        # Net effect per key in log order: only the last operation on a key matters.
        final: dict[int, int] = {}
        for _, key, op in changes:
            final[key] = op
        removed = [k for k, op in final.items() if op < 0 and self._index.contains(k)]
        if removed:
            self._index.remove(removed)
        added = [k for k, op in final.items() if op > 0]
        for start in range(0, len(added), 10000):
            batch = added[start : start + 10000]
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                f"SELECT chunk_key, vector FROM chunks WHERE chunk_key IN ({marks}) "
                "AND duplicate_of IS NULL",
                batch,
            ).fetchall()
            self._add_rows(rows)

    def _add_rows(self, rows: Sequence[tuple[int, bytes]]) -> None:
        rows = [r for r in rows if not self._index.contains(r[0])]
        if rows:
            keys = np.array([r[0] for r in rows], dtype=np.uint64)
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            # One thread: concurrent inserts can leave nodes unreachable (usearch #735), and
            # the embedder, not the graph, limits ingestion anyway.
            self._index.add(keys, vectors, threads=1)

    def _rebuild(self, conn: sqlite3.Connection) -> None:
        log.info("rebuilding the vector index from SQLite")
        self._index = self._new_index()
        cursor = conn.execute(
            "SELECT chunk_key, vector FROM chunks WHERE duplicate_of IS NULL ORDER BY chunk_key"
        )
        while rows := cursor.fetchmany(10000):
            self._add_rows(rows)
        self.watermark = conn.execute("SELECT coalesce(max(seq), 0) FROM ann_log").fetchone()[0]

    def save(self) -> Path:
        """Snapshot to disk; the rename makes it appear whole or not at all."""
        with self._lock:
            self._directory.mkdir(parents=True, exist_ok=True)
            final = self._directory / f"vectors.{self.watermark}.usearch"
            if final.exists():
                return final
            temporary = final.with_suffix(".tmp")
            self._index.save(str(temporary))
            temporary.replace(final)
            for seq, path in self._snapshots():
                if seq != self.watermark:
                    path.unlink(missing_ok=True)
            return final

    def search(self, vector: Matrix, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and cosine similarities, best first."""
        with self._lock:
            if len(self._index) == 0:
                return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
            matches = self._index.search(vector, min(count, len(self._index)), threads=1)
        # A single query returns Matches, trimmed to what was found.
        return np.asarray(matches.keys), 1.0 - np.asarray(matches.distances, dtype=np.float32)

    def search_many(self, vectors: Matrix, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query row: keys and similarities; rows with fewer results pad with -inf."""
        with self._lock:
            if len(self._index) == 0 or len(vectors) == 0:
                shape = (len(vectors), 0)
                return np.empty(shape, dtype=np.uint64), np.empty(shape, dtype=np.float32)
            matches = self._index.search(vectors, min(count, len(self._index)), threads=1)
        keys = np.asarray(matches.keys).reshape(len(vectors), -1)
        scores = (1.0 - np.asarray(matches.distances, dtype=np.float32)).reshape(len(vectors), -1)
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]])).reshape(-1, 1)
        scores[np.arange(keys.shape[1])[None, :] >= counts] = -np.inf
        return keys, scores

    def exact(
        self, vector: Matrix, keys: Sequence[int], count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over a subset, for filters that leave few chunks."""
        wanted = np.asarray(keys, dtype=np.uint64)
        with self._lock:
            if len(wanted) == 0 or len(self._index) == 0:
                return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
            present = wanted[np.asarray(self._index.contains(wanted), dtype=bool)]
            if len(present) == 0:
                return present, np.empty(0, dtype=np.float32)
            # get() hands back one array per key; fine for the small subsets sent here.
            vectors = self._index.get(present, dtype="f32")
            rows = list(vectors) if isinstance(vectors, tuple) else [vectors]
            matrix = np.vstack([r for r in rows if r is not None]).astype(np.float32, copy=False)
        scores = matrix @ vector
        top = np.argpartition(-scores, min(count, len(scores) - 1))[:count]
        top = top[np.argsort(-scores[top])]
        return present[top], scores[top]
