//! The Codegen Developer API client (tests-data/reference/codegen-openapi3.json): create,
//! get, resume and list agent runs, and ban a PR's agents (the API has no cancel). 429 and
//! 5xx answers are retried with backoff (honouring `Retry-After`); 401/402/403/404/422 are
//! final errors that say what Codegen said.

use crate::{Agent, AgentError, Answer, Progress, Turn, TurnKind};
use serde::{Deserialize, Serialize};
use slipway_core::run::{external_state, pull_number_from_url, ExternalState};
use std::time::Duration;
use tokio::sync::mpsc::Sender;

const MAX_TRIES: u32 = 6;
const RETRY_BASE: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(60);
/// The published maximum `limit` of `GET agent/runs`.
const PAGE_SIZE: u32 = 100;
/// How far back the duplicate-run look-up reads (a run is looked up within minutes of its
/// creation, so 1,000 newer API runs in between are far past a busy organization).
const LOOKUP_PAGES: u32 = 10;
/// Polls after a resume that may still show the turn before (Codegen's status lags the
/// resume); past them a terminal status is taken as it stands.
const STALE_POLLS: u32 = 5;

/// Where and as whom to reach Codegen (no `Debug`: it holds a token).
#[derive(Clone)]
pub struct CodegenConfig {
    /// `CODEGEN_API_URL`, e.g. `https://api.codegen.com`.
    pub base_url: String,
    /// `CODEGEN_API_TOKEN`.
    pub token: String,
    /// `CODEGEN_ORG_ID`.
    pub org_id: i64,
    /// The limit on reading runs, shared by every run this client polls.
    pub read_limit: RateLimit,
}

/// At most `requests` in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: usize,
    pub per: Duration,
}

impl RateLimit {
    /// The published limit on reading runs (`GET agent/run/{id}`, `GET agent/runs`).
    pub const CODEGEN_READS: Self = Self {
        requests: 60,
        per: Duration::from_secs(30),
    };
}

/// A sliding window over the reads: a read waits until the window has room, so many polled
/// runs share the limit instead of each meeting 429s. A read counts from the moment its
/// answer came back (never earlier than Codegen saw it) and while it is in flight.
struct Window {
    limit: RateLimit,
    state: std::sync::Mutex<WindowState>,
}

#[derive(Default)]
struct WindowState {
    answered: std::collections::VecDeque<tokio::time::Instant>,
    in_flight: usize,
}

/// One admitted read; dropping it records when its answer came.
struct Admitted<'a>(&'a Window);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("window lock");
        state.in_flight -= 1;
        state.answered.push_back(tokio::time::Instant::now());
    }
}

