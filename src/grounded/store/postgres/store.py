"""`Store` on PostgreSQL: pgvector HNSW for dense search, tsvector + GIN for keyword search.

The database is the only state, so any number of processes (servers, ingests) share one
index and see each other's commits at once. A document write is one transaction under an
advisory lock on its id: concurrent writers of one document queue up, readers see the old
version or the new one, and a killed writer leaves the old one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from grounded.errors import ConfigError
from grounded.models import Chunk, Document, EmbeddedChunk, Hit, SearchFilter
from grounded.settings import PostgresSettings
from grounded.store.postgres.filters import filter_sql, metadata_json
from grounded.store.postgres.keyword import RANKED_SQL, any_of, selective_lexemes
from grounded.store.postgres.pool import LazyPool
from grounded.store.protocol import DuplicateRecord, Scored, Signature, StoreStats
from grounded.types import ChunkId, DocId, Matrix, Vector

Connection = psycopg.AsyncConnection[Any]
MAX_HNSW_DIMENSION = 2000  # pgvector's limit for an HNSW index on `vector`

_DOC_COLUMNS = (
    "d.doc_id, d.collection, d.source, d.uri, d.title, d.format, d.content_hash, "
    "d.ingested_at, d.chunk_count, d.metadata"
)
_HIT_COLUMNS = (
    "c.chunk_id, c.ordinal, c.body, c.section, c.start_char, c.end_char, c.token_count, "
    "c.content_hash, d.doc_id, d.source, d.title, d.collection, d.metadata"
)
_CHUNK_COPY = (
    "COPY chunks (chunk_id, doc_key, collection, ordinal, body, section, heading_path, "
    "start_char, end_char, token_count, content_hash, embedding, duplicate_of) FROM STDIN"
)


def _document(row: Sequence[Any]) -> Document:
    return Document(
        doc_id=DocId(row[0]),
        collection=row[1],
        source=row[2],
        uri=row[3],
        title=row[4],
        format=row[5],
        content_hash=row[6],
        ingested_at=float(row[7]),
        chunk_count=int(row[8]),
        metadata=dict(row[9]),
    )


def _hit(row: Sequence[Any]) -> Hit:
    chunk = Chunk(
        chunk_id=ChunkId(row[0]),
        doc_id=DocId(row[8]),
        ordinal=int(row[1]),
        text=row[2],
        section=tuple(row[3]),
        start=int(row[4]),
        end=int(row[5]),
        token_count=int(row[6]),
        content_hash=row[7],
    )
    return Hit(
        chunk=chunk,
        source=row[9],
        title=row[10],
        collection=row[11],
        score=0.0,
        metadata=dict(row[12]),
    )


def _as_vector(value: Any) -> Vector:
    to_numpy = getattr(value, "to_numpy", None)  # pgvector's Vector wrapper
    return np.asarray(to_numpy() if to_numpy else value, dtype=np.float32)


class PostgresStore:
    def __init__(self, url: str, settings: PostgresSettings | None = None) -> None:
        self._settings = settings or PostgresSettings()
        self._pool = LazyPool(url, self._settings, self._configure)
        self._connection = self._pool.connection

    # -- connections ------------------------------------------------------------------------

    async def _configure(self, conn: Connection) -> None:
        settings = self._settings
        await conn.execute(
            sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(settings.ef_search))
        )
        # Filtered searches keep walking the graph until k rows pass the filter (pgvector 0.8).
        await conn.execute("SET hnsw.iterative_scan = relaxed_order")

    # -- embedder binding -------------------------------------------------------------------

    async def bind_embedder(self, name: str, dimension: int) -> None:
        if dimension > MAX_HNSW_DIMENSION:
            raise ConfigError(
                f"pgvector indexes at most {MAX_HNSW_DIMENSION} dimensions; {name!r} has "
                f"{dimension}"
            )
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('meta', 0))")
            await conn.execute(
                "INSERT INTO meta VALUES ('embedder', %s), ('dimension', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (name, str(dimension)),
            )
            rows = dict(await (await conn.execute("SELECT key, value FROM meta")).fetchall())
            bound = (rows["embedder"], int(rows["dimension"]))
            if bound == (name, dimension):
                await self._ensure_vector_index(conn, dimension)
        if bound != (name, dimension):
            raise ConfigError(
                f"this index was built with embedder {bound[0]!r} ({bound[1]} dims), not "
                f"{name!r} ({dimension} dims); use that embedder or another schema"
            )

    async def _ensure_vector_index(self, conn: Connection, dimension: int) -> None:
        row = await (
            await conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass "
                "AND attname = 'embedding'"
            )
        ).fetchone()
        if row is not None and row[0] == -1:
            await conn.execute(
                sql.SQL("ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({})").format(
                    sql.Literal(dimension)
                )
            )
        exists = await (await conn.execute("SELECT to_regclass('chunks_embedding')")).fetchone()
        if exists is None or exists[0] is None:
            await conn.execute(
                sql.SQL(
                    "CREATE INDEX chunks_embedding ON chunks USING hnsw "
                    "(embedding vector_cosine_ops) WITH (m = {}, ef_construction = {}) "
                    "WHERE duplicate_of IS NULL"
                ).format(
                    sql.Literal(self._settings.hnsw_m),
                    sql.Literal(self._settings.hnsw_ef_construction),
                )
            )

    # -- documents ---------------------------------------------------------------------------

    async def _rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            return await (await conn.execute(query.encode(), params)).fetchall()

    async def _execute(self, query: str, params: Sequence[object] = ()) -> None:
        async with self._connection() as conn:
            await conn.execute(query.encode(), params)

    async def get_document(self, doc_id: DocId) -> Document | None:
        rows = await self._rows(
            f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.doc_id = %s", [doc_id]
        )
        return _document(rows[0]) if rows else None

    async def find_document(self, collection: str, source: str) -> Document | None:
        rows = await self._rows(
            f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.collection = %s AND d.source = %s",
            [collection, source],
        )
        return _document(rows[0]) if rows else None

    async def list_documents(
        self,
        collection: str | None = None,
        source_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Document]:
        rows = await self._rows(
            f"SELECT {_DOC_COLUMNS} FROM documents d "
            "WHERE (%s::text IS NULL OR d.collection = %s) "
            "AND (%s::text IS NULL OR starts_with(d.source, %s)) "
            "ORDER BY d.source LIMIT %s OFFSET %s",
            [collection, collection, source_prefix or None, source_prefix or None, limit, offset],
        )
        return [_document(r) for r in rows]

    async def signatures(self, collection: str) -> list[Signature]:
        rows = await self._rows(
            "SELECT doc_id, source, content_hash, minhash FROM documents WHERE collection = %s",
            [collection],
        )
        return [Signature(DocId(r[0]), r[1], r[2], bytes(r[3]) if r[3] else None) for r in rows]

    async def vectors_by_hash(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        if not content_hashes:
            return {}
        rows = await self._rows(
            "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM chunks "
            "WHERE content_hash = ANY(%s)",
            [list(dict.fromkeys(content_hashes))],
        )
        return {hash_: _as_vector(vector) for hash_, vector in rows}

    async def document_chunks(self, doc_id: DocId) -> list[EmbeddedChunk]:
        rows = await self._rows(
            f"SELECT {_HIT_COLUMNS}, c.embedding, c.duplicate_of FROM chunks c "
            "JOIN documents d ON d.doc_key = c.doc_key WHERE d.doc_id = %s ORDER BY c.ordinal",
            [doc_id],
        )
        return [EmbeddedChunk(_hit(r).chunk, _as_vector(r[13]), duplicate_of=r[14]) for r in rows]

    # -- writes ------------------------------------------------------------------------------

    async def write_document(
        self, document: Document, chunks: Sequence[EmbeddedChunk], minhash: bytes | None
    ) -> None:
        metadata = metadata_json(document.metadata)  # refused before any lock is taken
        async with self._connection() as conn, conn.transaction():
            await _lock_document(conn, document.doc_id)
            await _remove(conn, document.doc_id)
            row = await (
                await conn.execute(
                    "INSERT INTO documents (doc_id, collection, source, uri, title, format, "
                    "content_hash, ingested_at, chunk_count, metadata, minhash) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING doc_key",
                    (
                        document.doc_id,
                        document.collection,
                        document.source,
                        document.uri,
                        document.title,
                        document.format,
                        document.content_hash,
                        document.ingested_at,
                        document.chunk_count,
                        metadata,
                        minhash,
                    ),
                )
            ).fetchone()
            assert row is not None
            async with conn.cursor().copy(_CHUNK_COPY) as copy:
                for e in chunks:
                    await copy.write_row(_chunk_row(e, row[0], document.collection))

    async def delete_document(self, doc_id: DocId) -> bool:
        async with self._connection() as conn, conn.transaction():
            await _lock_document(conn, doc_id)
            return await _remove(conn, doc_id)

    async def record_duplicate(self, record: DuplicateRecord) -> None:
        await self._execute(
            "INSERT INTO duplicates VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection, source) "
            "DO UPDATE SET duplicate_of = excluded.duplicate_of, kind = excluded.kind, "
            "detected_at = excluded.detected_at",
            [
                record.collection,
                record.source,
                record.duplicate_of,
                record.kind,
                record.detected_at,
            ],
        )

    async def clear_duplicate(self, collection: str, source: str) -> None:
        await self._execute(
            "DELETE FROM duplicates WHERE collection = %s AND source = %s",
            [collection, source],
        )

    async def duplicates(self, collection: str | None = None) -> list[DuplicateRecord]:
        rows = await self._rows(
            "SELECT x.collection, x.source, x.duplicate_of, coalesce(d.source, '?'), x.kind, "
            "x.detected_at FROM duplicates x LEFT JOIN documents d ON d.doc_id = x.duplicate_of "
            "WHERE %s::text IS NULL OR x.collection = %s ORDER BY x.source",
            [collection, collection],
        )
        return [DuplicateRecord(r[0], r[1], DocId(r[2]), r[3], r[4], r[5]) for r in rows]

    # -- search ------------------------------------------------------------------------------

    async def similar_chunks(
        self, vectors: Matrix, collection: str, exclude_doc: DocId, threshold: float
    ) -> list[ChunkId | None]:
        found: list[ChunkId | None] = []
        async with self._connection() as conn:
            for vector in np.asarray(vectors, dtype=np.float32):
                row = await (
                    await conn.execute(
                        "SELECT c.chunk_id, c.embedding <=> %s AS distance FROM chunks c "
                        "WHERE c.duplicate_of IS NULL AND c.collection = %s AND c.doc_key "
                        "IS DISTINCT FROM (SELECT doc_key FROM documents WHERE doc_id = %s) "
                        "ORDER BY distance LIMIT 1",
                        (vector, collection, exclude_doc),
                    )
                ).fetchone()
                close = row is not None and 1.0 - float(row[1]) >= threshold
                found.append(ChunkId(row[0]) if close and row is not None else None)
        return found

    async def dense_search(self, vector: Vector, k: int, where: SearchFilter) -> list[Scored]:
        join, condition, params = filter_sql(where)
        rows = await self._rows(
            f"SELECT c.chunk_id, c.embedding <=> %s AS distance FROM chunks c {join} "
            f"WHERE {condition} ORDER BY distance LIMIT %s",
            [np.asarray(vector, dtype=np.float32), *params, k],
        )
        # Iterative scans may return neighbours slightly out of order: sort what came back.
        scored = [Scored(ChunkId(chunk_id), 1.0 - float(d)) for chunk_id, d in rows]
        return sorted(scored, key=lambda s: s.score, reverse=True)

    async def keyword_search(self, query: str, k: int, where: SearchFilter) -> list[Scored]:
        join, condition, params = filter_sql(where)
        async with self._connection() as conn:
            terms = await selective_lexemes(conn, query)
            if not terms:
                return []
            statement = RANKED_SQL.format(join=join, condition=condition)
            rows = await (
                await conn.execute(statement.encode(), [any_of(terms), *params, k])
            ).fetchall()
        return [Scored(ChunkId(chunk_id), float(score)) for chunk_id, score in rows]

    async def hits(self, chunk_ids: Sequence[ChunkId]) -> dict[ChunkId, Hit]:
        if not chunk_ids:
            return {}
        rows = await self._rows(
            f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN documents d ON d.doc_key = c.doc_key "
            "WHERE c.chunk_id = ANY(%s)",
            [list(chunk_ids)],
        )
        return {ChunkId(r[0]): _hit(r) for r in rows}

    # -- housekeeping ------------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        async with self._connection() as conn:

            async def one(query: str, params: Sequence[object] = ()) -> Any:
                row = await (await conn.execute(query.encode(), params)).fetchone()
                return row[0] if row else None

            meta = dict(await (await conn.execute("SELECT key, value FROM meta")).fetchall())
            collections = await (
                await conn.execute("SELECT collection, count(*) FROM documents GROUP BY 1")
            ).fetchall()
            return StoreStats(
                documents=int(await one("SELECT count(*) FROM documents")),
                chunks=int(await one("SELECT count(*) FROM chunks")),
                indexed_chunks=int(
                    await one("SELECT count(*) FROM chunks WHERE duplicate_of IS NULL")
                ),
                duplicate_chunks=int(
                    await one("SELECT count(*) FROM chunks WHERE duplicate_of IS NOT NULL")
                ),
                duplicate_documents=int(await one("SELECT count(*) FROM duplicates")),
                collections={name: int(count) for name, count in collections},
                embedder=meta.get("embedder"),
                dimension=int(meta["dimension"]) if "dimension" in meta else None,
                size_bytes=int(
                    await one(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind = 'r'",
                        [self._settings.schema_name],
                    )
                ),
            )

    async def check(self) -> list[str]:
        rows = await self._rows(
            "SELECT d.doc_id, d.chunk_count, count(c.chunk_key) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_key = d.doc_key GROUP BY d.doc_key "
            "HAVING count(c.chunk_key) != d.chunk_count"
        )
        problems = [f"document {d} records {want} chunks but has {have}" for d, want, have in rows]
        bound = await self._rows("SELECT value FROM meta WHERE key = 'dimension'")
        if bound:
            index = await self._rows(
                "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = "
                "to_regclass('chunks_embedding')"
            )
            if not index:
                problems.append("the HNSW index chunks_embedding is missing")
            elif not index[0][0]:
                problems.append("the HNSW index chunks_embedding is invalid: REINDEX it")
        return problems

    async def close(self) -> None:
        await self._pool.close()


async def _lock_document(conn: Connection, doc_id: DocId) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (doc_id,))


async def _remove(conn: Connection, doc_id: DocId) -> bool:
    row = await (
        await conn.execute("SELECT doc_key FROM documents WHERE doc_id = %s", (doc_id,))
    ).fetchone()
    if row is None:
        return False
    # Chunks kept out as copies of this document's chunks become searchable again.
    await conn.execute(
        "UPDATE chunks k SET duplicate_of = NULL FROM chunks o "
        "WHERE k.duplicate_of = o.chunk_id AND o.doc_key = %s AND k.doc_key <> %s",
        (row[0], row[0]),
    )
    await conn.execute("DELETE FROM documents WHERE doc_key = %s", (row[0],))
    return True


def _chunk_row(e: EmbeddedChunk, doc_key: int, collection: str) -> tuple[object, ...]:
    chunk = e.chunk
    return (
        chunk.chunk_id,
        doc_key,
        collection,
        chunk.ordinal,
        chunk.text,
        json.dumps(list(chunk.section)),
        " ".join(chunk.section),
        chunk.start,
        chunk.end,
        chunk.token_count,
        chunk.content_hash,
        np.asarray(e.vector, dtype=np.float32),
        e.duplicate_of,
    )
