//! Acting on stored webhook deliveries: pull requests are validated (again when their base
//! branch is changed), closed ones cancelled, `/slipway retry` from someone with write access
//! validates again, and so does the "Re-run" button of Slipway's check (`check_run` or
//! `check_suite` `rerequested`); an approval (`pull_request_review` submitted) of a pull
//! request whose newest validation passed on its head runs the merge controller again,
//! without a new validation. Everything else is
//! recorded and ignored. Deliveries are processed one at a time, in the order they came.

use crate::{Engine, Target};
use slipway_core::Project;
use slipway_forge::webhook::{self, Comment, Event, PullRequest, Rerequested};
use slipway_store::DeliveryState;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const IDLE_POLL: Duration = Duration::from_secs(1);
const BATCH: u32 = 100;

pub(crate) async fn work(engine: Engine, shutdown: CancellationToken) {
    let inner = &engine.inner;
    while !shutdown.is_cancelled() {
        match process_pending(&engine).await {
            Ok(0) => tokio::select! {
                _ = inner.webhook_wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.cancelled() => {}
            },
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "could not read pending deliveries");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// The lease of the one process that acts on deliveries (several servers may take them in),
/// so a processor that died hands over within it. Renewed before a delivery once a third of
/// it has passed (not before each one: a renewal is a commit, which on PostgreSQL waits for
/// a disk flush that webhook intake needs).
const PROCESSOR: &str = "webhook-processor";
const PROCESSOR_LEASE: Duration = Duration::from_secs(30);
const PROCESSOR_RENEWAL: Duration = Duration::from_secs(10);

/// Processes the deliveries that are due, oldest first; returns how many. Only the process
/// holding the processor's lease acts, so a delivery is acted on once and in order.
pub(crate) async fn process_pending(engine: &Engine) -> anyhow::Result<usize> {
    let store = &engine.inner.store;
    let owner = engine.owner();
    let mut renewed = Instant::now();
    if !store.hold_lease(PROCESSOR, owner, PROCESSOR_LEASE).await? {
        return Ok(0);
    }
    let pending = store.pending_deliveries(BATCH).await?;
    for delivery_id in &pending {
        if renewed.elapsed() >= PROCESSOR_RENEWAL {
            renewed = Instant::now();
            if !store.hold_lease(PROCESSOR, owner, PROCESSOR_LEASE).await? {
                break;
            }
        }
        let recorded = match process(engine, delivery_id).await {
            Ok((state, note)) => {
                tracing::info!(delivery = %delivery_id, state = state.as_str(), note = %note, "delivery processed");
                store.finish_delivery(delivery_id, state, &note).await
            }
            Err(Failed::Payload(note)) => {
                tracing::warn!(delivery = %delivery_id, %note, "delivery unreadable");
                store
                    .finish_delivery(delivery_id, DeliveryState::Failed, &note)
                    .await
            }
            Err(Failed::Infrastructure(error)) => {
                tracing::error!(delivery = %delivery_id, %error, "delivery processing failed; will retry");
                store
                    .retry_delivery_later(delivery_id, &error.to_string())
                    .await
            }
        };
        recorded?;
    }
    Ok(pending.len())
}

enum Failed {
    /// The payload is not what GitHub documents: retrying will not help.
    Payload(String),
    Infrastructure(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failed {
    fn from(error: E) -> Self {
        Failed::Infrastructure(error.into())
    }
}

/// What to record of a delivery: its state and a note saying what was done.
type Processed = (DeliveryState, String);

async fn process(engine: &Engine, delivery_id: &str) -> Result<Processed, Failed> {
    let delivery = engine.inner.store.delivery(delivery_id).await?;
    let event = webhook::parse(&delivery.event, &delivery.payload)
        .map_err(|e| Failed::Payload(e.to_string()))?;
    match event {
        Event::Ping => Ok((DeliveryState::Processed, "ping".into())),
        Event::Other { name } => Ok((
            DeliveryState::Ignored,
            format!("{name} events are recorded, not acted on"),
        )),
        Event::PullRequest(pr) => {
            let projects = engine
                .inner
                .store
                .projects_on_github_repo(&pr.repository)
                .await?;
            if projects.is_empty() {
                return Ok((
                    DeliveryState::Ignored,
                    format!("no project is on {}", pr.repository),
                ));
            }
            let mut notes = Vec::new();
            for project in &projects {
                notes.push(pull_request(engine, project, &pr).await?);
            }
            Ok((DeliveryState::Processed, notes.join("; ")))
        }
        Event::Rerequested(check) => {
            let projects = engine
                .inner
                .store
                .projects_on_github_repo(&check.repository)
                .await?;
            if projects.is_empty() {
                return Ok((
                    DeliveryState::Ignored,
                    format!("no project is on {}", check.repository),
                ));
            }
            let mut numbers = check.pull_requests.clone();
            if numbers.is_empty() {
                // GitHub names no pull request for a fork's head: find the open ones at it.
                if let Some(github) = &engine.inner.config.github {
                    numbers = github
                        .open_pulls(&check.repository)
                        .await?
                        .into_iter()
                        .filter(|pull| pull.head_sha == check.head_sha)
                        .map(|pull| pull.number)
                        .collect();
                }
            }
            if numbers.is_empty() {
                return Ok((
                    DeliveryState::Ignored,
                    format!(
                        "{}.rerequested: no open pull request is at {}",
                        check.event, check.head_sha
                    ),
                ));
            }
            let mut notes = Vec::new();
            for project in &projects {
                for number in &numbers {
                    notes.push(rerun(engine, project, *number, &check).await?);
                }
            }
            Ok((DeliveryState::Processed, notes.join("; ")))
        }
        Event::Review(review) => {
            if !review.approves() {
                // A comment, a change request, a dismissal: nothing merges because of it,
                // and what is merged stays merged.
                return Ok((
                    DeliveryState::Ignored,
                    format!(
                        "pull_request_review.{} ({}) needs nothing",
                        review.action, review.state
                    ),
                ));
            }
            let projects = engine
                .inner
                .store
                .projects_on_github_repo(&review.repository)
                .await?;
            if projects.is_empty() {
                return Ok((
                    DeliveryState::Ignored,
                    format!("no project is on {}", review.repository),
                ));
            }
            let mut notes = Vec::new();
            for project in &projects {
                let note = crate::merging::after_approval(
                    engine,
                    project,
                    review.number,
                    Some(&review.head_sha),
                )
                .await?;
                notes.push(format!(
                    "{}: approval by {}: {note}",
                    project.name, review.reviewer
                ));
            }
            Ok((DeliveryState::Processed, notes.join("; ")))
        }
        Event::Comment(comment) => {
            if comment.action != "created" || !comment.on_pull_request || !comment.asks_for_retry()
            {
                return Ok((
                    DeliveryState::Ignored,
                    "not a /slipway retry comment on a pull request".into(),
                ));
            }
            // Ask GitHub for the author's permission when a client is configured; the
            // payload's author_association is only a hint (a collaborator may be read-only).
            let may_write = match &engine.inner.config.github {
                Some(github) => {
                    github
                        .can_write(&comment.repository, &comment.author)
                        .await?
                }
                None => comment.author_may_write(),
            };
            if !may_write {
                return Ok((
                    DeliveryState::Ignored,
                    format!(
                        "{} ({}) has no write access; /slipway retry needs write permission",
                        comment.author, comment.author_association
                    ),
                ));
            }
            let projects = engine
                .inner
                .store
                .projects_on_github_repo(&comment.repository)
                .await?;
            let mut notes = Vec::new();
            for project in &projects {
                notes.push(retry(engine, project, &comment).await?);
            }
            if notes.is_empty() {
                return Ok((
                    DeliveryState::Ignored,
                    format!("no project is on {}", comment.repository),
                ));
            }
            Ok((DeliveryState::Processed, notes.join("; ")))
        }
    }
}

async fn pull_request(
    engine: &Engine,
    project: &Project,
    pr: &PullRequest,
) -> Result<String, Failed> {
    let store = &engine.inner.store;
    match pr.action.as_str() {
        "opened" | "reopened" | "synchronize" | "ready_for_review" | "edited"
            if pr.action != "edited" || pr.base_changed =>
        {
            let settings = store.settings(project.id).await?;
            if pr.draft && !settings.validate_drafts {
                return Ok(format!(
                    "{}: PR #{} is a draft; not validated until it is ready for review",
                    project.name, pr.number
                ));
            }
            let target = Target::PullRequest {
                number: pr.number,
                sha: pr.head_sha.clone(),
                head_ref: pr.head_ref.clone(),
                source: pr.head_clone_url.clone(),
                base_ref: pr.base_ref.clone(),
                base_source: pr.base_clone_url.clone(),
            };
            if pr.action == "opened" {
                let url = crate::github::pull_url(&pr.repository, pr.number);
                engine.notify_pull_request(project, &url, "opened").await;
            }
            if pr.base_changed {
                // The same head on another base: what runs (and what passed) on the old base
                // stands for nothing now. The new validation reports the head as pending,
                // replacing the old verdict's status.
                let (unfinished, _) = store
                    .validations_of_pull_request(project.id, pr.number)
                    .await?;
                for id in &unfinished {
                    engine.cancel(*id).await?;
                }
            }
            let by = if pr.base_changed {
                format!("GitHub: base changed to {}", pr.base_ref)
            } else {
                format!("GitHub: {}", pr.action)
            };
            match engine.submit_by(project, target, by).await {
                Ok(record) => Ok(format!(
                    "{}: validation {} of PR #{} at {}",
                    project.name, record.id, pr.number, record.sha
                )),
                Err(crate::SubmitError::Invalid(why)) => Err(Failed::Payload(why)),
                Err(crate::SubmitError::Store(error)) => Err(error.into()),
            }
        }
        "closed" => {
            let (unfinished, _) = store
                .validations_of_pull_request(project.id, pr.number)
                .await?;
            for id in &unfinished {
                engine.cancel(*id).await?;
            }
            Ok(format!(
                "{}: PR #{} closed; {} validation(s) cancelled",
                project.name,
                pr.number,
                unfinished.len()
            ))
        }
        other => Ok(format!(
            "{}: pull_request.{other} needs nothing",
            project.name
        )),
    }
}

async fn retry(engine: &Engine, project: &Project, comment: &Comment) -> Result<String, Failed> {
    let (_, latest) = engine
        .inner
        .store
        .validations_of_pull_request(project.id, comment.number)
        .await?;
    let Some(latest) = latest else {
        return Ok(format!(
            "{}: PR #{} has no validation to retry yet",
            project.name, comment.number
        ));
    };
    let record = engine.retry(latest).await.map_err(|e| match e {
        crate::SubmitError::Invalid(why) => Failed::Payload(why),
        crate::SubmitError::Store(error) => error.into(),
    })?;
    Ok(format!(
        "{}: /slipway retry by {}: validation {} of PR #{}",
        project.name, comment.author, record.id, comment.number
    ))
}

/// "Re-run" of the check on `check.head_sha`: its pull request's newest validation, when it is
/// of that head, is validated again (on the base as it is now). A head that has moved on is
/// left to the validation of the newer one.
async fn rerun(
    engine: &Engine,
    project: &Project,
    number: i64,
    check: &Rerequested,
) -> Result<String, Failed> {
    let store = &engine.inner.store;
    let (_, latest) = store
        .validations_of_pull_request(project.id, number)
        .await?;
    let Some(latest) = latest else {
        return Ok(format!(
            "{}: PR #{number} has no validation to run again yet",
            project.name
        ));
    };
    if store.validation(latest).await?.sha != check.head_sha {
        return Ok(format!(
            "{}: PR #{number} has moved on from {}; its newer head's validation stands",
            project.name, check.head_sha
        ));
    }
    let record = engine.retry(latest).await.map_err(|e| match e {
        crate::SubmitError::Invalid(why) => Failed::Payload(why),
        crate::SubmitError::Store(error) => error.into(),
    })?;
    Ok(format!(
        "{}: {}.rerequested: validation {} of PR #{number}",
        project.name, check.event, record.id
    ))
}
