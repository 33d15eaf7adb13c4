//! Several real `slipway` processes on one database: `serve --workers 0` (API only) and
//! `slipway worker`s that run the jobs. Validations are shared out, none runs twice at once
//! and none is lost; a killed worker's validation is finished by another; the workers go on
//! while the server is down; a stopped worker hands its job back at once. Every test runs on
//! a SQLite file and on PostgreSQL (`SLIPWAY_TEST_POSTGRES_URL`, which `scripts/test.sh`
//! sets; without it the PostgreSQL half says why and passes, except under CI).

#[macro_use]
mod cluster;

use cluster::{until, Cluster, Db, Proc};
use serde_json::{json, Value};
use slipway_testkit::{processes_with, Api};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

on_both_backends!(
    three_workers_share_thirty_validations_none_twice_none_lost,
    a_killed_workers_validation_is_finished_by_another_once_its_lease_ran_out,
    the_workers_go_on_while_the_server_is_down_and_a_restarted_server_shows_their_results,
    a_stopped_worker_hands_its_validation_back_and_another_takes_it_at_once,
    a_stopped_worker_finishes_its_validation_within_the_grace_period_then_exits_0,
    a_workers_events_stream_live_from_the_server_and_a_restarted_server_replays_the_rest,
);

async fn project(api: &Api, repo: &Path) -> i64 {
    let created = api
        .create_project(&json!({"name": "app", "repo": repo.display().to_string()}))
        .await;
    created.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", created.text))
}

async fn start(api: &Api, project: i64, branch: &str) -> i64 {
    let started = api
        .start_validation(project, &json!({ "branch": branch }))
        .await;
    started.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", started.text))
}

