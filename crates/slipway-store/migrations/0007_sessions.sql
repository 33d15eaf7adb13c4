-- Dashboard sessions: a cookie names one; only its SHA-256 is stored. A session is as good
-- as the token it was opened with (revoking the token ends it).
CREATE TABLE sessions (
    id_hash    BLOB PRIMARY KEY,
    token_hash BLOB NOT NULL,
    csrf       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
