"""Generation through a real OpenAI-compatible server (the test simulator) behind Grounded:
streaming relay, usage, context budget, fallback, mid-stream failure and cancellation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.serve.conftest import running_server, server_settings
from tests.support.llm_simulator import RunningSimulator, SimulatorConfig

QUESTION = "Can I return a laptop after 45 days?"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with RunningSimulator(SimulatorConfig(ttft_s=0.05, itl_s=0.005)) as sim:
        yield sim


@pytest.fixture(autouse=True)
def fresh_simulator(simulator: RunningSimulator) -> None:
    simulator.reset()


# One worker, no retries, a breaker that never stays open: each test here sees exactly the
# model server's own behaviour (the gateway's failover has tests of its own).
SINGLE_WORKER = {
    "retries": 0,
    "breaker_failures": 1000,
    "breaker_error_rate": 1.0,
    "breaker_cooldown_s": 0.01,
    "health_interval_s": 0,
}


def models(sim: RunningSimulator, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            **SINGLE_WORKER,
            "name": "sim-small",
            "url": sim.url,
            "context_window": 4096,
            "max_output_tokens": 64,
            "read_timeout_s": 2.0,
            "price_input_per_1k": 0.5,
            "price_output_per_1k": 1.5,
            **extra,
        },
        {
            **SINGLE_WORKER,
            "name": "sim-tiny-context",
            "url": sim.url,
            "upstream_model": "sim-small",
            "context_window": 700,
            "max_output_tokens": 64,
        },
    ]


@pytest.fixture(scope="module")
def llm_server(index_copy: Path, model_cache: Path, simulator: RunningSimulator) -> Iterator[str]:
    settings = server_settings(
        index_copy,
        model_cache,
        generate={"models": models(simulator), "default_model": "sim-small"},
        cache={"enabled": False},  # these tests drive the model path; a hit would bypass it
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def strict_server(
    index_copy: Path, model_cache: Path, simulator: RunningSimulator
) -> Iterator[str]:
    settings = server_settings(
        index_copy,
        model_cache,
        generate={
            "models": models(simulator),
            "default_model": "sim-small",
            "fallback_extractive": False,
        },
        cache={"enabled": False},
    )
    with running_server(settings) as url:
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def ask(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "sim-small")
    return client(url).chat.completions.create(
        messages=[{"role": "user", "content": QUESTION}], **kwargs
    )


def test_model_sees_numbered_passages_and_its_answer_is_relayed(
    llm_server: str, simulator: RunningSimulator
) -> None:
    completion = ask(llm_server)
    text = completion.choices[0].message.content or ""
    assert text.startswith("Based on the passages [1]")
    sent = simulator.stats()["last_request"]
    system = sent["messages"][0]["content"]
    assert sent["messages"][0]["role"] == "system"
    assert "[1] (articles/returns.md — Returns and Refunds > Electronics > Laptops)" in system
    assert "ONLY the numbered passages" in system and sent["messages"][-1]["content"] == QUESTION
    assert sent["max_tokens"] == 64 and sent["stream"] is True
    assert completion.usage is not None and completion.usage.prompt_tokens > 100
    assert completion.usage.completion_tokens == len(text.split())


def test_stream_relays_tokens_as_they_arrive(llm_server: str, simulator: RunningSimulator) -> None:
    simulator.configure(itl_s=0.03, completion_tokens=30)
    stream = ask(llm_server, stream=True, stream_options={"include_usage": True})
    arrivals = []
    pieces = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) >= 30
    assert arrivals[-1] - arrivals[0] > 0.5, "tokens are relayed one by one, not buffered"
    assert chunk.usage is not None and chunk.usage.completion_tokens == len(pieces)


def test_prompt_fits_a_small_context_window(llm_server: str, simulator: RunningSimulator) -> None:
    completion = ask(llm_server, model="sim-tiny-context")
    sent = simulator.stats()["last_request"]
    words = sum(len(m["content"].split()) for m in sent["messages"])
    assert words < 700 - 64, "prompt plus output budget fits the window"
    citations = completion.model_extra["grounded"]["citations"]
    assert 1 <= len(citations) < 5, "passages were dropped or trimmed to fit"


def test_model_failure_before_first_token_falls_back_to_an_extract(
    llm_server: str, simulator: RunningSimulator
) -> None:
    simulator.set_mode("error_500")
    completion = ask(llm_server)
    assert completion.model_extra["grounded"]["degraded"] is True
    assert "30 days" in (completion.choices[0].message.content or "")
    simulator.set_mode("hang")
    started = time.perf_counter()
    streamed = list(ask(llm_server, stream=True))
    assert time.perf_counter() - started < 10, "read timeout, not a hang"
    finals = [c for c in streamed if c.choices and c.choices[0].finish_reason]
    assert finals[-1].model_extra["grounded"]["degraded"] is True


def test_without_fallback_a_failed_model_is_a_clean_502(
    strict_server: str, simulator: RunningSimulator
) -> None:
    simulator.set_mode("error_500")
    with pytest.raises(openai.APIStatusError) as caught:
        ask(strict_server)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_error"  # type: ignore[index]


def test_worker_dying_mid_stream_ends_the_stream_with_an_error(
    llm_server: str, simulator: RunningSimulator
) -> None:
    simulator.set_mode("drop_mid_stream", drop_after=4)
    with httpx.stream(
        "POST",
        f"{llm_server}/v1/chat/completions",
        timeout=30,
        json={"stream": True, "messages": [{"role": "user", "content": QUESTION}]},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][len("data: ") :])
    assert error["error"]["code"] == "upstream_error"
    assert "127.0.0.1" not in error["error"]["message"], "worker addresses stay internal"
    events = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    finishes = [c["finish_reason"] for e in events for c in e.get("choices", [])]
    assert len(events) >= 5 and not any(finishes), "not passed off as complete"
    with pytest.raises(openai.APIError):
        list(ask(llm_server, stream=True))


def test_client_disconnect_closes_the_upstream_request(
    llm_server: str, simulator: RunningSimulator
) -> None:
    simulator.configure(itl_s=0.1, completion_tokens=200)
    with httpx.stream(
        "POST",
        f"{llm_server}/v1/chat/completions",
        timeout=30,
        json={"stream": True, "messages": [{"role": "user", "content": QUESTION}]},
    ) as response:
        for count, _ in enumerate(response.iter_lines()):
            if count > 6:
                break
    stats = simulator.wait_for(lambda s: s["streams_cancelled"] >= 1, timeout_s=5.0)
    assert stats["streams_cancelled"] == 1 and stats["streams_completed"] == 0


def test_follow_up_is_rewritten_by_the_model(llm_server: str, simulator: RunningSimulator) -> None:
    completion = client(llm_server).chat.completions.create(
        model="sim-small",
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Within 30 days."},
            {"role": "user", "content": "and for phones?"},
        ],
    )
    rewrite_request = simulator.stats()["requests"]
    assert rewrite_request >= 2, "one call to rewrite, one to answer"
    assert completion.model_extra["grounded"]["standalone_query"] != "and for phones?"


def test_request_log_prices_the_answer(llm_server: str, index_copy: Path) -> None:
    completion = ask(llm_server)
    lines = (index_copy / "logs" / "requests.jsonl").read_text().splitlines()
    record = next(r for r in map(json.loads, lines) if r["answer_id"] == completion.id)
    usage = record["usage"]
    expected = usage["prompt_tokens"] / 1000 * 0.5 + usage["completion_tokens"] / 1000 * 1.5
    assert record["cost"] == pytest.approx(expected) and record["cost"] > 0
    assert record["model"] == "sim-small" and record["latency_ms"]["first_token"] > 0


def test_only_complete_model_answers_are_cached(
    index_copy: Path, model_cache: Path, simulator: RunningSimulator
) -> None:
    settings = server_settings(
        index_copy,
        model_cache,
        generate={"models": models(simulator), "default_model": "sim-small"},
    )
    question = {"model": "sim-small", "messages": [{"role": "user", "content": "Laptop returns?"}]}
    with running_server(settings) as url:
        simulator.set_mode("error_500")
        first = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=60)
        assert first.json()["grounded"]["degraded"] is True
        simulator.set_mode("ok")
        second = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=60)
        assert second.headers["x-grounded-cache"] == "miss", "a degraded extract is not cached"
        assert second.json()["grounded"]["degraded"] is False
        third = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=60)
        assert third.headers["x-grounded-cache"] == "hit-exact"
        assert (
            third.json()["choices"][0]["message"]["content"]
            == (second.json()["choices"][0]["message"]["content"])
        )
        assert simulator.stats()["requests"] == 2, "the hit never reached the model"
