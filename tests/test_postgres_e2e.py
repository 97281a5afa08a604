"""Grounded on PostgreSQL end to end: real CLI processes, a killed ingest, and two
`grounded serve` processes sharing one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from grounded.settings import PostgresSettings
from grounded.store.postgres.migrate import LATEST
from tests.conftest import ROOT, SAMPLES, cli_env, run_cli
from tests.support.postgres import fresh_schema
from tests.support.serve_process import serve_process
from tests.test_cli_ingest import summary, write_many_documents

QUESTION = "when does the Seattle store open on Boxing Day?"


def pg_env(url: str, schema: PostgresSettings) -> dict[str, str]:
    return {"GROUNDED_STORE_URL": url, "GROUNDED_POSTGRES__SCHEMA_NAME": schema.schema_name}


def counts(url: str, schema: PostgresSettings) -> tuple[int, int]:
    """Documents and chunks, after checking no document is stored half-written."""
    with psycopg.connect(url, options=f"-c search_path={schema.schema_name},public") as conn:
        torn = conn.execute(
            "SELECT count(*) FROM documents d WHERE chunk_count != "
            "(SELECT count(*) FROM chunks c WHERE c.doc_key = d.doc_key)"
        ).fetchone()
        assert torn == (0,), "a document is stored half-written"
        docs = conn.execute("SELECT count(*) FROM documents").fetchone()
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()
        assert docs is not None and chunks is not None
        return int(docs[0]), int(chunks[0])


@pytest.mark.slow
def test_killed_ingest_on_postgres_is_consistent_and_resumable(
    tmp_path: Path, model_cache: Path, postgres_url: str
) -> None:
    schema = fresh_schema(postgres_url)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_many_documents(corpus, 120)
    data = tmp_path / "data"
    env = cli_env(data, model_cache) | pg_env(postgres_url, schema)
    process = subprocess.Popen(
        [sys.executable, "-m", "grounded", "ingest", str(corpus)],
        env=env | {"GROUNDED_INGEST__BATCH_CHUNKS": "4"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if counts(postgres_url, schema)[0] >= 10:
            break
        time.sleep(0.05)
    assert process.poll() is None, "ingest finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    documents, _ = counts(postgres_url, schema)
    assert 10 <= documents < 120
    extra = pg_env(postgres_url, schema)
    rows = summary(
        run_cli("ingest", str(corpus), data_dir=data, model_cache=model_cache, env=extra)
    )
    assert int(rows["unchanged"]) == documents and int(rows["added"]) == 120 - documents
    assert counts(postgres_url, schema) == (120, 120 * 2)
    check = run_cli("check", data_dir=data, model_cache=model_cache, env=extra)
    assert "consistent" in check.stdout
    found = run_cli(
        "search",
        "reference NW-0117-3",
        "--json",
        "--k",
        "1",
        "--mode",
        "keyword",
        data_dir=data,
        model_cache=model_cache,
        env=extra,
    )
    assert '"doc-117.md"' in found.stdout


def cited_sources(url: str) -> list[str]:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "grounded-extractive", "messages": [{"role": "user", "content": QUESTION}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return [c["source"] for c in response.json()["grounded"]["citations"]]


@pytest.mark.slow
def test_two_servers_share_one_postgres(
    tmp_path: Path, model_cache: Path, postgres_url: str
) -> None:
    schema = fresh_schema(postgres_url)
    extra = pg_env(postgres_url, schema)
    run_cli("ingest", str(SAMPLES), data_dir=tmp_path / "a", model_cache=model_cache, env=extra)
    with (
        serve_process(tmp_path / "a", model_cache, extra) as first,
        serve_process(tmp_path / "b", model_cache, extra) as second,
    ):
        assert "holiday-hours.md" not in cited_sources(second)
        uploaded = httpx.post(
            f"{first}/v1/documents",
            files={
                "files": (
                    "holiday-hours.md",
                    b"# Holiday Hours\n\nOur Seattle store opens at 7 a.m. on Boxing Day.\n",
                )
            },
            timeout=120,
        )
        assert uploaded.status_code == 201, uploaded.text
        doc_id = uploaded.json()["documents"][0]["id"]
        assert cited_sources(second)[0] == "holiday-hours.md"
        assert httpx.get(f"{second}/v1/documents/{doc_id}").status_code == 200
        assert httpx.delete(f"{second}/v1/documents/{doc_id}").status_code == 200
        assert "holiday-hours.md" not in cited_sources(first)
        assert httpx.get(f"{first}/v1/documents/{doc_id}").status_code == 404


def test_db_migrate_command_and_unreachable_server(tmp_path: Path, model_cache: Path) -> None:
    bad = run_cli(
        "db",
        "migrate",
        "--url",
        "postgresql://u:hunter2@127.0.0.1:9/x",
        data_dir=tmp_path,
        model_cache=model_cache,
        check=False,
    )
    assert bad.returncode == 2 and "cannot reach PostgreSQL" in bad.stderr
    assert "hunter2" not in bad.stderr and "Traceback" not in bad.stderr
    ingest = run_cli(
        "stats",
        data_dir=tmp_path,
        model_cache=model_cache,
        check=False,
        env={"GROUNDED_STORE_URL": "postgresql://u:hunter2@127.0.0.1:9/x"},
    )
    assert ingest.returncode == 2 and "cannot reach PostgreSQL" in ingest.stderr


def test_db_migrate_creates_then_reports_nothing_to_do(
    tmp_path: Path, model_cache: Path, postgres_url: str
) -> None:
    env = {"GROUNDED_POSTGRES__SCHEMA_NAME": f"t_cli_{os.getpid()}_{int(time.time())}"}
    first = run_cli(
        "db", "migrate", "--url", postgres_url, data_dir=tmp_path, model_cache=model_cache, env=env
    )
    assert f"{LATEST} migration(s) applied" in first.stdout
    again = run_cli(
        "db", "migrate", "--url", postgres_url, data_dir=tmp_path, model_cache=model_cache, env=env
    )
    assert "0 migration(s) applied" in again.stdout


def test_db_start_gives_a_working_local_server(tmp_path: Path, model_cache: Path) -> None:
    local = tmp_path / "pg"
    started = run_cli(
        "db", "start", "--dir", str(local), data_dir=tmp_path, model_cache=model_cache
    )
    try:
        url = started.stdout.split("GROUNDED_STORE_URL='", 1)[1].split("'", 1)[0]
        stats = run_cli(
            "stats",
            "--json",
            data_dir=tmp_path,
            model_cache=model_cache,
            env={"GROUNDED_STORE_URL": url},
        )
        assert '"documents": 0' in stats.stdout
    finally:
        run_cli("db", "stop", "--dir", str(local), data_dir=tmp_path, model_cache=model_cache)
