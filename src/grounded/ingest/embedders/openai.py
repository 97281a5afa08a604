"""Any OpenAI-compatible ``/v1/embeddings`` server (TEI, vLLM, OpenAI): batched, retried."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
import numpy as np

from grounded.errors import EmbedderError
from grounded.ingest.embedders.protocol import Matrix

_RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class OpenAIEmbedder:
    def __init__(
        self,
        url: str,
        model: str,
        dimension: int,
        max_tokens: int,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
        )
        self._model = model
        self._dimension = dimension
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._retries = retries

    @property
    def name(self) -> str:
        return f"{self._model}/openai"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.empty((0, self._dimension), dtype=np.float32)
        parts = [
            self._batch(list(texts[i : i + self._batch_size]))
            for i in range(0, len(texts), self._batch_size)
        ]
        matrix = np.concatenate(parts).astype(np.float32)
        if matrix.shape[1] != self._dimension:
            raise EmbedderError(
                f"embedding server returned {matrix.shape[1]} dims, configured {self._dimension}"
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _batch(self, texts: list[str]) -> Matrix:
        payload = {"model": self._model, "input": texts}
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post("/embeddings", json=payload)
            except httpx.TransportError as exc:
                if attempt == self._retries:
                    raise EmbedderError(f"embedding server unreachable: {exc}") from exc
            else:
                if response.status_code == 200:
                    return self._parse(response, len(texts))
                if response.status_code not in _RETRYABLE or attempt == self._retries:
                    raise EmbedderError(
                        f"embedding server answered {response.status_code}: {response.text[:200]}"
                    )
            time.sleep(min(8.0, 0.25 * 2**attempt))
        raise EmbedderError("embedding server failed")  # unreachable; keeps the type checker sure

    @staticmethod
    def _parse(response: httpx.Response, expected: int) -> Matrix:
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            matrix = np.array([item["embedding"] for item in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderError(f"embedding server sent an unexpected body: {exc}") from exc
        if len(matrix) != expected:
            raise EmbedderError(
                f"embedding server returned {len(matrix)} vectors for {expected} inputs"
            )
        return matrix

    def close(self) -> None:
        self._client.close()
