//! Ingesting a directory tree into the store as a chunk-set manifest.
//!
//! Walks the tree in sorted order, puts every regular file through one store writer (one
//! durable commit for the whole tree) and returns the manifest. Symlinks, devices, FIFOs,
//! sockets and non-UTF-8 names are refused: a generation holds regular files only, so what
//! a reader finds under `current/` is exactly what the manifest lists.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ouk_store::WriteTotals;

use crate::error::{DeltaError, IoContext, Result};
use crate::manifest::{ChunkSetManifest, ManifestEntry};
use crate::root::Root;

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

impl Root {
    /// Put every file under `dir` into the store (one commit) and return its manifest.
    /// `progress` gets the count of bytes read since its last call.
    pub fn ingest_tree(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(ChunkSetManifest, WriteTotals)> {
        let files = list_tree(dir)?;
        let mut writer = self.store().writer()?;
        let mut entries = Vec::with_capacity(files.len());
        for (rel, path, mode) in files {
            let put = writer.put_file(&path, progress)?;
            entries.push(ManifestEntry {
                path: rel,
                mode,
                size: put.size,
                sha256: put.digest,
                chunks: put.chunks,
            });
        }
        let totals = writer.commit()?;
        Ok((ChunkSetManifest::new(entries)?, totals))
    }
}
