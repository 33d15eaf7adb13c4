-- Several processes on one database: named leases (merge turns on SQLite, the webhook
-- processor, the pollers' intervals) and the registry of running processes.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,     -- stable across restarts: the owner of its job leases
    role         TEXT NOT NULL,        -- serve | worker
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
-- A restarting process finds the leases it held.
CREATE INDEX jobs_by_owner ON jobs (lease_owner) WHERE state = 'running';
