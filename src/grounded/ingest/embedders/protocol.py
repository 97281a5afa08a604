"""The contract every embedding backend meets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    `name` identifies the model *and* its numeric variant (e.g. ``minilm-l6-v2/onnx-int8``):
    vectors from different names are never mixed in one index.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Word pieces the model sees per input, special tokens included."""
        ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed a batch; returns shape (len(texts), dimension), rows unit length."""
        ...