impl Window {
    async fn admit(&self) -> Admitted<'_> {
        loop {
            let wait = {
                let mut state = self.state.lock().expect("window lock");
                let now = tokio::time::Instant::now();
                while state
                    .answered
                    .front()
                    .is_some_and(|at| now.duration_since(*at) >= self.limit.per)
                {
                    state.answered.pop_front();
                }
                if state.answered.len() + state.in_flight < self.limit.requests {
                    state.in_flight += 1;
                    return Admitted(self);
                }
                match state.answered.front() {
                    Some(oldest) => self.limit.per - now.duration_since(*oldest),
                    // Every slot is in flight: one frees when its answer comes.
                    None => Duration::from_millis(20),
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// An agent run as Codegen describes it (`AgentRunResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CodegenRun {
    pub id: i64,
    #[serde(default)]
    pub organization_id: Option<i64>,
    /// A free string: read it with `slipway_core::run::external_state`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub github_pull_requests: Option<Vec<CodegenPullRequest>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CodegenPullRequest {
    pub id: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub head_branch_name: Option<String>,
}

/// One page of `GET …/agent/runs`.
#[derive(Debug, Clone, Deserialize)]
pub struct CodegenPage {
    pub items: Vec<CodegenRun>,
    pub total: i64,
}

/// A run to create.
#[derive(Debug, Clone, Serialize)]
pub struct CreateRun<'a> {
    pub prompt: &'a str,
    pub metadata: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CodegenError {
    /// Worth trying again later (rate limits, Codegen's own faults, the network).
    #[error("Codegen is unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Codegen refused; trying again will not help.
    #[error("Codegen refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl CodegenError {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CodegenError::Unavailable { .. })
    }
}

/// The Codegen API client. Cheap to clone.
#[derive(Clone)]
pub struct Codegen {
    http: reqwest::Client,
    config: CodegenConfig,
    reads: std::sync::Arc<Window>,
}

impl Codegen {
    pub fn new(config: CodegenConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent("slipway")
            .build()
            .expect("an HTTP client builds");
        let reads = std::sync::Arc::new(Window {
            limit: config.read_limit,
            state: Default::default(),
        });
        Self {
            http,
            config,
            reads,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/organizations/{}/{path}",
            self.config.base_url.trim_end_matches('/'),
            self.config.org_id
        )
    }

    /// One create request, never repeated here: a lost answer may still have created a run
    /// (see [`CodegenAgent`], which looks before it tries again).
    pub async fn create_run(&self, run: &CreateRun<'_>) -> Result<CodegenRun, CodegenError> {
        let body = serde_json::to_value(run).expect("serializes");
        self.send_once(reqwest::Method::POST, "agent/run", Some(&body))
            .await
    }

    pub async fn run(&self, id: i64) -> Result<CodegenRun, CodegenError> {
        let _admitted = self.reads.admit().await;
        self.send(reqwest::Method::GET, &format!("agent/run/{id}"), None)
            .await
    }

    /// Resumes a run with a new prompt (continue, confirm, modify, fix), once.
    pub async fn resume(&self, id: i64, prompt: &str) -> Result<CodegenRun, CodegenError> {
        let body = serde_json::json!({"agent_run_id": id, "prompt": prompt});
        self.send_once(reqwest::Method::POST, "agent/run/resume", Some(&body))
            .await
    }

    /// One page of the organization's runs, newest first, of `source` only when given.
    pub async fn list_runs(
        &self,
        skip: u32,
        limit: u32,
        source: Option<&str>,
    ) -> Result<CodegenPage, CodegenError> {
        let _admitted = self.reads.admit().await;
        let source = source
            .map(|s| format!("&source_type={s}"))
            .unwrap_or_default();
        self.send(
            reqwest::Method::GET,
            &format!("agent/runs?skip={skip}&limit={limit}{source}"),
            None,
        )
        .await
    }

    /// Stops every agent of the run's pull request and keeps new checks from starting them.
    pub async fn ban(&self, id: i64) -> Result<(), CodegenError> {
        let body = serde_json::json!({"agent_run_id": id});
        self.send::<serde_json::Value>(reqwest::Method::POST, "agent/run/ban", Some(body))
            .await
            .map(drop)
    }

    /// Lets check-suite events reach the run's pull request again (undoes [`Codegen::ban`]).
    pub async fn unban(&self, id: i64) -> Result<(), CodegenError> {
        let body = serde_json::json!({"agent_run_id": id});
        self.send::<serde_json::Value>(reqwest::Method::POST, "agent/run/unban", Some(body))
            .await
            .map(drop)
    }

    /// The run created for Slipway run `run_id`, found by its metadata (after a crash
    /// between creating it and recording its id). Reads the organization's API-created runs
    /// page by page (newest first; a busy organization may have many newer ones), at most
    /// `LOOKUP_PAGES` pages.
    pub async fn find_by_slipway_run(
        &self,
        run_id: i64,
    ) -> Result<Option<CodegenRun>, CodegenError> {
        for page in 0..LOOKUP_PAGES {
            let skip = page * PAGE_SIZE;
            let runs = self.list_runs(skip, PAGE_SIZE, Some("API")).await?;
            let read = runs.items.len() as u32;
            if let Some(found) = runs.items.into_iter().find(|run| {
                run.metadata
                    .as_ref()
                    .and_then(|m| m.get("slipway_run_id"))
                    .and_then(serde_json::Value::as_i64)
                    == Some(run_id)
            }) {
                return Ok(Some(found));
            }
            if read < PAGE_SIZE || i64::from(skip + read) >= runs.total {
                return Ok(None);
            }
        }
        tracing::warn!(
            run_id,
            pages = LOOKUP_PAGES,
            "no Codegen run of this Slipway run among the newest; creating one"
        );
        Ok(None)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CodegenError> {
        retry(
            "request",
            || self.send_once(method.clone(), path, body.as_ref()),
            || async { Ok(None) },
        )
        .await
    }

    async fn send_once<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CodegenError> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.config.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unavailable = |message: String, retry_after| CodegenError::Unavailable {
            message,
            retry_after,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(format!("no answer: {e}"), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response
            .text()
            .await
            .map_err(|e| unavailable(format!("the answer broke off: {e}"), None))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| CodegenError::Refused {
                status: status.as_u16(),
                message: format!("an answer Slipway cannot read ({e}): {}", snippet(&text)),
            });
        }
        let message = error_message(&text);
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(unavailable(format!("{status}: {message}"), retry_after))
        } else {
            Err(CodegenError::Refused {
                status: status.as_u16(),
                message: match status.as_u16() {
                    401 => format!("{message}; check CODEGEN_API_TOKEN"),
                    402 => format!("{message}; the organization's plan has no agent runs left"),
                    403 => format!("{message}; check CODEGEN_ORG_ID and the token's access"),
                    _ => message,
                },
            })
        }
    }
}

/// Sends `call` until it is answered (at most `MAX_TRIES`, waiting as Codegen asks or with
/// backoff). A call whose answer was lost may have taken effect: after each wait, `done` looks,
/// and what it finds is the answer (a create or resume is never sent twice that way).
async fn retry<T, Call, Sent, Done, Found>(
    what: &str,
    mut call: Call,
    mut done: Done,
) -> Result<T, CodegenError>
where
    Call: FnMut() -> Sent,
    Sent: std::future::Future<Output = Result<T, CodegenError>>,
    Done: FnMut() -> Found,
    Found: std::future::Future<Output = Result<Option<T>, CodegenError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match call().await {
            Err(CodegenError::Unavailable {
                message,
                retry_after,
            }) if tries < MAX_TRIES => {
                let wait = retry_after
                    .unwrap_or_else(|| crate::backoff(RETRY_BASE, tries))
                    .min(MAX_WAIT);
                tracing::warn!(%message, ?wait, tries, what, "Codegen unanswered; trying again");
                tokio::time::sleep(wait).await;
                if let Some(answer) = done().await? {
                    return Ok(answer);
                }
            }
            other => return other,
        }
    }
}

