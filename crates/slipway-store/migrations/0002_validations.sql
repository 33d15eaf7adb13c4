-- The durable job queue, validations with their steps, and their log lines.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    dedupe_key       TEXT,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempt          INTEGER NOT NULL DEFAULT 0,   -- also the fencing token of a lease
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- One unfinished job per dedupe key.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_ready ON jobs (state, run_at);

CREATE TABLE validations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    source           TEXT NOT NULL,       -- where the commit is fetched from
    branch           TEXT,
    pr_number        INTEGER,
    sha              TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX validations_by_project ON validations (project_id, id);

CREATE TABLE validation_steps (
    validation_id INTEGER NOT NULL REFERENCES validations (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    command       TEXT,
    exit_code     INTEGER,
    detail        TEXT,
    started_at    INTEGER,
    finished_at   INTEGER,
    PRIMARY KEY (validation_id, idx)
);

-- Every line has passed through the Masker before it is written here.
CREATE TABLE validation_logs (
    validation_id INTEGER NOT NULL REFERENCES validations (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    step          TEXT NOT NULL,
    line          TEXT NOT NULL,
    PRIMARY KEY (validation_id, seq)
);

-- Process groups started for a validation, so a restart can kill what a crash left behind.
CREATE TABLE sandbox_processes (
    validation_id INTEGER NOT NULL,
    pgid          INTEGER NOT NULL,
    PRIMARY KEY (validation_id, pgid)
);
