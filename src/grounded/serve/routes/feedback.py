"""POST /v1/feedback and GET /v1/feedback: thumbs up/down on answers, per tenant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from grounded.serve.auth import Caller
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state
from grounded.serve.schemas import FeedbackRequest

router = APIRouter()


@router.post("/v1/feedback", status_code=201)
async def feedback(body: FeedbackRequest, request: Request, caller: Caller) -> dict[str, Any]:
    feedback_id = await state(request).feedback.add(
        caller.tenant, body.answer_id, body.rating, body.comment
    )
    return {"id": feedback_id, "answer_id": body.answer_id, "rating": body.rating}


@router.get("/v1/feedback")
async def list_feedback(request: Request, caller: Caller, limit: int = 100) -> Any:
    """This tenant's feedback, newest first (never another tenant's)."""
    if not 1 <= limit <= 1000:
        return error_response(400, "limit must be 1-1000", "invalid_paging", "limit")
    rows = await state(request).feedback.for_tenant(caller.tenant, limit)
    return {"object": "list", "data": rows}
