//! Unpacking a bundle into a directory (the import pipeline's staging step).
//!
//! Job: stream every entry of a bundle into a target directory through [`BundleReader`],
//! computing each file's SHA-256 while writing it.
//!
//! Invariants:
//! - nothing is written outside `dir`: names are canonical relative paths (checked by the
//!   reader), the archive can hold no links, files are created with `create_new`
//!   (`O_CREAT|O_EXCL`, which never follows a symlink at the last component) and every
//!   existing directory on the way is checked to be a real directory, not a symlink;
//! - file modes are set exactly from the header with `fchmod` (the umask does not apply:
//!   0600 stays 0600); files are created 0600 and widened only after their content is
//!   written. Directory modes are applied at the end, deepest first, so a read-only
//!   directory does not block its own content; implicit parents get 0755;
//! - a file is declared-size bounded before its first byte is copied (the reader's rule),
//!   and the whole stream is bounded by the caller's [`ReadLimits`];
//! - memory: one 256 KiB copy buffer plus the reader's bound.
//!
//! On error the target directory is left partly written; the caller (staging) removes it.
//! Files are not fsynced here: the pipeline fsyncs what it keeps.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ouk_store::fsutil::HashingWriter;

use super::error::ReadError;
use super::path;
use super::reader::{BundleReader, EntryKind, ReadLimits};

/// Mode given to directories the archive does not list.
pub const IMPLICIT_DIR_MODE: u32 = 0o755;

/// One file written by [`unpack_to_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedFile {
    /// Name in the bundle (relative to the target directory).
    pub path: String,
    /// Mode set on the file.
    pub mode: u32,
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the bytes written.
    pub sha256: [u8; 32],
}

impl UnpackedFile {
    /// The SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Unpacks the bundle read from `input` (gzip bytes) into `dir`, which must exist and
/// should be empty. Returns the files in archive order.
pub fn unpack_to_dir<R: Read>(
    input: R,
    dir: &Path,
    declared: &dyn Fn(&str) -> Option<u64>,
    limits: ReadLimits,
) -> Result<Vec<UnpackedFile>, ReadError> {
    let out_err = |path: PathBuf| move |source: io::Error| ReadError::Output { path, source };
    let mut reader = BundleReader::new(input, declared, limits);
    let mut dirs = HashSet::new();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let mut files = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    while let Some(mut entry) = reader.next_entry()? {
        for ancestor in path::ancestors(&entry.path) {
            ensure_dir(dir, ancestor, &mut dirs)?;
        }
        let target = dir.join(&entry.path);
        match entry.kind {
            EntryKind::Directory => {
                ensure_dir(dir, &entry.path, &mut dirs)?;
                dir_modes.push((target, entry.mode));
            }
            EntryKind::File => {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(out_err(target.clone()))?;
                let mut out = HashingWriter::new(file);
                loop {
                    let n = entry.read_chunk(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).map_err(out_err(target.clone()))?;
                }
                let (sha256, size, file) = out.finish();
                set_mode(&file, entry.mode).map_err(out_err(target.clone()))?;
                files.push(UnpackedFile {
                    path: entry.path.clone(),
                    mode: entry.mode,
                    size,
                    sha256,
                });
            }
        }
    }
    // Deepest first, so that a directory made read-only does not block its children.
    dir_modes.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, mode) in dir_modes {
        fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(out_err(path.clone()))?;
    }
    Ok(files)
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

/// Creates `dir/rel` (0755) unless this unpack already did; an existing entry must be a
/// real directory (never a symlink).
fn ensure_dir(dir: &Path, rel: &str, done: &mut HashSet<String>) -> Result<(), ReadError> {
    if done.contains(rel) {
        return Ok(());
    }
    let target = dir.join(rel);
    match DirBuilder::new().mode(IMPLICIT_DIR_MODE).create(&target) {
        Ok(()) => {
            fs::set_permissions(&target, Permissions::from_mode(IMPLICIT_DIR_MODE)).map_err(
                |source| ReadError::Output {
                    path: target.clone(),
                    source,
                },
            )?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(&target).map_err(|source| ReadError::Output {
                path: target.clone(),
                source,
            })?;
            if !meta.file_type().is_dir() {
                return Err(ReadError::Output {
                    path: target,
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "exists in the target directory and is not a directory",
                    ),
                });
            }
        }
        Err(source) => {
            return Err(ReadError::Output {
                path: target,
                source,
            });
        }
    }
    done.insert(rel.to_owned());
    Ok(())
}
