"""The limit policy per API key and tier: request size, output cap, tokens per UTC day and
a requests-per-minute token bucket, with OpenAI's `x-ratelimit-*` headers on every answer.

When the shared state cannot be reached the limiter fails open: an outage of Redis must not
take the API down with it. The daily quota is soft: usage is recorded after the answer, so
requests already running when it is reached still finish."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from grounded.cache.state import StateUnavailable
from grounded.gateway.limits_state import LimitState
from grounded.settings import TierSettings

__all__ = ["Limiter", "Verdict"]

logger = logging.getLogger(__name__)

DAY_S = 86_400
# Counters outlive their UTC day a little, so a replica whose clock is behind Redis's
# still finds today's total until its own midnight.
DAY_GRACE_S = 300
WARN_EVERY_S = 60.0


@dataclass
class Verdict:
    allowed: bool
    status: int
    code: str
    message: str
    retry_after_s: float | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Refusal:
    code: str
    message: str
    retry_after_s: float | None = None


class Limiter:
    def __init__(self, state: LimitState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self._warned_at: float | None = None

    async def check(
        self,
        key_id: str,
        tier: TierSettings,
        input_chars: int,
        max_tokens: int | None,
        user: str | None = None,
    ) -> Verdict:
        """Decide one request. The request bucket is only charged when every earlier check
        passes; a refused request only reads it (for the headers). Token headers are left
        out for a tier without a daily quota."""
        now = self._clock()
        refusal = _size_refusal(tier, input_chars, max_tokens)
        headers: dict[str, str] = {}
        try:
            if tier.tokens_per_day > 0:
                used = await self._state.get(_day_key(key_id, now))
                left_in_day = _seconds_to_midnight(now)
                headers |= _token_headers(tier.tokens_per_day, used, left_in_day)
                if refusal is None and used >= tier.tokens_per_day:
                    refusal = _Refusal(
                        "daily_token_quota_exceeded",
                        f"This key used {used} of its {tier.tokens_per_day} tokens for today "
                        f"(tier {tier.name!r}); the quota resets at 00:00 UTC.",
                        left_in_day,
                    )
            if refusal is None and user and tier.tokens_per_user_per_day > 0:
                used = await self._state.get(_day_key(_user_id(key_id, user), now))
                if used >= tier.tokens_per_user_per_day:
                    refusal = _Refusal(
                        "user_token_quota_exceeded",
                        f"This user used {used} of their {tier.tokens_per_user_per_day} tokens "
                        "for today; the quota resets at 00:00 UTC.",
                        _seconds_to_midnight(now),
                    )
            per_minute = tier.requests_per_minute
            allowed, remaining, wait = await self._state.take(
                _bucket_key(key_id),
                per_minute / 60,
                float(tier.burst or per_minute),
                0.0 if refusal is not None else 1.0,
            )
        except StateUnavailable as exc:
            self._warn(exc)
            headers = {"x-ratelimit-state": "unavailable"}
            if refusal is None:
                return Verdict(True, 200, "", "", None, headers)
            return _refused(refusal, headers)
        headers |= {
            "x-ratelimit-limit-requests": str(per_minute),
            "x-ratelimit-remaining-requests": str(math.floor(remaining)),
            "x-ratelimit-reset-requests": _duration(wait),
        }
        if refusal is None and not allowed:
            refusal = _Refusal(
                "rate_limit_exceeded",
                f"Rate limit of {per_minute} requests per minute reached (tier {tier.name!r}); "
                f"retry in {_duration(wait)}.",
                wait,
            )
        if refusal is not None:
            return _refused(refusal, headers)
        return Verdict(True, 200, "", "", None, headers)

    def check_size(self, tier: TierSettings, input_chars: int, max_tokens: int | None) -> Verdict:
        """Only the caps that need no stored state (used when there is no key to charge)."""
        refusal = _size_refusal(tier, input_chars, max_tokens)
        return Verdict(True, 200, "", "", None) if refusal is None else _refused(refusal, {})

    async def record_usage(self, key_id: str, tokens: int, user: str | None = None) -> None:
        """Add a finished request's prompt + completion tokens to today's totals (the key's,
        and its end user's when the request named one)."""
        if tokens <= 0:
            return
        now = self._clock()
        ttl = _seconds_to_midnight(now) + DAY_GRACE_S
        try:
            await self._state.add(_day_key(key_id, now), tokens, ttl)
            if user:
                await self._state.add(_day_key(_user_id(key_id, user), now), tokens, ttl)
        except StateUnavailable as exc:
            self._warn(exc)

    async def close(self) -> None:
        await self._state.close()

    def _warn(self, exc: StateUnavailable) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning("rate limits not enforced (failing open): %s", exc)


def _size_refusal(tier: TierSettings, input_chars: int, max_tokens: int | None) -> _Refusal | None:
    if input_chars > tier.max_input_chars:
        return _Refusal(
            "input_too_large",
            f"The request's messages are {input_chars} characters; tier {tier.name!r} allows "
            f"{tier.max_input_chars}.",
        )
    if max_tokens is not None and max_tokens > tier.max_output_tokens:
        return _Refusal(
            "max_tokens_over_cap",
            f"max_tokens is {max_tokens}; tier {tier.name!r} allows at most "
            f"{tier.max_output_tokens}.",
        )
    return None


def _refused(refusal: _Refusal, headers: dict[str, str]) -> Verdict:
    retry = refusal.retry_after_s
    if retry is not None:
        headers = headers | {"retry-after": str(max(1, math.ceil(retry)))}
    return Verdict(False, 429, refusal.code, refusal.message, retry, headers)


def _token_headers(limit: int, used: int, reset_s: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-tokens": str(max(0, limit - used)),
        "x-ratelimit-reset-tokens": _duration(reset_s),
    }


def _bucket_key(key_id: str) -> str:
    return f"requests:{key_id}"


def _day_key(key_id: str, now: float) -> str:
    return f"tokens:{key_id}:{_date(int(now // DAY_S))}"


@lru_cache(maxsize=4)
def _date(day: int) -> str:
    return f"{datetime.fromtimestamp(day * DAY_S, UTC):%Y-%m-%d}"


def _user_id(key_id: str, user: str) -> str:
    # The end user's name is the client's text: hash it rather than put it in a state key.
    return f"{key_id}:user:{hashlib.sha256(user.encode()).hexdigest()[:24]}"


def _seconds_to_midnight(now: float) -> float:
    # Unix time has no leap seconds, so every UTC day is exactly DAY_S long.
    return DAY_S - now % DAY_S


def _duration(seconds: float) -> str:
    """OpenAI's reset format: "20ms", "1.2s", "6m0s", "23h59m59s"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    hours, rest = divmod(round(seconds, 1), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.1f}".removesuffix(".0") + "s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text
