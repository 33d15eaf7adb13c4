//! A stateful fake of the Codegen Developer API (tests-data/reference/codegen-openapi3.json)
//! on localhost: agent runs that move through statuses as they are polled, scripted answers
//! (a reply, a plan, a pull request pushed to a real repository and opened on the fake
//! GitHub), resume, list, ban, the 10-per-minute creation limit, and injected faults.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the agent does on its next turn (a create or a resume).
#[derive(Clone)]
pub enum Script {
    /// Completes with this text (a reply, or a plan in plan mode).
    Answer(String),
    /// Commits these files to the run's branch, opens a pull request on the first time,
    /// and completes with it.
    PullRequest(Vec<(String, String)>),
    /// Ends with status `FAILED`.
    Fail,
    /// Never finishes.
    Hang,
}

/// A fault for the next request.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This status, with `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// Answer after this delay.
    Slow(Duration),
    /// Do the work (create or resume), then answer this status: the answer is lost.
    LoseAnswer(u16),
}

/// Where the fake agent pushes its pull requests.
pub struct Repository {
    /// A non-bare clone to commit in, whose `origin` is the fake GitHub's repository.
    pub work: std::path::PathBuf,
    /// Full name on the fake GitHub, e.g. `acme/app`.
    pub full_name: String,
    /// Opens a pull request on the fake GitHub from a branch; returns its number.
    pub open_pull: Box<dyn Fn(&str) -> i64 + Send>,
}

struct Run {
    id: i64,
    status: String,
    polls_left: u32,
    script: Option<Script>,
    result: Option<String>,
    pull: Option<(i64, String)>,
    metadata: Value,
    prompts: Vec<String>,
    /// Stopped by a ban (its pull request's agents were stopped).
    banned: bool,
    source_type: &'static str,
    /// Polls left that still show the turn before the resume (as this JSON).
    stale: Option<(u32, Value)>,
}

struct World {
    token: String,
    org_id: i64,
    runs: Vec<Run>,
    script: VecDeque<Script>,
    faults: VecDeque<Fault>,
    created_at: VecDeque<Instant>,
    repository: Option<Repository>,
    requests: usize,
    /// Reads (`GET` a run or the list) allowed per window, and when recent ones came.
    read_limit: (usize, Duration),
    read_at: VecDeque<Instant>,
    reads_refused: usize,
    /// Set by `Fault::LoseAnswer` for the request being handled.
    lose_answer: Option<u16>,
    /// Pull requests (by URL) flagged by `ban`: check suites no longer reach them.
    banned_pulls: std::collections::HashSet<String>,
    /// Polls after each resume that still show the turn before (0: none).
    stale_polls: u32,
    lists: Vec<(usize, usize, Option<String>)>,
}

type Shared = Arc<Mutex<World>>;

/// Polls a run answers "in progress" before it ends.
const POLLS_PER_TURN: u32 = 3;
const CREATES_PER_MINUTE: usize = 10;

pub struct FakeCodegen {
    pub url: String,
    world: Shared,
    shutdown: tokio_util::sync::CancellationToken,
    /// Every answer given, for checks against the published description.
    exchanges: crate::exchanges::Exchanges,
}

impl Drop for FakeCodegen {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeCodegen {
    /// Every answer this fake gave so far.
    pub fn exchanges(&self) -> Vec<crate::exchanges::Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Starts the fake for organization `org_id`; it accepts only `token`.
    pub async fn start(token: &str, org_id: i64) -> Self {
        let world = Arc::new(Mutex::new(World {
            token: token.to_owned(),
            org_id,
            runs: Vec::new(),
            script: VecDeque::new(),
            faults: VecDeque::new(),
            created_at: VecDeque::new(),
            repository: None,
            requests: 0,
            read_limit: (60, Duration::from_secs(30)),
            read_at: VecDeque::new(),
            reads_refused: 0,
            lose_answer: None,
            banned_pulls: Default::default(),
            stale_polls: 0,
            lists: Vec::new(),
        }));
        let exchanges = crate::exchanges::Exchanges::default();
        let router = Router::new()
            .route("/v1/organizations/{org}/agent/run", post(create))
            .route("/v1/organizations/{org}/agent/run/{id}", get(show))
            .route("/v1/organizations/{org}/agent/runs", get(list))
            .route("/v1/organizations/{org}/agent/run/resume", post(resume))
            .route("/v1/organizations/{org}/agent/run/ban", post(ban))
            .route("/v1/organizations/{org}/agent/run/unban", post(unban))
            .with_state(world.clone())
            .route_layer(axum::middleware::from_fn_with_state(
                exchanges.clone(),
                crate::exchanges::record,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            url,
            world,
            shutdown,
            exchanges,
        }
    }

    /// Where the agent pushes its pull requests from now on.
    pub fn set_repository(&self, repository: Repository) {
        self.world.lock().unwrap().repository = Some(repository);
    }

    /// Queues what the agent does on its next turns, in order.
    pub fn script(&self, steps: impl IntoIterator<Item = Script>) {
        self.world.lock().unwrap().script.extend(steps);
    }

    /// Queues faults for the next requests, in order.
    pub fn fault(&self, faults: impl IntoIterator<Item = Fault>) {
        self.world.lock().unwrap().faults.extend(faults);
    }

    /// The prompts each run received (create, then every resume).
    pub fn prompts(&self, id: i64) -> Vec<String> {
        let world = self.world.lock().unwrap();
        world
            .runs
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.prompts.clone())
            .unwrap_or_default()
    }

