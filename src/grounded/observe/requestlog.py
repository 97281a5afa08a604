"""One JSON line per answer: question, retrieved chunks, prompt, answer, tokens, timings.

Lines are appended with a single write each (O_APPEND), so several server processes can
share one file without interleaving partial lines.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class RequestLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
