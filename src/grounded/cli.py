"""The `grounded` command line."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grounded.capacity import capacity
from grounded.cli_db import db_app, migrate_store
from grounded.cli_keys import keys_app
from grounded.cli_shadow import shadow_app
from grounded.errors import ConfigError, GroundedError, InputError
from grounded.gateway.tenancy import TENANT_PATTERN, stored_collection, visible_collection
from grounded.models import SearchFilter
from grounded.runtime import Runtime
from grounded.settings import Settings, load_settings
from grounded.types import DocId, Metadata

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Grounded: answers grounded in your documents, with citations.",
)
eval_app = typer.Typer(no_args_is_help=True, help="Measure retrieval quality.")
app.add_typer(eval_app, name="eval")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(shadow_app, name="shadow")
app.command("migrate-store")(migrate_store)
app.command("capacity")(capacity)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Index location (env GROUNDED_DATA_DIR).")
]
CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c", help="Collection name.")]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Work in this tenant's collections (default: the default one)."),
]
MetaOpt = Annotated[list[str] | None, typer.Option("--meta", help="key=value; repeatable.")]


def _settings(
    data_dir: Path | None, collection: str | None = None, tenant: str | None = None
) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if collection is not None:
        overrides["collection"] = collection
    settings = load_settings(**overrides)
    if tenant is None:
        return settings
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ConfigError(f"invalid tenant name {tenant!r}: use a-z, 0-9, _ and - (max 32)")
    scoped = stored_collection(tenant, collection or settings.collection)
    return settings.model_copy(update={"collection": scoped})


def _run(settings_fn: Callable[[], Settings], job: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one async job with a runtime; GroundedErrors become a message and exit code 2."""
    try:
        runtime = Runtime(settings_fn())

        async def main() -> T:
            try:
                return await job(runtime)
            finally:
                await runtime.close()

        return asyncio.run(main())
    except GroundedError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _metadata(pairs: list[str] | None) -> Metadata:
    meta: Metadata = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--meta expects key=value, got {pair!r}")
        meta[key] = value
    return meta


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = None,
    prune: Annotated[bool, typer.Option(help="Delete documents whose files are gone.")] = False,
    meta: MetaOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Load, chunk, embed and index documents; unchanged files cost nothing."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        errors.print(f"[red]error:[/red] no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)
    metadata = _metadata(meta)
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[chunks]} chunks"),
        TextColumn("{task.fields[rate]} chunks/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, transient=False) as bar:
        task = bar.add_task("ingest", total=None, chunks=0, rate="-")
        started = time.perf_counter()

        def progress(done: int, total: int, chunks: int) -> None:
            rate = chunks / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=done, total=total, chunks=chunks, rate=f"{rate:,.0f}")

        settings = _settings(data_dir, collection, tenant)
        report = _run(
            lambda: settings,
            lambda rt: rt.ingestor.run(
                paths, settings.collection, prune=prune, metadata=metadata, progress=progress
            ),
        )
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    table = Table(title="Ingest summary", show_header=False)
    for label, value in (
        ("added", len(report.added)),
        ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)),
        ("duplicates dropped", len(report.duplicates)),
        ("failed", len(report.failed)),
        ("pruned", len(report.pruned)),
        ("ignored (unsupported type)", len(report.ignored)),
        ("chunks written", report.chunks_written),
        ("chunks embedded", report.chunks_embedded),
        ("chunks reused", report.chunks_reused),
        ("near-identical chunks dropped", report.duplicate_chunks),
        ("seconds", f"{report.seconds:.1f}"),
    ):
        table.add_row(label, str(value))
    console.print(table)
    for source, of, kind in report.duplicates:
        console.print(f"[yellow]duplicate[/yellow] {source} ({kind} copy of {of})")
    for source, reason in report.failed:
        console.print(f"[red]failed[/red] {source}: {reason}")
    for source in report.pruned:
        console.print(f"[cyan]pruned[/cyan] {source}")


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=100)] = 5,
    collection: CollectionOpt = None,
    tenant: TenantOpt = None,
    source_prefix: Annotated[
        str | None, typer.Option(help="Only sources starting with this.")
    ] = None,
    meta: MetaOpt = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Hybrid search (dense + BM25, fused); best first."""
    if mode not in ("hybrid", "dense", "keyword"):
        raise typer.BadParameter("mode must be hybrid, dense or keyword")
    if not question.strip() or len(question) > 2000:
        errors.print("[red]error:[/red] the question must be 1-2000 characters")
        raise typer.Exit(2)
    settings_holder: list[Settings] = []

    def settings() -> Settings:
        settings_holder.append(_settings(data_dir, collection, tenant))
        return settings_holder[0]

    async def job(rt: Runtime) -> Any:
        retriever = await rt.ready_for_search()
        where = SearchFilter(rt.settings.collection, source_prefix, _metadata(meta))
        return await retriever.search(question, k=k, where=where, mode=mode)  # type: ignore[arg-type]

    retrieval = _run(settings, job)
    items = [
        {
            "source": h.source,
            "section": h.chunk.section_path,
            "text": h.chunk.text,
            "score": round(h.score, 6),
            "doc_id": h.chunk.doc_id,
            "chunk_id": h.chunk.chunk_id,
            "title": h.title,
            "collection": h.collection,
            "start": h.chunk.start,
            "end": h.chunk.end,
            "dense_rank": h.dense_rank,
            "keyword_rank": h.keyword_rank,
            "metadata": h.metadata,
        }
        for h in retrieval.hits
    ]
    if as_json:
        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
        return
    if not items:
        console.print("no results")
    for rank, item in enumerate(items, start=1):
        console.print(
            f"[bold]{rank}. {item['source']}[/bold] — {item['section']}  "
            f"[dim](score {item['score']:.4f})[/dim]"
        )
        snippet = " ".join(str(item["text"]).split())
        console.print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")


@app.command()
def delete(
    target: Annotated[str, typer.Argument(help="A source path (as shown by search) or a doc id.")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Remove a document and its chunks from every index."""

    async def job(rt: Runtime) -> str | None:
        store = rt.store
        doc = await store.find_document(rt.settings.collection, target) or await store.get_document(
            DocId(target)
        )
        if doc is None or (
            tenant is not None and visible_collection(tenant, doc.collection) is None
        ):
            return None  # with --tenant, another tenant's document id is not found either
        await store.delete_document(doc.doc_id)
        return f"{doc.source} ({doc.doc_id}, {doc.chunk_count} chunks)"

    deleted = _run(lambda: _settings(data_dir, collection, tenant), job)
    if deleted is None:
        errors.print(f"[red]error:[/red] no document {target!r} in this collection")
        raise typer.Exit(1)
    console.print(f"deleted {deleted}")


