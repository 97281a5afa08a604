"""The PyTorch and ONNX embedding backends: shape, order, agreement and the export cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from grounded.errors import EmbedderError
from grounded.ingest.embedders import onnx as onnx_backend
from grounded.ingest.embedders.minilm import DIMENSION, MAX_TOKENS, tokenizer_file
from grounded.ingest.embedders.onnx import OnnxEmbedder, ensure_model
from grounded.ingest.embedders.protocol import Embedder
from grounded.ingest.embedders.torch import TorchEmbedder
from grounded.ingest.embedders.verify import check_against_torch, row_cosines

LONG_TEXT = " ".join(
    f"Section {i}: refunds for damaged camping gear are issued within fourteen days of receipt."
    for i in range(40)
)

TEXTS = [
    "How do I return my laptop?",
    "Laptop return policy",
    "Tent pole repair kit",
    "",
    "ok",
    "Where is my order #A-10293? It was supposed to arrive on 2024-03-05.",
    "Die Rücksendung ist innerhalb von 30 Tagen kostenlos.",
    "Le remboursement est effectué sous 14 jours après réception du colis.",
    "配送には通常3〜5営業日かかります。",
    "def refund(order_id: str) -> None:\n    raise NotImplementedError",
    "ERROR 502: upstream timed out while contacting the payment gateway",
    "Our warranty covers manufacturing defects for two years; accidental damage is excluded.",
    "To reset your password, open Settings > Account > Security and choose 'Reset'.",
    "Can I change the shipping address after the order has shipped?",
    "🙂 thanks!!! great support",
    "The sleeping bag is rated to -10 °C and packs down to 30 x 20 cm.",
    "Gift cards cannot be exchanged for cash except where required by law.",
    "Q: Do you ship to Norway?\nA: Yes, customs fees are paid on delivery.",
    " ".join(["Battery replacement instructions for the X200 headlamp."] * 6),
    LONG_TEXT,
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def torch_embedder() -> TorchEmbedder:
    return TorchEmbedder(threads=2)


@pytest.fixture(scope="session")
def fp32(cache_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir, "fp32", threads=2)


@pytest.fixture(scope="session")
def int8(cache_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir, "int8", threads=2)


def word_pieces(text: str) -> int:
    tokenizer = Tokenizer.from_file(str(tokenizer_file()))
    tokenizer.no_truncation()
    return len(tokenizer.encode(text).ids)


def test_torch_returns_unit_float32_rows(torch_embedder: TorchEmbedder) -> None:
    vectors = torch_embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert torch_embedder.name == "all-MiniLM-L6-v2/torch"
    assert isinstance(torch_embedder, Embedder)


def test_torch_ranks_related_sentences_higher(torch_embedder: TorchEmbedder) -> None:
    query, related, unrelated = torch_embedder.embed(
        ["How do I return my laptop?", "Laptop return policy", "Tent pole repair kit"]
    )
    assert float(query @ related) > float(query @ unrelated) + 0.2


def test_long_text_exceeds_the_limit() -> None:
    # Otherwise the fp32 comparison below would not cover truncation.
    assert word_pieces(LONG_TEXT) > MAX_TOKENS


def test_onnx_fp32_matches_torch(fp32: OnnxEmbedder, torch_embedder: TorchEmbedder) -> None:
    agreement = check_against_torch(fp32, TEXTS, reference=torch_embedder)
    assert agreement["min_cosine"] >= 0.99
    # Cutting the long text at 254 instead of 256 pieces moves it by ~1e-4, so this bound
    # would catch a truncation mismatch that the 0.99 floor lets through.
    long_cosine = row_cosines(fp32.embed([LONG_TEXT]), torch_embedder.embed([LONG_TEXT]))
    assert long_cosine[0] > 0.99999
    assert fp32.name == "all-MiniLM-L6-v2/onnx-fp32"
    assert isinstance(fp32, Embedder)


def test_onnx_int8_stays_close_to_torch(int8: OnnxEmbedder, torch_embedder: TorchEmbedder) -> None:
    agreement = check_against_torch(int8, TEXTS, reference=torch_embedder)
    assert agreement["mean_cosine"] >= 0.98
    assert int8.name == "all-MiniLM-L6-v2/onnx-int8"
    vectors = int8.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch_embedder", "fp32"])
def test_order_is_preserved_across_mixed_lengths(
    backend: str, request: pytest.FixtureRequest
) -> None:
    embedder: Embedder = request.getfixturevalue(backend)
    texts = [TEXTS[4], LONG_TEXT, TEXTS[0], TEXTS[18], "", TEXTS[11], TEXTS[2]]
    together = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    assert row_cosines(together, one_by_one).min() > 0.9999
    reversed_order = embedder.embed(texts[::-1])
    assert row_cosines(reversed_order[::-1], together).min() > 0.9999


def test_batches_smaller_than_input_keep_order(cache_dir: Path, fp32: OnnxEmbedder) -> None:
    small_batches = OnnxEmbedder(cache_dir, "fp32", batch_size=3, threads=2)
    assert row_cosines(small_batches.embed(TEXTS), fp32.embed(TEXTS)).min() > 0.9999


def test_empty_input_gives_empty_matrix(cache_dir: Path) -> None:
    for embedder in (TorchEmbedder(), OnnxEmbedder(cache_dir), OnnxEmbedder(cache_dir, "int8")):
        vectors = embedder.embed([])
        assert vectors.shape == (0, DIMENSION)
        assert vectors.dtype == np.float32


def test_second_embedder_reuses_the_export(
    cache_dir: Path, fp32: OnnxEmbedder, int8: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32.embed(["warm"])
    int8.embed(["warm"])
    paths = [fp32.model_path(), int8.model_path()]
    mtimes = [p.stat().st_mtime_ns for p in paths]

    def no_export(target: Path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "_export_fp32", no_export)

    # In-process, so the patched export is the one that runs.

    monkeypatch.setattr(onnx_backend, "_build_in_child", onnx_backend._build_locked)
    for quantize in ("fp32", "int8"):
        again = OnnxEmbedder(cache_dir, quantize)
        assert again.embed(["again"]).shape == (1, DIMENSION)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    assert all(onnx_backend.model_fingerprint() in p.name for p in paths)
    assert not list(cache_dir.glob(".*.tmp"))


def test_concurrent_exports_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_export(target: Path) -> None:
        calls.append(target)
        threading.Event().wait(0.2)  # long enough for the other caller to hit the lock
        target.write_bytes(b"onnx")

    monkeypatch.setattr(onnx_backend, "_export_fp32", fake_export)

    # In-process, so the patched export is the one that runs.

    monkeypatch.setattr(onnx_backend, "_build_in_child", onnx_backend._build_locked)
    results: list[Path] = []
    workers = [
        threading.Thread(target=lambda: results.append(ensure_model(tmp_path, "fp32")))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) == 1
    assert results[0] == results[1]
    assert results[0].read_bytes() == b"onnx"


def test_failed_export_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_export(target: Path) -> None:
        target.write_bytes(b"half a mod")
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_backend, "_export_fp32", broken_export)

    # In-process, so the patched export is the one that runs.

    monkeypatch.setattr(onnx_backend, "_build_in_child", onnx_backend._build_locked)
    with pytest.raises(EmbedderError, match="disk full"):
        ensure_model(tmp_path, "fp32")
    assert [p.name for p in tmp_path.iterdir()] == [".export.lock"]
