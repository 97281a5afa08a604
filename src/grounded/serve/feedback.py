"""Thumbs up/down on answers, kept in their own small SQLite file under the data directory."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created_at REAL NOT NULL
)"""


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _insert(self, answer_id: str, rating: str, comment: str | None) -> int:
        conn = self._connect()
        try:
            with conn:
                cursor = conn.execute(
                    "INSERT INTO feedback (answer_id, rating, comment, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (answer_id, rating, comment, time.time()),
                )
            return int(cursor.lastrowid or 0)
        finally:
            conn.close()

    async def add(self, answer_id: str, rating: str, comment: str | None) -> int:
        return await asyncio.to_thread(self._insert, answer_id, rating, comment)

    def all(self) -> list[tuple[str, str, str | None]]:
        conn = self._connect()
        try:
            return conn.execute(
                "SELECT answer_id, rating, comment FROM feedback ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
