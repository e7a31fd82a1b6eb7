-- Durable background jobs (emails, later webhooks). A runner takes one row at
-- a time with FOR UPDATE SKIP LOCKED inside a transaction, so a crash
-- mid-job leaves the row pending for the next runner.
CREATE TABLE jobs (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('email', 'webhook')),
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 10,
    last_error  text,
    run_at      timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX jobs_pending_idx ON jobs (run_at) WHERE status = 'pending';
