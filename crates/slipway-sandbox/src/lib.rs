//! Runs untrusted commands (a pull request's build, tests and app; a coding agent) on this
//! machine. Each validation or agent turn gets a [`Cell`]: its own user and network
//! namespaces (outbound access through pasta, never the host's loopback), its own cgroup
//! (memory and process quotas), a disk and CPU watcher, and an unprivileged user. Every
//! command runs in the cell inside bubblewrap: no capabilities, its own PID/IPC/UTS/cgroup
//! namespaces, a read-only view of the system with Slipway's data hidden, only the workspace
//! and a private `/tmp` writable. Timeouts and cancellation kill the whole process tree.

mod access;
mod cell;
mod cgroup;
mod enter;
mod process;
pub mod snapshot;
mod tree;

pub use cell::{paths_named_in, Cell, CellError, CellSpec, Network, Quotas};
pub use process::{Outcome, Process, LINES_IN_FLIGHT, MAX_LINE_BYTES};
pub use rustix::fs::Stat;
pub use tree::MAX_COPY_DEPTH;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How commands are isolated from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Inside bubblewrap at this path (pasta at the second path gives outbound network).
    Bubblewrap {
        bwrap: PathBuf,
        pasta: Option<PathBuf>,
    },
    /// As plain child processes: PR code can read what Slipway's user can read.
    None,
}

impl Isolation {
    /// Bubblewrap if `bwrap` is on the PATH and user namespaces work here, else none.
    pub fn detect() -> Self {
        Self::probe().unwrap_or(Isolation::None)
    }

    /// Like [`Isolation::detect`], saying what is missing when bubblewrap cannot be used.
    /// Probed once per process.
    pub fn probe() -> Result<Self, String> {
        static PROBED: std::sync::OnceLock<Result<Isolation, String>> = std::sync::OnceLock::new();
        PROBED.get_or_init(Self::probe_now).clone()
    }

    fn probe_now() -> Result<Self, String> {
        let Some(bwrap) = find_on_path("bwrap") else {
            return Err(
                "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap passt)"
                    .into(),
            );
        };
        let output = std::process::Command::new(&bwrap)
            .args(["--unshare-user", "--unshare-pid", "--unshare-net"])
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--die-with-parent", "--disable-userns", "--", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{} could not be run: {e}", bwrap.display()))?;
        if !output.status.success() {
            return Err(format!(
                "bubblewrap cannot make user namespaces here ({}); enable them \
                 (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0) \
                 or install bubblewrap 0.8 or later",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Isolation::Bubblewrap {
            bwrap,
            pasta: find_on_path("pasta"),
        })
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The local sandbox driver: makes cells.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub isolation: Isolation,
    /// Paths PR code must not see (Slipway's data directory, its key file).
    pub hidden: Vec<PathBuf>,
}

/// One command to run in a cell.
#[derive(Debug, Clone)]
pub struct CommandSpec<'a> {
    /// Run with `sh -c`.
    pub command: &'a str,
    /// The working directory: the cell's workspace or a directory below it.
    pub cwd: &'a Path,
    /// Added to the allowlisted environment.
    pub env: &'a [(String, String)],
}

/// The environment every command starts from; nothing else of Slipway's is passed on.
pub const ENV_ALLOWLIST_DOC: &str =
    "PATH (Slipway's), HOME (the workspace), TMPDIR, LANG=C.UTF-8, CI=true, the variables SLIPWAY_SANDBOX_ENV names, plus PORT and SLIPWAY_* facts and the project's secrets";

/// Names of Slipway's own environment variables every command also gets (comma-separated),
/// set by an administrator: a proxy's CA (`NODE_EXTRA_CA_CERTS`, `SSL_CERT_FILE`), a
/// registry mirror. Slipway's own settings and secrets are never passed, whatever it names.
pub const SANDBOX_ENV_VAR: &str = "SLIPWAY_SANDBOX_ENV";

/// The variables [`SANDBOX_ENV_VAR`] names that are set, but Slipway's own.
fn passed_through_env() -> Vec<(String, std::ffi::OsString)> {
    let names = std::env::var(SANDBOX_ENV_VAR).unwrap_or_default();
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with("SLIPWAY_") && !is_credential(name))
        .filter_map(|name| Some((name.to_owned(), std::env::var_os(name)?)))
        .collect()
}

