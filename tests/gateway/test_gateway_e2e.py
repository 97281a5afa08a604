"""The gateway with real workers: simulators on loopback that fail, slow down and die.

Every request must either complete or end with a clean error — none may hang, be cut off
silently or be lost — and users of higher tiers keep their latency when capacity is short.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from grounded.settings import Settings
from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings
from tests.support.llm_simulator import RunningSimulator, SimulatorConfig
from tests.support.serve_process import serve_process
from tests.support.simulator_process import simulator_processes

ADMIN = "admin-key-for-e2e"


def model(name: str, urls: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": urls[0], "workers": urls[1:], **extra}


def one_worker(
    data: Path, model_cache: Path, sim: RunningSimulator, slots: int = 1, **overrides: Any
) -> Settings:
    """A server whose default model is one simulator taking `slots` requests at a time."""
    return server_settings(
        data,
        model_cache,
        generate={
            "models": [model("sim", [sim.url], max_in_flight=slots, health_interval_s=0)],
            "default_model": "sim",
        },
        **overrides,
    )


def chat(url: str, question: str = "hello", key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"messages": [{"role": "user", "content": question}], **extra}
    body.setdefault("grounded", {"retrieval": False})
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def gateway_status(url: str) -> dict[str, Any]:
    response = httpx.get(
        f"{url}/v1/admin/gateway", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["models"])


@pytest.fixture
def sims() -> Iterator[list[RunningSimulator]]:
    started = [RunningSimulator(SimulatorConfig(ttft_s=0.02, itl_s=0.002)).start() for _ in "ab"]
    yield started
    for sim in started:
        sim.stop()


def test_a_worker_answering_500_is_failed_over_and_its_breaker_opens_then_closes(
    sims: list[RunningSimulator], tmp_path: Path, model_cache: Path
) -> None:
    bad, good = sims
    bad.set_mode("error_500")
    settings = server_settings(
        tmp_path / "data",
        model_cache,
        generate={
            "models": [
                model(
                    "sim",
                    [bad.url, good.url],
                    breaker_failures=3,
                    breaker_cooldown_s=0.5,
                    health_interval_s=0,
                    retry_backoff_s=0.01,
                )
            ],
            "default_model": "sim",
            "fallback_extractive": False,
        },
        gateway={"auth": False, "admin_key": ADMIN},
    )
    with running_server(settings) as url:
        answers = [chat(url, f"question {i}") for i in range(12)]
        assert [a.status_code for a in answers] == [200] * 12
        assert not any(a.json()["grounded"]["degraded"] for a in answers)
        workers = {w["url"]: w for w in gateway_status(url)["sim"]["workers"]}
        assert workers[bad.url]["breaker"] == "open"
        # The breaker stopped traffic to it: 3 failures, then at most a half-open probe or two.
        assert 3 <= bad.stats()["errors_500"] <= 5
        bad.set_mode("ok")
        time.sleep(0.6)
        for i in range(6):
            assert chat(url, f"after {i}").status_code == 200
        workers = {w["url"]: w for w in gateway_status(url)["sim"]["workers"]}
        assert workers[bad.url]["breaker"] == "closed"
        assert bad.stats()["streams_completed"] >= 1


@pytest.mark.parametrize("fallback", [True, False])
def test_with_every_worker_down_answers_degrade_or_get_503(
    tmp_path: Path, model_cache: Path, sample_index: Path, fallback: bool
) -> None:
    settings = server_settings(
        sample_index,
        model_cache,
        generate={
            "models": [model("sim", ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"])],
            "default_model": "sim",
            "fallback_extractive": fallback,
        },
        serve={"request_log": False},
        cache={"enabled": False},
    )
    with running_server(settings) as url:
        response = chat(url, "Can I return a laptop after 45 days?", grounded={})
    if fallback:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["grounded"]["degraded"] is True
        assert "30 days" in body["choices"][0]["message"]["content"]
    else:
        assert response.status_code in (502, 503), response.text
        assert response.json()["error"]["type"] == "server_error"


def test_priority_admission_sheds_the_lowest_tier_first(tmp_path: Path, model_cache: Path) -> None:
    tiers = [
        {"name": "free", "priority": 0, "requests_per_minute": 1000},
        {"name": "premium", "priority": 2, "requests_per_minute": 1000},
    ]
    data = tmp_path / "data"
    env = {
        "GROUNDED_GATEWAY__TIERS": json.dumps(tiers),
        "GROUNDED_GATEWAY__DEFAULT_TIER": "free",
        "GROUNDED_GATEWAY__OPEN_TIER": "premium",
    }
    keys = {
        tier: json.loads(
            run_cli(
                "keys",
                "create",
                "--tenant",
                "t",
                "--tier",
                tier,
                "--json",
                data_dir=data,
                model_cache=model_cache,
                env=env,
            ).stdout
        )["key"]
        for tier in ("free", "premium")
    }
    with RunningSimulator(SimulatorConfig(ttft_s=0.4, itl_s=0.001)) as sim:
        settings = one_worker(
            data,
            model_cache,
            sim,
            slots=2,
            gateway={
                "auth": True,
                "admin_key": ADMIN,
                "tiers": tiers,
                "default_tier": "free",
                "open_tier": "premium",
                "queue_size": 4,
            },
        )
        with running_server(settings) as url:
            results = asyncio.run(_burst(url, keys))
            stats = gateway_status(url)["sim"]["queue"]
    free, premium = results["free"], results["premium"]
    assert [status for status, _, _ in premium] == [200] * 4
    shed = [r for r in free if r[0] == 429]
    assert len(shed) >= 4, free
    assert all(r[2]["code"] == "overloaded" and int(r[1]) >= 1 for r in shed)
    assert stats["shed"] >= 4
    # Premium requests waited at most for the two running answers, not for the free queue.
    assert max(t for _, _, t in premium) < 2.5, premium  # type: ignore[type-var]


async def _burst(url: str, keys: dict[str, str]) -> dict[str, list[Any]]:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(tier: str, i: int) -> tuple[int, str, Any]:
            started = time.perf_counter()
            response = await client.post(
                f"{url}/v1/chat/completions",
                json={
                    "messages": [{"role": "user", "content": f"{tier} {i}"}],
                    "grounded": {"retrieval": False},
                },
                headers={"authorization": f"Bearer {keys[tier]}"},
            )
            if response.status_code == 200:
                return 200, "", time.perf_counter() - started
            return (
                response.status_code,
                response.headers.get("retry-after", ""),
                response.json()["error"],
            )

        free = [asyncio.create_task(one("free", i)) for i in range(8)]
        await asyncio.sleep(0.2)
        premium = [asyncio.create_task(one("premium", i)) for i in range(4)]
        return {"free": await asyncio.gather(*free), "premium": await asyncio.gather(*premium)}


def test_a_full_queue_that_does_not_move_times_out_with_503(
    tmp_path: Path, model_cache: Path
) -> None:
    with RunningSimulator(SimulatorConfig(ttft_s=1.5)) as sim:
        settings = one_worker(
            tmp_path / "data", model_cache, sim, gateway={"auth": False, "queue_timeout_s": 0.3}
        )
        with running_server(settings) as url:

            async def both() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=30) as client:
                    body = {
                        "messages": [{"role": "user", "content": "hi"}],
                        "grounded": {"retrieval": False},
                    }
                    first = asyncio.create_task(
                        client.post(f"{url}/v1/chat/completions", json=body)
                    )
                    await asyncio.sleep(0.1)
                    second = await client.post(f"{url}/v1/chat/completions", json=body)
                    return [await first, second]

            first, second = asyncio.run(both())
    assert first.status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "queue_timeout"
    assert int(second.headers["retry-after"]) >= 1


def test_500_concurrent_streams_through_3_workers_with_one_killed(
    tmp_path: Path, model_cache: Path
) -> None:
    """Every stream completes or ends with a clean error event; none hangs or is lost."""
    with simulator_processes(
        3, "--ttft", "0.05", "--itl", "0.02", "--completion-tokens", "40"
    ) as workers:
        urls = [url for url, _ in workers]
        env = {
            "GROUNDED_GENERATE__MODELS": json.dumps(
                [model("sim", urls, max_in_flight=64, health_interval_s=0.5, retry_backoff_s=0.01)]
            ),
            "GROUNDED_GENERATE__DEFAULT_MODEL": "sim",
            "GROUNDED_GATEWAY__QUEUE_SIZE": "1000",
            "GROUNDED_GATEWAY__QUEUE_TIMEOUT_S": "120",
            "GROUNDED_SERVE__REQUEST_LOG": "false",
            "GROUNDED_CACHE__ENABLED": "false",
        }
        with serve_process(tmp_path / "data", model_cache, env) as url:
            victim = workers[1][1]
            outcomes = asyncio.run(
                _streams(url, 500, kill=lambda: os.kill(victim.pid, signal.SIGKILL))
            )
    counts = Counter(kind for kind, _ in outcomes)
    print("outcomes:", dict(counts), Counter(t for k, t in outcomes if k == "clean_error"))
    assert len(outcomes) == 500
    assert set(counts) <= {"complete", "clean_error", "degraded"}, counts
    assert counts["complete"] + counts["degraded"] >= 400, counts
    texts = {text for kind, text in outcomes if kind == "complete"}
    assert all(t.startswith("I have no passages") for t in texts)


async def _streams(url: str, count: int, kill: Any) -> list[tuple[str, str]]:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(90, connect=30), limits=limits) as client:

        async def one(i: int) -> tuple[str, str]:
            body = {
                "messages": [{"role": "user", "content": f"stream {i}"}],
                "stream": True,
                "grounded": {"retrieval": False},
            }
            try:
                async with client.stream(
                    "POST", f"{url}/v1/chat/completions", json=body
                ) as response:
                    if response.status_code != 200:
                        error = json.loads(await response.aread())["error"]
                        return ("clean_error", error["code"]) if error else ("malformed", "")
                    return _classify([line async for line in response.aiter_lines() if line])
            except httpx.TimeoutException:
                return "hang", ""
            except httpx.TransportError as exc:
                return "cut", repr(exc)

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await asyncio.sleep(1.5)
        kill()
        return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=180))


def _classify(lines: list[str]) -> tuple[str, str]:
    if not lines or lines[-1] != "data: [DONE]":
        return "malformed", "stream did not end with [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    if "error" in events[-1]:
        return "clean_error", str(events[-1]["error"]["code"])
    final = events[-1]
    if final["choices"][0]["finish_reason"] is None:
        return "malformed", "no finish_reason"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    return ("degraded" if final["grounded"]["degraded"] else "complete"), text


def test_a_client_that_leaves_frees_its_queue_place_and_its_model_call(
    tmp_path: Path, model_cache: Path
) -> None:
    with RunningSimulator(SimulatorConfig(ttft_s=3.0)) as sim:
        settings = one_worker(
            tmp_path / "data", model_cache, sim, gateway={"auth": False, "admin_key": ADMIN}
        )
        with running_server(settings) as url:
            body = {"messages": [{"role": "user", "content": "hi"}],
                    "grounded": {"retrieval": False}}  # fmt: skip

            async def leave_early() -> None:
                async with httpx.AsyncClient(timeout=0.5) as client:
                    calls = [client.post(f"{url}/v1/chat/completions", json=body) for _ in "ab"]
                    results = await asyncio.gather(*calls, return_exceptions=True)
                assert all(isinstance(r, httpx.TimeoutException) for r in results), results

            asyncio.run(leave_early())  # one generating, one queued behind it; both give up
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                queue = gateway_status(url)["sim"]["queue"]
                if queue["in_use"] == 0 and queue["waiting"] == 0:
                    break
                time.sleep(0.1)
            assert (queue["in_use"], queue["waiting"]) == (0, 0), queue
            # Every model call that started was closed upstream, none ran to the end. (The
            # queued request may reach the model for an instant if the slot frees just
            # before its own disconnect is seen; it is cancelled the same way.)
            stats = sim.wait_for(lambda s: s["streams_cancelled"] >= s["requests"] >= 1)
            assert stats["streams_cancelled"] == stats["requests"] >= 1, stats
            assert stats["streams_completed"] == 0, stats
