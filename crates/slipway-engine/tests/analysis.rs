//! The analysis step over real git repositories: the change is read from git's objects
//! against the merge base, before any of its code runs.

use slipway_core::validation::{StepName, StepStatus, ValidationStatus};
use slipway_engine::{Options, Target};
use slipway_store::ValidationRecord;
use slipway_testkit::{commit_files, git};

mod common;
use common::{harness, step, Harness};

const PIPELINE: &str = "[test]\ncommands = [\"true\"]\n[analysis]\nmax_function_complexity = 5\n";
const APP: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";
const TESTS: &str = "from app import add, sub\n\n\ndef test_add():\n    assert add(1, 1) == 2\n\n\ndef test_sub():\n    assert sub(2, 1) == 1\n";

async fn repository() -> Harness {
    harness(&[
        (".slipway.toml", PIPELINE),
        ("app.py", APP),
        ("tests/test_app.py", TESTS),
    ])
    .await
}

/// Commits `files` on a new branch off main, and validates it merged onto main.
async fn validate_change(h: &Harness, branch: &str, files: &[(&str, &str)]) -> ValidationRecord {
    git(&h.repo, &["checkout", "-q", "-b", branch, "main"]);
    commit_files(&h.repo, files, branch);
    git(&h.repo, &["checkout", "-q", "main"]);
    let options = Options {
        base: Some("main".into()),
        ..Options::default()
    };
    let queued = h
        .engine
        .submit_with(&h.project, Target::Branch(branch.into()), options)
        .await
        .unwrap();
    h.run_until_final(&[queued.id]).await;
    h.store.validation(queued.id).await.unwrap()
}

#[tokio::test]
async fn a_change_that_weakens_a_test_fails_at_analysis_and_says_why() {
    let h = repository().await;
    let weakened = TESTS
        .replace("assert add(1, 1) == 2", "assert add(1, 1)")
        .replace("\n\ndef test_sub():\n    assert sub(2, 1) == 1\n", "\n");
    // Its tests put the original file back and commit it: the analysis read the change
    // before any of its code ran.
    let restore = "[test]\ncommands = [\"git show main:tests/test_app.py > tests/test_app.py && git commit -qam x || true\"]\n[analysis]\nmax_function_complexity = 5\n";
    let record = validate_change(
        &h,
        "weaken",
        &[
            ("tests/test_app.py", &weakened),
            ("app.py", &APP.replace("a - b", "a + b")),
            (".slipway.toml", restore),
        ],
    )
    .await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Failed, "{log}");
    assert_eq!(step(&record, StepName::Test).status, StepStatus::Passed);
    let analysis = step(&record, StepName::Analysis);
    assert_eq!(analysis.status, StepStatus::Failed, "{log}");
    let detail = analysis.detail.as_deref().unwrap();
    assert!(
        detail.contains("weakening, skipping or deleting tests is refused"),
        "{detail}"
    );
    assert!(
        log.contains("tests/test_app.py:8: error [test-tampering] test `test_sub` was deleted"),
        "{log}"
    );
    assert!(
        log.contains("[test-tampering] test `test_add` checks less"),
        "{log}"
    );
    // The evidence, kept among the artifacts.
    let evidence = h.engine.artifacts_dir(record.id).join("analysis.json");
    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence).unwrap()).unwrap();
    assert_eq!(
        evidence["findings"].as_array().unwrap().len(),
        3,
        "{evidence}"
    );
    assert!(
        log.contains(".slipway.toml:2: error [test-tampering]"),
        "{log}"
    );
}

#[tokio::test]
async fn a_clean_change_passes_and_a_simpler_function_is_not_flagged() {
    let h = repository().await;
    let complex = "def grade(n):\n    if n > 90:\n        return 'a'\n    elif n > 80:\n        return 'b'\n    elif n > 70:\n        return 'c'\n    elif n > 60:\n        return 'd'\n    elif n > 50:\n        return 'e'\n    return 'f'\n";
    commit_files(&h.repo, &[("grade.py", complex)], "a complex function");
    let simpler = "def grade(n):\n    return 'abcdef'[min(5, max(0, (100 - n) // 10 - 0))]\n";
    let more_tests = format!("{TESTS}\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n");
    let record = validate_change(
        &h,
        "clean",
        &[("grade.py", simpler), ("tests/test_app.py", &more_tests)],
    )
    .await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    let analysis = step(&record, StepName::Analysis);
    assert_eq!(analysis.status, StepStatus::Passed, "{log}");
    assert_eq!(
        analysis.detail.as_deref(),
        Some("2 files analysed: 0 errors, 0 warnings, 0 notes")
    );
}

#[tokio::test]
async fn a_pull_request_cannot_relax_the_analysis_of_its_base() {
    let h = repository().await;
    let complex = "def grade(n):\n    if n > 90:\n        return 'a'\n    elif n > 80:\n        return 'b'\n    elif n > 70:\n        return 'c'\n    elif n > 60:\n        return 'd'\n    elif n > 50:\n        return 'e'\n    return 'f'\n";
    let relaxed = PIPELINE.replace(
        "max_function_complexity = 5",
        "max_function_complexity = 50",
    );
    let record = validate_change(
        &h,
        "relax",
        &[("grade.py", complex), (".slipway.toml", &relaxed)],
    )
    .await;
    let log = h.log(record.id).await;
    assert_eq!(
        step(&record, StepName::Analysis).status,
        StepStatus::Failed,
        "{log}"
    );
    assert!(
        log.contains(
            "grade.py:1: error [complexity] `grade` has cyclomatic complexity 6 (limit 5)"
        ),
        "{log}"
    );
    assert!(
        log.contains(".slipway.toml:4: error [test-tampering]"),
        "{log}"
    );
}

#[tokio::test]
async fn a_skipped_test_is_found_even_when_another_test_fails() {
    let h = repository().await;
    let skipped = TESTS.replace(
        "def test_add",
        "import pytest\n\n\n@pytest.mark.skip\ndef test_add",
    );
    let failing = "[test]\ncommands = [\"false\"]\n[analysis]\nmax_function_complexity = 5\n";
    let record = validate_change(
        &h,
        "skip-and-fail",
        &[("tests/test_app.py", &skipped), (".slipway.toml", failing)],
    )
    .await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Failed, "{log}");
    assert_eq!(step(&record, StepName::Test).status, StepStatus::Failed);
    // Made before any code ran, the analysis is still reported, and says what it found.
    let analysis = step(&record, StepName::Analysis);
    assert_eq!(analysis.status, StepStatus::Failed, "{log}");
    assert!(log.contains("@pytest.mark.skip"), "{log}");
}

#[tokio::test]
async fn the_commit_that_adopts_slipway_is_not_tampering() {
    // A repository whose first commit adds .slipway.toml with [analysis]: nothing existed to
    // weaken.
    let h = repository().await;
    let record = h.validate_main().await;
    let log = h.log(record.id).await;
    assert_eq!(record.status, ValidationStatus::Passed, "{log}");
    assert!(!log.contains("[test-tampering]"), "{log}");
}
