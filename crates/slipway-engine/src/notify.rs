//! Notifications: what a message says about a finished validation, a merge or a run that
//! needs a person, and [`emit`], the one place such a moment becomes queued deliveries (one
//! `notification` job per subscribed target, see `job.rs`; sending is `send.rs`).

pub(crate) mod job;
pub(crate) mod send;

use crate::Engine;
use slipway_core::notify::message::{self, Message, ProjectRef, PullInfo, RunInfo, ValidationInfo};
use slipway_core::notify::{NotifyEvent, TargetKind};
use slipway_core::run::RunStatus;
use slipway_core::validation::{StepStatus, ValidationStatus};
use slipway_core::{Project, ProjectId, ValidationId};
use slipway_store::{RunRecord, StoreError};

pub use send::Sent;

/// Queues one delivery of `message` to every enabled target of the project that subscribes
/// to `event`. Never fails its caller: a delivery that cannot be queued is logged.
pub(crate) async fn emit(
    engine: &Engine,
    project: ProjectId,
    event: NotifyEvent,
    message: Message,
) {
    let store = &engine.inner.store;
    let targets = match store.notification_targets_for(project, event).await {
        Ok(targets) => targets,
        Err(error) => {
            tracing::error!(%error, event = event.as_str(), "notification targets not read");
            return;
        }
    };
    if targets.is_empty() {
        return;
    }
    let timestamp = crate::notify::job::now_rfc3339();
    for target in targets {
        let queued = job::enqueue(engine, &target, Some(event), &message, &timestamp).await;
        if let Err(error) = queued {
            tracing::error!(%error, target = target.id, "a notification was not queued");
        }
    }
}

/// A link to a dashboard page: absolute with `SLIPWAY_PUBLIC_URL`, else the path.
fn page(engine: &Engine, path: &str) -> String {
    match engine.public_url() {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path.to_owned(),
    }
}

/// A pull request's link: the local forge's are dashboard paths, made absolute like pages.
fn linked(engine: &Engine, url: String) -> String {
    match url.starts_with('/') {
        true => page(engine, &url),
        false => url,
    }
}

fn project_ref(project: &Project) -> ProjectRef {
    ProjectRef {
        id: project.id.0,
        name: project.name.clone(),
    }
}

/// A validation reached its verdict: `validation.finished`, with the failing step and the
/// end of its log.
pub(crate) async fn validation_finished(engine: &Engine, id: ValidationId) {
    match validation_message(engine, id).await {
        Ok((project, message)) => {
            emit(engine, project, NotifyEvent::ValidationFinished, message).await
        }
        Err(error) => tracing::error!(validation = %id, %error, "no notification for it"),
    }
}

async fn validation_message(
    engine: &Engine,
    id: ValidationId,
) -> Result<(ProjectId, Message), StoreError> {
    let store = &engine.inner.store;
    let validation = store.validation(id).await?;
    let project = store.project(validation.project_id).await?;
    let failing = validation
        .steps
        .iter()
        .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Error));
    let log_tail = match failing {
        Some(step) => {
            let lines = store.logs_before(id, i64::MAX, 400).await?;
            let mut tail: Vec<String> = lines
                .into_iter()
                .filter(|l| l.step == step.name.as_str())
                .map(|l| l.line)
                .collect();
            let keep = tail.len().saturating_sub(message::LOG_TAIL_LINES);
            tail.drain(..keep);
            tail
        }
        None => Vec::new(),
    };
    let status = validation.status.as_str();
    let mut summary = format!("Validation {id} of {} {status}", project.name);
    if let Some(step) = failing {
        summary.push_str(&format!(" at {}", step.name.as_str()));
    }
    let pull_request = match (validation.pr, engine.forge(&project)) {
        (Some(number), Some(forge)) => Some(PullInfo {
            number,
            url: linked(engine, slipway_forge::Forge::url(&forge, number)),
            // The local forge keeps titles; GitHub's is not asked for here.
            title: store
                .pull_request(project.id, number)
                .await
                .ok()
                .map(|pr| pr.title),
        }),
        _ => None,
    };
    let detail = failing.and_then(|s| s.detail.clone()).or_else(|| {
        (validation.status == ValidationStatus::Error)
            .then(|| validation.error.clone())
            .flatten()
    });
    let message = Message {
        summary,
        project: project_ref(&project),
        url: page(engine, &format!("/validations/{id}")),
        validation: Some(ValidationInfo {
            id: id.0,
            status: status.to_owned(),
            branch: validation.branch.clone(),
            sha: validation.sha.clone(),
            failing_step: failing.map(|s| s.name.as_str().to_owned()),
            detail: detail.map(|d| message::bounded(&d)),
            log_tail,
        }),
        run: None,
        pull_request,
    };
    Ok((project.id, message))
}

