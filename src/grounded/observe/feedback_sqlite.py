"""Feedback in its own small SQLite file under the data directory (the embedded default)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL DEFAULT 'default',
    answer_id TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created_at REAL NOT NULL
)"""


class SqliteFeedbackStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._connect() as conn:
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(feedback)")}
            if "tenant" not in columns:  # a file from before tenants
                conn.execute(
                    "ALTER TABLE feedback ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'"
                )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _insert(self, tenant: str, answer_id: str, rating: str, comment: str | None) -> int:
        conn = self._connect()
        try:
            with conn:
                cursor = conn.execute(
                    "INSERT INTO feedback (tenant, answer_id, rating, comment, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (tenant, answer_id, rating, comment, time.time()),
                )
            return int(cursor.lastrowid or 0)
        finally:
            conn.close()

    async def add(self, tenant: str, answer_id: str, rating: str, comment: str | None) -> int:
        return await asyncio.to_thread(self._insert, tenant, answer_id, rating, comment)

    def _for_tenant(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT id, answer_id, rating, comment, created_at FROM feedback "
                "WHERE tenant = ? ORDER BY id DESC LIMIT ?",
                (tenant, limit),
            ).fetchall()
        finally:
            conn.close()
        keys = ("id", "answer_id", "rating", "comment", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def for_tenant(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._for_tenant, tenant, limit)

    def all(self) -> list[tuple[str, str, str | None]]:
        conn = self._connect()
        try:
            return conn.execute(
                "SELECT answer_id, rating, comment FROM feedback ORDER BY id"
            ).fetchall()
        finally:
            conn.close()

    async def close(self) -> None:
        return None  # a connection per call: nothing stays open
