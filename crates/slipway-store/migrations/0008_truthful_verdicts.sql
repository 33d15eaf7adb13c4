-- Truthful verdicts: a pull request is validated merged onto its base (both commits kept),
-- the pipeline's source is recorded, and a step that passed only on a retry is flaky.

ALTER TABLE validations ADD COLUMN base_ref TEXT;
ALTER TABLE validations ADD COLUMN base_source TEXT;   -- where the base is fetched from
ALTER TABLE validations ADD COLUMN base_sha TEXT;
-- repository | project_settings | config_file | setup_trial, once checkout chose it.
ALTER TABLE validations ADD COLUMN pipeline_source TEXT;
-- "Save and run setup": run exactly the settings' setup commands.
ALTER TABLE validations ADD COLUMN setup_trial INTEGER NOT NULL DEFAULT 0;
-- slipway validate --config: the pipeline (JSON) used when the repository has none.
ALTER TABLE validations ADD COLUMN config_file TEXT;
ALTER TABLE validation_steps ADD COLUMN flaky INTEGER NOT NULL DEFAULT 0;
-- /metrics counts flaky steps on every scrape: only those rows are indexed.
CREATE INDEX validation_steps_flaky ON validation_steps (validation_id) WHERE flaky = 1;
