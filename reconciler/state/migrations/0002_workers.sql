-- reconciler state schema, version 2: what `apply --workers` and `reconciler worker` share
-- (reconciler/workers/). The job queue itself is procrastinate's, in its own tables
-- (procrastinate_*), applied by reconciler/workers/queue.py and recorded in `queue_schema`.

-- Progress of a run spread over workers: each worker appends the executor's events, the
-- `apply --workers` that enqueued the run (run_id = its state lock id) reads them back and
-- shows them as a local run would. Deleted when the run ends.
CREATE TABLE reconciler.run_events (
    id      bigserial PRIMARY KEY,
    run_id  text NOT NULL,
    event   json NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_events_by_run ON reconciler.run_events (run_id, id);

-- One VNTANA login shared by every worker (a second login revokes the first token). `scope`
-- is derived from the personal access token with HKDF (so it names the key without revealing
-- it); `sealed` is the login (token, organization, role) encrypted with AES-256-GCM under
-- another HKDF key of the personal access token: useless to a database reader without it.
-- `generation` counts logins, so a worker whose token was refused renews it only if nobody
-- has since.
CREATE TABLE reconciler.api_sessions (
    scope       text PRIMARY KEY,
    generation  bigint NOT NULL,
    sealed      bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

-- A throttle seen by one worker slows all of them: the API's "not before" (server clock).
CREATE TABLE reconciler.api_throttle (
    scope       text PRIMARY KEY,
    not_before  timestamptz NOT NULL
);

-- The version of procrastinate whose schema the queue tables are at.
CREATE TABLE reconciler.queue_schema (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    version     text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