/// Codegen's error bodies carry `message` (or FastAPI's `detail`).
fn error_message(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let Some(message) = value.get("message").and_then(|m| m.as_str()) {
        return message.to_owned();
    }
    match value.get("detail") {
        Some(serde_json::Value::String(detail)) => detail.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| {
                let msg = item.get("msg")?.as_str()?;
                let at: Vec<String> = item
                    .get("loc")?
                    .as_array()?
                    .iter()
                    .map(|l| l.to_string().trim_matches('"').to_owned())
                    .collect();
                Some(format!("{}: {msg}", at.join(".")))
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => snippet(body),
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The Codegen agent of one project.
pub struct CodegenAgent {
    pub client: Codegen,
    pub model: Option<String>,
    pub repo_id: Option<i64>,
    /// The first wait between polls; it grows to `MAX_POLL_EVERY`.
    pub poll_every: Duration,
}

const MAX_POLL_EVERY: Duration = Duration::from_secs(30);

impl CodegenAgent {
    /// Creates the run at most once: an earlier attempt's run (found by Slipway's run id in
    /// its metadata) is taken, and after a create whose answer was lost (a timeout, a 5xx)
    /// Codegen is asked again before another create is sent.
    async fn start(&self, turn: &Turn<'_>) -> Result<CodegenRun, CodegenError> {
        if turn.attempt > 1 {
            if let Some(run) = self.client.find_by_slipway_run(turn.run_id).await? {
                return Ok(run);
            }
        }
        let metadata = serde_json::json!({
            "slipway_project_id": turn.project_id,
            "slipway_run_id": turn.run_id,
        });
        let create = CreateRun {
            prompt: turn.prompt,
            metadata,
            repo_id: self.repo_id,
            model: self.model.as_deref(),
        };
        retry(
            "create",
            || self.client.create_run(&create),
            || self.client.find_by_slipway_run(turn.run_id),
        )
        .await
    }

    /// Resumes the run at most once: after a resume whose answer was lost, the run is read,
    /// and one that is working again took it. A fix resumes work on the run's pull request,
    /// so its ban (from a cancelled run) is lifted first. Returns the run as it was before,
    /// to tell its new answer from the old one.
    async fn resume(&self, id: i64, prompt: &str, fix: bool) -> Result<Seen, CodegenError> {
        let before = Seen::of(&self.client.run(id).await?);
        if fix {
            self.client.unban(id).await?;
        }
        let resumed = || async {
            let run = self.client.run(id).await?;
            let status = run.status.clone().unwrap_or_default();
            Ok(matches!(external_state(&status), ExternalState::Working).then_some(run))
        };
        retry("resume", || self.client.resume(id, prompt), resumed).await?;
        Ok(before)
    }

    /// Polls the run until Codegen says it ended, with a growing, jittered interval. After a
    /// resume (`before` given) a terminal status counts only once the run moved: it was seen
    /// working, or its answer changed (Codegen may still show the old turn's end for a few
    /// polls); after `STALE_POLLS` such polls it is taken as it stands.
    async fn wait(
        &self,
        id: i64,
        turn: &Turn<'_>,
        progress: &Sender<Progress>,
        before: Option<Seen>,
    ) -> Result<Answer, AgentError> {
        let deadline = tokio::time::Instant::now() + turn.timeout;
        let mut every = self.poll_every;
        let mut last_status = None;
        let mut stale_polls = 0;
        let mut moved = before.is_none();
        loop {
            let wait = crate::backoff(every * 2, 1);
            tokio::select! {
                _ = tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(deadline)) => {}
                _ = turn.cancel.cancelled() => return Ok(Answer::Cancelled),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Answer::Failed(format!(
                    "Codegen run {id} did not finish within {} s (agent_timeout_secs)",
                    turn.timeout.as_secs()
                )));
            }
            every = (every.mul_f64(1.5)).min(MAX_POLL_EVERY);
            let run = self.client.run(id).await.map_err(AgentError::from)?;
            let status = run.status.clone().unwrap_or_default();
            let state = external_state(&status);
            if !moved {
                let working = matches!(state, ExternalState::Working | ExternalState::Unknown);
                stale_polls += 1;
                moved = working || before.as_ref() != Some(&Seen::of(&run));
                if !moved && stale_polls < STALE_POLLS {
                    continue;
                }
                if !moved {
                    tracing::warn!(id, %status, "Codegen run shows no change since the resume; taking its status");
                }
                moved = true;
            }
            if last_status.as_ref() != Some(&status) {
                let _ = progress.send(Progress::Status(status.clone())).await;
                last_status = Some(status.clone());
            }
            match state {
                ExternalState::Working | ExternalState::Unknown => continue,
                ExternalState::Failed => {
                    return Ok(Answer::Failed(format!(
                        "Codegen run {id} ended with status {status}: {}",
                        run.result.or(run.summary).unwrap_or_default()
                    )))
                }
                ExternalState::Stopped => {
                    return Ok(Answer::Failed(format!(
                        "Codegen run {id} was stopped ({status})"
                    )))
                }
                ExternalState::Done => return Ok(answer_of(run, turn.plan_mode)),
            }
        }
    }
}

/// What a poll shows of a run's turn: its status and its answer.
#[derive(Debug, PartialEq)]
struct Seen {
    status: Option<String>,
    result: Option<String>,
    summary: Option<String>,
    pulls: Vec<Option<String>>,
}

impl Seen {
    fn of(run: &CodegenRun) -> Self {
        Self {
            status: run.status.clone(),
            result: run.result.clone(),
            summary: run.summary.clone(),
            pulls: run
                .github_pull_requests
                .iter()
                .flatten()
                .map(|pr| pr.url.clone())
                .collect(),
        }
    }
}

/// What a finished Codegen run answered: its newest pull request, else its text.
fn answer_of(run: CodegenRun, plan_mode: bool) -> Answer {
    let pull = run
        .github_pull_requests
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pr| {
            let url = pr.url?;
            Some((pull_number_from_url(&url)?, url, pr.head_branch_name))
        })
        .next_back();
    if let Some((number, url, branch)) = pull {
        return Answer::PullRequest {
            number,
            url,
            branch,
        };
    }
    let text = run.result.or(run.summary).unwrap_or_default();
    if plan_mode {
        Answer::Plan(text)
    } else {
        Answer::Reply(text)
    }
}

