//! The settings dialog's forms: settings (with the agent), secrets.

use super::back_with_error;
use super::session::{CsrfForm, Signed};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use slipway_core::dotenv::{self, DotenvLine};
use slipway_core::secret::{validate_name, SecretValue};
use slipway_core::settings::AgentConfig;
use slipway_core::{ProjectId, Role};
use slipway_engine::Options;

use super::pages::{failed, layout, project_page, require, submit_branch, ListQuery, PageResult};

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    repository_rules: String,
    setup_branch: String,
    setup_commands: String,
    planning_statement: String,
    auto_confirm_plan: Option<String>,
    auto_merge: Option<String>,
    then: Option<String>,
    #[serde(default)]
    pub(super) agent_kind: Option<String>,
    #[serde(default)]
    pub(super) agent_command: String,
    #[serde(default)]
    pub(super) agent_model: String,
    pub(super) agent_plan_mode: Option<String>,
}

/// The agent the settings form describes; `None` when the form has no agent fields.
fn agent_of(form: &SettingsForm) -> Result<Option<AgentConfig>, String> {
    let plan_mode = form.agent_plan_mode.is_some();
    match form.agent_kind.as_deref() {
        None => Ok(None),
        Some("command") => {
            let command = form.agent_command.trim();
            if command.is_empty() {
                return Err("agent: give the command that runs the agent (e.g. claude -p), or choose Codegen".into());
            }
            Ok(Some(AgentConfig::Command {
                command: command.to_owned(),
                plan_mode,
            }))
        }
        Some("codegen") => Ok(Some(AgentConfig::Codegen {
            model: Some(form.agent_model.trim().to_owned()).filter(|m| !m.is_empty()),
            repo_id: None,
            plan_mode,
        })),
        Some(other) => Err(format!(
            "agent: '{other}' is not an agent kind (command or codegen)"
        )),
    }
}

pub async fn save_settings(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<SettingsForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Admin)?;
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let mut settings = state.store.settings(project.id).await.map_err(failed)?;
    settings.repository_rules = form.repository_rules.replace("\r\n", "\n");
    settings.planning_statement = form.planning_statement.replace("\r\n", "\n");
    settings.setup_commands.branch =
        Some(form.setup_branch.trim().to_owned()).filter(|b| !b.is_empty());
    settings.setup_commands.commands = form
        .setup_commands
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    settings.auto_confirm_plan = form.auto_confirm_plan.is_some();
    settings.auto_merge = form.auto_merge.is_some();
    let here = format!("/projects/{id}");
    match agent_of(&form) {
        Ok(Some(agent)) => {
            // The Codegen run's repository id, if one was set through the API, stays.
            let repo_id = match &settings.agent {
                AgentConfig::Codegen { repo_id, .. } => *repo_id,
                AgentConfig::Command { .. } => None,
            };
            settings.agent = match agent {
                AgentConfig::Codegen {
                    model, plan_mode, ..
                } => AgentConfig::Codegen {
                    model,
                    repo_id,
                    plan_mode,
                },
                command => command,
            };
        }
        Ok(None) => {}
        Err(why) => return refused_form(&state, &signed, project.id, settings, &form, why).await,
    }
    if let Err(invalid) = settings.validate() {
        return refused_form(
            &state,
            &signed,
            project.id,
            settings,
            &form,
            invalid.to_string(),
        )
        .await;
    }
    state
        .store
        .put_settings(project.id, &settings)
        .await
        .map_err(failed)?;
    if form.then.as_deref() == Some("run") {
        let branch = settings
            .setup_commands
            .branch
            .clone()
            .unwrap_or_else(|| project.default_branch.clone());
        if settings.setup_commands.commands.is_empty() {
            return Ok(back_with_error(
                &here,
                "setup_commands: type at least one command to run, then save and run setup",
            ));
        }
        // Exactly the typed commands, whatever the branch's .slipway.toml says.
        let trial = Options {
            setup_trial: true,
            started_by: Some(format!("setup trial by {}", signed.0.caller.name)),
            ..Options::default()
        };
        return submit_branch(&state, &project, branch, trial).await;
    }
    Ok(Redirect::to(&format!("{here}?saved=1")).into_response())
}

/// A refused settings form: the page again, the dialog open with what was typed and why.
async fn refused_form(
    state: &AppState,
    signed: &Signed,
    id: ProjectId,
    typed: slipway_core::Settings,
    form: &SettingsForm,
    why: String,
) -> PageResult {
    let layout = layout(state, signed, id.0, Some(why)).await?;
    let lists = ListQuery::default();
    let mut response = project_page(state, layout, id, Some((typed, form)), &lists).await?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

#[derive(Deserialize)]
pub struct SecretsForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    dotenv: String,
}

pub async fn save_secrets(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<SecretsForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Admin)?;
    let project = ProjectId(id);
    state.store.project(project).await.map_err(failed)?;
    let here = format!("/projects/{id}");
    let mut entries: Vec<(String, SecretValue)> = Vec::new();
    let mut refused = Vec::new();
    if !form.name.trim().is_empty() {
        let name = form.name.trim().to_owned();
        match (validate_name(&name), SecretValue::new(form.value)) {
            (Ok(()), Ok(value)) => entries.push((name, value)),
            (Err(e), _) | (_, Err(e)) => refused.push(e.to_string()),
        }
    }
    if !form.dotenv.trim().is_empty() {
        match dotenv::parse(&form.dotenv) {
            Ok(lines) => {
                for line in lines {
                    match line {
                        DotenvLine::Entry { name, value, .. } => entries.push((name, value)),
                        DotenvLine::Refused { line, reason, .. } => {
                            refused.push(format!("line {line}: {reason}"))
                        }
                    }
                }
            }
            Err(error) => refused.push(error.to_string()),
        }
    }
    if !entries.is_empty() {
        let pairs: Vec<(&str, &SecretValue)> =
            entries.iter().map(|(n, v)| (n.as_str(), v)).collect();
        state
            .store
            .put_secrets(project, &pairs)
            .await
            .map_err(failed)?;
    }
    if refused.is_empty() {
        Ok(Redirect::to(&here).into_response())
    } else {
        Ok(back_with_error(
            &here,
            &format!("{} saved; refused: {}", entries.len(), refused.join("; ")),
        ))
    }
}

pub async fn delete_secret(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, name)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Admin)?;
    state
        .store
        .delete_secret(ProjectId(id), &name)
        .await
        .map_err(failed)?;
    Ok(Redirect::to(&format!("/projects/{id}")).into_response())
}
