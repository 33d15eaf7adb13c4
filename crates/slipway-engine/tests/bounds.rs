//! What a pull request cannot make Slipway do: keep its whole log, raise its own quotas.
//! Real processes in the sandbox, a real store.

mod common;

use common::{harness, harness_with, step, Harness};
use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_store::LogLine;

async fn test_step_log(h: &Harness, id: slipway_core::ValidationId) -> Vec<LogLine> {
    h.store
        .logs(id, Some(StepName::Test), 0, 10_000_000)
        .await
        .unwrap()
}

/// `log` events of the validation's project: one per stored line, no more.
async fn log_events(h: &Harness) -> i64 {
    let url = format!("sqlite://{}", h.store_dir().join("slipway.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'log'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_step_printing_far_more_lines_than_its_cap_keeps_its_head_a_marker_and_its_tail() {
    let pipeline = "[test]\ncommands = [\"seq 1 300000\"]\n[sandbox]\nlog_lines = 1000\n";
    let h = harness(&[(".slipway.toml", pipeline)]).await;
    let record = h.validate_main().await;
    let lines = test_step_log(&h, record.id).await;
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(record.status, ValidationStatus::Passed, "{:?}", &text[..5]);
    // 300,001 lines were offered ("$ seq …" and the numbers): 1,000 kept, and the marker.
    assert!(lines.len() <= 1_001, "{} lines stored", lines.len());
    assert_eq!(text[0], "$ seq 1 300000");
    assert_eq!(text[1], "1", "the head comes first, as printed");
    let marker = text
        .iter()
        .position(|l| l.contains("were dropped here"))
        .expect("a marker says lines were dropped");
    assert!(
        text[marker].contains("299001 lines"),
        "the marker counts what was dropped: {}",
        text[marker]
    );
    assert_eq!(text.last(), Some(&"300000"), "the tail ends the log");
    assert_eq!(text[marker + 1], "299501", "the tail follows the marker");
    let stored = h.store.logs(record.id, None, 0, 10_000_000).await.unwrap();
    assert_eq!(
        log_events(&h).await,
        stored.len() as i64,
        "one event per kept line"
    );
}

#[tokio::test]
async fn a_step_printing_more_megabytes_than_its_cap_keeps_at_most_the_cap() {
    // 20 MB in lines of 1,000 bytes.
    let flood = "head -c 20000000 /dev/zero | tr '\\\\0' x | fold -w 1000";
    let pipeline = format!("[test]\ncommands = [\"{flood}\"]\n[sandbox]\nlog_mb = 1\n");
    let h = harness(&[(".slipway.toml", &pipeline)]).await;
    let record = h.validate_main().await;
    let lines = test_step_log(&h, record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed);
    let marker = lines
        .iter()
        .find(|l| l.line.contains("were dropped here"))
        .expect("a marker says lines were dropped");
    let bytes: usize = lines.iter().map(|l| l.line.len()).sum();
    assert!(
        bytes <= 1024 * 1024 + marker.line.len() + 1_000,
        "{bytes} bytes stored for a 1 MB cap"
    );
    assert_eq!(
        lines.last().unwrap().line,
        "x".repeat(1_000),
        "the tail is kept"
    );
}

#[tokio::test]
async fn a_pipeline_cannot_raise_its_quotas_or_log_cap_past_the_ceilings() {
    // Touches 400 MB: more than the ceiling, less than what the pipeline asks for.
    let hog = "python3 -c \\\"b = b'x' * (400 * 1024 * 1024); print('alloc' + 'ated', len(b))\\\"";
    let pipeline = format!(
        "[test]\ncommands = [\"seq 1 5000\", \"{hog}\"]\n[sandbox]\nmemory_mb = 4096\nlog_lines = 1000000\n"
    );
    let h = harness_with(&[(".slipway.toml", &pipeline)], |config| {
        config.sandbox_ceilings.memory_mb = 128;
        config.sandbox_ceilings.log_lines = 1_000;
    })
    .await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert!(
        log.contains("memory_mb = 4096 is above this server's ceiling of 128"),
        "{log}"
    );
    assert!(log.contains("log_lines = 1000000 is above"), "{log}");
    assert!(
        !log.contains("allocated"),
        "the pipeline got the memory it asked for: {log}"
    );
    assert_eq!(
        step(&record, StepName::Test).status,
        StepStatus::Failed,
        "{log}"
    );
    let lines = test_step_log(&h, record.id).await;
    assert!(
        lines.len() <= 1_001,
        "{} lines kept under a cap of 1000",
        lines.len()
    );
}

#[tokio::test]
async fn a_commit_message_of_a_megabyte_is_kept_as_a_short_title() {
    let h = harness(&[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")]).await;
    let message = h.repo.with_extension("message");
    std::fs::write(&message, "s".repeat(1_000_000)).unwrap();
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(&h.repo)
        .args(["-c", "user.name=a", "-c", "user.email=a@example.com"])
        .args(["commit", "-q", "--allow-empty", "-F"])
        .arg(&message)
        .status()
        .unwrap();
    assert!(status.success());
    let record = h.validate_main().await;
    assert_eq!(record.status, ValidationStatus::Passed);
    let title = record.commit_title.unwrap_or_default();
    assert!(
        title.starts_with("sss") && title.len() <= 310,
        "a title of {} bytes was kept",
        title.len()
    );
    let log: usize = test_step_log(&h, record.id)
        .await
        .iter()
        .map(|l| l.line.len())
        .sum();
    assert!(log < 10_000, "the log holds {log} bytes");
}
