//! Rebuilding a stream through its delta chain in one streaming pass (`mirror export`, the
//! base of `mirror add`, `store fsck`, re-basing in `mirror remove`).
//!
//! A chain is a snapshot stream (chunks in the store, level 0) and patches 1..=n, patch k
//! rebuilding level k's stream from level k-1's ([`super::streamdelta`]). Rebuilding each
//! level whole into a scratch file costs n full writes, reads and hashes of the stream.
//! Instead, the top level's windows are decoded in order and written out; a window's
//! reference range at level k-1 is assembled from that level's windows, each decoded on
//! first use and kept while a window of the level above still needs it. How often each
//! window is needed comes from the patch headers, read (and checked) before any window is
//! decoded. `streamdelta::encode` centres references on content anchors, so they move
//! forward with the target and each level keeps two or three windows at a time.
//!
//! Invariants:
//! - Every window of every level is decoded once when each level's references move forward;
//!   a level keeps at most [`CACHED_WINDOWS`] decoded windows, so any other layout (a
//!   damaged or hostile patch) costs decodes again, never unbounded memory. Memory is at
//!   most, per level, that many windows plus one reference range being assembled.
//! - Only the snapshot is spooled, once, to one scratch file (random access to its
//!   reference ranges); patches are read from the store by range, every chunk verified.
//! - Every patch header is checked (`PatchHeader::validate`) and must declare the length of
//!   the level below as its base before anything is decoded; each payload read from the
//!   store must have exactly its declared length.
//! - The rebuilt stream is checked against the SHA-256 and length its record names: bytes
//!   written to `out` before a failure are the caller's to discard (export writes into a
//!   temporary directory, add into a scratch file).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use ouk_delta::patch::zstd_decode;
use ouk_root::Root;
use ouk_store::{FileDigest, Store};

use super::catalog::StoredContent;
use super::deltastore::MAX_CHAIN_WALK;
use super::gzip::DigestWriter;
use super::lookup;
use super::streamdelta::{self, PatchHeader, StreamDeltaError};
use crate::error::{IoContext, KitError, Result};

/// Most decoded windows one level keeps (see the module doc).
pub const CACHED_WINDOWS: usize = 4;

/// A store file holding a stream or a patch: its SHA-256 and length.
type StoreFile = (FileDigest, u64);

/// One patch of the chain: level k's windows, decoded from level k-1.
struct Level {
    /// The patch's store file and its length.
    patch: FileDigest,
    header: PatchHeader,
    /// Where each window's payload starts in the patch.
    payload_at: Vec<u64>,
    /// Where each window starts in this level's stream.
    starts: Vec<u64>,
    /// Windows of the level above still to read each window.
    uses_left: Vec<u32>,
    /// Decoded windows kept for those uses.
    cache: HashMap<usize, Rc<Vec<u8>>>,
}

impl Level {
    /// The windows overlapping `[offset, offset + len)`.
    fn overlapping(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        let end = offset.saturating_add(len);
        let first = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let last = self.starts.partition_point(|&s| s < end);
        first..last.max(first)
    }
}

/// The chain below `content` (its record need not be cataloged; its bases must be):
/// the snapshot's stream (SHA-256, length) and the patches from the snapshot up.
fn chain_below(root: &Root, content: &StoredContent) -> Result<(StoreFile, Vec<StoreFile>)> {
    let mut patches = Vec::new();
    let mut cur = content.clone();
    loop {
        match cur {
            StoredContent::Delta {
                base,
                patch,
                patch_size,
                ..
            } => {
                if patches.len() >= MAX_CHAIN_WALK as usize {
                    return Err(KitError::Validation(format!(
                        "a delta chain longer than {MAX_CHAIN_WALK} (a damaged catalog?)"
                    )));
                }
                patches.push((patch, patch_size));
                let rec = lookup(root, &base)?.ok_or_else(|| {
                    KitError::Validation(format!("delta base sha256:{base} is not mirrored"))
                })?;
                cur = rec.content;
            }
            StoredContent::Tar { sha256, size, .. }
            | StoredContent::SeeThrough { sha256, size, .. } => {
                patches.reverse();
                return Ok(((sha256, size), patches));
            }
            StoredContent::Compressed => {
                return Err(KitError::Validation(
                    "a bundle kept as its compressed bytes has no stream to rebuild".into(),
                ));
            }
        }
    }
}

