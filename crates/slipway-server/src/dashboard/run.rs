//! A run's page: its conversation, its answer and what it allows, its pull request's
//! validations and fix attempts.

use super::session::Signed;
use super::{back_with_error, render, Layout, PageError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use slipway_core::run::{Response as Answer, RunStatus};
use slipway_core::Role;
use slipway_engine::RunAnswer;
use slipway_store::{FixAttempt, RunRecord};

use super::lists::{validation_row, ValidationRow};

use super::pages::{failed, layout, require, PageQuery, PageResult, HISTORY};

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
