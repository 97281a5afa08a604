"""Feedback in PostgreSQL (table `feedback`, migration 0003), shared by every replica."""

from __future__ import annotations

import time
from typing import Any

from grounded.settings import PostgresSettings
from grounded.store.postgres.pool import LazyPool

_KEYS = ("id", "answer_id", "rating", "comment", "created_at")


class PostgresFeedbackStore:
    def __init__(self, url: str, settings: PostgresSettings) -> None:
        self._pool = LazyPool.beside_store(url, settings, 2, "feedback table")

    async def add(self, tenant: str, answer_id: str, rating: str, comment: str | None) -> int:
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO feedback (tenant, answer_id, rating, comment, created_at) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (tenant, answer_id, rating, comment, time.time()),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def for_tenant(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, answer_id, rating, comment, created_at FROM feedback "
                    "WHERE tenant = %s ORDER BY id DESC LIMIT %s",
                    (tenant, limit),
                )
            ).fetchall()
        return [dict(zip(_KEYS, row, strict=True)) for row in rows]

    async def close(self) -> None:
        await self._pool.close()
