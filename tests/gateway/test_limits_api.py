"""Rate limits, quotas and caps over real HTTP: 429 in OpenAI's shape with Retry-After and
x-ratelimit-* headers; and two `grounded serve` processes sharing one quota through Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings
from tests.support.serve_process import serve_process

TIGHT = {
    "name": "tight",
    "priority": 0,
    "requests_per_minute": 3,
    "tokens_per_day": 0,
    "max_output_tokens": 64,
    "max_input_chars": 300,
}
THRIFTY = {"name": "thrifty", "requests_per_minute": 100, "tokens_per_day": 40}
ROOMY = {"name": "standard", "requests_per_minute": 1000}
PER_USER = {"name": "per-user", "requests_per_minute": 1000, "tokens_per_user_per_day": 30}
EMBED = {"name": "embed", "requests_per_minute": 2, "tokens_per_day": 0}
TIERS = [TIGHT, THRIFTY, ROOMY, PER_USER, EMBED]


def chat(url: str, key: str, question: str = "hello there", **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "grounded-extractive",
            "messages": [{"role": "user", "content": question}],
            "grounded": {"retrieval": False},
            **extra,
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )


def create_key(data: Path, model_cache: Path, tier: str, env: dict[str, str]) -> str:
    result = run_cli(
        "keys", "create", "--tenant", "shop", "--tier", tier, "--json",
        data_dir=data, model_cache=model_cache, env=env,
    )  # fmt: skip
    return str(json.loads(result.stdout)["key"])


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("limits") / "data"
    env = {"GROUNDED_GATEWAY__TIERS": json.dumps(TIERS), "GROUNDED_GATEWAY__OPEN_TIER": "standard"}
    keys = {tier["name"]: create_key(data, model_cache, str(tier["name"]), env) for tier in TIERS}
    settings = server_settings(
        data, model_cache, gateway={"auth": True, "tiers": TIERS, "open_tier": "standard"}
    )
    with running_server(settings) as url:
        yield {"url": url, **keys}


def assert_refused(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == "rate_limit_error", error
    return dict(error)


def test_requests_per_minute_refuse_with_retry_after(limited: dict[str, Any]) -> None:
    url, key = limited["url"], limited["tight"]
    allowed = [chat(url, key) for _ in range(3)]
    assert [r.status_code for r in allowed] == [200, 200, 200]
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in allowed]
    assert remaining == [2, 1, 0]
    assert allowed[0].headers["x-ratelimit-limit-requests"] == "3"
    refused = chat(url, key)
    assert_refused(refused, "rate_limit_exceeded")
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 20  # one request comes back every 20 s at 3 per minute
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # Another key of the same tenant has its own bucket.
    assert chat(url, limited["standard"]).status_code == 200


def test_caps_on_output_tokens_and_input_size(limited: dict[str, Any]) -> None:
    url, key = limited["url"], limited["thrifty"]
    tight = limited["tight"]
    assert_refused(chat(url, tight, max_tokens=65), "max_tokens_over_cap")
    assert_refused(chat(url, tight, question="x" * 301), "input_too_large")
    # Caps are checked before the bucket: these refusals spent nothing of thrifty's.
    assert chat(url, key, max_tokens=32).status_code == 200


def test_daily_token_quota_counts_real_usage(limited: dict[str, Any]) -> None:
    url, key = limited["url"], limited["thrifty"]
    used = 0
    for _ in range(10):
        response = chat(url, key, question="what is the warranty on toasters?")
        if response.status_code == 429:
            error = assert_refused(response, "daily_token_quota_exceeded")
            assert "token" in error["message"]
            assert 1 <= int(response.headers["retry-after"]) <= 86_400
            assert response.headers["x-ratelimit-remaining-tokens"] == "0"
            break
        used += response.json()["usage"]["total_tokens"]
        time.sleep(0.1)  # usage is recorded just after the response
    else:
        raise AssertionError("the daily quota never refused")
    assert used >= 40 - 20  # refused only once real usage was near the quota


def test_each_end_user_has_a_daily_quota_of_their_own(limited: dict[str, Any]) -> None:
    url, key = limited["url"], limited["per-user"]
    for _ in range(10):
        response = chat(url, key, question="what is the warranty on toasters?", user="alice")
        if response.status_code == 429:
            assert_refused(response, "user_token_quota_exceeded")
            break
        time.sleep(0.1)  # usage is recorded just after the response
    else:
        raise AssertionError("alice's quota never refused")
    assert chat(url, key, user="bob").status_code == 200  # another user of the same key
    assert chat(url, key).status_code == 200  # and requests naming no user


def test_two_serve_processes_share_one_quota(
    tmp_path: Path, model_cache: Path, redis_url: str
) -> None:
    data = tmp_path / "data"
    tiers = [{"name": "standard", "requests_per_minute": 5, "tokens_per_day": 0}]
    env = {
        "GROUNDED_GATEWAY__TIERS": json.dumps(tiers),
        "GROUNDED_GATEWAY__OPEN_TIER": "standard",
        "GROUNDED_STATE_URL": redis_url,
        "GROUNDED_SERVE__REQUEST_LOG": "false",
    }
    key = create_key(data, model_cache, "standard", env)
    with (
        serve_process(data, model_cache, env, auth=True) as first,
        serve_process(data, model_cache, env, auth=True) as second,
    ):
        statuses = [chat(url, key).status_code for url in [first, second] * 4]
    assert statuses.count(200) == 5, statuses
    assert statuses[5:] == [429, 429, 429], statuses


def test_embeddings_and_uploads_count_against_the_rate_limit(limited: dict[str, Any]) -> None:
    url, key = limited["url"], limited["embed"]
    headers = {"authorization": f"Bearer {key}"}
    statuses = [
        httpx.post(f"{url}/v1/embeddings", json={"input": "hello"}, headers=headers).status_code,
        httpx.post(
            f"{url}/v1/documents", files={"files": ("a.md", b"# A\n\nSome text here.")},
            headers=headers, timeout=60,
        ).status_code,
        httpx.post(f"{url}/v1/embeddings", json={"input": "hello"}, headers=headers).status_code,
    ]  # fmt: skip
    assert statuses[:2] == [200, 201] and statuses[2] == 429, statuses


def test_a_key_whose_tier_was_removed_gets_403_not_500(tmp_path: Path, model_cache: Path) -> None:
    data = tmp_path / "data"
    old = [{"name": "standard"}, {"name": "gold"}, {"name": "premium"}]
    key = create_key(data, model_cache, "gold", {"GROUNDED_GATEWAY__TIERS": json.dumps(old)})
    with running_server(server_settings(data, model_cache, gateway={"auth": True})) as url:
        response = chat(url, key)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tier_unknown"


def test_size_caps_hold_with_keys_off(tmp_path: Path, model_cache: Path) -> None:
    settings = server_settings(tmp_path / "data", model_cache)  # keys off, open tier premium
    with running_server(settings) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000,
                  "grounded": {"retrieval": False}},
        )  # fmt: skip
    assert_refused(response, "max_tokens_over_cap")
