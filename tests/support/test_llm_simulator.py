"""The chat server simulator itself, driven through the official `openai` SDK over loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.llm_simulator import (
    NO_PASSAGES_ANSWER,
    RunningSimulator,
    SimulatorConfig,
    answer_words,
)

ROOT = Path(__file__).resolve().parents[2]
TTFT_S = 0.05
ITL_S = 0.002
TOKENS = 20

SYSTEM = """Answer from the numbered passages below and cite them like [1].

Passages:
[1] (refunds.md — Refunds)
Refunds take 5 business days. Contact support after that.

[2] (shipping.md)
Orders ship within 24 hours."""

MESSAGES: list[Any] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "How long do refunds take?"},
]
EXPECTED_START = "Based on the passages [1] [2]: Refunds take 5 business days. [1]"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(ttft_s=TTFT_S, itl_s=ITL_S, completion_tokens=TOKENS)
    with RunningSimulator(config) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator) -> None:
    sim.reset()


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url, api_key="x", max_retries=0, timeout=5.0) as client:
        yield client


def _prompt_words() -> int:
    return sum(len(m["content"].split()) for m in MESSAGES)


def _protocol_errors() -> tuple[type[BaseException], ...]:
    """openai.APIError, plus the RemoteProtocolError of whichever HTTP library the SDK uses."""
    found: list[type[BaseException]] = [openai.APIError]
    for name in ("httpx", "httpx2"):
        module = sys.modules.get(name)
        if module is not None:
            found.append(module.RemoteProtocolError)
    return tuple(found)


def test_answer_echoes_the_passages_it_was_given() -> None:
    words = answer_words(MESSAGES, 30)
    assert " ".join(words).startswith(EXPECTED_START)
    assert len(words) == 30
    assert " ".join(answer_words([{"role": "user", "content": "hi"}], 1)) == NO_PASSAGES_ANSWER
    # "[n]" only counts at the start of a line, and assistant turns are not searched.
    inline = [
        {"role": "system", "content": "Cite like [1] or [2][3]."},
        {"role": "assistant", "content": "[4] an earlier answer"},
        {"role": "user", "content": "[7] Only this one. Not this."},
    ]
    assert " ".join(answer_words(inline, 1)) == "Based on the passages [7]: Only this one. [7]"


def test_non_streaming_content_and_usage(sim: RunningSimulator, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="sim-small", messages=MESSAGES)
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert choice.message.content.startswith(EXPECTED_START)
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == TOKENS == len(choice.message.content.split())
    assert completion.usage.prompt_tokens == _prompt_words()
    assert completion.usage.total_tokens == TOKENS + _prompt_words()
    stats = sim.stats()
    assert stats["requests"] == 1
    assert stats["completions_completed"] == 1
    assert stats["last_request"]["messages"] == MESSAGES


def test_no_passages_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "hello"}]
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert content.startswith(NO_PASSAGES_ANSWER)


def test_streaming_gives_the_same_text_and_usage(
    sim: RunningSimulator, client: openai.OpenAI
) -> None:
    expected = client.chat.completions.create(model="sim-small", messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model="sim-small",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(content) == TOKENS  # one word per chunk
    assert all(piece.startswith(" ") for piece in content[1:])
    assert "".join(content) == expected.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == TOKENS
    assert chunks[-1].usage.prompt_tokens == _prompt_words()
    stats = sim.stats()
    assert (stats["streams_started"], stats["streams_completed"]) == (1, 1)
    assert stats["streams_cancelled"] == 0
    assert stats["active"] == 0


def test_max_tokens_cut_gives_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Based on the passages [1]"
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    chunks = list(
        client.chat.completions.create(
            model="sim-small",
            messages=MESSAGES,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Based on the passages [1]"
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_error_500_raises_internal_server_error(
    sim: RunningSimulator, client: openai.OpenAI
) -> None:
    sim.set_mode("error_500")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="sim-small", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="sim-small", messages=MESSAGES, stream=True)
    assert sim.stats()["errors_500"] == 2
    sim.set_mode("ok")
    assert client.chat.completions.create(model="sim-small", messages=MESSAGES).choices


def test_drop_mid_stream_breaks_the_stream_before_completion(
    sim: RunningSimulator, client: openai.OpenAI
) -> None:
    sim.set_mode("drop_mid_stream", drop_after=3)
    received: list[str] = []
    with pytest.raises(_protocol_errors()):
        stream = client.chat.completions.create(model="sim-small", messages=MESSAGES, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["Based", " on", " the"]
    stats = sim.wait_for(lambda s: s["active"] == 0)
    assert stats["streams_dropped"] == 1
    assert stats["streams_completed"] == 0


def test_client_closing_a_stream_is_counted_as_cancelled(
    sim: RunningSimulator, client: openai.OpenAI
) -> None:
    sim.configure(itl_s=0.05, completion_tokens=200)
    stream = client.chat.completions.create(model="sim-small", messages=MESSAGES, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    stream.close()
    stats = sim.wait_for(lambda s: s["streams_cancelled"] == 1)
    assert stats["streams_cancelled"] == 1
    assert stats["streams_completed"] == 0
    assert stats["active"] == 0


def test_hang_times_out_and_does_not_block_other_requests(sim: RunningSimulator) -> None:
    sim.set_mode("hang")
    outcome: list[BaseException] = []

    def hung_request() -> None:
        with openai.OpenAI(base_url=sim.url, api_key="x", max_retries=0, timeout=0.5) as impatient:
            try:
                impatient.chat.completions.create(model="sim-small", messages=MESSAGES, stream=True)
            except Exception as exc:
                outcome.append(exc)

    thread = threading.Thread(target=hung_request)
    started = time.monotonic()
    thread.start()
    assert sim.wait_for(lambda s: s["hung"] == 1)["hung"] == 1
    # While that request hangs, the server still answers others.
    sim.set_mode("ok")
    with openai.OpenAI(base_url=sim.url, api_key="x", max_retries=0, timeout=2.0) as other:
        assert other.chat.completions.create(model="sim-small", messages=MESSAGES).choices
    thread.join(timeout=5.0)
    assert time.monotonic() - started >= 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], openai.APITimeoutError)
    stats = sim.wait_for(lambda s: s["streams_cancelled"] == 1)
    assert stats["streams_started"] == 1
    assert stats["streams_cancelled"] == 1
    assert stats["streams_completed"] == 0


def _time_to_first_token(client: openai.OpenAI) -> float:
    started = time.monotonic()
    stream = client.chat.completions.create(model="sim-small", messages=MESSAGES, stream=True)
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.monotonic() - started
    raise AssertionError("no content")


def test_time_to_first_token_follows_the_config(
    sim: RunningSimulator, client: openai.OpenAI
) -> None:
    client.models.list()  # open the connection first: measure the server, not the handshake
    ttft = _time_to_first_token(client)
    assert TTFT_S * 0.9 <= ttft < TTFT_S + 0.25
    sim.set_mode("slow", slow_ttft_s=0.4)
    slow = _time_to_first_token(client)
    assert 0.4 * 0.95 <= slow < 0.4 + 0.3


def test_models_and_health(sim: RunningSimulator, client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["sim-small"]
    with urllib.request.urlopen(f"{sim.base_url}/health", timeout=2) as response:
        assert response.status == 200


def test_control_rejects_unknown_modes(sim: RunningSimulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim.set_mode("sideways")  # type: ignore[arg-type]
    assert caught.value.code == 400
    assert sim.configure()["mode"] == "ok"


def test_runs_as_a_subprocess() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llm_simulator", "--port", "0", "--ttft", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=5.0) as client:
            completion = client.chat.completions.create(model="sim-small", messages=MESSAGES)
        assert completion.choices[0].message.content is not None
        assert completion.choices[0].message.content.startswith(EXPECTED_START)
    finally:
        process.terminate()
        process.wait(timeout=10)
