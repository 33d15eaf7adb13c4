//! A project's settings: the dashboard's four tabs plus the switches.

use crate::pipeline::{MergeMethod, PipelineConfig, MAX_FIX_ATTEMPTS};
use crate::project::validate_branch;
use crate::Invalid;
use serde::{Deserialize, Serialize};

const MAX_TEXT_LEN: usize = 20_000;
/// The largest monthly token budget a project may set.
pub const MAX_MODEL_TOKENS_PER_MONTH: u64 = 1_000_000_000_000;

/// Whether a project's models may be called, given what they used this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelBudget {
    Open,
    /// Spent: the note says so and how to change it.
    Spent(String),
}

impl Settings {
    /// The budget's state after `used` tokens this month.
    pub fn model_budget(&self, used: u64) -> ModelBudget {
        match self.model_tokens_per_month {
            0 => ModelBudget::Open,
            budget if used < budget => ModelBudget::Open,
            budget => ModelBudget::Spent(format!(
                "the project's monthly model budget is spent ({used} of {budget} tokens used \
                 this month); no model is called until next month, or raise \
                 model_tokens_per_month in the project's settings"
            )),
        }
    }
}

/// Every setting of a project. A `PUT` replaces the whole document; absent fields take defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Rules the agent must follow in this repository (the "Repository rules" tab).
    pub repository_rules: String,
    /// Commands that prepare a workspace, and the branch to try them on.
    pub setup_commands: SetupCommands,
    /// Prepended to every goal (the "Planning statement" tab).
    pub planning_statement: String,
    /// Confirm an agent's plan without asking.
    pub auto_confirm_plan: bool,
    /// Merge a pull request once it passes validation.
    pub auto_merge: bool,
    pub merge_method: MergeMethod,
    /// How many times the agent may try to fix its own pull request.
    pub max_fix_attempts: u32,
    /// Validate draft pull requests too.
    pub validate_drafts: bool,
    /// Delete the pull request's branch after merging it.
    pub delete_branch_after_merge: bool,
    /// Approving reviews a GitHub pull request needs before it is merged.
    pub required_approvals: u32,
    /// Which coding agent works on this project.
    pub agent: AgentConfig,
    /// How long one turn of the agent may take before it is stopped.
    pub agent_timeout_secs: u64,
    /// Agent runs of this project that may be unfinished at once; more are refused (429).
    pub max_concurrent_runs: u32,
    /// Agent runs that may start in any hour; more are refused (429).
    pub max_runs_per_hour: u32,
    /// The pipeline used when the repository has no `.slipway.toml`.
    pub pipeline: PipelineConfig,
    /// Tokens (input and output) the models may use for this project in a calendar month
    /// (UTC); 0 is no limit. When spent, no model is called until the next month.
    pub model_tokens_per_month: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            repository_rules: String::new(),
            setup_commands: SetupCommands::default(),
            planning_statement: String::new(),
            auto_confirm_plan: false,
            auto_merge: false,
            merge_method: MergeMethod::default(),
            max_fix_attempts: 3,
            validate_drafts: false,
            delete_branch_after_merge: false,
            required_approvals: 0,
            agent: AgentConfig::Codegen {
                model: None,
                repo_id: None,
                plan_mode: false,
            },
            agent_timeout_secs: 3_600,
            max_concurrent_runs: 3,
            max_runs_per_hour: 30,
            pipeline: PipelineConfig::default(),
            model_tokens_per_month: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SetupCommands {
    /// The branch the commands are tried on; the project's default branch when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub commands: Vec<String>,
}

/// The coding agent of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentConfig {
    /// The Codegen API.
    Codegen {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repo_id: Option<i64>,
        /// Its first answer is a plan to confirm or modify.
        #[serde(default)]
        plan_mode: bool,
    },
    /// A local coding CLI, given the prompt on stdin.
    Command {
        command: String,
        #[serde(default)]
        plan_mode: bool,
        /// The CLI has Slipway's MCP server (`slipway mcp`) in its MCP configuration: its
        /// prompts ask it to validate its work with the `validate` tool before it finishes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        slipway_mcp: bool,
    },
}

