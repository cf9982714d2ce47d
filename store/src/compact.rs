//! Lazily compressed packs and their compaction (`store compact`, and the last step of `gc`).
//!
//! A writer that must be fast more than small (a delta apply: it creates a few hundred MB
//! of chunks on the host while the operator waits) stores its new frames uncompressed
//! ([`LAZY_LEVEL`]) into packs of its own, and its commit records those packs in
//! `store_lazy_packs`. [`Store::compact`] later rewrites every lazy pack at the store's
//! own level, so the store ends the size a normal write gives.
//!
//! Invariants:
//! - A lazy pack holds only frames some writer put there while marked lazy, or frames
//!   copied verbatim from one; no writer appends to a lazy pack unless it writes lazily
//!   too (normal writes start a pack of their own), so the mark never hides a pack that
//!   is already at the store's level from the reverse check.
//! - Compaction follows gc's order: every frame is read and verified before it is
//!   recompressed; the new packs are fsynced (and the pack directory) before the one
//!   index transaction that moves the chunks to them, drops the old packs from
//!   `store_packs` and clears their lazy mark; the old pack files are deleted only after
//!   that commit. A crash before the commit leaves the old index (old packs intact, the
//!   new pack an orphan the next open deletes); after it, the new index (new packs
//!   durable, the old files orphans the next open deletes). A pack holding a frame that
//!   does not verify is left as it is, still marked, for `fsck` to report.
//! - Memory is bounded by one batch of [`COMPACT_BATCH_BYTES`] raw chunk bytes and their
//!   frames, whatever the pack size.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::{BTreeMap, HashSet};
use std::fs;

use rayon::prelude::*;
use serde::Serialize;

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::id::ChunkId;
use crate::index::{CHUNKS, ChunkLocation, PACKS};
use crate::pack::{PACK_TARGET_LEN, PackAppender, sync_dir};
use crate::progress::Step;

/// pack number -> nothing: packs written lazily, waiting for [`Store::compact`].
pub(crate) const LAZY_PACKS: TableDefinition<u32, ()> = TableDefinition::new("store_lazy_packs");

/// The zstd level of lazily written frames: `None`, stored raw (uncompressed). Measured
/// on the 1 GiB apply (docs/benchmarks.md, "Apply vs full import, round 7"): zstd's
/// fastest useful level (-1) compresses feed text at 340-360 MB/s on the benchmark
/// machine, so the ~290 MB of chunks an apply creates cost 0.95 CPU-s of its 3.1, while
/// writing them raw adds
/// ~175 MB for the device (1.2 GB/s fsync'd there; the pack's pages are handed to the
/// device as they are appended, so most of it overlaps the apply). The break-even is a
/// device slower than ~370 MB/s with both cores busy; `store gc`/`store compact` bring
/// the packs to the store's level either way. (Round 5 chose `Some(-1)` on a measured
/// 50 MB/s of fsync'd writes, which this disk no longer shows.)
pub const LAZY_LEVEL: Option<i32> = None;

/// Raw chunk bytes recompressed at once (in parallel on the store's threads).
const COMPACT_BATCH_BYTES: usize = 16 << 20;

/// Result of [`Store::compact`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompactReport {
    /// Lazy packs rewritten at the store's level.
    pub packs_compacted: u64,
    /// Lazy packs left as they were because a frame in them does not verify.
    pub packs_damaged: u64,
    /// Chunks recompressed.
    pub chunks: u64,
    /// Pack bytes of the compacted packs before.
    pub bytes_before: u64,
    /// Pack bytes of the packs that replace them.
    pub bytes_after: u64,
}

/// Lazy pack numbers the index records (none in a store no lazy writer ever committed to).
pub(crate) fn lazy_packs_in(txn: &redb::ReadTransaction) -> Result<HashSet<u32>> {
    match txn.open_table(LAZY_PACKS) {
        Ok(t) => t
            .iter()?
            .map(|r| r.map(|(k, _)| k.value()).map_err(StoreError::from))
            .collect(),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(HashSet::new()),
        Err(e) => Err(e.into()),
    }
}

/// Frames compaction moved, and the packs it wrote and emptied.
struct Moved {
    chunks: Vec<(ChunkId, ChunkLocation)>,
    new_packs: Vec<PackAppender>,
    compacted: Vec<u32>,
    damaged: u64,
}

impl Store {
    /// Rewrite every lazy pack at the store's zstd level (see the module doc for the
    /// crash-safe order). `progress` gets a phase of raw bytes, then their advance.
    pub fn compact(&self, progress: &mut dyn FnMut(Step)) -> Result<CompactReport> {
        if self.is_remote() {
            return Ok(CompactReport::default());
        }
        let _exclusive = self.writer_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.compact_locked(progress)
    }

