//! The tools' names, descriptions and schemas: arguments in, structured results out.

use crate::report::Report;
use crate::Scope;
use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use slipway_core::Role;

/// `validate` over stdio: a repository on this machine.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalValidateArgs {
    /// The repository's directory (absolute, or relative to where `slipway mcp` runs). Its
    /// HEAD commit is validated: commit your changes first.
    pub path: String,
    /// Validate the commit merged onto the head of this branch, as a pull request into it
    /// would be (e.g. "main").
    pub base: Option<String>,
}

/// `validate` on the server: a project's branch or commit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerValidateArgs {
    /// The project's id or name (see `list_projects`).
    pub project: String,
    /// The branch whose head is validated (pushed to the project's repository).
    pub branch: Option<String>,
    /// A full commit id; give either `branch` or `sha`.
    pub sha: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationArgs {
    /// The validation's id, as `validate` returned it.
    pub id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// The validation's id.
    pub id: i64,
    /// Only this step's lines: checkout, setup, build, deploy, test, ui, analysis, judge, merge.
    pub step: Option<String>,
    /// Only lines after this sequence number (0 or absent: from the start); pass the last
    /// answer's `next_after` to read on.
    pub after: Option<i64>,
    /// At most this many lines (default 200, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunArgs {
    /// The project's id or name (see `list_projects`).
    pub project: String,
    /// What the project's agent should do, in plain words.
    pub goal: String,
    pub requirements: Option<String>,
    pub acceptance_criteria: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// The run's id, as `start_run` returned it.
    pub id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyAction {
    /// Answer the agent's reply with `text`.
    Continue,
    /// Confirm the agent's plan.
    Confirm,
    /// Ask the agent to change its plan as `text` says.
    Modify,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyArgs {
    /// The run's id.
    pub id: i64,
    /// continue (answer a reply), confirm (a plan) or modify (a plan); the run's `actions`
    /// say which it waits for.
    pub action: ReplyAction,
    /// The answer, for continue and modify.
    pub text: Option<String>,
}

/// A page of a validation's log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogPage {
    pub lines: Vec<LogLineOut>,
    /// Pass as `after` to read the lines that follow.
    pub next_after: i64,
    /// Whether more lines were there than `limit` allowed.
    pub more: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLineOut {
    pub seq: i64,
    pub step: String,
    /// The line, secrets masked.
    pub line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectOut {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `owner/name` on GitHub, or a local repository's path.
    pub repo: String,
    pub default_branch: String,
}

/// An agent run and what may be done next.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunOut {
    pub id: i64,
    pub project_id: i64,
    /// The run's state (running, waiting, succeeded, failed, cancelled, …).
    pub status: String,
    /// What `reply_to_run` may do now: continue, confirm, modify (and cancel, by a person).
    pub actions: Vec<String>,
    /// The whole run: goal, the agent's last answer, pull request, note.
    pub run: serde_json::Value,
    /// Every fix attempt, with its evidence.
    pub attempts: serde_json::Value,
}

/// What each role may call: viewers read, operators validate and start or answer runs.
pub fn required_role(tool: &str) -> Role {
    match tool {
        "validate" | "start_run" | "reply_to_run" => Role::Operator,
        _ => Role::Viewer,
    }
}

/// The tools of a scope, as `tools/list` gives them.
pub fn list(scope: &Scope) -> Vec<Tool> {
    let read = ToolAnnotations::new().read_only(true);
    let validate_text = "Validate code in Slipway's sandbox exactly as its gate would before a \
        merge: checkout (merged onto the base), setup, build, deploy, test, browser checks, \
        analysis and judge, as the repository's .slipway.toml says. Returns the report: every \
        step's status and the tail of its log (secrets masked), the failing step with its \
        command, exit code and log tail, browser-check evidence and analysis findings. \
        Progress is notified per step; cancelling the request cancels the validation.";
    let mut tools = match scope {
        Scope::Local(_) => vec![Tool::new(
            "validate",
            format!("{validate_text} Validates the HEAD commit of a local repository (commit first)."),
            rmcp::handler::server::common::schema_for_type::<LocalValidateArgs>(),
        )
        .with_output_schema::<Report>()],
        Scope::Server => vec![Tool::new(
            "validate",
            format!("{validate_text} Validates a project's branch or commit (pushed to its repository)."),
            rmcp::handler::server::common::schema_for_type::<ServerValidateArgs>(),
        )
        .with_output_schema::<Report>()],
    };
    tools.push(
        Tool::new(
            "get_validation",
            "A validation's report (as `validate` returns it), finished or still running.",
            rmcp::handler::server::common::schema_for_type::<ValidationArgs>(),
        )
        .with_output_schema::<Report>()
        .annotate(read.clone()),
    );
    tools.push(
        Tool::new(
            "get_logs",
            "A validation's log lines (secrets masked), optionally of one step, after a \
             sequence number, at most `limit` of them.",
            rmcp::handler::server::common::schema_for_type::<LogsArgs>(),
        )
        .with_output_schema::<LogPage>()
        .annotate(read.clone()),
    );
    if let Scope::Server = scope {
        tools.push(
            Tool::new(
                "list_projects",
                "The projects Slipway gates: their ids, names and repositories.",
                rmcp::handler::server::common::schema_for_type::<NoArgs>(),
            )
            .with_output_schema::<ProjectList>()
            .annotate(read.clone()),
        );
        tools.push(
            Tool::new(
                "start_run",
                "Start an agent run: the project's coding agent works on a goal in plain \
                 words, and its pull request is validated and merged by Slipway's gate.",
                rmcp::handler::server::common::schema_for_type::<StartRunArgs>(),
            )
            .with_output_schema::<RunOut>(),
        );
        tools.push(
            Tool::new(
                "get_run",
                "An agent run: its state, the agent's last answer, its pull request, and what \
                 may be answered now.",
                rmcp::handler::server::common::schema_for_type::<RunArgs>(),
            )
            .with_output_schema::<RunOut>()
            .annotate(read.clone()),
        );
        tools.push(
            Tool::new(
                "reply_to_run",
                "Answer a run that waits: continue (answer its reply with text), confirm (its \
                 plan) or modify (its plan, with text).",
                rmcp::handler::server::common::schema_for_type::<ReplyArgs>(),
            )
            .with_output_schema::<RunOut>(),
        );
    }
    tools
}

/// The arguments of a call, or a bad-argument error that says what to send.
pub fn parse<T: serde::de::DeserializeOwned + JsonSchema + 'static>(
    tool: &str,
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<T, crate::error::ToolError> {
    let value = serde_json::Value::Object(arguments.unwrap_or_default());
    serde_json::from_value(value).map_err(|error| {
        let schema = rmcp::handler::server::common::schema_for_type::<T>();
        let fields = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let required = schema
            .get("required")
            .map(|r| r.to_string())
            .unwrap_or_else(|| "[]".into());
        crate::error::ToolError::BadArgument(format!(
            "the arguments of {tool} are wrong: {error}; send an object with the fields \
             {fields} (required: {required})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> Option<rmcp::model::JsonObject> {
        value.as_object().cloned()
    }

    #[test]
    fn bad_arguments_say_what_to_send() {
        let error = parse::<LocalValidateArgs>("validate", object(json!({"paht": "."})))
            .unwrap_err()
            .into_result();
        assert_eq!(error.is_error, Some(true));
        let detail = &error.structured_content.unwrap()["error"];
        assert_eq!(detail["kind"], "bad_argument");
        let message = detail["message"].as_str().unwrap();
        assert!(message.contains("unknown field `paht`"), "{message}");
        assert!(message.contains("required: [\"path\"]"), "{message}");

        let missing = parse::<ValidationArgs>("get_validation", None).unwrap_err();
        assert!(
            matches!(&missing, crate::error::ToolError::BadArgument(m) if m.contains("`id`")),
            "{missing:?}"
        );
        let parsed: ReplyArgs = parse(
            "reply_to_run",
            object(json!({"id": 3, "action": "confirm"})),
        )
        .unwrap();
        assert!(matches!(parsed.action, ReplyAction::Confirm));
    }

    #[test]
    fn every_tool_has_an_object_output_schema_and_a_role() {
        let local = list(&Scope::Server);
        assert_eq!(local.len(), 7);
        for tool in &local {
            let output = tool.output_schema.as_ref().expect("an output schema");
            assert_eq!(output["type"], "object", "{}", tool.name);
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        }
        assert_eq!(required_role("validate"), Role::Operator);
        assert_eq!(required_role("get_logs"), Role::Viewer);
    }
}