/// SHA-256 and length of the stream `content` names.
fn stream_of(content: &StoredContent) -> Result<(FileDigest, u64)> {
    match content {
        StoredContent::Tar { sha256, size, .. }
        | StoredContent::SeeThrough { sha256, size, .. } => Ok((*sha256, *size)),
        StoredContent::Delta { target, .. } => stream_of(target),
        StoredContent::Compressed => Err(KitError::Validation(
            "a bundle kept as its compressed bytes has no stream to rebuild".into(),
        )),
    }
}

fn patch_err(patch: &FileDigest, e: StreamDeltaError) -> KitError {
    KitError::Validation(format!("mirror delta sha256:{patch}: {e}"))
}

/// `len` bytes at `offset` of store file `patch`, exactly.
fn read_patch(store: &Store, patch: &FileDigest, offset: u64, len: u64) -> Result<Vec<u8>> {
    let bytes = store.read_file_range(patch, offset, len)?;
    if bytes.len() as u64 != len {
        return Err(KitError::Validation(format!(
            "mirror delta sha256:{patch} ends before byte {}",
            offset + len
        )));
    }
    Ok(bytes)
}

/// Write the stream `content` names to `out`, rebuilt through its chain in one pass (see
/// the module doc) and checked against its SHA-256 and length; the snapshot's stream is
/// spooled to one scratch file in `scratch_dir`. Returns the bytes written.
pub fn rebuild(
    root: &Root,
    content: &StoredContent,
    scratch_dir: &Path,
    out: &mut dyn Write,
) -> Result<u64> {
    let store = root.store();
    let (expected_sha, expected_len) = stream_of(content)?;
    let ((snap_sha, snap_len), patches) = chain_below(root, content)?;
    let mut digest = DigestWriter::new(out);
    if patches.is_empty() {
        store.read_file(&snap_sha, &mut digest)?;
    } else {
        let mut chain = Chain::open(store, (snap_sha, snap_len), &patches, scratch_dir)?;
        chain.write_top(&mut digest)?;
    }
    let (got, len, _) = digest.finish();
    if got != *expected_sha.as_bytes() || len != expected_len {
        return Err(KitError::DigestMismatch {
            what: format!("mirror stream rebuilt through its delta chain ({len} bytes)"),
            expected: expected_sha.to_hex(),
            actual: hex::encode(got),
        });
    }
    Ok(len)
}

/// A chain opened for one rebuild.
struct Chain<'s> {
    store: &'s Store,
    /// Level 0: the snapshot's stream, spooled.
    snapshot: File,
    /// Levels 1..=n (`levels[k - 1]` is level k).
    levels: Vec<Level>,
}

