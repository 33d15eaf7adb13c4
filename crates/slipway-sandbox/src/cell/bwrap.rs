//! The bubblewrap command line of a command in a cell: a nested user namespace without
//! capabilities, its own PID/IPC/UTS/cgroup namespaces, a tmpfs root with the system bound
//! read-only, Slipway's paths covered, the workspace and `/tmp` bound by descriptor.

use super::{Cell, Ids, STATUS_FD, TMP_FD, WORKSPACE_FD, WORKSPACE_INSIDE};
use crate::CommandSpec;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

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

/// The host's top-level directories a cell sees, read-only: the system, never homes, data,
/// or other repositories. More comes only from [`visible_paths`].
const SYSTEM: [&str; 8] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];

/// What of `/etc` is covered: credentials and keys (most are unreadable to the sandbox's
/// user anyway; a Slipway not run as root may read some).
const ETC_COVERED: [&str; 10] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/krb5.keytab",
    "/etc/slipway",
];

/// Read-only paths an administrator adds to every cell (colon-separated absolute paths).
pub const SANDBOX_PATHS_ENV: &str = "SLIPWAY_SANDBOX_PATHS";

/// Besides the system: the directories of Slipway's `PATH` (commands find the same tools),
/// what the administrator adds, and what the cell was made to see.
fn visible_paths(extra: &[PathBuf]) -> Vec<PathBuf> {
    let listed = |name: &str| {
        std::env::var_os(name)
            .map(|value| std::env::split_paths(&value).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let system = |path: &Path| {
        SYSTEM
            .iter()
            .any(|top| path.starts_with(Path::new("/").join(top)))
    };
    // Homes are never shown for a PATH entry (a user's `~/.cargo/bin` would show the home's
    // name and lead to more of it); an administrator adds such paths by name.
    let home = |path: &Path| {
        ["/home", "/root"].iter().any(|top| path.starts_with(top))
            || std::env::var_os("HOME")
                .filter(|home| Path::new(home) != Path::new("/"))
                .is_some_and(|home| path.starts_with(home))
    };
    let mut paths: Vec<PathBuf> = listed("PATH")
        .into_iter()
        .filter(|dir| !system(dir) && !home(dir))
        .chain(listed(SANDBOX_PATHS_ENV))
        .chain(extra.iter().cloned())
        // Never `/` itself (the whole host) or a relative path.
        .filter(|path| path.is_absolute() && path.parent().is_some())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

impl Cell {
    pub(super) fn bwrap_args(&self, spec: &CommandSpec<'_>) -> std::io::Result<Vec<OsString>> {
        let mut args: Vec<OsString> = ISOLATION.iter().map(OsString::from).collect();
        args.extend(["--json-status-fd".into(), STATUS_FD.to_string().into()]);
        let mut push = |items: &[&OsStr]| args.extend(items.iter().map(|s| s.to_os_string()));
        for top in SYSTEM {
            let from = Path::new("/").join(top);
            match std::fs::symlink_metadata(&from) {
                Ok(meta) if meta.is_symlink() => {
                    let target = std::fs::read_link(&from)?;
                    push(&[os("--symlink"), target.as_os_str(), from.as_os_str()]);
                }
                Ok(meta) if meta.is_dir() => {
                    push(&[os("--ro-bind"), from.as_os_str(), from.as_os_str()])
                }
                _ => {}
            }
        }
        for path in visible_paths(&self.visible) {
            if path.exists() && reachable(&path, self.drop_to) {
                push(&[os("--ro-bind-try"), path.as_os_str(), path.as_os_str()]);
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
        let covered = ETC_COVERED.iter().map(PathBuf::from);
        for hidden in self.hidden.iter().cloned().chain(covered) {
            let hidden = &hidden;
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
