//! The dashboard's pages and the forms they post.

use super::session::Signed;
use super::{back_with_error, render, version, Layout, PageError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use slipway_core::prompt::Goal;
use slipway_core::settings::AgentConfig;
use slipway_core::{Invalid, Project, ProjectDraft, ProjectId, Role};
use slipway_engine::{Options, Target};
use slipway_store::ValidationRecord;

use super::lists::{self, validation_row, Chart, RunRow, ValidationRow};
use super::settings::SettingsForm;

/// A pull request's validations shown with its run or page.
pub(super) const HISTORY: u32 = 200;

pub(super) type PageResult = Result<Response, PageError>;

pub(super) fn failed(error: impl Into<crate::ApiError>) -> PageError {
    PageError::from(error.into())
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub(super) error: Option<String>,
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
        who: (signed.0.caller.name.clone(), signed.0.caller.role.as_str()),
        error,
        notice: None,
        role: signed.0.caller.role,
        open_tab: None,
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
    last_run: Option<Latest>,
    last_validation: Option<Latest>,
    /// The open pull request's number and its address on GitHub, if it is there.
    open_pr: Option<(i64, Option<String>)>,
    chart: Chart,
}

/// A card's newest run or validation: where it links, its state, when it started.
struct Latest {
    href: String,
    id: i64,
    status: String,
    label: String,
    when: lists::When,
}

fn latest(kind: &str, latest: Option<slipway_store::Latest>) -> Option<Latest> {
    latest.map(|l| Latest {
        href: format!("/{kind}/{}", l.id),
        id: l.id,
        label: lists::label(&l.status),
        status: l.status,
        when: lists::when(l.created_at),
    })
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    cards: Vec<Card>,
    github_repos: Vec<String>,
    /// Without Codegen's credentials, a new project's agent is a command.
    has_codegen: bool,
    /// A refused new project: what was typed, and which field was wrong and why.
    typed: Option<NewProjectForm>,
    refused: Option<Invalid>,
    /// The webhook relay Slipway pulls from, if any.
    relay: Option<super::relay::RelayView>,
}

impl HomePage {
    /// The refusal's message when it is about `field`.
    fn error_for(&self, field: &str) -> Option<&str> {
        let refused = self.refused.as_ref()?;
        (refused.field == field).then_some(refused.message.as_str())
    }

    /// A refusal about no single field (shown at the dialog's top).
    fn general_error(&self) -> Option<String> {
        let refused = self.refused.as_ref()?;
        let fields = ["name", "repo", "default_branch", "agent_command"];
        (!fields.contains(&refused.field.as_str())).then(|| refused.to_string())
    }

    /// The agent kind to preselect: as typed, else Codegen when its credentials are set.
    fn agent_is_codegen(&self) -> bool {
        match &self.typed {
            Some(typed) => typed.agent_kind == "codegen",
            None => self.has_codegen,
        }
    }

    fn typed_field(&self, field: &str) -> &str {
        let Some(typed) = &self.typed else {
            return if field == "default_branch" {
                "main"
            } else {
                ""
            };
        };
        match field {
            "name" => &typed.name,
            "repo" => &typed.repo,
            "default_branch" => &typed.default_branch,
            _ => &typed.agent_command,
        }
    }
}

pub async fn home(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let layout = layout(&state, &signed, 0, query.error).await?;
    home_page(&state, layout, None).await
}

async fn home_page(
    state: &AppState,
    layout: Layout,
    refused: Option<(NewProjectForm, Invalid)>,
) -> PageResult {
    let projects = state.store.list_projects().await.map_err(failed)?;
    let mut summaries = state.store.project_summaries().await.map_err(failed)?;
    let cards = projects
        .iter()
        .map(|p| {
            let summary = summaries.remove(&p.id).unwrap_or_default();
            let recent = summary.recent.iter();
            Card {
                id: p.id.0,
                name: p.name.clone(),
                repo: p.repo.clone(),
                has_rules: summary.has_rules,
                chart: lists::chart(recent.map(|r| (r.id, r.status.as_str(), r.duration_ms))),
                last_run: latest("runs", summary.last_run),
                last_validation: latest("validations", summary.last_validation),
                open_pr: summary.open_pr,
            }
        })
        .collect();
    let github_repos = state.engine.github_repositories().await;
    let (typed, refused) = match refused {
        Some((typed, why)) => (Some(typed), Some(why)),
        None => (None, None),
    };
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = HomePage {
        layout,
        cards,
        github_repos,
        has_codegen: state.engine.has_codegen(),
        typed,
        refused,
        relay: super::relay::view(state.relay.as_ref()),
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Deserialize)]
pub struct NewProjectForm {
    #[serde(default)]
    csrf: String,
    name: String,
    repo: String,
    default_branch: String,
    #[serde(default)]
    agent_kind: String,
    #[serde(default)]
    agent_command: String,
}

pub async fn create_project(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<NewProjectForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    let refuse = |form: NewProjectForm, why: Invalid| async {
        let layout = layout(&state, &signed, 0, None).await?;
        home_page(&state, layout, Some((form, why))).await
    };
    if let Err(why) = require(&signed, Role::Admin) {
        let page = refuse(form, Invalid::new("role", why.message)).await?;
        return Ok((why.status, page).into_response());
    }
    let draft = ProjectDraft {
        name: form.name.trim().to_owned(),
        description: String::new(),
        repo: form.repo.trim().to_owned(),
        default_branch: form.default_branch.trim().to_owned(),
    };
    if let Err(invalid) = crate::routes::projects::validate(&draft).await {
        return refuse(form, invalid).await;
    }
    let command = form.agent_command.trim().to_owned();
    let agent = match form.agent_kind.as_str() {
        // No agent yet: a project that only validates; one is set in its settings later.
        "command" if command.is_empty() => None,
        "command" => {
            if let Err(why) = state.engine.check_agent_command(&command) {
                return refuse(form, Invalid::new("agent_command", why)).await;
            }
            Some(AgentConfig::Command {
                command,
                plan_mode: false,
                slipway_mcp: false,
            })
        }
        _ => None,
    };
    let project = match state.store.create_project(&draft).await {
        Ok(project) => project,
        Err(error) => {
            let why = Invalid::new("project", crate::ApiError::from(error).message);
            return refuse(form, why).await;
        }
    };
    // The project page shows how the repository's webhook set-up went.
    state.engine.set_up_webhook(&project).await;
    if let Some(agent) = agent {
        let settings = slipway_core::Settings {
            agent,
            ..slipway_core::Settings::default()
        };
        state
            .store
            .put_settings(project.id, &settings)
            .await
            .map_err(failed)?;
    }
    Ok(Redirect::to(&format!("/projects/{}", project.id)).into_response())
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage<'a> {
    layout: Layout,
    project: Project,
    has_rules: bool,
    planning_statement: String,
    settings: slipway_core::Settings,
    setup_branch: String,
    setup_commands: String,
    /// The settings dialog opens at once (a refused form, shown again).
    reopen_settings: bool,
    /// A refused agent run: its dialog opens at once, holding what was typed.
    run_typed: Option<&'a RunForm>,
    agent_kind: &'static str,
    agent_command: String,
    agent_model: String,
    agent_plan_mode: bool,
    agent_slipway_mcp: bool,
    /// The model the judge and the failure analysis use, if one is configured.
    model: Option<String>,
    /// Tokens the project's models used this month (against `model_tokens_per_month`).
    model_usage: slipway_store::ModelUsage,
    /// The budget's field: as typed (a refused form), else the saved figure (empty: none).
    model_budget_field: String,
    branches: Vec<String>,
    secrets: Vec<(String, String)>,
    /// Names and values.
    variables: Vec<(String, String)>,
    /// The secrets and variables tabs' fields as typed (a refused form), else empty.
    typed: &'a super::settings::Typed,
    runs: Vec<RunRow>,
    /// The runs' next page, if there is one.
    older_runs: Option<String>,
    validations: Vec<ValidationRow>,
    /// Its pull requests: the open ones, then the recent others.
    pulls: Vec<PullRow>,
    /// The validations' filters as chosen, and their next page.
    filters: Filters,
    chart: Chart,
    /// The repository's webhook, for a GitHub project.
    webhook: Option<super::setup::WebhookView>,
    /// The Notifications tab: the targets, and the add form's event boxes.
    notifications: Vec<super::notifications::Row>,
    notification_events: Vec<(&'static str, &'static str, bool)>,
}

/// A pull request as the project page lists it.
pub struct PullRow {
    number: i64,
    title: String,
    state: String,
    head: String,
    base: String,
    when: lists::When,
}

/// How many closed or merged pull requests the project page lists after the open ones.
const RECENT_PULLS: usize = 10;

/// The local forge's pull requests from the store; GitHub's, as its validations name them.
async fn pulls_of(
    state: &AppState,
    project: &Project,
    validations: &[ValidationRecord],
) -> Result<Vec<PullRow>, PageError> {
    if project.location.local_path().is_none() {
        let mut rows: Vec<PullRow> = Vec::new();
        for v in validations {
            let Some(number) = v.pr else { continue };
            if rows.iter().any(|r| r.number == number) {
                continue;
            }
            rows.push(PullRow {
                number,
                title: v.commit_title.clone().unwrap_or_default(),
                state: format!("last validation {}", v.status.as_str()),
                head: v.branch.clone().unwrap_or_default(),
                base: v.base_ref.clone().unwrap_or_default(),
                when: lists::when(v.created_at),
            });
        }
        rows.truncate(RECENT_PULLS * 2);
        return Ok(rows);
    }
    let all = state
        .store
        .list_pull_requests(project.id)
        .await
        .map_err(failed)?;
    let (open, others): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|p| p.state == slipway_store::PullState::Open);
    Ok(open
        .into_iter()
        .chain(others.into_iter().take(RECENT_PULLS))
        .map(|p| PullRow {
            number: p.number,
            title: p.title,
            state: p.state.as_str().to_owned(),
            head: p.head,
            base: p.base,
            when: lists::when(p.updated_at),
        })
        .collect())
}

