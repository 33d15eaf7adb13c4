-- Variables: a project's plain configuration, given to its commands as secrets are but
-- stored and shown as they are, never masked. A name is a secret or a variable, not both.
CREATE TABLE variables (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
);
