//! Copying between untrusted trees by descriptor (snapshot save and restore): links are
//! copied as links and never followed, at the destination too; directories merge into real
//! directories, anything else there is replaced; FIFOs, sockets and devices are skipped.

use super::{kind, open_dir_at, open_regular_at};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How deep a copied directory may go: a snapshot is a cache and an agent's change a
/// commit, and a tree deeper than this is neither worth keeping (copying it would hold two
/// descriptors a level).
pub const MAX_COPY_DEPTH: usize = 128;

/// What a copy keeps.
pub(crate) struct CopyOptions<'a> {
    /// Entries this refuses (given their path below the copy's start) are skipped, with all
    /// below them: a file that some other user owns, a `.git`.
    pub accept: &'a dyn Fn(&Path, &Stat) -> bool,
    /// What the copy may write at most, shared by the copies of one save.
    pub budget: Option<&'a Budget>,
}

/// What copies may still write: bytes (a file's full length: a sparse file or a hard link
/// is copied whole) and entries.
#[derive(Debug)]
pub struct Budget {
    bytes: std::cell::Cell<u64>,
    entries: std::cell::Cell<u64>,
}

impl Budget {
    pub fn new(bytes: u64, entries: u64) -> Self {
        Self {
            bytes: bytes.into(),
            entries: entries.into(),
        }
    }

    /// Takes one entry of `bytes` out of the budget, or says it is spent.
    fn take(&self, bytes: u64) -> io::Result<()> {
        let (left, entries) = (self.bytes.get(), self.entries.get());
        if bytes > left || entries == 0 {
            return Err(io::Error::other(
                "more than the validation's disk_mb or max_files would be copied",
            ));
        }
        self.bytes.set(left - bytes);
        self.entries.set(entries - 1);
        Ok(())
    }
}

/// What a copy left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub entries: u64,
}

struct Level {
    from: OwnedFd,
    to: OwnedFd,
    stat: Stat,
    entries: Vec<(CString, Stat)>,
    /// Below the copy's start.
    path: PathBuf,
}

/// Copies `name` of `from` to `name` of `to`. Modes lose their setuid and setgid bits;
/// times are kept, and owners too when Slipway is root.
pub(crate) fn copy_entry(
    from: impl AsFd,
    to: impl AsFd,
    name: &CStr,
    options: &CopyOptions<'_>,
) -> io::Result<Skipped> {
    let mut skipped = Skipped::default();
    let stat = rustix::fs::statat(&from, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let path = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    if !(options.accept)(&path, &stat) {
        skipped.entries += 1;
        return Ok(skipped);
    }
    charge(options, &stat)?;
    if kind(&stat) != FileType::Directory {
        copy_leaf(&from, &to, name, &stat, &mut skipped)?;
        return Ok(skipped);
    }
    let first = Level {
        to: directory_at(&to, name)?,
        from: open_dir_at(&from, name)?,
        stat,
        entries: Vec::new(),
        path,
    };
    let mut stack = vec![first];
    stack[0].entries = entries(&stack[0].from)?;
    while let Some(depth) = stack.len().checked_sub(1) {
        let level = &mut stack[depth];
        let Some((name, stat)) = level.entries.pop() else {
            let done = stack.pop().expect("a level");
            set_metadata(&done.to, &done.stat)?;
            continue;
        };
        let path = level.path.join(OsStr::from_bytes(name.to_bytes()));
        if !(options.accept)(&path, &stat) {
            skipped.entries += 1;
            continue;
        }
        charge(options, &stat)?;
        if kind(&stat) != FileType::Directory {
            copy_leaf(&level.from, &level.to, &name, &stat, &mut skipped)?;
        } else if depth + 1 >= MAX_COPY_DEPTH {
            return Err(io::Error::other(format!(
                "{}: directories nest deeper than {MAX_COPY_DEPTH} levels",
                path.display()
            )));
        } else {
            let from = open_dir_at(&level.from, &name)?;
            if rustix::fs::fstat(&from)?.st_ino != stat.st_ino {
                return Err(io::Error::other("a directory changed while it was copied"));
            }
            let to = directory_at(&level.to, &name)?;
            let entries = entries(&from)?;
            stack.push(Level {
                from,
                to,
                stat,
                entries,
                path,
            });
        }
    }
    Ok(skipped)
}

/// Takes an entry (and a regular file's length) out of the copy's budget.
fn charge(options: &CopyOptions<'_>, stat: &Stat) -> io::Result<()> {
    let Some(budget) = options.budget else {
        return Ok(());
    };
    let bytes = match kind(stat) {
        FileType::RegularFile => stat.st_size as u64,
        _ => 0,
    };
    budget.take(bytes)
}

fn entries(dir: &OwnedFd) -> io::Result<Vec<(CString, Stat)>> {
    let mut reader = rustix::fs::Dir::read_from(dir)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            entries.push((name.to_owned(), stat));
        }
    }
    Ok(entries)
}

/// The real directory `name` of `parent`: the one there, or a new one in place of whatever
/// else was there (a link is removed, never followed).
fn directory_at(parent: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if kind(&stat) == FileType::Directory => return open_dir_at(&parent, name),
        Ok(_) => rustix::fs::unlinkat(&parent, name, AtFlags::empty())?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))?;
    open_dir_at(&parent, name)
}

/// Removes whatever `name` of `parent` is (a directory with all below it).
fn clear(parent: impl AsFd, name: &CStr) -> io::Result<()> {
    match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if kind(&stat) == FileType::Directory => super::remove_at(&parent, name),
        Ok(_) => Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn copy_leaf(
    from: impl AsFd,
    to: impl AsFd,
    name: &CStr,
    stat: &Stat,
    skipped: &mut Skipped,
) -> io::Result<()> {
    match kind(stat) {
        FileType::RegularFile => {
            let (source, stat) = open_regular_at(&from, name)?;
            clear(&to, name)?;
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY;
            let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let target = rustix::fs::openat(&to, name, flags, Mode::from_raw_mode(0o600))?;
            if rustix::fs::ioctl_ficlone(&target, &source).is_err() {
                let (mut source, mut target) = (
                    std::fs::File::from(source),
                    std::fs::File::from(target.try_clone()?),
                );
                std::io::copy(&mut source, &mut target)?;
            }
            set_metadata(&target, &stat)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&from, name, Vec::new())?;
            clear(&to, name)?;
            rustix::fs::symlinkat(target.as_c_str(), &to, name)?;
            if is_root() {
                let (uid, gid) = owner(stat);
                rustix::fs::chownat(&to, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            let times = timestamps(stat);
            rustix::fs::utimensat(&to, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(())
        }
        _ => {
            skipped.entries += 1;
            Ok(())
        }
    }
}

fn set_metadata(fd: impl AsFd, stat: &Stat) -> io::Result<()> {
    if is_root() {
        let (uid, gid) = owner(stat);
        rustix::fs::fchown(&fd, uid, gid)?;
    }
    // After chown (which clears them anyway): never setuid or setgid.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(stat.st_mode & 0o1777))?;
    rustix::fs::futimens(&fd, &timestamps(stat))?;
    Ok(())
}

fn owner(stat: &Stat) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(stat.st_uid)),
        Some(Gid::from_raw(stat.st_gid)),
    )
}

fn timestamps(stat: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: stat.st_atime as _,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: stat.st_mtime as _,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
