"""One JSON line per answer: question, retrieved chunks, prompt, answer, tokens, timings.

Lines are appended with a single write each (O_APPEND), so several server processes can
share one file without interleaving partial lines. The file stays open between writes; if
it was moved away or deleted (log rotation), a write within a second opens a new one.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROTATION_CHECK_S = 1.0


class RequestLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._checked_at = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            os.write(self._descriptor(), line)

    def _descriptor(self) -> int:
        assert self._path is not None
        now = time.monotonic()
        if self._fd is not None and now - self._checked_at < ROTATION_CHECK_S:
            return self._fd
        self._checked_at = now  # two stat calls per write showed in the gateway's profile
        if self._fd is not None and not self._rotated(self._fd):
            return self._fd
        self.close()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def _rotated(self, fd: int) -> bool:
        assert self._path is not None
        try:
            return os.stat(self._path).st_ino != os.fstat(fd).st_ino
        except FileNotFoundError:
            return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