impl Settings {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, text) in [
            ("repository_rules", &self.repository_rules),
            ("planning_statement", &self.planning_statement),
        ] {
            if text.chars().count() > MAX_TEXT_LEN {
                return Err(Invalid::new(
                    field,
                    format!("is longer than {MAX_TEXT_LEN} characters; shorten it"),
                ));
            }
        }
        if let Some(branch) = &self.setup_commands.branch {
            validate_branch("setup_commands.branch", branch)?;
        }
        if self
            .setup_commands
            .commands
            .iter()
            .any(|c| c.trim().is_empty())
        {
            return Err(Invalid::new(
                "setup_commands.commands",
                "contains an empty command; remove it",
            ));
        }
        if self.max_fix_attempts > MAX_FIX_ATTEMPTS {
            return Err(Invalid::new(
                "max_fix_attempts",
                format!(
                    "{} is out of range; accepted: 0 to {MAX_FIX_ATTEMPTS}",
                    self.max_fix_attempts
                ),
            ));
        }
        for (field, value, max) in [
            ("agent_timeout_secs", self.agent_timeout_secs, 86_400),
            (
                "max_concurrent_runs",
                u64::from(self.max_concurrent_runs),
                100,
            ),
            (
                "max_runs_per_hour",
                u64::from(self.max_runs_per_hour),
                10_000,
            ),
        ] {
            if value == 0 || value > max {
                return Err(Invalid::new(
                    field,
                    format!("{value} is out of range; accepted: 1 to {max}"),
                ));
            }
        }
        if self.model_tokens_per_month > MAX_MODEL_TOKENS_PER_MONTH {
            return Err(Invalid::new(
                "model_tokens_per_month",
                format!(
                    "{} is out of range; accepted: 0 (no limit) to {MAX_MODEL_TOKENS_PER_MONTH}",
                    self.model_tokens_per_month
                ),
            ));
        }
        if self.required_approvals > 20 {
            return Err(Invalid::new(
                "required_approvals",
                format!(
                    "{} is out of range; accepted: 0 to 20",
                    self.required_approvals
                ),
            ));
        }
        if let AgentConfig::Command { command, .. } = &self.agent {
            if command.trim().is_empty() {
                return Err(Invalid::new(
                    "agent.command",
                    "is empty; give the command line of a coding CLI, e.g. 'claude -p'",
                ));
            }
        }
        self.pipeline.validate().map_err(|e| e.within("pipeline"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_model_budget_is_spent_at_its_figure_and_zero_is_no_limit() {
        let mut settings = Settings::default();
        assert_eq!(settings.model_budget(u64::MAX), ModelBudget::Open);
        settings.model_tokens_per_month = 1_000;
        assert_eq!(settings.model_budget(999), ModelBudget::Open);
        let ModelBudget::Spent(note) = settings.model_budget(1_000) else {
            panic!("spent at the budget");
        };
        assert!(note.contains("1000 of 1000 tokens"), "{note}");
        settings.model_tokens_per_month = MAX_MODEL_TOKENS_PER_MONTH + 1;
        assert_eq!(
            settings.validate().unwrap_err().field,
            "model_tokens_per_month"
        );
    }

    #[test]
    fn an_empty_document_is_the_defaults() {
        let settings: Settings = serde_json::from_value(json!({})).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.max_fix_attempts, 3);
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn agents_are_tagged_by_kind() {
        let settings: Settings = serde_json::from_value(json!({
            "agent": {"kind": "command", "command": "claude -p", "plan_mode": true}
        }))
        .unwrap();
        assert_eq!(
            settings.agent,
            AgentConfig::Command {
                command: "claude -p".into(),
                plan_mode: true,
                slipway_mcp: false,
            }
        );
        let codegen: AgentConfig = serde_json::from_value(json!({"kind": "codegen"})).unwrap();
        assert!(matches!(codegen, AgentConfig::Codegen { model: None, .. }));
        assert!(serde_json::from_value::<AgentConfig>(json!({"kind": "robot"})).is_err());
        assert!(serde_json::from_value::<AgentConfig>(json!({"kind": "codegen", "x": 1})).is_err());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        assert!(serde_json::from_value::<Settings>(json!({"auto_merge": "yes"})).is_err());
        let err = serde_json::from_value::<Settings>(json!({"automerge": true})).unwrap_err();
        assert!(err.to_string().contains("unknown field `automerge`"));
        assert!(
            serde_json::from_value::<Settings>(json!({"merge_method": "fast-forward"})).is_err()
        );
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases = [
            (json!({"max_fix_attempts": 21}), "max_fix_attempts"),
            (
                json!({"agent": {"kind": "command", "command": " "}}),
                "agent.command",
            ),
            (
                json!({"setup_commands": {"branch": "a b"}}),
                "setup_commands.branch",
            ),
            (
                json!({"pipeline": {"build": {"commands": []}}}),
                "pipeline.build.commands",
            ),
        ];
        for (value, field) in cases {
            let settings: Settings = serde_json::from_value(value).unwrap();
            assert_eq!(settings.validate().unwrap_err().field, field);
        }
    }
}
