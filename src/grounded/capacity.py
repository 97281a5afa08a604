"""Capacity sheet: what a workload needs in chunks, vector memory, CPU, GPUs and replicas.

Every default in :class:`Assumptions` is a measured figure from BENCHMARKS.md (or, for the
GPU, a published vLLM benchmark) with its derivation next to it; the sheet is arithmetic on
those figures, so change an assumption when your own measurement differs. The findings
compare each load with the limit of the component that carries it, most loaded first: the
first one is what breaks first when traffic or the corpus grows.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

SECONDS_PER_DAY = 86_400
DIMENSIONS = (384, 768, 1536)
"""Vector sizes the sheet sizes storage for: MiniLM (the default), 768-dim models, and
OpenAI-style 1536-dim embeddings."""

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Assumptions:
    """The figures the sheet multiplies; defaults and their sources below."""

    words_per_chunk: float = 106.55
    """Corpus words per chunk at the 256-word-piece budget with 15 % overlap: the PostgreSQL
    manual's 1,066,484 words gave 10,009 chunks (BENCHMARKS.md, ingestion)."""

    pieces_per_word: float = 1.74
    """Word pieces embedded per corpus word, heading paths and overlap included: the same run
    embedded 184.8 s x 10,019 pieces/s = 1.85M pieces for 1,066,484 words."""

    embed_pieces_per_s: float = 17_408.0
    """Embedding throughput of int8 MiniLM through ONNX Runtime on 2 CPU cores, batch 8
    (BENCHMARKS.md, embedding backends alone)."""

    ingest_words_per_s: float = 5_771.0
    """End-to-end ingest rate (load, dedup, chunk, embed, write) on 2 cores; a 2M-word corpus
    ingests in about 5.8 minutes (BENCHMARKS.md, ingestion)."""

    dimensions: int = 384
    """Vector size of the embedder in use (MiniLM: 384)."""

    hnsw_m: int = 16
    """HNSW links per node per layer (pgvector's default m and usearch's connectivity); the
    bottom layer keeps 2 x m."""

    hnsw_link_bytes: int = 6
    """Bytes per graph link: pgvector stores each neighbour as a 6-byte item pointer (usearch
    uses 4-byte slots)."""

    hnsw_tuple_overhead_bytes: int = 100
    """Per-vector bytes besides links and the vector in a pgvector HNSW index: element tuple
    header with its heap pointers, neighbour tuple header, line pointers, alignment, and the
    upper layers' links (about m / (m - 1) extra)."""

    prompt_tokens: int = 1_600
    """Prompt tokens per answer: k = 5 passages of up to 256 word pieces, the system prompt
    and the question."""

    output_tokens: int = 250
    """Tokens generated per answer."""

    peak_factor: float = 4.0
    """Peak-hour traffic over the daily average."""

    cache_hit_rate: float = 0.3
    """Share of questions answered from the shared cache without the GPU; 30-50 % is
    common for support questions, so this is the low end."""

    gpu_tokens_per_s: float = 14_029.0
    """Prompt plus generated tokens one GPU processes per second for an 8B model on vLLM,
    saturated: Llama-3.1-8B-Instruct, 1,000 ShareGPT requests sent at once to `vllm serve`
    (`vllm bench serve`: 6,583 generated + 7,446 prompt tokens/s, 32.4 requests/s;
    vllm-project/vllm pull request 18566, May 2025; the GPU model is not stated there).
    Counting prompt tokens at this mixed rate overstates their cost (prefill is cheaper per
    token than decoding), so the sheet errs towards more GPUs. Measure your own with
    `vllm bench serve` and pass it in."""

    gpu_target_load: float = 0.5
    """Share of the saturated throughput to plan the peak on: that saturated run had a 9.6 s
    mean time to first token, which no chat user waits for."""

    gpus: int = 1
    """GPU workers provisioned (the shipped compose file and manifests run one)."""

    process_answers_per_s: float = 15.0
    """Answers per second one `grounded serve` process sustains on 2 cores (estimate): it
    relayed about 6,000 tokens/s at 64 streams (BENCHMARKS.md, answering), i.e. ~24 answers
    of 250 tokens per second, less ~12 ms of query embedding and hybrid search per question
    (8.6 ms p50 hybrid on 10k chunks)."""

    max_replicas: int = 10
    """Most `grounded serve` replicas the autoscaler may run (deploy/kubernetes/grounded.yaml)."""

    index_ram_gib: float = 8.0
    """Memory the database host can give the HNSW index (shared buffers plus page cache);
    beyond it searches read from disk and latency jumps."""

    pgvector_comfortable_vectors: int = 5_000_000
    """Vectors pgvector serves comfortably on one node (design figure: 5-10M)."""

    maintenance_window_h: float = 1.0
    """Longest acceptable full re-index (for example after changing the embedder)."""

    context_window: int = 8_192
    """Tokens the model accepts (GROUNDED_GENERATE__MODELS' context_window default)."""


