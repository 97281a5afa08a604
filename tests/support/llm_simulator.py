"""A simulator of an OpenAI-compatible chat server, for Grounded's tests only.

This is a test double: it is never a model, it does not generate language, and it is never a
default backend of Grounded. It answers `POST /v1/chat/completions` with a deterministic text
that echoes which numbered passages ("[1] ...", "[2] ...") it found in the prompt, pads the
text with filler words to a configured length, and streams it word by word with configurable
timing. Tests use it to exercise Grounded's client code against a real HTTP server on loopback:
normal answers, streaming, `max_tokens` cuts, server errors, hung requests and connections
that drop mid-stream, plus counters that show whether Grounded closed its upstream request.

Endpoints:

- `POST /v1/chat/completions`: OpenAI request shape; `stream`, `stream_options.include_usage`
  and `max_tokens` (or `max_completion_tokens`) are honoured, everything else is ignored.
- `GET /v1/models`, `GET /health`.
- `POST /_control`: JSON `{"mode": ..., <any SimulatorConfig field>: ..., "reset": true,
  "release_hung": true}` switches the behaviour of a running server (see `Mode`).
- `GET /_stats`: counters and the last chat request body received (see `SimulatorStats`).

Tokens are whitespace-separated words. Streamed content chunks carry one word each, with its
leading space (the first word has none), so the concatenated stream equals the non-streamed
content exactly.

Run it in-process with `RunningSimulator`, or as a subprocess with
`python -m tests.support.llm_simulator --port 0`, which prints its base URL on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import re
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, get_args

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "MODES",
    "NO_PASSAGES_ANSWER",
    "Mode",
    "RunningSimulator",
    "SimulatedDrop",
    "SimulatorConfig",
    "SimulatorStats",
    "answer_words",
    "create_simulator",
    "main",
]

Mode = Literal["ok", "error_500", "hang", "drop_mid_stream", "slow"]
"""Behaviour of the chat endpoint.

- ``ok``: answer normally.
- ``error_500``: answer 500 with an OpenAI-style error body.
- ``hang``: read the request, then send nothing at all until the client goes away (other
  requests are still served).
- ``drop_mid_stream``: send `drop_after` content tokens, then close the connection abruptly
  (no final chunk, no ``[DONE]``, no end of the chunked body).
