-- Pull requests of the local forge (GitHub keeps its own).
CREATE TABLE pull_requests (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number     INTEGER NOT NULL,
    title      TEXT NOT NULL,
    head       TEXT NOT NULL,               -- branch
    base       TEXT NOT NULL,               -- branch
    head_sha   TEXT NOT NULL,               -- the head commit last seen
    state      TEXT NOT NULL CHECK (state IN ('open', 'merged', 'closed')),
    merge_sha  TEXT,
    note       TEXT,                        -- why it is not merged (conflicts, failed checks)
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, number)
);