    pub fn runs_created(&self) -> usize {
        self.world.lock().unwrap().runs.len()
    }

    /// Whether run `id`'s pull request is flagged by a ban (the run itself, without one).
    pub fn banned(&self, id: i64) -> bool {
        let w = self.world.lock().unwrap();
        w.runs.iter().any(|r| {
            r.id == id
                && match &r.pull {
                    Some((_, url)) => w.banned_pulls.contains(url),
                    None => r.banned,
                }
        })
    }

    /// As Codegen does on a busy day: for `polls` polls after each resume, a run still shows
    /// the status and answer of the turn before.
    pub fn stale_after_resume(&self, polls: u32) {
        self.world.lock().unwrap().stale_polls = polls;
    }

    /// Adds `count` finished runs of others (newer than every run so far), created from
    /// `source_type` (e.g. `API`, `SLACK`).
    pub fn add_runs_of_others(&self, count: usize, source_type: &'static str) {
        let mut w = self.world.lock().unwrap();
        for _ in 0..count {
            let id = 1000 + w.runs.len() as i64;
            w.runs.push(Run {
                id,
                status: "COMPLETE".into(),
                polls_left: 0,
                script: None,
                result: Some("someone else's run".into()),
                pull: None,
                metadata: json!({"team": "others"}),
                prompts: vec!["another task".into()],
                banned: false,
                source_type,
                stale: None,
            });
        }
    }

    /// The `GET agent/runs` pages asked for: skip, limit and source type.
    pub fn list_requests(&self) -> Vec<(usize, usize, Option<String>)> {
        self.world.lock().unwrap().lists.clone()
    }

    pub fn metadata(&self, id: i64) -> Value {
        let world = self.world.lock().unwrap();
        world
            .runs
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.metadata.clone())
            .unwrap_or(Value::Null)
    }

    pub fn requests(&self) -> usize {
        self.world.lock().unwrap().requests
    }

    /// Enforces another read limit than the published 60 per 30 s (to test within seconds).
    pub fn set_read_limit(&self, requests: usize, per: Duration) {
        self.world.lock().unwrap().read_limit = (requests, per);
    }

    /// Reads answered 429 because the read limit was exceeded.
    pub fn reads_refused(&self) -> usize {
        self.world.lock().unwrap().reads_refused
    }
}

/// Counts a request into a sliding window of `limit` per `per`; `false` when it is full.
fn admitted(window: &mut VecDeque<Instant>, limit: usize, per: Duration) -> bool {
    let now = Instant::now();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= per)
    {
        window.pop_front();
    }
    let room = window.len() < limit;
    if room {
        window.push_back(now);
    }
    room
}

/// The read limit: a 429 with `Retry-After` once the window is full.
fn read_refusal(world: &Shared) -> Option<Response> {
    let mut w = world.lock().unwrap();
    let (limit, per) = w.read_limit;
    if !admitted(&mut w.read_at, limit, per) {
        w.reads_refused += 1;
        let mut response = error(429, "Rate limit exceeded. Please try again later.");
        response
            .headers_mut()
            .insert("retry-after", per.as_secs().max(1).into());
        return Some(response);
    }
    None
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        Json(json!({"message": message, "status_code": status.as_u16()})),
    )
        .into_response()
}

/// Authentication, the organization, and an injected fault: the checks every request gets.
async fn admit(world: &Shared, headers: &HeaderMap, org: i64) -> Result<(), Response> {
    let fault = {
        let mut w = world.lock().unwrap();
        w.requests += 1;
        w.faults.pop_front()
    };
    match fault {
        Some(Fault::Status(status, retry_after)) => {
            let mut response = error(status, "injected fault");
            if let Some(secs) = retry_after {
                response.headers_mut().insert("retry-after", secs.into());
            }
            return Err(response);
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::LoseAnswer(status)) => world.lock().unwrap().lose_answer = Some(status),
        None => {}
    }
    let w = world.lock().unwrap();
    let expected = format!("Bearer {}", w.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(error(401, "Invalid or missing API token"));
    }
    if org != w.org_id {
        return Err(error(403, "You do not have access to this organization."));
    }
    Ok(())
}