- ``slow``: like ``ok`` but the first token comes after `slow_ttft_s`.
"""

MODES: tuple[str, ...] = get_args(Mode)

NO_PASSAGES_ANSWER = "I have no passages to answer from."
FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
MAX_SENTENCE_WORDS = 30

_PASSAGE_LINE = re.compile(r"^[ \t]*\[(\d+)\][ \t]*(.*)$")
_LOCATION_LABEL = re.compile(r"^\(.*\)$")
_SENTENCE = re.compile(r"^.*?[.!?](?=\s|$)")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Behaviour of the simulator; every field can also be changed at runtime (`/_control`)."""

    model_name: str = "sim-small"
    mode: Mode = "ok"
    ttft_s: float = 0.05  # time to first token
    itl_s: float = 0.01  # delay between two tokens
    completion_tokens: int = 40  # target answer length; the echo part is never cut by it
    drop_after: int = 5  # content tokens sent before the connection drops
    slow_ttft_s: float = 2.0  # time to first token in "slow" mode

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        for name in ("ttft_s", "itl_s", "slow_ttft_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.completion_tokens < 1:
            raise ValueError("completion_tokens must be >= 1")
        if self.drop_after < 0:
            raise ValueError("drop_after must be >= 0")

    @property
    def first_token_delay_s(self) -> float:
        return self.slow_ttft_s if self.mode == "slow" else self.ttft_s


@dataclass(slots=True)
class SimulatorStats:
    """Counters since start (or the last reset). Served as JSON by `GET /_stats`."""

    requests: int = 0  # chat completion requests received (well-formed or not)
    completions_started: int = 0  # non-streamed answers accepted
    completions_completed: int = 0
    completions_cancelled: int = 0  # non-streamed: client went away before the answer
    completions_dropped: int = 0  # non-streamed: body cut on purpose by "drop_mid_stream"
    streams_started: int = 0
    streams_completed: int = 0  # sent up to and including [DONE]
    streams_cancelled: int = 0  # client went away before [DONE] (includes hung streams)
    streams_dropped: int = 0  # closed on purpose by "drop_mid_stream"
    errors_500: int = 0
    hung: int = 0  # requests held by "hang" mode
    active: int = 0  # chat requests in progress right now
    max_active: int = 0
    last_request: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SimulatedDrop(Exception):
    """Raised inside a response on purpose so that the server closes the connection abruptly."""


# ----------------------------------------------------------------------------------------------
# The deterministic answer


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _passages(messages: list[Any]) -> dict[int, str]:
    """Numbered passages in system and user messages: number -> its text (first wins)."""
    found: dict[int, str] = {}
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user"):
            continue
        number: int | None = None
        lines: list[str] = []

        def close(number: int | None, lines: list[str]) -> None:
            if number is None or number in found:
                return
            if len(lines) > 1 and _LOCATION_LABEL.match(lines[0].strip()):
                lines = lines[1:]  # "[1] (source — section)" header line, text below it
            found[number] = " ".join(" ".join(lines).split())

        for line in _message_text(message).splitlines():
            match = _PASSAGE_LINE.match(line)
            if match:
                close(number, lines)
                number, lines = int(match.group(1)), [match.group(2)]
            elif number is not None:
                lines.append(line)
        close(number, lines)
    return found


def _first_sentence(text: str) -> str:
    match = _SENTENCE.match(text)
    sentence = match.group(0) if match else text
    words = sentence.split()
    if len(words) > MAX_SENTENCE_WORDS:
        words = [*words[:MAX_SENTENCE_WORDS], "…"]
    return " ".join(words)


def answer_words(messages: list[Any], completion_tokens: int) -> list[str]:
    """The full answer (before any `max_tokens` cut), as a list of tokens (words).

    With passages: ``Based on the passages [1] [2]: <first sentence of the lowest-numbered
    passage> [1]`` followed by filler words up to `completion_tokens` words in total. Without
    passages: ``I have no passages to answer from.`` padded the same way.
    """
    passages = _passages(messages)
    if passages:
        numbers = sorted(passages)
        first = numbers[0]
        cited = " ".join(f"[{n}]" for n in numbers)
        sentence = _first_sentence(passages[first])
        core = f"Based on the passages {cited}: {sentence} [{first}]".split()
    else:
        core = NO_PASSAGES_ANSWER.split()
    padding = max(0, completion_tokens - len(core))
    return core + list(itertools.islice(itertools.cycle(FILLER), padding))


def _count_words(messages: list[Any]) -> int:
    return sum(len(_message_text(m).split()) for m in messages)


# ----------------------------------------------------------------------------------------------
# ASGI plumbing


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _run_unless_disconnected(work: Coroutine[Any, Any, object], receive: Receive) -> bool:
    """Run `work` until it ends or the client goes away (then cancel it); True if it ended.

    Exceptions raised by `work` (such as `SimulatedDrop`) propagate.
    """
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watch_task, work_task):
            if not task.done():
                task.cancel()
        for task in (watch_task, work_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if work_task.cancelled():
        return False
    work_task.result()
    return True


def _error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


@dataclass(slots=True)
class _Plan:
    """One chat request, parsed: what to say and how."""

    config: SimulatorConfig
    model: str
    words: list[str]
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    stream: bool
    include_usage: bool
    ident: str
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.words)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": self.usage,
        }

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.ident,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(self.words)},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage,
        }


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer")
            return value
    return None