@dataclass(frozen=True)
class VectorFootprint:
    """Storage for every chunk's vector at one vector size."""

    dimensions: int
    float32_bytes: int
    float16_bytes: int
    index_float32_bytes: int
    """pgvector HNSW index over `vector` (float32) columns: vectors plus graph."""
    index_float16_bytes: int
    """The same over `halfvec` (float16)."""


@dataclass(frozen=True)
class Finding:
    """One component's load against its limit; `breaks` when the load exceeds it."""

    key: str
    component: str
    load: float
    limit: float
    unit: str
    message: str
    remedy: str
    grows_with: str = ""
    """What the load is proportional to: "queries/day", "words", or "" (neither)."""
    breaks_at: float | None = None
    """The queries/day or words at which the load reaches the limit."""

    @property
    def ratio(self) -> float:
        return self.load / self.limit if self.limit > 0 else math.inf

    @property
    def breaks(self) -> bool:
        return self.load > self.limit


@dataclass(frozen=True)
class Row:
    section: str
    item: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class CapacitySheet:
    words: int
    queries_per_day: int
    assumptions: Assumptions
    chunks: int
    embedded_pieces: int
    vectors: tuple[VectorFootprint, ...]
    embed_seconds: float
    """Embedding the whole corpus once on 2 CPU cores (embedder only)."""
    ingest_seconds: float
    """Ingesting the whole corpus end to end on 2 CPU cores."""
    average_qps: float
    peak_qps: float
    generated_per_day: float
    """Answers that reach the GPU (cache misses)."""
    peak_generated_per_s: float
    tokens_per_answer: int
    gpu_seconds_per_answer: float
    gpu_hours_per_day: float
    """GPU-hours of work per day at saturated throughput."""
    peak_gpu_tokens_per_s: float
    gpus_needed_at_peak: int
    replicas_needed_at_peak: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    """Every check, most loaded first; `findings[0]` is what breaks first."""

    def footprint(self, dimensions: int) -> VectorFootprint:
        for footprint in self.vectors:
            if footprint.dimensions == dimensions:
                return footprint
        raise KeyError(dimensions)

    @property
    def breaking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.breaks)

    def finding(self, key: str) -> Finding:
        for item in self.findings:
            if item.key == key:
                return item
        raise KeyError(key)

    def rows(self) -> list[Row]:
        a = self.assumptions
        rows = [
            Row("Corpus", "words", f"{self.words:,}"),
            Row("Corpus", "chunks", f"{self.chunks:,}", f"{a.words_per_chunk:g} words per chunk"),
            Row(
                "Corpus",
                "word pieces embedded",
                f"{self.embedded_pieces:,}",
                f"{a.pieces_per_word:g} per word",
            ),
        ]
        for v in self.vectors:
            rows.append(
                Row(
                    "Vectors (float32 / float16)",
                    f"{v.dimensions} dims: vectors",
                    f"{_bytes(v.float32_bytes)} / {_bytes(v.float16_bytes)}",
                    "stored once in the table",
                )
            )
            rows.append(
                Row(
                    "Vectors (float32 / float16)",
                    f"{v.dimensions} dims: HNSW index",
                    f"{_bytes(v.index_float32_bytes)} / {_bytes(v.index_float16_bytes)}",
                    f"vector / halfvec + {_graph_bytes(a)} B graph each (m={a.hnsw_m})",
                )
            )
        rows += [
            Row(
                "Ingest (2 CPU cores)",
                "embedding the corpus",
                _duration(self.embed_seconds),
                f"int8 MiniLM, {a.embed_pieces_per_s:,.0f} pieces/s",
            ),
            Row(
                "Ingest (2 CPU cores)",
                "full re-index, end to end",
                _duration(self.ingest_seconds),
                f"{a.ingest_words_per_s:,.0f} words/s measured",
            ),
            Row("Traffic", "queries per day", f"{self.queries_per_day:,}"),
            Row("Traffic", "average queries/s", f"{self.average_qps:.2f}"),
            Row("Traffic", "peak queries/s", f"{self.peak_qps:.2f}", f"{a.peak_factor:g}x average"),
            Row(
                "Generation (GPU)",
                "answers generated per day",
                f"{self.generated_per_day:,.0f}",
                f"{a.cache_hit_rate:.0%} served from cache",
            ),
            Row(
                "Generation (GPU)",
                "tokens per answer",
                f"{self.tokens_per_answer:,}",
                f"{a.prompt_tokens:,} prompt + {a.output_tokens:,} generated",
            ),
            Row(
                "Generation (GPU)",
                "GPU-hours of work per day",
                f"{self.gpu_hours_per_day:.2f}",
                f"{self.gpu_seconds_per_answer:.3f} GPU-s per answer at "
                f"{a.gpu_tokens_per_s:,.0f} tokens/s (8B, vLLM, saturated)",
            ),
            Row(
                "Generation (GPU)",
                "peak tokens/s",
                f"{self.peak_gpu_tokens_per_s:,.0f}",
                f"{self.peak_generated_per_s:.2f} answers/s",
            ),
            Row(
                "Generation (GPU)",
                "GPUs needed at peak",
                str(self.gpus_needed_at_peak),
                f"planning at {a.gpu_target_load:.0%} of saturated throughput; "
                f"{a.gpus} provisioned",
            ),
            Row(
                "Serving",
                "grounded serve replicas at peak",
                str(self.replicas_needed_at_peak),
                f"{a.process_answers_per_s:g} answers/s per process; run at least 2",
            ),
        ]
        for rank, item in enumerate(self.findings, 1):
            note = item.message
            if item.breaks_at is not None and not item.breaks:
                note += f"; reached at ~{_count(item.breaks_at)} {item.grows_with}"
            rows.append(Row("What breaks first", f"{rank}. {item.component}", _load(item), note))
        return rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [
            {
                **asdict(f),
                "ratio": round(f.ratio, 4) if math.isfinite(f.ratio) else None,
                "breaks": f.breaks,
            }
            for f in self.findings
        ]
        return data


