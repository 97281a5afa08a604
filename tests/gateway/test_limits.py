"""Limit state on both backends against one contract (token buckets, expiring counters,
atomic across replicas), and the limit policy on top of it."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from grounded.cache.state import StateUnavailable
from grounded.errors import ConfigError
from grounded.gateway.limits import Limiter
from grounded.gateway.limits_state import LimitState, MemoryLimits, RedisLimits
from grounded.settings import TierSettings

pytestmark = pytest.mark.anyio

near = pytest.approx


def unique() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture(params=["memory", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[LimitState]:
    backend: LimitState
    if request.param == "memory":
        backend = MemoryLimits()
    else:
        backend = RedisLimits(request.getfixturevalue("redis_url"))
    yield backend
    await backend.close()


@pytest.fixture(params=["memory", "redis"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LimitState, LimitState]]:
    """Two views of one shared state, as two replicas of the service would hold."""
    if request.param == "memory":
        memory = MemoryLimits()
        yield memory, memory
        return
    url = request.getfixturevalue("redis_url")
    first, second = RedisLimits(url), RedisLimits(url)
    yield first, second
    await first.close()
    await second.close()


# --- the LimitState contract ---------------------------------------------------------------


async def test_bucket_allows_burst_then_refuses_with_the_wait(limits: LimitState) -> None:
    key = unique()
    results = [await limits.take(key, rate_per_s=1.0, burst=3) for _ in range(3)]
    assert [allowed for allowed, _, _ in results] == [True, True, True]
    lefts = [left for _, left, _ in results]
    assert lefts == [near(2, abs=0.05), near(1, abs=0.1), near(0, abs=0.1)]
    # Allowed: seconds until the bucket is full again.
    assert results[0][2] == near(1.0, abs=0.05) and results[2][2] == near(3.0, abs=0.1)
    allowed, left, wait = await limits.take(key, rate_per_s=1.0, burst=3)
    assert not allowed and left < 1 and wait == near(1.0 - left, abs=0.01)
    assert 0.8 < wait <= 1.0


async def test_bucket_refills_over_time(limits: LimitState) -> None:
    key = unique()
    assert (await limits.take(key, 20.0, 2))[0] and (await limits.take(key, 20.0, 2))[0]
    allowed, _, wait = await limits.take(key, 20.0, 2)
    assert not allowed and 0 < wait <= 0.05
    await asyncio.sleep(wait + 0.02)
    assert (await limits.take(key, 20.0, 2))[0]
    await asyncio.sleep(0.12)
    allowed, left, _ = await limits.take(key, 20.0, 2)
    assert allowed and left == near(1, abs=0.05)  # refilled to the burst, never beyond


async def test_cost_above_one_and_a_refusal_spends_nothing(limits: LimitState) -> None:
    key = unique()
    allowed, left, _ = await limits.take(key, 1.0, 5, cost=3)
    assert allowed and left == near(2, abs=0.05)
    allowed, left, wait = await limits.take(key, 1.0, 5, cost=3)
    assert not allowed and left == near(2, abs=0.05) and wait == near(1.0, abs=0.05)
    allowed, left, _ = await limits.take(key, 1.0, 5, cost=2)
    assert allowed and left == near(0, abs=0.05)


async def test_cost_zero_reads_without_spending(limits: LimitState) -> None:
    key = unique()
    allowed, left, wait = await limits.take(key, 1.0, 4, cost=0)
    assert allowed and left == 4 and wait == 0
    await limits.take(key, 1.0, 4)
    allowed, left, wait = await limits.take(key, 1.0, 4, cost=0)
    assert allowed and left == near(3, abs=0.05) and wait == near(1, abs=0.05)


async def test_buckets_are_independent(limits: LimitState) -> None:
    first, second = unique(), unique()
    assert (await limits.take(first, 0.01, 1))[0]
    assert not (await limits.take(first, 0.01, 1))[0]
    assert (await limits.take(second, 0.01, 1))[0]


async def test_bad_bucket_parameters_are_refused(limits: LimitState) -> None:
    with pytest.raises(ConfigError):
        await limits.take(unique(), 0, 1)
    with pytest.raises(ConfigError):
        await limits.take(unique(), 1, 0)


async def test_counter_adds_and_reads(limits: LimitState) -> None:
    key = unique()
    assert await limits.get(key) == 0
    assert await limits.add(key, 5, 60) == 5
    assert await limits.add(key, 7, 60) == 12
    assert await limits.get(key) == 12


async def test_counter_expires_after_creation_not_after_last_add(limits: LimitState) -> None:
    key = unique()
    await limits.add(key, 1, 0.2)
    await asyncio.sleep(0.1)
    assert await limits.add(key, 1, 60) == 2  # a later ttl does not extend it
    await asyncio.sleep(0.15)
    assert await limits.get(key) == 0
    assert await limits.add(key, 3, 60) == 3  # a fresh counter after expiry


async def test_concurrent_takes_never_double_spend(
    replicas: tuple[LimitState, LimitState],
) -> None:
    key = unique()
    first, second = replicas
    calls = [(first if i % 2 else second).take(key, 0.001, 50) for i in range(200)]
    results = await asyncio.gather(*calls)
    assert sum(allowed for allowed, _, _ in results) == 50


async def test_redis_keys_are_prefixed_and_expire(redis_url: str) -> None:
    import redis.asyncio as redis

    limits = RedisLimits(redis_url)
    raw = redis.Redis.from_url(redis_url)
    key = unique()
    try:
        await limits.take(key, 1.0, 10)
        await limits.add(key + ":day", 4, 30)
        assert 0 < await raw.pttl(f"grounded:limits:{key}") <= 2000
        assert 0 < await raw.pttl(f"grounded:limits:{key}:day") <= 30_000
        await limits.take(key + ":peek", 1.0, 10, cost=0)
        assert not await raw.exists(f"grounded:limits:{key}:peek")  # a full bucket is no key
    finally:
        await raw.aclose()
        await limits.close()


async def test_redis_down_raises_state_unavailable() -> None:
    limits = RedisLimits(closed_port_url(), timeout=0.2)
    try:
        with pytest.raises(StateUnavailable, match="unavailable"):
            await limits.take("k", 1.0, 1)
        with pytest.raises(StateUnavailable):
            await limits.add("k", 1, 60)
        with pytest.raises(StateUnavailable):
            await limits.get("k")
    finally:
        await limits.close()


async def test_memory_limits_drop_idle_buckets_and_stay_bounded() -> None:
    now = [1000.0]
    limits = MemoryLimits(max_keys=10, clock=lambda: now[0])
    for i in range(5):
        await limits.take(f"k{i}", 1.0, 2)
        await limits.add(f"c{i}", 1, 30)
    assert len(limits) == 10
    now[0] += 61  # every bucket full again, every counter expired
    await limits.take("fresh", 1.0, 2)
    assert len(limits) == 1
    for i in range(100):
        await limits.take(f"many{i}", 1.0, 2)
        await limits.add(f"many{i}", 1, 30)
    assert len(limits) <= 20


# --- the policy ------------------------------------------------------------------------------

# 23:00 UTC, one hour before the daily quota resets.
LATE = datetime(2024, 5, 1, 23, 0, 0, tzinfo=UTC).timestamp()


def tier(**changes: int) -> TierSettings:
    values = {
        "requests_per_minute": 60,
        "burst": 2,
        "tokens_per_day": 100,
        "max_output_tokens": 50,
        "max_input_chars": 1000,
    }
    return TierSettings(name="test", **(values | changes))


def limiter(state: LimitState | None = None, now: list[float] | None = None) -> Limiter:
    clock = now if now is not None else [LATE]
    return Limiter(state or MemoryLimits(), clock=lambda: clock[0])


async def test_allowed_verdict_carries_openai_headers() -> None:
    verdict = await limiter().check("key", tier(), 10, 20)
    assert verdict.allowed and verdict.status == 200 and verdict.retry_after_s is None
    headers = verdict.headers
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"] in {"1s", "999ms"}
    assert headers["x-ratelimit-limit-tokens"] == "100"
    assert headers["x-ratelimit-remaining-tokens"] == "100"
    assert headers["x-ratelimit-reset-tokens"] == "1h0m0s"
    assert "retry-after" not in headers


async def test_input_too_large_is_refused_without_retry_after_or_charge() -> None:
    policy = limiter()
    verdict = await policy.check("key", tier(), 1001, None)
    assert (verdict.allowed, verdict.status, verdict.code) == (False, 429, "input_too_large")
    assert verdict.retry_after_s is None and "retry-after" not in verdict.headers
    assert "1001" in verdict.message and "1000" in verdict.message
    assert verdict.headers["x-ratelimit-remaining-requests"] == "2"  # read, not charged
    assert (await policy.check("key", tier(), 1000, None)).allowed


async def test_max_tokens_over_cap_is_refused() -> None:
    verdict = await limiter().check("key", tier(), 10, 51)
    assert (verdict.allowed, verdict.status, verdict.code) == (False, 429, "max_tokens_over_cap")
    assert "retry-after" not in verdict.headers
    assert "x-ratelimit-limit-requests" in verdict.headers


async def test_rate_limit_refusal_has_retry_after() -> None:
    policy = limiter()
    assert (await policy.check("key", tier(), 10, None)).allowed
    assert (await policy.check("key", tier(), 10, None)).allowed
    verdict = await policy.check("key", tier(), 10, None)
    assert (verdict.allowed, verdict.status, verdict.code) == (False, 429, "rate_limit_exceeded")
    assert verdict.retry_after_s is not None and 0.9 < verdict.retry_after_s <= 1.0
    assert verdict.headers["retry-after"] == "1"
    assert verdict.headers["x-ratelimit-remaining-requests"] == "0"
    assert (await policy.check("other", tier(), 10, None)).allowed  # per key


async def test_usage_accumulates_until_the_daily_quota_then_resets_next_day() -> None:
    now = [LATE]
    policy = limiter(now=now)
    await policy.record_usage("key", 60)
    verdict = await policy.check("key", tier(burst=10), 10, None)
    assert verdict.allowed and verdict.headers["x-ratelimit-remaining-tokens"] == "40"
    await policy.record_usage("key", 40)
    verdict = await policy.check("key", tier(burst=10), 10, None)
    assert (verdict.allowed, verdict.code) == (False, "daily_token_quota_exceeded")
    assert verdict.retry_after_s == 3600 and verdict.headers["retry-after"] == "3600"
    assert verdict.headers["x-ratelimit-remaining-tokens"] == "0"
    now[0] += 3601  # next UTC day, a new counter
    assert (await policy.check("key", tier(burst=10), 10, None)).allowed


async def test_checks_run_in_order_and_only_a_pass_charges_the_bucket() -> None:
    policy = limiter()
    await policy.record_usage("key", 500)  # over the daily quota
    codes = [
        (await policy.check("key", tier(), 5000, 500)).code,
        (await policy.check("key", tier(), 10, 500)).code,
        (await policy.check("key", tier(), 10, 10)).code,
    ]
    assert codes == ["input_too_large", "max_tokens_over_cap", "daily_token_quota_exceeded"]
    fresh = limiter()
    for _ in range(2):
        assert (await fresh.check("key", tier(tokens_per_day=0), 10, 10)).allowed
    await fresh.record_usage("key", 500)
    # Bucket empty and quota exceeded: the quota is reported first.
    assert (await fresh.check("key", tier(), 10, 10)).code == "daily_token_quota_exceeded"


async def test_a_tier_without_a_daily_quota_has_no_token_headers() -> None:
    policy = limiter()
    await policy.record_usage("key", 10**9)
    verdict = await policy.check("key", tier(tokens_per_day=0), 10, None)
    assert verdict.allowed and "x-ratelimit-limit-tokens" not in verdict.headers


async def test_limiter_on_shared_redis_state(redis_url: str) -> None:
    first, second = RedisLimits(redis_url), RedisLimits(redis_url)
    key = unique()
    try:
        one, two = limiter(first), limiter(second)
        await one.record_usage(key, 70)
        await two.record_usage(key, 30)
        verdict = await one.check(key, tier(), 10, None)
        assert verdict.code == "daily_token_quota_exceeded"
        assert verdict.headers["retry-after"] == "3600"
    finally:
        await first.close()
        await second.close()


async def test_unreachable_state_fails_open_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = RedisLimits(closed_port_url(), timeout=0.2)
    policy = limiter(state)
    try:
        with caplog.at_level(logging.WARNING, logger="grounded.gateway.limits"):
            first = await policy.check("key", tier(), 10, None)
            second = await policy.check("key", tier(), 10, None)
            await policy.record_usage("key", 50)
        for verdict in (first, second):
            assert verdict.allowed and verdict.status == 200
            assert verdict.headers == {"x-ratelimit-state": "unavailable"}
        warnings = [r for r in caplog.records if r.name == "grounded.gateway.limits"]
        assert len(warnings) == 1 and "failing open" in warnings[0].getMessage()
        # Checks that need no state still refuse.
        refused = await policy.check("key", tier(), 5000, None)
        assert (refused.allowed, refused.code) == (False, "input_too_large")
        assert refused.headers == {"x-ratelimit-state": "unavailable"}
    finally:
        await state.close()
