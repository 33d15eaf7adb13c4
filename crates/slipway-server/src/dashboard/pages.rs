//! The dashboard's pages and the forms they post.

use super::session::{CsrfForm, Signed};
use super::{ansi, back_with_error, render, version, Layout, PageError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use slipway_core::dotenv::{self, DotenvLine};
use slipway_core::prompt::Goal;
use slipway_core::run::{Response as Answer, RunStatus};
use slipway_core::secret::{validate_name, SecretValue};
use slipway_core::settings::AgentConfig;
use slipway_core::validation::ValidationStatus;
use slipway_core::{Project, ProjectDraft, ProjectId, Role, ValidationId};
use slipway_engine::{Options, RunAnswer, Target};
use slipway_store::{FixAttempt, RunRecord, ValidationRecord};

/// Lines of a validation's log rendered with its page; earlier ones load on demand.
const LOG_TAIL: u32 = 500;
const HISTORY: u32 = 200;

pub(super) type PageResult = Result<Response, PageError>;

pub(super) fn failed(error: impl Into<crate::ApiError>) -> PageError {
    PageError::from(error.into())
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub(super) error: Option<String>,
    /// Set after a save: the page says it was saved.
    pub(super) saved: Option<String>,
}

pub(super) async fn layout(
    state: &AppState,
    signed: &Signed,
    project_id: i64,
    error: Option<String>,
) -> Result<Layout, PageError> {
    let projects = state.store.list_projects().await.map_err(failed)?;
    Ok(Layout {
        version: version(),
        csrf: signed.0.csrf.clone(),
        project_id,
        last_event: state.store.last_event_id().await.map_err(failed)?,
        projects: projects.iter().map(|p| (p.id.0, p.name.clone())).collect(),
        error,
        notice: None,
    })
}

pub(super) fn require(signed: &Signed, role: Role) -> Result<(), PageError> {
    signed.0.caller.require(role).map_err(failed)
}

pub struct Card {
    id: i64,
    name: String,
    repo: String,
    has_rules: bool,
    last_run: Option<(i64, String)>,
    last_validation: Option<(i64, String)>,
    open_pr: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    cards: Vec<Card>,
    github_repos: Vec<String>,
}

pub async fn home(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let layout = layout(&state, &signed, 0, query.error).await?;
    let projects = state.store.list_projects().await.map_err(failed)?;
    let mut summaries = state.store.project_summaries().await.map_err(failed)?;
    let cards = projects
        .iter()
        .map(|p| {
            let summary = summaries.remove(&p.id).unwrap_or_default();
            Card {
                id: p.id.0,
                name: p.name.clone(),
                repo: p.repo.clone(),
                has_rules: summary.has_rules,
                last_run: summary.last_run,
                last_validation: summary.last_validation,
                open_pr: summary.open_pr_url,
            }
        })
        .collect();
    let github_repos = state.engine.github_repositories().await;
    Ok(render(&HomePage {
        layout,
        cards,
        github_repos,
    }))
}

#[derive(Deserialize)]
pub struct NewProjectForm {
    csrf: String,
    name: String,
    repo: String,
    default_branch: String,
}

pub async fn create_project(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<NewProjectForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Admin)?;
    let draft = ProjectDraft {
        name: form.name.trim().to_owned(),
        description: String::new(),
        repo: form.repo.trim().to_owned(),
        default_branch: form.default_branch.trim().to_owned(),
    };
    if let Err(invalid) = crate::routes::projects::validate(&draft).await {
        return Ok(back_with_error("/", &invalid.to_string()));
    }
    match state.store.create_project(&draft).await {
        Ok(project) => Ok(Redirect::to(&format!("/projects/{}", project.id)).into_response()),
        Err(error) => Ok(back_with_error("/", &crate::ApiError::from(error).message)),
    }
}

struct RunRow {
    id: i64,
    goal_line: String,
    status: RunStatus,
    pr_url: Option<String>,
    when: When,
}

/// A moment as lists show it: how long ago, and exactly (on hover).
pub(super) struct When {
    pub(super) ago: String,
    pub(super) exact: String,
}

pub(super) fn when(at: time::OffsetDateTime) -> When {
    let seconds = (time::OffsetDateTime::now_utc() - at)
        .whole_seconds()
        .max(0);
    let ago = match seconds {
        0..=59 => "just now".to_owned(),
        60..=3_599 => format!("{} min ago", seconds / 60),
        3_600..=86_399 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} days ago", seconds / 86_400),
    };
    let exact = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    When { ago, exact }
}

