-- PostgreSQL store, version 1. Runs with search_path = <grounded schema>, public.
-- The vector column gets its dimension, and its HNSW index, when an embedder is bound.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE documents (
    doc_key      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id       text NOT NULL UNIQUE,
    collection   text NOT NULL,
    source       text NOT NULL,
    uri          text NOT NULL,
    title        text NOT NULL,
    format       text NOT NULL,
    content_hash text NOT NULL,
    ingested_at  double precision NOT NULL,
    chunk_count  integer NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    minhash      bytea,
    UNIQUE (collection, source)
);
CREATE INDEX documents_metadata ON documents USING gin (metadata jsonb_path_ops);

CREATE TABLE chunks (
    chunk_key    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id     text NOT NULL UNIQUE,
    doc_key      bigint NOT NULL REFERENCES documents (doc_key) ON DELETE CASCADE,
    collection   text NOT NULL,               -- copied from the document: filtered ANN scans
    ordinal      integer NOT NULL,
    body         text NOT NULL,
    section      jsonb NOT NULL,              -- array of headings
    heading_path text NOT NULL,               -- the same headings joined, for keyword search
    start_char   integer NOT NULL,
    end_char     integer NOT NULL,
    token_count  integer NOT NULL,
    content_hash text NOT NULL,
    embedding    vector NOT NULL,             -- unit length
    duplicate_of text,                        -- set: kept out of both searches
    terms        tsvector GENERATED ALWAYS AS (
        to_tsvector('english'::regconfig, heading_path || E'\n' || body)
    ) STORED
);
CREATE INDEX chunks_by_doc ON chunks (doc_key);
CREATE INDEX chunks_by_hash ON chunks (content_hash);
CREATE INDEX chunks_by_duplicate ON chunks (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX chunks_terms ON chunks USING gin (terms) WHERE duplicate_of IS NULL;

CREATE TABLE duplicates (
    collection   text NOT NULL,
    source       text NOT NULL,
    duplicate_of text NOT NULL,
    kind         text NOT NULL,
    detected_at  double precision NOT NULL,
    PRIMARY KEY (collection, source)
);
