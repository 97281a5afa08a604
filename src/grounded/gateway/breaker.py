"""A circuit breaker for one worker: stop sending it requests while it keeps failing.

closed ──(N consecutive failures, or error share over the window)──► open
open ──(cooldown elapsed, next allow())──► half_open: exactly one probe goes through
half_open ──probe succeeds──► closed (window cleared)
half_open ──probe fails──► open for another cooldown

Pure state: no I/O and no timers; the clock is injected so tests can move time by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        error_rate: float,
        cooldown_s: float,
        window: int = 20,
        min_samples: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        if not 0 < error_rate <= 1:
            raise ValueError("error_rate must be in (0, 1]")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        if window < 1 or not 1 <= min_samples <= window:
            raise ValueError("need window >= 1 and 1 <= min_samples <= window")
        self._failures = failures
        self._error_rate = error_rate
        self._cooldown_s = cooldown_s
        self._min_samples = min_samples
        self._clock = clock
        self._results: deque[bool] = deque(maxlen=window)
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probing = False
        self._consecutive = 0
        self.opened = 0  # times it opened, for stats

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def cooldown_s(self) -> float:
        return self._cooldown_s

    @property
    def available(self) -> bool:
        """Would `allow()` let a request through now (without claiming the probe)?

        False while open and cooling down, and while half-open with its probe still out.
        """
        if self._state == "closed":
            return True
        if self._state == "open":
            return self._clock() - self._opened_at >= self._cooldown_s
        return not self._probing

    def allow(self) -> bool:
        """May a request go through now? In half-open, True once until the probe is recorded."""
        if self._state == "closed":
            return True
        if self._state == "open":
            if self._clock() - self._opened_at < self._cooldown_s:
                return False
            self._state = "half_open"
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def record(self, success: bool) -> None:
        """The outcome of a request that `allow()` let through."""
        if self._state == "open":
            return  # a late result of a request sent before it opened says nothing new
        if self._state == "half_open":
            self._probing = False
            if success:
                self._state = "closed"
                self._results.clear()
                self._consecutive = 0
            else:
                self._open()
            return
        self._results.append(success)
        self._consecutive = 0 if success else self._consecutive + 1
        if not success and (self._consecutive >= self._failures or self._rate_exceeded()):
            self._open()

    def abandon(self) -> None:
        """A request ended with no verdict (the caller left first): free the probe slot."""
        if self._state == "half_open":
            self._probing = False

    def _rate_exceeded(self) -> bool:
        samples = len(self._results)
        if samples < self._min_samples:
            return False
        return self._results.count(False) / samples >= self._error_rate

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probing = False
        self.opened += 1
