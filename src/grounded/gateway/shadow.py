"""Shadow traffic: a share of answered requests is replayed to a candidate model.

The mirror starts only after the user's answer has been fully sent, runs in the background
at the lowest priority, and is dropped rather than queued when the candidate is busy, so it
can never delay or change what the user gets. Each mirror writes one line to
DATA_DIR/logs/shadow.jsonl: both latencies, both lengths and their agreement (cosine of the
two answers' embeddings); `grounded shadow report` summarises the file.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grounded.generate.protocol import BackendError, ChatBackend, GenerationRequest
from grounded.ingest.embedders.protocol import Embedder
from grounded.observe.requestlog import RequestLog

MAX_PENDING = 32
SHADOW_PRIORITY = -1  # below every tier
TryAdmit = Callable[[str], Callable[[], None] | None]  # a release, or None when busy


@dataclass(frozen=True, slots=True)
class Primary:
    answer_id: str
    tenant: str
    model: str
    request: GenerationRequest
    text: str
    first_token_ms: float | None
    total_ms: float


class Shadow:
    def __init__(
        self,
        model: str,
        backend: ChatBackend,
        share: float,
        embedder: Embedder,
        log_path: Path,
        try_admit: TryAdmit | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.model = model
        self._backend = backend
        self._share = share
        self._embedder = embedder
        self._log = RequestLog(log_path)
        self._try_admit = try_admit
        self._draw = draw
        self._pending: set[asyncio.Task[None]] = set()

    def mirror(self, primary: Primary) -> None:
        if primary.model == self.model or self._draw() >= self._share:
            return
        if len(self._pending) >= MAX_PENDING:
            return
        task = asyncio.create_task(self._run(primary))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, primary: Primary) -> None:
        release = self._try_admit(self.model) if self._try_admit else (lambda: None)
        if release is None:
            return  # the candidate is busy: drop the mirror rather than queue it
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        error: str | None = None
        try:
            async for delta in self._backend.stream(primary.request):
                if delta.text:
                    first = first or time.perf_counter()
                    pieces.append(delta.text)
        except BackendError as exc:
            error = str(exc)
        finally:
            release()
        total = (time.perf_counter() - started) * 1000
        text = "".join(pieces)
        agreement = (
            None
            if error or not text
            else await asyncio.to_thread(self._agreement, primary.text, text)
        )
        self._log.write(
            {
                "ts": time.time(),
                "answer_id": primary.answer_id,
                "tenant": primary.tenant,
                "primary_model": primary.model,
                "shadow_model": self.model,
                "primary": {
                    "first_token_ms": primary.first_token_ms,
                    "total_ms": round(primary.total_ms, 2),
                    "words": len(primary.text.split()),
                },
                "shadow": {
                    "first_token_ms": None if first is None else round((first - started) * 1000, 2),
                    "total_ms": round(total, 2),
                    "words": len(text.split()),
                    "error": error,
                },
                "agreement": agreement,
            }
        )

    def _agreement(self, primary: str, shadow: str) -> float:
        vectors = self._embedder.embed([primary, shadow])
        return round(float(vectors[0] @ vectors[1]), 4)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)


def report(path: Path) -> list[dict[str, Any]]:
    """One row per (primary model, shadow model): counts, latency, length and agreement."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line after a crash
            key = (record["primary_model"], record["shadow_model"])
            groups.setdefault(key, []).append(record)
    return [_summary(primary, shadow, rows) for (primary, shadow), rows in sorted(groups.items())]


def _summary(primary: str, shadow: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if not r["shadow"]["error"]]

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    agreement = [r["agreement"] for r in ok if r["agreement"] is not None]
    return {
        "primary_model": primary,
        "shadow_model": shadow,
        "mirrored": len(rows),
        "errors": len(rows) - len(ok),
        "primary_total_ms_p50": pct([r["primary"]["total_ms"] for r in rows], 50),
        "shadow_total_ms_p50": pct([r["shadow"]["total_ms"] for r in ok], 50),
        "shadow_total_ms_p95": pct([r["shadow"]["total_ms"] for r in ok], 95),
        "length_ratio": round(
            sum(r["shadow"]["words"] for r in ok) / max(1, sum(r["primary"]["words"] for r in ok)),
            3,
        )
        if ok
        else None,
        "agreement_mean": round(float(np.mean(agreement)), 3) if agreement else None,
        "agreement_p10": pct(agreement, 10),
    }
