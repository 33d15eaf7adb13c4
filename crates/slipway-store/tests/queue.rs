//! The durable job queue on both backends.

mod common;

use common::Db;
use slipway_store::{EventKind, JobFailure, JobState, MasterKey, NewJob, Store};
use std::time::Duration;

async fn store(db: &Db) -> Store {
    use base64::Engine;
    let key = MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([1u8; 32]))
        .unwrap();
    Store::open(&db.url, &key).await.unwrap()
}

on_both_backends!(
    a_job_is_leased_once_heartbeated_and_completed,
    an_expired_lease_goes_to_the_next_worker_and_fences_out_the_old_one,
    a_retryable_failure_waits_for_its_backoff_and_a_fatal_one_ends_the_job,
    the_last_attempt_fails_for_good_even_when_retryable,
    a_job_whose_holders_keep_dying_is_given_up,
    a_dedupe_key_absorbs_only_a_job_that_has_not_started,
    jobs_of_one_key_run_one_at_a_time_oldest_first,
    concurrent_leases_start_one_job_of_a_key,
    completing_a_job_queues_the_next_in_the_same_transaction_unless_fenced_out,
    after_a_restart_only_the_restarting_owners_jobs_are_leased_again_at_once,
    a_validation_whose_job_crashed_on_every_attempt_ends_as_error_at_once,
    the_holder_may_leave_the_next_attempt_a_new_payload_and_no_one_else_may,
    a_stored_state_or_kind_slipway_does_not_know_is_an_error_naming_it,
);

