"""The chat page end to end in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.conftest import run_cli
from tests.serve.conftest import running_server, server_settings
from tests.support.llm_simulator import RunningSimulator, SimulatorConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_server(index_copy: Path, model_cache: Path) -> Iterator[tuple[str, RunningSimulator]]:
    # Slow tokens, so the test can watch the answer grow while it streams.
    with RunningSimulator(SimulatorConfig(ttft_s=0.2, itl_s=0.06, completion_tokens=40)) as sim:
        settings = server_settings(
            index_copy,
            model_cache,
            generate={
                "models": [{"name": "sim-small", "url": sim.url}],
                "default_model": "sim-small",
            },
        )
        with running_server(settings) as url:
            yield url, sim


def test_ask_see_streamed_answer_open_a_citation_and_give_feedback(
    browser: Browser, page_server: tuple[str, RunningSimulator], index_copy: Path
) -> None:
    url, _ = page_server
    page = browser.new_page()
    page.goto(url)
    page.get_by_label("Question").fill("Can I return a laptop after 45 days?")
    page.get_by_role("button", name="Ask").click()

    answer = page.locator(".assistant .answer-text").first
    expect(answer).to_contain_text("Based on the passages", timeout=15000)
    partial = len(answer.inner_text())
    expect(answer).to_contain_text("[1]")
    page.wait_for_selector(".assistant .citations", timeout=20000)
    assert len(answer.inner_text()) > partial, "text kept arriving after the first words"

    citation = page.locator(".citation").first
    expect(citation.locator("summary")).to_contain_text("[1] articles/returns.md")
    citation.locator("summary").click()
    expect(citation.locator("blockquote")).to_contain_text("30 days")

    page.get_by_role("button", name="Not helpful").first.click()
    expect(page.locator(".feedback span").first).to_have_text("Thanks for the feedback.")
    rows = (
        sqlite3.connect(index_copy / "feedback.db")
        .execute("SELECT rating FROM feedback WHERE rating = 'down'")
        .fetchall()
    )
    assert rows

    # The conversation is kept: a follow-up is sent with the history.
    page.get_by_label("Question").fill("and for phones?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".assistant")).to_have_count(2)
    expect(page.locator(".user")).to_have_count(2)
    page.close()


def test_with_keys_on_the_page_asks_for_a_key_and_remembers_it(
    browser: Browser, index_copy: Path, model_cache: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(index_copy, data, ignore=shutil.ignore_patterns("feedback.db*", "logs"))
    created = run_cli(
        "keys", "create", "--tenant", "default", "--json", data_dir=data, model_cache=model_cache
    )
    secret = json.loads(created.stdout)["key"]
    with running_server(server_settings(data, model_cache, gateway={"auth": True})) as url:
        page = browser.new_page()
        page.goto(url)
        page.get_by_label("Question").fill("Can I return a laptop after 45 days?")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator(".assistant").first).to_contain_text("API key", timeout=15000)
        page.get_by_label("API key").fill(secret)
        page.get_by_label("API key").dispatch_event("change")
        page.get_by_label("Question").fill("Can I return a laptop after 45 days?")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator(".assistant .answer-text").nth(1)).to_contain_text("30 days")
        page.reload()  # the key is kept in this browser
        expect(page.get_by_label("API key")).to_have_value(secret)
        page.close()
