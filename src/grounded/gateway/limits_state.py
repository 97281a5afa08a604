"""Where rate limits and quotas keep their numbers: token buckets and expiring counters, in
process by default and in Redis when several replicas must share them (`GROUNDED_STATE_URL`).

Redis being unreachable raises `StateUnavailable`; the caller decides what that means (the
limiter lets requests through rather than failing them)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from grounded.cache.state import StateUnavailable, reachable
from grounded.errors import ConfigError

__all__ = ["LimitState", "MemoryLimits", "RedisLimits", "StateUnavailable"]

PREFIX = "grounded:limits:"


class LimitState(Protocol):
    async def take(
        self, key: str, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> tuple[bool, float, float]:
        """Spend `cost` tokens from the bucket `key` (full = `burst`, refilled at `rate_per_s`).

        Returns (allowed, tokens left, seconds): when refused, the seconds until `cost` tokens
        are there; when allowed, the seconds until the bucket is full again. `cost=0` reads
        the bucket without spending."""
        ...

    async def add(self, key: str, amount: int, ttl_s: float) -> int:
        """Add to a counter and return the new total; it expires `ttl_s` after creation."""
        ...

    async def get(self, key: str) -> int:
        """A counter's total; 0 when absent or expired."""
        ...

    async def close(self) -> None: ...


def _validate(rate_per_s: float, burst: float, cost: float) -> None:
    if rate_per_s <= 0 or burst <= 0 or cost < 0:
        raise ConfigError(
            f"token bucket needs rate > 0, burst > 0, cost >= 0 "
            f"(got rate={rate_per_s}, burst={burst}, cost={cost})"
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    idle_at: float  # when the bucket is full again, i.e. no different from an absent one


@dataclass(slots=True)
class _Counter:
    total: int
    idle_at: float  # expiry


class MemoryLimits:
    """One process only. Bounded: full buckets and expired counters are dropped on a sweep
    (at most once a minute, or when `max_keys` is reached); past the bound the least recently
    used go first, which at worst forgives one key's recent use."""

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ConfigError(f"max_keys must be at least 1 (got {max_keys})")
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._counters: OrderedDict[str, _Counter] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets) + len(self._counters)

    async def take(
        self, key: str, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> tuple[bool, float, float]:
        _validate(rate_per_s, burst, cost)
        now = self._clock()
        self._maybe_sweep(now, key in self._buckets)
        bucket = self._buckets.get(key)
        tokens = burst
        if bucket is not None:
            tokens = min(burst, bucket.tokens + max(0.0, now - bucket.stamp) * rate_per_s)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
            wait = (burst - tokens) / rate_per_s
        else:
            wait = (cost - tokens) / rate_per_s
        full_in = (burst - tokens) / rate_per_s
        if full_in > 0:
            self._buckets[key] = _Bucket(tokens, now, now + full_in)
            self._buckets.move_to_end(key)
        else:
            self._buckets.pop(key, None)
        return allowed, tokens, wait

    async def add(self, key: str, amount: int, ttl_s: float) -> int:
        now = self._clock()
        self._maybe_sweep(now, key in self._counters)
        counter = self._counters.get(key)
        if counter is None or counter.idle_at <= now:
            counter = self._counters[key] = _Counter(0, now + ttl_s)
        counter.total += amount
        self._counters.move_to_end(key)
        return counter.total

    async def get(self, key: str) -> int:
        counter = self._counters.get(key)
        if counter is None:
            return 0
        if counter.idle_at <= self._clock():
            del self._counters[key]
            return 0
        return counter.total

    async def close(self) -> None:
        return None

    def _maybe_sweep(self, now: float, known: bool) -> None:
        full = not known and max(len(self._buckets), len(self._counters)) >= self._max_keys
        if full or now - self._swept >= 60:
            self._swept = now
            _prune(self._buckets, now, self._max_keys)
            _prune(self._counters, now, self._max_keys)


_Entry = TypeVar("_Entry", _Bucket, _Counter)


def _prune(entries: OrderedDict[str, _Entry], now: float, max_keys: int) -> None:
    for stale in [key for key, entry in entries.items() if entry.idle_at <= now]:
        del entries[stale]
    if len(entries) >= max_keys:
        # Leave a tenth free so a full table is not swept again on every new key.
        keep = max_keys - max(1, max_keys // 10)
        while len(entries) > keep:
            entries.popitem(last=False)


# One atomic step per call, so replicas cannot spend the same token twice. The time comes
# from Redis (`TIME`), not from each replica's clock. Floats leave the script as strings:
# Redis truncates Lua numbers to integers.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1])
local stamp = tonumber(saved[2])
if tokens == nil or stamp == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
end
local allowed = 0
local wait
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
  wait = (burst - tokens) / rate
else
  wait = (cost - tokens) / rate
end
local full_in = (burst - tokens) / rate
if full_in > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(full_in * 1000) + 1000)
else
  redis.call('DEL', KEYS[1])
end
return {allowed, tostring(tokens), tostring(wait)}
"""


class RedisLimits:
    """Shared by every replica. Buckets are hashes that expire once full again; counters are
    integers that expire `ttl_s` after they were created. Keys start with `grounded:limits:`."""

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._take = self._redis.register_script(_TAKE)

    async def take(
        self, key: str, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> tuple[bool, float, float]:
        _validate(rate_per_s, burst, cost)
        with reachable("rate-limit state"):
            reply: Any = await self._take(
                keys=[PREFIX + key], args=[repr(rate_per_s), repr(burst), repr(cost)]
            )
        allowed, tokens, wait = reply
        return int(allowed) == 1, float(tokens), float(wait)

    async def add(self, key: str, amount: int, ttl_s: float) -> int:
        name = PREFIX + key
        with reachable("rate-limit state"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                pipe.pexpire(name, max(1, int(ttl_s * 1000)), nx=True)
                total, _ = await pipe.execute()
        return int(total)

    async def get(self, key: str) -> int:
        with reachable("rate-limit state"):
            value: Any = await self._redis.get(PREFIX + key)
        return int(value) if value is not None else 0

    async def close(self) -> None:
        await self._redis.aclose()
