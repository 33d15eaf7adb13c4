//! What of the host a cell sees: the system read-only, and nothing else of the host's: no
//! other repository, no home, no data directory, whoever may read them outside.

mod common;

use common::{bwrap, open_cell, run_command, run_in_cell, Options};

#[tokio::test]
async fn a_cell_sees_the_system_but_no_other_repository_or_home() {
    // Another project's repository, readable by every user of this machine.
    let other = tempfile::Builder::new()
        .prefix("other-repository")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(other.path().join("SECRET.md"), "another project's code").unwrap();
    std::fs::set_permissions(
        other.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let probe = format!(
        "test -x /usr/bin/env && echo system-visible; \
         cat {}/SECRET.md 2>/dev/null && echo other-repository-readable; \
         ls /var/tmp /home /root /srv /opt /mnt 2>/dev/null | grep -v '^/' | grep . && echo host-directories-listed; \
         cat /etc/shadow 2>/dev/null && echo shadow-readable; \
         test -e /etc/passwd && echo etc-visible; true",
        other.path().display()
    );
    let ran = run_in_cell(&bwrap(Vec::new()), ws.path(), &probe, Options::default()).await;
    let said = ran.lines.join("\n");
    assert!(
        said.contains("system-visible") && said.contains("etc-visible"),
        "{said}"
    );
    for leak in [
        "other-repository-readable",
        "host-directories-listed",
        "shadow-readable",
    ] {
        assert!(!said.contains(leak), "{leak}:\n{said}");
    }
}

#[tokio::test]
async fn a_path_the_cell_is_made_to_see_is_read_only() {
    let script_dir = tempfile::Builder::new()
        .prefix("agent-script")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(
        script_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = script_dir.path().join("agent.sh");
    std::fs::write(&script, "echo the agent ran").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let command = format!(
        "sh {0} && (echo changed > {0}) 2>/dev/null || echo read-only",
        script.display()
    );
    let visible = slipway_sandbox::paths_named_in(&command);
    assert_eq!(visible, vec![script.clone()]);
    let ws = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let cell = open_cell(&bwrap(Vec::new()), ws.path(), scratch.path(), &visible).await;
    let (outcome, lines) = run_command(&cell, ws.path(), &command).await;
    cell.close().await;
    assert_eq!(outcome, slipway_sandbox::Outcome::Exited(0), "{lines:?}");
    assert_eq!(lines, ["the agent ran", "read-only"]);
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        "echo the agent ran"
    );
}
