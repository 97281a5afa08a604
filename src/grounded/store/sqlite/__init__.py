"""The embedded store: SQLite for documents, chunks and BM25 (FTS5), usearch for vectors."""

from grounded.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
