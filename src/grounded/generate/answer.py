"""One answer, start to finish: rewrite → retrieve → prompt → generate → log.

`Answerer.prepare` does everything before the first token and returns a `PreparedAnswer`
whose `stream()` yields the text. If the model server fails before its first token and
the fallback is on, the extractive backend answers instead, marked degraded. Whatever
happens, the request log gets one line when the stream ends or is abandoned.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from grounded.gateway.admission import AdmissionError
from grounded.gateway.routing import CascadeBackend, RouteDecision, Router, SupportCheck
from grounded.gateway.tenancy import DEFAULT_TENANT
from grounded.generate.extractive import ExtractiveBackend
from grounded.generate.prompt import Counter, Prompt, build_prompt
from grounded.generate.protocol import (
    BackendError,
    ChatBackend,
    Delta,
    GenerationRequest,
    Message,
    Usage,
)
from grounded.generate.replay import ReplayBackend
from grounded.generate.rewrite import heuristic_rewrite, rewrite_messages
from grounded.ingest.embedders.protocol import Embedder
from grounded.models import Hit, SearchFilter
from grounded.observe.requestlog import RequestLog
from grounded.retrieve.hybrid import Retriever
from grounded.settings import EXTRACTIVE_MODEL, ModelSettings


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    question: str
    history: Sequence[Message] = ()
    model: str | None = None
    k: int | None = None
    where: SearchFilter = field(default_factory=SearchFilter)
    retrieval: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    tenant: str = DEFAULT_TENANT
    tier: str = ""
    priority: int = 0
    affinity: str | None = None  # keeps a conversation on one worker


@dataclass(frozen=True, slots=True)
class Citation:
    number: int
    hit: Hit

    def as_dict(self) -> dict[str, Any]:
        chunk = self.hit.chunk
        return {
            "index": self.number,
            "source": self.hit.source,
            "title": self.hit.title,
            "section": chunk.section_path,
            "snippet": " ".join(chunk.text.split())[:300],
            "text": chunk.text,
            "score": round(self.hit.score, 6),
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
        }


class UnknownModelError(Exception):
    def __init__(self, model: str) -> None:
        super().__init__(f"The model {model!r} does not exist")
        self.model = model


@dataclass
class PreparedAnswer:
    answer_id: str
    model: str
    question: str
    standalone_query: str
    citations: list[Citation]
    prompt: Prompt
    backend: ChatBackend
    fallback: ChatBackend | None
    log: RequestLog
    max_tokens: int
    temperature: float | None
    started: float
    retrieval_ms: float
    prices: tuple[float, float] = (0.0, 0.0)  # per 1k prompt and completion tokens
    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    degraded: bool = False
    error: str | None = None
    first_token_at: float | None = None
    cache: str | None = None  # "exact" / "semantic" when replayed from the response cache
    on_complete: Callable[[PreparedAnswer], Awaitable[None]] | None = None
    tenant: str = DEFAULT_TENANT
    affinity: str | None = None
    route: RouteDecision | None = None
    # Run once when the stream ends however it ends (completed, failed, abandoned).
    finishers: list[Callable[[PreparedAnswer], None]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Finished normally by the model it was asked of: the only kind worth caching."""
        return self.finish_reason == "stop" and not self.degraded and self.error is None

    async def stream(self) -> AsyncGenerator[Delta, None]:
        request = GenerationRequest(
            self.prompt.messages,
            self.max_tokens,
            self.question,
            [c.hit for c in self.citations],
            self.temperature,
            self.affinity,
        )
        try:
            async for delta in self._generate(request):
                if delta.text:
                    self.first_token_at = self.first_token_at or time.perf_counter()
                    self.text.append(delta.text)
                if delta.usage:
                    self.usage = delta.usage
                if delta.finish_reason:
                    self.finish_reason = delta.finish_reason
                yield delta
        except BackendError as exc:
            self.error = str(exc)
            raise
        finally:
            try:
                self._write_log()
            finally:
                self.finish()
        if self.on_complete is not None and self.complete and self.cache is None:
            await self.on_complete(self)

    def tokens_used(self) -> int:
        """Prompt + completion tokens: as the model reported them, or, when it never did
        (the client left before the usage chunk, a server that omits it), estimated."""
        if self.usage is not None:
            return self.usage.total_tokens
        if self.degraded or (self.first_token_at is None and not self.text):
            return 0
        return self.prompt.prompt_tokens + int(len("".join(self.text).split()) * 1.3) + 1

    def degrade(self, reason: str) -> bool:
        """Answer with the fallback (an extract, marked degraded) before anything was sent."""
        if self.fallback is None:
            return False
        self.backend, self.fallback = self.fallback, None
        self.degraded, self.error = True, reason
        return True

    def finish(self) -> None:
        """Run the finishers (idempotent: also called when a stream was never started)."""
        finishers, self.finishers = self.finishers, []
        for finisher in finishers:
            finisher(self)

    async def _generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        # aclosing: when the client stops reading, the upstream request ends now, not
        # whenever the garbage collector finalises the generator.
        try:
            async with aclosing(self.backend.stream(request)) as deltas:
                async for delta in deltas:
                    yield delta
        except BackendError as exc:
            if not (exc.before_output and self.fallback is not None):
                raise
            self.degraded, self.error = True, str(exc)
            async with aclosing(self.fallback.stream(request)) as deltas:
                async for delta in deltas:
                    yield delta

    def cost(self) -> float | None:
        """Price of this answer from the model's configured prices (an extract is free)."""
        if self.usage is None or self.degraded:
            return None if self.usage is None else 0.0
        price_in, price_out = self.prices
        return round(
            self.usage.prompt_tokens / 1000 * price_in
            + self.usage.completion_tokens / 1000 * price_out,
            8,
        )

    def _write_log(self) -> None:
        now = time.perf_counter()
        self.log.write(
            {
                "answer_id": self.answer_id,
                "ts": time.time(),
                "tenant": self.tenant,
                "model": self.route.model if self.route else self.model,
                "route": None if self.route is None else self.route.as_dict(),
                "question": self.question,
                "standalone_query": self.standalone_query,
                "chunk_ids": [c.hit.chunk.chunk_id for c in self.citations],
                "prompt_version": self.prompt.version,
                "prompt": [{"role": m.role, "content": m.content} for m in self.prompt.messages],
                "answer": "".join(self.text),
                "finish_reason": self.finish_reason,
                "usage": None
                if self.usage is None
                else {
                    "prompt_tokens": self.usage.prompt_tokens,
                    "completion_tokens": self.usage.completion_tokens,
                },
                "cost": self.cost(),
                "degraded": self.degraded,
                "cache": self.cache or "miss",
                "error": self.error,
                "latency_ms": {
                    "retrieval": round(self.retrieval_ms, 2),
                    "first_token": None
                    if self.first_token_at is None
                    else round((self.first_token_at - self.started) * 1000, 2),
                    "total": round((now - self.started) * 1000, 2),
                },
            }
        )


