"""Any OpenAI-compatible chat server: vLLM, TGI, SGLang, llama.cpp, Ollama, OpenAI itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from grounded.generate.protocol import BackendError, Delta, GenerationRequest
from grounded.generate.upstream_sse import events, to_delta


class OpenAICompatBackend:
    def __init__(
        self,
        name: str,
        url: str,
        upstream_model: str,
        api_key: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
        keepalive: int = 64,
    ) -> None:
        self._name = name
        self._model = upstream_model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read = the longest silence allowed between two streamed chunks.
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s)
        self._client = client or httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max(512, keepalive), max_keepalive_connections=keepalive
            ),
        )

    @property
    def name(self) -> str:
        return self._name

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        return payload

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        started = False
        try:
            async with self._client.stream(
                "POST", "/chat/completions", json=self._payload(request)
            ) as response:
                if response.status_code != 200:
                    body = (await response.aread())[:300].decode(errors="replace")
                    raise BackendError(
                        f"model server answered {response.status_code}: {body}",
                        before_output=True,
                        status=response.status_code,
                    )
                lines = response.aiter_lines()
                async for event in events(lines):
                    delta = to_delta(event)
                    if delta is not None:
                        started = started or bool(delta.text)
                        yield delta
                # Read past [DONE] to the end of the body, or the connection cannot be reused
                # and every request pays for a new one.
                async for _ in lines:
                    pass
        except BackendError as exc:
            raise BackendError(str(exc), not started, exc.status) from exc
        except httpx.TimeoutException as exc:
            raise BackendError(
                f"model server timed out ({type(exc).__name__})", not started
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendError(
                f"model server unreachable: {exc}", before_output=not started
            ) from exc

    async def ready(self) -> bool:
        try:
            response = await self._client.get("/models", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        await self._client.aclose()
