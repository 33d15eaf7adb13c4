//! A validation's page: its steps as a pipeline, browser checks, and the log (its tail,
//! earlier lines on demand); retry and cancel.

use super::session::{CsrfForm, Signed};
use super::{ansi, back_with_error, render, Layout, PageError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::{Form, Json};
use serde::Deserialize;
use slipway_core::validation::{self, StepStatus};
use slipway_core::{Role, ValidationId};
use slipway_store::ValidationRecord;

use super::pages::{failed, layout, require, PageQuery, PageResult};

/// Lines of a validation's log rendered with its page; earlier ones load on demand.
const LOG_TAIL: u32 = 500;

struct StepView {
    index: u32,
    name: String,
    status: String,
    label: String,
    duration: String,
    /// A running step's start: the page counts its elapsed time on.
    since: Option<String>,
    detail: Option<String>,
    flaky: bool,
}

/// A failed step's command, in full, and how it ended.
struct Failure {
    step: String,
    command: String,
    exit_code: Option<i32>,
    detail: Option<String>,
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
    /// Steps whose section is absent, folded into one line.
    unconfigured: Vec<String>,
    failures: Vec<Failure>,
    /// The agent run whose pull request this validates.
    run: Option<i64>,
    when: super::lists::When,
    took: super::lists::Took,
    lines: Vec<LineView>,
    first_seq: i64,
    last_seq: i64,
    checks: Vec<super::checks::CheckView>,
    judge: Option<super::judge::JudgeView>,
    analysis: Option<super::judge::AnalysisView>,
    findings: Vec<super::findings::FileFindings>,
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
    // Commands and messages may hold a secret written literally: masked as the log is.
    let v = state.engine.masked_validation(v).await.map_err(failed)?;
    let project = state.store.project(v.project_id).await.map_err(failed)?;
    let layout = layout(&state, &signed, project.id.0, query.error).await?;
    let lines = state
        .store
        .logs_before(v.id, i64::MAX, LOG_TAIL)
        .await
        .map_err(failed)?;
    let checks = super::checks::checks_of(&state, v.id).await;
    let judge = super::judge::judge_of(&state, v.id).await;
    let analysis = super::judge::analysis_of(&state, v.id).await;
    let findings = super::findings::findings_of(&state, v.id).await;
    let run = match v.pr {
        Some(pr) => state
            .store
            .newest_run_of_pull_request(project.id, pr)
            .await
            .map_err(failed)?
            .map(|r| r.id),
        None => None,
    };
    let (folded, shown): (Vec<_>, Vec<_>) = v.steps.iter().partition(|s| {
        s.status == StepStatus::Skipped
            && s.detail.as_deref().is_some_and(validation::not_configured)
    });
    let page = ValidationPage {
        checks,
        judge,
        analysis,
        findings,
        layout,
        project_name: project.name,
        run,
        when: super::lists::when(v.created_at),
        took: super::lists::took(v.started_at, v.finished_at),
        unconfigured: folded.iter().map(|s| s.name.to_string()).collect(),
        failures: shown
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error))
            .map(|s| Failure {
                step: s.name.to_string(),
                command: s.command.clone().unwrap_or_default(),
                exit_code: s.exit_code,
                detail: s.detail.clone(),
            })
            .collect(),
        steps: shown
            .iter()
            .map(|s| StepView {
                index: s.index,
                name: s.name.to_string(),
                status: s.status.to_string(),
                label: super::lists::label(&s.status.to_string()),
                duration: s
                    .duration_ms
                    .map(super::lists::duration)
                    .unwrap_or_default(),
                since: (s.status == StepStatus::Running)
                    .then(|| super::lists::took(s.started_at, None).since)
                    .flatten(),
                // A failed command is said in full below the steps; its card says how it ended.
                detail: match (s.command.is_some(), s.exit_code) {
                    (true, Some(code)) if s.status == StepStatus::Failed => {
                        Some(format!("exited with code {code}"))
                    }
                    _ => s.detail.clone(),
                },
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
