"""`grounded keys ...`: create, list and revoke the API keys clients send to the server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from grounded.errors import GroundedError
from grounded.gateway.keys import ApiKey, KeyStore, build_key_store
from grounded.settings import Settings, load_settings

keys_app = typer.Typer(
    no_args_is_help=True, help="API keys: tenants and tiers; only hashes are stored."
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Index location (env GROUNDED_DATA_DIR).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _with_store(data_dir: Path | None, job: Callable[[KeyStore, Settings], Awaitable[T]]) -> T:
    """Run one job against the configured key store; GroundedErrors exit with code 2."""
    try:
        settings = load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
        store = build_key_store(settings)

        async def main() -> T:
            try:
                return await job(store, settings)
            finally:
                await store.close()

        return asyncio.run(main())
    except GroundedError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _public(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "prefix": key.prefix,
        "tenant": key.tenant,
        "tier": key.tier,
        "name": key.name,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@keys_app.command("create")
def create_command(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key acts for.")],
    tier: Annotated[
        str | None, typer.Option("--tier", help="Tier (default: gateway.default_tier).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label, e.g. who holds it.")] = "",
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print its secret; it is shown only this once."""

    async def job(store: KeyStore, settings: Settings) -> tuple[ApiKey, str]:
        return await store.create(tenant, tier or settings.gateway.default_tier, name)

    key, secret = _with_store(data_dir, job)
    if as_json:
        payload = {
            "key": secret,
            "key_id": key.key_id,
            "tenant": key.tenant,
            "tier": key.tier,
            "name": key.name,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    sys.stdout.write(
        f"key_id  {key.key_id}\ntenant  {key.tenant}\ntier    {key.tier}\n"
        f"name    {key.name}\nkey     {secret}\n"
    )
    errors.print("Store the key now: it is shown only once and cannot be recovered.")


@keys_app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List keys, oldest first (never their secrets)."""

    async def job(store: KeyStore, settings: Settings) -> list[ApiKey]:
        return await store.list(tenant, include_revoked=show_all)

    keys = _with_store(data_dir, job)
    if as_json:
        sys.stdout.write(json.dumps([_public(k) for k in keys], indent=2) + "\n")
        return
    if not keys:
        console.print("no keys")
        return
    header = ["KEY_ID", "KEY", "TENANT", "TIER", "CREATED (UTC)"]
    header += ["REVOKED (UTC)", "NAME"] if show_all else ["NAME"]
    rows = [header]
    for key in keys:
        row = [key.key_id, f"{key.prefix}…", key.tenant, key.tier, _when(key.created_at)]
        row += [_when(key.revoked_at) or "-", key.name] if show_all else [key.name]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:  # plain columns, like `docker ps`: nothing cut off, easy to grep
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


@keys_app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(help="The key_id shown by create and list.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key; servers stop accepting it within gateway.key_cache_s seconds."""

    async def job(store: KeyStore, settings: Settings) -> tuple[bool, bool]:
        if await store.revoke(key_id):
            return True, True
        known = any(k.key_id == key_id for k in await store.list(include_revoked=True))
        return False, known

    revoked, known = _with_store(data_dir, job)
    if not revoked:
        reason = "is already revoked" if known else "does not exist"
        errors.print(f"[red]error:[/red] key {escape(key_id)!r} {reason}")
        raise typer.Exit(1)
    console.print(f"revoked {escape(key_id)}")