fn job(key: Option<&str>, max_attempts: u32) -> NewJob {
    NewJob {
        kind: "work".into(),
        payload: r#"{"n":1}"#.into(),
        dedupe_key: key.map(str::to_owned),
        max_attempts,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn a_job_is_leased_once_heartbeated_and_completed(db: Db) {
    let store = store(&db).await;
    let id = store.enqueue(&job(None, 3)).await.unwrap();
    let leased = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!((leased.id, leased.attempt), (id, 1));
    assert_eq!(store.lease("b", &["work"], LEASE).await.unwrap(), None);
    assert_eq!(store.lease("b", &["other"], LEASE).await.unwrap(), None);
    assert!(store.heartbeat(&leased, LEASE).await.unwrap());
    assert!(store.complete(&leased).await.unwrap());
    assert_eq!(store.job_state(id).await.unwrap(), (JobState::Done, 1));
    assert!(!store.heartbeat(&leased, LEASE).await.unwrap());
}

async fn an_expired_lease_goes_to_the_next_worker_and_fences_out_the_old_one(db: Db) {
    let store = store(&db).await;
    store.enqueue(&job(None, 3)).await.unwrap();
    let first = store
        .lease("a", &["work"], Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.lease("b", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);
    assert!(!store.heartbeat(&first, LEASE).await.unwrap());
    assert!(!store.complete(&first).await.unwrap());
    assert!(!store
        .fail(&first, &JobFailure::Fatal("late".into()))
        .await
        .unwrap());
    assert!(store.complete(&second).await.unwrap());
}

async fn a_retryable_failure_waits_for_its_backoff_and_a_fatal_one_ends_the_job(db: Db) {
    let store = store(&db).await;
    let id = store.enqueue(&job(None, 2)).await.unwrap();
    let leased = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    assert!(store
        .fail(&leased, &JobFailure::Retryable("flaky".into()))
        .await
        .unwrap());
    assert_eq!(store.job_state(id).await.unwrap(), (JobState::Queued, 1));
    assert_eq!(
        store.lease("a", &["work"], LEASE).await.unwrap(),
        None,
        "backoff not honoured"
    );

    let other = store.enqueue(&job(None, 5)).await.unwrap();
    let leased = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!(leased.id, other);
    store
        .fail(&leased, &JobFailure::Fatal("bad input".into()))
        .await
        .unwrap();
    assert_eq!(store.job_state(other).await.unwrap().0, JobState::Failed);
}

async fn the_last_attempt_fails_for_good_even_when_retryable(db: Db) {
    let store = store(&db).await;
    let id = store.enqueue(&job(None, 1)).await.unwrap();
    let leased = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    store
        .fail(&leased, &JobFailure::Retryable("again".into()))
        .await
        .unwrap();
    assert_eq!(store.job_state(id).await.unwrap().0, JobState::Failed);
}

async fn a_job_whose_holders_keep_dying_is_given_up(db: Db) {
    let store = store(&db).await;
    let id = store.enqueue(&job(None, 2)).await.unwrap();
    for _ in 0..2 {
        store
            .lease("dies", &["work"], Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.lease("a", &["work"], LEASE).await.unwrap(), None);
    assert_eq!(store.job_state(id).await.unwrap().0, JobState::Failed);
}

async fn a_dedupe_key_absorbs_only_a_job_that_has_not_started(db: Db) {
    let store = store(&db).await;
    let first = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    assert_eq!(store.enqueue(&job(Some("k"), 3)).await.unwrap(), first);
    let leased = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!(leased.id, first);
    // Running, it absorbs nothing: what is added now is queued to run after it…
    let second = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(
        store.job_state(second).await.unwrap(),
        (JobState::Queued, 0)
    );
    // …and that one, not started, absorbs the next.
    assert_eq!(store.enqueue(&job(Some("k"), 3)).await.unwrap(), second);
    assert_ne!(store.enqueue(&job(Some("other"), 3)).await.unwrap(), second);
}

async fn jobs_of_one_key_run_one_at_a_time_oldest_first(db: Db) {
    let store = store(&db).await;
    let first = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    let held = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    let second = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    let free = store.enqueue(&job(None, 3)).await.unwrap();
    // The second waits for the first; a job of no key does not.
    let leased = store.lease("b", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!(leased.id, free);
    assert_eq!(store.lease("b", &["work"], LEASE).await.unwrap(), None);
    // The first's holder died: the first runs again, still before the second.
    store.expire_leases_of("a").await.unwrap();
    let again = store.lease("c", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (first, 2));
    assert!(!store.complete(&held).await.unwrap(), "fenced out");
    // Handed back, it is queued again and still goes first.
    assert!(store
        .postpone(&again, Duration::ZERO, "shutting down")
        .await
        .unwrap());
    let third = store.lease("c", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!((third.id, third.attempt), (first, 3));
    assert_eq!(store.lease("c", &["work"], LEASE).await.unwrap(), None);
    // Once it has ended, the second starts.
    assert!(store
        .fail(&third, &slipway_store::JobFailure::Fatal("broken".into()))
        .await
        .unwrap());
    let next = store.lease("d", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!((next.id, next.attempt), (second, 1));
}

async fn concurrent_leases_start_one_job_of_a_key(db: Db) {
    let store = store(&db).await;
    let first = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    let held = store.lease("a", &["work"], LEASE).await.unwrap().unwrap();
    let second = store.enqueue(&job(Some("k"), 3)).await.unwrap();
    // The first handed back: two jobs of the key are due at once.
    assert!(store
        .postpone(&held, Duration::ZERO, "later")
        .await
        .unwrap());
    let leases = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.lease(&format!("w{n}"), &["work"], LEASE).await })
    });
    let mut started = Vec::new();
    for lease in leases {
        started.extend(lease.await.unwrap().unwrap());
    }
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].id, first, "the oldest goes first");
    assert_eq!(
        store.job_state(second).await.unwrap(),
        (JobState::Queued, 0)
    );
}

async fn completing_a_job_queues_the_next_in_the_same_transaction_unless_fenced_out(db: Db) {
    let store = store(&db).await;
    store.enqueue(&job(Some("k"), 3)).await.unwrap();
    let stale = store
        .lease("a", &["work"], Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let current = store.lease("b", &["work"], LEASE).await.unwrap().unwrap();
    assert!(!store
        .complete_then(&stale, &job(Some("k"), 3))
        .await
        .unwrap());
    assert_eq!(
        store.lease("c", &["work"], LEASE).await.unwrap(),
        None,
        "a fenced-out attempt queued its next job"
    );
    assert!(store
        .complete_then(&current, &job(Some("k"), 3))
        .await
        .unwrap());
    assert_eq!(store.job_state(current.id).await.unwrap().0, JobState::Done);
    let next = store.lease("c", &["work"], LEASE).await.unwrap().unwrap();
    assert_ne!(next.id, current.id);
}

async fn after_a_restart_only_the_restarting_owners_jobs_are_leased_again_at_once(db: Db) {
    let store = store(&db).await;
    let mine = store.enqueue(&job(None, 3)).await.unwrap();
    let theirs = store.enqueue(&job(None, 3)).await.unwrap();
    let held = store
        .lease("host-a", &["work"], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.id, mine);
    let other = store
        .lease("host-b", &["work"], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.id, theirs);
    // host-a restarts: its job is free again; host-b, alive, keeps its own.
    assert_eq!(store.expire_leases_of("host-a").await.unwrap(), 1);
    let again = store
        .lease("host-a", &["work"], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (mine, 2));
    assert_eq!(store.lease("host-c", &["work"], LEASE).await.unwrap(), None);
    assert!(store.heartbeat(&other, LEASE).await.unwrap());
}

async fn a_validation_whose_job_crashed_on_every_attempt_ends_as_error_at_once(db: Db) {
    use slipway_core::validation::{StepName, StepPlan, ValidationStatus};
    let store = store(&db).await;
    let project = store
        .create_project(&slipway_core::ProjectDraft {
            name: "p".into(),
            description: String::new(),
            repo: "/srv/p.git".into(),
            default_branch: "main".into(),
        })
        .await
        .unwrap();
    let created = store
        .create_validation(&slipway_store::NewValidation {
            base: None,
            setup_trial: false,
            config_file: None,
            project: project.id,
            source: "/srv/p.git".into(),
            branch: Some("main".into()),
            pr: None,
            sha: "a".repeat(40),
            plan: vec![(StepName::Checkout, StepPlan::Run)],
            started_by: None,
        })
        .await
        .unwrap();
    // Each holder dies (its lease runs out) until the queue gives up.
    let mut attempts = 0;
    while let Some(job) = store
        .lease(
            "crashy",
            &[slipway_store::VALIDATION_JOB],
            Duration::from_millis(1),
        )
        .await
        .unwrap()
    {
        attempts = job.attempt;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(attempts >= 1);
    let record = store.validation(created.validation.id).await.unwrap();
    assert_eq!(record.status, ValidationStatus::Error);
    let error = record.error.unwrap_or_default();
    assert!(error.contains("interrupted on all"), "{error}");
}

async fn the_holder_may_leave_the_next_attempt_a_new_payload_and_no_one_else_may(db: Db) {
    let store = store(&db).await;
    store.enqueue(&job(None, 3)).await.unwrap();
    let first = store
        .lease("a", &["work"], Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    assert!(store.set_payload(&first, r#"{"n":2}"#).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.lease("b", &["work"], LEASE).await.unwrap().unwrap();
    assert_eq!(second.payload, r#"{"n":2}"#);
    assert!(
        !store.set_payload(&first, r#"{"n":3}"#).await.unwrap(),
        "a fenced-out attempt changes nothing"
    );
    assert!(store.complete(&second).await.unwrap());
}

/// Stored states and kinds are read as enums: each known one as itself, one Slipway does not
/// know as an error naming it (the jobs' states are held to the known ones by a CHECK on
/// PostgreSQL; events' kinds by nothing but this).
async fn a_stored_state_or_kind_slipway_does_not_know_is_an_error_naming_it(db: Db) {
    let store = store(&db).await;
    let id = store.enqueue(&job(None, 3)).await.unwrap();
    assert_eq!(store.job_state(id).await.unwrap(), (JobState::Queued, 0));
    for state in JobState::ALL {
        assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
    }
    assert!("paused"
        .parse::<JobState>()
        .unwrap_err()
        .contains("'paused'"));

    let project = slipway_core::ProjectId(1);
    let payload = serde_json::json!({"pr_url": "u"});
    store
        .emit_event(project, EventKind::PrNotification, &payload)
        .await
        .unwrap();
    let events = store.events_after(project, 0, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::PrNotification);
    assert_eq!(events[0].message()["type"], "pr_notification");
    let raw = db.raw().await;
    sqlx::query("UPDATE events SET kind = 'mystery'")
        .execute(&raw)
        .await
        .unwrap();
    let error = store.events_after(project, 0, 10).await.unwrap_err();
    assert!(error.to_string().contains("'mystery'"), "{error}");
}
