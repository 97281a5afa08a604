"""A real Grounded server on loopback (uvicorn in a thread) over a copy of the sample index."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from grounded.serve.app import create_app
from grounded.settings import Settings, load_settings
from tests.conftest import run_cli
from tests.support.postgres import fresh_schema


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(settings: Settings, app: Any = None) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app or create_app(settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise RuntimeError("server did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def server_settings(data_dir: Path, model_cache: Path, **overrides: Any) -> Settings:
    """Settings of a test server; API keys are off unless `gateway` says otherwise (the
    gateway's own tests turn them on)."""
    overrides.setdefault("gateway", {"auth": False})
    return load_settings(data_dir=data_dir, embed={"cache_dir": model_cache}, **overrides)


@pytest.fixture(scope="module")
def index_copy(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("served") / "data"
    shutil.copytree(sample_index, target)
    return target


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def server(request: pytest.FixtureRequest, index_copy: Path, model_cache: Path) -> Iterator[str]:
    """The API suite runs once per store; on PostgreSQL the sample index is copied in with
    `grounded migrate-store` (so that command is exercised too)."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = fresh_schema(url)
        run_cli(
            "migrate-store",
            "--from",
            str(index_copy),
            "--to",
            url,
            data_dir=index_copy,
            model_cache=model_cache,
            env={"GROUNDED_POSTGRES__SCHEMA_NAME": schema.schema_name},
        )
        overrides = {"store_url": url, "postgres": schema.model_dump()}
    with running_server(server_settings(index_copy, model_cache, **overrides)) as url:
        yield url
