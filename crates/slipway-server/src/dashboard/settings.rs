//! The settings dialog's one form: settings (with the agent), secrets and variables, saved
//! together so that nothing typed in one tab is lost by saving another. A refused form comes
//! back with everything typed and every reason; nothing of it is saved.

use super::session::Signed;
use super::PageError;
use crate::routes::secrets::{destination, ImportAs};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::{Deserialize, Serialize};
use slipway_core::dotenv::{self, DotenvLine};
use slipway_core::secret::{validate_env_name, validate_name, SecretValue};
use slipway_core::settings::AgentConfig;
use slipway_core::{ProjectId, Role};
use slipway_engine::Options;

use super::pages::{failed, layout, project_page, require, submit_branch, ListQuery, PageResult};

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    /// What the secrets and variables tabs hold, and the `delete_…:NAME` boxes.
    #[serde(flatten)]
    pub(super) typed: Typed,
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
    pub(super) agent_slipway_mcp: Option<String>,
    /// The monthly model token budget; empty or 0 is no limit.
    #[serde(default)]
    pub(crate) model_tokens_per_month: Option<String>,
}

/// The secrets and variables tabs' fields as typed.
#[derive(Deserialize, Default)]
pub struct Typed {
    #[serde(default)]
    pub secret_name: String,
    #[serde(default)]
    pub secret_value: String,
    #[serde(default)]
    pub dotenv: String,
    /// `secrets` (a too-short value becomes a variable) or `variables`.
    #[serde(default)]
    pub dotenv_as: String,
    #[serde(default)]
    pub variable_name: String,
    #[serde(default)]
    pub variable_value: String,
    /// `delete_secret:NAME` and `delete_variable:NAME` check boxes.
    #[serde(flatten)]
    pub boxes: std::collections::HashMap<String, String>,
}

/// What the secrets and variables tabs ask for, checked; refusals say what and why.
#[derive(Default)]
struct Changes {
    secrets: Vec<(String, SecretValue)>,
    variables: Vec<(String, String)>,
    delete_secrets: Vec<String>,
    delete_variables: Vec<String>,
    /// Names of new secrets under 8 characters (masked only as whole words).
    short: Vec<String>,
    refused: Vec<String>,
}

fn changes_of(typed: &Typed) -> Changes {
    let mut changes = Changes::default();
    let name = typed.secret_name.trim();
    if !name.is_empty() {
        match (
            validate_name(name),
            SecretValue::new_secret(typed.secret_value.clone()),
        ) {
            (Ok(()), Ok((value, warning))) => {
                if warning.is_some() {
                    changes.short.push(name.to_owned());
                }
                changes.secrets.push((name.to_owned(), value));
            }
            (Err(e), _) | (_, Err(e)) => changes.refused.push(format!("secret {name}: {e}")),
        }
    } else if !typed.secret_value.is_empty() {
        changes
            .refused
            .push("secret: give the value a name (e.g. API_KEY)".into());
    }
    if !typed.dotenv.trim().is_empty() {
        changes_of_dotenv(typed, &mut changes);
    }
    let name = typed.variable_name.trim();
    if !name.is_empty() {
        match (
            validate_env_name(name, "variable"),
            SecretValue::new(typed.variable_value.clone()),
        ) {
            (Ok(()), Ok(value)) => changes
                .variables
                .push((name.to_owned(), value.expose().to_owned())),
            (Err(e), _) | (_, Err(e)) => changes.refused.push(format!("variable {name}: {e}")),
        }
    } else if !typed.variable_value.is_empty() {
        changes
            .refused
            .push("variable: give the value a name (e.g. FEATURE)".into());
    }
    for (key, value) in &typed.boxes {
        match key.split_once(':') {
            Some(("delete_secret", name)) if value == "on" => {
                changes.delete_secrets.push(name.to_owned())
            }
            Some(("delete_variable", name)) if value == "on" => {
                changes.delete_variables.push(name.to_owned())
            }
            _ => {}
        }
    }
    changes.delete_secrets.sort();
    changes.delete_variables.sort();
    changes
}