pub(super) struct ValidationRow {
    pub(super) id: i64,
    pub(super) short_sha: String,
    pub(super) of: String,
    pub(super) status: ValidationStatus,
    pub(super) duration: String,
    pub(super) when: When,
}

pub(super) fn validation_row(v: &ValidationRecord) -> ValidationRow {
    ValidationRow {
        id: v.id.0,
        short_sha: v.sha.chars().take(10).collect(),
        of: match (v.pr, &v.branch) {
            (Some(pr), _) => format!("PR #{pr}"),
            (None, Some(branch)) => branch.clone(),
            (None, None) => "commit".into(),
        },
        status: v.status,
        duration: seconds(v).map(|s| format!("{s:.1} s")).unwrap_or_default(),
        when: when(v.created_at),
    }
}

fn seconds(v: &ValidationRecord) -> Option<f64> {
    let (start, end) = (v.started_at?, v.finished_at?);
    Some((end - start).as_seconds_f64().max(0.0))
}

struct Bar {
    id: i64,
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    status: ValidationStatus,
    seconds: String,
}

/// Pass rate and durations of the last finished validations, as inline-SVG shapes.
struct History {
    total: usize,
    pass_rate: u32,
    width: usize,
    bars: Vec<Bar>,
    rate_line: String,
}

fn history(validations: &[ValidationRecord]) -> History {
    let finished: Vec<&ValidationRecord> = validations
        .iter()
        .rev()
        .filter(|v| {
            matches!(
                v.status,
                ValidationStatus::Passed | ValidationStatus::Failed
            )
        })
        .collect();
    let longest = finished
        .iter()
        .filter_map(|v| seconds(v))
        .fold(0.1f64, f64::max);
    let step = 6.0;
    let mut passed = 0;
    let mut points = Vec::new();
    let bars = finished
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.status == ValidationStatus::Passed {
                passed += 1;
            }
            let secs = seconds(v).unwrap_or(0.0);
            let height = (secs / longest * 90.0).max(2.0);
            let x = i as f64 * step;
            points.push(format!(
                "{:.1},{:.1}",
                x + 2.5,
                100.0 - passed as f64 / (i + 1) as f64 * 100.0
            ));
            Bar {
                id: v.id.0,
                x,
                y: 100.0 - height,
                width: step - 1.0,
                height,
                status: v.status,
                seconds: format!("{secs:.1}"),
            }
        })
        .collect();
    History {
        total: finished.len(),
        pass_rate: if finished.is_empty() {
            0
        } else {
            (passed * 100 / finished.len()) as u32
        },
        width: (finished.len().max(1) as f64 * step) as usize,
        bars,
        rate_line: points.join(" "),
    }
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    layout: Layout,
    project: Project,
    has_rules: bool,
    planning_statement: String,
    settings: slipway_core::Settings,
    setup_branch: String,
    setup_commands: String,
    /// The settings dialog opens at once (a refused form, shown again).
    reopen_settings: bool,
    agent_kind: &'static str,
    agent_command: String,
    agent_model: String,
    agent_plan_mode: bool,
    branches: Vec<String>,
    secrets: Vec<(String, String)>,
    runs: Vec<RunRow>,
    validations: Vec<ValidationRow>,
    history: History,
}

pub async fn project(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let mut layout = layout(&state, &signed, id, query.error).await?;
    layout.notice = query.saved.map(|_| "Settings saved.".to_owned());
    project_page(&state, layout, ProjectId(id), None).await
}

