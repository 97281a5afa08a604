-- API keys of the gateway, version 2. Runs with search_path = <grounded schema>, public.
-- Only the SHA-256 of a secret is kept; prefix is its public start, shown in listings.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    secret_hash text NOT NULL,
    tenant      text NOT NULL,
    tier        text NOT NULL,
    name        text NOT NULL DEFAULT '',
    prefix      text NOT NULL,
    created_at  double precision NOT NULL,
    revoked_at  double precision
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);