class _Simulator:
    """Shared state of one simulator app: current config, counters, hung requests."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.initial_config = config
        self.config = config
        self.stats = SimulatorStats()
        self._ids = itertools.count(1)
        self._release: asyncio.Event | None = None

    # -- control --------------------------------------------------------------------------

    def control(self, command: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(SimulatorConfig)}
        unknown = set(command) - names - {"reset", "reset_stats", "release_hung"}
        if unknown:
            raise ValueError(f"unknown control field(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in command.items() if k in names}
        base = self.initial_config if command.get("reset") else self.config
        config = dataclasses.replace(base, **changes)  # validates before anything changes
        if command.get("reset") or command.get("reset_stats"):
            # Requests still in flight keep counting on the old object; only the gauge moves.
            self.stats = SimulatorStats(active=self.stats.active)
        if command.get("release_hung"):
            self.release_hung()
        self.config = config

    def release_hung(self) -> None:
        """Let every request held by "hang" mode go (used at shutdown)."""
        if self._release is not None:
            self._release.set()
            self._release = None

    def _release_event(self) -> asyncio.Event:
        if self._release is None:
            self._release = asyncio.Event()
        return self._release

    # -- bookkeeping ----------------------------------------------------------------------

    def _enter(self) -> None:
        self.stats.active += 1
        self.stats.max_active = max(self.stats.max_active, self.stats.active)

    def _leave(self) -> None:
        self.stats.active -= 1

    # -- the chat endpoint ----------------------------------------------------------------

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        stats = self.stats
        stats.requests += 1
        try:
            body = await request.json()
        except ValueError:
            await self._reply_error(scope, receive, send, 400, "request body is not valid JSON")
            return
        stats.last_request = body if isinstance(body, dict) else {"invalid": body}
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await self._reply_error(scope, receive, send, 400, "'messages' must be a list")
            return
        try:
            plan = self._plan(body)
        except ValueError as exc:
            await self._reply_error(scope, receive, send, 400, str(exc))
            return

        if plan.config.mode == "error_500":
            stats.errors_500 += 1
            response = JSONResponse(
                _error_body("The simulated server had an error.", "server_error"), 500
            )
            await response(scope, receive, send)
            return

        self._enter()
        try:
            if plan.config.mode == "hang":
                await self._hang(plan, receive, stats)
            elif plan.stream:
                await self._stream(plan, receive, send, stats)
            else:
                await self._complete(plan, receive, send, stats)
        finally:
            self._leave()

    async def _reply_error(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        response = JSONResponse(_error_body(message, "invalid_request_error"), status)
        await response(scope, receive, send)

    def _plan(self, body: dict[str, Any]) -> _Plan:
        config = self.config
        messages: list[Any] = body["messages"]
        words = answer_words(messages, config.completion_tokens)
        limit = _max_tokens(body)
        finish: Literal["stop", "length"] = "stop"
        if limit is not None and len(words) > limit:
            words, finish = words[:limit], "length"
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        model = body.get("model")
        return _Plan(
            config=config,
            model=model if isinstance(model, str) and model else config.model_name,
            words=words,
            finish_reason=finish,
            prompt_tokens=_count_words(messages),
            stream=bool(body.get("stream")),
            include_usage=include_usage,
            ident=f"chatcmpl-sim-{next(self._ids)}",
        )

    async def _hang(self, plan: _Plan, receive: Receive, stats: SimulatorStats) -> None:
        stats.hung += 1
        if plan.stream:
            stats.streams_started += 1
        else:
            stats.completions_started += 1
        release = self._release_event()
        if await _run_unless_disconnected(release.wait(), receive):
            # Released at shutdown while the client still waits: close without answering.
            raise SimulatedDrop("hung request released")
        if plan.stream:
            stats.streams_cancelled += 1
        else:
            stats.completions_cancelled += 1

    async def _complete(
        self, plan: _Plan, receive: Receive, send: Send, stats: SimulatorStats
    ) -> None:
        stats.completions_started += 1
        config = plan.config

        async def work() -> None:
            delay = config.first_token_delay_s + config.itl_s * max(0, len(plan.words) - 1)
            await asyncio.sleep(delay)
            payload = json.dumps(plan.completion()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            if config.mode == "drop_mid_stream":
                await send(
                    {
                        "type": "http.response.body",
                        "body": payload[: len(payload) // 2],
                        "more_body": True,
                    }
                )
                stats.completions_dropped += 1
                raise SimulatedDrop("dropped mid-body on purpose")
            await send({"type": "http.response.body", "body": payload, "more_body": False})
            stats.completions_completed += 1

        if not await _run_unless_disconnected(work(), receive):
            stats.completions_cancelled += 1

    async def _stream(
        self, plan: _Plan, receive: Receive, send: Send, stats: SimulatorStats
    ) -> None:
        stats.streams_started += 1
        config = plan.config

        async def body(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async def work() -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            await asyncio.sleep(config.first_token_delay_s)
            await body(_sse(plan.chunk({"role": "assistant"})))
            for index, word in enumerate(plan.words):
                if config.mode == "drop_mid_stream" and index >= config.drop_after:
                    stats.streams_dropped += 1
                    raise SimulatedDrop("stream dropped on purpose")
                if index:
                    await asyncio.sleep(config.itl_s)
                await body(_sse(plan.chunk({"content": word if index == 0 else f" {word}"})))
            if config.mode == "drop_mid_stream":  # fewer words than drop_after
                stats.streams_dropped += 1
                raise SimulatedDrop("stream dropped on purpose")
            await asyncio.sleep(config.itl_s)
            await body(_sse(plan.chunk({}, plan.finish_reason)))
            if plan.include_usage:
                await body(_sse(plan.usage_chunk()))
            await send({"type": "http.response.body", "body": _sse("[DONE]"), "more_body": False})
            stats.streams_completed += 1

        if not await _run_unless_disconnected(work(), receive):
            stats.streams_cancelled += 1


class _ChatEndpoint:
    """Raw ASGI endpoint, so the response can be timed, cut and dropped at will."""

    def __init__(self, simulator: _Simulator) -> None:
        self._simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._simulator.chat(scope, receive, send)


def create_simulator(config: SimulatorConfig | None = None) -> Starlette:
    """The simulator as an ASGI app; its shared state is `app.state.simulator`."""
    simulator = _Simulator(config or SimulatorConfig())

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": simulator.config.model_name,
                        "object": "model",
                        "created": 0,
                        "owned_by": "grounded-tests",
                    }
                ],
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def control(request: Request) -> Response:
        try:
            command = await request.json()
            if not isinstance(command, dict):
                raise ValueError("control body must be a JSON object")
            simulator.control(command)
        except (ValueError, TypeError) as exc:
            return JSONResponse(_error_body(str(exc), "invalid_request_error"), 400)
        return JSONResponse({"config": dataclasses.asdict(simulator.config)})

    async def stats(request: Request) -> Response:
        return JSONResponse(simulator.stats.as_json())

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _ChatEndpoint(simulator), methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/_control", control, methods=["POST"]),
            Route("/_stats", stats, methods=["GET"]),
        ]
    )
    app.state.simulator = simulator
    return app


# ----------------------------------------------------------------------------------------------
# Running it for real


class _HideSimulatedDrops(logging.Filter):
    """Deliberate drops are the point of a test, not server errors worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedDrop))


