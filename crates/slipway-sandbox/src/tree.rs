//! Walking a directory tree as plain files: symbolic links are never followed, so a tree
//! that untrusted code wrote cannot lead Slipway anywhere else.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// Visits everything below `root`, with its path relative to `root`; `visit` says whether to
/// go into a directory. Stops at the first entry that cannot be read.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &Metadata) -> bool,
) -> std::io::Result<()> {
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(root.join(&relative))? {
            let entry = entry?;
            let child = relative.join(entry.file_name());
            let meta = entry.metadata()?;
            if visit(&child, &meta) && meta.is_dir() {
                pending.push(child);
            }
        }
    }
    Ok(())
}

/// The sum of `measure` over everything below `root` that could be read.
pub(crate) fn total(root: &Path, measure: impl Fn(&Metadata) -> u64) -> u64 {
    let mut sum = 0;
    let _ = walk(root, &mut |_, meta| {
        sum += measure(meta);
        true
    });
    sum
}
