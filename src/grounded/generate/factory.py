"""Build the configured generation backends; the only place that imports them."""

from __future__ import annotations

from collections.abc import Sequence

from grounded.gateway.workers import WorkerPool
from grounded.generate.protocol import ChatBackend
from grounded.settings import ModelSettings


def build_backends(models: Sequence[ModelSettings]) -> dict[str, ChatBackend]:
    """Every OpenAI-compatible model sits behind a worker pool (one URL or several): load
    balancing, retries, failover and circuit breakers apply to all of them alike."""
    return {model.name: WorkerPool(model) for model in models if model.backend == "openai"}
