//! Notification targets against a real SQLite file: sealed URL and secret, health from the
//! deliveries, the documented disable rule.

use slipway_core::notify::{NotifyEvent, TargetHealth, TargetKind, DISABLE_AFTER};
use slipway_core::ProjectDraft;
use slipway_store::{MasterKey, NewTarget, Store, StoreError, TargetPatch};
use std::path::Path;

const SLACK_URL: &str = "https://hooks.slack.com/services/T0/B0/sealedSlackCredential42";
const SECRET: &str = "whsec_c2VhbGVkLXNpZ25pbmctc2VjcmV0LXZhbHVlLTEyMzQ=";

async fn store(dir: &Path) -> (Store, slipway_core::ProjectId) {
    let key = MasterKey::load_or_create(&dir.join("master.key")).unwrap();
    let url = format!("sqlite://{}", dir.join("slipway.db").display());
    let store = Store::open(&url, &key).await.unwrap();
    let project = store
        .create_project(&ProjectDraft {
            name: "p".into(),
            description: String::new(),
            repo: "acme/app".into(),
            default_branch: "main".into(),
        })
        .await
        .unwrap();
    (store, project.id)
}

fn new(kind: TargetKind, url: &str, events: &[NotifyEvent]) -> NewTarget {
    NewTarget {
        kind,
        url: url.into(),
        events: events.to_vec(),
        secret: (kind == TargetKind::Webhook).then(|| SECRET.to_owned()),
    }
}

fn database_text(dir: &Path) -> String {
    let mut text = String::new();
    for file in ["slipway.db", "slipway.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[tokio::test]
async fn a_targets_url_and_secret_are_stored_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = store(dir.path()).await;
    let slack = store
        .create_notification_target(
            project,
            &new(TargetKind::Slack, SLACK_URL, &NotifyEvent::ALL),
        )
        .await
        .unwrap();
    let hook = store
        .create_notification_target(
            project,
            &new(
                TargetKind::Webhook,
                "https://example.com/in",
                &[NotifyEvent::FixGaveUp],
            ),
        )
        .await
        .unwrap();
    assert_eq!(slack.url, SLACK_URL);
    assert_eq!(slack.url_shown, "https://hooks.slack.com/…al42");
    assert_eq!(slack.health, TargetHealth::New);
    assert_eq!(
        store.notification_secret(hook.id).await.unwrap().as_deref(),
        Some(SECRET)
    );
    assert_eq!(store.notification_secret(slack.id).await.unwrap(), None);
    let text = database_text(dir.path());
    assert!(
        !text.contains("sealedSlackCredential42"),
        "the Slack URL is stored in the clear"
    );
    assert!(
        !text.contains("c2VhbGVkLXNpZ25pbmc"),
        "the secret is stored in the clear"
    );

    let for_gave_up = store
        .notification_targets_for(project, NotifyEvent::FixGaveUp)
        .await
        .unwrap();
    assert_eq!(
        for_gave_up.iter().map(|t| t.id).collect::<Vec<_>>(),
        [slack.id, hook.id]
    );
    let for_merged = store
        .notification_targets_for(project, NotifyEvent::PullRequestMerged)
        .await
        .unwrap();
    assert_eq!(
        for_merged.iter().map(|t| t.id).collect::<Vec<_>>(),
        [slack.id]
    );
}

#[tokio::test]
async fn a_target_failing_for_the_documented_days_is_disabled_and_switched_on_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = store(dir.path()).await;
    let target = store
        .create_notification_target(
            project,
            &new(
                TargetKind::Webhook,
                "https://example.com/in",
                &NotifyEvent::ALL,
            ),
        )
        .await
        .unwrap();
    let start = 1_000_000_000_000i64;
    let days = DISABLE_AFTER.as_millis() as i64;
    assert!(!store
        .record_notification_failure(target.id, "503", start)
        .await
        .unwrap());
    let failing = store.notification_target(project, target.id).await.unwrap();
    assert_eq!(failing.health, TargetHealth::Failing);
    assert_eq!(failing.last_error.as_deref(), Some("503"));
    assert!(!store
        .record_notification_failure(target.id, "503 again", start + days - 1)
        .await
        .unwrap());
    assert!(store
        .record_notification_failure(target.id, "still 503", start + days)
        .await
        .unwrap());
    let disabled = store.notification_target(project, target.id).await.unwrap();
    assert_eq!(disabled.health, TargetHealth::Disabled);
    assert!(!disabled.enabled && disabled.disabled_at.is_some());
    assert!(store
        .notification_targets_for(project, NotifyEvent::ValidationFinished)
        .await
        .unwrap()
        .is_empty());

    let on = TargetPatch {
        enabled: Some(true),
        ..TargetPatch::default()
    };
    let again = store
        .update_notification_target(project, target.id, &on)
        .await
        .unwrap();
    assert_eq!(again.health, TargetHealth::New);
    store.record_notification_success(target.id).await.unwrap();
    let healthy = store.notification_target(project, target.id).await.unwrap();
    assert_eq!(healthy.health, TargetHealth::Healthy);
    assert_eq!(healthy.last_error, None);
}

#[tokio::test]
async fn another_projects_target_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = store(dir.path()).await;
    let target = store
        .create_notification_target(
            project,
            &new(TargetKind::Slack, SLACK_URL, &NotifyEvent::ALL),
        )
        .await
        .unwrap();
    let other = slipway_core::ProjectId(project.0 + 1);
    assert!(matches!(
        store.notification_target(other, target.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_notification_target(other, target.id).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_notification_target(project, target.id)
        .await
        .unwrap();
    assert!(store
        .notification_targets(project)
        .await
        .unwrap()
        .is_empty());
}