/// Variables that hold Slipway's credentials: never passed on.
fn is_credential(name: &str) -> bool {
    matches!(
        name,
        "GITHUB_TOKEN"
            | "GITHUB_WEBHOOK_SECRET"
            | "GITHUB_APP_PRIVATE_KEY"
            | "CODEGEN_API_TOKEN"
            | "GEMINI_API_KEY"
    ) || name.ends_with("_TOKEN")
        || name.ends_with("_SECRET")
        || name.ends_with("_KEY")
        || name.ends_with("_PASSWORD")
}

/// How long a killed tree gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// The user (uid and gid) sandboxed code runs as when Slipway runs as root: 100000, outside
/// the range distributions give to accounts, when this user namespace maps it; otherwise (a
/// container mapping only 0–65535) the highest mapped id that no account or group uses.
pub fn sandbox_id() -> u32 {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        let (uid_map, gid_map) = (read("/proc/self/uid_map"), read("/proc/self/gid_map"));
        let taken = format!("{}{}", read("/etc/passwd"), read("/etc/group"));
        choose_sandbox_id(&uid_map, &gid_map, &taken)
    })
}

const PREFERRED_SANDBOX_ID: u32 = 100_000;

fn choose_sandbox_id(uid_map: &str, gid_map: &str, accounts: &str) -> u32 {
    let ranges = |map: &str| -> Vec<(u32, u32)> {
        map.lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
                let (inside, _, count) = (fields.next()??, fields.next()??, fields.next()??);
                let end = (inside + count).min(u64::from(u32::MAX)) as u32;
                Some((inside as u32, end))
            })
            .collect()
    };
    let (uids, gids) = (ranges(uid_map), ranges(gid_map));
    let mapped = |id: u32| {
        [&uids, &gids].iter().all(|ranges| {
            ranges
                .iter()
                .any(|&(start, end)| (start..end).contains(&id))
        })
    };
    if mapped(PREFERRED_SANDBOX_ID) || uids.is_empty() {
        return PREFERRED_SANDBOX_ID;
    }
    let used: std::collections::HashSet<u32> = accounts
        .lines()
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
        .collect();
    // Below 65534 (nobody) and 65535 (the kernel's overflow id).
    (1000..65534)
        .rev()
        .find(|&id| mapped(id) && !used.contains(&id))
        .unwrap_or(PREFERRED_SANDBOX_ID)
}

impl Sandbox {
    pub fn new(isolation: Isolation, hidden: Vec<PathBuf>) -> Self {
        Self { isolation, hidden }
    }

    /// Whether commands are confined.
    pub fn is_isolated(&self) -> bool {
        matches!(self.isolation, Isolation::Bubblewrap { .. })
    }

    /// The owner sandboxed code runs as, outside its namespaces: the sandbox user when
    /// Slipway is root, else Slipway's own user.
    pub fn outside_owner(&self) -> Option<(u32, u32)> {
        // SAFETY: geteuid has no preconditions.
        (self.is_isolated() && unsafe { libc::geteuid() } == 0)
            .then(|| (sandbox_id(), sandbox_id()))
    }

    /// Where cells' workspaces are made. bubblewrap reaches a workspace by its path as the
    /// sandbox's user, so when Slipway runs as root that path must be traversable by that
    /// user: a directory of Slipway's own in `/var/tmp` (mode 0711, one per data directory),
    /// hidden inside every sandbox. Otherwise the data directory itself.
    pub fn work_root(&self, data_dir: &Path) -> std::io::Result<PathBuf> {
        use sha2::Digest;
        use std::os::unix::fs::PermissionsExt;
        if self.outside_owner().is_none() {
            return Ok(data_dir.to_path_buf());
        }
        let absolute = std::path::absolute(data_dir)?;
        let digest = sha2::Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let base = Path::new("/var/tmp");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("slipway-{tag}"));
        std::fs::create_dir_all(&root)?;
        let meta = std::fs::symlink_metadata(&root)?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_dir()
            || std::os::unix::fs::MetadataExt::uid(&meta) != unsafe { libc::geteuid() }
        {
            return Err(std::io::Error::other(format!(
                "{} is not a directory of Slipway's own; remove it",
                root.display()
            )));
        }
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
        Ok(root)
    }
}

/// Removes what cells of crashed Slipway processes left (their cgroups); at start.
pub fn remove_stale_cells() {
    cgroup::Cgroup::remove_stale();
}

