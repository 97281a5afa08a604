"""API keys on both backends against one contract (only hashes stored, constant-time checks,
revocation), the lookup cache in front of them, and the `grounded keys` commands."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from grounded.errors import InputError
from grounded.gateway.keys import (
    ApiKey,
    CachedKeys,
    KeyStore,
    build_key_store,
    hash_secret,
)
from grounded.gateway.keys_postgres import PostgresKeyStore
from grounded.gateway.keys_sqlite import SqliteKeyStore
from grounded.gateway.tenancy import DEFAULT_TENANT
from grounded.settings import load_settings
from grounded.store.postgres.connect import connect_once
from grounded.store.postgres.migrate import LATEST, current_version
from tests.conftest import run_cli
from tests.support.postgres import fresh_schema

pytestmark = pytest.mark.anyio

TIERS = ("free", "standard", "premium")
SECRET = re.compile(r"gk_[0-9a-f]{12}_[A-Za-z0-9_-]{32,}")


@dataclass
class Backend:
    store: KeyStore
    stored_text: Callable[[], Awaitable[str]]  # everything the backend wrote, as text


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "keys.db"

        async def sqlite_text() -> str:
            files = sorted(tmp_path.glob("keys.db*"))  # the WAL holds fresh writes
            return "\n".join(f.read_bytes().decode("latin-1") for f in files)

        store: KeyStore = SqliteKeyStore(path, TIERS)
        yield Backend(store, sqlite_text)
    else:
        url: str = request.getfixturevalue("postgres_url")
        schema = await asyncio.to_thread(fresh_schema, url)  # it runs its own event loop

        async def postgres_text() -> str:
            conn = await connect_once(url, schema)
            try:
                rows = await (await conn.execute("SELECT * FROM api_keys")).fetchall()
            finally:
                await conn.close()
            return repr(rows)

        store = PostgresKeyStore(url, schema, TIERS)
        yield Backend(store, postgres_text)
    await store.close()


class Counting:
    """A KeyStore that counts the lookups reaching it."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.lookups = 0

    async def create(self, tenant: str, tier: str, name: str = "") -> tuple[ApiKey, str]:
        return await self.inner.create(tenant, tier, name)

    async def lookup(self, secret: str) -> ApiKey | None:
        self.lookups += 1
        return await self.inner.lookup(secret)

    async def list(self, tenant: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        return await self.inner.list(tenant, include_revoked)

    async def revoke(self, key_id: str) -> bool:
        return await self.inner.revoke(key_id)

    async def close(self) -> None:
        await self.inner.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the contract ---------------------------------------------------------------------------


async def test_create_then_lookup_returns_tenant_and_tier(backend: Backend) -> None:
    key, secret = await backend.store.create("acme", "premium", "ci bot")
    assert SECRET.fullmatch(secret)
    assert secret.startswith(f"gk_{key.key_id}_")
    assert key.prefix == secret[:11]
    assert (key.tenant, key.tier, key.name, key.revoked_at) == ("acme", "premium", "ci bot", None)

    found = await backend.store.lookup(secret)
    assert found == key


async def test_a_wrong_secret_with_a_real_key_id_is_refused(backend: Backend) -> None:
    key, secret = await backend.store.create("acme", "standard")
    forged = f"gk_{key.key_id}_{'A' * 32}"
    assert await backend.store.lookup(forged) is None
    assert await backend.store.lookup(secret[:-1] + ("a" if secret[-1] != "a" else "b")) is None
    assert await backend.store.lookup(secret) is not None


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "gk_",
        "Bearer gk_",
        "gk_0123456789ab",
        "gk_0123456789ab_short",
        "gk_0123456789AB_" + "a" * 32,
        "gk_0123456789ab_" + "a" * 32 + "!",
        "gk_0123456789ab_" + "é" * 32,
        "gk_0123456789ab_" + "a" * 10_000,
        "sk-0123456789abcdef0123456789abcdef",
    ],
)
async def test_a_malformed_secret_is_refused(backend: Backend, malformed: str) -> None:
    await backend.store.create("acme", "standard")
    assert await backend.store.lookup(malformed) is None


async def test_a_revoked_key_stops_working(backend: Backend) -> None:
    key, secret = await backend.store.create("acme", "standard")
    other, other_secret = await backend.store.create("acme", "standard")

    assert await backend.store.revoke(key.key_id) is True
    assert await backend.store.lookup(secret) is None
    assert await backend.store.lookup(other_secret) == other
    assert await backend.store.revoke(key.key_id) is False  # already revoked
    assert await backend.store.revoke("0123456789ab") is False  # unknown

    assert [k.key_id for k in await backend.store.list()] == [other.key_id]
    listed = {k.key_id: k for k in await backend.store.list(include_revoked=True)}
    assert set(listed) == {key.key_id, other.key_id}
    revoked_at = listed[key.key_id].revoked_at
    assert revoked_at is not None and revoked_at >= key.created_at


