//! `slipway validate` as a user runs it.

use serde_json::Value;
use slipway_testkit::{commit_files, fixture_repo, PYTHON_APP, PYTHON_APP_TEST};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_slipway");

/// One run with a cache of its own (nothing shared between tests or with the user's).
fn validate(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    validate_with_cache(args, cache.path())
}

fn validate_with_cache(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("validate")
        .args(args)
        .env_remove("SLIPWAY_DATA_DIR")
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("slipway runs")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    })
}

fn good_repo(dir: &std::path::Path) -> String {
    let pipeline = format!(
        "[build]\ncommands = [\"python3 -m py_compile app.py\"]\n[service]\nstart = \"python3 app.py\"\nhealth_path = \"/health\"\n[test]\ncommands = [{PYTHON_APP_TEST:?}]\n"
    );
    fixture_repo(dir, &[("app.py", PYTHON_APP), (".slipway.toml", &pipeline)])
}

#[test]
fn a_passing_commit_exits_0_with_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let sha = good_repo(dir.path());
    let out = validate(&[dir.path().to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "passed");
    assert_eq!(report["sha"], sha);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    let test = steps.iter().find(|s| s["name"] == "test").unwrap();
    assert_eq!(test["status"], "passed");
    assert!(test["log_tail"].as_str().unwrap().contains("test passed"));
    assert!(test["duration_ms"].as_i64().is_some());
    for name in ["checkout", "build", "deploy", "test"] {
        assert!(stderr.contains(&format!("✓ {name}")), "{stderr}");
    }
    assert!(stderr.contains("passed:"), "{stderr}");
}

#[test]
fn a_failing_commit_exits_1_and_shows_the_command_exit_code_and_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    good_repo(dir.path());
    commit_files(
        dir.path(),
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"echo assertion failed: 2 != 3; exit 5\"]\n",
        )],
        "break",
    );
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("step:      test"), "{stderr}");
    assert!(stderr.contains("exit code: 5"), "{stderr}");
    assert!(stderr.contains("assertion failed: 2 != 3"), "{stderr}");
}

