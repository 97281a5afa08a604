"""Build the configured generation backends; the only place that imports them."""

from __future__ import annotations

from collections.abc import Sequence

from grounded.generate.openai_compat import OpenAICompatBackend
from grounded.generate.protocol import ChatBackend
from grounded.settings import ModelSettings


def build_backends(models: Sequence[ModelSettings]) -> dict[str, ChatBackend]:
    backends: dict[str, ChatBackend] = {}
    for model in models:
        if model.backend == "openai" and model.url:
            key = model.api_key.get_secret_value() if model.api_key else None
            backends[model.name] = OpenAICompatBackend(
                model.name,
                model.url,
                model.upstream_model or model.name,
                key,
                model.connect_timeout_s,
                model.read_timeout_s,
            )
    return backends
