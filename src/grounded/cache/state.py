"""Where cache entries live: a small key-value + append-log contract with an in-process
default and Redis for several replicas (`GROUNDED_STATE_URL`)."""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol


class StateUnavailable(Exception):
    """The shared state server cannot be reached; callers carry on without the cache."""


class CacheState(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def append(self, log: str, item: bytes) -> None:
        """Add to an ordered log that every replica reads (the semantic index feed)."""
        ...

    async def read(self, log: str, after: str) -> list[tuple[str, bytes]]:
        """Log items after position `after` ("" = from the start), with their positions."""
        ...

    async def flush(self, prefix: str) -> int:
        """Delete every key and log starting with `prefix`; returns how many."""
        ...

    async def close(self) -> None: ...


class MemoryState:
    """In-process, bounded: least recently used entries go first, expired ones on access.

    Logs are bounded together, oldest items first. Each log item points at an entry (the
    semantic index feed), so by default they hold as many items as there can be entries.
    """

    def __init__(self, max_entries: int = 10_000, max_log: int | None = None) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._logs: dict[str, list[tuple[int, bytes]]] = {}
        # The log of every item held, oldest first: which log gives up its first item next.
        self._log_order: deque[str] = deque()
        self._next = 1
        self._max_entries = max_entries
        self._max_log = max_entries if max_log is None else max_log

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._entries[key] = (time.monotonic() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def append(self, log: str, item: bytes) -> None:
        self._logs.setdefault(log, []).append((self._next, item))
        self._log_order.append(log)
        self._next += 1
        while len(self._log_order) > self._max_log:
            oldest = self._log_order.popleft()
            items = self._logs[oldest]
            del items[0]
            if not items:
                del self._logs[oldest]  # logs are per scope: empty ones must not pile up

    async def read(self, log: str, after: str) -> list[tuple[str, bytes]]:
        items = self._logs.get(log, [])
        first = bisect.bisect_right(items, int(after) if after else 0, key=lambda pair: pair[0])
        return [(str(n), item) for n, item in items[first:]]

    async def flush(self, prefix: str) -> int:
        keys = [k for k in self._entries if k.startswith(prefix)]
        logs = [k for k in self._logs if k.startswith(prefix)]
        for key in keys:
            del self._entries[key]
        for log in logs:
            del self._logs[log]
        if logs:
            self._log_order = deque(log for log in self._log_order if log in self._logs)
        return len(keys) + len(logs)

    async def close(self) -> None:
        return None


class RedisState:
    """Shared by every replica: entries are keys with a TTL, logs are Redis streams."""

    def __init__(self, url: str, max_log: int = 100_000, timeout: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._max_log = max_log

    async def get(self, key: str) -> bytes | None:
        with reachable():
            value: Any = await self._redis.get(key)
        return bytes(value) if value is not None else None

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        with reachable():
            await self._redis.set(key, value, px=max(1, int(ttl_seconds * 1000)))

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            with reachable():
                await self._redis.delete(*keys)

    async def append(self, log: str, item: bytes) -> None:
        with reachable():
            await self._redis.xadd(log, {b"v": item}, maxlen=self._max_log, approximate=True)

    async def read(self, log: str, after: str) -> list[tuple[str, bytes]]:
        start = f"({after}" if after else "-"
        with reachable():
            rows: Any = await self._redis.xrange(log, min=start, max="+")
        return [(_text(i), bytes(fields[b"v"])) for i, fields in rows or []]

    async def flush(self, prefix: str) -> int:
        removed = 0
        with reachable():
            async for key in self._redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
                removed += int(await self._redis.delete(key))
        return removed

    async def close(self) -> None:
        await self._redis.aclose()


@contextmanager
def reachable(what: str = "cache state") -> Iterator[None]:
    """Redis errors become StateUnavailable: callers fail open on it, not with a 500."""
    from redis.exceptions import RedisError

    try:
        yield
    except (RedisError, OSError) as exc:
        raise StateUnavailable(f"{what} server unavailable: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
