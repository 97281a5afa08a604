-- Thumbs up/down on answers, version 3. Runs with search_path = <grounded schema>, public.
CREATE TABLE feedback (
    id          bigserial PRIMARY KEY,
    tenant      text NOT NULL,
    answer_id   text NOT NULL,
    rating      text NOT NULL CHECK (rating IN ('up', 'down')),
    comment     text,
    created_at  double precision NOT NULL
);
CREATE INDEX feedback_by_tenant ON feedback (tenant, id);