fn run_json(run: &Run, org: i64) -> Value {
    let pulls: Vec<Value> = run
        .pull
        .iter()
        .map(|(number, url)| {
            json!({"id": number * 100, "title": "Agent change", "url": url,
                   "created_at": "2026-11-22T00:00:00Z", "head_branch_name": format!("codegen/run-{}", run.id)})
        })
        .collect();
    json!({
        "id": run.id,
        "organization_id": org,
        "status": run.status,
        "created_at": "2026-11-22T00:00:00Z",
        "web_url": format!("https://codegen.example/agent/trace/{}", run.id),
        "result": run.result,
        "summary": null,
        "source_type": run.source_type,
        "github_pull_requests": if pulls.is_empty() { Value::Null } else { Value::Array(pulls) },
        "metadata": run.metadata,
    })
}

async fn create(
    State(world): State<Shared>,
    Path(org): Path<i64>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Err(response) = admit(&world, &headers, org).await {
        return response;
    }
    let Some(Json(body)) = body else {
        return error(422, "body: field required");
    };
    let Some(prompt) = body.get("prompt").and_then(Value::as_str) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}))).into_response();
    };
    let mut w = world.lock().unwrap();
    if !admitted(
        &mut w.created_at,
        CREATES_PER_MINUTE,
        Duration::from_secs(60),
    ) {
        return error(429, "Rate limit exceeded. Please try again later.");
    }
    let id = 1000 + w.runs.len() as i64;
    let script = w.script.pop_front();
    let run = Run {
        id,
        status: "QUEUED".into(),
        polls_left: POLLS_PER_TURN,
        script,
        result: None,
        pull: None,
        metadata: body.get("metadata").cloned().unwrap_or(Value::Null),
        prompts: vec![prompt.to_owned()],
        banned: false,
        source_type: "API",
        stale: None,
    };
    let answer = run_json(&run, org);
    w.runs.push(run);
    if let Some(status) = w.lose_answer.take() {
        return error(status, "upstream timed out");
    }
    Json(answer).into_response()
}

async fn show(
    State(world): State<Shared>,
    Path((org, id)): Path<(i64, i64)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&world, &headers, org).await {
        return response;
    }
    if let Some(response) = read_refusal(&world) {
        return response;
    }
    let mut w = world.lock().unwrap();
    let World {
        runs, repository, ..
    } = &mut *w;
    let Some(run) = runs.iter_mut().find(|r| r.id == id) else {
        return error(404, "Agent run not found");
    };
    if let Some((left, before)) = &mut run.stale {
        *left -= 1;
        let before = before.clone();
        if *left == 0 {
            run.stale = None;
        }
        return Json(before).into_response();
    }
    advance(run, repository.as_ref());
    Json(run_json(run, org)).into_response()
}

/// A poll moves a run on: in progress for a few polls (one of them a status this client
/// does not know), then it does what its script says.
fn advance(run: &mut Run, repository: Option<&Repository>) {
    if run.polls_left == 0 || run.banned {
        return;
    }
    if matches!(run.script, Some(Script::Hang)) {
        run.status = "ACTIVE".into();
        return;
    }
    run.polls_left -= 1;
    run.status = match run.polls_left {
        2 => "ACTIVE".into(),
        1 => "EVALUATION".into(),
        _ => {
            finish(run, repository);
            return;
        }
    };
}

fn finish(run: &mut Run, repository: Option<&Repository>) {
    match run.script.take() {
        Some(Script::Answer(text)) => {
            run.result = Some(text);
            run.status = "COMPLETE".into();
        }
        Some(Script::PullRequest(files)) => {
            let Some(repo) = repository else {
                run.status = "FAILED".into();
                run.result = Some("no repository to push to".into());
                return;
            };
            let branch = format!("codegen/run-{}", run.id);
            push_files(&repo.work, &branch, &files);
            if run.pull.is_none() {
                let number = (repo.open_pull)(&branch);
                run.pull = Some((
                    number,
                    format!("https://github.com/{}/pull/{number}", repo.full_name),
                ));
            }
            run.result = Some("Opened a pull request.".into());
            run.status = "COMPLETE".into();
        }
        Some(Script::Fail) => {
            run.status = "FAILED".into();
            run.result = Some("the agent hit an error".into());
        }
        Some(Script::Hang) => unreachable!("handled by advance"),
        None => {
            run.status = "COMPLETE".into();
            run.result = Some("Nothing to do.".into());
        }
    }
}

