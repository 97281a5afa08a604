"""/v1/admin: keys, gateway status (queues and workers), per-tenant cache flush.

Guarded by the admin key (`GROUNDED_GATEWAY__ADMIN_KEY`); off when none is set.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from grounded.cache.state import StateUnavailable
from grounded.errors import InputError
from grounded.gateway.keys import ApiKey
from grounded.gateway.tenancy import TENANT_PATTERN
from grounded.serve.auth import admin
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state

router = APIRouter(prefix="/v1/admin", dependencies=[Depends(admin)])


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=TENANT_PATTERN.pattern)
    tier: str | None = Field(None, max_length=32)
    name: str = Field("", max_length=200)


def _key(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "object": "api_key",
        "tenant": key.tenant,
        "tier": key.tier,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _keys(request: Request) -> Any:
    keys = state(request).gateway.keys
    assert keys is not None
    return keys


@router.post("/keys", status_code=201, response_model=None)
async def create_key(body: NewKey, request: Request) -> Any:
    tier = body.tier or state(request).gateway.settings.default_tier
    try:
        key, secret = await _keys(request).create(body.tenant, tier, body.name)
    except InputError as exc:
        return error_response(400, str(exc), "invalid_key_request")
    return {**_key(key), "key": secret}


@router.get("/keys")
async def list_keys(
    request: Request, tenant: str | None = None, include_revoked: bool = False
) -> dict[str, Any]:
    found = await _keys(request).list(tenant, include_revoked)
    return {"object": "list", "data": [_key(k) for k in found]}


@router.delete("/keys/{key_id}", response_model=None)
async def revoke_key(key_id: str, request: Request) -> Any:
    if not await _keys(request).revoke(key_id):
        return error_response(404, f"no active key {key_id!r}", "key_not_found", "key_id")
    return {"id": key_id, "object": "api_key.revoked", "revoked": True}


@router.get("/gateway")
async def gateway_status(request: Request) -> dict[str, Any]:
    """Per model: admission queue (depth, waits, shed) and each worker's state."""
    return {"models": state(request).gateway.status()}


@router.delete("/tenants/{tenant}/cache", response_model=None)
async def flush_tenant_cache(tenant: str, request: Request) -> Any:
    if not TENANT_PATTERN.fullmatch(tenant):
        return error_response(400, "invalid tenant name", "invalid_tenant", "tenant")
    try:
        removed = await (await state(request).runtime.response_cache()).flush(tenant)
    except StateUnavailable as exc:
        return error_response(503, str(exc), "cache_unavailable")
    return {"tenant": tenant, "flushed": removed}
