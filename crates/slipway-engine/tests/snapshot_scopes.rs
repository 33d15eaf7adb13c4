//! Setup snapshots are scoped like GitHub Actions' caches: what one branch's setup left is
//! never restored into another branch's validation, so a branch that changes only its setup
//! script cannot plant code that `main`'s validations then run.

use slipway_core::validation::ValidationStatus;
use slipway_testkit::commit_files;

mod common;
use common::harness;

const PIPELINE: &str = "[setup]\ncommands = [\"sh setup.sh\"]\ncache_key = [\"lock.txt\"]\n\
                        [test]\ncommands = [\"cat deps/pkg\"]\n";

fn git(repo: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[tokio::test]
async fn a_branchs_snapshot_is_never_restored_into_main() {
    let h = harness(&[
        (".gitignore", "deps/\n"),
        ("lock.txt", "v1"),
        (
            "setup.sh",
            "mkdir -p deps && echo clean > deps/pkg && echo setup ran",
        ),
        (".slipway.toml", PIPELINE),
    ])
    .await;
    // Same lockfile, same setup commands: only the script differs.
    git(&h.repo, &["checkout", "-q", "-b", "evil"]);
    commit_files(
        &h.repo,
        &[("setup.sh", "mkdir -p deps && echo planted > deps/pkg")],
        "plant",
    );
    git(&h.repo, &["checkout", "-q", "main"]);
    let evil = h.validate_branch("evil").await;
    let log = h.log(evil.id).await;
    assert!(
        log.contains("[test] planted") && log.contains("saved"),
        "{log}"
    );

    let main = h.validate_main().await;
    let log = h.log(main.id).await;
    assert_eq!(main.status, ValidationStatus::Passed, "{log}");
    assert!(
        log.contains("[setup] setup ran"),
        "main restored another branch's snapshot: {log}"
    );
    assert!(
        log.contains("[test] clean") && !log.contains("planted"),
        "{log}"
    );

    // main's own snapshot is still used by main.
    commit_files(&h.repo, &[("src.txt", "code")], "code");
    let again = h.validate_main().await;
    let log = h.log(again.id).await;
    assert!(
        log.contains("restored from snapshot") && log.contains("[test] clean"),
        "{log}"
    );
}
