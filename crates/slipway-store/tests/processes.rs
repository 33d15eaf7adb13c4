//! Several processes on one database, each with its own `Store` (pools, event tail,
//! listener): on both backends, what one process does reaches the others, and what must
//! happen once happens once.

mod common;

use common::Db;
use slipway_core::ProjectId;
use slipway_store::{MasterKey, NewJob, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn store(db: &Db) -> Store {
    let key = MasterKey::load_or_create(&db.key_path()).unwrap();
    Store::open(&db.url, &key).await.unwrap()
}

on_both_backends!(
    events_of_one_process_reach_the_subscribers_of_another_in_order,
    concurrent_workers_of_two_processes_never_lease_one_job_twice,
    merges_into_one_base_take_turns_across_processes,
    an_interval_is_claimed_by_one_process_only,
    a_lease_has_one_holder_until_it_is_released,
    the_registry_counts_the_processes_heard_from,
    a_job_queued_by_one_process_wakes_the_others_on_postgres,
    projects_and_tokens_another_process_changed_are_not_served_from_a_stale_cache,
);

/// Waits (polling) until `check` holds; fails after a long while.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

async fn events_of_one_process_reach_the_subscribers_of_another_in_order(db: Db) {
    let (worker, server) = (store(&db).await, store(&db).await);
    let mut live = server.subscribe_events();
    let mut emitters = Vec::new();
    for task in 0..4 {
        let worker = worker.clone();
        emitters.push(tokio::spawn(async move {
            for n in 0..25 {
                let payload = serde_json::json!({"task": task, "n": n});
                worker
                    .emit_event(
                        ProjectId(1),
                        slipway_store::EventKind::PrNotification,
                        &payload,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for emitter in emitters {
        emitter.await.unwrap();
    }
    let mut ids = Vec::new();
    while ids.len() < 100 {
        let event = tokio::time::timeout(Duration::from_secs(20), live.recv())
            .await
            .expect("another process's events arrive")
            .unwrap();
        ids.push(event.event.id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "every event once, in id order");
    // Replay after any point gives the same order.
    let replayed: Vec<i64> = server
        .events_after(ProjectId(1), ids[49], 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(replayed, ids[50..]);
}

async fn concurrent_workers_of_two_processes_never_lease_one_job_twice(db: Db) {
    let (a, b) = (store(&db).await, store(&db).await);
    for n in 0..60 {
        a.enqueue(&NewJob {
            kind: "work".into(),
            payload: format!("{{\"n\":{n}}}"),
            dedupe_key: None,
            max_attempts: 3,
        })
        .await
        .unwrap();
    }
    let mut workers = Vec::new();
    for (i, store) in [a.clone(), a, b.clone(), b].into_iter().enumerate() {
        workers.push(tokio::spawn(async move {
            let mut leased = Vec::new();
            while let Some(job) = store
                .lease(&format!("w{i}"), &["work"], Duration::from_secs(30))
                .await
                .unwrap()
            {
                assert!(store.complete(&job).await.unwrap());
                leased.push(job.id);
            }
            leased
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort();
    let count = all.len();
    all.dedup();
    assert_eq!((count, all.len()), (60, 60), "each job leased exactly once");
}

async fn merges_into_one_base_take_turns_across_processes(db: Db) {
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = store(&db).await;
        for _ in 0..2 {
            let (store, inside, most) = (store.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    let turn = store.merge_turn(ProjectId(1), "main").await.unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(turn);
                }
            }));
        }
    }
    // Another base is not held up by these.
    let other = store(&db).await;
    let _elsewhere = other.merge_turn(ProjectId(1), "release").await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two merges into one base at once"
    );
}

async fn an_interval_is_claimed_by_one_process_only(db: Db) {
    let (a, b) = (store(&db).await, store(&db).await);
    let every = Duration::from_secs(3600);
    assert!(a.claim_interval("poll:github", every).await.unwrap());
    assert!(!b.claim_interval("poll:github", every).await.unwrap());
    assert!(!a.claim_interval("poll:github", every).await.unwrap());
    assert!(b.claim_interval("poll:local", every).await.unwrap());
}

async fn a_lease_has_one_holder_until_it_is_released(db: Db) {
    let (a, b) = (store(&db).await, store(&db).await);
    let ttl = Duration::from_secs(60);
    assert!(a.hold_lease("webhook-processor", "a", ttl).await.unwrap());
    assert!(!b.hold_lease("webhook-processor", "b", ttl).await.unwrap());
    assert!(
        a.hold_lease("webhook-processor", "a", ttl).await.unwrap(),
        "renewed"
    );
    a.release_lease("webhook-processor", "b").await.unwrap(); // not b's: nothing
    assert!(!b.hold_lease("webhook-processor", "b", ttl).await.unwrap());
    a.release_lease("webhook-processor", "a").await.unwrap();
    assert!(b.hold_lease("webhook-processor", "b", ttl).await.unwrap());
    // An expired lease goes to whoever asks.
    assert!(a.hold_lease("short", "a", Duration::ZERO).await.unwrap());
    assert!(b.hold_lease("short", "b", ttl).await.unwrap());
}

async fn the_registry_counts_the_processes_heard_from(db: Db) {
    let (a, b) = (store(&db).await, store(&db).await);
    assert!(!a.worker_heartbeat("host-1:/data").await.unwrap());
    a.register_worker("host-1:/data", "worker", "host-1", 10)
        .await
        .unwrap();
    b.register_worker("host-2:/data", "worker", "host-2", 20)
        .await
        .unwrap();
    assert!(a.worker_heartbeat("host-1:/data").await.unwrap());
    let live = b.live_workers(Duration::from_secs(30)).await.unwrap();
    let ids: Vec<&str> = live.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["host-1:/data", "host-2:/data"]);
    b.remove_worker("host-2:/data").await.unwrap();
    assert_eq!(
        a.live_workers(Duration::from_secs(30)).await.unwrap().len(),
        1
    );
}

async fn a_job_queued_by_one_process_wakes_the_others_on_postgres(db: Db) {
    let (server, worker) = (store(&db).await, store(&db).await);
    let mut wakeups = worker.job_wakeups();
    server
        .enqueue(&NewJob {
            kind: "validation".into(),
            payload: "{}".into(),
            dedupe_key: None,
            max_attempts: 3,
        })
        .await
        .unwrap();
    if !db.postgres {
        // SQLite has no notifications: workers find other processes' jobs by polling.
        assert!(wakeups.try_recv().is_err());
        return;
    }
    let kind = tokio::time::timeout(Duration::from_secs(20), wakeups.recv())
        .await
        .expect("the notification arrives")
        .unwrap();
    assert_eq!(&*kind, "validation");
}

async fn projects_and_tokens_another_process_changed_are_not_served_from_a_stale_cache(db: Db) {
    use slipway_core::{ProjectDraft, Role};
    let (api, cli) = (store(&db).await, store(&db).await);
    let draft = |name: &str| ProjectDraft {
        name: name.into(),
        description: String::new(),
        repo: "acme/app".into(),
        default_branch: "main".into(),
    };
    let token = cli.create_token("ci", Role::Operator).await.unwrap();
    let hash = slipway_store::hash_token(&token.token);
    // The server has both cached.
    assert!(api.list_projects().await.unwrap().is_empty());
    assert!(api.token_by_hash(&hash).await.unwrap().is_some());
    // Another process creates a project: found by id at once, listed soon after.
    let project = cli.create_project(&draft("a")).await.unwrap();
    assert_eq!(api.project(project.id).await.unwrap().name, "a");
    until("the new project is listed", || async {
        api.list_projects().await.unwrap().len() == 1
    })
    .await;
    // Another process revokes the token: it stops working here too.
    cli.revoke_token(token.record.id).await.unwrap();
    until("the revoked token is refused", || async {
        api.token_by_hash(&hash).await.unwrap().is_none()
    })
    .await;
}