impl Agent for CodegenAgent {
    async fn work(&self, turn: Turn<'_>, progress: Sender<Progress>) -> Result<Answer, AgentError> {
        let (id, before) = match (turn.kind, turn.external_id) {
            // A re-leased start whose run was recorded: only wait for it.
            (TurnKind::Start, Some(id)) => (id, None),
            (TurnKind::Start, None) => {
                let run = self.start(&turn).await.map_err(AgentError::from)?;
                let _ = progress
                    .send(Progress::Started {
                        external_id: run.id,
                        url: run.web_url.clone(),
                    })
                    .await;
                (run.id, None)
            }
            (kind, Some(id)) => {
                let before = self
                    .resume(id, turn.prompt, kind == TurnKind::Fix)
                    .await
                    .map_err(AgentError::from)?;
                (id, Some(before))
            }
            (_, None) => {
                return Err(AgentError::Refused(
                    "this run has no Codegen run to resume".into(),
                ))
            }
        };
        self.wait(id, &turn, &progress, before).await
    }

    async fn stop(&self, external_id: i64) -> Result<(), AgentError> {
        // Codegen has no cancel: `ban` stops a pull request's agents (and flags the pull
        // request until `unban`), so it is used only when the run has one.
        let run = self
            .client
            .run(external_id)
            .await
            .map_err(AgentError::from)?;
        if run.github_pull_requests.unwrap_or_default().is_empty() {
            return Ok(());
        }
        self.client.ban(external_id).await.map_err(AgentError::from)
    }
}