async def test_list_filters_by_tenant_and_never_shows_secrets(backend: Backend) -> None:
    a1, s1 = await backend.store.create("acme", "standard", "first")
    a2, s2 = await backend.store.create("acme", "free", "second")
    b1, s3 = await backend.store.create("globex", "premium")

    assert await backend.store.list("acme") == [a1, a2]  # oldest first
    assert await backend.store.list("globex") == [b1]
    assert await backend.store.list("initech") == []
    everything = await backend.store.list()
    assert everything == [a1, a2, b1]
    text = repr(everything)
    for secret in (s1, s2, s3):
        assert secret not in text
        assert hash_secret(secret) not in text


async def test_the_secret_itself_is_never_stored(backend: Backend) -> None:
    secrets = [(await backend.store.create("acme", "standard", f"key {i}"))[1] for i in range(3)]
    stored = await backend.stored_text()
    for secret in secrets:
        assert hash_secret(secret) in stored  # the backend wrote the row we are looking at
        assert secret not in stored
        assert secret.split("_", 2)[2] not in stored  # nor its random part alone


@pytest.mark.parametrize(
    ("tenant", "tier", "name", "complaint"),
    [
        ("Acme", "standard", "", "invalid tenant"),
        ("", "standard", "", "invalid tenant"),
        ("-acme", "standard", "", "invalid tenant"),
        ("acme\n", "standard", "", "invalid tenant"),
        ("a" * 33, "standard", "", "invalid tenant"),
        ("acme:x", "standard", "", "invalid tenant"),
        ("acme", "gold", "", "unknown tier 'gold'"),
        ("acme", "standard", "x" * 201, "at most 200"),
        ("acme", "standard", "line\nbreak", "printable"),
    ],
)
async def test_bad_tenants_tiers_and_names_are_rejected(
    backend: Backend, tenant: str, tier: str, name: str, complaint: str
) -> None:
    with pytest.raises(InputError, match=complaint):
        await backend.store.create(tenant, tier, name)
    assert await backend.store.list(include_revoked=True) == []


async def test_the_longest_tenant_and_the_default_tenant_are_accepted(backend: Backend) -> None:
    for tenant in ("a" * 32, "0-a_b", DEFAULT_TENANT):
        key, secret = await backend.store.create(tenant, "free")
        assert await backend.store.lookup(secret) == key


async def test_cached_lookups_reach_the_store_once_per_ttl(backend: Backend) -> None:
    counting = Counting(backend.store)
    clock = Clock()
    cached = CachedKeys(counting, ttl_s=5, clock=clock)
    key, secret = await cached.create("acme", "standard")
    unknown = f"gk_{'0' * 12}_{'x' * 32}"

    for _ in range(3):
        assert await cached.lookup(secret) == key
        assert await cached.lookup(unknown) is None  # misses are cached too
    assert counting.lookups == 2
    assert secret not in repr(vars(cached))  # entries are keyed by a hash

    clock.now += 5.1
    assert await cached.lookup(secret) == key
    assert counting.lookups == 3


async def test_revocation_through_the_cache_is_immediate(backend: Backend) -> None:
    clock = Clock()
    cached = CachedKeys(backend.store, ttl_s=60, clock=clock)
    key, secret = await cached.create("acme", "standard")
    assert await cached.lookup(secret) == key

    assert await cached.revoke(key.key_id) is True
    assert await cached.lookup(secret) is None


async def test_revocation_elsewhere_shows_within_the_ttl(backend: Backend) -> None:
    clock = Clock()
    cached = CachedKeys(backend.store, ttl_s=5, clock=clock)
    key, secret = await backend.store.create("acme", "standard")
    assert await cached.lookup(secret) == key

    await backend.store.revoke(key.key_id)  # another replica, say
    assert await cached.lookup(secret) == key
    clock.now += 5.1
    assert await cached.lookup(secret) is None


async def test_the_cache_is_bounded(backend: Backend) -> None:
    counting = Counting(backend.store)
    cached = CachedKeys(counting, ttl_s=60, max_entries=2, clock=Clock())
    secrets = [(await cached.create("acme", "standard"))[1] for _ in range(3)]
    for secret in secrets:
        await cached.lookup(secret)
    await cached.lookup(secrets[2])
    await cached.lookup(secrets[1])
    assert counting.lookups == 3
    await cached.lookup(secrets[0])  # the oldest was dropped
    assert counting.lookups == 4