/// Hands a tree (not following symbolic links) to the sandbox's user, so that code running
/// as that user may write it. Does nothing when Slipway is not root.
pub fn give_to_sandbox(sandbox: &Sandbox, root: &Path) -> std::io::Result<()> {
    let Some((uid, gid)) = sandbox.outside_owner() else {
        return Ok(());
    };
    use std::os::unix::fs::{lchown, PermissionsExt};
    // Private to the sandbox's user: other users may traverse the parent, not this.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
    lchown(root, Some(uid), Some(gid))?;
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    tree::walk(root, &mut |node| {
        let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
        rustix::fs::chownat(node.parent, node.name, Some(uid), Some(gid), flags)?;
        Ok(true)
    })
}

/// Removes a tree that sandboxed code may have written (a workspace, a cell's `/tmp`):
/// never following links, at any depth or path length, never crossing a mount. Blocking.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    tree::remove(path)
}

/// The regular file `relative` below `root` (a workspace), at most `limit` bytes: no link
/// followed on the way, no FIFO or device opened. Blocking.
pub fn read_file_below(root: &Path, relative: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    tree::read_file_beneath(tree::open_dir(root)?, relative, limit)
}

/// Copies the directory `from` (not a link) to a new directory `to` by descriptor: links as
/// links, never followed on either side; regular files opened without blocking; FIFOs,
/// sockets and devices skipped; setuid and setgid bits dropped. `accept` sees each entry's
/// path below `from` and its status; what it refuses is left out with all below it. Trees
/// deeper than [`MAX_COPY_DEPTH`], or larger than `quotas` allow (`disk_mb` counting files at
/// their full length, `max_files`), are refused. Blocking.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    quotas: &Quotas,
    accept: &dyn Fn(&Path, &rustix::fs::Stat) -> bool,
) -> std::io::Result<()> {
    let source = tree::open_dir(from)?;
    std::fs::create_dir(to)?;
    let target = tree::open_dir(to)?;
    // Never more than the quotas let the tree be: files at full length (sparse ones too).
    let budget = tree::Budget::new(quotas.disk_mb * 1024 * 1024, quotas.max_files);
    let options = tree::CopyOptions {
        accept,
        budget: Some(&budget),
    };
    for entry in std::fs::read_dir(from)? {
        let name = tree::cstring(&entry?.file_name());
        tree::copy_entry(&source, &target, &name, &options)?;
    }
    Ok(())
}

/// [`remove_tree`] off the async runtime's threads.
pub async fn remove_tree_async(path: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || tree::remove(&path))
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::choose_sandbox_id;

    #[test]
    fn the_sandbox_id_is_one_this_namespace_maps_and_no_account_uses() {
        let full = "         0          0 4294967295\n";
        assert_eq!(choose_sandbox_id(full, full, ""), 100_000);
        let container = "0 0 65536\n";
        let accounts = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n\
                        odd:x:65533:65533::/:/bin/false\n";
        assert_eq!(choose_sandbox_id(container, container, accounts), 65_532);
        let narrow_groups = "0 0 2000\n";
        assert_eq!(choose_sandbox_id(container, narrow_groups, ""), 1999);
    }

    #[test]
    fn only_named_variables_reach_commands_and_never_slipways_credentials() {
        for (name, value) in [
            ("NODE_EXTRA_CA_CERTS", "/usr/local/share/ca.crt"),
            ("GITHUB_TOKEN", "ghp_secret"),
            ("SLIPWAY_ADMIN_TOKEN", "admin"),
            ("NPM_CONFIG_REGISTRY_KEY", "k"),
        ] {
            std::env::set_var(name, value);
        }
        std::env::set_var(
            super::SANDBOX_ENV_VAR,
            "NODE_EXTRA_CA_CERTS, GITHUB_TOKEN,SLIPWAY_ADMIN_TOKEN,NPM_CONFIG_REGISTRY_KEY,UNSET_ONE",
        );
        let passed = super::passed_through_env();
        assert_eq!(
            passed,
            vec![(
                "NODE_EXTRA_CA_CERTS".to_owned(),
                std::ffi::OsString::from("/usr/local/share/ca.crt")
            )]
        );
        std::env::remove_var(super::SANDBOX_ENV_VAR);
    }
}
