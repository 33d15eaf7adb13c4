-- Agent runs: a goal handed to a coding agent, what it answered, its pull request.
CREATE TABLE agent_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id          INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    agent               TEXT NOT NULL CHECK (agent IN ('codegen', 'command')),
    goal                TEXT NOT NULL,
    requirements        TEXT,
    acceptance_criteria TEXT,
    prompt              TEXT NOT NULL,          -- the first prompt, for the conversation
    status              TEXT NOT NULL,
    response            TEXT,                   -- JSON: core::run::Response
    output_tail         TEXT,                   -- the agent's last output lines, masked
    note                TEXT,                   -- why it waits or why it stopped
    pr_number           INTEGER,
    pr_url              TEXT,
    branch              TEXT,
    agent_head_sha      TEXT,                   -- the last commit the agent pushed
    external_id         INTEGER,                -- Codegen's agent run id
    external_status     TEXT,                   -- Codegen's status, as it said it
    external_url        TEXT,
    external_started_at INTEGER,                -- for Codegen's creation rate limit
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX agent_runs_by_project ON agent_runs (project_id, id);
CREATE INDEX agent_runs_by_pull ON agent_runs (project_id, pr_number);

-- Every fix attempt of a run: the validation that failed, the evidence sent, the outcome.
CREATE TABLE fix_attempts (
    run_id        INTEGER NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    validation_id INTEGER NOT NULL,
    step          TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    outcome       TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (run_id, number)
);
