"""The gateway in one object: who is asking, may they, and when do they get a worker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from grounded.errors import RefusedError
from grounded.gateway.admission import AdmissionError, AdmissionQueue
from grounded.gateway.keys import KeyStore
from grounded.gateway.limits import Limiter
from grounded.gateway.tenancy import DEFAULT_TENANT, Principal
from grounded.gateway.workers import WorkerPool
from grounded.settings import GatewaySettings

_log = logging.getLogger("grounded.gateway")
Release = Callable[[], None]


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        keys: KeyStore | None,
        limiter: Limiter,
        pools: Mapping[str, WorkerPool],
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._limiter = limiter
        self.pools = dict(pools)
        self.queues = {
            name: AdmissionQueue(name, pool.capacity, settings.queue_size, settings.queue_timeout_s)
            for name, pool in self.pools.items()
        }
        for name, pool in self.pools.items():
            pool.on_change = self.queues[name].notify
        self._admin_hash = (
            _digest(settings.admin_key.get_secret_value()) if settings.admin_key else None
        )
        # Usage is recorded by one background task: a task per request cost more than the
        # recording itself on the gateway's hottest path.
        self._usage: asyncio.Queue[tuple[str, int, str | None]] = asyncio.Queue(maxsize=100_000)
        self._recorder: asyncio.Task[None] | None = None

    @property
    def keys(self) -> KeyStore | None:
        return self._keys

    def start(self) -> None:
        for pool in self.pools.values():
            pool.start()
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_usage())

    async def _record_usage(self) -> None:
        while True:
            key_id, tokens, user = await self._usage.get()
            try:
                await self._limiter.record_usage(key_id, tokens, user)
            except Exception:  # a failed write must not stop all later ones
                _log.exception("could not record usage of key %s", key_id)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.settings.auth:
            return Principal(DEFAULT_TENANT, self.settings.tier(self.settings.open_tier))
        secret = _bearer(authorization)
        found = await self._keys.lookup(secret) if secret and self._keys else None
        if found is None:
            raise RefusedError(
                "a valid API key is required: send `Authorization: Bearer <key>` "
                "(create one with `grounded keys create`)",
                401,
                "invalid_api_key",
                {"www-authenticate": "Bearer"},
            )
        try:
            tier = self.settings.tier(found.tier)
        except KeyError:
            raise RefusedError(
                f"this key's tier {found.tier!r} is not configured; ask the operator",
                403,
                "tier_unknown",
            ) from None
        return Principal(found.tenant, tier, found.key_id)

    def authorize_admin(self, authorization: str | None) -> None:
        if self._admin_hash is None:
            raise RefusedError(
                "the admin API is off: set GROUNDED_GATEWAY__ADMIN_KEY", 403, "admin_disabled"
            )
        secret = _bearer(authorization)
        if not secret or not hmac.compare_digest(_digest(secret), self._admin_hash):
            raise RefusedError(
                "the admin API needs the admin key",
                401,
                "invalid_admin_key",
                {"www-authenticate": "Bearer"},
            )

    async def check(
        self,
        principal: Principal,
        input_chars: int,
        max_tokens: int | None,
        user: str | None = None,
    ) -> dict[str, str]:
        """Rate limit, quota and size caps; returns the x-ratelimit-* headers or raises 429."""
        if principal.key_id is None:
            # Auth off: nobody to charge, so no rates or quotas; the size caps still hold.
            verdict = self._limiter.check_size(principal.tier, input_chars, max_tokens)
        else:
            verdict = await self._limiter.check(
                principal.key_id, principal.tier, input_chars, max_tokens, user
            )
        if not verdict.allowed:
            raise RefusedError(verdict.message, verdict.status, verdict.code, verdict.headers)
        return verdict.headers

    def charge(self, principal: Principal, tokens: int, user: str | None = None) -> None:
        """Add real usage to the daily quota, in the background (never delays a response)."""
        if principal.key_id is None or tokens <= 0:
            return
        try:
            self._usage.put_nowait((principal.key_id, tokens, user))
        except asyncio.QueueFull:
            _log.warning(
                "usage queue full: %d tokens of key %s not counted", tokens, principal.key_id
            )

    async def admit(self, model: str, priority: int) -> Release:
        """Wait for a slot on the model's workers; AdmissionError when shed or timed out."""
        queue = self.queues.get(model)
        if queue is None:
            return _nothing
        lease = await queue.acquire(priority)
        return lease.release

    def try_admit(self, model: str, priority: int) -> Release | None:
        """A slot at once, or None if the model's workers are busy (never waits)."""
        queue = self.queues.get(model)
        if queue is None:
            return _nothing
        lease = queue.try_acquire(priority)
        return None if lease is None else lease.release

    def refusal(self, error: AdmissionError) -> RefusedError:
        retry = str(max(1, round(error.retry_after_s)))
        return RefusedError(str(error), error.status, error.code, {"retry-after": retry})

    def status(self) -> dict[str, Any]:
        return {
            name: {"queue": self.queues[name].stats(), "workers": pool.snapshot()}
            for name, pool in self.pools.items()
        }

    async def close(self) -> None:
        if self._recorder is not None:
            deadline = asyncio.get_running_loop().time() + 2.0
            while not self._usage.empty() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)  # let the last usage reach the counters
            self._recorder.cancel()
        if self._keys is not None:
            await self._keys.close()
        await self._limiter.close()
        for pool in self.pools.values():
            await pool.close()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _nothing() -> None:
    return None
