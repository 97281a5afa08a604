"""A small connection pool for the tables beside the store (API keys, feedback).

Opened on first use, checked against the schema version once, and turning every driver
error into a StoreError that names what failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from grounded.errors import StoreError
from grounded.settings import PostgresSettings
from grounded.store.postgres.connect import open_pool
from grounded.store.postgres.migrate import require_current

Connection = psycopg.AsyncConnection[Any]


class SidePool:
    def __init__(self, url: str, settings: PostgresSettings, pool_max: int, what: str) -> None:
        self._url = url
        self._settings = settings.model_copy(
            update={
                "pool_min": min(settings.pool_min, 1),
                "pool_max": min(settings.pool_max, pool_max),
            }
        )
        self._what = what
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        pool = self._pool or await self._open()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"the PostgreSQL {self._what} failed: {exc}") from exc

    async def _open(self) -> AsyncConnectionPool:
        async with self._opening:
            if self._pool is None:
                pool = await open_pool(self._url, self._settings, _no_setup)
                try:
                    async with pool.connection() as conn:
                        await require_current(conn, self._settings.schema_name)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _no_setup(conn: Connection) -> None:
    return None
