//! Listing a directory tree as the regular files a generation or a delta holds.
//!
//! Walks the tree and returns its files in sorted order. Symlinks, devices, FIFOs, sockets
//! and non-UTF-8 names are refused: a generation holds regular files only, so what a reader
//! finds under `current/` is exactly what the manifest lists. (Putting the files into the
//! store is [`crate::root::Root::ingest_tree`].)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{DeltaError, IoContext, Result};

/// Regular files under `dir`, as (relative `/` path, absolute path, mode), sorted by path.
pub fn list_tree(dir: &Path) -> Result<Vec<(String, PathBuf, u32)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ctx(|| format!("list {}", d.display()))? {
            let entry = entry.ctx(|| format!("list {}", d.display()))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).ctx(|| format!("stat {}", path.display()))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .ok_or_else(|| DeltaError::Unsupported {
                        path: path.clone(),
                        why: "file name is not UTF-8".into(),
                    })?
                    .to_string();
                out.push((rel, path, meta.permissions().mode() & 0o777));
            } else {
                let why = if ft.is_symlink() {
                    "symbolic links are not stored in generations"
                } else {
                    "only regular files and directories are stored in generations"
                };
                return Err(DeltaError::Unsupported {
                    path,
                    why: why.into(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
