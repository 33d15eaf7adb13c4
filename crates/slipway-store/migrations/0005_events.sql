-- Events for live subscribers (DESIGN.md §5): numbered in order, kept for replay.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL,
    kind       TEXT NOT NULL,          -- pr_notification, …
    payload    TEXT NOT NULL,          -- JSON, in the shape of DESIGN.md §5
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_project ON events (project_id, id);