class Answerer:
    def __init__(
        self,
        retriever: Retriever,
        embedder: Embedder,
        backends: dict[str, ChatBackend],
        models: dict[str, ModelSettings],
        default_model: str,
        fallback: bool,
        count: Counter,
        log: RequestLog,
        extractive_min_score: float = 0.3,
        router: Router | None = None,
    ) -> None:
        self._retriever = retriever
        self._embedder = embedder
        self._extractive = ExtractiveBackend(embedder, EXTRACTIVE_MODEL, extractive_min_score)
        self._backends = {EXTRACTIVE_MODEL: self._extractive, **backends}
        self._models = models
        self._default_model = default_model
        self._fallback = fallback
        self._count: Callable[[str], int] = count
        self._log = log
        self._router = router
        routing = router.settings if router else None
        self._support = SupportCheck(embedder, routing.support_similarity) if routing else None
        # Set by the gateway: waits for a slot on a model's workers, returns its release.
        self.admit: Callable[[str, int], Awaitable[Callable[[], None]]] | None = None

    @property
    def model_names(self) -> list[str]:
        """All served models, the default first (clients that pick the first get it)."""
        names = [*self._backends, *([self._router.name] if self._router else [])]
        return sorted(names, key=lambda name: name != self._default_model)

    async def backend_ready(self, model: str) -> bool:
        backend = self._backends.get(model)
        return backend is not None and await backend.ready()

    def context_window(self, model: str) -> tuple[int, int]:
        settings = self._models.get(model)
        return (settings.context_window, settings.max_output_tokens) if settings else (4096, 512)

    def settle(self, request: AnswerRequest) -> tuple[str, int]:
        """The model that will answer and its output budget; UnknownModelError if none."""
        model = request.model or self._default_model
        if self._router is not None and model == self._router.name:
            small, large = self._router.settings.small_model, self._router.settings.large_model
            max_output = min(self.context_window(str(m))[1] for m in (small, large))
            return model, min(request.max_tokens or max_output, max_output)
        if model not in self._backends:
            raise UnknownModelError(model)
        _, max_output = self.context_window(model)
        return model, min(request.max_tokens or max_output, max_output)

    def replay(
        self, request: AnswerRequest, model: str, text: str, passages: list[Hit], kind: str
    ) -> PreparedAnswer:
        """A cached answer, streamed through the same path as a generated one."""
        started = time.perf_counter()
        prompt = Prompt([], passages, 0, 0)
        return PreparedAnswer(
            answer_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            model=model,
            question=request.question,
            standalone_query=request.question,
            citations=[Citation(i, h) for i, h in enumerate(passages, start=1)],
            prompt=prompt,
            backend=ReplayBackend(text, model),
            fallback=None,
            log=self._log,
            max_tokens=0,
            temperature=request.temperature,
            started=started,
            retrieval_ms=0.0,
            cache=kind,
            tenant=request.tenant,
        )

    async def prepare(self, request: AnswerRequest) -> PreparedAnswer:
        started = time.perf_counter()
        model, max_tokens = self.settle(request)
        router = self._router if self._router and model == self._router.name else None
        first = str(router.settings.small_model) if router else model
        query = await self._standalone(request, self._backends[first])
        hits: list[Hit] = []
        best: float | None = None
        if request.retrieval:
            found = await self._retriever.search(query, k=request.k, where=request.where)
            hits, best = found.hits, (found.dense[0].score if found.dense else None)
        retrieval_ms = (time.perf_counter() - started) * 1000
        route = router.choose(request.tier, request.question, best) if router else None
        if route is not None:
            model = route.model
        backend = self._cascade(route, request) if route else self._backends[model]
        window, _ = self.context_window(model)
        prompt = build_prompt(
            request.question, hits, request.history, window, max_tokens, self._count
        )
        fallback = self._extractive if self._fallback and backend is not self._extractive else None
        return PreparedAnswer(
            answer_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            model=model,
            question=request.question,
            standalone_query=query,
            citations=[Citation(i, h) for i, h in enumerate(prompt.passages, start=1)],
            prompt=prompt,
            backend=backend,
            fallback=fallback,
            log=self._log,
            max_tokens=max_tokens,
            temperature=request.temperature,
            started=started,
            retrieval_ms=retrieval_ms,
            prices=self._prices(model),
            tenant=request.tenant,
            affinity=request.affinity,
            route=route,
        )

    def _cascade(self, route: RouteDecision, request: AnswerRequest) -> ChatBackend:
        assert self._router is not None and self._support is not None
        settings = self._router.settings
        small, large = str(settings.small_model), str(settings.large_model)
        if route.model != small or not settings.escalate_below_support:
            return self._backends[route.model]
        admit = self.admit

        async def admit_large() -> Callable[[], None]:
            return await admit(large, request.priority) if admit else (lambda: None)

        return CascadeBackend(
            self._backends[small],
            self._backends[large],
            route,
            self._support,
            settings.escalate_below_support,
            large,
            admit_large,
        )

    def _prices(self, model: str) -> tuple[float, float]:
        settings = self._models.get(model)
        return (settings.price_input_per_1k, settings.price_output_per_1k) if settings else (0, 0)

    async def _standalone(self, request: AnswerRequest, backend: ChatBackend) -> str:
        if not request.history:
            return request.question
        if backend is not self._extractive:
            try:
                return await asyncio.wait_for(self._model_rewrite(request, backend), timeout=10)
            except (BackendError, TimeoutError, AdmissionError):
                pass  # a failed rewrite must not fail the answer: use the rule below
        return await asyncio.to_thread(
            heuristic_rewrite, request.question, request.history, self._embedder
        )

    async def _model_rewrite(self, request: AnswerRequest, backend: ChatBackend) -> str:
        pieces = []
        generation = GenerationRequest(rewrite_messages(request.question, request.history), 96, "")
        # The rewrite is a model call too: it waits for a worker slot like any other.
        release = await self.admit(backend.name, request.priority) if self.admit else None
        try:
            async for delta in backend.stream(generation):
                pieces.append(delta.text)
        finally:
            if release is not None:
                release()
        rewritten = " ".join("".join(pieces).split())
        return rewritten or request.question

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