/// The project page's list filters and cursors (`?status=…&branch=…&cursor=…`).
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    runs_cursor: String,
}

struct Filters {
    status: String,
    branch: String,
    statuses: [&'static str; 6],
    /// The first page's link, when this is a later one or filtered.
    reset: Option<String>,
    older: Option<String>,
}

static NOTHING_TYPED: std::sync::LazyLock<super::settings::Typed> =
    std::sync::LazyLock::new(Default::default);

/// A project page's list length.
const PAGE: u32 = 50;

pub async fn project(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
    Query(lists): Query<ListQuery>,
    Query(saved): Query<super::settings::Saved>,
) -> PageResult {
    let mut layout = layout(&state, &signed, id, query.error).await?;
    layout.notice = saved.notice();
    project_page(&state, layout, ProjectId(id), None, None, &lists).await
}

/// The project page; with `typed`, the settings dialog opens again holding what was typed
/// (a form that was refused keeps its text).
pub(super) async fn project_page(
    state: &AppState,
    layout: Layout,
    id: ProjectId,
    typed: Option<(slipway_core::Settings, &SettingsForm)>,
    run: Option<&RunForm>,
    lists: &ListQuery,
) -> PageResult {
    let project = state.store.project(id).await.map_err(failed)?;
    let (settings, typed_form) = match typed {
        Some((settings, form)) => (settings, Some(form)),
        None => (state.store.settings(id).await.map_err(failed)?, None),
    };
    let runs_after = lists.runs_cursor.parse().ok();
    let mut runs = state
        .store
        .runs_of_project(id, runs_after, PAGE)
        .await
        .map_err(failed)?;
    let masker = state.engine.output_masker(id).await.map_err(failed)?;
    for run in &mut runs {
        slipway_engine::masking::mask_run(run, &masker);
    }
    let query = crate::routes::validations::ListQuery {
        limit: None,
        cursor: Some(lists.cursor.clone()).filter(|c| !c.is_empty()),
        status: Some(lists.status.clone()),
        branch: Some(lists.branch.clone()),
    };
    let filter = crate::routes::validations::filter(&query).map_err(PageError::from)?;
    let validations = state
        .store
        .list_validations(id, &filter, PAGE)
        .await
        .map_err(failed)?;
    let validations = state
        .engine
        .masked_validations(validations)
        .await
        .map_err(failed)?;
    let recent = state.store.recent_validations(id).await.map_err(failed)?;
    let secrets = state.store.list_secrets(id).await.map_err(failed)?;
    let variables = state.store.list_variables(id).await.map_err(failed)?;
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
    let agent_slipway_mcp = match (&settings.agent, typed_form) {
        (_, Some(form)) if form.agent_kind.is_some() => form.agent_slipway_mcp.is_some(),
        (AgentConfig::Command { slipway_mcp, .. }, _) => *slipway_mcp,
        _ => false,
    };
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
            (
                AgentConfig::Command {
                    command, plan_mode, ..
                },
                _,
            ) => ("command", command.clone(), String::new(), *plan_mode),
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
    let pulls = pulls_of(state, &project, &validations).await?;
    let page = ProjectPage {
        notifications: super::notifications::rows(state, project.id)
            .await
            .map_err(failed)?,
        notification_events: super::notifications::all_events(),
        webhook: super::setup::webhook_view(state, &project).await,
        model: state.engine.model(),
        model_usage: state.store.model_usage(project.id).await.map_err(failed)?,
        pulls,
        model_budget_field: typed_form
            .and_then(|form| form.model_tokens_per_month.clone())
            .unwrap_or_else(|| match settings.model_tokens_per_month {
                0 => String::new(),
                tokens => tokens.to_string(),
            }),
        reopen_settings: typed_form.is_some(),
        run_typed: run,
        agent_kind,
        agent_command,
        agent_model,
        agent_plan_mode,
        agent_slipway_mcp,
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
        variables: variables.into_iter().map(|v| (v.name, v.value)).collect(),
        typed: typed_form.map_or(&NOTHING_TYPED, |form| &form.typed),
        older_runs: (runs.len() == PAGE as usize)
            .then(|| {
                runs.last()
                    .map(|r| format!("/projects/{id}?runs_cursor={}#runs-title", r.id))
            })
            .flatten(),
        runs: runs.iter().map(lists::run_row).collect(),
        filters: filters(id, lists, &validations),
        chart: lists::chart(
            recent
                .iter()
                .map(|r| (r.id, r.status.as_str(), r.duration_ms)),
        ),
        validations: validations.iter().map(validation_row).collect(),
        settings,
        project,
    };
    Ok(render(&page))
}

fn filters(id: ProjectId, lists: &ListQuery, page: &[ValidationRecord]) -> Filters {
    let link = |cursor: Option<i64>| {
        let mut params = vec![
            ("status", lists.status.as_str()),
            ("branch", lists.branch.as_str()),
        ];
        let cursor = cursor.map(|c| c.to_string()).unwrap_or_default();
        params.push(("cursor", &cursor));
        params.retain(|(_, v)| !v.is_empty());
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        format!("/projects/{id}?{query}#validations-title")
    };
    let filtered = !(lists.status.is_empty() && lists.branch.is_empty() && lists.cursor.is_empty());
    Filters {
        status: lists.status.clone(),
        branch: lists.branch.clone(),
        statuses: [
            "queued",
            "running",
            "passed",
            "failed",
            "error",
            "cancelled",
        ],
        reset: filtered.then(|| format!("/projects/{id}#validations-title")),
        older: (page.len() == PAGE as usize)
            .then(|| page.last().map(|v| link(Some(v.id.0))))
            .flatten(),
    }
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

/// The project page again with the run dialog open, holding what was typed, and why not.
async fn refused_run(
    state: &AppState,
    signed: &Signed,
    id: i64,
    form: &RunForm,
    (status, why): (StatusCode, String),
) -> PageResult {
    let layout = layout(state, signed, id, Some(why)).await?;
    let lists = ListQuery::default();
    let page = project_page(state, layout, ProjectId(id), None, Some(form), &lists).await?;
    Ok((status, page).into_response())
}

pub async fn start_run(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Form(form): Form<RunForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    if let Err(why) = require(&signed, Role::Operator) {
        return refused_run(&state, &signed, id, &form, (why.status, why.message)).await;
    }
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let optional = |text: &String| Some(text.clone()).filter(|t| !t.trim().is_empty());
    let goal = Goal {
        text: form.goal.clone(),
        requirements: optional(&form.requirements),
        acceptance_criteria: optional(&form.acceptance_criteria),
    };
    match state
        .engine
        .start_run(&project, goal, &signed.0.caller.name)
        .await
    {
        Ok(run) => Ok(Redirect::to(&format!("/runs/{}", run.id)).into_response()),
        Err(error) => {
            let why = crate::ApiError::from(error);
            refused_run(&state, &signed, id, &form, (why.status, why.message)).await
        }
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
    let options = Options {
        started_by: Some(signed.0.caller.name.clone()),
        ..Options::default()
    };
    submit_branch(&state, &project, form.branch, options).await
}

pub(super) async fn submit_branch(
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
