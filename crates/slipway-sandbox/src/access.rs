//! Whether the sandbox user can reach the files an operator's command names (a command
//! agent's script): checked before a run starts, so that a script in a directory only root
//! may read is Slipway's configuration error, not the agent's failure.

use crate::{paths_named_in, Sandbox};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What to do about it, as the README advises.
const ADVICE: &str = "Slipway runs as root and sandboxed commands (the agent's script \
    included) run as an unprivileged user: put the script somewhere any user may read, \
    outside /root and /tmp (e.g. /opt/agents), with `chmod a+rx` on each directory on the way \
    and `chmod a+r` on the script";

impl Sandbox {
    /// Why the sandbox user could not read a path `command` names, if it could not. Only
    /// when Slipway runs as root: otherwise commands run as Slipway's own user.
    pub fn unreadable_in(&self, command: &str) -> Option<String> {
        let (uid, gid) = self.outside_owner()?;
        paths_named_in(command)
            .iter()
            .find_map(|path| unreachable(path, uid, gid))
            .map(|why| format!("{why}. {ADVICE}"))
    }
}

/// Why `uid`/`gid` cannot read `path` by its permission bits, if it cannot.
fn unreachable(path: &Path, uid: u32, gid: u32) -> Option<String> {
    let allowed = |meta: &std::fs::Metadata, wanted: u32| {
        let mode = meta.mode();
        let bits = if meta.uid() == uid {
            mode >> 6
        } else if meta.gid() == gid {
            mode >> 3
        } else {
            mode
        };
        bits & wanted == wanted
    };
    for dir in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if !allowed(&meta, 0o1) {
            return Some(format!(
                "the sandbox user (uid {uid}) cannot read {}: it cannot enter {} (mode {:04o})",
                path.display(),
                dir.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    let meta = std::fs::metadata(path).ok()?;
    let wanted = if meta.is_dir() { 0o5 } else { 0o4 };
    (!allowed(&meta, wanted)).then(|| {
        format!(
            "the sandbox user (uid {uid}) cannot read {} (mode {:04o})",
            path.display(),
            meta.mode() & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_script_behind_a_closed_directory_is_named_with_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        let script = closed.join("agent.sh");
        std::fs::write(&script, "echo hi\n").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        // uid/gid 4242 owns nothing here: only the "other" bits count.
        let why = unreachable(&script, 4242, 4242).unwrap();
        assert!(
            why.contains("cannot enter") && why.contains("(mode 0700)"),
            "{why}"
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(unreachable(&script, 4242, 4242), None);
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o600)).unwrap();
        let why = unreachable(&script, 4242, 4242).unwrap();
        assert!(why.contains("(mode 0600)"), "{why}");
        // Its owner may read it.
        let owner = std::fs::metadata(&script).unwrap().uid();
        let group = std::fs::metadata(&script).unwrap().gid();
        assert_eq!(unreachable(&script, owner, group), None);
    }
}
