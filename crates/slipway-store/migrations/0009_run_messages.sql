-- The conversation of an agent run: each answer of the agent and each person's reply, in order.
CREATE TABLE run_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    who        TEXT NOT NULL CHECK (who IN ('agent', 'person')),
    -- reply | plan | pull_request (the agent's); continue | confirm | modify (a person's)
    kind       TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX run_messages_by_run ON run_messages (run_id, id);