impl<'s> Chain<'s> {
    /// Spool the snapshot and read every patch header, checking that each level's base is
    /// the level below.
    fn open(
        store: &'s Store,
        (snap_sha, snap_len): StoreFile,
        patches: &[StoreFile],
        scratch_dir: &Path,
    ) -> Result<Self> {
        let mut levels: Vec<Level> = Vec::with_capacity(patches.len());
        let mut below_len = snap_len;
        for (patch, patch_size) in patches {
            let (header, payload_start) = streamdelta::header_from(
                &mut |offset, len| {
                    read_patch(store, patch, offset, len)
                        .map_err(|e| StreamDeltaError::Corrupt(e.to_string()))
                },
                *patch_size,
            )
            .map_err(|e| patch_err(patch, e))?;
            if header.base_len != below_len {
                return Err(patch_err(
                    patch,
                    StreamDeltaError::Corrupt(format!(
                        "made against a base of {} bytes, the chain gives {below_len}",
                        header.base_len
                    )),
                ));
            }
            let mut payload_at = Vec::with_capacity(header.windows.len());
            let mut starts = Vec::with_capacity(header.windows.len());
            let (mut at, mut start) = (payload_start, 0u64);
            for w in &header.windows {
                payload_at.push(at);
                starts.push(start);
                at += w.payload_len;
                start += w.target_len;
            }
            below_len = header.target_len;
            levels.push(Level {
                patch: *patch,
                uses_left: vec![0; header.windows.len()],
                header,
                payload_at,
                starts,
                cache: HashMap::new(),
            });
        }
        // Each window of level k (k >= 1) uses the windows of level k-1 its reference
        // range overlaps.
        for k in 1..levels.len() {
            let (lower, upper) = levels.split_at_mut(k);
            let lower = &mut lower[k - 1];
            for w in &upper[0].header.windows {
                for j in lower.overlapping(w.ref_offset, w.ref_len) {
                    lower.uses_left[j] = lower.uses_left[j].saturating_add(1);
                }
            }
        }
        #[cfg(test)]
        streamdelta::probe::scratch_created();
        std::fs::create_dir_all(scratch_dir).ctx(|| format!("create {}", scratch_dir.display()))?;
        let snapshot = tempfile::tempfile_in(scratch_dir)
            .ctx(|| format!("create a scratch file in {}", scratch_dir.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, &snapshot);
        let n = store.read_file(&snap_sha, &mut w)?;
        w.flush().ctx(|| "write the snapshot stream".to_string())?;
        drop(w);
        if n != snap_len {
            return Err(KitError::Validation(format!(
                "mirror stream sha256:{snap_sha} holds {n} bytes, its record says {snap_len}"
            )));
        }
        Ok(Chain {
            store,
            snapshot,
            levels,
        })
    }

    /// Decode the top level's windows in order into `out`.
    fn write_top(&mut self, out: &mut dyn Write) -> Result<()> {
        let top = self.levels.len();
        for j in 0..self.levels[top - 1].header.windows.len() {
            let bytes = self.window(top, j)?;
            out.write_all(&bytes)
                .ctx(|| "write a stream rebuilt through its chain".to_string())?;
        }
        Ok(())
    }

    /// `len` bytes at `offset` of level `level`'s stream (inside it: the headers say so).
    fn range(&mut self, level: usize, offset: u64, len: u64) -> Result<Vec<u8>> {
        let size = usize::try_from(len)
            .map_err(|_| KitError::Validation("a reference range too large".into()))?;
        if level == 0 {
            let mut buf = vec![0u8; size];
            self.snapshot
                .read_exact_at(&mut buf, offset)
                .ctx(|| "read the snapshot stream".to_string())?;
            return Ok(buf);
        }
        let mut buf = Vec::with_capacity(size);
        let end = offset + len;
        for j in self.levels[level - 1].overlapping(offset, len) {
            let window = self.window(level, j)?;
            let start = self.levels[level - 1].starts[j];
            let from = offset.saturating_sub(start) as usize;
            let to = (end - start).min(window.len() as u64) as usize;
            buf.extend_from_slice(&window[from..to]);
            let l = &mut self.levels[level - 1];
            l.uses_left[j] = l.uses_left[j].saturating_sub(1);
            if l.uses_left[j] == 0 {
                l.cache.remove(&j);
            }
        }
        if buf.len() != size {
            return Err(KitError::Validation(format!(
                "a reference range of {len} bytes at {offset} gave {} (a damaged chain?)",
                buf.len()
            )));
        }
        Ok(buf)
    }

    /// Window `j` of level `level` (1..=n), from the cache or decoded.
    fn window(&mut self, level: usize, j: usize) -> Result<Rc<Vec<u8>>> {
        if let Some(w) = self.levels[level - 1].cache.get(&j) {
            return Ok(Rc::clone(w));
        }
        let l = &self.levels[level - 1];
        let w = l.header.windows[j].clone();
        let (patch, payload_at) = (l.patch, l.payload_at[j]);
        let reference = self.range(level - 1, w.ref_offset, w.ref_len)?;
        let payload = read_patch(self.store, &patch, payload_at, w.payload_len)?;
        let bytes = zstd_decode(Some(&reference), &payload, w.target_len)
            .map_err(|e| patch_err(&patch, e.into()))?;
        drop(reference);
        #[cfg(test)]
        streamdelta::probe::window_decoded();
        let bytes = Rc::new(bytes);
        let l = &mut self.levels[level - 1];
        if l.uses_left[j] > 0 {
            if l.cache.len() >= CACHED_WINDOWS {
                // References move forward: the lowest window is the one least likely to
                // be read again.
                if let Some(&oldest) = l.cache.keys().min() {
                    l.cache.remove(&oldest);
                }
            }
            l.cache.insert(j, Rc::clone(&bytes));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom};

    use ouk_store::StoreOptions;

    use super::*;

    fn rows(n: u32, week: u32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                // Edited rows grow by digits, so each week's stream has its own length.
                let rev = if (i + week * 5).is_multiple_of(17) {
                    week * 1000
                } else {
                    0
                };
                format!(
                    "{{\"id\":{i},\"rev\":{rev},\"score\":{}}}\n",
                    (i * 31 + rev) % 97
                )
                .into_bytes()
            })
            .collect()
    }

