"""The response cache over real HTTP: exact and semantic hits, near misses, and answers
retired when a cited document changes — through the API, a CLI run in another process, or
another replica sharing Redis and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings
from tests.support.postgres import fresh_schema

RETURNS = """# Returns

## Laptops

Laptops can be returned within {days} days of delivery for a full refund.

## Phones

Phones can be returned within 14 days of delivery if they are unused.
"""
SHIPPING = """# Shipping

## Delivery times

Standard delivery takes 3 to 5 business days; express delivery arrives the next day.
"""


def corpus(folder: Path, days: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "returns.md").write_text(RETURNS.format(days=days))
    (folder / "shipping.md").write_text(SHIPPING)
    return folder


def ask(url: str, question: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "grounded-extractive",
            "messages": [{"role": "user", "content": question}],
            **extra,
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["choices"][0]["message"]["content"], response.headers["x-grounded-cache"], body


def upload(url: str, name: str, text: str) -> None:
    response = httpx.post(
        f"{url}/v1/documents", files={"files": (name, text.encode())}, timeout=120
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def small_index(tmp_path: Path, model_cache: Path) -> Path:
    data = tmp_path / "data"
    run_cli("ingest", str(corpus(tmp_path / "docs")), data_dir=data, model_cache=model_cache)
    return data


def test_exact_and_semantic_hits_and_near_misses(small_index: Path, model_cache: Path) -> None:
    with running_server(server_settings(small_index, model_cache)) as url:
        text, cache, body = ask(url, "Can I return a laptop after 20 days?")
        assert cache == "miss" and "30 days" in text
        again, cache, body = ask(url, "  can i return a laptop after 20 days ")
        assert cache == "hit-exact" and again == text
        assert body["grounded"]["cache"] == "exact" and body["usage"]["completion_tokens"] == 0
        assert body["grounded"]["citations"][0]["source"] == "returns.md"
        _, cache, _ = ask(url, "Can I return a laptop after 20 days please?")
        assert cache == "hit-semantic"
        phone, cache, _ = ask(url, "Can I return a phone after 20 days?")
        assert cache == "miss" and "14 days" in phone
        _, cache, _ = ask(url, "Can I return a laptop after 20 days?", temperature=0.8)
        assert cache == "bypass"
        follow_up = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "grounded-extractive",
                "messages": [
                    {"role": "user", "content": "How long does delivery take?"},
                    {"role": "assistant", "content": "3 to 5 business days."},
                    {"role": "user", "content": "Can I return a laptop after 20 days?"},
                ],
            },
            timeout=60,
        )
        assert follow_up.headers["x-grounded-cache"] == "bypass"
        assert httpx.delete(f"{url}/v1/cache").json()["flushed"] >= 1
        _, cache, _ = ask(url, "Can I return a laptop after 20 days?")
        assert cache == "miss"


def test_streamed_hit_uses_the_same_sse_format(small_index: Path, model_cache: Path) -> None:
    with running_server(server_settings(small_index, model_cache)) as url:
        ask(url, "How long does standard delivery take?")
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json={
                "model": "grounded-extractive",
                "stream": True,
                "messages": [{"role": "user", "content": "How long does standard delivery take?"}],
            },
            timeout=60,
        ) as response:
            assert response.headers["x-grounded-cache"] == "hit-exact"
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        events = [json.loads(line[6:]) for line in lines[:-1]]
        assert events[-1]["grounded"]["cache"] == "exact"
        assert "3 to 5 business days" in "".join(lines)


def test_changed_document_retires_answers_via_api_and_cli(
    small_index: Path, model_cache: Path, tmp_path: Path
) -> None:
    question = "Can I return a laptop after 45 days?"
    with running_server(server_settings(small_index, model_cache)) as url:
        text, cache, _ = ask(url, question)
        assert cache == "miss" and "30 days" in text
        assert ask(url, question)[1] == "hit-exact"
        # Another process changes the document while the server runs.
        run_cli(
            "ingest",
            str(corpus(tmp_path / "docs", days=60)),
            data_dir=small_index,
            model_cache=model_cache,
        )
        text, cache, _ = ask(url, question)
        assert cache == "miss" and "60 days" in text
        assert ask(url, "May I return my laptop after 45 days?")[1] in ("hit-semantic", "miss")
        # Through the API: back to 30 days.
        upload(url, "returns.md", RETURNS.format(days=30))
        text, cache, _ = ask(url, question)
        assert cache == "miss" and "30 days" in text


@pytest.mark.slow
def test_replicas_share_the_cache_and_its_invalidation(
    tmp_path: Path, model_cache: Path, postgres_url: str, redis_url: str
) -> None:
    schema = fresh_schema(postgres_url)
    shared: dict[str, Any] = {
        "store_url": postgres_url,
        "postgres": schema.model_dump(),
        "state_url": redis_url,
    }
    env = {"GROUNDED_STORE_URL": postgres_url, "GROUNDED_POSTGRES__SCHEMA_NAME": schema.schema_name}
    run_cli(
        "ingest",
        str(corpus(tmp_path / "docs")),
        data_dir=tmp_path / "a",
        model_cache=model_cache,
        env=env,
    )
    question = "Can I return a laptop after 45 days?"
    with (
        running_server(server_settings(tmp_path / "a", model_cache, **shared)) as first,
        running_server(server_settings(tmp_path / "b", model_cache, **shared)) as second,
    ):
        assert ask(first, question)[1] == "miss"
        text, cache, _ = ask(second, question)
        assert cache == "hit-exact" and "30 days" in text
        assert ask(second, "Could I return a laptop after 45 days?")[1] == "hit-semantic"
        upload(second, "returns.md", RETURNS.format(days=60))
        text, cache, _ = ask(first, question)
        assert cache == "miss" and "60 days" in text
        assert ask(second, question)[1] == "hit-exact"


def test_unreachable_state_server_costs_the_cache_not_the_answer(
    small_index: Path, model_cache: Path
) -> None:
    settings = server_settings(small_index, model_cache, state_url="redis://127.0.0.1:9/0")
    with running_server(settings) as url:
        for _ in range(2):
            text, cache, _ = ask(url, "Can I return a laptop after 20 days?")
            assert cache == "miss" and "30 days" in text
        flushed = httpx.delete(f"{url}/v1/cache")
        assert flushed.status_code == 503 and flushed.json()["error"]["code"] == "cache_unavailable"


def test_a_new_document_that_outranks_the_cited_ones_is_a_miss(
    small_index: Path, model_cache: Path
) -> None:
    question = "When does the Seattle store open on Boxing Day?"
    with running_server(server_settings(small_index, model_cache)) as url:
        _, cache, body = ask(url, question)
        assert cache == "miss"
        assert ask(url, question)[1] == "hit-exact"
        upload(
            url,
            "holiday-hours.md",
            "# Holiday Hours\n\nOur Seattle store opens at 7 a.m. on Boxing Day.\n",
        )
        text, cache, body = ask(url, question)
        assert cache == "miss" and "7 a.m." in text
        assert body["grounded"]["citations"][0]["source"] == "holiday-hours.md"
