"""One lazily opened connection pool: opened on first use, checked against the schema
version once. The store holds one; so do the tables beside it (API keys, feedback), which
also turn driver errors into a StoreError naming what failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from grounded.errors import StoreError
from grounded.settings import PostgresSettings
from grounded.store.postgres.connect import Configure, open_pool
from grounded.store.postgres.migrate import require_current

Connection = psycopg.AsyncConnection[Any]


class LazyPool:
    def __init__(
        self,
        url: str,
        settings: PostgresSettings,
        configure: Configure | None = None,
        what: str | None = None,
    ) -> None:
        """`what` names a side table: its errors become StoreErrors saying so."""
        self._url = url
        self._settings = settings
        self._configure = configure or _no_setup
        self._what = what
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def beside_store(
        cls, url: str, settings: PostgresSettings, pool_max: int, what: str
    ) -> LazyPool:
        """A small pool for a side table: at most `pool_max` connections, one kept open."""
        small = settings.model_copy(
            update={
                "pool_min": min(settings.pool_min, 1),
                "pool_max": min(settings.pool_max, pool_max),
            }
        )
        return cls(url, small, what=what)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        pool = self._pool or await self._open()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            if self._what is None:
                raise
            raise StoreError(f"the PostgreSQL {self._what} failed: {exc}") from exc

    async def _open(self) -> AsyncConnectionPool:
        async with self._opening:
            if self._pool is None:
                pool = await open_pool(self._url, self._settings, self._configure)
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