    /// A chain of `weeks` streams, each a delta against the one before, in windows of
    /// `window` bytes: the store, the snapshot, the patches and the streams.
    fn chain_of(
        dir: &Path,
        weeks: u32,
        window: u64,
    ) -> (Store, StoreFile, Vec<StoreFile>, Vec<Vec<u8>>) {
        let store = Store::open(&dir.join("store"), StoreOptions::default()).unwrap();
        let streams: Vec<Vec<u8>> = (0..=weeks).map(|w| rows(120_000, w)).collect();
        let put = store.put_reader(streams[0].as_slice()).unwrap();
        let mut patches = Vec::new();
        for w in 1..=weeks as usize {
            let spool = |b: &[u8]| {
                streamdelta::spool(store.chunker(), b, tempfile::tempfile().unwrap()).unwrap()
            };
            let (base, target) = (spool(&streams[w - 1]), spool(&streams[w]));
            let mut patch = tempfile::tempfile().unwrap();
            let len =
                streamdelta::encode_windows(&base, &target, u64::MAX, window, dir, &mut patch)
                    .unwrap()
                    .unwrap();
            patch.seek(SeekFrom::Start(0)).unwrap();
            let p = store.put_reader((&patch).take(len)).unwrap();
            patches.push((p.digest, p.size));
        }
        (store, (put.digest, put.size), patches, streams)
    }

    #[test]
    fn a_deep_chain_rebuilds_in_one_pass_decoding_each_window_once() {
        let dir = tempfile::tempdir().unwrap();
        let window = 256 << 10;
        let (store, snapshot, patches, streams) = chain_of(dir.path(), 4, window);
        let windows_per_level = streams[1].len().div_ceil(window as usize) as u64;
        assert!(windows_per_level >= 8, "{windows_per_level}");
        for depth in 1..=4 {
            streamdelta::probe::take();
            let mut chain = Chain::open(&store, snapshot, &patches[..depth], dir.path()).unwrap();
            let mut out = Vec::new();
            chain.write_top(&mut out).unwrap();
            assert!(out == streams[depth], "depth {depth}");
            let (decodes, scratch_files) = streamdelta::probe::take();
            assert_eq!(decodes, windows_per_level * depth as u64, "depth {depth}");
            assert_eq!(scratch_files, 1, "depth {depth}");
            // No level kept more than its cap.
            assert!(chain.levels.iter().all(|l| l.cache.len() <= CACHED_WINDOWS));
        }
    }

    #[test]
    fn a_patch_made_against_another_base_length_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let (store, snapshot, patches, _) = chain_of(dir.path(), 2, 1 << 20);
        // Level 2's patch straight on the snapshot: its base is level 1, not level 0.
        let wrong = [patches[1]];
        streamdelta::probe::take();
        let e = Chain::open(&store, snapshot, &wrong, dir.path())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("base of"), "{e}");
        assert_eq!(streamdelta::probe::take().0, 0);
    }
}
