-- Webhook deliveries, kept with their raw body before anything acts on them.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,          -- X-GitHub-Delivery
    event       TEXT NOT NULL,             -- X-GitHub-Event
    repository  TEXT,                      -- owner/name, when the payload names one
    payload     BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'processed', 'ignored', 'failed')),
    note        TEXT
);
