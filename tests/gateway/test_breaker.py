"""The circuit breaker's state machine, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from grounded.gateway.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(b: CircuitBreaker) -> str:
    return b.state  # a plain str, so that mypy does not narrow it between two checks


def breaker(clock: FakeClock, **overrides: float) -> CircuitBreaker:
    options: dict[str, float] = {
        "failures": 3,
        "error_rate": 0.5,
        "cooldown_s": 10.0,
        "window": 10,
        "min_samples": 6,
    }
    options.update(overrides)
    return CircuitBreaker(
        int(options["failures"]),
        options["error_rate"],
        options["cooldown_s"],
        window=int(options["window"]),
        min_samples=int(options["min_samples"]),
        clock=clock,
    )


def test_consecutive_failures_open_it_and_a_success_resets_the_count() -> None:
    b = breaker(FakeClock())
    for _ in range(2):
        b.record(False)
    b.record(True)
    assert b.consecutive_failures == 0
    b.record(False)
    b.record(False)
    assert state(b) == "closed" and b.allow()
    b.record(False)
    assert state(b) == "open"
    assert not b.allow() and not b.available


def test_error_rate_over_the_window_opens_it_once_there_are_enough_samples() -> None:
    b = breaker(FakeClock(), failures=100, error_rate=0.5, window=10, min_samples=6)
    for success in (False, True, False, True, False):  # 3/5 failed, but only 5 samples
        b.record(success)
    assert state(b) == "closed"
    b.record(True)  # 3/6 = 0.5
    assert state(b) == "closed"  # the rate is only checked when a failure comes in
    b.record(False)  # 4/7
    assert state(b) == "open"


def test_old_results_leave_the_window() -> None:
    b = breaker(FakeClock(), failures=100, error_rate=0.5, window=4, min_samples=4)
    for success in (False, False, True, True, True, True, False):  # window: T T T F
        b.record(success)
    assert state(b) == "closed"


def test_cooldown_then_exactly_one_probe_and_success_closes() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record(False)
    clock.now += 9.9
    assert not b.allow() and state(b) == "open" and not b.available
    clock.now += 0.1
    assert b.available
    assert b.allow()
    assert state(b) == "half_open"
    assert not b.allow() and not b.available  # the probe is out
    b.record(True)
    assert state(b) == "closed" and b.allow()
    assert b.consecutive_failures == 0


def test_half_open_failure_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record(False)
    clock.now += 10
    assert b.allow()
    clock.now += 3
    b.record(False)
    assert state(b) == "open"
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow() and state(b) == "half_open"


def test_closing_clears_the_window() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=100, error_rate=0.5, window=10, min_samples=2)
    b.record(False)
    b.record(False)
    assert state(b) == "open"
    clock.now += 10
    assert b.allow()
    b.record(True)  # the probe: closes it
    b.record(True)
    b.record(True)
    b.record(False)  # 1/3 since closing; 3/6 had the window been kept
    assert state(b) == "closed"


def test_abandoned_probe_lets_the_next_one_through() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record(False)
    clock.now += 10
    assert b.allow() and not b.allow()
    b.abandon()
    assert state(b) == "half_open" and b.allow()


def test_late_results_while_open_change_nothing() -> None:
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record(False)
    clock.now += 5
    b.record(True)
    b.record(False)
    assert state(b) == "open"
    clock.now += 5  # the cooldown counts from the opening, not from the late failure
    assert b.allow()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failures": 0, "error_rate": 0.5, "cooldown_s": 1.0},
        {"failures": 1, "error_rate": 0.0, "cooldown_s": 1.0},
        {"failures": 1, "error_rate": 1.5, "cooldown_s": 1.0},
        {"failures": 1, "error_rate": 0.5, "cooldown_s": -1.0},
        {"failures": 1, "error_rate": 0.5, "cooldown_s": 1.0, "min_samples": 30},
    ],
)
def test_rejects_settings_that_cannot_work(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