async fn finished(api: &Api, id: i64) -> Value {
    let mut last = Value::Null;
    for _ in 0..3_600 {
        last = api.validation(id).await.body;
        if !matches!(last["status"].as_str(), Some("queued" | "running")) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("validation {id} did not finish: {last}");
}

async fn three_workers_share_thirty_validations_none_twice_none_lost(db: Db) {
    let cluster = Cluster::new(db, &[]);
    let repo = cluster.repository("echo ran-once; sleep 0.5", 30);
    let (_server, api) = cluster.server(0, 0);
    let workers: Vec<Proc> = (0..3).map(|n| cluster.worker(n)).collect();
    let project = project(&api, &repo).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(start(&api, project, &format!("b{n}")).await);
    }
    for id in &ids {
        let done = finished(&api, *id).await;
        let log = api.validation_logs(*id, "").await.text;
        assert_eq!(done["status"], "passed", "{done}\n{log}");
        assert_eq!(done["attempt"], 1, "ran more than once: {done}");
        assert_eq!(log.matches(r#""line":"ran-once""#).count(), 1, "{log}");
    }
    // Each validation was finished by exactly one worker, once. (A worker logs the finish
    // just after it records the verdict: its log may trail the API.)
    until("every finish is in a worker's log", || {
        let logged: Vec<i64> = workers.iter().flat_map(Proc::finished).collect();
        let all = ids.iter().all(|id| logged.contains(id));
        async move { all }
    })
    .await;
    let mut times: HashMap<i64, usize> = HashMap::new();
    for worker in &workers {
        for id in worker.finished() {
            *times.entry(id).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(times.get(id), Some(&1), "validation {id}: {times:?}");
    }
    assert_eq!(times.len(), ids.len(), "{times:?}");
    let busy = workers.iter().filter(|w| !w.finished().is_empty()).count();
    assert!(busy >= 2, "one worker ran everything: {times:?}");
}

/// A sleep of about `secs` seconds whose exact length names this test's process (nextest
/// runs each test in a process of its own, and the two backends' tests at once), so that
/// `processes_with` counts only this test's steps.
fn marked(secs: &str) -> String {
    format!("{secs}{:07}", std::process::id())
}

/// Waits until a process with `marker` in its command line runs (a test step started).
async fn step_running(marker: &str) {
    until(&format!("a step with {marker} started"), || async {
        processes_with(marker) > 0
    })
    .await;
}

async fn a_killed_workers_validation_is_finished_by_another_once_its_lease_ran_out(db: Db) {
    let cluster = Cluster::new(db, &[("SLIPWAY_JOB_LEASE_SECS", "3")]);
    let marker = marked("2.8317");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server(0, 0);
    let mut first = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let others: Vec<Proc> = (1..3).map(|n| cluster.worker(n)).collect();
    first.kill(); // SIGKILL mid-validation
    let done = finished(&api, id).await;
    let log = api.validation_logs(id, "").await.text;
    assert_eq!(done["status"], "passed", "{done}\n{log}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert!(log.contains("previous attempt was interrupted"), "{log}");
    let finishers: Vec<usize> = (0..others.len())
        .filter(|n| others[*n].finished().contains(&id))
        .collect();
    assert_eq!(finishers.len(), 1, "{finishers:?}");
    until("no process of either attempt is left", || async {
        processes_with(&marker) == 0
    })
    .await;
}

async fn the_workers_go_on_while_the_server_is_down_and_a_restarted_server_shows_their_results(
    db: Db,
) {
    let cluster = Cluster::new(db, &[]);
    let marker = marked("1.7713");
    let repo = cluster.repository(&format!("echo started; sleep {marker}"), 6);
    let (mut server, api) = cluster.server(0, 0);
    let workers: Vec<Proc> = (0..3).map(|n| cluster.worker(n)).collect();
    let project = project(&api, &repo).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(start(&api, project, &format!("b{n}")).await);
    }
    step_running(&marker).await;
    server.kill(); // SIGKILL: no server from here on
    until("the workers finished every validation", || {
        let done: Vec<i64> = workers.iter().flat_map(Proc::finished).collect();
        let all = ids.iter().all(|id| done.contains(id));
        async move { all }
    })
    .await;
    let (_server, api) = cluster.server(0, 0);
    for id in &ids {
        let done = finished(&api, *id).await;
        assert_eq!(done["status"], "passed", "{done}");
        assert_eq!(done["attempt"], 1, "run again after the restart: {done}");
    }
}

async fn a_stopped_worker_hands_its_validation_back_and_another_takes_it_at_once(db: Db) {
    // Leases that outlast the test: only a hand-back lets the other worker in.
    let cluster = Cluster::new(
        db,
        &[
            ("SLIPWAY_SHUTDOWN_GRACE_SECS", "0"),
            ("SLIPWAY_JOB_LEASE_SECS", "3600"),
        ],
    );
    let marker = marked("3.4419");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server(0, 0);
    let mut first = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let second = cluster.worker(1);
    let status = first.terminate();
    assert!(status.success(), "{status:?}: {}", first.stderr());
    let done = finished(&api, id).await;
    let log = api.validation_logs(id, "").await.text;
    assert_eq!(done["status"], "passed", "{done}\n{log}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(second.finished(), vec![id]);
    assert!(first.finished().is_empty());
}

async fn a_stopped_worker_finishes_its_validation_within_the_grace_period_then_exits_0(db: Db) {
    let cluster = Cluster::new(db, &[("SLIPWAY_SHUTDOWN_GRACE_SECS", "600")]);
    let marker = marked("1.5527");
    let repo = cluster.repository(&format!("echo started; sleep {marker}; echo done"), 0);
    let (_server, api) = cluster.server(0, 0);
    let mut worker = cluster.worker(0);
    let project = project(&api, &repo).await;
    let id = start(&api, project, "main").await;
    step_running(&marker).await;
    let status = worker.terminate();
    assert!(status.success(), "{status:?}: {}", worker.stderr());
    assert_eq!(worker.finished(), vec![id]);
    let done = finished(&api, id).await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
}

fn log_lines(events: &[Value]) -> Vec<&str> {
    let logs = events
        .iter()
        .filter(|e| e["type"] == "log" && e["step"] == "test");
    logs.filter_map(|e| e["line"].as_str()).collect()
}

fn event_ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| e["event_id"].as_i64())
        .collect()
}

fn verdict(event: &Value) -> bool {
    event["type"] == "validation_update"
        && event["step_index"].is_null()
        && matches!(
            event["overall_status"].as_str(),
            Some("passed" | "failed" | "error")
        )
}

async fn a_workers_events_stream_live_from_the_server_and_a_restarted_server_replays_the_rest(
    db: Db,
) {
    let cluster = Cluster::new(db, &[]);
    let marker = marked("1.9391");
    let command = format!("echo one; sleep {marker}; echo two; echo three");
    let repo = cluster.repository(&command, 0);
    let (mut server, api) = cluster.server(0, 0);
    let worker = cluster.worker(0);
    let project = project(&api, &repo).await;
    let mut live = server.events(project, None).await;
    let id = start(&api, project, "main").await;
    // Live, through the server, from the worker's process.
    let seen = live
        .until(|e| e["type"] == "log" && e["line"] == "one")
        .await;
    assert!(seen
        .iter()
        .all(|e| e["validation_id"] == id || e["type"] != "log"));
    let last = *event_ids(&seen).last().unwrap();
    server.kill(); // SIGKILL mid-validation
    until("the worker finished the validation", || {
        let done = worker.finished().contains(&id);
        async move { done }
    })
    .await;
    let (server, _api) = cluster.server(0, 0);
    let mut replayed = server.events(project, Some(last)).await;
    let rest = replayed.until(verdict).await;
    assert_eq!(rest.last().unwrap()["overall_status"], "passed", "{rest:?}");
    let ids = event_ids(&rest);
    assert!(ids[0] > last, "{last} then {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(log_lines(&rest), ["two", "three"], "{rest:?}");
}
