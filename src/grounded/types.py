"""Shared type aliases."""

from __future__ import annotations

from typing import NewType

import numpy as np
import numpy.typing as npt

DocId = NewType("DocId", str)
ChunkId = NewType("ChunkId", str)
Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
Metadata = dict[str, str | int | float | bool]
