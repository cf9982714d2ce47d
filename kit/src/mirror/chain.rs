//! Rebuilding a stream through its delta chain in one streaming pass (`mirror export`, the
//! base of `mirror add`, `store fsck`, re-basing in `mirror remove`).
//!
//! A chain is a snapshot stream (chunks in the store, level 0) and patches 1..=n, patch k
//! rebuilding level k's stream from level k-1's ([`super::streamdelta`]). The top level's
//! windows are decoded in order and written out; a window's reference range at level k-1
//! must be in memory, contiguous, for zstd to use it as a prefix. So every level below the
//! top keeps a *span*: one contiguous buffer of its decoded stream, `[base, base + len)`,
//! that slides forward. A window is decoded straight into the spare capacity of its
//! level's span (nothing zeroed, nothing copied), and the reference handed to zstd is a
//! slice of the span below: no reference is ever assembled. The snapshot's span is filled
//! from the store by chunk runs, as far as the references ask, without a scratch file.
//! `streamdelta::encode` centres references on content anchors, so they move forward with
//! the target and each level's span slides forward once through its stream.
//!
//! Invariants:
//! - When each level's references move forward (what `encode` makes), every window of
//!   every level is decoded once and every snapshot chunk is read once. Any other layout
//!   (a damaged or hostile patch) restarts a level's span at the range asked for: it costs
//!   decodes again, never unbounded memory.
//! - Memory is bounded per level: a span drops the bytes no later window above reads (from
//!   the patch headers) once it reaches its cap (the longest reference into it plus
//!   [`SPAN_SLACK_WINDOWS`] of its own windows); were that not enough room, everything
//!   before the range being served. The top level holds one window. A buffer is allocated
//!   once per level and reused.
//! - Nothing is spooled: patches are read from the store by range, the snapshot by chunk
//!   runs, every chunk verified against its id.
//! - Every patch header is checked (`PatchHeader::validate`) and must declare the length of
//!   the level below as its base before anything is decoded; each payload read from the
//!   store must have exactly its declared length, each window decode exactly its window.
//! - The rebuilt stream is checked against the SHA-256 and length its record names (this
//!   covers the snapshot too, whose own whole-stream digest is not re-checked): bytes
//!   written to `out` before a failure are the caller's to discard (export writes into a
//!   temporary directory, add into a scratch file).

use std::io::Write;
use std::path::Path;

use ouk_root::Root;
use ouk_store::fsutil::HashingWriter;
use ouk_store::{ChunkId, FileDigest, Store};

use super::catalog::StoredContent;
use super::deltastore::MAX_CHAIN_WALK;
use super::lookup;
use super::streamdelta::{self, PatchHeader, StreamDeltaError};
use crate::error::{KitError, Result};

/// Room a span keeps beyond the longest reference into it, in its own longest windows:
/// with two, a span of a forward-moving chain compacts (moves its kept bytes to the front)
/// at most every other window, and a stream shorter than the cap never.
pub const SPAN_SLACK_WINDOWS: u64 = 2;

/// A store file holding a stream or a patch: its SHA-256 and length.
type StoreFile = (FileDigest, u64);

/// Bytes `[base, base + bytes.len())` of one level's stream, decoded and contiguous.
#[derive(Default)]
struct Span {
    base: u64,
    bytes: Vec<u8>,
    /// Bytes kept before the span compacts (see [`Span::make_room`]).
    cap: usize,
}

impl Span {
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// `[from, to)`, when the span covers it.
    fn slice(&self, from: u64, to: u64) -> Option<&[u8]> {
        let at = usize::try_from(from.checked_sub(self.base)?).ok()?;
        let until = usize::try_from(to.checked_sub(self.base)?).ok()?;
        self.bytes.get(at..until)
    }

    /// Empty, starting at `at`.
    fn restart(&mut self, at: u64) {
        self.base = at;
        self.bytes.clear();
    }

