//! Test support: a snapshot of every file under a directory (bytes, inode, modification
//! time), so a test can prove that a command wrote nothing there: a file rewritten in place
//! or replaced by a rename shows even when its bytes are equal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// Relative path -> (bytes, inode, modification time) of every file under a directory.
pub type DirSnapshot = BTreeMap<String, (Vec<u8>, u64, SystemTime)>;

/// Every file under `dir` (symlinks recorded as files, never followed).
pub fn snapshot(dir: &Path) -> io::Result<DirSnapshot> {
    fn walk(base: &Path, dir: &Path, out: &mut DirSnapshot) -> io::Result<()> {
        for e in fs::read_dir(dir)? {
            let p = e?.path();
            let m = fs::symlink_metadata(&p)?;
            if m.is_dir() {
                walk(base, &p, out)?;
            } else {
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                let bytes = if m.is_file() {
                    fs::read(&p)?
                } else {
                    Vec::new()
                };
                out.insert(rel, (bytes, m.ino(), m.modified()?));
            }
        }
        Ok(())
    }
    let mut out = DirSnapshot::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// The paths added, removed, or changed in bytes, inode or mtime between two snapshots.
pub fn changed(before: &DirSnapshot, after: &DirSnapshot) -> Vec<String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
