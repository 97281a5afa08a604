"""Numeric agreement of a backend with the PyTorch reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounded.ingest.embedders.protocol import Embedder, Matrix


def row_cosines(a: Matrix, b: Matrix) -> Matrix:
    """Cosine of each row of `a` with the same row of `b`."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines: Matrix = (np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)).astype(np.float32)
    return cosines


def check_against_torch(
    embedder: Embedder, texts: Sequence[str], reference: Embedder | None = None
) -> dict[str, float]:
    """Mean and min cosine between `embedder` and the PyTorch backend on the same texts.

    Pass `reference` to reuse an already loaded PyTorch embedder; otherwise one is created
    for the call, which loads the model again.
    """
    if not texts:
        raise ValueError("need at least one text to compare")
    if reference is None:
        from grounded.ingest.embedders.torch import TorchEmbedder

        reference = TorchEmbedder()
    cosines = row_cosines(embedder.embed(texts), reference.embed(texts))
    return {
        "n": float(len(texts)),
        "mean_cosine": float(cosines.mean()),
        "min_cosine": float(cosines.min()),
    }
