"""Any OpenAI-compatible chat server: vLLM, TGI, SGLang, llama.cpp, Ollama, OpenAI itself.

The client is aiohttp: under concurrent streams its connection pool costs a fraction of
httpx's, whose per-request check of every pooled socket showed as the largest item in the
gateway's profile (BENCHMARKS.md, gateway).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import orjson

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
        keepalive: int = 64,
    ) -> None:
        self._name = name
        self._model = upstream_model
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # sock_read = the longest silence allowed between two streamed chunks.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._connections = max(512, keepalive)
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self._name

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the event loop that runs the server.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._connections, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=_json,
                auto_decompress=False,
            )
        return self._session

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

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        started = False
        try:
            async with self._client().post(
                f"{self._base}/chat/completions", json=self._payload(request)
            ) as response:
                if response.status != 200:
                    body = (await response.content.read(300)).decode(errors="replace")
                    raise BackendError(
                        f"model server answered {response.status}: {body}",
                        before_output=True,
                        status=response.status,
                    )
                lines = _lines(response.content)
                async for event in events(lines):
                    delta = to_delta(event)
                    if delta is not None:
                        started = started or bool(delta.text)
                        yield delta
                # Read past [DONE] to the end of the body, so the connection can be reused;
                # the answer is complete already, so a failure here only costs the connection.
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async for _ in lines:
                        pass
        except BackendError as exc:
            raise BackendError(str(exc), not started, exc.status) from exc
        except TimeoutError as exc:
            raise BackendError("model server timed out", before_output=not started) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BackendError(
                f"model server unreachable: {exc or type(exc).__name__}", before_output=not started
            ) from exc

    async def ready(self) -> bool:
        try:
            async with self._client().get(
                f"{self._base}/models", timeout=aiohttp.ClientTimeout(total=2.0)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    async for raw in content:
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
