-- Tokens the models used for a project, per calendar month (UTC, 'YYYY-MM'): the judge, goal
-- browser checks and failure notes. The project's monthly budget is checked against it.
CREATE TABLE model_usage (
    project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, month)
);
