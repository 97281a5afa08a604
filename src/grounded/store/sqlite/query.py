"""SQL fragments built from user input. Values are always bound parameters, never spliced."""

from __future__ import annotations

from grounded.models import SearchFilter
from grounded.store.terms import check_metadata_key, query_terms


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
    for key, value in where.metadata.items():
        check_metadata_key(key)
        clauses.append("json_extract(d.metadata, ?) = ?")
        params.extend([f'$."{key}"', int(value) if isinstance(value, bool) else value])
    return " AND ".join(clauses), params


def is_unfiltered(where: SearchFilter) -> bool:
    return where.collection is None and not where.source_prefix and not where.metadata


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the question's terms, each quoted so no operator syntax leaks in."""
    unique = query_terms(text)
    if not unique:
        return None
    return " OR ".join(f'"{term}"' for term in unique)
