"""`create_app(settings)`: the FastAPI application with its lifespan and routes, behind the
chat route's fast lane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from grounded import __version__
from grounded.observe.feedback import build_feedback_store
from grounded.runtime import Runtime
from grounded.serve import errors
from grounded.serve.fastlane import FastLane
from grounded.serve.limits import BodyLimit
from grounded.serve.routes import admin, chat, documents, feedback, models, system
from grounded.settings import Settings


class AppState:
    """What the routes share; built once per process in the lifespan."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.gateway = runtime.gateway()
        self.shadow = runtime.shadow()
        self.feedback = build_feedback_store(runtime.settings)
        self.ingest_lock = asyncio.Lock()


def create_app(settings: Settings) -> FastLane:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.ready_for_search()
        await asyncio.to_thread(runtime.embedder.embed, ["warm up"])
        app.state.grounded = AppState(runtime)
        gateway = app.state.grounded.gateway
        # Model calls made inside an answer (a rewrite, an escalation) queue like requests.
        (await runtime.answerer()).admit = gateway.admit
        gateway.start()
        try:
            yield
        finally:
            await app.state.grounded.feedback.close()
            await runtime.close()

    app = FastAPI(
        title="Grounded",
        version=__version__,
        lifespan=lifespan,
        description="Answers grounded in your documents, through an OpenAI-compatible API.",
    )
    errors.install(app)
    app.include_router(chat.router)
    app.include_router(models.router)
    app.include_router(feedback.router)
    app.include_router(documents.router)
    app.include_router(system.router)
    app.include_router(admin.router)

    page = resources.files("grounded.serve").joinpath("static/index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page)

    serve = settings.serve
    app.add_middleware(
        BodyLimit,
        max_bytes=serve.max_request_kb * 1024,
        upload_max_bytes=int(serve.max_upload_mb * 1_000_000) + 64 * 1024,
        upload_prefix="/v1/documents",
    )
    return FastLane(app, serve.max_request_kb * 1024)
