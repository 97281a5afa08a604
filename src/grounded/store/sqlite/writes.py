"""Document writes on one SQLite connection, each called inside a single transaction.

A write touches the chunk rows, the FTS5 rows and the vector change log together, so the
three can never disagree after a commit, and a crash before it leaves the old version.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from grounded.models import Document, EmbeddedChunk
from grounded.types import DocId


def replace_document(
    conn: sqlite3.Connection,
    doc: Document,
    chunks: Sequence[EmbeddedChunk],
    minhash: bytes | None,
) -> None:
    remove_document(conn, doc.doc_id)
    cursor = conn.execute(
        "INSERT INTO documents (doc_id, collection, source, uri, title, format, content_hash, "
        "ingested_at, chunk_count, metadata, minhash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            doc.doc_id,
            doc.collection,
            doc.source,
            doc.uri,
            doc.title,
            doc.format,
            doc.content_hash,
            doc.ingested_at,
            doc.chunk_count,
            json.dumps(doc.metadata),
            minhash,
        ),
    )
    doc_key = cursor.lastrowid
    conn.executemany(
        "INSERT INTO chunks (chunk_id, doc_key, ordinal, text, section, start_char, end_char, "
        "token_count, content_hash, vector, duplicate_of) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                e.chunk.chunk_id,
                doc_key,
                e.chunk.ordinal,
                e.chunk.text,
                json.dumps(e.chunk.section),
                e.chunk.start,
                e.chunk.end,
                e.chunk.token_count,
                e.chunk.content_hash,
                np.asarray(e.vector, dtype=np.float32).tobytes(),
                e.duplicate_of,
            )
            for e in chunks
        ],
    )
    indexed = conn.execute(
        "SELECT chunk_key, section, text FROM chunks WHERE doc_key = ? AND duplicate_of IS NULL",
        (doc_key,),
    ).fetchall()
    conn.executemany(
        "INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)",
        [(key, " ".join(json.loads(section)) + "\n" + text) for key, section, text in indexed],
    )
    conn.executemany(
        "INSERT INTO ann_log (chunk_key, op) VALUES (?, 1)", [(r[0],) for r in indexed]
    )


def remove_document(conn: sqlite3.Connection, doc_id: DocId) -> bool:
    row = conn.execute("SELECT doc_key FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
    if row is None:
        return False
    keys = [
        (k,)
        for (k,) in conn.execute(
            "SELECT chunk_key FROM chunks WHERE doc_key = ? AND duplicate_of IS NULL", row
        )
    ]
    conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", keys)
    conn.executemany("INSERT INTO ann_log (chunk_key, op) VALUES (?, -1)", keys)
    _promote_copies(conn, row[0])
    conn.execute("DELETE FROM chunks WHERE doc_key = ?", row)
    conn.execute("DELETE FROM documents WHERE doc_key = ?", row)
    return True


def _promote_copies(conn: sqlite3.Connection, doc_key: int) -> None:
    """Chunks dropped as copies of this document's chunks become searchable again."""
    copies = conn.execute(
        "SELECT k.chunk_key, k.section, k.text FROM chunks k JOIN chunks o "
        "ON k.duplicate_of = o.chunk_id WHERE o.doc_key = ? AND k.doc_key != ?",
        (doc_key, doc_key),
    ).fetchall()
    for key, section, text in copies:
        conn.execute("UPDATE chunks SET duplicate_of = NULL WHERE chunk_key = ?", (key,))
        conn.execute(
            "INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)",
            (key, " ".join(json.loads(section)) + "\n" + text),
        )
        conn.execute("INSERT INTO ann_log (chunk_key, op) VALUES (?, 1)", (key,))
