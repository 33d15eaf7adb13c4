//! The server's tools for projects and agent runs: `list_projects`, `start_run`, `get_run`,
//! `reply_to_run`.

use crate::error::ToolError;
use crate::tools::{ProjectList, ProjectOut, ReplyAction, ReplyArgs, RunOut, StartRunArgs};
use crate::{structured, Caller, SlipwayMcp};
use rmcp::model::CallToolResult;
use slipway_core::prompt::Goal;
use slipway_core::run::allowed_actions;
use slipway_core::{Project, ProjectId};
use slipway_engine::{RunAnswer, RunError};
use slipway_store::{RunRecord, Store};

/// A project by its id or its name.
pub(crate) async fn project(store: &Store, named: &str) -> Result<Project, ToolError> {
    let named = named.trim();
    let projects = store.list_projects().await?;
    let found = match named.parse::<i64>() {
        Ok(id) => projects.iter().find(|p| p.id == ProjectId(id)),
        Err(_) => projects.iter().find(|p| p.name == named),
    };
    found.cloned().ok_or_else(|| {
        let known: Vec<String> = projects
            .iter()
            .take(20)
            .map(|p| format!("{} ({})", p.id.0, p.name))
            .collect();
        ToolError::NotFound(format!(
            "project: there is no project '{named}'; send the id or name of one of: {}",
            if known.is_empty() {
                "none (an admin creates projects)".into()
            } else {
                known.join(", ")
            }
        ))
    })
}

pub(crate) async fn list_projects(store: &Store) -> Result<CallToolResult, ToolError> {
    let projects = store.list_projects().await?;
    let list = ProjectList {
        projects: projects
            .iter()
            .map(|p| ProjectOut {
                id: p.id.0,
                name: p.name.clone(),
                description: p.description.clone(),
                repo: p.repo.clone(),
                default_branch: p.default_branch.clone(),
            })
            .collect(),
    };
    let text = list
        .projects
        .iter()
        .map(|p| format!("{} {} ({}, {})", p.id, p.name, p.repo, p.default_branch))
        .collect::<Vec<_>>()
        .join("\n");
    structured(&list, format!("{} project(s)\n{text}", list.projects.len()))
}

pub(crate) async fn start(
    server: &SlipwayMcp,
    args: StartRunArgs,
    caller: &Caller,
) -> Result<CallToolResult, ToolError> {
    if args.goal.trim().is_empty() {
        return Err(ToolError::BadArgument(
            "goal: say in plain words what the agent should do".into(),
        ));
    }
    let project = project(&server.store, &args.project).await?;
    let goal = Goal {
        text: args.goal,
        requirements: args.requirements.filter(|t| !t.trim().is_empty()),
        acceptance_criteria: args.acceptance_criteria.filter(|t| !t.trim().is_empty()),
    };
    let run = server
        .engine
        .start_run(&project, goal, &format!("{} (MCP)", caller.name))
        .await
        .map_err(run_error)?;
    run_result(server, run).await
}

pub(crate) async fn get(server: &SlipwayMcp, id: i64) -> Result<CallToolResult, ToolError> {
    let run = server.store.run(id).await.map_err(|e| {
        ToolError::store(e, || {
            format!("there is no run {id}; give the id start_run returned")
        })
    })?;
    run_result(server, run).await
}

pub(crate) async fn reply(
    server: &SlipwayMcp,
    args: ReplyArgs,
) -> Result<CallToolResult, ToolError> {
    let text = || {
        args.text
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                ToolError::BadArgument(
                    "text: continue and modify need the answer's text, e.g. {\"id\": 3, \
                     \"action\": \"continue\", \"text\": \"use the v2 API\"}"
                        .into(),
                )
            })
    };
    let answer = match args.action {
        ReplyAction::Continue => RunAnswer::Continue(text()?),
        ReplyAction::Confirm => RunAnswer::Confirm,
        ReplyAction::Modify => RunAnswer::Modify(text()?),
    };
    let run = server
        .engine
        .answer_run(args.id, answer)
        .await
        .map_err(|e| match e {
            RunError::Store(slipway_store::StoreError::NotFound) => {
                ToolError::NotFound(format!("there is no run {}", args.id))
            }
            other => run_error(other),
        })?;
    run_result(server, run).await
}

fn run_error(error: RunError) -> ToolError {
    match error {
        RunError::Invalid(message) => ToolError::BadArgument(message),
        RunError::Conflict(message) => ToolError::Conflict(message),
        RunError::OverBudget {
            reason,
            retry_after_secs,
        } => ToolError::Conflict(format!("{reason}; try again in {retry_after_secs} s")),
        RunError::Store(error) => error.into(),
    }
}

/// A run as the tools show it: every text masked with its project's secrets.
async fn run_result(server: &SlipwayMcp, run: RunRecord) -> Result<CallToolResult, ToolError> {
    let run = server.engine.masked_run(run).await?;
    let attempts = server.store.fix_attempts(run.id).await?;
    let actions: Vec<String> = allowed_actions(run.status, run.response.as_ref())
        .iter()
        .map(|a| a.to_string())
        .collect();
    let value = serde_json::to_value(&run).map_err(|e| ToolError::Slipway(e.to_string()))?;
    let out = RunOut {
        id: run.id,
        project_id: run.project_id.0,
        status: value["status"].as_str().unwrap_or_default().to_owned(),
        actions,
        attempts: serde_json::to_value(&attempts).map_err(|e| ToolError::Slipway(e.to_string()))?,
        run: value,
    };
    let mut text = format!("run {} is {}", out.id, out.status);
    if let Some(note) = &run.note {
        text.push_str(&format!(": {note}"));
    }
    if let Some(url) = &run.pr_url {
        text.push_str(&format!("\npull request: {url}"));
    }
    if !out.actions.is_empty() {
        text.push_str(&format!("\nit waits for: {}", out.actions.join(", ")));
    }
    structured(&out, text)
}
