//! The judge step: a model judges the change against the goal of the run that asked for it,
//! on the evidence of the earlier steps and the diff. The diff and the head's message are
//! read before any of the pull request's code runs (git never touches the workspace after);
//! everything the model sees is masked first. Its answer, tokens and cost go to the step's
//! log and detail and to the `judge.json` artifact.

use super::{Attempt, PipelineResult, StepEnd};
use slipway_core::judge::{criteria_lines, JudgeMode, JudgeSection};
use slipway_core::pipeline::PipelineConfig;
use slipway_core::settings::ModelBudget;
use slipway_core::validation::{StepName, StepStatus};
use slipway_judge::judge::{fit_diff, judge, Judgement, Outcome};
use slipway_judge::prompt::{JudgeInput, StepEvidence};
use slipway_judge::AnyModel;

/// Log lines of each earlier step the judge sees.
const TAIL_LINES: usize = 40;
/// Longest log line the judge sees.
const MAX_LINE: usize = 400;
/// What the judge may read of a diff before it is trimmed to the budget.
const MAX_RAW_DIFF: usize = 16 * 1024 * 1024;
/// The head commit's message read for the judge.
const MAX_MESSAGE: usize = 64 * 1024;

/// What the judge reads from git while the checkout is still git's own.
pub(super) struct JudgeSource {
    pub title: Option<String>,
    pub body: Option<String>,
    pub diff: Result<String, String>,
}