fn push_files(work: &std::path::Path, branch: &str, files: &[(String, String)]) {
    crate::git(work, &["fetch", "-q", "origin"]);
    let exists = crate::git(work, &["branch", "--list", branch]);
    if exists.is_empty() {
        crate::git(work, &["checkout", "-q", "-B", branch, "origin/main"]);
    } else {
        crate::git(work, &["checkout", "-q", branch]);
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    crate::commit_files(work, &files, "codegen agent change");
    crate::git(
        work,
        &["push", "-q", "origin", &format!("{branch}:{branch}")],
    );
    crate::git(work, &["checkout", "-q", "main"]);
}

#[derive(serde::Deserialize)]
struct ListQuery {
    skip: Option<usize>,
    limit: Option<usize>,
    source_type: Option<String>,
}

async fn list(
    State(world): State<Shared>,
    Path(org): Path<i64>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&world, &headers, org).await {
        return response;
    }
    if let Some(response) = read_refusal(&world) {
        return response;
    }
    let mut w = world.lock().unwrap();
    let (skip, limit) = (query.skip.unwrap_or(0), query.limit.unwrap_or(100));
    if !(1..=100).contains(&limit) {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be between 1 and 100", "type": "less_than_equal"}]}))).into_response();
    }
    w.lists.push((skip, limit, query.source_type.clone()));
    let matching: Vec<&Run> = w
        .runs
        .iter()
        .rev()
        .filter(|r| {
            query
                .source_type
                .as_deref()
                .is_none_or(|s| s == r.source_type)
        })
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(limit)
        .map(|r| run_json(r, org))
        .collect();
    let total = matching.len();
    Json(
        json!({"items": items, "total": total, "page": skip / limit.max(1) + 1, "size": limit,
                "pages": total.div_ceil(limit.max(1))}),
    )
    .into_response()
}

async fn resume(
    State(world): State<Shared>,
    Path(org): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(response) = admit(&world, &headers, org).await {
        return response;
    }
    let (Some(id), Some(prompt)) = (body["agent_run_id"].as_i64(), body["prompt"].as_str()) else {
        return error(422, "agent_run_id and prompt are required");
    };
    let mut w = world.lock().unwrap();
    let next = w.script.pop_front();
    let stale_polls = w.stale_polls;
    let Some(run) = w.runs.iter_mut().find(|r| r.id == id) else {
        return error(404, "Agent run not found");
    };
    if run.banned {
        return error(403, "This agent run was stopped");
    }
    let before = run_json(run, org);
    run.prompts.push(prompt.to_owned());
    run.script = next;
    run.status = "ACTIVE".into();
    run.polls_left = POLLS_PER_TURN;
    run.stale = (stale_polls > 0).then_some((stale_polls, before));
    let answer = run_json(run, org);
    if let Some(status) = w.lose_answer.take() {
        return error(status, "upstream timed out");
    }
    Json(answer).into_response()
}

async fn ban(
    State(world): State<Shared>,
    Path(org): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    set_ban(&world, org, &headers, &body, true).await
}

async fn unban(
    State(world): State<Shared>,
    Path(org): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    set_ban(&world, org, &headers, &body, false).await
}

/// `ban` flags the run's pull request and stops its agents; `unban` lifts the flag.
async fn set_ban(
    world: &Shared,
    org: i64,
    headers: &HeaderMap,
    body: &Value,
    banned: bool,
) -> Response {
    if let Err(response) = admit(world, headers, org).await {
        return response;
    }
    let mut w = world.lock().unwrap();
    let World {
        runs, banned_pulls, ..
    } = &mut *w;
    let Some(run) = runs
        .iter()
        .find(|r| Some(r.id) == body["agent_run_id"].as_i64())
    else {
        return error(404, "Agent run not found");
    };
    let (id, pull) = (run.id, run.pull.as_ref().map(|(_, url)| url.clone()));
    if !banned {
        if let Some(url) = &pull {
            banned_pulls.remove(url);
        }
        if let Some(run) = runs.iter_mut().find(|r| r.id == id) {
            run.banned = false;
        }
        return Json(json!({"message": "All checks unbanned"})).into_response();
    }
    if let Some(url) = &pull {
        banned_pulls.insert(url.clone());
    }
    // Every agent of the pull request stops (the run itself, without one).
    for run in runs.iter_mut().filter(|r| {
        r.id == id || (pull.is_some() && r.pull.as_ref().map(|(_, u)| u) == pull.as_ref())
    }) {
        run.banned = true;
        run.status = "CANCELLED".into();
    }
    Json(json!({"message": "All checks banned and agents stopped"})).into_response()
}
