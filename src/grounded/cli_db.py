"""`grounded db ...` and `grounded migrate-store`: running Grounded on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from grounded.errors import GroundedError
from grounded.settings import PostgresSettings, Settings, load_settings
from grounded.store.postgres import PostgresStore
from grounded.store.postgres.connect import connect_once, redacted
from grounded.store.postgres.local import start, stop
from grounded.store.postgres.migrate import LATEST, current_version, migrate
from grounded.store.sqlite import SqliteStore
from grounded.store.transfer import copy_store

db_app = typer.Typer(no_args_is_help=True, help="PostgreSQL store: local server, migrations.")
console = Console()
errors = Console(stderr=True)

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="postgresql://... (env GROUNDED_STORE_URL).")
]
LocalDir = Annotated[Path, typer.Option("--dir", help="Where the local server keeps its data.")]


def _fail(exc: GroundedError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


def _url(url: str | None, settings: Settings) -> str:
    if url:
        return url
    if settings.store_url is None:
        errors.print("[red]error:[/red] give --url or set GROUNDED_STORE_URL")
        raise typer.Exit(2)
    return settings.store_url.get_secret_value()


async def _migrate(url: str, settings: PostgresSettings) -> tuple[int, int]:
    conn = await connect_once(url, settings)
    try:
        applied = await migrate(conn, settings.schema_name)
        return len(applied), await current_version(conn, settings.schema_name)
    finally:
        await conn.close()


@db_app.command("migrate")
def migrate_command(url: UrlOpt = None) -> None:
    """Create or upgrade Grounded's tables; safe to re-run, and from several replicas at once."""
    settings = load_settings()
    target = _url(url, settings)
    try:
        applied, version = asyncio.run(_migrate(target, settings.postgres))
    except GroundedError as exc:
        raise _fail(exc) from None
    console.print(
        f"{redacted(target)} schema {settings.postgres.schema_name!r}: "
        f"{applied} migration(s) applied, now at version {version} (latest {LATEST})"
    )


@db_app.command("start")
def start_command(directory: LocalDir = Path(".grounded/postgres")) -> None:
    """Start a private local PostgreSQL + pgvector (for trying things out) and migrate it."""
    try:
        url = start(directory)
        _applied, version = asyncio.run(_migrate(url, load_settings().postgres))
    except GroundedError as exc:
        raise _fail(exc) from None
    console.print(f"PostgreSQL is running (schema version {version}). Use it with:")
    print(f"export GROUNDED_STORE_URL='{url}'")


@db_app.command("stop")
def stop_command(directory: LocalDir = Path(".grounded/postgres")) -> None:
    """Stop the local server started by `grounded db start`."""
    try:
        stop(directory)
    except GroundedError as exc:
        raise _fail(exc) from None
    console.print("stopped")


def migrate_store(
    source: Annotated[Path, typer.Option("--from", help="Data directory of an embedded index.")],
    target: Annotated[str, typer.Option("--to", help="postgresql://... URL.")],
) -> None:
    """Copy an embedded index into PostgreSQL, vectors included (no re-embedding)."""
    if not (source / "grounded.db").exists():
        errors.print(f"[red]error:[/red] no embedded index in {source}")
        raise typer.Exit(2)
    settings = load_settings()

    async def run() -> str:
        await _migrate(target, settings.postgres)
        src = SqliteStore(source)
        dst = PostgresStore(target, settings.postgres)
        try:
            report = await copy_store(src, dst)
        finally:
            await src.close()
            await dst.close()
        return (
            f"copied {report.documents} documents ({report.chunks} chunks), "
            f"{report.skipped} already there, {report.duplicates} duplicate records"
        )

    try:
        console.print(asyncio.run(run()))
    except GroundedError as exc:
        raise _fail(exc) from None
