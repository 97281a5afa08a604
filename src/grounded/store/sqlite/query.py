"""SQL fragments built from user input. Values are always bound parameters, never spliced."""

from __future__ import annotations

import math
from collections.abc import Mapping

from grounded.errors import InputError
from grounded.models import SearchFilter
from grounded.store.terms import check_metadata_key


def check_metadata_values(metadata: Mapping[str, object]) -> None:
    """JSON has no NaN or infinity: stored, json.dumps would write them anyway and every
    json_extract over that row would fail; as a filter value SQLite would bind NaN as NULL."""
    for key, value in metadata.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"metadata {key[:40]!r} is {value}; values must be finite numbers")


def filter_sql(where: SearchFilter, documents_only: bool = False) -> tuple[str, list[object]]:
    """A condition over aliases ``c`` (chunks) and ``d`` (documents), and its parameters.

    With `documents_only` the condition names only ``d`` (copies are then not excluded).
    """
    clauses = ["1"] if documents_only else ["c.duplicate_of IS NULL"]
    params: list[object] = []
    if where.collection is not None:
        clauses.append("d.collection = ?")
        params.append(where.collection)
    if where.source_prefix:
        clauses.append("substr(d.source, 1, ?) = ?")
        params.extend([len(where.source_prefix), where.source_prefix])
    check_metadata_values(where.metadata)
    for key, value in where.metadata.items():
        check_metadata_key(key)
        clauses.append("json_extract(d.metadata, ?) = ?")
        params.extend([f'$."{key}"', int(value) if isinstance(value, bool) else value])
    return " AND ".join(clauses), params


def is_unfiltered(where: SearchFilter) -> bool:
    return where.collection is None and not where.source_prefix and not where.metadata
