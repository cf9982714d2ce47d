//! Listing a tree's regular files (sorted, hashed) and reading small files with a cap.
//!
//! Symbolic links are not followed and not listed; neither are sockets, FIFOs or devices.
//! Paths must be UTF-8 (the kit's manifest and tar entries are UTF-8).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{FileEntry, LayoutError};
use crate::sign::sha256_reader;

/// Every regular file under `root`, sorted by path, with mode, size and SHA-256.
pub fn walk_tree(root: &Path) -> Result<Vec<FileEntry>, LayoutError> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Like [`walk_tree`], restricted to `root/sub` (paths stay relative to `root`). A missing
/// `root/sub` gives an empty list.
pub(crate) fn walk_under(root: &Path, sub: &str) -> Result<Vec<FileEntry>, LayoutError> {
    let dir = root.join(sub);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LayoutError::Io { path: dir, source }),
    }
    let mut out = Vec::new();
    walk(root, &dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<(), LayoutError> {
    let rd = fs::read_dir(dir).map_err(io_err(dir))?;
    for ent in rd {
        let ent = ent.map_err(io_err(dir))?;
        let path = ent.path();
        let ft = ent.file_type().map_err(io_err(&path))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = rel_path(root, &path)?;
            let file = File::open(&path).map_err(io_err(&path))?;
            let meta = file.metadata().map_err(io_err(&path))?;
            let sha256 = sha256_reader(&file).map_err(io_err(&path))?;
            out.push(FileEntry {
                path: rel,
                mode: meta.permissions().mode() & 0o7777,
                size: meta.len(),
                sha256,
            });
        }
    }
    Ok(())
}

fn rel_path(root: &Path, path: &Path) -> Result<String, LayoutError> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| LayoutError::NonUtf8Path(path.to_path_buf()))?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s),
            None => return Err(LayoutError::NonUtf8Path(path.to_path_buf())),
        }
    }
    Ok(parts.join("/"))
}

/// Reading a small file failed or it was over the cap.
pub(crate) enum SmallRead {
    TooLarge(u64),
    Io(PathBuf, io::Error),
}

impl SmallRead {
    pub(crate) fn violation_reason(self) -> Result<String, LayoutError> {
        match self {
            SmallRead::TooLarge(limit) => Ok(format!("larger than {limit} bytes")),
            SmallRead::Io(path, source) => Err(LayoutError::Io { path, source }),
        }
    }
}

/// Reads `root/rel` if it is at most `limit` bytes.
pub(crate) fn read_small(root: &Path, rel: &str, limit: u64) -> Result<Vec<u8>, SmallRead> {
    let path = root.join(rel);
    let file = File::open(&path).map_err(|e| SmallRead::Io(path.clone(), e))?;
    let mut buf = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SmallRead::Io(path.clone(), e))?;
    if buf.len() as u64 > limit {
        return Err(SmallRead::TooLarge(limit));
    }
    Ok(buf)
}
