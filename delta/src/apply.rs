//! Applying a delta: rebuilding the target files the baseline lacks, verified.
//!
//! Files whose source is `baseline` are not written: the host's store has their content
//! and materialization hard-links or rehydrates them. Every other file is decoded into
//! `out_dir` (created with `create_new`, so nothing is overwritten) and its SHA-256 is
//! checked against the header before the caller may use it. Memory per piece is bounded by
//! [`MAX_PIECE`](crate::format::MAX_PIECE) of target plus
//! [`MAX_REFERENCE`](crate::format::MAX_REFERENCE) of reference; the solid block is
//! streamed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ouk_store::FileDigest;
use sha2::Digest;

use crate::content::ContentReader;
use crate::error::{DeltaError, Result};
use crate::format::{DeltaFile, DeltaHeader, Source};
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

fn finish(mut w: BufWriter<File>, sha: sha2::Sha256, f: &DeltaFile, out_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = out_dir.join(&f.path);
    w.flush()
        .map_err(io_err(format!("write {}", path.display())))?;
    let actual = FileDigest(sha.finalize().into());
    if actual != f.sha256 {
        return Err(DeltaError::DigestMismatch {
            path: f.path.clone(),
            expected: f.sha256,
            actual,
        });
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// Decode every non-baseline file of `header` into `out_dir`. The header must have passed
/// [`DeltaHeader::validate`]. Returns the paths written.
pub fn apply_delta(
    header: &DeltaHeader,
    payload: &mut (impl Read + Seek),
    baseline: &dyn ContentReader,
    out_dir: &Path,
) -> Result<Vec<String>> {
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
                    let reference =
                        baseline
                            .read_range(&r.sha256, r.offset, r.length)
                            .map_err(|e| {
                                DeltaError::BadDelta(format!(
                                    "{}: reference {} unavailable: {e}",
                                    f.path, r.sha256
                                ))
                            })?;
                    if reference.len() as u64 != r.length {
                        return Err(DeltaError::BadDelta(format!(
                            "{}: reference {} is shorter than the delta expects",
                            f.path, r.sha256
                        )));
                    }
                    match enc {
                        Encoding::Bsdiff => bsdiff_decode(&reference, &blob, p.size),
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
        finish(w, sha, f, out_dir)?;
        written.push(f.path.clone());
    }
    if let Some(solid) = &header.solid {
        let mut files: Vec<(&DeltaFile, u64)> = header
            .files
            .iter()
            .filter_map(|f| match f.source {
                Source::Solid { offset } => Some((f, offset)),
                _ => None,
            })
            .collect();
        files.sort_by_key(|(_, off)| *off);
        let blob = read_payload(payload, solid.offset, solid.length)?;
        let decoder = zstd::stream::read::Decoder::new(&blob[..])
            .map_err(io_err("open solid block".into()))?;
        let mut stream = decoder.take(solid.size);
        let mut pos = 0u64;
        for (f, offset) in files {
            if offset < pos {
                // Overlapping ranges would need the stream twice; a maker never writes them.
                return Err(DeltaError::BadDelta(format!(
                    "{}: solid ranges overlap",
                    f.path
                )));
            }
            io::copy(&mut (&mut stream).take(offset - pos), &mut io::sink())
                .map_err(|e| DeltaError::BadDelta(format!("solid block: {e}")))?;
            let mut w = create(out_dir, f)?;
            let mut sha = sha2::Sha256::new();
            let mut left = f.size;
            let mut buf = vec![0u8; 256 << 10];
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = stream
                    .read(&mut buf[..want])
                    .map_err(|e| DeltaError::BadDelta(format!("solid block: {e}")))?;
                if n == 0 {
                    return Err(DeltaError::BadDelta("solid block ends early".into()));
                }
                sha.update(&buf[..n]);
                w.write_all(&buf[..n])
                    .map_err(io_err(format!("write {}", f.path)))?;
                left -= n as u64;
            }
            finish(w, sha, f, out_dir)?;
            written.push(f.path.clone());
            pos = offset + f.size;
        }
    }
    Ok(written)
}
