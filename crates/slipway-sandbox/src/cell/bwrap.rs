//! The bubblewrap command line of a command in a cell: a nested user namespace without
//! capabilities, its own PID/IPC/UTS/cgroup namespaces, a tmpfs root with the system bound
//! read-only, Slipway's paths covered, the workspace and `/tmp` bound by descriptor.

use super::{Cell, Ids, STATUS_FD, TMP_FD, WORKSPACE_FD, WORKSPACE_INSIDE};
use crate::CommandSpec;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Isolation flags, then the root: a tmpfs that the system is bound into read-only.
const ISOLATION: [&str; 16] = [
    "--unshare-user",
    "--uid",
    "1000",
    "--gid",
    "1000",
    "--disable-userns",
    "--cap-drop",
    "ALL",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    "--tmpfs",
    "/",
];

/// Top-level directories not taken from the host (made fresh, or the sandbox's own).
const NOT_FROM_HOST: [&[u8]; 5] = [b"proc", b"dev", b"tmp", b"run", b"workspace"];

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

impl Cell {
    pub(super) fn bwrap_args(&self, spec: &CommandSpec<'_>) -> std::io::Result<Vec<OsString>> {
        let mut args: Vec<OsString> = ISOLATION.iter().map(OsString::from).collect();
        args.extend(["--json-status-fd".into(), STATUS_FD.to_string().into()]);
        let mut push = |items: &[&OsStr]| args.extend(items.iter().map(|s| s.to_os_string()));
        for entry in std::fs::read_dir("/")?.flatten() {
            if NOT_FROM_HOST.contains(&entry.file_name().as_bytes()) {
                continue;
            }
            let (kind, from) = (entry.file_type()?, entry.path());
            if kind.is_symlink() {
                let target = std::fs::read_link(&from)?;
                push(&[os("--symlink"), target.as_os_str(), from.as_os_str()]);
            } else if kind.is_dir() || kind.is_file() {
                push(&[os("--ro-bind"), from.as_os_str(), from.as_os_str()]);
            }
        }
        push(&[
            os("--dev"),
            os("/dev"),
            os("--proc"),
            os("/proc"),
            os("--tmpfs"),
            os("/run"),
        ]);
        let resolver = Path::new("/run/systemd/resolve");
        if resolver.is_dir() {
            push(&[os("--ro-bind"), resolver.as_os_str(), resolver.as_os_str()]);
        }
        for hidden in &self.hidden {
            // A path the sandbox user cannot even reach needs no cover (and cannot get one).
            if !reachable(hidden, self.drop_to) {
                continue;
            }
            match std::fs::symlink_metadata(hidden) {
                Ok(meta) if meta.is_dir() => push(&[os("--tmpfs"), hidden.as_os_str()]),
                Ok(_) => push(&[os("--ro-bind"), os("/dev/null"), hidden.as_os_str()]),
                Err(_) => {}
            }
        }
        let (workspace_fd, tmp_fd) = (WORKSPACE_FD.to_string(), TMP_FD.to_string());
        push(&[os("--bind-fd"), os(&workspace_fd), os(WORKSPACE_INSIDE)]);
        push(&[
            os("--bind-fd"),
            os(&tmp_fd),
            os("/tmp"),
            os("--remount-ro"),
            os("/"),
        ]);
        push(&[os("--chdir"), self.inside(spec.cwd).as_os_str()]);
        push(&[os("--"), os("/bin/sh"), os("-c"), os(spec.command)]);
        Ok(args)
    }
}

/// Whether a process with `ids` (or Slipway's own user) could reach `path` by name.
fn reachable(path: &Path, ids: Option<Ids>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(ids) = ids else { return true };
    path.ancestors()
        .skip(1)
        .all(|dir| match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.mode();
                if meta.uid() == ids.uid {
                    mode & 0o100 != 0
                } else if meta.gid() == ids.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                }
            }
            Err(_) => false,
        })
}
