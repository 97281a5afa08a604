"""WHERE clauses from a `SearchFilter`. Values are bound parameters, never spliced."""

from __future__ import annotations

import json

from grounded.models import SearchFilter
from grounded.store.terms import check_metadata_key


def filter_sql(where: SearchFilter, with_documents: bool) -> tuple[str, list[object]]:
    """A condition over ``c`` (chunks) and, with `with_documents`, ``d`` (documents)."""
    clauses = ["c.duplicate_of IS NULL"]
    params: list[object] = []
    if where.collection is not None:
        clauses.append("c.collection = %s")
        params.append(where.collection)
    if where.source_prefix:
        clauses.append("starts_with(d.source, %s)")
        params.append(where.source_prefix)
    if where.metadata:
        for key in where.metadata:
            check_metadata_key(key)
        # Containment keeps JSON types exact: {"public": false} never matches 0 or "false".
        clauses.append("d.metadata @> %s::jsonb")
        params.append(json.dumps(dict(where.metadata)))
    if not with_documents and needs_documents(where):
        raise ValueError("this filter needs the documents table")
    return " AND ".join(clauses), params


def needs_documents(where: SearchFilter) -> bool:
    return bool(where.source_prefix or where.metadata)
