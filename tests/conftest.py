"""Shared fixtures: the real embedding model (exported to ONNX once per session) and a
sample-corpus index built once, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from grounded.ingest.embedders.onnx import OnnxEmbedder
from grounded.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "support"
QUERIES = ROOT / "samples" / "queries.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(model_cache, quantize="int8")
    embedder.embed(["warm-up: export the model once for the whole session"])
    return embedder


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path, embedder: OnnxEmbedder) -> Settings:
    return load_settings(data_dir=tmp_path / "data", embed={"cache_dir": model_cache})


def cli_env(data_dir: Path, model_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDED_")}
    env.update(
        GROUNDED_DATA_DIR=str(data_dir),
        GROUNDED_EMBED__CACHE_DIR=str(model_cache),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        COLUMNS="200",
    )
    return env


def run_cli(
    *args: str,
    data_dir: Path,
    model_cache: Path,
    check: bool = True,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "grounded", *args],
        capture_output=True,
        text=True,
        env=cli_env(data_dir, model_cache) | (env or {}),
        cwd=cwd or ROOT,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"grounded {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def sample_index(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, embedder: OnnxEmbedder
) -> Iterator[Path]:
    """The bundled corpus ingested once; tests that read it must not change it."""
    data_dir = tmp_path_factory.mktemp("sample-index")
    run_cli("ingest", str(SAMPLES), data_dir=data_dir, model_cache=model_cache)
    yield data_dir


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.support.postgres import start_server

    return start_server(tmp_path_factory.mktemp("postgres"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
