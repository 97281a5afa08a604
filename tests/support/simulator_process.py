"""The LLM simulator as a process of its own, so a test can kill it like a crashed GPU worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tests.conftest import ROOT


@contextmanager
def simulator_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Yields the simulator's OpenAI base URL and its process; args are its CLI options."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llm_simulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), f"simulator did not start: {url!r}"
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@contextmanager
def simulator_processes(
    count: int, *args: str
) -> Iterator[list[tuple[str, subprocess.Popen[str]]]]:
    with ExitStack() as stack:
        yield [stack.enter_context(simulator_process(*args)) for _ in range(count)]
