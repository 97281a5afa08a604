"""`Store` on one SQLite file plus a usearch vector index, both under the data directory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounded.errors import ConfigError, StoreError
from grounded.models import Chunk, Document, EmbeddedChunk, Hit, SearchFilter
from grounded.store.protocol import DuplicateRecord, Scored, Signature, StoreStats
from grounded.store.sqlite.ann import VectorIndex
from grounded.store.sqlite.database import Database, snapshot
from grounded.store.sqlite.keywords import KeywordStats
from grounded.store.sqlite.query import check_metadata_values, filter_sql, is_unfiltered
from grounded.store.sqlite.writes import remove_document, replace_document
from grounded.types import ChunkId, DocId, Matrix, Vector

# Chunks looked up by key, then their documents. CROSS JOIN fixes that order: given a
# collection condition, SQLite's planner otherwise walks every chunk of the collection
# and tests it against the key list (4-12 ms instead of 0.1 at 100k chunks).
_KEYS_FIRST = "chunks c CROSS JOIN documents d ON d.doc_key = c.doc_key"

_DOC_COLUMNS = (
    "d.doc_id, d.collection, d.source, d.uri, d.title, d.format, d.content_hash, "
    "d.ingested_at, d.chunk_count, d.metadata"
)
_HIT_COLUMNS = (
    "c.chunk_id, c.ordinal, c.text, c.section, c.start_char, c.end_char, c.token_count, "
    "c.content_hash, d.doc_id, d.source, d.title, d.collection, d.metadata"
)


def _document(row: Sequence[Any]) -> Document:
    return Document(
        doc_id=DocId(str(row[0])),
        collection=str(row[1]),
        source=str(row[2]),
        uri=str(row[3]),
        title=str(row[4]),
        format=str(row[5]),
        content_hash=str(row[6]),
        ingested_at=float(row[7]),
        chunk_count=int(row[8]),
        metadata=json.loads(str(row[9])),
    )


def _hit(row: Sequence[Any]) -> Hit:
    chunk = Chunk(
        chunk_id=ChunkId(str(row[0])),
        doc_id=DocId(str(row[8])),
        ordinal=int(row[1]),
        text=str(row[2]),
        section=tuple(json.loads(str(row[3]))),
        start=int(row[4]),
        end=int(row[5]),
        token_count=int(row[6]),
        content_hash=str(row[7]),
    )
    return Hit(
        chunk=chunk,
        source=str(row[9]),
        title=str(row[10]),
        collection=str(row[11]),
        score=0.0,
        metadata=json.loads(str(row[12])),
    )


def _ids_of(conn: sqlite3.Connection, keys: Sequence[int], where: SearchFilter) -> dict[int, str]:
    """Chunk ids by chunk key, for the keys whose chunks `where` keeps."""
    if not keys:
        return {}
    condition, params = filter_sql(where)
    marks = ",".join("?" * len(keys))
    sql = (
        f"SELECT c.chunk_key, c.chunk_id FROM {_KEYS_FIRST} "
        f"WHERE c.chunk_key IN ({marks}) AND {condition}"
    )
    return dict(conn.execute(sql, [*keys, *params]).fetchall())


class SqliteStore:
    def __init__(
        self, data_dir: Path, expansion_search: int = 128, exact_below: int = 2000
    ) -> None:
        self._dir = data_dir
        self._db = Database(data_dir / "grounded.db")
        self._expansion_search = expansion_search
        self._exact_below = exact_below
        self._vectors: VectorIndex | None = None
        self._opened_watermark = 0
        self._keywords = KeywordStats()

    # -- embedder binding and the vector index ---------------------------------------------

    async def bind_embedder(self, name: str, dimension: int) -> None:
        def bind(conn: sqlite3.Connection) -> tuple[str, int]:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('embedder', ?)", (name,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(dimension),))
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            return rows["embedder"], int(rows["dimension"])

        bound_name, bound_dim = await self._db.write(bind)
        if (bound_name, bound_dim) != (name, dimension):
            raise ConfigError(
                f"this index was built with embedder {bound_name!r} ({bound_dim} dims), not "
                f"{name!r} ({dimension} dims); use that embedder or a new data directory"
            )
        if self._vectors is None:
            vectors = VectorIndex(self._dir / "vectors", dimension, self._expansion_search)
            await self._db.on_writer(vectors.open)
            self._vectors, self._opened_watermark = vectors, vectors.watermark

    def _index(self) -> VectorIndex:
        if self._vectors is None:
            raise StoreError("bind_embedder() must be called before dense search")
        return self._vectors

    # -- documents ---------------------------------------------------------------------------

    async def get_document(self, doc_id: DocId) -> Document | None:
        sql = f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.doc_id = ?"
        row = await self._db.read(lambda c: c.execute(sql, (doc_id,)).fetchone())
        return _document(row) if row else None

    async def find_document(self, collection: str, source: str) -> Document | None:
        sql = f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.collection = ? AND d.source = ?"
        row = await self._db.read(lambda c: c.execute(sql, (collection, source)).fetchone())
        return _document(row) if row else None

    async def list_documents(
        self,
        collection: str | None = None,
        source_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Document]:
        where, params = filter_sql(
            SearchFilter(collection=collection, source_prefix=source_prefix), documents_only=True
        )
        sql = (
            f"SELECT {_DOC_COLUMNS} FROM documents d WHERE {where} "
            "ORDER BY d.source LIMIT ? OFFSET ?"
        )
        rows = await self._db.read(lambda c: c.execute(sql, [*params, limit, offset]).fetchall())
        return [_document(r) for r in rows]

    async def signatures(self, collection: str) -> list[Signature]:
        sql = "SELECT doc_id, source, content_hash, minhash FROM documents WHERE collection = ?"
        rows = await self._db.read(lambda c: c.execute(sql, (collection,)).fetchall())
        return [Signature(DocId(r[0]), r[1], r[2], r[3]) for r in rows]

    async def vectors_by_hash(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        def read(conn: sqlite3.Connection) -> dict[str, Vector]:
            found: dict[str, Vector] = {}
            unique = list(dict.fromkeys(content_hashes))
            for start in range(0, len(unique), 500):
                batch = unique[start : start + 500]
                marks = ",".join("?" * len(batch))
                sql = f"SELECT content_hash, vector FROM chunks WHERE content_hash IN ({marks})"
                for hash_, blob in conn.execute(sql, batch):
                    found[hash_] = np.frombuffer(blob, dtype=np.float32)
            return found

        return await self._db.read(read)

    async def document_chunks(self, doc_id: DocId) -> list[EmbeddedChunk]:
        sql = (
            f"SELECT {_HIT_COLUMNS}, c.vector, c.duplicate_of FROM chunks c "
            "JOIN documents d ON d.doc_key = c.doc_key WHERE d.doc_id = ? ORDER BY c.ordinal"
        )
        rows = await self._db.read(lambda c: c.execute(sql, (doc_id,)).fetchall())
        return [
            EmbeddedChunk(
                _hit(r).chunk, np.frombuffer(r[13], dtype=np.float32).copy(), duplicate_of=r[14]
            )
            for r in rows
        ]

    # -- writes ------------------------------------------------------------------------------

    async def write_document(
        self, document: Document, chunks: Sequence[EmbeddedChunk], minhash: bytes | None
    ) -> None:
        check_metadata_values(document.metadata)
        await self._db.write(lambda conn: replace_document(conn, document, chunks, minhash))
        await self._sync_vectors()

    async def delete_document(self, doc_id: DocId) -> bool:
        removed = await self._db.write(lambda conn: remove_document(conn, doc_id))
        await self._sync_vectors()
        return removed

    async def _sync_vectors(self) -> None:
        if self._vectors is not None:
            await self._db.on_writer(self._vectors.catch_up)

    async def record_duplicate(self, record: DuplicateRecord) -> None:
        await self._db.write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO duplicates VALUES (?,?,?,?,?)",
                (
                    record.collection,
                    record.source,
                    record.duplicate_of,
                    record.kind,
                    record.detected_at,
                ),
            )
        )

    async def clear_duplicate(self, collection: str, source: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                "DELETE FROM duplicates WHERE collection = ? AND source = ?", (collection, source)
            )
        )

    async def duplicates(self, collection: str | None = None) -> list[DuplicateRecord]:
        sql = (
            "SELECT x.collection, x.source, x.duplicate_of, coalesce(d.source, '?'), x.kind, "
            "x.detected_at FROM duplicates x LEFT JOIN documents d ON d.doc_id = x.duplicate_of "
            "WHERE ? IS NULL OR x.collection = ? ORDER BY x.source"
        )
        rows = await self._db.read(lambda c: c.execute(sql, (collection, collection)).fetchall())
        return [DuplicateRecord(r[0], r[1], DocId(r[2]), r[3], r[4], r[5]) for r in rows]

    # -- search ------------------------------------------------------------------------------

    async def _caught_up(self) -> VectorIndex:
        index = self._index()
        # Another process (an ingest beside a server) may have committed since we last looked.
        await self._db.read(index.catch_up)
        return index

    async def similar_chunks(
        self, vectors: Matrix, collection: str, exclude_doc: DocId, threshold: float
    ) -> list[ChunkId | None]:
        index = await self._caught_up()
        keys, scores = index.search_many(np.asarray(vectors, dtype=np.float32), 4)

        def pick(conn: sqlite3.Connection) -> list[ChunkId | None]:
            out: list[ChunkId | None] = []
            for row_keys, row_scores in zip(keys, scores, strict=True):
                found = None
                for key, score in zip(row_keys, row_scores, strict=True):
                    if score < threshold:
                        break
                    row = conn.execute(
                        "SELECT c.chunk_id FROM chunks c JOIN documents d ON d.doc_key = c.doc_key "
                        "WHERE c.chunk_key = ? AND d.collection = ? AND d.doc_id != ?",
                        (int(key), collection, exclude_doc),
                    ).fetchone()
                    if row:
                        found = ChunkId(row[0])
                        break
                out.append(found)
            return out

        return await self._db.read(pick)

    async def _covers_everything(self, where: SearchFilter) -> bool:
        """A filter on the only collection there is (the usual single-collection install).

        Only a hint for skipping the pre-filter: another collection may be created the
        moment after this read, so searches still apply `where` when keys become ids.
        """
        if where.collection is None or where.source_prefix or where.metadata:
            return is_unfiltered(where)
        other = await self._db.read(
            lambda c: c.execute(
                "SELECT EXISTS (SELECT 1 FROM documents WHERE collection != ?)",
                (where.collection,),
            ).fetchone()
        )
        return not other[0]

    async def dense_search(self, vector: Vector, k: int, where: SearchFilter) -> list[Scored]:
        index = await self._caught_up()
        query = np.asarray(vector, dtype=np.float32)
        if await self._covers_everything(where):
            # No pre-filter, but `where` still decides which keys become ids.
            return await self._graph_search(index, query, k, where, k)
        # Every filter is a property of documents, so resolve it on the (small) documents
        # table first and reach chunks through their document index.
        condition, params = filter_sql(where, documents_only=True)
        docs = await self._db.read(
            lambda c: c.execute(
                f"SELECT d.doc_key, d.chunk_count FROM documents d WHERE {condition}", params
            ).fetchall()
        )
        matching = sum(count for _, count in docs)
        if matching == 0:
            return []
        if matching >= len(index):
            # The filter keeps everything (one collection, say): search as if unfiltered.
            return await self._graph_search(index, query, k, where, k)
        if matching <= self._exact_below:
            doc_keys = [key for key, _ in docs]

            def subset_of(conn: sqlite3.Connection) -> list[int]:
                keys: list[int] = []
                for start in range(0, len(doc_keys), 500):
                    batch = doc_keys[start : start + 500]
                    marks = ",".join("?" * len(batch))
                    keys.extend(
                        r[0]
                        for r in conn.execute(
                            f"SELECT chunk_key FROM chunks WHERE doc_key IN ({marks}) "
                            "AND duplicate_of IS NULL",
                            batch,
                        )
                    )
                return keys

            keys, scores = index.exact(query, await self._db.read(subset_of), k)
            return await self._ids_for(keys, scores, where, k)
        # A broad filter: over-fetch from the graph in proportion to what the filter keeps.
        count = min(len(index), k * max(2, 2 * len(index) // matching))
        return await self._graph_search(index, query, k, where, count)

    async def _graph_search(
        self, index: VectorIndex, query: Vector, k: int, where: SearchFilter, count: int
    ) -> list[Scored]:
        """The graph's nearest `count`, filtered, widened until k pass or the graph is spent."""
        while True:
            keys, scores = index.search(query, count)
            found = await self._ids_for(keys, scores, where, k)
            if len(found) >= k or count >= len(index):
                return found
            count = min(len(index), count * 4)

    async def _ids_for(
        self, keys: np.ndarray, scores: np.ndarray, where: SearchFilter, k: int
    ) -> list[Scored]:
        wanted = [int(key) for key in keys]
        rows = await self._db.read(lambda c: _ids_of(c, wanted, where))
        ranked = [
            Scored(ChunkId(rows[key]), float(s))
            for key, s in zip(wanted, scores, strict=True)
            if key in rows
        ]
        return ranked[:k]

    async def keyword_search(self, query: str, k: int, where: SearchFilter) -> list[Scored]:
        total = len(self._vectors) if self._vectors is not None else 0
        covers = await self._covers_everything(where)
        keywords = self._keywords

        def search(conn: sqlite3.Connection) -> list[Scored]:
            with snapshot(conn):
                terms = keywords.selective(conn, query, total)
                if not terms:
                    return []
                allowed = None if covers else keywords.allowed(conn, where)
                ranked = keywords.ranked(conn, terms, k, allowed)
                ids = _ids_of(conn, [key for key, _ in ranked], where)
                if allowed is None and len(ids) < len(ranked) == k:
                    # A collection created since `covers` was read: rank among the filter's
                    # chunks, or the top k would come up short.
                    ranked = keywords.ranked(conn, terms, k, keywords.allowed(conn, where))
                    ids = _ids_of(conn, [key for key, _ in ranked], where)
                return [Scored(ChunkId(ids[key]), s) for key, s in ranked if key in ids]

        return await self._db.read(search)

    async def hits(self, chunk_ids: Sequence[ChunkId]) -> dict[ChunkId, Hit]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        sql = (
            f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.doc_key = c.doc_key "
            f"WHERE c.chunk_id IN ({marks})"
        )
        rows = await self._db.read(lambda c: c.execute(sql, list(chunk_ids)).fetchall())
        return {ChunkId(r[0]): _hit(r) for r in rows}

    # -- housekeeping ------------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        def read(conn: sqlite3.Connection) -> StoreStats:
            def one(sql: str) -> int:
                return int(conn.execute(sql).fetchone()[0])

            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            size = sum(p.stat().st_size for p in self._dir.rglob("*") if p.is_file())
            return StoreStats(
                documents=one("SELECT count(*) FROM documents"),
                chunks=one("SELECT count(*) FROM chunks"),
                indexed_chunks=one("SELECT count(*) FROM chunks WHERE duplicate_of IS NULL"),
                duplicate_chunks=one("SELECT count(*) FROM chunks WHERE duplicate_of IS NOT NULL"),
                duplicate_documents=one("SELECT count(*) FROM duplicates"),
                collections=dict(
                    conn.execute(
                        "SELECT collection, count(*) FROM documents GROUP BY collection"
                    ).fetchall()
                ),
                embedder=meta.get("embedder"),
                dimension=int(meta["dimension"]) if "dimension" in meta else None,
                size_bytes=size,
            )

        return await self._db.read(read)

    async def check(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> tuple[list[str], set[int], int | None]:
            problems = [
                f"document {doc_id} records {expected} chunks but has {actual}"
                for doc_id, expected, actual in conn.execute(
                    "SELECT d.doc_id, d.chunk_count, count(c.chunk_key) FROM documents d "
                    "LEFT JOIN chunks c ON c.doc_key = d.doc_key GROUP BY d.doc_key "
                    "HAVING count(c.chunk_key) != d.chunk_count"
                )
            ]
            keys = {
                k
                for (k,) in conn.execute("SELECT chunk_key FROM chunks WHERE duplicate_of IS NULL")
            }
            fts = {k for (k,) in conn.execute("SELECT rowid FROM chunks_fts")}
            if fts != keys:
                problems.append(f"keyword index holds {len(fts)} chunks, expected {len(keys)}")
            row = conn.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
            return problems, keys, int(row[0]) if row else None

        problems, keys, dimension = await self._db.read(read)
        if dimension is not None:
            if self._vectors is None:
                vectors = VectorIndex(self._dir / "vectors", dimension, self._expansion_search)
                await self._db.on_writer(vectors.open)
                self._vectors, self._opened_watermark = vectors, vectors.watermark
            index = await self._caught_up()
            if index.keys() != keys:
                problems.append(f"vector index holds {len(index)} chunks, expected {len(keys)}")
        return problems

    async def close(self) -> None:
        if self._vectors is not None and self._vectors.watermark != self._opened_watermark:
            await self._db.on_writer(lambda _c: self._vectors.save() if self._vectors else None)
        self._db.close()