@app.command()
def stats(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents, chunks, duplicates and size of the index."""

    async def job(rt: Runtime) -> tuple[Any, Any]:
        return await rt.store.stats(), await rt.store.duplicates()

    result, duplicates = _run(lambda: _settings(data_dir), job)
    if as_json:
        payload = {**result.__dict__} if hasattr(result, "__dict__") else _as_dict(result)
        payload["duplicate_sources"] = [
            {"source": d.source, "duplicate_of": d.duplicate_of_source, "kind": d.kind}
            for d in duplicates
        ]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title="Index", show_header=False)
    for field, value in _as_dict(result).items():
        table.add_row(field.replace("_", " "), str(value))
    console.print(table)
    for d in duplicates:
        console.print(
            f"[yellow]duplicate[/yellow] {d.source} ({d.kind} copy of {d.duplicate_of_source})"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (GROUNDED_SERVE__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (GROUNDED_SERVE__PORT).")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys: for local use on a trusted machine.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the OpenAI-compatible API and the chat page (API keys required unless --no-auth)."""
    import uvicorn

    from grounded.serve.app import create_app

    try:
        settings = _settings(data_dir)
    except GroundedError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if no_auth:
        gateway = settings.gateway.model_copy(update={"auth": False})
        settings = settings.model_copy(update={"gateway": gateway})
    elif settings.gateway.auth:
        errors.print("API keys required: create one with `grounded keys create --tenant NAME`")
    bind_host = host or settings.serve.host
    bind_port = settings.serve.port if port is None else port
    errors.print(f"Grounded on http://{bind_host}:{bind_port}/  (API under /v1, docs at /docs)")
    uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level="warning")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    model: Annotated[str | None, typer.Option(help="Model name (default: configured).")] = None,
    k: Annotated[int | None, typer.Option("--k", "-k", min=1, max=20)] = None,
    collection: CollectionOpt = None,
    tenant: TenantOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Answer a question from the documents, streamed, then list the sources."""
    from grounded.generate.answer import AnswerRequest, UnknownModelError
    from grounded.generate.protocol import BackendError

    if not question.strip() or len(question) > 4000:
        errors.print("[red]error:[/red] the question must be 1-4000 characters")
        raise typer.Exit(2)

    async def job(rt: Runtime) -> Any:
        answerer = await rt.answerer()
        where = SearchFilter(collection=rt.settings.collection)
        try:
            answer = await answerer.prepare(AnswerRequest(question, model=model, k=k, where=where))
        except UnknownModelError as exc:
            raise InputError(f"{exc}; known: {', '.join(answerer.model_names)}") from None
        try:
            async for delta in answer.stream():
                sys.stdout.write(delta.text)
                sys.stdout.flush()
        except BackendError as exc:
            errors.print(f"\n[red]error:[/red] the model failed mid-answer: {exc}")
            raise typer.Exit(1) from None
        sys.stdout.write("\n")
        return answer

    answer = _run(lambda: _settings(data_dir, collection, tenant), job)
    if answer.degraded:
        console.print("[yellow](the model was unavailable; this is an extract)[/yellow]")
    if answer.citations:
        console.print("\n[bold]Sources[/bold]")
    for citation in answer.citations:
        hit = citation.hit
        console.print(f"  [{citation.number}] {hit.source} — {hit.chunk.section_path}")


@app.command()
def check(data_dir: DataDir = None) -> None:
    """Verify that every index agrees with the stored documents (exit 1 if not)."""
    problems = _run(lambda: _settings(data_dir), lambda rt: rt.store.check())
    if problems:
        for problem in problems:
            console.print(f"[red]inconsistent[/red] {problem}")
        raise typer.Exit(1)
    console.print("index is consistent")


def _as_dict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@eval_app.command("retrieval")
def eval_retrieval(
    queries: Annotated[
        Path, typer.Option("--queries", help="JSONL: query + relevant [{source, section}].")
    ],
    collection: CollectionOpt = None,
    tenant: TenantOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = None,
) -> None:
    """Recall@k, MRR@10 and nDCG@10 for dense, BM25 and hybrid side by side."""
    from grounded.eval.retrieval import evaluate, load_queries

    if not queries.is_file():
        errors.print(f"[red]error:[/red] no such file: {queries}")
        raise typer.Exit(2)

    async def job(rt: Runtime) -> Any:
        labelled = load_queries(queries)
        retriever = await rt.ready_for_search()
        return await evaluate(retriever, labelled, SearchFilter(collection=rt.settings.collection))

    scores = _run(lambda: _settings(data_dir, collection, tenant), job)
    if as_json:
        sys.stdout.write(json.dumps([_as_dict(s) for s in scores], indent=2) + "\n")
        return
    table = Table(title=f"Retrieval quality ({scores[0].queries} queries, section level)")
    for column in ("mode", "recall@1", "recall@5", "recall@10", "MRR@10", "nDCG@10", "p50 ms"):
        table.add_column(column, justify="right")
    for s in scores:
        table.add_row(
            s.mode,
            *(
                f"{v:.3f}"
                for v in (s.recall_at_1, s.recall_at_5, s.recall_at_10, s.mrr_at_10, s.ndcg_at_10)
            ),
            f"{s.p50_ms:.1f}",
        )
    console.print(table)


def main() -> None:
    try:
        app()
    except InputError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
