"""Connections to PostgreSQL: a pool per process, timeouts, and errors that say what to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import AsyncConnectionPool

from grounded.errors import StoreError
from grounded.settings import PostgresSettings


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def connection_kwargs(settings: PostgresSettings) -> dict[str, Any]:
    options = f"-c search_path={settings.schema_name},public"
    if settings.statement_timeout_ms:
        options += f" -c statement_timeout={settings.statement_timeout_ms}"
    return {
        "connect_timeout": max(1, round(settings.connect_timeout)),
        "options": options,
        "application_name": "grounded",
    }


async def connect_once(url: str, settings: PostgresSettings) -> psycopg.AsyncConnection[Any]:
    """One connection, for migrations and checks; unreachable servers fail with the reason."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=True, **connection_kwargs(settings)
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot reach PostgreSQL at {redacted(url)}: {reason}") from exc


Configure = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]


async def open_pool(
    url: str, settings: PostgresSettings, configure: Configure
) -> AsyncConnectionPool:
    # Connect once first: a pool retries quietly until its timeout and then reports only
    # that it timed out, while a direct attempt says why (refused, bad password, no database).
    probe = await connect_once(url, settings)
    await probe.close()
    pool = AsyncConnectionPool(
        url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        kwargs={"autocommit": True, **connection_kwargs(settings)},
        configure=_with_vectors(configure),
        open=False,
        timeout=settings.connect_timeout,
        name="grounded",
    )
    await pool.open(wait=True, timeout=settings.connect_timeout)
    return pool


def _with_vectors(configure: Configure) -> Configure:
    async def configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
        await register_vectors(conn)
        await configure(conn)

    return configure_connection


async def register_vectors(conn: psycopg.AsyncConnection[Any]) -> None:
    from pgvector.psycopg import register_vector_async

    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            "the PostgreSQL `vector` extension is not installed in this database; run "
            "`grounded db migrate` (it needs pgvector >= 0.8 on the server)"
        ) from exc