impl Attempt<'_> {
    /// Before any code runs: refuses a `[judge]` or a goal check with no model (the validation ends in
    /// `error`, naming what to set; `false`); when a model will read the change (the judge,
    /// or the failure analysis), reads the diff and the pull request's description (else the
    /// head's message).
    pub(super) async fn prepare_judge(&mut self, config: &PipelineConfig) -> PipelineResult<bool> {
        let models = &self.inner.config.models;
        let goal_check = (config.ui.iter())
            .flat_map(|ui| &ui.checks)
            .find(|check| check.goal.is_some());
        if let (Some(check), false) = (goal_check, models.any()) {
            let why = format!(
                "refused: the browser check '{}' has a goal, which needs a model: set \
                 GEMINI_API_KEY (Gemini) or SLIPWAY_LLM_URL and SLIPWAY_LLM_MODEL (an \
                 OpenAI-compatible server)",
                check.name
            );
            self.end(StepName::Ui, StepEnd::Error(why)).await?;
            return Ok(false);
        }
        if let Some(section) = &config.judge {
            if let Err(why) = models.pick(section.provider, section.model.as_deref()) {
                self.end(StepName::Judge, StepEnd::Error(format!("refused: {why}")))
                    .await?;
                return Ok(false);
            }
        } else if !models.any() {
            return Ok(true);
        }
        self.logs.keep_recent(TAIL_LINES);
        let (workspace, sha) = (self.workspace.clone(), self.record.sha.clone());
        let message = self
            .git
            .run_capped(
                Some(&workspace),
                &["log", "-1", "--format=%B", &sha],
                MAX_MESSAGE,
            )
            .await
            .ok()
            .map(|(message, _)| message);
        let message = message.as_deref().map(str::trim);
        let (title, body) = match (self.pull_words().await, message) {
            // A pull request's own description; without one, the head's message.
            (Some((title, body)), _) if !body.trim().is_empty() => (Some(title), Some(body)),
            (Some((title, _)), message) => (Some(title), message.map(str::to_owned)),
            (None, Some(message)) => match message.split_once('\n') {
                Some((title, body)) => (Some(title.to_owned()), Some(body.trim().to_owned())),
                None => (Some(message.to_owned()), None),
            },
            (None, None) => (None, None),
        };
        let diff = match self.diff_base().await {
            // Read at most MAX_RAW_DIFF bytes: git is stopped there, never held whole.
            Some(base) => self
                .git
                .run_capped(
                    Some(&workspace),
                    &[
                        "diff",
                        "--no-color",
                        "--no-ext-diff",
                        "--find-renames",
                        &base,
                        "HEAD",
                    ],
                    MAX_RAW_DIFF,
                )
                .await
                .map(|(diff, _)| diff)
                .map_err(|e| format!("the diff could not be read: {e}")),
            None => Err("the head has no base or parent to compare with".into()),
        };
        self.judge_source = Some(JudgeSource { title, body, diff });
        Ok(true)
    }

    /// The pull request's title and description as its forge has them (a local pull
    /// request keeps no description: empty).
    async fn pull_words(&self) -> Option<(String, String)> {
        use slipway_forge::Forge as _;
        let number = self.record.pr?;
        match &self.project.location {
            slipway_core::RepoLocation::Local { .. } => {
                let store = &self.inner.store;
                let pull = store.pull_request(self.project.id, number).await.ok()?;
                Some((pull.title, String::new()))
            }
            slipway_core::RepoLocation::GitHub { .. } => {
                let github = self.inner.config.github.as_ref()?;
                let repo = github.repo(&self.project.location.github()?);
                let pull = repo.pull(number).await.ok()?;
                Some((pull.title, pull.body))
            }
            slipway_core::RepoLocation::Url { .. } => None,
        }
    }

    /// What the change is compared with: a pull request's base head, else where the branch
    /// left the default branch, else the head's parent.
    async fn diff_base(&self) -> Option<String> {
        if let Some(base) = &self.record.base_sha {
            return Some(base.clone());
        }
        let ws = Some(self.workspace.as_path());
        let default = format!("origin/{}", self.project.default_branch);
        let head = self.git.run(ws, &["rev-parse", "HEAD"]).await.ok()?;
        if let Ok(fork) = self.git.run(ws, &["merge-base", &default, "HEAD"]).await {
            if fork != head {
                return Some(fork);
            }
        }
        self.git.run(ws, &["rev-parse", "HEAD^"]).await.ok()
    }

    pub(super) async fn judge(&mut self, section: &JudgeSection) -> PipelineResult<StepEnd> {
        let config =
            match (self.inner.config.models).pick(section.provider, section.model.as_deref()) {
                Ok(config) => config,
                Err(why) => return Ok(StepEnd::Error(why)),
            };
        let model = AnyModel::new(config);
        if let Err(note) = self.model_budget().await? {
            return Ok(match section.mode {
                JudgeMode::Blocking => StepEnd::Error(format!("no judgement: {note}")),
                JudgeMode::Advisory => StepEnd::Skipped(format!("not judged: {note}")),
            });
        }
        let input = self.judge_input(section).await?;
        self.logs.line(
            StepName::Judge,
            &format!(
                "asking {} (input trimmed to {} tokens)",
                slipway_judge::Model::name(&model),
                section.input_tokens()
            ),
        );
        let cache = self.inner.config.data_dir.join("judgements");
        let judgement = tokio::select! {
            judgement = judge(&model, section, &input, Some(&cache)) => judgement,
            _ = self.cancel.cancelled() => return Ok(StepEnd::Cancelled),
        };
        if !judgement.cached {
            self.spend_model_tokens(judgement.usage).await;
        }
        for line in report_lines(&judgement) {
            self.logs.line(StepName::Judge, &line);
        }
        self.keep_judgement(&judgement).await;
        let usage = usage_text(&judgement);
        Ok(match judgement.outcome {
            Outcome::Passed(why) => StepEnd::Passed(Some(format!("{why}; {usage}"))),
            Outcome::Failed(why) => StepEnd::Failed {
                exit_code: None,
                detail: format!("{why}; {usage}"),
                retryable: false,
            },
            Outcome::Error(why) => StepEnd::Error(format!("{why}; {usage}")),
        })
    }

    /// Whether the project's monthly model budget allows a call: `Err` is the note saying it
    /// is spent.
    pub(super) async fn model_budget(&self) -> PipelineResult<Result<(), String>> {
        let project = self.record.project_id;
        let settings = self.inner.store.settings(project).await?;
        let used = self.inner.store.model_usage(project).await?.total();
        Ok(match settings.model_budget(used) {
            ModelBudget::Open => Ok(()),
            ModelBudget::Spent(note) => Err(note),
        })
    }

    /// Adds a call's tokens to the project's month. A failed write is logged, not the step's.
    pub(super) async fn spend_model_tokens(&self, usage: slipway_judge::Usage) {
        let (input, output) = (usage.input_tokens, usage.output_tokens);
        if input + output == 0 {
            return;
        }
        let store = &self.inner.store;
        if let Err(error) = store
            .record_model_usage(self.record.project_id, input, output)
            .await
        {
            tracing::warn!(%error, "the model's tokens were not recorded");
        }
    }

    /// The run's goal and criteria, the change's words, the earlier steps, the diff: masked.
    async fn judge_input(&self, section: &JudgeSection) -> PipelineResult<JudgeInput> {
        let mask = |text: &str| self.logs.mask(text);
        let store = &self.inner.store;
        let run = match self.record.pr {
            Some(number) => {
                store
                    .newest_run_of_pull_request(self.record.project_id, number)
                    .await?
            }
            None => None,
        };
        let unread = JudgeSource {
            title: None,
            body: None,
            diff: Err("not read".into()),
        };
        let source = self.judge_source.as_ref().unwrap_or(&unread);
        let record = store.validation(self.id()).await?;
        let steps = record
            .steps
            .iter()
            .filter(|s| !matches!(s.name, StepName::Judge | StepName::Merge))
            .filter(|s| s.status != StepStatus::Skipped || s.name == StepName::Checkout)
            .map(|s| StepEvidence {
                name: s.name.to_string(),
                status: s.status.to_string(),
                detail: s.detail.as_deref().map(mask),
                log_tail: self
                    .logs
                    .recent(s.name)
                    .into_iter()
                    .map(|line| line.chars().take(MAX_LINE).collect())
                    .collect(),
            })
            .collect();
        let mut input = JudgeInput {
            goal: run.as_ref().map(|r| mask(&r.goal)),
            requirements: run
                .as_ref()
                .and_then(|r| r.requirements.as_deref())
                .map(mask),
            criteria: run
                .as_ref()
                .and_then(|r| r.acceptance_criteria.as_deref())
                .map(|c| criteria_lines(&mask(c)))
                .unwrap_or_default(),
            title: source.title.as_deref().map(mask),
            body: source.body.as_deref().map(mask),
            diff: None,
            no_diff: None,
            steps,
        };
        match &source.diff {
            Ok(diff) => {
                let diff = mask(diff);
                fit_diff(&mut input, &diff, section);
            }
            Err(why) => input.no_diff = Some(why.clone()),
        }
        Ok(input)
    }

    /// `judge.json` among the validation's artifacts, masked.
    async fn keep_judgement(&self, judgement: &Judgement) {
        let dir = self.artifacts_dir();
        let json = serde_json::to_string_pretty(judgement).expect("a judgement serializes");
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(dir.join(crate::evidence::JUDGE), self.logs.mask(&json)).await
        };
        if let Err(error) = written.await {
            tracing::warn!(%error, "the judgement's evidence was not stored");
        }
    }
}

