-- Embedded store schema, version 1. SQLite is the source of truth; the vector index file
-- is derived from `chunks.vector` and the `ann_log` and can always be rebuilt.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS documents (
    doc_key      INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id       TEXT NOT NULL UNIQUE,
    collection   TEXT NOT NULL,
    source       TEXT NOT NULL,
    uri          TEXT NOT NULL,
    title        TEXT NOT NULL,
    format       TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    ingested_at  REAL NOT NULL,
    chunk_count  INTEGER NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    minhash      BLOB,
    UNIQUE (collection, source)
);

CREATE TABLE IF NOT EXISTS chunks (
    chunk_key    INTEGER PRIMARY KEY AUTOINCREMENT,  -- the vector index key; never reused
    chunk_id     TEXT NOT NULL UNIQUE,
    doc_key      INTEGER NOT NULL REFERENCES documents (doc_key) ON DELETE CASCADE,
    ordinal      INTEGER NOT NULL,
    text         TEXT NOT NULL,
    section      TEXT NOT NULL,                      -- JSON array of headings
    start_char   INTEGER NOT NULL,
    end_char     INTEGER NOT NULL,
    token_count  INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    vector       BLOB NOT NULL,                      -- float32, unit length
    duplicate_of TEXT                                -- set: kept out of both indexes
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (doc_key);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks (content_hash);
CREATE INDEX IF NOT EXISTS chunks_by_duplicate ON chunks (duplicate_of) WHERE duplicate_of IS NOT NULL;

CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    body, tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Every change to the set of indexed vectors, in commit order; a vector index snapshot
-- records the last sequence number it contains and replays the rest on open.
CREATE TABLE IF NOT EXISTS ann_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_key INTEGER NOT NULL,
    op        INTEGER NOT NULL  -- +1 added, -1 removed
);

CREATE TABLE IF NOT EXISTS duplicates (
    collection   TEXT NOT NULL,
    source       TEXT NOT NULL,
    duplicate_of TEXT NOT NULL,
    kind         TEXT NOT NULL,
    detected_at  REAL NOT NULL,
    PRIMARY KEY (collection, source)
);
