-- A dedupe key absorbs only a job that has not started yet (queued, never leased); a job
-- added while another of its key runs waits for it: at most one job per key runs at a time.
DROP INDEX jobs_dedupe;
CREATE UNIQUE INDEX jobs_dedupe_waiting ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state = 'queued' AND attempt = 0;
CREATE UNIQUE INDEX jobs_dedupe_running ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state = 'running';
-- The lease looks for an unfinished job of the same key.
CREATE INDEX jobs_unfinished_by_key ON jobs (dedupe_key, id)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
