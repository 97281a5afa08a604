"""One model served by several workers (replicas): balance, fail over, check health.

`WorkerPool` is itself a `ChatBackend`. Each request goes to the available worker with the
fewest outstanding requests relative to its `max_in_flight`, or, with session affinity, to
the worker that rendezvous hashing picks for the request's affinity key (so a conversation
keeps hitting the same prefix cache) unless that worker is full. A worker is available when
its circuit breaker allows it and its last health check passed.

A failure before the first token is invisible to the caller: the pool waits
`retry_backoff_s * 2**attempt` and tries another worker, up to `retries` times. After the
first token nothing can be retried; the caller gets `BackendError(before_output=False)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from grounded.gateway.breaker import CircuitBreaker
from grounded.generate.openai_compat import OpenAICompatBackend
from grounded.generate.protocol import BackendError, ChatBackend, Delta, GenerationRequest
from grounded.settings import ModelSettings

__all__ = ["BackendFactory", "WorkerPool", "openai_worker"]

logger = logging.getLogger(__name__)

BackendFactory = Callable[[ModelSettings, str], ChatBackend]
"""Builds the client of one worker from the model's settings and the worker's base URL."""

# OpenAICompatBackend reports upstream HTTP errors as "model server answered <status>: ...".


def openai_worker(settings: ModelSettings, url: str) -> ChatBackend:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return OpenAICompatBackend(
        settings.name,
        url,
        settings.upstream_model or settings.name,
        key,
        settings.connect_timeout_s,
        settings.read_timeout_s,
        keepalive=settings.max_in_flight,  # one reusable connection per request slot
    )


def _worker_fault(exc: BackendError) -> bool:
    """Is this the worker's fault (retry elsewhere, count against it)? Timeouts, connection
    errors, 408, 429 and 5xx are; other 4xx (bad key, bad request) would fail everywhere."""
    status = exc.status
    return status is None or status >= 500 or status in (408, 429)


def _rendezvous_score(key: str, url: str) -> int:
    digest = hashlib.blake2b(f"{key}\x00{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


async def _aclose(iterator: AsyncIterator[Delta]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass(eq=False, slots=True)
class _Worker:
    index: int
    url: str
    backend: ChatBackend
    breaker: CircuitBreaker
    max_in_flight: int
    in_flight: int = 0
    healthy: bool = True
    requests: int = 0
    failures: int = 0

    @property
    def available(self) -> bool:
        return self.healthy and self.breaker.available

    @property
    def capacity(self) -> int:
        """Requests it may take now: all when closed, the one probe when half-open."""
        if not self.available:
            return 0
        return self.max_in_flight if self.breaker.state == "closed" else 1

    @property
    def load(self) -> float:
        return self.in_flight / self.max_in_flight


class WorkerPool:
    def __init__(
        self,
        settings: ModelSettings,
        backend_factory: BackendFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.url:
            raise ValueError(f"model {settings.name!r} has no url")
        factory = backend_factory or openai_worker
        self._settings = settings
        self._workers = [
            _Worker(
                index=i,
                url=url,
                backend=factory(settings, url),
                breaker=CircuitBreaker(
                    settings.breaker_failures,
                    settings.breaker_error_rate,
                    settings.breaker_cooldown_s,
                    clock=clock,
                ),
                max_in_flight=settings.max_in_flight,
            )
            for i, url in enumerate(dict.fromkeys([settings.url, *settings.workers]))
        ]
        self._turn = 0  # rotates ties between equally loaded workers
        self._health_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.on_change: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self._settings.name

    # -- ChatBackend -------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        tried: list[_Worker] = []
        errors: list[str] = []
        for attempt in range(self._settings.retries + 1):
            picked = self._pick(request, tried)
            if picked is None:
                break
            worker, probe = picked
            tried.append(worker)
            worker.in_flight += 1
            worker.requests += 1
            verdict: bool | None = None  # None: the caller left before there was one
            started = False
            upstream = worker.backend.stream(request)
            try:
                async for delta in upstream:
                    started = True
                    yield delta
                verdict = True
                return
            except BackendError as exc:
                fault = _worker_fault(exc)
                verdict = not fault
                if started or not exc.before_output:
                    raise BackendError(str(exc), before_output=False) from exc
                if not fault:  # a 4xx would fail on every worker: the caller gets it as it is
                    raise
                errors.append(f"{worker.url}: {exc}")
            except GeneratorExit:
                verdict = True if started else None  # the caller stopped reading
                raise
            finally:
                try:
                    await _aclose(upstream)  # an early stop ends the upstream request too
                finally:
                    worker.in_flight -= 1
                    self._settle(worker, probe, verdict)
            if attempt < self._settings.retries:
                await asyncio.sleep(self._settings.retry_backoff_s * 2**attempt)
        if not errors:
            raise BackendError(f"no worker of model {self.name} is available", before_output=True)
        raise BackendError(
            f"model {self.name}: {len(errors)} attempt(s) failed before output ("
            + "; ".join(errors)
            + ")",
            before_output=True,
        )

    def _settle(self, worker: _Worker, probe: bool, verdict: bool | None) -> None:
        breaker = worker.breaker
        before = breaker.state
        if verdict is False:
            worker.failures += 1
        if verdict is None:
            if probe:
                breaker.abandon()
        elif probe or before == "closed":  # a half-open breaker only listens to its probe
            breaker.record(verdict)
        if breaker.state != before:
            logger.warning(
                "worker %s of model %s: breaker %s -> %s",
                worker.url,
                self.name,
                before,
                breaker.state,
            )
            if breaker.state == "open":
                self._wake_after(breaker.cooldown_s)
        self._changed()

    async def ready(self) -> bool:
        candidates = [w for w in self._workers if w.available]
        if not candidates:
            return False
        answers = await asyncio.gather(
            *(w.backend.ready() for w in candidates), return_exceptions=True
        )
        return any(answer is True for answer in answers)

    async def close(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await asyncio.gather(*(w.backend.close() for w in self._workers))

    # -- capacity and health -----------------------------------------------------------------

    def capacity(self) -> int:
        """Requests the available workers can run at once (a breaker ready to probe adds 1)."""
        return sum(w.capacity for w in self._workers)

    def in_flight(self) -> int:
        return sum(w.in_flight for w in self._workers)

    def start(self) -> None:
        """Start the periodic health checks (from a running event loop); idempotent."""
        if self._health_task is None and self._settings.health_interval_s > 0:
            self._health_task = asyncio.get_running_loop().create_task(
                self._health_loop(), name=f"health:{self.name}"
            )

    async def check_health(self) -> None:
        """Ask every worker once whether it answers, and mark it healthy or not."""
        answers = await asyncio.gather(
            *(w.backend.ready() for w in self._workers), return_exceptions=True
        )
        changed = False
        for worker, answer in zip(self._workers, answers, strict=True):
            healthy = answer is True
            if healthy != worker.healthy:
                logger.warning(
                    "worker %s of model %s is %s",
                    worker.url,
                    self.name,
                    "healthy again" if healthy else "unhealthy",
                )
                worker.healthy = healthy
                changed = True
        if changed:
            self._changed()

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "url": w.url,
                "in_flight": w.in_flight,
                "max_in_flight": w.max_in_flight,
                "healthy": w.healthy,
                "available": w.available,
                "breaker": w.breaker.state,
                "requests": w.requests,
                "failures": w.failures,
                "consecutive_failures": w.breaker.consecutive_failures,
            }
            for w in self._workers
        ]

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.check_health()
            except Exception:  # a bug here must not end health checking for good
                logger.exception("health check of model %s failed", self.name)
            await asyncio.sleep(self._settings.health_interval_s)

    # -- choosing a worker -------------------------------------------------------------------

    def _pick(
        self, request: GenerationRequest, tried: list[_Worker]
    ) -> tuple[_Worker, bool] | None:
        """The worker for the next attempt, and whether it is its breaker's half-open probe."""
        available = [w for w in self._workers if w.available]
        fresh = [w for w in available if w not in tried]
        candidates = fresh or available
        if not candidates:
            return None
        ordered = self._by_load(candidates)
        if self._settings.session_affinity and request.affinity is not None:
            key = request.affinity
            home = max(candidates, key=lambda w: _rendezvous_score(key, w.url))
            if home.in_flight < home.max_in_flight:
                ordered.remove(home)
                ordered.insert(0, home)
        for worker in ordered:
            was_closed = worker.breaker.state == "closed"
            if worker.breaker.allow():
                return worker, not was_closed
        return None

    def _by_load(self, workers: list[_Worker]) -> list[_Worker]:
        n = len(self._workers)
        turn = self._turn
        self._turn += 1
        return sorted(workers, key=lambda w: (w.load, (w.index - turn) % n))

    # -- change notification -----------------------------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _wake_after(self, delay_s: float) -> None:
        """Tell listeners when an open breaker's cooldown ends (it may take a probe then)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def fire() -> None:
            self._timers.discard(handle)
            self._changed()

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)
