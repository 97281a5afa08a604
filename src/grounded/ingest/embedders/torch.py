"""all-MiniLM-L6-v2 through sentence-transformers on CPU: the reference backend.

The other backends are checked against this one, so it stays as close to the stock model as
possible: same tokenizer, same pooling, same truncation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from grounded.errors import EmbedderError
from grounded.ingest.embedders.minilm import DIMENSION, MAX_TOKENS, MODEL_NAME, model_dir
from grounded.ingest.embedders.protocol import Matrix

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TorchEmbedder:
    """Embeds with PyTorch; the model loads on the first call to `embed`."""

    def __init__(self, batch_size: int = 8, threads: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self._batch_size = batch_size
        self._threads = threads
        self._model: SentenceTransformer | None = None
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{MODEL_NAME}/torch"

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        model = self._loaded()
        # Longest first so each batch holds texts of similar length and pads little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        try:
            vectors = model.encode(
                [texts[i] for i in order],
                batch_size=self._batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        except Exception as exc:
            raise EmbedderError(f"torch embedding failed: {exc}") from exc
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        out[order] = np.asarray(vectors, dtype=np.float32)
        return out

    def _loaded(self) -> SentenceTransformer:
        with self._load_lock:
            if self._model is None:
                self._model = _load_model(self._threads)
            return self._model


def _load_model(threads: int | None) -> SentenceTransformer:
    # model_dir() switches the hub libraries to offline mode, which they read at import time.
    path = model_dir()
    import torch
    from sentence_transformers import SentenceTransformer

    if threads is not None:
        # Process-wide in PyTorch; there is no per-model thread pool to size instead.
        torch.set_num_threads(threads)
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as exc:
        raise EmbedderError(f"could not load {MODEL_NAME}: {exc}") from exc
    # The bundled config already says 256; pinning it keeps truncation identical to the
    # ONNX backends even if a future package changes its default.
    model.max_seq_length = MAX_TOKENS
    model.eval()
    return model
