"""Cascading and shadow traffic over real HTTP, with two simulated models on loopback."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings
from tests.support.llm_simulator import RunningSimulator, SimulatorConfig

QUESTION = "Can I return a laptop after 45 days?"
LONG = "I bought a laptop for my daughter " + "and some more details " * 14 + "can I return it?"


@pytest.fixture
def models() -> Iterator[dict[str, RunningSimulator]]:
    # Short answers are the passage's own sentence (well supported); long ones add filler.
    small = RunningSimulator(SimulatorConfig(model_name="small", ttft_s=0.01, itl_s=0.001,
                                             completion_tokens=12)).start()  # fmt: skip
    large = RunningSimulator(SimulatorConfig(model_name="large", ttft_s=0.01, itl_s=0.001,
                                             completion_tokens=14)).start()  # fmt: skip
    yield {"small": small, "large": large}
    small.stop()
    large.stop()


def routed_server(
    sample_index: Path, tmp_path: Path, model_cache: Path, sims: dict[str, RunningSimulator],
    **gateway: Any,
) -> Any:  # fmt: skip
    data = tmp_path / "data"
    shutil.copytree(sample_index, data)
    settings = server_settings(
        data,
        model_cache,
        generate={
            "models": [
                {"name": name, "url": sim.url, "health_interval_s": 0} for name, sim in sims.items()
            ],
            "default_model": "auto",
        },
        gateway={
            "auth": False,
            "routing": {
                "small_model": "small",
                "large_model": "large",
                "long_question_words": 30,
                "escalate_below_support": 0.75,
            },
            **gateway,
        },
        cache={"enabled": False},
    )
    return running_server(settings), data


def ask(url: str, question: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": question}]},
        timeout=60,
    )


def test_cascade_routes_by_policy_escalates_weak_answers_and_records_why(
    sample_index: Path, tmp_path: Path, model_cache: Path, models: dict[str, RunningSimulator]
) -> None:
    server, data = routed_server(sample_index, tmp_path, model_cache, models)
    with server as url:
        assert "auto" in [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        plain = ask(url, QUESTION)
        assert plain.status_code == 200, plain.text
        route = plain.json()["grounded"]["route"]
        assert route["model"] == "small" and not route["escalated"], route
        assert route["support"] >= 0.75
        assert plain.headers["x-grounded-route"] == "small"

        long = ask(url, LONG).json()["grounded"]["route"]
        assert long["model"] == "large" and "long question" in long["reason"]

        models["small"].configure(completion_tokens=80)  # now mostly filler: weakly supported
        weak_response = ask(url, QUESTION)
        weak = weak_response.json()
        route = weak["grounded"]["route"]
        assert route["escalated"] and route["model"] == "large", route
        assert weak_response.headers["x-grounded-route"] == "large"
        assert route["support"] < 0.75 and "escalated" in route["reason"]
        # The client got the large model's short answer only, never the held 80-word one.
        assert len(weak["choices"][0]["message"]["content"].split()) < 40
        assert models["large"].stats()["requests"] == 2
    lines = [json.loads(x) for x in (data / "logs" / "requests.jsonl").read_text().splitlines()]
    logged = next(x for x in lines if x["answer_id"] == weak["id"])
    assert logged["route"]["escalated"] is True and logged["model"] == "large"


def test_shadow_traffic_mirrors_without_touching_the_answer(
    sample_index: Path, tmp_path: Path, model_cache: Path, models: dict[str, RunningSimulator]
) -> None:
    models["large"].configure(ttft_s=0.5)  # a slow candidate must not slow users down
    server, data = routed_server(
        sample_index, tmp_path, model_cache, models, shadow={"model": "large", "share": 1.0}
    )
    with server as url:
        started = time.perf_counter()
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "small", "messages": [{"role": "user", "content": QUESTION}]},
            timeout=60,
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and response.json()["model"] == "small"
        assert elapsed < 0.5, elapsed
        shadow_log = data / "logs" / "shadow.jsonl"
        deadline = time.monotonic() + 10
        while not shadow_log.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    record = json.loads(shadow_log.read_text().splitlines()[0])
    assert record["answer_id"] == response.json()["id"]
    assert record["shadow_model"] == "large" and record["shadow"]["error"] is None
    assert record["shadow"]["total_ms"] >= 500
    assert 0.5 < record["agreement"] <= 1.0
    report = run_cli("shadow", "report", "--json", data_dir=data, model_cache=model_cache)
    rows = json.loads(report.stdout)
    assert rows[0]["mirrored"] == 1 and rows[0]["shadow_model"] == "large"
    assert rows[0]["agreement_mean"] == pytest.approx(record["agreement"], abs=1e-3)