fn usage_text(judgement: &Judgement) -> String {
    let usage = &judgement.usage;
    let cost = usage
        .cost_usd
        .map(|c| format!(", ${c:.4}"))
        .unwrap_or_default();
    format!(
        "{}: {} input + {} output tokens{cost}",
        judgement.model, usage.input_tokens, usage.output_tokens
    )
}

/// The judgement as the step's log shows it.
fn report_lines(judgement: &Judgement) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(answer) = &judgement.answer {
        lines.push(format!(
            "verdict: {}, score {}/100",
            format!("{:?}", answer.verdict).to_lowercase(),
            answer.score
        ));
        for c in &answer.criteria {
            let mark = if c.met { "met" } else { "NOT met" };
            lines.push(format!("  [{mark}] {}: {}", c.criterion, c.evidence));
        }
        for concern in &answer.concerns {
            lines.push(format!("  concern: {concern}"));
        }
    }
    if !judgement.left_out.is_empty() {
        lines.push(format!(
            "not shown to the judge: {}",
            judgement.left_out.join(", ")
        ));
    }
    for line in &judgement.summarised {
        lines.push(format!("summarised for the judge: {line}"));
    }
    lines.push(match judgement.cached {
        true => format!(
            "{} (the answer given for this same input before: no call made)",
            usage_text(judgement)
        ),
        false => format!("{} ({} call(s))", usage_text(judgement), judgement.calls),
    });
    lines
}