    /// Before `incoming` bytes are appended: past the cap, drop the bytes before `keep`
    /// (what later windows above still read), or, when that leaves too little room, before
    /// `need` (the start of the range being served). Then make sure the buffer has room
    /// for `incoming` without reallocating while they are written.
    fn make_room(&mut self, incoming: usize, keep: u64, need: u64) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve_exact(self.cap.max(incoming));
        }
        if self.bytes.len() + incoming > self.cap {
            let end = self.end();
            // Never past `need`: those bytes are being served.
            let mut from = keep.min(need).clamp(self.base, end);
            if (end - from) as usize + incoming > self.cap {
                from = need.clamp(self.base, end);
            }
            let drop = (from - self.base) as usize;
            if drop > 0 {
                self.bytes.copy_within(drop.., 0);
                self.bytes.truncate(self.bytes.len() - drop);
                self.base = from;
            }
        }
        self.bytes.reserve(incoming);
    }
}

/// Level 0: the snapshot's stream, read from the store by runs of chunks into its span.
struct Snapshot {
    digest: FileDigest,
    chunks: Vec<ChunkId>,
    /// Where each chunk ends in the stream.
    ends: Vec<u64>,
    /// The chunk that starts where the span ends.
    next: usize,
    /// Lowest reference offset into this level of level 1's windows from index i on.
    lowest_ref_from: Vec<u64>,
    span: Span,
}

/// One patch of the chain: level k's windows, decoded from level k-1.
struct Level {
    /// The patch's store file.
    patch: FileDigest,
    header: PatchHeader,
    /// Where each window's payload starts in the patch.
    payload_at: Vec<u64>,
    /// Where each window starts in this level's stream.
    starts: Vec<u64>,
    /// The window that starts where the span ends.
    next: usize,
    /// Lowest reference offset into this level of the level above's windows from index i
    /// on (`u64::MAX` past the last; empty at the top).
    lowest_ref_from: Vec<u64>,
    span: Span,
}

/// For the windows of a level above, the lowest reference offset of windows i.. (one entry
/// more than windows, `u64::MAX`).
fn lowest_refs(above: &PatchHeader) -> Vec<u64> {
    let mut lowest = vec![u64::MAX; above.windows.len() + 1];
    for (i, w) in above.windows.iter().enumerate().rev() {
        lowest[i] = lowest[i + 1].min(w.ref_offset);
    }
    lowest
}

/// The span cap of a level whose windows are at most `longest_window` bytes and which the
/// level above reads by references of at most `longest_ref`, for a stream of `len` bytes.
fn span_cap(longest_ref: u64, longest_window: u64, len: u64) -> Result<usize> {
    let cap = longest_ref
        .saturating_add(SPAN_SLACK_WINDOWS.saturating_mul(longest_window))
        .min(len);
    usize::try_from(cap).map_err(|_| KitError::Validation("a delta chain level too large".into()))
}

