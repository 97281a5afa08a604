"""Access to the per-process state from a route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from grounded.serve.app import AppState


def state(request: Request) -> AppState:
    return request.app.state.grounded  # type: ignore[no-any-return]
