//! Applying a delta: rebuilding the target files the baseline lacks, verified.
//!
//! Files whose source is `baseline` are not written: the host's store has their content
//! and materialization hard-links or rehydrates them. Every other file is decoded into
//! `out_dir` (created with `create_new`, so nothing is overwritten) and its SHA-256 is
//! computed on the way: the caller checks every one against the rebuilt manifest before it
//! uses any. Order matters: pieces, then the solid block, then the trailer block, whose
//! dictionary holds the digests of everything decoded before it. Memory per piece is bounded by
//! [`MAX_PIECE`](crate::format::MAX_PIECE) of target plus
//! [`MAX_REFERENCE`](crate::format::MAX_REFERENCE) of reference; the solid block holds at
//! most [`MAX_SOLID`](crate::format::MAX_SOLID) plus its references.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ouk_store::FileDigest;
use sha2::Digest;

use crate::content::ContentReader;
use crate::content::TreeFile;
use crate::error::{DeltaError, Result};
use crate::format::{Block, DeltaFile, DeltaHeader, ReferenceRange, Source};
use crate::patch::{Encoding, bsdiff_decode, zstd_decode};

fn io_err(context: String) -> impl FnOnce(io::Error) -> DeltaError {
    move |source| DeltaError::Io { context, source }
}

fn read_payload(payload: &mut (impl Read + Seek), offset: u64, length: u64) -> Result<Vec<u8>> {
    payload
        .seek(SeekFrom::Start(offset))
        .map_err(io_err("seek delta payload".into()))?;
    let mut buf = Vec::with_capacity(length.min(1 << 28) as usize);
    payload
        .take(length)
        .read_to_end(&mut buf)
        .map_err(io_err("read delta payload".into()))?;
    if buf.len() as u64 != length {
        return Err(DeltaError::BadDelta(
            "payload is shorter than its header says".into(),
        ));
    }
    Ok(buf)
}

fn create(out_dir: &Path, f: &DeltaFile) -> Result<BufWriter<File>> {
    let path = out_dir.join(&f.path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("create {}", path.display())))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

fn finish(
    mut w: BufWriter<File>,
    sha: sha2::Sha256,
    f: &DeltaFile,
    out_dir: &Path,
) -> Result<FileDigest> {
    use std::os::unix::fs::PermissionsExt;
    let path = out_dir.join(&f.path);
    w.flush()
        .map_err(io_err(format!("write {}", path.display())))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    Ok(FileDigest(sha.finalize().into()))
}

/// The host's own store failing (a damaged or missing chunk) is the host's fault, not the
/// delta's: such errors pass through as [`DeltaError::Store`] so the operator is told to
/// repair the store (exit 2) rather than to distrust a good delta.
fn reference_error(e: io::Error, context: &str, path: &str) -> DeltaError {
    let message = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<ouk_store::StoreError>())
    {
        Some(Ok(store)) => DeltaError::Store(*store),
        _ => DeltaError::BadDelta(format!(
            "{context}: reference {path} unavailable: {message}"
        )),
    }
}

/// Read a reference range of the baseline, resolved by path through `baseline_files`.
fn read_reference(
    r: &ReferenceRange,
    by_path: &HashMap<&str, &TreeFile>,
    baseline: &dyn ContentReader,
    context: &str,
) -> Result<Vec<u8>> {
    let file = by_path.get(r.path.as_str()).ok_or_else(|| {
        DeltaError::BadDelta(format!(
            "{context}: reference {} is not in the baseline",
            r.path
        ))
    })?;
    let bytes = baseline
        .read_range(&file.sha256, r.offset, r.length)
        .map_err(|e| reference_error(e, context, &r.path))?;
    if bytes.len() as u64 != r.length {
        return Err(DeltaError::BadDelta(format!(
            "{context}: reference {} is shorter than the delta expects",
            r.path
        )));
    }
    Ok(bytes)
}

/// Decode every non-baseline file of `header` into `out_dir`. The header must have passed
/// [`DeltaHeader::validate`]; references resolve through `baseline_files` (the baseline
/// generation's files) to content in `baseline`. Returns each path written with the SHA-256
/// of what was written there, in the order written.
pub fn apply_delta(
    header: &DeltaHeader,
    payload: &mut (impl Read + Seek),
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    out_dir: &Path,
) -> Result<Vec<(String, FileDigest)>> {
    let by_path: HashMap<&str, &TreeFile> = baseline_files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut written = Vec::new();
    for f in &header.files {
        let Source::Pieces { pieces } = &f.source else {
            continue;
        };
        let mut w = create(out_dir, f)?;
        let mut sha = sha2::Sha256::new();
        for p in pieces {
            let blob = read_payload(payload, p.offset, p.length)?;
            let bytes = match (&p.encoding, &p.reference) {
                (Encoding::Zstd, _) => zstd_decode(None, &blob, p.size),
                (enc, Some(r)) => {
                    let reference = read_reference(r, &by_path, baseline, &f.path)?;
                    match enc {
                        Encoding::Bsdiff => bsdiff_decode(&reference, &blob, p.size),
                        Encoding::BsdiffLzma => crate::bsdiffx::decode(&reference, &blob, p.size),
                        _ => zstd_decode(Some(&reference), &blob, p.size),
                    }
                }
                (_, None) => {
                    return Err(DeltaError::BadDelta(format!(
                        "{}: patch without reference",
                        f.path
                    )));
                }
            }
            .map_err(|e| DeltaError::BadDelta(format!("{}: {e}", f.path)))?;
            sha.update(&bytes);
            w.write_all(&bytes)
                .map_err(io_err(format!("write {}", f.path)))?;
        }
        written.push((f.path.clone(), finish(w, sha, f, out_dir)?));
    }
    for block in [Block::Solid, Block::Trailer] {
        let Some(solid) = header.block(block) else {
            continue;
        };
        let context = match block {
            Block::Solid => "solid block",
            Block::Trailer => "trailer block",
        };
        let mut prefix = Vec::new();
        for r in header.block_references(block, baseline_files) {
            prefix.extend_from_slice(&read_reference(&r, &by_path, baseline, context)?);
        }
        let known: HashMap<&str, FileDigest> =
            written.iter().map(|(p, d)| (p.as_str(), *d)).collect();
        prefix.extend_from_slice(
            &header.dictionary(block, &|f: &DeltaFile| known.get(f.path.as_str()).copied())?,
        );
        let blob = read_payload(payload, solid.offset, solid.length)?;
        let decoded = zstd_decode(Some(&prefix), &blob, solid.size)
            .map_err(|e| DeltaError::BadDelta(format!("{context}: {e}")))?;
        drop(prefix);
        for (f, offset) in header.block_members(block) {
            let start = offset as usize;
            let end = offset
                .checked_add(f.size)
                .filter(|e| *e <= solid.size)
                .ok_or_else(|| DeltaError::BadDelta(format!("{}: outside the {context}", f.path)))?
                as usize;
            let mut w = create(out_dir, f)?;
            let mut sha = sha2::Sha256::new();
            sha.update(&decoded[start..end]);
            w.write_all(&decoded[start..end])
                .map_err(io_err(format!("write {}", f.path)))?;
            written.push((f.path.clone(), finish(w, sha, f, out_dir)?));
        }
    }
    Ok(written)
}
