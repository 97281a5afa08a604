"""Wire the stages from settings. The CLI and the server build one Runtime each."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from grounded.cache import ResponseCache
from grounded.cache.state import CacheState, MemoryState, RedisState
from grounded.errors import ConfigError
from grounded.gateway.gateway import Gateway
from grounded.gateway.keys import CachedKeys, build_key_store
from grounded.gateway.limits import Limiter
from grounded.gateway.limits_state import LimitState, MemoryLimits, RedisLimits
from grounded.gateway.routing import Router
from grounded.gateway.shadow import SHADOW_PRIORITY, Shadow
from grounded.gateway.workers import WorkerPool
from grounded.generate.answer import Answerer
from grounded.generate.factory import build_backends
from grounded.generate.protocol import ChatBackend
from grounded.ingest.embedders.factory import build_embedder
from grounded.ingest.embedders.minilm import tokenizer_file
from grounded.ingest.embedders.protocol import Embedder
from grounded.ingest.pipeline import Ingestor
from grounded.ingest.split import Splitter, load_tokenizer
from grounded.observe.requestlog import RequestLog
from grounded.retrieve.hybrid import Retriever
from grounded.retrieve.query_embedding import QueryEmbedder
from grounded.settings import Settings
from grounded.store.factory import build_store
from grounded.store.protocol import Store


@dataclass
class Runtime:
    settings: Settings
    _answerer: Answerer | None = field(default=None, init=False)
    _cache: ResponseCache | None = field(default=None, init=False)
    _gateway: Gateway | None = field(default=None, init=False)
    _shadow: Shadow | None = field(default=None, init=False)

    @cached_property
    def store(self) -> Store:
        return build_store(self.settings)

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.settings.embed, self.settings.model_cache_dir)

    @cached_property
    def splitter(self) -> Splitter:
        # Budgets are counted with the bundled model's tokenizer; for a remote embedder it is
        # a close stand-in, and chunk.max_tokens should leave it some margin.
        limit = min(self.settings.chunk.max_tokens, self.embedder.max_tokens)
        return Splitter(load_tokenizer(tokenizer_file()), limit, self.settings.chunk.overlap_tokens)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder, self.splitter, self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, QueryEmbedder(self.embedder), self.settings.retrieve)

    @cached_property
    def backends(self) -> dict[str, ChatBackend]:
        return build_backends(self.settings.generate.models)

    async def answerer(self) -> Answerer:
        if self._answerer is None:
            retriever = await self.ready_for_search()
            tokenizer = load_tokenizer(tokenizer_file())

            @lru_cache(maxsize=8192)  # prompts repeat templates and passages
            def count(text: str) -> int:
                # The served model's tokenizer is unknown here; WordPiece counts plus 10% stay
                # on the safe side of the BPE tokenizers of common open models.
                return int(len(tokenizer.encode(text, add_special_tokens=False).ids) * 1.1) + 1

            generate = self.settings.generate
            routing = self.settings.gateway.routing
            log_path = self.settings.data_dir / "logs" / "requests.jsonl"
            self._answerer = Answerer(
                retriever,
                self.embedder,
                self.backends,
                {m.name: m for m in generate.models},
                generate.default_model,
                generate.fallback_extractive,
                count,
                RequestLog(log_path if self.settings.serve.request_log else None),
                generate.extractive_min_score,
                Router(routing) if routing.enabled else None,
            )
        return self._answerer

    async def response_cache(self) -> ResponseCache:
        if self._cache is None:
            await self.ready_for_search()
            state: CacheState
            if self.settings.state_url is not None:
                state = RedisState(self.settings.state_url.get_secret_value())
            else:
                state = MemoryState(self.settings.cache.max_entries)
            self._cache = ResponseCache(
                state,
                self.store,
                self.retriever.query_embedder,
                self.embedder.dimension,
                self.settings.cache,
            )
        return self._cache

    def gateway(self) -> Gateway:
        if self._gateway is None:
            settings = self.settings.gateway
            limits: LimitState = (
                RedisLimits(self.settings.state_url.get_secret_value())
                if self.settings.state_url is not None
                else MemoryLimits()
            )
            keys = CachedKeys(build_key_store(self.settings), settings.key_cache_s)
            pools = {n: b for n, b in self.backends.items() if isinstance(b, WorkerPool)}
            self._gateway = Gateway(settings, keys, Limiter(limits), pools)
        return self._gateway

    def shadow(self) -> Shadow | None:
        shadow = self.settings.gateway.shadow
        if self._shadow is None and shadow.model and shadow.share > 0:
            backend = self.backends.get(shadow.model)
            if backend is None:
                raise ConfigError(f"gateway.shadow.model {shadow.model!r} is not a served model")
            gateway = self.gateway()
            self._shadow = Shadow(
                shadow.model,
                backend,
                shadow.share,
                self.embedder,
                self.settings.data_dir / "logs" / "shadow.jsonl",
                lambda model: gateway.try_admit(model, SHADOW_PRIORITY),
            )
        return self._shadow

    async def ready_for_search(self) -> Retriever:
        await self.store.bind_embedder(self.embedder.name, self.embedder.dimension)
        return self.retriever

    async def close(self) -> None:
        if self._shadow is not None:
            await self._shadow.close()  # before the backends its mirrors use
        if self._answerer is not None:
            await self._answerer.close()
        elif "backends" in self.__dict__:
            for backend in self.backends.values():
                await backend.close()
        if self._cache is not None:
            await self._cache.close()
        if self._gateway is not None:
            await self._gateway.close()
        if "store" in self.__dict__:
            await self.store.close()
