"""API keys in PostgreSQL (table ``api_keys``, migration 0002), shared by every replica."""

from __future__ import annotations

import builtins
import time
from collections.abc import Collection
from typing import Any

import psycopg

from grounded.errors import StoreError
from grounded.gateway.keys import (
    CREATE_ATTEMPTS,
    INSERT_COLUMNS,
    KEY_COLUMNS,
    ApiKey,
    key_id_of,
    new_key,
    row_to_key,
    secret_matches,
)
from grounded.settings import PostgresSettings
from grounded.store.postgres.pool import LazyPool

Connection = psycopg.AsyncConnection[Any]
_POOL_MAX = 4  # lookups are single-row reads by primary key, cached by CachedKeys


class PostgresKeyStore:
    def __init__(self, url: str, settings: PostgresSettings, tiers: Collection[str]) -> None:
        self._pool = LazyPool.beside_store(url, settings, _POOL_MAX, "key table")
        self._tiers = frozenset(tiers)
        self._connection = self._pool.connection

    async def create(self, tenant: str, tier: str, name: str = "") -> tuple[ApiKey, str]:
        for _ in range(CREATE_ATTEMPTS):
            minted = new_key(tenant, tier, name, self._tiers)
            key = minted.key
            async with self._connection() as conn:
                cursor = await conn.execute(
                    f"INSERT INTO api_keys ({INSERT_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key_id) DO NOTHING".encode(),
                    minted.row(),
                )
            if cursor.rowcount == 1:
                return key, minted.secret
        raise StoreError("no unused key id after several attempts; try again")

    async def lookup(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE key_id = %s".encode(),
                    (key_id,),
                )
            ).fetchone()
        if row is None or not secret_matches(secret, row[7]):
            return None
        key = row_to_key(row)
        return key if key.active else None

    async def list(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        async with self._connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {KEY_COLUMNS} FROM api_keys "
                    "WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text) "
                    "AND (%(all)s OR revoked_at IS NULL) "
                    "ORDER BY created_at, key_id".encode(),
                    {"tenant": tenant, "all": include_revoked},
                )
            ).fetchall()
        return [row_to_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return cursor.rowcount == 1

    async def close(self) -> None:
        await self._pool.close()