fn changes_of_dotenv(typed: &Typed, changes: &mut Changes) {
    let rule = if typed.dotenv_as == "variables" {
        ImportAs::Variables
    } else {
        ImportAs::Secrets
    };
    let lines = match dotenv::parse(&typed.dotenv) {
        Ok(lines) => lines,
        Err(error) => return changes.refused.push(format!(".env: {error}")),
    };
    for line in lines {
        match line {
            DotenvLine::Entry { name, value, .. } => match destination(&value, rule) {
                (true, _) => changes.variables.push((name, value.expose().to_owned())),
                (false, warning) => {
                    if warning.is_some() {
                        changes.short.push(name.clone());
                    }
                    changes.secrets.push((name, value));
                }
            },
            DotenvLine::Refused { line, reason, .. } => {
                changes.refused.push(format!(".env line {line}: {reason}"))
            }
        }
    }
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
                slipway_mcp: form.agent_slipway_mcp.is_some(),
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
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let current = state.store.settings(project.id).await.map_err(failed)?;
    let mut refused = Vec::new();
    let role_refused = require(&signed, Role::Admin).err();
    if let Some(why) = &role_refused {
        refused.push(why.message.clone());
    }
    let settings = typed_settings(&form, current, &mut refused);
    if let AgentConfig::Command { command, .. } = &settings.agent {
        if let Err(why) = state.engine.check_agent_command(command) {
            refused.push(format!("agent_command: {why}"));
        }
    }
    if form.then.as_deref() == Some("run") && settings.setup_commands.commands.is_empty() {
        refused.push(
            "setup_commands: type at least one command to run, then save and run setup".into(),
        );
    }
    let changes = changes_of(&form.typed);
    refused.extend(changes.refused.iter().cloned());
    if !refused.is_empty() {
        let status = role_refused.map_or(StatusCode::UNPROCESSABLE_ENTITY, |why| why.status);
        let page = refused_form(&state, &signed, project.id, settings, &form, refused).await?;
        return Ok((status, page).into_response());
    }
    let secrets: Vec<(&str, &SecretValue)> = changes
        .secrets
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .collect();
    let variables: Vec<(&str, &str)> = (changes.variables.iter())
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    // Deletions first: a name may move from secret to variable in one save.
    for name in &changes.delete_secrets {
        ignore_missing(state.store.delete_secret(project.id, name).await)?;
    }
    for name in &changes.delete_variables {
        ignore_missing(state.store.delete_variable(project.id, name).await)?;
    }
    if let Err(error) = (state.store)
        .put_secrets_and_variables(project.id, &secrets, &variables)
        .await
    {
        let why = crate::ApiError::from(error).message;
        return refused_form(&state, &signed, project.id, settings, &form, vec![why]).await;
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
        // Exactly the typed commands, whatever the branch's .slipway.toml says.
        let trial = Options {
            setup_trial: true,
            started_by: Some(format!("setup trial by {}", signed.0.caller.name)),
            ..Options::default()
        };
        return submit_branch(&state, &project, branch, trial).await;
    }
    let saved = Saved {
        saved: Some("1".into()),
        secrets: join(changes.secrets.iter().map(|(n, _)| n)),
        variables: join(changes.variables.iter().map(|(n, _)| n)),
        deleted: join(
            changes
                .delete_secrets
                .iter()
                .chain(&changes.delete_variables),
        ),
        short: join(changes.short.iter()),
    };
    let query = serde_urlencoded::to_string(&saved).unwrap_or_default();
    Ok(Redirect::to(&format!("/projects/{id}?{query}")).into_response())
}

/// The settings the form describes, on top of the stored ones; what is wrong goes to `refused`.
fn typed_settings(
    form: &SettingsForm,
    mut settings: slipway_core::Settings,
    refused: &mut Vec<String>,
) -> slipway_core::Settings {
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
    if let Some(budget) = &form.model_tokens_per_month {
        match budget.trim().replace([',', '_'], "") {
            text if text.is_empty() => settings.model_tokens_per_month = 0,
            text => match text.parse::<u64>() {
                Ok(tokens) => settings.model_tokens_per_month = tokens,
                Err(_) => refused.push(format!(
                    "model_tokens_per_month: '{budget}' is not a number of tokens (0 or empty: no limit)"
                )),
            },
        }
    }
    match agent_of(form) {
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
        Err(why) => refused.push(why),
    }
    if let Err(invalid) = settings.validate() {
        refused.push(invalid.to_string());
    }
    settings
}

fn ignore_missing(result: Result<(), slipway_store::StoreError>) -> Result<(), PageError> {
    match result {
        Ok(()) | Err(slipway_store::StoreError::NotFound) => Ok(()),
        Err(error) => Err(failed(error)),
    }
}

fn join<'a>(names: impl Iterator<Item = &'a String>) -> Option<String> {
    let names: Vec<&str> = names.map(String::as_str).collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// What a save did, named in the page's address (names only, never a value) so that the
/// page after the redirect confirms it.
#[derive(Serialize, Deserialize, Default)]
pub struct Saved {
    #[serde(skip_serializing_if = "Option::is_none")]
    saved: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    short: Option<String>,
}

impl Saved {
    /// The confirmation shown after a save.
    pub fn notice(&self) -> Option<String> {
        self.saved.as_ref()?;
        let mut said = vec!["Settings saved.".to_owned()];
        let list = |names: &Option<String>| names.as_deref().map(|n| n.replace(',', ", "));
        if let Some(names) = list(&self.secrets) {
            said.push(format!("Secrets saved: {names}."));
        }
        if let Some(names) = list(&self.variables) {
            said.push(format!("Variables saved: {names}."));
        }
        if let Some(names) = list(&self.deleted) {
            said.push(format!("Deleted: {names}."));
        }
        if let Some(names) = list(&self.short) {
            said.push(format!(
                "Warning: {names} under 8 characters, so masked only where it stands as a whole word; use a longer value to mask it everywhere."
            ));
        }
        Some(said.join(" "))
    }
}

/// A refused settings form: the page again, the dialog open with what was typed and why.
async fn refused_form(
    state: &AppState,
    signed: &Signed,
    id: ProjectId,
    typed: slipway_core::Settings,
    form: &SettingsForm,
    refused: Vec<String>,
) -> PageResult {
    let why = format!("Nothing was saved: {}", refused.join("; "));
    let layout = layout(state, signed, id.0, Some(why)).await?;
    let lists = ListQuery::default();
    let mut response = project_page(state, layout, id, Some((typed, form)), None, &lists).await?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}