/// The project page; with `typed`, the settings dialog opens again holding what was typed
/// (a form that was refused keeps its text).
async fn project_page(
    state: &AppState,
    layout: Layout,
    id: ProjectId,
    typed: Option<(slipway_core::Settings, &SettingsForm)>,
) -> PageResult {
    let project = state.store.project(id).await.map_err(failed)?;
    let (settings, typed_form) = match typed {
        Some((settings, form)) => (settings, Some(form)),
        None => (state.store.settings(id).await.map_err(failed)?, None),
    };
    let runs = state.store.runs_of_project(id, 50).await.map_err(failed)?;
    let validations = state
        .store
        .list_validations(id, HISTORY)
        .await
        .map_err(failed)?;
    let secrets = state.store.list_secrets(id).await.map_err(failed)?;
    let mut branches = state.engine.branches(&project).await;
    let setup_branch = settings
        .setup_commands
        .branch
        .clone()
        .unwrap_or_else(|| project.default_branch.clone());
    for wanted in [&project.default_branch, &setup_branch] {
        if !branches.contains(wanted) {
            branches.push(wanted.clone());
        }
    }
    let (agent_kind, agent_command, agent_model, agent_plan_mode) =
        match (&settings.agent, typed_form) {
            (_, Some(form)) if form.agent_kind.is_some() => (
                if form.agent_kind.as_deref() == Some("codegen") {
                    "codegen"
                } else {
                    "command"
                },
                form.agent_command.clone(),
                form.agent_model.clone(),
                form.agent_plan_mode.is_some(),
            ),
            (AgentConfig::Command { command, plan_mode }, _) => {
                ("command", command.clone(), String::new(), *plan_mode)
            }
            (
                AgentConfig::Codegen {
                    model, plan_mode, ..
                },
                _,
            ) => (
                "codegen",
                String::new(),
                model.clone().unwrap_or_default(),
                *plan_mode,
            ),
        };
    let page = ProjectPage {
        reopen_settings: typed_form.is_some(),
        agent_kind,
        agent_command,
        agent_model,
        agent_plan_mode,
        layout,
        has_rules: !settings.repository_rules.trim().is_empty(),
        planning_statement: settings.planning_statement.clone(),
        setup_commands: settings.setup_commands.commands.join("\n"),
        setup_branch,
        branches,
        secrets: secrets
            .into_iter()
            .map(|s| (s.name, s.updated_at.date().to_string()))
            .collect(),
        runs: runs
            .iter()
            .map(|r| RunRow {
                id: r.id,
                goal_line: r
                    .goal
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(100)
                    .collect(),
                status: r.status,
                pr_url: r.pr_url.clone(),
                when: when(r.created_at),
            })
            .collect(),
        history: history(&validations),
        validations: validations.iter().take(50).map(validation_row).collect(),
        settings,
        project,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct RunForm {
    csrf: String,
    goal: String,
    #[serde(default)]
    requirements: String,
    #[serde(default)]
    acceptance_criteria: String,
}

pub async fn start_run(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<RunForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let optional = |text: String| Some(text).filter(|t| !t.trim().is_empty());
    let goal = Goal {
        text: form.goal,
        requirements: optional(form.requirements),
        acceptance_criteria: optional(form.acceptance_criteria),
    };
    match state.engine.start_run(&project, goal).await {
        Ok(run) => Ok(Redirect::to(&format!("/runs/{}", run.id)).into_response()),
        Err(error) => Ok(back_with_error(
            &format!("/projects/{id}"),
            &crate::ApiError::from(error).message,
        )),
    }
}

#[derive(Deserialize)]
pub struct BranchForm {
    csrf: String,
    branch: String,
}

pub async fn start_validation(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<BranchForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    validate_branch(&state, &project, form.branch).await
}

async fn validate_branch(state: &AppState, project: &Project, branch: String) -> PageResult {
    submit_branch(state, project, branch, Options::default()).await
}

async fn submit_branch(
    state: &AppState,
    project: &Project,
    branch: String,
    options: Options,
) -> PageResult {
    let target = Target::Branch(branch);
    match state.engine.submit_with(project, target, options).await {
        Ok(record) => Ok(Redirect::to(&format!("/validations/{}", record.id)).into_response()),
        Err(error) => Ok(back_with_error(
            &format!("/projects/{}", project.id),
            &crate::ApiError::from(error).message,
        )),
    }
}

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
    agent_kind: Option<String>,
    #[serde(default)]
    agent_command: String,
    #[serde(default)]
    agent_model: String,
    agent_plan_mode: Option<String>,
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
    let mut response = project_page(state, layout, id, Some((typed, form))).await?;
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

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    project_name: String,
    run: RunRecord,
    note: Option<String>,
    reply: Option<String>,
    plan: Option<String>,
    pr_url: Option<String>,
    awaiting: bool,
    can_cancel: bool,
    validations: Vec<ValidationRow>,
    attempts: Vec<FixAttempt>,
    conversation: Vec<slipway_store::RunMessage>,
}

pub async fn run(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let run = state.store.run(id).await.map_err(failed)?;
    let project = state.store.project(run.project_id).await.map_err(failed)?;
    let layout = layout(&state, &signed, project.id.0, query.error).await?;
    let attempts = state.store.fix_attempts(id).await.map_err(failed)?;
    let conversation = state.store.run_messages(id).await.map_err(failed)?;
    let validations = match run.pr_number {
        Some(pr) => state
            .store
            .pull_request_validations(project.id, pr, HISTORY)
            .await
            .map_err(failed)?,
        None => Vec::new(),
    };
    let (reply, plan, pr_url) = match &run.response {
        Some(Answer::Reply { text }) => (Some(text.clone()), None, None),
        Some(Answer::Plan { text }) => (None, Some(text.clone()), None),
        Some(Answer::PullRequest { url, .. }) => (None, None, Some(url.clone())),
        None => (None, None, None),
    };
    let page = RunPage {
        layout,
        project_name: project.name,
        note: run.note.clone().filter(|n| !n.is_empty()),
        reply,
        plan,
        pr_url,
        awaiting: run.status == RunStatus::AwaitingInput,
        can_cancel: !run.status.is_final(),
        validations: validations.iter().map(validation_row).collect(),
        attempts,
        conversation,
        run,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct AnswerForm {
    csrf: String,
    #[serde(default)]
    text: String,
}

pub async fn answer_run(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<AnswerForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let result = match action.as_str() {
        "continue" => {
            state
                .engine
                .answer_run(id, RunAnswer::Continue(form.text))
                .await
        }
        "confirm" => state.engine.answer_run(id, RunAnswer::Confirm).await,
        "modify" => {
            state
                .engine
                .answer_run(id, RunAnswer::Modify(form.text))
                .await
        }
        "cancel" => state.engine.cancel_run(id).await,
        _ => return Err(PageError::new(StatusCode::NOT_FOUND, "no such action")),
    };
    let here = format!("/runs/{id}");
    match result {
        Ok(_) => Ok(Redirect::to(&here).into_response()),
        Err(error) => Ok(back_with_error(
            &here,
            &crate::ApiError::from(error).message,
        )),
    }
}

struct StepView {
    index: u32,
    name: String,
    status: String,
    duration: String,
    detail: Option<String>,
    flaky: bool,
}

struct LineView {
    seq: i64,
    step: String,
    html: String,
}

#[derive(Template)]
#[template(path = "validation.html")]
struct ValidationPage {
    layout: Layout,
    project_name: String,
    v: ValidationRecord,
    steps: Vec<StepView>,
    lines: Vec<LineView>,
    first_seq: i64,
    last_seq: i64,
    checks: Vec<super::checks::CheckView>,
}

pub async fn validation(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let v = state
        .store
        .validation(ValidationId(id))
        .await
        .map_err(failed)?;
    let project = state.store.project(v.project_id).await.map_err(failed)?;
    let layout = layout(&state, &signed, project.id.0, query.error).await?;
    let lines = state
        .store
        .logs_before(v.id, i64::MAX, LOG_TAIL)
        .await
        .map_err(failed)?;
    let checks = super::checks::checks_of(&state, v.id).await;
    let page = ValidationPage {
        checks,
        layout,
        project_name: project.name,
        steps: v
            .steps
            .iter()
            .map(|s| StepView {
                index: s.index,
                name: s.name.to_string(),
                status: s.status.to_string(),
                duration: s
                    .duration_ms
                    .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                detail: s.detail.clone(),
                flaky: s.flaky,
            })
            .collect(),
        first_seq: lines.first().map(|l| l.seq).unwrap_or(0),
        last_seq: lines.last().map(|l| l.seq).unwrap_or(0),
        lines: lines
            .into_iter()
            .map(|l| LineView {
                seq: l.seq,
                html: ansi::to_html(&l.line),
                step: l.step,
            })
            .collect(),
        v,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct LinesQuery {
    before: i64,
}

/// Earlier log lines as HTML fragments, for "Load earlier lines".
pub async fn earlier_lines(
    State(state): State<AppState>,
    _signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<LinesQuery>,
) -> PageResult {
    let lines = state
        .store
        .logs_before(ValidationId(id), query.before, LOG_TAIL)
        .await
        .map_err(failed)?;
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| serde_json::json!({"seq": l.seq, "step": l.step, "html": ansi::to_html(&l.line)}))
        .collect();
    Ok(Json(serde_json::json!({"lines": lines})).into_response())
}

pub async fn act_on_validation(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let id = ValidationId(id);
    match action.as_str() {
        "retry" => match state.engine.retry(id).await {
            Ok(record) => Ok(Redirect::to(&format!("/validations/{}", record.id)).into_response()),
            Err(error) => Ok(back_with_error(
                &format!("/validations/{id}"),
                &crate::ApiError::from(error).message,
            )),
        },
        "cancel" => {
            state.engine.cancel(id).await.map_err(failed)?;
            Ok(Redirect::to(&format!("/validations/{id}")).into_response())
        }
        _ => Err(PageError::new(StatusCode::NOT_FOUND, "no such action")),
    }
}