fn longest_ref(above: &PatchHeader) -> u64 {
    above.windows.iter().map(|w| w.ref_len).max().unwrap_or(0)
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
/// the module doc) and checked against its SHA-256 and length. Returns the bytes written.
/// `scratch_dir` is where a rebuild may keep scratch files: it keeps none today (every
/// level lives in memory, bounded), the parameter stays for the callers' sake.
pub fn rebuild(
    root: &Root,
    content: &StoredContent,
    scratch_dir: &Path,
    out: &mut dyn Write,
) -> Result<u64> {
    let _ = scratch_dir;
    let store = root.store();
    let (expected_sha, expected_len) = stream_of(content)?;
    let ((snap_sha, snap_len), patches) = chain_below(root, content)?;
    let mut digest = HashingWriter::new(out);
    if patches.is_empty() {
        store.read_file(&snap_sha, &mut digest)?;
    } else {
        let mut chain = Chain::open(store, (snap_sha, snap_len), &patches)?;
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
    /// Level 0.
    snapshot: Snapshot,
    /// Levels 1..=n (`levels[k - 1]` is level k).
    levels: Vec<Level>,
}

impl<'s> Chain<'s> {
    /// Read every patch header, checking that each level's base is the level below, and
    /// the snapshot's chunk list.
    fn open(
        store: &'s Store,
        (snap_sha, snap_len): StoreFile,
        patches: &[StoreFile],
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
                header,
                payload_at,
                starts,
                next: 0,
                lowest_ref_from: Vec::new(),
                span: Span::default(),
            });
        }
        // What each level keeps follows from the references of the level above; the top
        // holds one window.
        for k in 0..levels.len() {
            let longest_window = levels[k]
                .header
                .windows
                .iter()
                .map(|w| w.target_len)
                .max()
                .unwrap_or(0);
            let (cap, lowest) = match levels.get(k + 1) {
                Some(above) => (
                    span_cap(
                        longest_ref(&above.header),
                        longest_window,
                        levels[k].header.target_len,
                    )?,
                    lowest_refs(&above.header),
                ),
                None => (span_cap(0, longest_window, u64::MAX)?, Vec::new()),
            };
            levels[k].span.cap = cap;
            levels[k].lowest_ref_from = lowest;
        }
        let first = &levels
            .first()
            .ok_or_else(|| KitError::Validation("a delta chain without a patch".into()))?
            .header;
        let snapshot = Snapshot::open(
            store,
            (snap_sha, snap_len),
            lowest_refs(first),
            span_cap(longest_ref(first), streamdelta::WINDOW, snap_len)?,
        )?;
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
            let level = &mut self.levels[top - 1];
            level.span.restart(level.starts[j]);
            level.next = j;
            self.decode_next(top, u64::MAX, u64::MAX)?;
            out.write_all(&self.levels[top - 1].span.bytes)
                .map_err(|e| KitError::Validation(format!("write a rebuilt stream: {e}")))?;
        }
        Ok(())
    }

    /// Make level `level`'s span cover `[from, to)`, keeping what starts at `keep` while
    /// there is room.
    fn ensure(&mut self, level: usize, from: u64, to: u64, keep: u64) -> Result<()> {
        if level == 0 {
            return self.snapshot.ensure(self.store, from, to, keep);
        }
        let l = &mut self.levels[level - 1];
        if from < l.span.base || from > l.span.end() {
            // Not a forward move: start over at the window holding `from`.
            let j = l.starts.partition_point(|&s| s <= from).saturating_sub(1);
            l.span.restart(l.starts.get(j).copied().unwrap_or(0));
            l.next = j;
        }
        while self.levels[level - 1].span.end() < to {
            self.decode_next(level, keep, from)?;
        }
        Ok(())
    }

    /// Decode the window of `level` that starts where its span ends, appended to the span
    /// (see [`Span::make_room`] for `keep` and `need`).
    fn decode_next(&mut self, level: usize, keep: u64, need: u64) -> Result<()> {
        let l = &self.levels[level - 1];
        let j = l.next;
        let w = l.header.windows.get(j).cloned().ok_or_else(|| {
            patch_err(
                &l.patch,
                StreamDeltaError::Corrupt("a reference past the level's end".into()),
            )
        })?;
        let (patch, payload_at) = (l.patch, l.payload_at[j]);
        let ref_end = w.ref_offset + w.ref_len;
        let keep_below = self.lowest_ref_below(level, j);
        self.ensure(level - 1, w.ref_offset, ref_end, keep_below)?;
        let payload = read_patch(self.store, &patch, payload_at, w.payload_len)?;
        let window_len = usize::try_from(w.target_len)
            .map_err(|_| KitError::Validation("a window too large".into()))?;
        let (below, span) = if level == 1 {
            (&self.snapshot.span, &mut self.levels[0].span)
        } else {
            let (lower, upper) = self.levels.split_at_mut(level - 1);
            (&lower[level - 2].span, &mut upper[0].span)
        };
        let reference = below.slice(w.ref_offset, ref_end).ok_or_else(|| {
            KitError::Validation(format!(
                "a reference range at {} of {} bytes is not where the chain put it",
                w.ref_offset, w.ref_len
            ))
        })?;
        span.make_room(window_len, keep, need);
        streamdelta::decode_window_into(reference, &payload, w.target_len, &mut span.bytes)
            .map_err(|e| patch_err(&patch, e))?;
        #[cfg(test)]
        streamdelta::probe::window_decoded();
        self.levels[level - 1].next = j + 1;
        Ok(())
    }

    /// What level `level - 1` must keep once window `j` of `level` is decoded from it:
    /// from the lowest reference of that window and the ones after it.
    fn lowest_ref_below(&self, level: usize, j: usize) -> u64 {
        let lowest = if level == 1 {
            &self.snapshot.lowest_ref_from
        } else {
            &self.levels[level - 2].lowest_ref_from
        };
        lowest.get(j).copied().unwrap_or(u64::MAX)
    }
}

