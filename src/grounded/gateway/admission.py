"""Admission to one model: at most `capacity()` requests run, the rest wait by priority.

AdmissionError (GroundedError)
├── Shed          the queue is full of requests at least as important (429)
├── QueueTimeout  waited longer than the queue timeout (503)
└── NoCapacity    no worker of the model is available at all (503)

Higher priority goes first, FIFO within a priority. A full queue sheds its newest
lowest-priority waiter to make room for a more important newcomer. Everything runs on one
event loop; no locks are needed because nothing here awaits while it changes state.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from grounded.errors import GroundedError

__all__ = ["AdmissionError", "AdmissionQueue", "Lease", "NoCapacity", "QueueTimeout", "Shed"]

_SERVICE_SAMPLES = 200
_WAIT_SAMPLES = 1000


class AdmissionError(GroundedError):
    """A request was not admitted; `retry_after_s` is a hint for the Retry-After header."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return self.http_status


class Shed(AdmissionError):
    code = "overloaded"
    http_status = 429


class QueueTimeout(AdmissionError):
    code = "queue_timeout"
    http_status = 503


class NoCapacity(AdmissionError):
    code = "no_capacity"
    http_status = 503


class Lease:
    """One admitted request's slot; `release()` (or leaving the `with` block) frees it."""

    __slots__ = ("_queue", "admitted_at", "priority", "released", "waited_s")

    def __init__(
        self, queue: AdmissionQueue, priority: int, admitted_at: float, waited_s: float
    ) -> None:
        self._queue = queue
        self.priority = priority
        self.admitted_at = admitted_at
        self.waited_s = waited_s
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._queue._release(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: int
    enqueued_at: float
    future: asyncio.Future[Lease] = field(repr=False)


def _percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


class AdmissionQueue:
    def __init__(
        self,
        name: str,
        capacity: Callable[[], int],
        max_waiting: int,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.name = name
        self._capacity = capacity
        self._max_waiting = max_waiting
        self._timeout_s = timeout_s
        self._clock = clock
        self._in_use = 0
        self._waiting: dict[int, deque[_Waiter]] = {}
        self._service_s: deque[float] = deque(maxlen=_SERVICE_SAMPLES)
        self._wait_s: deque[float] = deque(maxlen=_WAIT_SAMPLES)
        self.admitted = 0
        self.shed = 0
        self.timed_out = 0
        self.no_capacity = 0

    # -- public ------------------------------------------------------------------------------

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    async def acquire(self, priority: int = 0) -> Lease:
        """A slot for one request; waits (by priority) while the model is full."""
        capacity = self._capacity()
        if capacity <= 0:
            self.no_capacity += 1
            raise NoCapacity(f"model {self.name}: no worker is available", self._retry_after(1))
        self._dispatch()  # capacity may have grown unannounced: waiters come first
        if self._in_use < capacity and not self._waiting_at_least(priority):
            return self._grant(priority, self._clock())
        if self.waiting >= self._max_waiting:
            self._make_room_for(priority)  # raises Shed when the newcomer is the least important
        waiter = _Waiter(priority, self._clock(), asyncio.get_running_loop().create_future())
        self._waiting.setdefault(priority, deque()).append(waiter)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await waiter.future
        except TimeoutError:
            future = waiter.future
            if future.done() and not future.cancelled():
                return future.result()  # granted (or shed) just as the deadline passed
            self._forget(waiter)
            self.timed_out += 1
            raise QueueTimeout(
                f"model {self.name}: no worker became free within {self._timeout_s:g} s",
                self._retry_after(self.waiting + 1),
            ) from None
        except asyncio.CancelledError:
            granted = _granted(waiter.future)
            if granted is not None:  # granted just as the caller went away: give it back
                granted.release()
            else:
                self._forget(waiter)
            raise

    def try_acquire(self, priority: int = 0) -> Lease | None:
        """A slot now, or None when the model is busy or someone is waiting: never queues
        (for background work such as shadow traffic)."""
        if self.waiting or self._in_use >= self._capacity():
            return None
        return self._grant(priority, self._clock())

    def notify(self) -> None:
        """Capacity may have changed (a worker came or went): admit or fail waiters."""
        if self._capacity() <= 0:
            self._fail_all_waiters()
        else:
            self._dispatch()

    def stats(self) -> dict[str, object]:
        waits = sorted(self._wait_s)
        return {
            "name": self.name,
            "capacity": self._capacity(),
            "in_use": self._in_use,
            "waiting": self.waiting,
            "waiting_by_priority": {
                p: len(q) for p, q in sorted(self._waiting.items(), reverse=True) if q
            },
            "max_waiting": self._max_waiting,
            "admitted": self.admitted,
            "shed": self.shed,
            "timed_out": self.timed_out,
            "no_capacity": self.no_capacity,
            "wait_ms": {
                "p50": round(_percentile(waits, 0.50) * 1000, 1),
                "p95": round(_percentile(waits, 0.95) * 1000, 1),
                "max": round((waits[-1] if waits else 0.0) * 1000, 1),
            },
        }

    # -- internals ---------------------------------------------------------------------------

    def _grant(self, priority: int, enqueued_at: float) -> Lease:
        now = self._clock()
        waited = max(0.0, now - enqueued_at)
        self._in_use += 1
        self.admitted += 1
        self._wait_s.append(waited)
        return Lease(self, priority, now, waited)

    def _release(self, lease: Lease) -> None:
        self._in_use -= 1
        self._service_s.append(max(0.0, self._clock() - lease.admitted_at))
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the best waiters: highest priority, then oldest."""
        while self._in_use < self._capacity():
            waiter = self._pop_best()
            if waiter is None:
                return
            waiter.future.set_result(self._grant(waiter.priority, waiter.enqueued_at))

    def _pop_best(self) -> _Waiter | None:
        for priority in sorted(self._waiting, reverse=True):
            queue = self._waiting[priority]
            while queue:
                waiter = queue.popleft()
                if not waiter.future.done():  # done = cancelled, cleanup still to run
                    self._drop_empty(priority)
                    return waiter
            self._drop_empty(priority)
        return None

    def _waiting_at_least(self, priority: int) -> bool:
        return any(p >= priority and q for p, q in self._waiting.items())

    def _make_room_for(self, priority: int) -> None:
        lowest = min((p for p, q in self._waiting.items() if q), default=None)
        retry_after = self._retry_after(self.waiting + 1)
        if lowest is None or lowest >= priority:
            self.shed += 1
            raise Shed(
                f"model {self.name} is overloaded: {self.waiting} requests already waiting",
                retry_after,
            )
        victim = self._waiting[lowest].pop()  # the newest of the least important
        self._drop_empty(lowest)
        self.shed += 1
        if not victim.future.done():
            victim.future.set_exception(
                Shed(
                    f"model {self.name} is overloaded: more important requests came first",
                    retry_after,
                )
            )

    def _fail_all_waiters(self) -> None:
        waiters = [w for q in self._waiting.values() for w in q]
        self._waiting.clear()
        for waiter in waiters:
            if not waiter.future.done():
                self.no_capacity += 1
                waiter.future.set_exception(
                    NoCapacity(f"model {self.name}: no worker is available", self._retry_after(1))
                )

    def _forget(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.priority)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._drop_empty(waiter.priority)

    def _drop_empty(self, priority: int) -> None:
        if not self._waiting.get(priority, True):
            del self._waiting[priority]

    def _retry_after(self, ahead: int) -> float:
        """Seconds until about `ahead` requests have gone through: recent service times
        spread over the current capacity; never below 1."""
        service = sum(self._service_s) / len(self._service_s) if self._service_s else 1.0
        slots = max(1, self._capacity())
        return round(max(1.0, service * math.ceil(ahead / slots)), 1)


def _granted(future: asyncio.Future[Lease]) -> Lease | None:
    """The lease a waiter's future holds, if it was granted one (and mark any error seen)."""
    if not future.done() or future.cancelled():
        return None
    if future.exception() is not None:
        return None
    return future.result()
