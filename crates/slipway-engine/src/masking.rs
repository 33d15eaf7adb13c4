//! Records as they are shown: every text a validation or a run carries (commands, details,
//! errors, an agent's words) masked with the project's secrets, as its
//! logs are. A secret written literally in `.slipway.toml` would otherwise be shown in the
//! command that holds it; masking on the way out also covers records stored before.

use crate::Engine;
use slipway_core::{Masker, ProjectId};
use slipway_store::{RunRecord, StoreError, ValidationRecord};

impl Engine {
    /// The masker of `project`'s output: its secrets and the model APIs' keys (the same as
    /// its validations' logs are masked with).
    pub async fn output_masker(&self, project: ProjectId) -> Result<Masker, StoreError> {
        let secrets = self.inner.store.secret_values(project).await?;
        let model_keys = self.inner.config.models.keys();
        Ok(Masker::new(
            (secrets.iter().map(|(_, v)| v.expose())).chain(model_keys.iter().map(String::as_str)),
        ))
    }

    /// `record` with every text masked ([`mask_validation`]).
    pub async fn masked_validation(
        &self,
        mut record: ValidationRecord,
    ) -> Result<ValidationRecord, StoreError> {
        let masker = self.output_masker(record.project_id).await?;
        mask_validation(&mut record, &masker);
        Ok(record)
    }

    /// `records` (of one project or several) with every text masked.
    pub async fn masked_validations(
        &self,
        records: Vec<ValidationRecord>,
    ) -> Result<Vec<ValidationRecord>, StoreError> {
        let mut maskers: Vec<(ProjectId, Masker)> = Vec::new();
        let mut masked = Vec::with_capacity(records.len());
        for mut record in records {
            let at = match maskers.iter().position(|(p, _)| *p == record.project_id) {
                Some(at) => at,
                None => {
                    let masker = self.output_masker(record.project_id).await?;
                    maskers.push((record.project_id, masker));
                    maskers.len() - 1
                }
            };
            mask_validation(&mut record, &maskers[at].1);
            masked.push(record);
        }
        Ok(masked)
    }

    /// `record` with every text masked ([`mask_run`]).
    pub async fn masked_run(&self, mut record: RunRecord) -> Result<RunRecord, StoreError> {
        let masker = self.output_masker(record.project_id).await?;
        mask_run(&mut record, &masker);
        Ok(record)
    }
}

fn mask_in(masker: &Masker, text: &mut String) {
    if let std::borrow::Cow::Owned(masked) = masker.mask(text) {
        *text = masked;
    }
}

fn mask_opt(masker: &Masker, text: &mut Option<String>) {
    if let Some(text) = text {
        mask_in(masker, text);
    }
}

/// Masks every text of a validation: its steps' commands and details, its error, who
/// started it, its commit's title and author, its branches.
pub fn mask_validation(record: &mut ValidationRecord, masker: &Masker) {
    for text in [
        &mut record.branch,
        &mut record.base_ref,
        &mut record.base_source,
        &mut record.commit_title,
        &mut record.commit_author,
        &mut record.started_by,
        &mut record.error,
    ] {
        mask_opt(masker, text);
    }
    mask_in(masker, &mut record.source);
    for step in &mut record.steps {
        mask_opt(masker, &mut step.command);
        mask_opt(masker, &mut step.detail);
    }
    // `config_file` is never shown (nor serialized): it is the pipeline the engine runs.
}

/// Masks every text of a run: its goal, requirements, prompt, the agent's words and output.
pub fn mask_run(record: &mut RunRecord, masker: &Masker) {
    use slipway_core::run::Response;
    for text in [&mut record.goal, &mut record.prompt] {
        mask_in(masker, text);
    }
    for text in [
        &mut record.requirements,
        &mut record.acceptance_criteria,
        &mut record.started_by,
        &mut record.output_tail,
        &mut record.note,
        &mut record.branch,
        &mut record.external_status,
    ] {
        mask_opt(masker, text);
    }
    match &mut record.response {
        Some(Response::Reply { text }) | Some(Response::Plan { text }) => mask_in(masker, text),
        Some(Response::PullRequest { .. }) | None => {}
    }
}

/// Masks every string in a JSON value.
pub fn mask_json(masker: &Masker, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => mask_in(masker, text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| mask_json(masker, v)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| mask_json(masker, v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
    use slipway_core::ValidationId;
    use slipway_store::StepRecord;

    const SECRET: &str = "hunter2-deploy-key-4711";

    #[test]
    fn every_text_of_a_validation_is_masked() {
        let mut record = ValidationRecord {
            id: ValidationId(1),
            project_id: ProjectId(1),
            source: "/repo".into(),
            branch: Some("main".into()),
            pr: None,
            sha: "a".repeat(40),
            base_ref: None,
            base_sha: None,
            base_source: None,
            pipeline_source: None,
            setup_trial: false,
            config_file: None,
            changes_checks: None,
            commit_title: Some(format!("use {SECRET}")),
            commit_author: None,
            started_by: None,
            status: ValidationStatus::Error,
            attempt: 1,
            error: Some(format!("test: {SECRET} refused")),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            steps: vec![StepRecord {
                index: 0,
                name: StepName::Test,
                status: StepStatus::Failed,
                command: Some(format!("curl -H 'key: {SECRET}' x")),
                exit_code: Some(1),
                detail: Some(format!("exit 1: {SECRET}")),
                started_at: None,
                finished_at: None,
                duration_ms: None,
                flaky: false,
            }],
        };
        assert!(serde_json::to_string(&record).unwrap().contains(SECRET));
        mask_validation(&mut record, &Masker::new([SECRET]));
        let shown = serde_json::to_string(&record).unwrap();
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("curl -H"), "the rest is kept: {shown}");
    }
}
