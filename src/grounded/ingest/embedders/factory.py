"""Build the configured embedder; the only place that imports concrete backends."""

from __future__ import annotations

from pathlib import Path

from grounded.errors import ConfigError
from grounded.ingest.embedders.protocol import Embedder
from grounded.settings import EmbedSettings


def build_embedder(settings: EmbedSettings, cache_dir: Path) -> Embedder:
    threads = settings.threads or None
    if settings.backend == "onnx":
        from grounded.ingest.embedders.onnx import DEFAULT_BATCH_SIZE, OnnxEmbedder

        return OnnxEmbedder(
            cache_dir,
            quantize=settings.quantize,
            batch_size=settings.batch_size or DEFAULT_BATCH_SIZE,
            threads=threads,
        )
    if settings.backend == "torch":
        from grounded.ingest.embedders.torch import TorchEmbedder

        return TorchEmbedder(batch_size=settings.batch_size or 8, threads=threads)
    if settings.backend == "openai":
        from grounded.ingest.embedders.openai import OpenAIEmbedder

        if not settings.url:
            raise ConfigError("embed.backend=openai needs embed.url (GROUNDED_EMBED__URL)")
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return OpenAIEmbedder(
            settings.url,
            settings.model,
            settings.dimension,
            settings.max_input_tokens,
            api_key=key,
            batch_size=settings.batch_size or 64,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
        )
    raise ConfigError(f"unknown embed.backend {settings.backend!r}")
