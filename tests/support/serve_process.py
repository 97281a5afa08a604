"""`grounded serve` in a subprocess of its own, as an operator would run it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT, cli_env
from tests.serve.conftest import free_port


@contextmanager
def serve_process(
    data: Path, model_cache: Path, extra: dict[str, str], auth: bool = False
) -> Iterator[str]:
    """`grounded serve` as its own process on a free port; yields its base URL.

    Its stderr goes to DATA/serve-PORT.log (a pipe nobody reads would fill up and stall it).
    """
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / f"serve-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grounded",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *([] if auth else ["--no-auth"]),
        ],
        env=cli_env(data, model_cache) | extra,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("grounded serve did not become ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
