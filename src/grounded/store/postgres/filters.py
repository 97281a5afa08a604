"""WHERE clauses from a `SearchFilter`. Values are bound parameters, never spliced."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from grounded.errors import InputError
from grounded.models import SearchFilter
from grounded.store.terms import check_metadata_key


def metadata_json(metadata: Mapping[str, object]) -> str:
    """Metadata as jsonb text. JSON has no NaN or infinity: json.dumps would write them
    anyway, and PostgreSQL would then fail the whole statement."""
    for key, value in metadata.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"metadata {key[:40]!r} is {value}; values must be finite numbers")
    return json.dumps(dict(metadata), allow_nan=False)


def filter_sql(where: SearchFilter) -> tuple[str, str, list[object]]:
    """The join (documents, when the filter needs them), a condition over ``c`` (chunks) and
    ``d`` (documents), and its parameters."""
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
        params.append(metadata_json(where.metadata))
    # The collection is copied onto chunks, so only the other filters need the join.
    join = (
        "JOIN documents d ON d.doc_key = c.doc_key" if where.source_prefix or where.metadata else ""
    )
    return join, " AND ".join(clauses), params