#[test]
fn an_older_revision_and_a_branch_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_repo(dir.path());
    commit_files(
        dir.path(),
        &[(".slipway.toml", "[test]\ncommands = [\"exit 1\"]\n")],
        "break",
    );
    let out = validate(&[dir.path().to_str().unwrap(), "--rev", "HEAD~1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sha"], good);
    let url = format!("file://{}", dir.path().display());
    let out = validate(&[&url, "--branch", "main"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = validate(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a git repository"));

    good_repo(dir.path());
    let out = validate(&[dir.path().to_str().unwrap(), "--rev", "no-such-rev"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'no-such-rev' is not a commit"));

    let bad_config = dir.path().join("pipeline.toml");
    std::fs::write(&bad_config, "[test]\ncommandz = []\n").unwrap();
    let out = validate(&[
        "--config",
        bad_config.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pipeline.toml:2"));
}

#[test]
fn a_pipeline_file_given_on_the_command_line_serves_a_repository_without_one() {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo(dir.path(), &[("README.md", "plain repository")]);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[test]\ncommands = [\"grep -q plain README.md\"]\n",
    )
    .unwrap();
    let out = validate(&[
        dir.path().to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nothing_to_validate_exits_2_and_says_how_to_add_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo(dir.path(), &[("README.md", "no pipeline")]);
    let out = validate(&[dir.path().to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing to validate"), "{stderr}");
    assert!(
        stderr.contains(".slipway.toml") && stderr.contains("[test]"),
        "{stderr}"
    );
    assert_eq!(report(&out)["status"], "error");

    // A pipeline that only prepares the workspace checks nothing either.
    commit_files(
        dir.path(),
        &[(".slipway.toml", "[setup]\ncommands = [\"true\"]\n")],
        "setup only",
    );
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no step would check the code"), "{stderr}");
}

#[test]
fn a_refused_section_is_said_with_its_line_and_every_step_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "[test]\ncommands = [\"true\"]\n\n[judge]\nmin_score = 101\n";
    fixture_repo(dir.path(), &[(".slipway.toml", pipeline)]);
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(".slipway.toml:4"), "{stderr}");
    assert!(stderr.contains("judge.min_score"), "{stderr}");

    commit_files(
        dir.path(),
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
        "fix",
    );
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for (step, why) in [
        ("build", "no [build] section"),
        ("ui", "no [ui] section"),
        ("judge", "no [judge] section"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("– {step} ")))
            .unwrap_or_else(|| panic!("{step} not listed: {stderr}"));
        assert!(line.contains("skipped") && line.contains(why), "{line}");
    }
    assert!(
        stderr.contains("pipeline: the repository's .slipway.toml"),
        "{stderr}"
    );
}

#[test]
fn with_base_the_branch_is_validated_merged_onto_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixture_repo(
        dir.path(),
        &[
            (
                ".slipway.toml",
                "[test]\ncommands = [\"test \\\"$(cat a.txt)\\\" = \\\"$(cat b.txt)\\\"\"]\n",
            ),
            ("a.txt", "one\n"),
        ],
    );
    let git = |args: &[&str]| slipway_testkit::git(dir.path(), args);
    git(&["checkout", "-q", "-b", "feature"]);
    let head = commit_files(dir.path(), &[("b.txt", "one\n")], "feature");
    let path = dir.path().to_str().unwrap();
    let alone = validate(&[path, "--branch", "feature", "--json"]);
    assert_eq!(
        alone.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    assert!(report(&alone)["base_sha"].is_null());

    git(&["checkout", "-q", "main"]);
    let moved = commit_files(dir.path(), &[("a.txt", "two\n")], "main moves on");
    let merged = validate(&[path, "--branch", "feature", "--base", "main", "--json"]);
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(1), "{stderr}");
    let merged = report(&merged);
    assert_eq!(merged["sha"], head);
    assert_eq!(merged["base_sha"], moved);
    assert_ne!(merged["base_sha"], base);
    assert!(
        stderr.contains(&format!("validated merged onto main at {moved}")),
        "{stderr}"
    );

    // A conflict fails at checkout and names the file.
    commit_files(dir.path(), &[("b.txt", "main's own\n")], "main adds b");
    let conflict = validate(&[path, "--branch", "feature", "--base", "main"]);
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert_eq!(conflict.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("conflicts with main") && stderr.contains("b.txt"),
        "{stderr}"
    );

    let missing = validate(&[path, "--branch", "feature", "--base", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("'nope' does not exist"));
}

#[test]
fn setup_snapshots_are_kept_between_runs_unless_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "[setup]\ncommands = [\"mkdir -p deps && echo built > deps/lib.txt\"]\ncache_key = [\"lock.txt\"]\n[test]\ncommands = [\"grep -q built deps/lib.txt\"]\n";
    fixture_repo(
        dir.path(),
        &[
            (".slipway.toml", pipeline),
            ("lock.txt", "v1\n"),
            (".gitignore", "deps/\n"),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let setup_detail = |out: &Output| {
        let report = report(out);
        assert_eq!(report["status"], "passed", "{report}");
        report["steps"][1]["detail"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let first = validate_with_cache(&[path, "--json"], cache.path());
    assert!(!setup_detail(&first).contains("restored"));
    let second = validate_with_cache(&[path, "--json"], cache.path());
    assert!(
        setup_detail(&second).contains("restored from snapshot"),
        "the second run reuses the first's setup"
    );
    // A new commit on the same branch, with the same lockfile, reuses it too.
    commit_files(dir.path(), &[("README.md", "docs\n")], "docs");
    let third = validate_with_cache(&[path, "--json"], cache.path());
    assert!(
        setup_detail(&third).contains("restored from snapshot"),
        "a later commit of the branch reuses its setup"
    );
    let uncached = validate_with_cache(&[path, "--json", "--no-cache"], cache.path());
    assert!(!setup_detail(&uncached).contains("restored"));
    assert!(cache.path().join("slipway/snapshots").is_dir());

    // Two runs at once share the cache without harm.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (path, cache) = (path.to_owned(), cache.path().to_owned());
            std::thread::spawn(move || validate_with_cache(&[&path], &cache))
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_test_that_passes_on_a_retry_passes_and_is_marked_flaky() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = "if [ -f .tried ]; then echo second try passes; else touch .tried; echo first try fails; exit 1; fi";
    let pipeline = format!("[test]\ncommands = [{flaky:?}]\nretries = 1\n");
    fixture_repo(dir.path(), &[(".slipway.toml", &pipeline)]);
    let out = validate(&[dir.path().to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let test = report(&out)["steps"][4].clone();
    assert_eq!(test["status"], "passed");
    assert_eq!(test["flaky"], true);
    assert!(
        test["detail"].as_str().unwrap().contains("passed on try 2"),
        "{test}"
    );
    assert!(stderr.contains("(flaky)"), "{stderr}");

    // Without retries the same command fails; a consistent failure fails with them.
    commit_files(
        dir.path(),
        &[(
            ".slipway.toml",
            &format!("[test]\ncommands = [{flaky:?}]\n"),
        )],
        "no retries",
    );
    assert_eq!(
        validate(&[dir.path().to_str().unwrap()]).status.code(),
        Some(1)
    );
    commit_files(
        dir.path(),
        &[(
            ".slipway.toml",
            "[test]\ncommands = [\"exit 3\"]\nretries = 2\n",
        )],
        "broken",
    );
    let out = validate(&[dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report(&out)["steps"][4]["flaky"], false);
}

/// Browser checks' screenshots outlive the command: they are kept in the cache, and the
/// report says where.
#[test]
fn browser_checks_screenshots_are_kept_in_the_cache_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "[service]\nstart = \"python3 app.py\"\nhealth_path = \"/health\"\n\
                    [ui]\nviewports = [\"1280x800\"]\n\
                    [[ui.checks]]\nname = \"home\"\npath = \"/\"\nexpect_text = \"hello from the app\"\n";
    fixture_repo(
        dir.path(),
        &[("app.py", PYTHON_APP), (".slipway.toml", pipeline)],
    );
    let cache = tempfile::tempdir().unwrap();
    let out = validate_with_cache(
        &[dir.path().to_str().unwrap(), "--json", "--no-cache"],
        cache.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report(&out)["artifacts"].is_null(),
        "without a cache nothing is kept"
    );

    let out = validate_with_cache(&[dir.path().to_str().unwrap(), "--json"], cache.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let kept = std::path::PathBuf::from(report(&out)["artifacts"].as_str().unwrap());
    assert!(
        kept.starts_with(cache.path().join("slipway/artifacts")),
        "{}",
        kept.display()
    );
    assert!(stderr.contains(&kept.display().to_string()), "{stderr}");
    let png = std::fs::read(kept.join("home-1280x800.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// Started with its standard streams closed (as some supervisors do), Slipway still runs
/// the sandboxed pipeline: none of its own files takes their numbers.
#[test]
fn closed_standard_streams_do_not_break_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    good_repo(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            "exec 0<&- 2>&-; exec \"$0\" validate \"$1\" --json",
            BIN,
        ])
        .arg(dir.path())
        .env_remove("SLIPWAY_DATA_DIR")
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .expect("slipway runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report(&out)["status"], "passed");
}

/// A directory with only `git` and `sh` in it: a PATH without bubblewrap.
fn path_without_bubblewrap() -> tempfile::TempDir {
    let tools = tempfile::tempdir().unwrap();
    for tool in ["git", "sh"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|dir| dir.join(tool))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("{tool} is installed"));
        std::os::unix::fs::symlink(found, tools.path().join(tool)).unwrap();
    }
    tools
}

#[test]
fn without_bubblewrap_validate_refuses_saying_what_to_install_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "[test]\ncommands = [\"echo ran-here-unsandboxed\"]\n";
    fixture_repo(dir.path(), &[(".slipway.toml", pipeline)]);
    let tools = path_without_bubblewrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |allowed: bool| {
        let mut command = Command::new(BIN);
        command
            .arg("validate")
            .arg(dir.path())
            .env("PATH", tools.path())
            .env_remove("SLIPWAY_DATA_DIR")
            .env_remove("SLIPWAY_ALLOW_UNSANDBOXED")
            .env("XDG_CACHE_HOME", cache.path());
        if allowed {
            command.env("SLIPWAY_ALLOW_UNSANDBOXED", "1");
        }
        command.output().expect("slipway runs")
    };
    let refused = run(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apt-get install bubblewrap passt"),
        "{stderr}"
    );
    assert!(stderr.contains("SLIPWAY_ALLOW_UNSANDBOXED=1"), "{stderr}");
    assert!(!stderr.contains("ran-here-unsandboxed"), "{stderr}");

    // Deliberately unsandboxed: it runs, and says so.
    let allowed = run(true);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert_eq!(allowed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("UNSANDBOXED"), "{stderr}");
}

/// Paths of the process's open files (the cell keeps its workspace open).
fn open_paths(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup directories of processes whose command line holds `marker`.
fn cgroups_of(marker: &str) -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let groups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        for line in groups.lines().filter(|l| l.contains("slipway")) {
            let mut parts = line.splitn(3, ':');
            let (controllers, path) = (parts.nth(1).unwrap_or(""), parts.next().unwrap_or(""));
            let root = match controllers {
                "" => "/sys/fs/cgroup".to_owned(),
                c => format!("/sys/fs/cgroup/{}", c.trim_start_matches("name=")),
            };
            dirs.push(std::path::PathBuf::from(format!("{root}{path}")));
        }
    }
    dirs
}

/// SIGTERM (as from a supervisor or `timeout`) ends `validate` as Ctrl-C does: the
/// validation is cancelled and its processes, cgroup, workspace and work root are gone.
#[test]
fn sigterm_and_sigint_cancel_and_clean_up_alike() {
    for (signal, marker) in [(libc::SIGTERM, "9876501"), (libc::SIGINT, "9876502")] {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = format!("[test]\ncommands = [\"sleep {marker}\"]\n");
        fixture_repo(dir.path(), &[(".slipway.toml", &pipeline)]);
        let cache = tempfile::tempdir().unwrap();
        let child = Command::new(BIN)
            .arg("validate")
            .arg(dir.path())
            .env_remove("SLIPWAY_DATA_DIR")
            .env("XDG_CACHE_HOME", cache.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut waited = 0;
        while slipway_testkit::processes_with(&format!("sleep {marker}")) == 0 {
            waited += 1;
            assert!(waited < 1_200, "the step's command never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let workspaces: Vec<_> = open_paths(child.id())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/workspaces/"))
            .collect();
        assert!(!workspaces.is_empty(), "the cell's workspace is open");
        let work_root = workspaces[0].parent().unwrap().parent().unwrap().to_owned();
        let cgroups = cgroups_of(&format!("sleep {marker}"));
        // SAFETY: kill only sends a signal to the child started above.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code().is_some(),
            "killed by signal {signal}: {stderr}"
        );
        assert!(stderr.contains("cancelling the validation"), "{stderr}");
        assert_eq!(
            slipway_testkit::processes_with(&format!("sleep {marker}")),
            0,
            "the step's process outlived Slipway"
        );
        for path in workspaces.iter().chain(&cgroups).chain([&work_root]) {
            assert!(
                !path.exists(),
                "{} was left behind: {stderr}",
                path.display()
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = work_root.to_string_lossy();
        assert!(!mounts.contains(&*root), "a mount below {root} was left");
    }
}

#[test]
fn the_analysis_of_a_branch_against_its_base_is_reported_and_in_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let tests =
        "def test_one():\n    assert 1 + 1 == 2\n\n\ndef test_two():\n    assert 2 + 2 == 4\n";
    fixture_repo(
        dir.path(),
        &[
            (
                ".slipway.toml",
                "[test]\ncommands = [\"true\"]\n[analysis]\nmax_function_complexity = 10\n",
            ),
            ("tests/test_math.py", tests),
        ],
    );
    let git = |args: &[&str]| slipway_testkit::git(dir.path(), args);
    git(&["checkout", "-q", "-b", "agent"]);
    let token = format!("ghp_{}", "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNbVc");
    let skipped = tests.replace("def test_two", "@pytest.mark.skip\ndef test_two");
    commit_files(
        dir.path(),
        &[
            ("tests/test_math.py", &skipped),
            ("deploy.yml", &format!("token: {token}\n")),
        ],
        "skip a test, paste a token",
    );
    let path = dir.path().to_str().unwrap();
    let out = validate(&[path, "--branch", "agent", "--base", "main", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("analysis findings (2):"), "{stderr}");
    assert!(
        stderr.contains("tests/test_math.py:5: error [test-tampering] adds `@pytest.mark.skip`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy.yml:1: error [credentials]"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token[4..]) && !stdout.contains(&token[4..]));
    let json = report(&out);
    let findings = json["analysis"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{json}");
    assert_eq!(findings[0]["code"], "token: [masked]");
    let analysis = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "analysis")
        .unwrap();
    assert_eq!(analysis["status"], "failed");
}

#[test]
fn nothing_to_validate_is_said_once_without_the_projects_settings_and_the_table_holds() {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo(dir.path(), &[("README.md", "no pipeline")]);
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The advice (its example) once; the table's rows stay one line each.
    assert_eq!(
        stderr.matches("commands = [\"make test\"]").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("project's settings"), "{stderr}");
    assert!(stderr.contains("--config FILE"), "{stderr}");
    let table: Vec<&str> = stderr
        .lines()
        .skip_while(|l| *l != "steps:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(table.len(), 9, "one row per step:\n{stderr}");
    assert!(
        table.iter().all(|row| row.chars().count() < 120),
        "{stderr}"
    );
}

#[test]
fn uncommitted_changes_are_named_with_the_commit_that_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let sha = fixture_repo(
        dir.path(),
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
    );
    std::fs::write(
        dir.path().join(".slipway.toml"),
        "[test]\ncommands = [\"false\"]\n",
    )
    .unwrap();
    let out = validate(&[dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the commit, not the change: {stderr}"
    );
    let note = stderr
        .lines()
        .find(|l| l.starts_with("note: uncommitted changes"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        note.contains(&format!("HEAD is commit {}", &sha[..12])),
        "{note}"
    );
    assert!(
        note.ends_with("and that commit is what is validated"),
        "{note}"
    );
}

#[test]
fn a_branch_that_is_only_remote_is_refused_with_what_to_type() {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo(
        dir.path(),
        &[(".slipway.toml", "[test]\ncommands = [\"true\"]\n")],
    );
    let out = validate(&[dir.path().to_str().unwrap(), "--branch", "nowhere"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no local branch 'nowhere'"), "{stderr}");
    assert!(stderr.contains("--rev origin/nowhere"), "{stderr}");
    // A local branch still validates.
    let out = validate(&[dir.path().to_str().unwrap(), "--branch", "main"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
