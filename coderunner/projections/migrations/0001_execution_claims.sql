-- Which worker attempt owns each execution. The execution id is the idempotency key: a second
-- submission with the same id runs nothing, and a redelivered submission whose attempt never
-- finished (the worker died) runs again as the next attempt.
CREATE TABLE IF NOT EXISTS execution_claims (
    execution_id        text PRIMARY KEY,
    submission_event_id text        NOT NULL,
    attempt             integer     NOT NULL,
    state               text        NOT NULL CHECK (state IN ('running', 'finished')),
    worker              text        NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
