"""Versioned schema migrations: numbered SQL files, each applied once, in order, under a lock.

Safe to re-run and safe to run from several replicas at once: an advisory lock serialises
them and each file is recorded in the same transaction that applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from grounded.errors import StoreError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x67726E64  # any constant unique to Grounded's migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("grounded.store.postgres") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


LATEST = max(m.version for m in available())


async def current_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    exists = await (
        await conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",))
    ).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = await (
        await conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(
                sql.Identifier(schema)
            )
        )
    ).fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str) -> list[Migration]:
    """Bring the schema up to date; returns the migrations applied by this call."""
    applied: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreError(
                "cannot enable the `vector` extension: install pgvector (>= 0.8) on the "
                f"PostgreSQL server, or have a superuser run CREATE EXTENSION vector ({exc})"
            ) from exc
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        done = await current_version(conn, schema)
        await conn.execute(
            sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema))
        )
        for migration in available():
            if migration.version <= done:
                continue
            await conn.execute(migration.sql.encode())  # bytes: run as a multi-statement script
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration)
    return applied


async def require_current(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    version = await current_version(conn, schema)
    if version < LATEST:
        raise StoreError(
            f"the PostgreSQL schema {schema!r} is at version {version}, this Grounded needs "
            f"{LATEST}: run `grounded db migrate`"
        )
    if version > LATEST:
        raise StoreError(
            f"the PostgreSQL schema {schema!r} is at version {version}, newer than this "
            f"Grounded understands ({LATEST}); upgrade Grounded"
        )
