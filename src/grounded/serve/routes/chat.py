"""POST /v1/chat/completions, GET /v1/models, POST /v1/embeddings, POST /v1/feedback."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from grounded.cache import ResponseCache
from grounded.cache.responses import DEFAULT_TENANT, CacheScope
from grounded.cache.state import StateUnavailable
from grounded.generate.answer import AnswerRequest, PreparedAnswer, UnknownModelError
from grounded.generate.prompt import PROMPT_VERSION
from grounded.generate.protocol import BackendError, Message
from grounded.models import SearchFilter
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state
from grounded.serve.schemas import ChatCompletionRequest, EmbeddingRequest, FeedbackRequest
from grounded.serve.sse import stream_answer

router = APIRouter()
MAX_EMBED_INPUTS = 256
MAX_EMBED_CHARS = 8000


def _answer_request(body: ChatCompletionRequest, default_collection: str) -> AnswerRequest:
    messages = [
        Message(m.role if m.role != "developer" else "system", m.text()) for m in body.messages
    ]
    question = messages[-1].content if messages[-1].role == "user" else ""
    history = [m for m in messages[:-1] if m.role in ("user", "assistant")]
    options = body.grounded
    where = SearchFilter(
        options.collection or default_collection, options.source_prefix, options.metadata
    )
    return AnswerRequest(
        question=question,
        history=history,
        model=body.model,
        k=options.k,
        where=where,
        retrieval=options.retrieval,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
    )


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    app = state(request)
    limits = app.runtime.settings.serve
    if len(body.messages) > limits.max_messages:
        return error_response(
            400, f"at most {limits.max_messages} messages", "too_many_messages", "messages"
        )
    answer_request = _answer_request(body, app.runtime.settings.collection)
    if not answer_request.question.strip():
        return error_response(
            400, "the last message must be a non-empty user message", "invalid_messages", "messages"
        )
    if any(len(m.text()) > limits.max_question_chars for m in body.messages):
        return error_response(
            400,
            f"a message is over {limits.max_question_chars} characters",
            "message_too_long",
            "messages",
        )
    answerer = await app.runtime.answerer()
    try:
        model, max_tokens = answerer.settle(answer_request)
    except UnknownModelError as exc:
        return error_response(404, str(exc), "model_not_found", "model")
    cache = await app.runtime.response_cache()
    scope = _cache_scope(answer_request, model, max_tokens, app.runtime.settings.retrieve.k)
    cached = await cache.lookup(scope, answer_request.question) if scope else None
    if cached is not None:
        answer = answerer.replay(answer_request, model, cached.text, cached.passages(), cached.kind)
    else:
        answer = await answerer.prepare(answer_request)
        if scope is not None:
            answer.on_complete = _saver(cache, scope)
    headers = {
        "x-grounded-answer-id": answer.answer_id,
        "x-grounded-cache": f"hit-{cached.kind}" if cached else "miss" if scope else "bypass",
    }
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            stream_answer(answer, include_usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    try:
        await _drain(answer)
    except BackendError as exc:
        return error_response(502, str(exc), "upstream_error")
    return JSONResponse(_completion(answer), headers=headers)


def _cache_scope(
    request: AnswerRequest, model: str, max_tokens: int, default_k: int
) -> CacheScope | None:
    # Only first-turn, retrieval-grounded, deterministic requests: an answer that depends on
    # a conversation or on sampling is not the answer to the next person's question.
    if request.history or not request.retrieval or request.temperature not in (None, 0):
        return None
    return CacheScope(
        tenant=DEFAULT_TENANT,
        model=model,
        k=request.k or default_k,
        where=request.where,
        prompt_version=PROMPT_VERSION,
        max_tokens=max_tokens,
    )


def _saver(cache: ResponseCache, scope: CacheScope) -> Callable[[PreparedAnswer], Awaitable[None]]:
    async def save(answer: PreparedAnswer) -> None:
        prompt_tokens = answer.usage.prompt_tokens if answer.usage else 0
        citations = [c.as_dict() for c in answer.citations]
        await cache.save(scope, answer.question, "".join(answer.text), citations, prompt_tokens)

    return save


async def _drain(answer: PreparedAnswer) -> None:
    async for _ in answer.stream():
        pass


def _completion(answer: PreparedAnswer) -> dict[str, Any]:
    usage = answer.usage
    return {
        "id": answer.answer_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "finish_reason": answer.finish_reason or "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "".join(answer.text)},
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
        "grounded": {
            "citations": [c.as_dict() for c in answer.citations],
            "degraded": answer.degraded,
            "cache": answer.cache or "miss",
            "prompt_version": answer.prompt.version,
            "standalone_query": answer.standalone_query,
        },
    }


@router.delete("/v1/cache", response_model=None)
async def flush_cache(request: Request) -> Any:
    """Drop every cached answer of this tenant (after a bulk change, say)."""
    try:
        removed = await (await state(request).runtime.response_cache()).flush(DEFAULT_TENANT)
    except StateUnavailable as exc:
        return error_response(503, str(exc), "cache_unavailable")
    return {"flushed": removed}


@router.get("/v1/models")
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
async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
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
    embedder = state(request).runtime.embedder
    vectors = await asyncio.to_thread(embedder.embed, inputs)
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "model": body.model or embedder.name,
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encode(vector: Any, encoding: str | None) -> Any:
    if encoding == "base64":
        # OpenAI's base64 form: little-endian float32 bytes.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.tolist()


@router.post("/v1/feedback", status_code=201)
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    feedback_id = await state(request).feedback.add(body.answer_id, body.rating, body.comment)
    return {"id": feedback_id, "answer_id": body.answer_id, "rating": body.rating}
