"""The chat route's short path through ASGI.

FastAPI sends every request through a stack of generic layers (telemetry, two body limits,
error middlewares, the exit stack, the router, dependency resolution). For
`POST /v1/chat/completions`, by far the busiest route, that stack cost more CPU than the
whole gateway (BENCHMARKS.md, gateway). `FastLane` sends that one route to a short stack
with the same behaviour — our body limit, the same exception handlers, the same app and
state — and everything else, the lifespan included, to the FastAPI app unchanged. The
FastAPI declaration of the route stays, so it is still in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from grounded.serve.limits import BodyLimit
from grounded.serve.routes import chat

CHAT_PATH = "/v1/chat/completions"


class FastLane:
    def __init__(self, app: FastAPI, max_body_bytes: int) -> None:
        self.app = app
        handlers: dict[Any, Any] = dict(app.exception_handlers)
        unexpected = handlers.pop(Exception, None)
        lane: ASGIApp = Route(CHAT_PATH, chat.fast_chat, methods=["POST"])
        lane = ExceptionMiddleware(lane, handlers=handlers)
        lane = BodyLimit(lane, max_bytes=max_body_bytes, upload_max_bytes=0, upload_prefix="/-")
        self._lane = ServerErrorMiddleware(lane, handler=unexpected)

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CHAT_PATH and scope["method"] == "POST":
            scope["app"] = self.app  # routes reach the shared state through request.app
            await self._lane(scope, receive, send)
            return
        await self.app(scope, receive, send)