def _quiet_simulated_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideSimulatedDrops) for f in logger.filters):
        logger.addFilter(_HideSimulatedDrops())


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue up until the server accepts them
    sock.set_inheritable(True)
    return sock


def _server_config(app: Starlette, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        lifespan="off",
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


def _http_json(method: str, url: str, payload: dict[str, Any] | None, timeout: float) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class RunningSimulator:
    """The simulator served by uvicorn on loopback, in a background thread.

    >>> with RunningSimulator(SimulatorConfig(ttft_s=0.01)) as sim:
    ...     client = openai.OpenAI(base_url=sim.url, api_key="x")
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        log_level: str = "warning",
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self.app = create_simulator(self.config)
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.base_url}/v1"

    def start(self) -> RunningSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        _quiet_simulated_drops()
        self._socket = _bind(self.host, self._requested_port)
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(_server_config(self.app, self._log_level))
        server, sock = self._server, self._socket
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="llm-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            try:
                _http_json("GET", f"{self.base_url}/health", None, timeout=1.0)
                return self
            except OSError as exc:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"simulator did not start on {self.base_url}") from exc
                time.sleep(0.02)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._control({"release_hung": True}, timeout=1.0)
        server.should_exit = True
        thread.join(timeout=5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5.0)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> RunningSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _control(self, command: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        answer: dict[str, Any] = _http_json(
            "POST", f"{self.base_url}/_control", command, timeout=timeout
        )
        return answer

    def set_mode(self, mode: Mode, **overrides: Any) -> dict[str, Any]:
        """Switch the running server, e.g. ``set_mode("drop_mid_stream", drop_after=3)``.

        `overrides` are `SimulatorConfig` fields; they persist until changed or `reset()`.
        Returns the resulting config.
        """
        return self._control({"mode": mode, **overrides})["config"]  # type: ignore[no-any-return]

    def configure(self, **overrides: Any) -> dict[str, Any]:
        """Change `SimulatorConfig` fields without touching the mode; returns the config."""
        return self._control(overrides)["config"]  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Back to the config the simulator was created with, and zero the counters."""
        self._control({"reset": True})

    def reset_stats(self) -> None:
        self._control({"reset_stats": True})

    def stats(self) -> dict[str, Any]:
        """Counters (see `SimulatorStats`) and `last_request`, the last chat request body."""
        answer: dict[str, Any] = _http_json("GET", f"{self.base_url}/_stats", None, timeout=5.0)
        return answer

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 3.0
    ) -> dict[str, Any]:
        """Poll `stats()` until `predicate(stats)` holds; returns the last stats either way."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.stats()
            if predicate(current) or time.monotonic() > deadline:
                return current
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator in the foreground; prints the OpenAI base URL on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.llm_simulator",
        description="OpenAI-compatible chat server simulator for Grounded's tests.",
    )
    defaults = SimulatorConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default=defaults.model_name)
    parser.add_argument("--mode", choices=MODES, default=defaults.mode)
    parser.add_argument("--ttft", type=float, default=defaults.ttft_s, help="seconds")
    parser.add_argument("--itl", type=float, default=defaults.itl_s, help="seconds")
    parser.add_argument("--completion-tokens", type=int, default=defaults.completion_tokens)
    parser.add_argument("--drop-after", type=int, default=defaults.drop_after)
    parser.add_argument("--slow-ttft", type=float, default=defaults.slow_ttft_s)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        model_name=args.model,
        mode=args.mode,
        ttft_s=args.ttft,
        itl_s=args.itl,
        completion_tokens=args.completion_tokens,
        drop_after=args.drop_after,
        slow_ttft_s=args.slow_ttft,
    )
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper())
    _quiet_simulated_drops()
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    print(f"http://{args.host}:{port}/v1", flush=True)
    uvicorn.Server(_server_config(create_simulator(config), args.log_level)).run(sockets=[sock])


if __name__ == "__main__":
    main()