def _graph_bytes(a: Assumptions) -> int:
    return 2 * a.hnsw_m * a.hnsw_link_bytes + a.hnsw_tuple_overhead_bytes


def _footprint(chunks: int, dimensions: int, a: Assumptions) -> VectorFootprint:
    graph = _graph_bytes(a)
    return VectorFootprint(
        dimensions=dimensions,
        float32_bytes=chunks * dimensions * 4,
        float16_bytes=chunks * dimensions * 2,
        index_float32_bytes=chunks * (dimensions * 4 + graph),
        index_float16_bytes=chunks * (dimensions * 2 + graph),
    )


def capacity_sheet(
    words: int, queries_per_day: int, assumptions: Assumptions | None = None
) -> CapacitySheet:
    """Size a deployment for `words` of documents and `queries_per_day` questions."""
    a = assumptions or Assumptions()
    if words < 0 or queries_per_day < 0:
        raise ValueError("words and queries_per_day must not be negative")
    if a.words_per_chunk <= 0 or a.embed_pieces_per_s <= 0 or a.ingest_words_per_s <= 0:
        raise ValueError("words_per_chunk and the throughputs must be positive")
    if a.gpu_tokens_per_s <= 0 or not 0 < a.gpu_target_load <= 1:
        raise ValueError("gpu_tokens_per_s must be positive and gpu_target_load in (0, 1]")
    if not 0 <= a.cache_hit_rate < 1 or a.peak_factor < 1 or a.process_answers_per_s <= 0:
        raise ValueError("cache_hit_rate must be in [0, 1), peak_factor >= 1")

    chunks = math.ceil(words / a.words_per_chunk)
    pieces = round(words * a.pieces_per_word)
    vectors = tuple(_footprint(chunks, d, a) for d in sorted({*DIMENSIONS, a.dimensions}))
    embed_seconds = pieces / a.embed_pieces_per_s
    ingest_seconds = words / a.ingest_words_per_s

    average_qps = queries_per_day / SECONDS_PER_DAY
    peak_qps = average_qps * a.peak_factor
    generated_per_day = queries_per_day * (1 - a.cache_hit_rate)
    peak_generated = generated_per_day / SECONDS_PER_DAY * a.peak_factor
    tokens_per_answer = a.prompt_tokens + a.output_tokens
    gpu_seconds_per_answer = tokens_per_answer / a.gpu_tokens_per_s
    gpu_hours = generated_per_day * gpu_seconds_per_answer / 3600
    peak_tokens = peak_generated * tokens_per_answer
    planned_per_gpu = a.gpu_tokens_per_s * a.gpu_target_load
    gpus_needed = max(1, math.ceil(peak_tokens / planned_per_gpu)) if peak_tokens else 0
    replicas = max(1, math.ceil(peak_qps / a.process_answers_per_s))

    index_bytes = next(v for v in vectors if v.dimensions == a.dimensions).index_float32_bytes

    def finding(
        key: str,
        component: str,
        load: float,
        limit: float,
        unit: str,
        message: str,
        remedy: str,
        grows_with: str = "",
    ) -> Finding:
        current = {"queries/day": queries_per_day, "words": words}.get(grows_with)
        breaks_at = current * limit / load if current and load > 0 else None
        return Finding(key, component, load, limit, unit, message, remedy, grows_with, breaks_at)

    findings = [
        finding(
            "gpu",
            "GPU generation at peak",
            peak_tokens,
            a.gpus * planned_per_gpu,
            "tokens/s",
            f"{peak_tokens:,.0f} tokens/s against {a.gpus} GPU x {planned_per_gpu:,.0f} planned; "
            f"{gpus_needed} needed",
            "add vLLM workers behind the model's URL (a Service or load balancer spreads "
            "requests over them), raise the cache hit rate, or shorten prompts",
            "queries/day",
        ),
        finding(
            "embedded_store",
            "embedded store (one process)",
            peak_qps,
            a.process_answers_per_s,
            "queries/s",
            f"{peak_qps:.2f} q/s against ~{a.process_answers_per_s:g} q/s of one process",
            "SQLite + usearch has one writer and lives on one host: move to PostgreSQL "
            "(GROUNDED_STORE_URL) and run several replicas",
            "queries/day",
        ),
        finding(
            "replicas",
            "grounded serve replicas",
            peak_qps,
            a.max_replicas * a.process_answers_per_s,
            "queries/s",
            f"{replicas} needed of at most {a.max_replicas} ({a.process_answers_per_s:g} q/s each)",
            "raise the autoscaler's maxReplicas, or give each replica more cores",
            "queries/day",
        ),
        finding(
            "index_ram",
            "pgvector HNSW index in RAM",
            index_bytes / GIB,
            a.index_ram_gib,
            "GiB",
            f"{_bytes(index_bytes)} ({a.dimensions} dims, float32) against {a.index_ram_gib:g} GiB",
            "beyond it searches read from disk: store halfvec, give the database more memory, "
            "or split collections across databases",
            "words",
        ),
        finding(
            "pgvector_vectors",
            "vectors in one pgvector node",
            chunks,
            a.pgvector_comfortable_vectors,
            "vectors",
            f"{chunks:,} against ~{a.pgvector_comfortable_vectors:,}",
            "beyond 5-10M vectors consider a dedicated vector database",
            "words",
        ),
        finding(
            "reindex",
            "full re-index vs maintenance window",
            ingest_seconds / 3600,
            a.maintenance_window_h,
            "hours",
            f"{_duration(ingest_seconds)} on 2 cores against {a.maintenance_window_h:g} h",
            "ingest into a new store and switch over, or embed on more cores or a GPU "
            "embedding server (GROUNDED_EMBED__BACKEND=openai)",
            "words",
        ),
        finding(
            "context",
            "prompt + answer in the context window",
            tokens_per_answer,
            a.context_window,
            "tokens",
            f"{tokens_per_answer:,} of {a.context_window:,} tokens",
            "lower GROUNDED_RETRIEVE__K or use a model with a longer context",
        ),
    ]
    findings.sort(key=lambda f: f.ratio, reverse=True)

    return CapacitySheet(
        words=words,
        queries_per_day=queries_per_day,
        assumptions=a,
        chunks=chunks,
        embedded_pieces=pieces,
        vectors=vectors,
        embed_seconds=embed_seconds,
        ingest_seconds=ingest_seconds,
        average_qps=average_qps,
        peak_qps=peak_qps,
        generated_per_day=generated_per_day,
        peak_generated_per_s=peak_generated,
        tokens_per_answer=tokens_per_answer,
        gpu_seconds_per_answer=gpu_seconds_per_answer,
        gpu_hours_per_day=gpu_hours,
        peak_gpu_tokens_per_s=peak_tokens,
        gpus_needed_at_peak=gpus_needed,
        replicas_needed_at_peak=replicas,
        findings=tuple(findings),
    )