    /// [`Store::compact`] for a caller already holding the writer lock (`gc`).
    pub(crate) fn compact_locked(&self, progress: &mut dyn FnMut(Step)) -> Result<CompactReport> {
        let mut report = CompactReport::default();
        let txn = self.db.begin_read()?;
        let lazy = lazy_packs_in(&txn)?;
        if lazy.is_empty() {
            return Ok(report);
        }
        let packs: BTreeMap<u32, u64> = txn
            .open_table(PACKS)?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value(), v.value())))
            .collect::<std::result::Result<_, _>>()?;
        // Only packs that still exist: a mark whose pack gc deleted is dropped at the
        // switch below, never "compacted" (its number may be reused by the new pack).
        let mut by_pack: BTreeMap<u32, Vec<(ChunkId, ChunkLocation)>> = lazy
            .iter()
            .filter(|n| packs.contains_key(n))
            .map(|n| (*n, Vec::new()))
            .collect();
        for row in txn.open_table(CHUNKS)?.iter()? {
            let (k, v) = row?;
            let loc = ChunkLocation::decode(v.value());
            if let Some(frames) = by_pack.get_mut(&loc.pack) {
                frames.push((ChunkId(*k.value()), loc));
            }
        }
        drop(txn);
        let raw_total: u64 = by_pack
            .values()
            .flatten()
            .map(|(_, l)| u64::from(l.raw_len))
            .sum();
        progress(Step::Phase {
            name: "compact",
            total: Some(raw_total),
            unit: crate::progress::Unit::Bytes,
        });
        let first_new = packs.keys().chain(&lazy).max().copied().unwrap_or(0) + 1;
        let moved = self.recompress_packs(by_pack, first_new, progress)?;
        crash_point(CrashPoint::BeforeCommit)?;
        report.packs_damaged = moved.damaged;
        report.chunks = moved.chunks.len() as u64;
        report.bytes_before = moved
            .compacted
            .iter()
            .map(|n| packs.get(n).copied().unwrap_or(0))
            .sum();
        report.bytes_after = moved.new_packs.iter().map(|p| p.len).sum();
        report.packs_compacted = moved.compacted.len() as u64;
        self.switch_to_compacted(&moved, &lazy)?;
        Ok(report)
    }

    /// Read, verify and recompress every frame of the lazy packs in `by_pack` into new
    /// packs numbered from `first_new`, fsynced. Packs with a frame that does not verify
    /// are skipped whole (their frames may already be in a new pack: unreferenced bytes,
    /// dropped with it if nothing else is, harmless otherwise).
    fn recompress_packs(
        &self,
        by_pack: BTreeMap<u32, Vec<(ChunkId, ChunkLocation)>>,
        first_new: u32,
        progress: &mut dyn FnMut(Step),
    ) -> Result<Moved> {
        let mut moved = Moved {
            chunks: Vec::new(),
            new_packs: Vec::new(),
            compacted: Vec::new(),
            damaged: 0,
        };
        let level = self.header.zstd_level;
        for (n, mut frames) in by_pack {
            frames.sort_by_key(|(_, l)| l.offset);
            let mut pack_moves = Vec::with_capacity(frames.len());
            let mut intact = true;
            for batch in batches(&frames) {
                let Some(encoded) = self.verify_and_recompress(batch, level)? else {
                    intact = false;
                    break;
                };
                for ((id, loc), frame) in batch.iter().zip(encoded) {
                    let appender = self.pack_with_room(&mut moved.new_packs, first_new)?;
                    let offset = appender.append(&frame)?;
                    pack_moves.push((
                        *id,
                        ChunkLocation {
                            pack: appender.number,
                            offset,
                            frame_len: frame.len() as u32,
                            raw_len: loc.raw_len,
                        },
                    ));
                    progress(Step::Advance(u64::from(loc.raw_len)));
                }
                crash_point(CrashPoint::MidCopy)?;
            }
            if intact {
                moved.chunks.extend(pack_moves);
                moved.compacted.push(n);
            } else {
                moved.damaged += 1;
            }
        }
        for p in &moved.new_packs {
            p.sync()?;
        }
        if !moved.new_packs.is_empty() {
            sync_dir(&self.packs_dir())?;
        }
        Ok(moved)
    }

    /// The frames of `batch` decoded (each verified against its id) and re-encoded at
    /// `level`, in order; `None` when one does not verify.
    fn verify_and_recompress(
        &self,
        batch: &[(ChunkId, ChunkLocation)],
        level: i32,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let one = |(id, loc): &(ChunkId, ChunkLocation)| -> Result<Option<Vec<u8>>> {
            let mut raw = Vec::with_capacity(loc.raw_len as usize);
            if self.read_frame(id, loc, &mut raw).is_err() {
                return Ok(None);
            }
            crate::writer::compress_frame(Some(level), id, &raw)
                .map(Some)
                .ctx(|| "compress chunk".to_string())
                .map_err(Into::into)
        };
        let encoded: Vec<Result<Option<Vec<u8>>>> = match &self.pool {
            Some(pool) => pool.install(|| batch.par_iter().map(one).collect()),
            None => batch.iter().map(one).collect(),
        };
        let mut out = Vec::with_capacity(batch.len());
        for e in encoded {
            match e? {
                Some(frame) => out.push(frame),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// The last new pack while it has room, else a fresh one numbered after it.
    fn pack_with_room<'p>(
        &self,
        packs: &'p mut Vec<PackAppender>,
        first_new: u32,
    ) -> Result<&'p mut PackAppender> {
        let full = packs.last().is_none_or(|p| p.len >= PACK_TARGET_LEN);
        if full {
            let n = packs.last().map_or(first_new, |p| p.number + 1);
            // Only a crashed compaction can have left a file of this number: the index does
            // not name it, nothing points into it.
            let stale = self.packs_dir().join(crate::pack::pack_file_name(n));
            if stale.exists() {
                fs::remove_file(&stale).ctx(|| format!("remove {}", stale.display()))?;
            }
            packs.push(PackAppender::open(&self.packs_dir(), n, None)?);
        }
        match packs.last_mut() {
            Some(p) => Ok(p),
            None => unreachable!("a pack was pushed above"),
        }
    }

    /// One index transaction switches the moved chunks to their new packs and forgets the
    /// compacted ones; then the old pack files go.
    fn switch_to_compacted(&self, moved: &Moved, lazy: &HashSet<u32>) -> Result<()> {
        let wtxn = self.db.begin_write()?;
        {
            let mut chunks = wtxn.open_table(CHUNKS)?;
            for (id, loc) in &moved.chunks {
                chunks.insert(id.as_bytes(), &loc.encode())?;
            }
            let mut pack_table = wtxn.open_table(PACKS)?;
            let mut lazy_table = wtxn.open_table(LAZY_PACKS)?;
            for n in &moved.compacted {
                pack_table.remove(*n)?;
                lazy_table.remove(*n)?;
            }
            // A mark whose pack is gone (gc deleted it) is stale: drop it too.
            for n in lazy {
                if pack_table.get(*n)?.is_none() {
                    lazy_table.remove(*n)?;
                }
            }
            for p in &moved.new_packs {
                pack_table.insert(p.number, p.len)?;
                lazy_table.remove(p.number)?;
            }
        }
        wtxn.commit()?;
        crash_point(CrashPoint::AfterCommit)?;
        self.backend.forget(&moved.compacted);
        for n in &moved.compacted {
            let path = self.packs_dir().join(crate::pack::pack_file_name(*n));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Io {
                        context: format!("remove pack {}", path.display()),
                        source: e,
                    });
                }
            }
        }
        if !moved.compacted.is_empty() {
            sync_dir(&self.packs_dir())?;
        }
        Ok(())
    }
}