/// A pull request was merged: `pull_request.merged`.
pub(crate) async fn pull_request_merged(
    engine: &Engine,
    project: &Project,
    number: i64,
    url: &str,
    title: &str,
) {
    let message = Message {
        summary: format!("Pull request #{number} of {} was merged", project.name),
        project: project_ref(project),
        url: page(engine, &format!("/projects/{}/pulls/{number}", project.id)),
        validation: None,
        run: None,
        pull_request: Some(PullInfo {
            number,
            url: linked(engine, url.to_owned()),
            title: Some(title.to_owned()),
        }),
    };
    emit(engine, project.id, NotifyEvent::PullRequestMerged, message).await;
}

/// A run changed to `status`: waiting for a person (`run.needs_input`), or its fix loop
/// ended without a pass (`fix.gave_up`).
pub(crate) async fn run_changed(engine: &Engine, run: &RunRecord, status: RunStatus) {
    let Some(event) = slipway_core::notify::run_event(status, run.pr_number.is_some()) else {
        return;
    };
    let Ok(project) = engine.inner.store.project(run.project_id).await else {
        return;
    };
    let (summary, waiting_for, text) = match event {
        NotifyEvent::RunNeedsInput => {
            let (what, text) = match &run.response {
                Some(slipway_core::run::Response::Plan { text }) => ("plan", text.clone()),
                Some(slipway_core::run::Response::Reply { text }) => ("reply", text.clone()),
                _ => ("reply", run.note.clone().unwrap_or_default()),
            };
            let asks = if what == "plan" {
                "a plan to confirm"
            } else {
                "a reply to continue"
            };
            let summary = format!("Run {} of {} waits for you: {asks}", run.id, project.name);
            (summary, Some(what.to_owned()), text)
        }
        _ => {
            let summary = format!("The fix loop of run {} ({}) gave up", run.id, project.name);
            (summary, None, run.note.clone().unwrap_or_default())
        }
    };
    let message = Message {
        summary,
        project: project_ref(&project),
        url: page(engine, &format!("/runs/{}", run.id)),
        validation: None,
        run: Some(RunInfo {
            id: run.id,
            status: status.as_str().to_owned(),
            goal: message::bounded(&run.goal),
            waiting_for,
            text: (!text.is_empty()).then(|| message::bounded(&text)),
        }),
        pull_request: run
            .pr_number
            .zip(run.pr_url.clone())
            .map(|(number, url)| PullInfo {
                number,
                url: linked(engine, url),
                title: None,
            }),
    };
    emit(engine, project.id, event, message).await;
}

/// The message of "send a test".
pub(crate) fn test_message(engine: &Engine, project: &Project, kind: TargetKind) -> Message {
    Message {
        summary: format!(
            "Slipway test notification for {}: this {} target receives notifications",
            project.name,
            kind.as_str()
        ),
        project: project_ref(project),
        url: page(engine, &format!("/projects/{}", project.id)),
        validation: None,
        run: None,
        pull_request: None,
    }
}

/// A new `whsec_` signing secret for a `webhook` target.
pub fn new_notification_secret() -> String {
    send::new_secret()
}

impl Engine {
    /// Checks a target's URL now: its form, https (http only for allowed hosts) and the
    /// addresses its host resolves to. The same rules hold again at every send.
    pub async fn check_notification_url(
        &self,
        url: &str,
    ) -> Result<(), slipway_core::notify::UrlRefused> {
        send::check_resolved(url, self.inner.notifier.allow_list()).await
    }

    /// "Send a test": one test notification to `target` now, recorded in its health like
    /// any other; returns how it went (a disabled target is tried too, as asked).
    pub async fn send_test_notification(
        &self,
        project: &Project,
        target: &slipway_store::Target,
    ) -> Result<Sent, StoreError> {
        let message = test_message(self, project, target.kind);
        let payload = job::Payload::new(target, None, &message, &job::now_rfc3339());
        job::deliver(self, target, &payload).await
    }
}