def _load(item: Finding) -> str:
    if math.isinf(item.ratio):
        return "BREAKS"
    share = "<1%" if item.ratio < 0.01 else f"{item.ratio:.0%}"
    return f"BREAKS {share}" if item.breaks else share


def _count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.3g}G"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}k"
    return f"{n:.3g}"


def _bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_table(sheet: CapacitySheet) -> Table:
    """The sheet as a rich table, one section per group of rows."""
    table = Table(
        title=f"Capacity for {sheet.words:,} words and {sheet.queries_per_day:,} queries/day",
        show_lines=False,
    )
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_column("basis")
    section = ""
    for row in sheet.rows():
        if row.section != section:
            if section:
                table.add_section()
            section = row.section
            table.add_row(f"[bold]{section}[/bold]", "", "")
        table.add_row(f"  {row.item}", row.value, row.note)
    return table


def render_text(sheet: CapacitySheet, width: int = 100) -> str:
    """The table as plain text (no colours), e.g. for documentation."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render_table(sheet))
    return console.export_text()


def capacity(
    words: Annotated[int, typer.Option(min=0, help="Words in the corpus.")] = 2_000_000,
    queries_per_day: Annotated[
        int, typer.Option(min=0, help="Questions per day at the planning horizon.")
    ] = 50_000,
    peak_factor: Annotated[
        float, typer.Option(min=1.0, help="Peak-hour traffic over the daily average.")
    ] = Assumptions.peak_factor,
    cache_hit_rate: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Share answered from the cache.")
    ] = Assumptions.cache_hit_rate,
    prompt_tokens: Annotated[
        int, typer.Option(min=1, help="Prompt tokens per answer.")
    ] = Assumptions.prompt_tokens,
    output_tokens: Annotated[
        int, typer.Option(min=1, help="Generated tokens per answer.")
    ] = Assumptions.output_tokens,
    gpu_tokens_per_s: Annotated[
        float,
        typer.Option(min=1.0, help="Saturated prompt+output tokens/s of one GPU (vLLM)."),
    ] = Assumptions.gpu_tokens_per_s,
    gpu_target_load: Annotated[
        float, typer.Option(min=0.05, max=1.0, help="Share of saturation to plan peaks on.")
    ] = Assumptions.gpu_target_load,
    gpus: Annotated[int, typer.Option(min=0, help="GPU workers provisioned.")] = Assumptions.gpus,
    dimensions: Annotated[
        int, typer.Option(min=1, help="Vector size of the embedder.")
    ] = Assumptions.dimensions,
    index_ram_gib: Annotated[
        float, typer.Option(min=0.1, help="RAM the database host gives the vector index.")
    ] = Assumptions.index_ram_gib,
    maintenance_window_h: Annotated[
        float, typer.Option(min=0.01, help="Longest acceptable full re-index, hours.")
    ] = Assumptions.maintenance_window_h,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Print the capacity sheet for a workload: chunks, vector memory, GPUs, what breaks first."""
    assumptions = replace(
        Assumptions(),
        peak_factor=peak_factor,
        cache_hit_rate=cache_hit_rate,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        gpu_tokens_per_s=gpu_tokens_per_s,
        gpu_target_load=gpu_target_load,
        gpus=gpus,
        dimensions=dimensions,
        index_ram_gib=index_ram_gib,
        maintenance_window_h=maintenance_window_h,
    )
    sheet = capacity_sheet(words, queries_per_day, assumptions)
    if json_out:
        typer.echo(json.dumps(sheet.to_dict(), indent=2))
        return
    Console().print(render_table(sheet))
