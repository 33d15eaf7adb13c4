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
    let page = ValidationPage {
        checks,
        judge,
        analysis,
        findings,
        layout,
        project_name: project.name,
        steps: v
            .steps
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
