"""API keys: each belongs to a tenant and a tier, and only a hash of its secret is stored.

A secret reads ``gk_<key_id>_<random>``: the key id (12 hex digits) finds the row, and the
SHA-256 of the whole secret, compared in constant time, proves it. The secret is shown once,
when the key is created, and cannot be recovered afterwards. Backends: ``keys_sqlite``
(DATA_DIR/keys.db) and ``keys_postgres`` (table ``api_keys``, migration 0002).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from grounded.errors import InputError
from grounded.gateway.tenancy import TENANT_PATTERN
from grounded.settings import Settings

MAX_NAME_CHARS = 200
_SECRET = re.compile(r"gk_([0-9a-f]{12})_[A-Za-z0-9_-]{32,128}")
_PREFIX_CHARS = 11  # "gk_" and the first 8 hex digits of the key id


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    tier: str
    name: str
    created_at: float
    revoked_at: float | None
    prefix: str  # the start of the secret, for telling keys apart in listings

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# Both stores select these columns in this order, and read rows back with row_to_key.
KEY_COLUMNS = "key_id, tenant, tier, name, created_at, revoked_at, prefix"
INSERT_COLUMNS = "key_id, secret_hash, tenant, tier, name, prefix, created_at"
CREATE_ATTEMPTS = 3  # a fresh 48-bit key id colliding with a stored one is rare; thrice is absurd


def row_to_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(
        key_id=row[0],
        tenant=row[1],
        tier=row[2],
        name=row[3],
        created_at=float(row[4]),
        revoked_at=None if row[5] is None else float(row[5]),
        prefix=row[6],
    )


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key about to be stored: its row, and the secret to hand out once."""

    key: ApiKey
    secret: str
    secret_hash: str

    def row(self) -> tuple[str, str, str, str, str, str, float]:
        """The values of INSERT_COLUMNS, in that order."""
        key = self.key
        return (key.key_id, self.secret_hash, key.tenant, key.tier, key.name, key.prefix,
                key.created_at)  # fmt: skip


class KeyStore(Protocol):
    async def create(self, tenant: str, tier: str, name: str = "") -> tuple[ApiKey, str]:
        """Store a new key; returns it and its secret, which is not kept anywhere."""
        ...

    async def lookup(self, secret: str) -> ApiKey | None:
        """The active key with this secret; None if malformed, unknown or revoked."""
        ...

    async def list(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        """Keys, oldest first, optionally of one tenant; no secrets or hashes."""
        ...

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if it is unknown or already revoked."""
        ...

    async def close(self) -> None: ...


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The key id inside a well-formed secret, else None."""
    match = _SECRET.fullmatch(secret)
    return match[1] if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


def new_key(tenant: str, tier: str, name: str, tiers: Collection[str]) -> NewKey:
    """Validate a create request and mint a key with a fresh random secret."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InputError(
            f"invalid tenant {tenant!r}: use 1-32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    if tier not in tiers:
        raise InputError(f"unknown tier {tier!r} (tiers: {', '.join(sorted(tiers))})")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InputError(f"a key name must be printable and at most {MAX_NAME_CHARS} characters")
    key_id = secrets.token_hex(6)
    secret = f"gk_{key_id}_{secrets.token_urlsafe(24)}"
    key = ApiKey(
        key_id=key_id,
        tenant=tenant,
        tier=tier,
        name=name,
        created_at=time.time(),
        revoked_at=None,
        prefix=secret[:_PREFIX_CHARS],
    )
    return NewKey(key, secret, hash_secret(secret))


class CachedKeys:
    """A KeyStore that remembers lookups (found or not) for ``ttl_s`` seconds.

    Entries are keyed by the SHA-256 of the secret, never the secret. A revocation through
    this wrapper takes effect at once here; elsewhere (other replicas) within ``ttl_s``.
    """

    def __init__(
        self,
        inner: KeyStore,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._revocations = 0  # a lookup that overlapped a revoke must not cache its result

    async def create(self, tenant: str, tier: str, name: str = "") -> tuple[ApiKey, str]:
        return await self._inner.create(tenant, tier, name)

    async def lookup(self, secret: str) -> ApiKey | None:
        if self._ttl_s <= 0:
            return await self._inner.lookup(secret)
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            self._entries.move_to_end(digest)
            return cached[1]
        revocations = self._revocations
        key = await self._inner.lookup(secret)
        if revocations != self._revocations:
            return await self._inner.lookup(secret)
        self._entries[digest] = (now + self._ttl_s, key)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return key

    async def list(
        self, tenant: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        return await self._inner.list(tenant, include_revoked)

    async def revoke(self, key_id: str) -> bool:
        revoked = await self._inner.revoke(key_id)
        self._revocations += 1
        stale = [
            digest
            for digest, (_, key) in self._entries.items()
            if key is not None and key.key_id == key_id
        ]
        for digest in stale:
            del self._entries[digest]
        return revoked

    async def close(self) -> None:
        self._entries.clear()
        await self._inner.close()


def build_key_store(settings: Settings) -> KeyStore:
    """PostgreSQL when a store URL is set, else DATA_DIR/keys.db."""
    tiers = [tier.name for tier in settings.gateway.tiers]
    if settings.store_url is not None:
        from grounded.gateway.keys_postgres import PostgresKeyStore

        return PostgresKeyStore(settings.store_url.get_secret_value(), settings.postgres, tiers)

    from grounded.gateway.keys_sqlite import SqliteKeyStore

    return SqliteKeyStore(settings.data_dir / "keys.db", tiers)
