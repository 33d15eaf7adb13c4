//! A run's page: its whole conversation as one timeline (the goal, each answer, each
//! person's reply, each fix attempt with its evidence), what the answer allows, and its pull
//! request's validations.

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
use slipway_store::{FixAttempt, RunMessage, RunRecord};

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
    /// The pull request's page here, and its address on GitHub.
    pr_url: Option<(i64, String, Option<String>)>,
    /// The goal's first line, the page's title.
    title: String,
    when: super::lists::When,
    took: super::lists::Took,
    awaiting: bool,
    can_cancel: bool,
    /// A failed or cancelled run can be started again with the same goal.
    can_rerun: bool,
    validations: Vec<ValidationRow>,
    timeline: Vec<Entry>,
}

/// One moment of a run's conversation.
struct Entry {
    /// `person`, `agent` or `slipway` (a fix attempt).
    who: &'static str,
    title: String,
    at: time::OffsetDateTime,
    when: super::lists::When,
    text: String,
    /// The validation a fix attempt is about.
    validation: Option<i64>,
}

/// The goal, the messages and the fix attempts, in the order they happened.
fn timeline(run: &RunRecord, messages: Vec<RunMessage>, attempts: Vec<FixAttempt>) -> Vec<Entry> {
    let mut goal = run.goal.clone();
    for (heading, text) in [
        ("Requirements", &run.requirements),
        ("Acceptance criteria", &run.acceptance_criteria),
    ] {
        if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
            goal.push_str(&format!("\n\n{heading}:\n{text}"));
        }
    }
    let mut entries = vec![Entry {
        who: "person",
        title: "You · goal".into(),
        at: run.created_at,
        when: super::lists::when(run.created_at),
        text: goal,
        validation: None,
    }];
    entries.extend(messages.into_iter().map(|m| Entry {
        who: if m.who == "agent" { "agent" } else { "person" },
        title: format!(
            "{} · {}",
            if m.who == "agent" { "Agent" } else { "You" },
            m.kind.replace('_', " ")
        ),
        at: m.at,
        when: super::lists::when(m.at),
        text: m.text,
        validation: None,
    }));
    entries.extend(attempts.into_iter().map(|a| Entry {
        who: "slipway",
        title: match &a.outcome {
            Some(outcome) => format!("Slipway · fix {} ({outcome})", a.number),
            None => format!("Slipway · fix {}", a.number),
        },
        at: a.created_at,
        when: super::lists::when(a.created_at),
        text: a.evidence,
        validation: Some(a.validation_id),
    }));
    entries.sort_by_key(|e| e.at);
    entries
}

pub async fn run(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let run = state.store.run(id).await.map_err(failed)?;
    let run = state.engine.masked_run(run).await.map_err(failed)?;
    let project = state.store.project(run.project_id).await.map_err(failed)?;
    let layout = layout(&state, &signed, project.id.0, query.error).await?;
    let attempts = state.store.fix_attempts(id).await.map_err(failed)?;
    let mut messages = state.store.run_messages(id).await.map_err(failed)?;
    let masker = state
        .engine
        .output_masker(run.project_id)
        .await
        .map_err(failed)?;
    for message in &mut messages {
        message.text = masker.mask(&message.text).into_owned();
    }
    let validations = match run.pr_number {
        Some(pr) => state
            .store
            .pull_request_validations(project.id, pr, HISTORY)
            .await
            .map_err(failed)?,
        None => Vec::new(),
    };
    let validations = state
        .engine
        .masked_validations(validations)
        .await
        .map_err(failed)?;
    let (reply, plan, pr_url) = match &run.response {
        Some(Answer::Reply { text }) => (Some(text.clone()), None, None),
        Some(Answer::Plan { text }) => (None, Some(text.clone()), None),
        // Its page here, and GitHub's when it is there.
        Some(Answer::PullRequest { url, number, .. }) => (
            None,
            None,
            Some((
                *number,
                format!("/projects/{}/pulls/{number}", project.id),
                Some(url.clone()).filter(|u| u.starts_with("https://")),
            )),
        ),
        None => (None, None, None),
    };
    let page = RunPage {
        layout,
        project_name: project.name,
        note: run.note.clone().filter(|n| !n.is_empty()),
        reply,
        plan,
        pr_url,
        title: slipway_core::turn::headline(&run.goal, 120),
        when: super::lists::when(run.created_at),
        took: super::lists::took(
            Some(run.created_at),
            run.status.is_final().then_some(run.updated_at),
        ),
        awaiting: run.status == RunStatus::AwaitingInput,
        can_cancel: !run.status.is_final(),
        can_rerun: matches!(run.status, RunStatus::Failed | RunStatus::Cancelled),
        validations: validations.iter().map(validation_row).collect(),
        timeline: timeline(&run, messages, attempts),
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
        "rerun" => return rerun(&state, &signed, id).await,
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

/// A new run with the same goal, requirements and acceptance criteria as a failed one.
async fn rerun(state: &AppState, signed: &Signed, id: i64) -> PageResult {
    let here = format!("/runs/{id}");
    let run = state.store.run(id).await.map_err(failed)?;
    if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
        return Ok(back_with_error(
            &here,
            "only a failed or cancelled run can be run again; this one has not ended that way",
        ));
    }
    let project = state.store.project(run.project_id).await.map_err(failed)?;
    let goal = slipway_core::prompt::Goal {
        text: run.goal,
        requirements: run.requirements,
        acceptance_criteria: run.acceptance_criteria,
    };
    match state
        .engine
        .start_run(&project, goal, &signed.0.caller.name)
        .await
    {
        Ok(new) => Ok(Redirect::to(&format!("/runs/{}", new.id)).into_response()),
        Err(error) => Ok(back_with_error(
            &here,
            &crate::ApiError::from(error).message,
        )),
    }
}
