"""GET /v1/models and POST /v1/embeddings (the local embedder, OpenAI's shape)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from grounded.serve.auth import Caller, principal
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state
from grounded.serve.schemas import EmbeddingRequest

router = APIRouter()
MAX_EMBED_INPUTS = 256
MAX_EMBED_CHARS = 8000


@router.get("/v1/models", dependencies=[Depends(principal)])
async def models(request: Request) -> dict[str, Any]:
    answerer = await state(request).runtime.answerer()
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "grounded"}
            for name in answerer.model_names
        ],
    }


@router.post("/v1/embeddings", response_model=None)
async def embeddings(body: EmbeddingRequest, request: Request, caller: Caller) -> Any:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs or len(inputs) > MAX_EMBED_INPUTS:
        return error_response(
            400, f"input must hold 1 to {MAX_EMBED_INPUTS} strings", "invalid_input", "input"
        )
    if any(len(text) > MAX_EMBED_CHARS for text in inputs):
        return error_response(
            400,
            f"each input must be at most {MAX_EMBED_CHARS} characters",
            "input_too_long",
            "input",
        )
    gateway = state(request).gateway
    # The embedder is CPU every tenant shares: requests count against the key's rate limit.
    headers = await gateway.check(caller, 0, None)
    embedder = state(request).runtime.embedder
    vectors = await asyncio.to_thread(embedder.embed, inputs)
    tokens = sum(len(text.split()) for text in inputs)
    gateway.charge(caller, tokens)
    body_out = {
        "object": "list",
        "model": body.model or embedder.name,
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(orjson.dumps(body_out), media_type="application/json", headers=headers)


def _encode(vector: Any, encoding: str | None) -> Any:
    if encoding == "base64":
        # OpenAI's base64 form: little-endian float32 bytes.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.tolist()
