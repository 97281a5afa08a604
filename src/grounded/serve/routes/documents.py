"""/v1/documents: upload (ingested with the pipeline), list, show, delete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from grounded.gateway.tenancy import Principal, plain_collection
from grounded.ingest.loaders import is_supported
from grounded.models import Document
from grounded.serve.auth import Caller
from grounded.serve.errors import error_response
from grounded.serve.routes.deps import state
from grounded.types import DocId

router = APIRouter()
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # never "." or ".."
MAX_OFFSET = 1_000_000
MAX_FILES = 50
COLLECTION_RULE = "collection must be 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit"


def _document(doc: Document, caller: Principal) -> dict[str, Any]:
    return {
        "id": doc.doc_id,
        "object": "document",
        "collection": caller.visible(doc.collection),
        "source": doc.source,
        "title": doc.title,
        "format": doc.format,
        "content_hash": doc.content_hash,
        "chunks": doc.chunk_count,
        "ingested_at": doc.ingested_at,
        "metadata": doc.metadata,
    }


def safe_name(filename: str) -> str:
    name = _SAFE_NAME.sub("-", Path(filename).name).strip(".-")
    return name[:200] or "upload"


@router.post("/v1/documents", status_code=201, response_model=None)
async def upload(
    request: Request,
    files: list[UploadFile],
    caller: Caller,
    collection: str | None = Form(None),
) -> Any:
    app = state(request)
    settings = app.runtime.settings
    collection = collection or plain_collection(settings.collection)
    if not _COLLECTION.fullmatch(collection):
        return error_response(400, COLLECTION_RULE, "invalid_collection", "collection")
    if not files or len(files) > MAX_FILES:
        return error_response(400, f"send 1 to {MAX_FILES} files", "invalid_files", "files")
    names = [safe_name(f.filename or "upload") for f in files]
    for name in names:
        if not is_supported(Path(name)):
            return error_response(
                415,
                f"{name}: unsupported file type (md, html, txt, pdf, jsonl)",
                "unsupported_file_type",
                "files",
            )
    headers = await app.gateway.check(caller, 0, None)
    stored = caller.collection(collection)
    # Tenant and collection names are validated, so this stays inside uploads/ and is the
    # tenant's own; files are written under the lock so two uploads never mix their bytes.
    folder = settings.data_dir / "uploads" / caller.tenant / collection
    async with app.ingest_lock:
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for name, upload_file in zip(names, files, strict=True):
            path = folder / name
            path.write_bytes(await upload_file.read())
            saved.append(path)
        report = await app.runtime.ingestor.run(saved, stored)
    body = {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "duplicates": [
            {"source": s, "duplicate_of": o, "kind": k} for s, o, k in report.duplicates
        ],
        "failed": [{"source": s, "reason": r} for s, r in report.failed],
        "chunks_written": report.chunks_written,
    }
    documents = [
        await app.runtime.store.find_document(stored, s)
        for s in report.added + report.updated + report.unchanged
    ]
    body["documents"] = [_document(d, caller) for d in documents if d is not None]
    status = 201 if not report.failed else (422 if not body["documents"] else 207)
    return JSONResponse(body, status_code=status, headers=headers)


@router.get("/v1/documents")
async def list_documents(
    request: Request,
    caller: Caller,
    collection: str | None = None,
    source_prefix: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Any:
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        return error_response(
            400, f"limit must be 1-1000 and offset 0-{MAX_OFFSET}", "invalid_paging", "limit"
        )
    if collection is not None and not _COLLECTION.fullmatch(collection):
        return error_response(400, COLLECTION_RULE, "invalid_collection", "collection")
    store = state(request).runtime.store
    if collection is not None:
        docs = await store.list_documents(
            caller.collection(collection), source_prefix, limit, offset
        )
    else:
        docs = await _all_collections(request, caller, source_prefix, limit, offset)
    return {"object": "list", "data": [_document(d, caller) for d in docs]}


async def _all_collections(
    request: Request, caller: Principal, source_prefix: str | None, limit: int, offset: int
) -> list[Document]:
    """One page across every collection this tenant owns (and no other tenant's)."""
    store = state(request).runtime.store
    owned = sorted(c for c in (await store.stats()).collections if caller.owns(c))
    page: list[Document] = []
    for stored in owned:
        wanted = limit - len(page)
        if wanted <= 0:
            break
        docs = await store.list_documents(stored, source_prefix, offset + wanted, 0)
        if offset >= len(docs):  # this whole collection lies before the page
            offset -= len(docs)
            continue
        page.extend(docs[offset : offset + wanted])
        offset = 0
    return page


async def _owned(request: Request, doc_id: str, caller: Principal) -> Document | None:
    doc = await state(request).runtime.store.get_document(DocId(doc_id))
    # Another tenant's document is reported exactly like a missing one.
    return doc if doc is not None and caller.owns(doc.collection) else None


@router.get("/v1/documents/{doc_id}", response_model=None)
async def get_document(doc_id: str, request: Request, caller: Caller) -> Any:
    doc = await _owned(request, doc_id, caller)
    if doc is None:
        return error_response(404, f"no document {doc_id!r}", "document_not_found", "doc_id")
    return _document(doc, caller)


@router.delete("/v1/documents/{doc_id}", response_model=None)
async def delete_document(doc_id: str, request: Request, caller: Caller) -> Any:
    doc = await _owned(request, doc_id, caller)
    if doc is None or not await state(request).runtime.store.delete_document(doc.doc_id):
        return error_response(404, f"no document {doc_id!r}", "document_not_found", "doc_id")
    return {"id": doc_id, "object": "document.deleted", "deleted": True}
