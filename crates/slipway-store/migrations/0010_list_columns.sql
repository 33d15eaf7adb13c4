-- What a CI-like list shows of a validation: its head commit's title and author (read at
-- checkout) and who or what started it; lists filtered by status or branch.
ALTER TABLE validations ADD COLUMN commit_title TEXT;
ALTER TABLE validations ADD COLUMN commit_author TEXT;
ALTER TABLE validations ADD COLUMN started_by TEXT;
CREATE INDEX validations_by_status ON validations (project_id, status, id);
CREATE INDEX validations_by_branch ON validations (project_id, branch, id);
-- Who started an agent run (a token's name), for the runs list.
ALTER TABLE agent_runs ADD COLUMN started_by TEXT;