impl Snapshot {
    /// The snapshot stream `digest` of `len` bytes, its chunks located (nothing read yet).
    fn open(
        store: &Store,
        (digest, len): StoreFile,
        lowest_ref_from: Vec<u64>,
        cap: usize,
    ) -> Result<Self> {
        let record = store.file_record(&digest)?.ok_or_else(|| {
            KitError::Validation(format!("mirror stream sha256:{digest} is not in the store"))
        })?;
        let mut ends = Vec::with_capacity(record.chunks.len());
        let mut end = 0u64;
        for id in &record.chunks {
            let loc = store.locate(id)?.ok_or_else(|| {
                KitError::Validation(format!("mirror stream sha256:{digest}: chunk {id} missing"))
            })?;
            end += u64::from(loc.raw_len);
            ends.push(end);
        }
        if end != len || record.size != len {
            return Err(KitError::Validation(format!(
                "mirror stream sha256:{digest} holds {end} bytes, its record says {len}"
            )));
        }
        Ok(Snapshot {
            digest,
            chunks: record.chunks,
            ends,
            next: 0,
            lowest_ref_from,
            span: Span {
                cap,
                ..Span::default()
            },
        })
    }

    /// Make the span cover `[from, to)` (inside the stream: the headers say so), reading
    /// the chunks it lacks in one run; see [`Span::make_room`] for `keep`.
    fn ensure(&mut self, store: &Store, from: u64, to: u64, keep: u64) -> Result<()> {
        if from < self.span.base || from > self.span.end() {
            // Not a forward move: start over at the chunk holding `from`.
            let i = self.ends.partition_point(|&e| e <= from);
            let start = match i {
                0 => 0,
                _ => self.ends[i - 1],
            };
            self.span.restart(start);
            self.next = i;
        }
        if self.span.end() >= to {
            return Ok(());
        }
        let last = self.ends.partition_point(|&e| e < to);
        let run_end = *self.ends.get(last).ok_or_else(|| {
            KitError::Validation(format!(
                "mirror stream sha256:{}: a reference past its end",
                self.digest
            ))
        })?;
        let incoming = usize::try_from(run_end - self.span.end())
            .map_err(|_| KitError::Validation("a reference range too large".into()))?;
        self.span.make_room(incoming, keep, from);
        let had = self.span.bytes.len();
        store.read_chunks(&self.chunks[self.next..=last], None, &mut self.span.bytes)?;
        #[cfg(test)]
        streamdelta::probe::snapshot_chunks_read((last + 1 - self.next) as u64);
        if self.span.bytes.len() - had != incoming {
            return Err(KitError::Validation(format!(
                "mirror stream sha256:{}: its chunks hold other lengths than the index says",
                self.digest
            )));
        }
        self.next = last + 1;
        Ok(())
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

    /// Every span's buffer stayed within its cap (allocated once, never grown).
    fn spans_within_caps(chain: &Chain<'_>) -> bool {
        let spans =
            std::iter::once(&chain.snapshot.span).chain(chain.levels.iter().map(|l| &l.span));
        spans
            .into_iter()
            .all(|s| s.bytes.capacity() <= s.cap.max(1))
    }

    #[test]
    fn a_deep_chain_rebuilds_in_one_pass_decoding_each_window_once() {
        let dir = tempfile::tempdir().unwrap();
        let window = 256 << 10;
        let (store, snapshot, patches, streams) = chain_of(dir.path(), 4, window);
        let windows_per_level = streams[1].len().div_ceil(window as usize) as u64;
        assert!(windows_per_level >= 8, "{windows_per_level}");
        let snapshot_chunks = store
            .file_record(&snapshot.0)
            .unwrap()
            .unwrap()
            .chunks
            .len();
        for depth in 1..=4 {
            streamdelta::probe::take();
            streamdelta::probe::take_snapshot_chunks();
            let mut chain = Chain::open(&store, snapshot, &patches[..depth]).unwrap();
            let mut out = Vec::new();
            chain.write_top(&mut out).unwrap();
            assert!(out == streams[depth], "depth {depth}");
            let (decodes, scratch_files) = streamdelta::probe::take();
            assert_eq!(decodes, windows_per_level * depth as u64, "depth {depth}");
            // Nothing spooled, and the snapshot read from the store once.
            assert_eq!(scratch_files, 0, "depth {depth}");
            assert_eq!(
                streamdelta::probe::take_snapshot_chunks(),
                snapshot_chunks as u64,
                "depth {depth}"
            );
            assert!(spans_within_caps(&chain), "depth {depth}");
            // The spans below the top are shorter than their streams: they slid.
            let below_top = &chain.levels[..depth - 1];
            assert!(
                below_top
                    .iter()
                    .all(|l| (l.span.cap as u64) < l.header.target_len),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn references_that_move_backwards_restart_a_span_and_still_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreOptions::default()).unwrap();
        let window = 64 << 10;
        // Each week's stream is the one before with its blocks in reverse order, so every
        // window's reference lies behind the one before it.
        let mut streams = vec![rows(40_000, 0)];
        for w in 1..=3 {
            let blocks: Vec<&[u8]> = streams[w - 1].chunks(window as usize).collect();
            let mut next: Vec<u8> = blocks.into_iter().rev().flatten().copied().collect();
            next.extend_from_slice(format!("week {w}\n").as_bytes());
            streams.push(next);
        }
        let put = store.put_reader(streams[0].as_slice()).unwrap();
        let mut patches = Vec::new();
        for w in 1..streams.len() {
            let spool = |b: &[u8]| {
                streamdelta::spool(store.chunker(), b, tempfile::tempfile().unwrap()).unwrap()
            };
            let (base, target) = (spool(&streams[w - 1]), spool(&streams[w]));
            let mut patch = tempfile::tempfile().unwrap();
            let len = streamdelta::encode_windows(
                &base,
                &target,
                u64::MAX,
                window,
                dir.path(),
                &mut patch,
            )
            .unwrap()
            .unwrap();
            patch.seek(SeekFrom::Start(0)).unwrap();
            let p = store.put_reader((&patch).take(len)).unwrap();
            patches.push((p.digest, p.size));
        }
        streamdelta::probe::take();
        let mut chain = Chain::open(&store, (put.digest, put.size), &patches).unwrap();
        let mut out = Vec::new();
        chain.write_top(&mut out).unwrap();
        assert!(out == streams[3]);
        let windows = streams[3].len().div_ceil(window as usize) as u64;
        // Restarts decoded windows again, and memory stayed within the caps.
        assert!(streamdelta::probe::take().0 > 3 * windows);
        assert!(spans_within_caps(&chain));
    }

    #[test]
    fn a_patch_made_against_another_base_length_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let (store, snapshot, patches, _) = chain_of(dir.path(), 2, 1 << 20);
        // Level 2's patch straight on the snapshot: its base is level 1, not level 0.
        let wrong = [patches[1]];
        streamdelta::probe::take();
        let e = Chain::open(&store, snapshot, &wrong)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("base of"), "{e}");
        assert_eq!(streamdelta::probe::take().0, 0);
    }
}
