-- Whether a pull request's merge changes the pipeline file relative to its base, as
-- checkout read it from git (NULL: not known, e.g. not a pull request).
ALTER TABLE validations ADD COLUMN changes_checks INTEGER;
