//! A pull request's page: its state, head and base, its validations, the run that opened it,
//! the merge decision and why — and, for the local forge, Merge and Close.

use super::lists::{validation_row, ValidationRow};
use super::pages::{failed, layout, require, PageQuery, PageResult};
use super::session::{CsrfForm, Signed};
use super::{back_with_error, render, Layout, PageError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use slipway_core::{ProjectId, Role};

#[derive(Template)]
#[template(path = "pull.html")]
struct PullPage {
    layout: Layout,
    project_id: i64,
    project_name: String,
    number: i64,
    title: String,
    state: String,
    head: String,
    base: String,
    head_sha: String,
    note: Option<String>,
    /// Where the pull request also lives (GitHub).
    external: Option<String>,
    /// The local forge's pull requests can be merged and closed here.
    local: bool,
    run: Option<i64>,
    validations: Vec<ValidationRow>,
    /// When it was opened and, once merged, when (the local forge's record).
    opened: Option<super::lists::When>,
    merged: Option<super::lists::When>,
    files: Vec<FileView>,
    commits: Vec<slipway_forge::CommitInfo>,
    /// Why the changes could not be read from the forge.
    changes_error: Option<String>,
}

/// A changed file and its patch, line by line, each marked as added, removed or a hunk.
struct FileView {
    path: String,
    status: String,
    additions: usize,
    deletions: usize,
    lines: Vec<(&'static str, String)>,
}

fn file_view(file: slipway_forge::FileChange) -> FileView {
    let lines: Vec<(&'static str, String)> = file
        .patch
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|line| {
            let kind = match line.as_bytes().first() {
                Some(b'+') => "add",
                Some(b'-') => "del",
                Some(b'@') => "hunk",
                _ => "ctx",
            };
            (kind, line.to_owned())
        })
        .collect();
    FileView {
        additions: lines.iter().filter(|l| l.0 == "add").count(),
        deletions: lines.iter().filter(|l| l.0 == "del").count(),
        path: file.path,
        status: file.status,
        lines,
    }
}

pub async fn pull(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, number)): Path<(i64, i64)>,
    Query(query): Query<PageQuery>,
) -> PageResult {
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let layout = layout(&state, &signed, id, query.error).await?;
    let validations = state
        .store
        .pull_request_validations(project.id, number, 50)
        .await
        .map_err(failed)?;
    let validations = state
        .engine
        .masked_validations(validations)
        .await
        .map_err(failed)?;
    let run = state
        .store
        .newest_run_of_pull_request(project.id, number)
        .await
        .map_err(failed)?
        .map(|r| r.id);
    let newest = validations.first();
    let mut page = PullPage {
        layout,
        project_id: id,
        project_name: project.name.clone(),
        number,
        title: format!("Pull request #{number}"),
        state: "open".into(),
        head: newest.and_then(|v| v.branch.clone()).unwrap_or_default(),
        base: newest.and_then(|v| v.base_ref.clone()).unwrap_or_default(),
        head_sha: newest.map(|v| v.sha.clone()).unwrap_or_default(),
        note: None,
        external: project
            .location
            .github()
            .map(|repo| format!("https://github.com/{repo}/pull/{number}")),
        local: project.location.local_path().is_some(),
        run,
        validations: validations.iter().map(validation_row).collect(),
        opened: None,
        merged: None,
        files: Vec::new(),
        commits: Vec::new(),
        changes_error: None,
    };
    match state.engine.pull_request_changes(&project, number).await {
        Some(Ok((files, commits))) => {
            page.files = files.into_iter().map(file_view).collect();
            page.commits = commits;
        }
        Some(Err(error)) => page.changes_error = Some(format!("{error:#}")),
        None => {
            page.changes_error =
                Some("this project's forge cannot be asked (no GitHub credentials)".into())
        }
    }
    if page.local {
        let pr = state
            .store
            .pull_request(project.id, number)
            .await
            .map_err(failed)?;
        page.title = pr.title;
        page.state = pr.state.as_str().to_owned();
        page.head = pr.head;
        page.base = pr.base;
        page.head_sha = pr.head_sha;
        page.note = pr.note;
        page.opened = Some(super::lists::when(pr.created_at));
        page.merged = (page.state == "merged").then(|| super::lists::when(pr.updated_at));
    }
    Ok(render(&page))
}

/// `POST /projects/{id}/pulls/{number}/{merge|close}` (operator).
pub async fn act(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, number, action)): Path<(i64, i64, String)>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check(&form.csrf)?;
    require(&signed, Role::Operator)?;
    let project = state.store.project(ProjectId(id)).await.map_err(failed)?;
    let here = format!("/projects/{id}/pulls/{number}");
    let result = match action.as_str() {
        "merge" => state
            .engine
            .merge_pull_request(&project, number)
            .await
            .map(drop),
        "close" => state
            .engine
            .close_pull_request(&project, number)
            .await
            .map(drop),
        _ => return Err(PageError::new(StatusCode::NOT_FOUND, "no such action")),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&here).into_response()),
        Err(error) => Ok(back_with_error(&here, &error.to_string())),
    }
}
