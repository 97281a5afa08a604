"""Keyword search on PostgreSQL: full-text match on the selective lexemes, ranked by ts_rank.

The question goes through the same parser as the chunks. Lexemes found in a large share of
all chunks are dropped before ranking: they say little about relevance, yet every chunk
holding one would have to be ranked, which is where the time goes. Common lexemes' shares
come free from the planner's statistics (ANALYZE keeps the most common elements of the
tsvector column); the rest are counted on the GIN index with a cap. A question made only
of common lexemes gets no keyword results, and the dense half of hybrid search answers it.
On the PostgreSQL manual's labelled questions one ts_rank over the kept lexemes ranked
better than an idf-weighted sum of per-lexeme ranks, and four times faster.
"""

from __future__ import annotations

from typing import Any

import psycopg

from grounded.store.terms import MAX_TERMS

Connection = psycopg.AsyncConnection[Any]
COMMON_SHARE = 0.35  # a lexeme in more than this share of chunks is dropped from the query
MIN_CAP = 200
MAX_QUESTION_CHARS = 4000


async def lexemes(conn: Connection, question: str) -> list[str]:
    # A bound value through to_tsvector: never query syntax, whatever the user typed.
    rows = await (
        await conn.execute(
            "SELECT lexeme FROM unnest(to_tsvector('english', %s)) ORDER BY positions[1] LIMIT %s",
            (question[:MAX_QUESTION_CHARS], MAX_TERMS),
        )
    ).fetchall()
    return [r[0] for r in rows]


async def chunk_total(conn: Connection) -> int:
    row = await (
        await conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'chunks'::regclass")
    ).fetchone()
    estimate = int(row[0]) if row else -1
    if estimate >= 10_000:
        return estimate
    exact = await (await conn.execute("SELECT count(*) FROM chunks")).fetchone()
    return int(exact[0]) if exact else 0


async def common_lexemes(conn: Connection) -> dict[str, float]:
    """Share of chunks holding each of the most common lexemes, from pg_stats."""
    row = await (
        await conn.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'terms'"
        )
    ).fetchone()
    if row is None or row[0] is None:
        return {}
    names, shares = row
    return {lex: float(share) for lex, share in zip(names, shares, strict=False)}


async def selective_lexemes(conn: Connection, question: str) -> list[str]:
    """The question's lexemes that occur in the index and in at most COMMON_SHARE of it."""
    found = await lexemes(conn, question)
    if not found:
        return []
    total = max(1, await chunk_total(conn))
    cap = max(MIN_CAP, int(total * COMMON_SHARE))
    common = await common_lexemes(conn)
    frequency = {lex: int(common[lex] * total) for lex in found if lex in common}
    rare = [lex for lex in found if lex not in common]
    if rare:
        rows = await (
            await conn.execute(
                "SELECT lex, (SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE "
                "c.duplicate_of IS NULL AND c.terms @@ quote_literal(lex)::tsquery LIMIT %s) s) "
                "FROM unnest(%s::text[]) AS lex",
                (cap + 1, rare),
            )
        ).fetchall()
        frequency.update({lex: int(df) for lex, df in rows})
    return [lex for lex in found if 0 < frequency.get(lex, 0) <= cap]


RANKED_SQL = (
    "SELECT c.chunk_id, ts_rank(c.terms, q.tq, 1) AS score "
    "FROM (SELECT %s::tsquery AS tq) q, chunks c {join} "
    "WHERE c.terms @@ q.tq AND {condition} ORDER BY score DESC, c.chunk_key LIMIT %s"
)


def any_of(terms: list[str]) -> str:
    """A tsquery matching any of these lexemes, each quoted as one lexeme."""
    return " | ".join("'" + lex.replace("'", "''") + "'" for lex in terms)
