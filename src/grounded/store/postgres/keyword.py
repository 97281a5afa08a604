"""Keyword search on PostgreSQL ranked like BM25: rare terms count more than common ones.

`ts_rank` alone has no inverse document frequency, so a chunk that repeats a common word
("order", "return") outranks the only chunk naming the part number asked about. Here each
query lexeme gets a BM25 idf from its document frequency, counted on the GIN index and
capped so that counting stays cheap; lexemes in a large share of all chunks are dropped
(they rank nothing and cost the most); a question made only of such lexemes gets no
keyword results, and the dense half of hybrid search answers it alone.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg

from grounded.store.terms import MAX_TERMS

Connection = psycopg.AsyncConnection[Any]
COMMON_SHARE = 0.2  # a lexeme in more than this share of chunks is dropped from the query
MIN_CAP = 200
MAX_QUESTION_CHARS = 4000


async def lexemes(conn: Connection, question: str) -> list[str]:
    # The question goes through the same parser as the chunks (part numbers like NW-0117-3
    # split the same way on both sides); it is a bound value, never query syntax.
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
    lexemes, shares = row
    return {lex: float(share) for lex, share in zip(lexemes, shares, strict=False)}


async def weighted_terms(conn: Connection, question: str) -> tuple[list[str], list[float]]:
    """The query's lexemes worth searching for, with their BM25 idf."""
    found = await lexemes(conn, question)
    if not found:
        return [], []
    total = max(1, await chunk_total(conn))
    cap = max(MIN_CAP, int(total * COMMON_SHARE))
    # Common lexemes' shares come free from the planner's statistics (ANALYZE keeps the most
    # common elements of the tsvector column); only the rarer ones are counted, cheaply.
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
    frequency = {lex: df for lex, df in frequency.items() if df > 0}
    if not frequency:
        return [], []
    kept = [lex for lex, df in frequency.items() if df <= cap]
    idf = [math.log(1 + (total - frequency[lex] + 0.5) / (frequency[lex] + 0.5)) for lex in kept]
    return kept, idf


RANKED_SQL = (
    "WITH q AS (SELECT lex, idf, quote_literal(lex)::tsquery AS tq "
    "FROM unnest(%s::text[], %s::float8[]) AS u(lex, idf)) "
    "SELECT c.chunk_id, sum(q.idf * ts_rank(c.terms, q.tq, 1)) AS score "
    "FROM chunks c {join} JOIN q ON c.terms @@ q.tq "
    "WHERE c.terms @@ %s::tsquery AND {condition} "
    "GROUP BY c.chunk_key, c.chunk_id ORDER BY score DESC, c.chunk_key LIMIT %s"
)


def any_of(terms: list[str]) -> str:
    """A tsquery matching any of these lexemes, each quoted as one lexeme."""
    return " | ".join("'" + lex.replace("'", "''") + "'" for lex in terms)
