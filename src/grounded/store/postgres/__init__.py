"""The scale-out store: PostgreSQL with pgvector, shared by any number of processes."""

from grounded.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
