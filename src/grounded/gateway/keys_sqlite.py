"""API keys in their own small SQLite file (DATA_DIR/keys.db) for the embedded deployment."""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import ParamSpec, TypeVar

from grounded.errors import StoreError
from grounded.gateway.keys import (
    CREATE_ATTEMPTS,
    INSERT_COLUMNS,
    KEY_COLUMNS,
    ApiKey,
    NewKey,
    key_id_of,
    new_key,
    row_to_key,
    secret_matches,
)

_SCHEMA = """CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    tenant TEXT NOT NULL,
    tier TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant);"""
P = ParamSpec("P")
T = TypeVar("T")


class SqliteKeyStore:
    def __init__(self, path: Path, tiers: Collection[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._tiers = frozenset(tiers)
        try:
            conn = self._connect()
            try:
                with conn:
                    conn.executescript(_SCHEMA)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the key file {path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    async def _run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(work, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"the key file {self._path} failed: {exc}") from exc

    def _insert(self, tenant: str, tier: str, name: str) -> NewKey:
        conn = self._connect()
        try:
            for _ in range(CREATE_ATTEMPTS):
                minted = new_key(tenant, tier, name, self._tiers)
                try:
                    with conn:
                        conn.execute(
                            f"INSERT INTO api_keys ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            minted.row(),
                        )
                except sqlite3.IntegrityError:
                    continue  # the key id is taken: mint another
                return minted
        finally:
            conn.close()
        raise StoreError("no unused key id after several attempts; try again")

    def _find(self, key_id: str, secret: str) -> ApiKey | None:
        conn = self._connect()
        try:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        finally:
            conn.close()
        if row is None or not secret_matches(secret, row[7]):
            return None
        key = row_to_key(row)
        return key if key.active else None

    def _select(self, tenant: str | None, include_revoked: bool) -> builtins.list[ApiKey]:
        conn = self._connect()
        try:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys "
                "WHERE (? IS NULL OR tenant = ?) AND (? OR revoked_at IS NULL) "
                "ORDER BY created_at, key_id",
                (tenant, tenant, include_revoked),
            ).fetchall()
        finally:
            conn.close()
        return [row_to_key(row) for row in rows]

    def _revoke(self, key_id: str) -> bool:
        conn = self._connect()
        try:
            with conn:
                cursor = conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                    (time.time(), key_id),
                )
            return cursor.rowcount == 1
        finally:
            conn.close()

    async def create(self, tenant: str, tier: str, name: str = "") -> tuple[ApiKey, str]:
        minted = await self._run(self._insert, tenant, tier, name)
        return minted.key, minted.secret

    async def lookup(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        return await self._run(self._find, key_id, secret)

    async def list(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        return await self._run(self._select, tenant, include_revoked)

    async def revoke(self, key_id: str) -> bool:
        return await self._run(self._revoke, key_id)

    async def close(self) -> None:
        return None
