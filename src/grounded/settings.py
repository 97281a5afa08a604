"""All configuration, in one typed object. The only module that reads the environment.

Precedence: explicit arguments > environment (``GROUNDED_*``, nested with ``__``, e.g.
``GROUNDED_CHUNK__MAX_TOKENS=384``) > the config file (``GROUNDED_CONFIG`` or
``./grounded.toml``) > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from grounded.errors import ConfigError


class ChunkSettings(BaseModel):
    max_tokens: int = Field(
        256,
        ge=32,
        le=8192,
        description="Word pieces per chunk including the heading path and special tokens; "
        "must not exceed the embedder's limit.",
    )
    overlap_tokens: int = Field(
        38, ge=0, le=1024, description="Word pieces repeated from the previous chunk (~15%)."
    )

    @model_validator(mode="after")
    def _overlap_fits(self) -> ChunkSettings:
        if self.overlap_tokens * 2 >= self.max_tokens:
            raise ValueError("chunk.overlap_tokens must be less than half of chunk.max_tokens")
        return self


class DedupSettings(BaseModel):
    near_duplicate_threshold: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Estimated Jaccard similarity (MinHash over word shingles) at which a "
        "document counts as a near-duplicate of one already stored; 1.0 disables.",
    )
    shingle_words: int = Field(5, ge=1, le=20, description="Words per shingle for MinHash.")
    minhash_permutations: int = Field(128, ge=16, le=512, description="MinHash permutations.")
    chunk_similarity: float = Field(
        0.98,
        gt=0.0,
        le=1.0,
        description="Cosine similarity at which a chunk is dropped as a copy of a chunk of "
        "another document; 1.0 disables.",
    )


class EmbedSettings(BaseModel):
    backend: Literal["onnx", "torch", "openai"] = Field(
        "onnx",
        description="onnx (bundled MiniLM through ONNX Runtime), torch, or openai "
        "(any OpenAI-compatible /v1/embeddings server).",
    )
    quantize: Literal["fp32", "int8"] = Field(
        "int8",
        description="ONNX weights: int8 (dynamic, per-channel; ~1.8x faster, retrieval as good "
        "as fp32 on both labelled sets) or fp32.",
    )
    batch_size: int = Field(0, ge=0, le=1024, description="Texts per batch; 0 = backend's best.")
    threads: int = Field(0, ge=0, le=256, description="CPU threads; 0 = all cores.")
    cache_dir: Path | None = Field(
        None, description="Where exported ONNX models are kept; default DATA_DIR/models."
    )
    url: str | None = Field(
        None, description="Base URL of the openai backend, e.g. http://tei:80/v1."
    )
    model: str = Field("all-MiniLM-L6-v2", description="Model name sent to the openai backend.")
    api_key: SecretStr | None = Field(None, description="Bearer token for the openai backend.")
    dimension: int = Field(384, ge=1, le=8192, description="Vector size of the openai backend.")
    max_input_tokens: int = Field(
        256, ge=16, le=32768, description="Input limit of the openai backend's model."
    )
    timeout_s: float = Field(30.0, gt=0, description="Per-request timeout of the openai backend.")
    retries: int = Field(3, ge=0, le=10, description="Retries on 429/5xx/connection errors.")


class RetrieveSettings(BaseModel):
    k: int = Field(5, ge=1, le=100, description="Results returned by default.")
    candidates: int = Field(
        40, ge=1, le=1000, description="Results taken from each of dense and keyword search."
    )
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of dense ranks in fusion.")
    keyword_weight: float = Field(0.5, ge=0.0, description="Weight of BM25 ranks in fusion.")
    rrf_k: int = Field(
        10, ge=1, description="Reciprocal-rank-fusion constant; smaller favours top ranks."
    )
    collapse: bool = Field(
        True, description="Merge overlapping chunks of one section into the best of them."
    )
    exact_below: int = Field(
        2000, ge=0, description="Search exactly (no ANN) when a filter leaves fewer chunks."
    )
    expansion_search: int = Field(
        128, ge=8, le=4096, description="ANN search breadth (recall@10 ≥ 0.95 at 1M chunks)."
    )


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped.")
    batch_chunks: int = Field(
        256, ge=1, le=100000, description="Chunks embedded together across documents."
    )


class ModelSettings(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="Name clients ask for.")
    backend: Literal["openai", "extractive"] = Field(
        "openai", description="openai (any OpenAI-compatible server) or extractive."
    )
    url: str | None = Field(None, description="Base URL, e.g. http://vllm:8000/v1.")
    upstream_model: str | None = Field(None, description="Model name sent upstream.")
    api_key: SecretStr | None = Field(None, description="Bearer token for the server.")
    context_window: int = Field(8192, ge=512, description="Tokens the model accepts.")
    max_output_tokens: int = Field(512, ge=16, description="Output budget per answer.")
    price_input_per_1k: float = Field(0.0, ge=0, description="Price per 1k prompt tokens.")
    price_output_per_1k: float = Field(0.0, ge=0, description="Price per 1k output tokens.")
    connect_timeout_s: float = Field(3.0, gt=0, description="Connect timeout.")
    read_timeout_s: float = Field(60.0, gt=0, description="Longest gap between chunks.")
    workers: list[str] = Field(
        default_factory=list,
        description="More base URLs of replicas of the same model (load-balanced with url).",
    )
    max_in_flight: int = Field(
        32, ge=1, le=10_000, description="Requests one worker runs at once (its batch size)."
    )
    retries: int = Field(
        2, ge=0, le=10, description="Further workers tried when one fails before its first token."
    )
    retry_backoff_s: float = Field(0.05, ge=0, le=10, description="First retry delay (doubles).")
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="Consecutive failures that open a worker's breaker."
    )
    breaker_error_rate: float = Field(
        0.5, gt=0, le=1, description="Failure share over the last 20 requests that opens it."
    )
    breaker_cooldown_s: float = Field(
        10.0, gt=0, le=3600, description="How long an open breaker waits before a probe."
    )
    health_interval_s: float = Field(
        5.0, ge=0, le=3600, description="Active health checks of every worker; 0 = off."
    )
    session_affinity: bool = Field(
        True, description="Keep one conversation on one worker (its prefix cache) when it can."
    )

    @model_validator(mode="after")
    def _url_for_openai(self) -> ModelSettings:
        if self.backend == "openai" and not self.url:
            raise ValueError(f"model {self.name!r}: backend openai needs a url")
        return self


EXTRACTIVE_MODEL = "grounded-extractive"


class GenerateSettings(BaseModel):
    models: list[ModelSettings] = Field(
        default_factory=list,
        description="Models served besides the built-in extractive one (JSON list in the "
        "environment, [[generate.models]] tables in the config file).",
    )
    default_model: str = Field(
        EXTRACTIVE_MODEL, description="Model used when a request names none."
    )
    fallback_extractive: bool = Field(
        True, description="Answer with an extract, marked degraded, when a model server fails."
    )
    extractive_min_score: float = Field(
        0.3, ge=-1, le=1, description="Least similarity of a sentence to the question to quote it."
    )


class TierSettings(BaseModel):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    priority: int = Field(
        0, ge=0, le=100, description="Admission order when workers are busy; higher first."
    )
    requests_per_minute: int = Field(60, ge=1, description="Token-bucket rate per key.")
    burst: int = Field(0, ge=0, description="Bucket size; 0 = one minute's worth.")
    tokens_per_day: int = Field(
        200_000, ge=0, description="Prompt + completion tokens per key per UTC day; 0 = none."
    )
    tokens_per_user_per_day: int = Field(
        0,
        ge=0,
        description="Tokens per end user (the request's `user` field) per key per UTC day; "
        "0 = none.",
    )
    max_output_tokens: int = Field(1024, ge=1, description="Largest max_tokens a request may ask.")
    max_input_chars: int = Field(
        16_000, ge=1, description="Largest total size of a request's messages."
    )


def _default_tiers() -> list[TierSettings]:
    return [
        TierSettings(
            name="free",
            priority=0,
            requests_per_minute=20,
            tokens_per_day=50_000,
            max_output_tokens=512,
            max_input_chars=4000,
        ),
        TierSettings(name="standard", priority=1),
        TierSettings(
            name="premium",
            priority=2,
            requests_per_minute=600,
            tokens_per_day=5_000_000,
            max_output_tokens=4096,
            max_input_chars=64_000,
        ),
    ]


class RoutingSettings(BaseModel):
    name: str = Field(
        "auto", min_length=1, max_length=128, description="Model name that asks for routing."
    )
    small_model: str | None = Field(None, description="Model most questions go to.")
    large_model: str | None = Field(None, description="Model hard questions go to.")
    large_tiers: list[str] = Field(
        default_factory=list, description="Tiers always routed to the large model."
    )
    long_question_words: int = Field(
        60, ge=1, description="Questions longer than this go to the large model."
    )
    min_retrieval_score: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="Best passage's cosine similarity below which the large model answers.",
    )
    escalate_below_support: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the small model's sentences a passage supports below which the "
        "large model answers again (the small answer is held until checked); 0 = off.",
    )
    support_similarity: float = Field(
        0.5, gt=0, le=1, description="Cosine at which a passage supports an answer sentence."
    )

    @property
    def enabled(self) -> bool:
        return bool(self.small_model and self.large_model)


class ShadowSettings(BaseModel):
    model: str | None = Field(None, description="Candidate model mirrored in the background.")
    share: float = Field(0.0, ge=0, le=1, description="Share of answered requests mirrored.")


class GatewaySettings(BaseModel):
    auth: bool = Field(
        True, description="Require an API key (`grounded keys create`); `serve --no-auth` = off."
    )
    admin_key: SecretStr | None = Field(
        None, description="Bearer key of the /v1/admin API; unset = admin API off."
    )
    tiers: list[TierSettings] = Field(
        default_factory=_default_tiers, description="Tiers keys belong to (name, limits)."
    )
    default_tier: str = Field("standard", description="Tier of keys created without one.")
    open_tier: str = Field("premium", description="Tier of requests when auth is off.")
    queue_size: int = Field(
        256, ge=0, le=100_000, description="Requests that may wait per model when it is full."
    )
    queue_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Longest wait for a worker before 503."
    )
    key_cache_s: float = Field(
        5.0, ge=0, le=300, description="How long a looked-up key is trusted (revocation delay)."
    )
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)

    @model_validator(mode="after")
    def _tiers_known(self) -> GatewaySettings:
        names = {t.name for t in self.tiers}
        for tier in (self.default_tier, self.open_tier, *self.routing.large_tiers):
            if tier not in names:
                raise ValueError(f"gateway: unknown tier {tier!r} (tiers: {sorted(names)})")
        return self

    def tier(self, name: str) -> TierSettings:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)


class ServeSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `grounded serve` listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port `grounded serve` listens on.")
    max_request_kb: int = Field(256, ge=1, description="Largest JSON request body.")
    max_upload_mb: float = Field(20.0, gt=0, description="Largest uploaded document.")
    max_messages: int = Field(50, ge=1, description="Most messages in one chat request.")
    max_question_chars: int = Field(4000, ge=1, description="Longest user message.")
    request_log: bool = Field(
        True, description="Append every answer to DATA_DIR/logs/requests.jsonl."
    )


def _config_file() -> Path | None:
    explicit = os.environ.get("GROUNDED_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"GROUNDED_CONFIG points to {path}, which is not a file")
        return path
    local = Path("grounded.toml")
    return local if local.is_file() else None


class TenantCacheSettings(BaseModel):
    model_config = {"extra": "forbid"}

    enabled: bool | None = None
    semantic: bool | None = None
    similarity: float | None = Field(None, gt=0.0, le=1.0)
    ttl_seconds: float | None = Field(None, gt=0)


class CacheSettings(BaseModel):
    enabled: bool = Field(True, description="Serve repeated questions from the response cache.")
    semantic: bool = Field(
        True, description="Also serve differently worded questions with the same meaning."
    )
    similarity: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Cosine similarity of question embeddings for a semantic hit (the top "
        "passages must agree too); chosen on the paraphrase set, see BENCHMARKS.md.",
    )
    ttl_seconds: float = Field(86_400, gt=0, description="How long an answer stays cached.")
    max_entries: int = Field(
        10_000, ge=1, description="In-process cache size (least recently used go first)."
    )
    tenants: dict[str, TenantCacheSettings] = Field(
        default_factory=dict,
        description="Per-tenant overrides of enabled, semantic, similarity and ttl_seconds, "
        'e.g. {"acme": {"semantic": false}}.',
    )

    def for_tenant(self, tenant: str) -> CacheSettings:
        overrides = self.tenants.get(tenant)
        if overrides is None:
            return self
        return self.model_copy(update=overrides.model_dump(exclude_none=True))


class PostgresSettings(BaseModel):
    schema_name: str = Field(
        "grounded",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding Grounded's tables (several deployments can "
        "share one database under different schemas).",
    )
    pool_min: int = Field(1, ge=0, le=100, description="Connections kept open per process.")
    pool_max: int = Field(10, ge=1, le=500, description="Most connections per process.")
    connect_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to wait for the server before failing clearly."
    )
    statement_timeout_ms: int = Field(
        30_000, ge=0, le=3_600_000, description="Per-statement limit; 0 = none."
    )
    ef_search: int = Field(
        400,
        ge=1,
        le=1000,
        description="HNSW candidate list at query time (pgvector); 400 gave recall@10 0.997 "
        "at 100k chunks, dense p50 2.9 ms.",
    )
    hnsw_m: int = Field(16, ge=4, le=100, description="HNSW links per node, fixed at creation.")
    hnsw_ef_construction: int = Field(
        128, ge=8, le=1000, description="HNSW build-time candidate list, fixed at creation."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GROUNDED_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(Path(".grounded"), description="Where the index and logs live.")
    store_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host/db selects the PostgreSQL + pgvector "
        "store; unset = the embedded store in DATA_DIR.",
    )
    state_url: SecretStr | None = Field(
        None,
        description="redis://host:6379/0 shares the response cache, rate limits and quotas "
        "between replicas; unset = in-process.",
    )
    collection: str = Field(
        "default",
        min_length=1,
        max_length=97,
        pattern=r"^([a-z0-9][a-z0-9_-]{0,31}:)?[A-Za-z0-9_.-]{1,64}$",
        description="Collection used when a command names none (`tenant:name` for a "
        "tenant's own; commands also take --tenant).",
    )
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def model_cache_dir(self) -> Path:
        return self.embed.cache_dir or self.data_dir / "models"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
