"""GET /healthz (alive) and GET /readyz (store and default backend reachable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from grounded.serve.routes.deps import state

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> Any:
    runtime = state(request).runtime
    checks: dict[str, str] = {}
    try:
        await runtime.store.stats()
        checks["store"] = "ok"
    except Exception as exc:  # readiness reports any failure; it must not raise
        checks["store"] = f"error: {type(exc).__name__}"
    answerer = await runtime.answerer()
    default = runtime.settings.generate.default_model
    checks["model"] = "ok" if await answerer.backend_ready(default) else "unreachable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )
