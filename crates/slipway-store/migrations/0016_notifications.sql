-- Notification targets: where a project's events are sent (Slack incoming webhooks, or any
-- endpoint signed per Standard Webhooks). The URL (a Slack URL is a credential) and the
-- signing secret are sealed by the vault (nonce || ciphertext). Times are Unix ms; the
-- delivery columns say how the target is doing: a target failing since `failing_since` for the
-- documented number of days is disabled (`enabled` = 0, `disabled_at` set). Portable SQL:
-- the jobs that deliver live in `jobs` (kind 'notification').
CREATE TABLE notification_targets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    url_sealed      BLOB NOT NULL,
    url_shown       TEXT NOT NULL,
    secret_sealed   BLOB,
    events          TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    failing_since   INTEGER,
    last_error      TEXT,
    disabled_at     INTEGER
);
CREATE INDEX notification_targets_project ON notification_targets (project_id);
