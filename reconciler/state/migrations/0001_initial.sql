-- reconciler state schema, version 1. Applied by reconciler/state/migrate.py in one transaction.
--
-- A database holds any number of states ("workspaces"), each a header row plus one row per
-- product. Every change is also appended to the history: one `versions` row per serial
-- (who, what operation, which lock, which saved plan) and one `changes` row per product the
-- serial changed (the record as written, NULL when it was forgotten), so any serial can be
-- rebuilt and audited.
--
-- Records are `json`, not `jsonb`: json keeps the text byte for byte as written (jsonb would
-- reorder the keys of a spec, so `state pull` would no longer print what the file store
-- writes), and it costs no conversion on the way in or out. `->>` still works for audits.

CREATE TABLE reconciler.workspaces (
    id             serial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    format_version integer NOT NULL,           -- the State model's FORMAT_VERSION that wrote it
    lineage        text NOT NULL DEFAULT '',   -- '' until the first write fixes it
    serial         bigint NOT NULL DEFAULT 0,  -- +1 per checkpoint or write
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconciler.products (
    workspace_id integer NOT NULL REFERENCES reconciler.workspaces (id) ON DELETE CASCADE,
    uuid         text NOT NULL,
    serial       bigint NOT NULL,   -- the serial that last changed this row
    digest       text NOT NULL,     -- sha256 of the record's JSON as written: a full write skips equal rows
    record       json NOT NULL,     -- a ProductRecord, exactly as the JSON file would hold it
    status       text GENERATED ALWAYS AS (record ->> 'status') STORED,
    PRIMARY KEY (workspace_id, uuid)
);

CREATE TABLE reconciler.versions (
    id           bigserial PRIMARY KEY,  -- history order (a forced migrate may reuse a serial)
    workspace_id integer NOT NULL REFERENCES reconciler.workspaces (id) ON DELETE CASCADE,
    lineage      text NOT NULL,
    serial       bigint NOT NULL,
    operation    text NOT NULL,          -- apply, import, refresh, state rm, state migrate, ...
    who          text NOT NULL,          -- the OS user of the writing process
    host         text NOT NULL,
    pid          integer NOT NULL,
    lock_id      text,                   -- the lock it wrote under (workers share their holder's)
    plan         text,                   -- the saved plan applied: file name and sha256
    db_user      text NOT NULL DEFAULT current_user,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX versions_by_serial ON reconciler.versions (workspace_id, lineage, serial);

CREATE TABLE reconciler.changes (
    version_id bigint NOT NULL REFERENCES reconciler.versions (id) ON DELETE CASCADE,
    uuid       text NOT NULL,
    record     json,                     -- NULL: the product was forgotten at this serial
    status     text GENERATED ALWAYS AS (record ->> 'status') STORED,
    PRIMARY KEY (version_id, uuid)
);
CREATE INDEX changes_by_product ON reconciler.changes (uuid, version_id);

-- One row per workspace. The writer lock is a session-level advisory lock on (LOCK_CLASS, key):
-- the server drops it when the holder's session ends, however the holder died. The row says
-- who holds it, for a waiting process. force-unlock moves `key` to a fresh value, which frees
-- the lock for everyone else at once (the old holder keeps an advisory lock nobody asks for),
-- and clears `id`, which fences the old holder: every checkpoint checks `id` in its own
-- transaction and is refused once it changed.
CREATE SEQUENCE reconciler.lock_keys AS integer;
CREATE TABLE reconciler.locks (
    workspace_id integer PRIMARY KEY REFERENCES reconciler.workspaces (id) ON DELETE CASCADE,
    key          integer NOT NULL DEFAULT nextval('reconciler.lock_keys'),
    id           text,                   -- NULL: free
    operation    text,
    who          text,
    host         text,
    pid          integer,
    backend_pid  integer,                -- the holder's session, as pg_stat_activity shows it
    plan         text,
    since        timestamptz
);
