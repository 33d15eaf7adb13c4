-- Webhook deliveries, kept with their raw body before anything acts on them. The table is
-- also their queue: pending rows are processed in arrival order.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     TEXT NOT NULL UNIQUE,      -- X-GitHub-Delivery
    event           TEXT NOT NULL,             -- X-GitHub-Event
    repository      TEXT,                      -- owner/name, when the payload names one
    payload         BLOB NOT NULL,         -- LZ4 block, uncompressed size prepended
    received_at     INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'processed', 'ignored', 'failed')),
    note            TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0
);
-- Pending rows in arrival order: the processor reads them oldest first.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (seq) WHERE state = 'pending';
