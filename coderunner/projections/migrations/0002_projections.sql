-- Read models folded from the events (coderunner/projections/fold.py), the position each
-- projection reached per topic-partition (written in the same transaction as the rows), an
-- append-only archive of every applied event, and the poison events the projector parked.
-- No surrogate ids and no projection-time timestamps in the four read-model tables: a rebuild
-- must give back byte-identical rows (see `coderunner projections checksum`).

CREATE TABLE IF NOT EXISTS executions (
    execution_id        text PRIMARY KEY,
    status              text    NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'rejected', 'cancelled')),
    attempt             integer NOT NULL,  -- 0 until a worker starts attempt 1
    last_seq            integer NOT NULL,  -- highest seq applied of `attempt` (duplicates)
    language            text,
    language_version    text,
    submission_event_id text,              -- null while only worker events were projected
    client              text,
    source              text,
    stdin               text,
    extra_files         jsonb,
    compiler_options    jsonb,
    args                jsonb,
    test_cases          jsonb,
    requested_limits    jsonb,
    comparison          text,
    submitted_at        timestamptz,
    started_at          timestamptz,       -- ExecutionAccepted of the current attempt
    completed_at        timestamptz,       -- its terminal event
    verdict             text,
    message             text,
    reject_field        text,
    exit_code           integer,
    signal              integer,
    tests_passed        integer,
    tests_total         integer,
    duration_us         bigint,
    compile_time_us     bigint,
    run_time_us         bigint,
    peak_memory_kb      bigint,
    image               text,
    image_digest        text,
    worker              text,
    limits              jsonb,
    compile_limits      jsonb
);
CREATE INDEX IF NOT EXISTS executions_status_idx ON executions (status);
CREATE INDEX IF NOT EXISTS executions_submitted_at_idx ON executions (submitted_at);

-- Rows of the current attempt only: a newer attempt deletes an older one's rows.
CREATE TABLE IF NOT EXISTS execution_steps (
    execution_id text    NOT NULL,
    attempt      integer NOT NULL,
    step         text    NOT NULL,
    seq          integer,
    status       text    NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    started_at   timestamptz,
    completed_at timestamptz,
    duration_us  bigint,
    exit_code    integer,
    signal       integer,
    message      text,
    PRIMARY KEY (execution_id, attempt, step)
);

CREATE TABLE IF NOT EXISTS execution_logs (
    execution_id text        NOT NULL,
    attempt      integer     NOT NULL,
    chunk_index  integer     NOT NULL,
    seq          integer     NOT NULL,
    step         text        NOT NULL,
    stream       text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    content      text        NOT NULL,
    truncated    boolean     NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (execution_id, attempt, chunk_index)
);

CREATE TABLE IF NOT EXISTS test_results (
    execution_id     text        NOT NULL,
    attempt          integer     NOT NULL,
    test_index       integer     NOT NULL,
    seq              integer     NOT NULL,
    name             text,
    verdict          text        NOT NULL,
    input            text        NOT NULL,  -- each text bounded to 16 KiB by the event contract
    expected_output  text        NOT NULL,
    actual_output    text        NOT NULL,
    output_truncated boolean     NOT NULL,
    exit_code        integer,
    signal           integer,
    time_ms          integer     NOT NULL,
    peak_memory_kb   bigint,
    occurred_at      timestamptz NOT NULL,
    PRIMARY KEY (execution_id, attempt, test_index)
);

-- Next offset to apply, per projection and topic-partition: events below it are already in.
CREATE TABLE IF NOT EXISTS projection_positions (
    projection  text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);

-- Append-only: a rebuild replays it when the broker's retention has dropped old events.
CREATE TABLE IF NOT EXISTS events (
    event_id         text PRIMARY KEY,
    execution_id     text        NOT NULL,
    attempt          integer     NOT NULL,
    seq              integer     NOT NULL,
    event_type       text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    payload          bytea       NOT NULL,  -- the message value exactly as received
    archived_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS events_position_idx
    ON events (source_topic, source_partition, source_offset);
CREATE INDEX IF NOT EXISTS events_execution_idx ON events (execution_id, attempt, seq);

-- Poison events: undecodable, or breaking an invariant of the contract.
CREATE TABLE IF NOT EXISTS projection_deadletters (
    projection       text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    key              bytea,
    payload          bytea,
    reason           text        NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, source_topic, source_partition, source_offset)
);
