"""Route dependencies: the caller's identity (API key → tenant and tier) and the admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from grounded.gateway.tenancy import Principal
from grounded.serve.routes.deps import state


async def principal(request: Request) -> Principal:
    """401 without a valid key (when auth is on); who is asking otherwise."""
    found = await state(request).gateway.authenticate(request.headers.get("authorization"))
    request.state.principal = found
    return found


async def admin(request: Request) -> None:
    state(request).gateway.authorize_admin(request.headers.get("authorization"))


Caller = Annotated[Principal, Depends(principal)]
