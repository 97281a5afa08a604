"""POST /v1/chat/completions (through the gateway, the cache and the answerer) and
DELETE /v1/cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from grounded.cache import ResponseCache
from grounded.cache.responses import CacheScope
from grounded.cache.state import StateUnavailable
from grounded.gateway.admission import AdmissionError, NoCapacity
from grounded.gateway.shadow import Primary
from grounded.gateway.tenancy import Principal, plain_collection
from grounded.generate.answer import AnswerRequest, PreparedAnswer, UnknownModelError
from grounded.generate.prompt import PROMPT_VERSION
from grounded.generate.protocol import BackendError, GenerationRequest, Message
from grounded.models import SearchFilter
from grounded.serve.auth import Caller, principal
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state
from grounded.serve.schemas import ChatCompletionRequest
from grounded.serve.sse import stream_answer

if TYPE_CHECKING:
    from grounded.serve.app import AppState

router = APIRouter()


def _answer_request(
    body: ChatCompletionRequest, default_collection: str, caller: Principal
) -> AnswerRequest:
    messages = [
        Message(m.role if m.role != "developer" else "system", m.text()) for m in body.messages
    ]
    question = messages[-1].content if messages[-1].role == "user" else ""
    history = [m for m in messages[:-1] if m.role in ("user", "assistant")]
    options = body.grounded
    where = SearchFilter(
        caller.collection(options.collection or plain_collection(default_collection)),
        options.source_prefix,
        options.metadata,
    )
    first_user = next((m.content for m in messages if m.role == "user"), question)
    return AnswerRequest(
        question=question,
        history=history,
        model=body.model,
        k=options.k,
        where=where,
        retrieval=options.retrieval,
        max_tokens=body.max_completion_tokens or body.max_tokens or caller.tier.max_output_tokens,
        temperature=body.temperature,
        tenant=caller.tenant,
        tier=caller.tier.name,
        priority=caller.tier.priority,
        affinity=f"{caller.tenant}:{body.user or ''}:{first_user}",
    )


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request, caller: Caller) -> Any:
    """Documents the route in the OpenAPI schema; requests are served by `fast_chat`."""
    return await _chat(body, request, caller)


async def fast_chat(request: Request) -> Any:
    """The same route as a plain Starlette endpoint: FastAPI's per-request dependency and
    body machinery costs more than the gateway itself on this, the hottest path."""
    caller = await principal(request)  # 401 before anything is read or parsed
    try:
        body = ChatCompletionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return await _chat(body, request, caller)


async def _chat(body: ChatCompletionRequest, request: Request, caller: Principal) -> Any:
    app = state(request)
    limits = app.runtime.settings.serve
    if len(body.messages) > limits.max_messages:
        return error_response(
            400, f"at most {limits.max_messages} messages", "too_many_messages", "messages"
        )
    answer_request = _answer_request(body, app.runtime.settings.collection, caller)
    if not answer_request.question.strip():
        return error_response(
            400, "the last message must be a non-empty user message", "invalid_messages", "messages"
        )
    lengths = [len(m.text()) for m in body.messages]
    if max(lengths) > limits.max_question_chars:
        return error_response(
            400,
            f"a message is over {limits.max_question_chars} characters",
            "message_too_long",
            "messages",
        )
    headers = await app.gateway.check(
        caller, sum(lengths), body.max_completion_tokens or body.max_tokens, body.user
    )
    answerer = await app.runtime.answerer()
    try:
        model, max_tokens = answerer.settle(answer_request)
    except UnknownModelError as exc:
        return error_response(404, str(exc), "model_not_found", "model", headers)
    cache = await app.runtime.response_cache()
    scope = _cache_scope(answer_request, model, max_tokens, app.runtime.settings.retrieve.k)
    cached = await cache.lookup(scope, answer_request.question) if scope else None
    if cached is not None:
        answer = answerer.replay(answer_request, model, cached.text, cached.passages(), cached.kind)
    else:
        answer = await answerer.prepare(answer_request)
        admitted = await _unless_client_leaves(
            request, _admit(app, answer, answer_request.priority, headers)
        )
        if not admitted:
            answer.finish()
            return _client_gone()
        if scope is not None:
            answer.on_complete = _saver(cache, scope)
    answer.finishers.append(_settle_account(app, caller, body.user))
    headers |= {
        "x-grounded-answer-id": answer.answer_id,
        "x-grounded-cache": f"hit-{cached.kind}" if cached else "miss" if scope else "bypass",
    }
    if answer.route is not None:
        headers["x-grounded-route"] = answer.route.model
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _AnswerStream(
            answer,
            stream_answer(answer, include_usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    try:
        if not await _unless_client_leaves(request, _drain(answer)):
            return _client_gone()  # the model call was cancelled: no GPU time for nobody
    except BackendError as exc:
        return error_response(502, exc.public_message, "upstream_error", None, headers)
    finally:
        answer.finish()
    if answer.route is not None:
        headers["x-grounded-route"] = answer.route.model  # after any escalation
    return Response(
        orjson.dumps(_completion(answer)), media_type="application/json", headers=headers
    )


async def _unless_client_leaves(request: Request, work: Awaitable[Any]) -> bool:
    """Run `work` (waiting for a worker, generating) unless the client goes away first;
    then cancel it, so a request nobody waits for frees its place in the queue and its
    model call. True if the work finished. A stream needs none of this: the response
    itself notices the disconnect and closes the model call."""
    task = asyncio.ensure_future(work)
    watcher: asyncio.Future[None] | None = None
    try:
        # Most work is done in milliseconds (cache hits, free workers): watch only what
        # lasts. Watching every request (a pending receive per request) cost hit latency:
        # open-loop p99 went from 3 to 38 ms in bench/cache.py.
        done, _ = await asyncio.wait({task}, timeout=WATCH_AFTER_S)
        if task not in done:
            watcher = asyncio.ensure_future(_disconnected(request))
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    if watcher is not None and watcher in done:
        # Gone, even if the work finished in the same instant: the caller finishes the
        # answer, which hands back a slot it may just have been given.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()  # re-raise what the work raised
    return True


WATCH_AFTER_S = 0.05


def _client_gone() -> Response:
    # Nobody reads it: the client closed the connection (nginx logs such requests as 499).
    return Response(status_code=499)


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _AnswerStream(StreamingResponse):
    """Streams an answer and finishes it (frees its worker slot, charges its usage) however
    the response ends: completed, failed, or the client gone before the first byte."""

    def __init__(self, answer: PreparedAnswer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._answer.finish()


async def _admit(
    app: AppState, answer: PreparedAnswer, priority: int, headers: dict[str, str]
) -> None:
    """Wait for a worker slot. With no worker up, answer with an extract (if allowed)."""
    try:
        release = await app.gateway.admit(answer.model, priority)
    except AdmissionError as exc:
        if isinstance(exc, NoCapacity) and answer.degrade(str(exc)):
            return
        answer.finish()
        refusal = app.gateway.refusal(exc)
        refusal.headers = headers | refusal.headers  # keep the x-ratelimit-* headers
        raise refusal from exc
    answer.finishers.append(lambda _: release())


def _settle_account(
    app: AppState, caller: Principal, user: str | None
) -> Callable[[PreparedAnswer], None]:
    """When a stream ends: charge real usage to the quota, mirror to the shadow model."""

    def settle(answer: PreparedAnswer) -> None:
        # A cached answer costs no model tokens, so it counts as zero.
        if answer.cache is None:
            app.gateway.charge(caller, answer.tokens_used(), user)
        if app.shadow is not None and answer.complete and answer.cache is None:
            app.shadow.mirror(_primary(answer))

    return settle


def _primary(answer: PreparedAnswer) -> Primary:
    now = time.perf_counter()
    first = answer.first_token_at
    return Primary(
        answer_id=answer.answer_id,
        tenant=answer.tenant,
        model=answer.route.model if answer.route else answer.model,
        request=GenerationRequest(
            answer.prompt.messages,
            answer.max_tokens,
            answer.question,
            [c.hit for c in answer.citations],
            answer.temperature,
        ),
        text="".join(answer.text),
        first_token_ms=None if first is None else round((first - answer.started) * 1000, 2),
        total_ms=(now - answer.started) * 1000,
    )


def _cache_scope(
    request: AnswerRequest, model: str, max_tokens: int, default_k: int
) -> CacheScope | None:
    # Only first-turn, retrieval-grounded, deterministic requests: an answer that depends on
    # a conversation or on sampling is not the answer to the next person's question.
    if request.history or not request.retrieval or request.temperature not in (None, 0):
        return None
    return CacheScope(
        tenant=request.tenant,
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
            "route": None if answer.route is None else answer.route.as_dict(),
        },
    }


@router.delete("/v1/cache", response_model=None)
async def flush_cache(request: Request, caller: Caller) -> Any:
    """Drop every cached answer of this tenant (after a bulk change, say)."""
    try:
        removed = await (await state(request).runtime.response_cache()).flush(caller.tenant)
    except StateUnavailable as exc:
        return error_response(503, str(exc), "cache_unavailable")
    return {"flushed": removed}