/// Where a test makes compaction stop as a crash would (no cleanup, no drop of its files).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// After the first batch of frames was appended to the new pack (not fsynced).
    MidCopy,
    /// New packs fsynced, index not switched.
    BeforeCommit,
    /// Index switched, old pack files not deleted.
    AfterCommit,
}

#[cfg(test)]
thread_local! {
    /// The crash point armed for compactions run on this thread.
    pub(crate) static CRASH_AT: std::cell::Cell<Option<CrashPoint>> =
        const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn crash_point(at: CrashPoint) -> Result<()> {
    if CRASH_AT.with(|c| c.get()) == Some(at) {
        return Err(StoreError::Io {
            context: format!("simulated crash at {at:?}"),
            source: std::io::Error::other("crash"),
        });
    }
    Ok(())
}

#[cfg(not(test))]
#[derive(Clone, Copy)]
enum CrashPoint {
    MidCopy,
    BeforeCommit,
    AfterCommit,
}

#[cfg(not(test))]
#[inline(always)]
fn crash_point(_: CrashPoint) -> Result<()> {
    Ok(())
}

/// `frames` cut into runs of at most [`COMPACT_BATCH_BYTES`] raw bytes (at least one frame
/// each).
fn batches(frames: &[(ChunkId, ChunkLocation)]) -> Vec<&[(ChunkId, ChunkLocation)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, (_, loc)) in frames.iter().enumerate() {
        if i > start && bytes + loc.raw_len as usize > COMPACT_BATCH_BYTES {
            out.push(&frames[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += loc.raw_len as usize;
    }
    if start < frames.len() {
        out.push(&frames[start..]);
    }
    out
}