async def test_no_cache_when_the_ttl_is_zero(backend: Backend) -> None:
    counting = Counting(backend.store)
    cached = CachedKeys(counting, ttl_s=0)
    _, secret = await cached.create("acme", "standard")
    await cached.lookup(secret)
    await cached.lookup(secret)
    assert counting.lookups == 2


# -- backend specifics ----------------------------------------------------------------------


async def test_the_migration_brings_postgres_to_the_latest_version(postgres_url: str) -> None:
    schema = await asyncio.to_thread(fresh_schema, postgres_url)
    conn = await connect_once(postgres_url, schema)
    try:
        assert LATEST >= 2
        assert await current_version(conn, schema.schema_name) == LATEST
        row = await (await conn.execute("SELECT to_regclass('api_keys')")).fetchone()
        assert row is not None and row[0] is not None
    finally:
        await conn.close()


def test_the_factory_picks_the_backend_from_the_settings(tmp_path: Path) -> None:
    embedded = build_key_store(load_settings(data_dir=tmp_path))
    assert isinstance(embedded, SqliteKeyStore)
    assert (tmp_path / "keys.db").is_file()
    shared = build_key_store(load_settings(store_url="postgresql://u:p@127.0.0.1:9/db"))
    assert isinstance(shared, PostgresKeyStore)


def test_the_sqlite_rows_hold_a_hash_not_the_secret(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db", TIERS)
    key, secret = asyncio.run(store.create("acme", "standard"))
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        row = conn.execute(
            "SELECT secret_hash, prefix FROM api_keys WHERE key_id = ?", (key.key_id,)
        ).fetchone()
    conn.close()
    assert row == (hash_secret(secret), secret[:11])


# -- the command line -----------------------------------------------------------------------


def test_keys_commands_create_list_and_revoke(tmp_path: Path, model_cache: Path) -> None:
    data_dir = tmp_path / "data"
    created = run_cli(
        "keys", "create", "--tenant", "acme", "--name", "ci", "--json",
        data_dir=data_dir, model_cache=model_cache,
    )  # fmt: skip
    made = json.loads(created.stdout)
    assert set(made) == {"key", "key_id", "tenant", "tier", "name"}
    assert (made["tenant"], made["tier"], made["name"]) == ("acme", "standard", "ci")
    secret = made["key"]
    assert SECRET.fullmatch(secret) and made["key_id"] in secret

    store = SqliteKeyStore(data_dir / "keys.db", TIERS)
    found = asyncio.run(store.lookup(secret))
    assert found is not None and found.key_id == made["key_id"]

    listed = run_cli("keys", "list", "--json", data_dir=data_dir, model_cache=model_cache)
    rows = json.loads(listed.stdout)
    assert [(r["key_id"], r["tenant"], r["tier"]) for r in rows] == [
        (made["key_id"], "acme", "standard")
    ]
    table = run_cli("keys", "list", "--tenant", "acme", data_dir=data_dir, model_cache=model_cache)
    assert made["key_id"] in table.stdout
    for output in (listed.stdout, table.stdout):
        assert secret not in output and hash_secret(secret) not in output

    run_cli("keys", "revoke", made["key_id"], data_dir=data_dir, model_cache=model_cache)
    assert asyncio.run(store.lookup(secret)) is None
    again = run_cli(
        "keys", "revoke", made["key_id"], data_dir=data_dir, model_cache=model_cache, check=False
    )
    assert again.returncode == 1 and "already revoked" in again.stderr
    unknown = run_cli(
        "keys", "revoke", "0123456789ab", data_dir=data_dir, model_cache=model_cache, check=False
    )
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr

    bad = run_cli(
        "keys", "create", "--tenant", "acme", "--tier", "gold",
        data_dir=data_dir, model_cache=model_cache, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown tier 'gold'" in bad.stderr


def test_keys_commands_use_postgres_when_a_store_url_is_set(
    tmp_path: Path, model_cache: Path, postgres_url: str
) -> None:
    schema = fresh_schema(postgres_url)
    env = {
        "GROUNDED_STORE_URL": postgres_url,
        "GROUNDED_POSTGRES__SCHEMA_NAME": schema.schema_name,
    }
    data_dir = tmp_path / "data"
    created = run_cli(
        "keys", "create", "--tenant", "globex", "--tier", "premium", "--json",
        data_dir=data_dir, model_cache=model_cache, env=env,
    )  # fmt: skip
    made = json.loads(created.stdout)
    listed = run_cli("keys", "list", "--json", data_dir=data_dir, model_cache=model_cache, env=env)
    assert [r["key_id"] for r in json.loads(listed.stdout)] == [made["key_id"]]
    assert not (data_dir / "keys.db").exists()
