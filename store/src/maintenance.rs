//! Store maintenance: recovery at open, `fsck`, `gc` (with repacking) and `stats`.
//!
//! - Recovery cuts pack tails past their committed length and deletes pack files the index
//!   does not name: both can only be leftovers of a write that never committed.
//! - `fsck` re-reads and re-hashes every frame and checks that every file's chunks exist.
//! - `gc` drops files not in the caller's live set, chunks no live file uses, and rewrites
//!   packs that became sparse; then it compacts lazily written packs ([`crate::compact`]). New packs are fsynced before the index commit that switches
//!   to them; old pack files are deleted only after it. A crash anywhere leaves either the
//!   old index (old packs intact) or the new one (new packs durable), plus at worst an
//!   orphan pack file that the next open deletes.

use redb::{ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;

use rayon::prelude::*;
use serde::Serialize;

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::id::{ChunkId, FileDigest};
use crate::index::{CHUNKS, ChunkLocation, FILES, FileRecord, PACKS};
use crate::pack::{PACK_HEADER_LEN, PackAppender, list_pack_files, sync_dir};

/// What [`Store::open`] repaired.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    /// Packs whose uncommitted tail was cut: (pack, bytes cut).
    pub truncated_packs: Vec<(u32, u64)>,
    /// Pack files deleted because the index never referenced them.
    pub removed_packs: Vec<u32>,
}

impl RecoveryReport {
    /// True when nothing needed repair.
    pub fn is_clean(&self) -> bool {
        self.truncated_packs.is_empty() && self.removed_packs.is_empty()
    }
}

/// One chunk that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedChunk {
    /// The chunk.
    pub id: ChunkId,
    /// Pack number (0 when the chunk is missing from the index).
    pub pack: u32,
    /// Frame offset.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// Result of [`Store::fsck`].
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsckReport {
    /// Frames verified.
    pub chunks_checked: u64,
    /// Raw bytes verified.
    pub bytes_checked: u64,
    /// Files whose records were checked.
    pub files_checked: u64,
    /// Chunks whose frames do not verify, or that files name but the index lacks.
    pub damaged: Vec<DamagedChunk>,
    /// Files that need a damaged or missing chunk.
    pub damaged_files: Vec<FileDigest>,
    /// Packs the index names but the disk lacks.
    pub missing_packs: Vec<u32>,
}

impl FsckReport {
    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.damaged_files.is_empty() && self.missing_packs.is_empty()
    }
}

/// What [`Store::check_index`] found in `index.redb` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum IndexCheck {
    /// Every page and structure verified.
    Clean,
    /// redb found pages to reclaim or an allocator state to rebuild (what a crash leaves)
    /// and repaired them.
    Repaired,
    /// Pages fail their checksums and redb could not repair the file.
    Damaged {
        /// What redb reported.
        message: String,
    },
}

/// Result of [`Store::gc`].
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// File records dropped.
    pub files_removed: u64,
    /// Chunks dropped.
    pub chunks_removed: u64,
    /// Packs rewritten into a new pack.
    pub packs_rewritten: u64,
    /// Pack files deleted.
    pub packs_deleted: u64,
    /// Pack bytes on disk before.
    pub bytes_before: u64,
    /// Pack bytes on disk after.
    pub bytes_after: u64,
}

/// Result of [`Store::stats`].
#[derive(Debug, Default, Clone, Serialize)]
pub struct StoreStats {
    /// Distinct chunks.
    pub chunks: u64,
    /// Distinct files.
    pub files: u64,
    /// Sum of distinct files' sizes.
    pub file_bytes: u64,
    /// Sum of distinct chunks' raw sizes.
    pub unique_bytes: u64,
    /// Sum of frame sizes (what the chunks take in packs).
    pub stored_bytes: u64,
    /// Committed pack bytes on disk (frames, pack headers and dead frames).
    pub pack_bytes: u64,
    /// Pack files.
    pub packs: u64,
}

/// A frame a sparse pack still holds, waiting to be copied.
struct LiveFrame {
    id: ChunkId,
    loc: ChunkLocation,
}

/// A verified frame's raw bytes, with the chunk and where it was.
type FrameCopy = (ChunkId, ChunkLocation, Vec<u8>);

/// What gc's read phase decided ([`Store::plan_gc`]).
struct GcPlan {
    /// Files neither live nor pinned.
    dead_files: Vec<FileDigest>,
    /// Chunks no remaining file uses.
    dead_chunks: Vec<ChunkId>,
    /// Live frames of each pack, by pack number.
    live_by_pack: BTreeMap<u32, Vec<LiveFrame>>,
    /// Committed pack bytes before gc.
    bytes_before: u64,
    /// Number for a new pack: one past the highest the index names.
    next_pack_number: u32,
    /// Packs with no live frame.
    to_delete: Vec<u32>,
    /// Packs whose live frames fill less than half of them (lazy packs excluded).
    to_rewrite: Vec<u32>,
}

/// What [`Store::copy_sparse_packs`] wrote.
struct CopiedFrames {
    /// Chunks moved, with their new location.
    moved: Vec<(ChunkId, ChunkLocation)>,
    /// Sparse packs whose frames were all copied (safe to drop).
    rewritten: Vec<u32>,
    /// The new pack (number, committed length), when one was written.
    new_pack: Option<(u32, u64)>,
}

impl Store {
    pub(crate) fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let committed: HashMap<u32, u64> = {
            let txn = self.db.begin_read()?;
            let packs = txn.open_table(PACKS)?;
            packs
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value())))
                .collect::<std::result::Result<_, _>>()?
        };
        let dir = self.packs_dir();
        let mut changed = false;
        for (n, len, path) in list_pack_files(&dir)? {
            match committed.get(&n) {
                None => {
                    fs::remove_file(&path)
                        .ctx(|| format!("remove orphan pack {}", path.display()))?;
                    report.removed_packs.push(n);
                    changed = true;
                }
                Some(&c) if len > c => {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .ctx(|| format!("open pack {}", path.display()))?;
                    f.set_len(c)
                        .and_then(|_| f.sync_all())
                        .ctx(|| format!("truncate pack {}", path.display()))?;
                    report.truncated_packs.push((n, len - c));
                }
                Some(_) => {}
            }
        }
        if changed {
            sync_dir(&dir)?;
        }
        Ok(report)
    }

    /// Verify the index file's own structure (every B-tree page's checksum, the allocator
    /// state) with redb's integrity check, repairing what a crash can leave. redb trusts a
    /// cleanly closed file, so damage outside what it wrote is otherwise met only when a
    /// read reaches the page. Run it after [`Store::fsck`], whose walk names the chunks
    /// behind damaged records while they can still be read. Needs `&mut` because a repair
    /// writes; a clean index is not written.
    pub fn check_index(&mut self) -> Result<IndexCheck> {
        match self.db.check_integrity().map_err(StoreError::from_index) {
            Ok(true) => Ok(IndexCheck::Clean),
            Ok(false) => Ok(IndexCheck::Repaired),
            Err(StoreError::IndexDamaged { message }) => Ok(IndexCheck::Damaged { message }),
            Err(e) => Err(e),
        }
    }

    /// Re-hash every chunk and check every file's chunk list. `progress` gets raw bytes
    /// verified since its last call.
    pub fn fsck(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let txn = self.db.begin_read()?;
        let mut by_pack: BTreeMap<u32, Vec<(ChunkId, ChunkLocation)>> = BTreeMap::new();
        for row in txn.open_table(CHUNKS)?.iter()? {
            let (k, v) = row?;
            let loc = ChunkLocation::decode(v.value());
            by_pack
                .entry(loc.pack)
                .or_default()
                .push((ChunkId(*k.value()), loc));
        }
        let on_disk: HashSet<u32> = self.backend.present_packs()?;
        for n in txn.open_table(PACKS)?.iter()? {
            let n = n?.0.value();
            if !on_disk.contains(&n) {
                report.missing_packs.push(n);
            }
        }
        let damage = |id: &ChunkId, loc: &ChunkLocation, e: StoreError| DamagedChunk {
            id: *id,
            pack: loc.pack,
            offset: loc.offset,
            reason: match e {
                StoreError::DamagedChunk { source, .. } => source.to_string(),
                other => other.to_string(),
            },
        };
        let check_pack = |frames: &Vec<(ChunkId, ChunkLocation)>| {
            let mut bad = Vec::new();
            let mut buf = Vec::new();
            let (mut count, mut bytes) = (0u64, 0u64);
            let mut sorted: Vec<&(ChunkId, ChunkLocation)> = frames.iter().collect();
            sorted.sort_by_key(|(_, l)| l.offset);
            if self.backend.prefers_windows() {
                // Each read is a request: read runs of adjacent frames at once.
                let sorted: Vec<(ChunkId, ChunkLocation)> = sorted.into_iter().copied().collect();
                let walked = self.read_windows(&sorted, &mut |i, r| {
                    count += 1;
                    match r {
                        Ok(chunk) => {
                            bytes += chunk.len() as u64;
                            progress(chunk.len() as u64);
                        }
                        Err(e) => bad.push(damage(&sorted[i].0, &sorted[i].1, e)),
                    }
                    Ok(())
                });
                if let Err(e) = walked
                    && let Some((id, loc)) = sorted.first()
                {
                    bad.push(damage(id, loc, e));
                }
                return (count, bytes, bad);
            }
            for (id, loc) in sorted {
                buf.clear();
                count += 1;
                match self.read_frame(id, loc, &mut buf) {
                    Ok(()) => {
                        bytes += buf.len() as u64;
                        progress(buf.len() as u64);
                    }
                    Err(e) => bad.push(damage(id, loc, e)),
                }
            }
            (count, bytes, bad)
        };
        let groups: Vec<&Vec<(ChunkId, ChunkLocation)>> = by_pack.values().collect();
        let results: Vec<(u64, u64, Vec<DamagedChunk>)> = match &self.pool {
            Some(pool) => pool.install(|| groups.par_iter().map(|g| check_pack(g)).collect()),
            None => groups.iter().map(|g| check_pack(g)).collect(),
        };
        for (count, bytes, bad) in results {
            report.chunks_checked += count;
            report.bytes_checked += bytes;
            report.damaged.extend(bad);
        }
        let known: HashSet<ChunkId> = by_pack.values().flatten().map(|(id, _)| *id).collect();
        let mut damaged_ids: HashSet<ChunkId> = report.damaged.iter().map(|d| d.id).collect();
        for row in txn.open_table(FILES)?.iter()? {
            let (k, v) = row?;
            report.files_checked += 1;
            let digest = FileDigest(*k.value());
            let rec = match FileRecord::decode(v.value()) {
                Ok(r) => r,
                Err(_) => {
                    report.damaged_files.push(digest);
                    continue;
                }
            };
            let mut hit = false;
            for id in &rec.chunks {
                if !known.contains(id) && damaged_ids.insert(*id) {
                    report.damaged.push(DamagedChunk {
                        id: *id,
                        pack: 0,
                        offset: 0,
                        reason: "missing from the index".into(),
                    });
                }
                hit |= damaged_ids.contains(id);
            }
            if hit {
                report.damaged_files.push(digest);
            }
        }
        report.damaged.sort_by_key(|d| (d.pack, d.offset, d.id));
        report.damaged_files.sort();
        Ok(report)
    }

    /// Drop every file neither in `live_files` nor pinned ([`crate::pins`]), every chunk no
    /// remaining file uses, and rewrite packs whose live frames fill less than half of them.
    pub fn gc(&self, live_files: &HashSet<FileDigest>) -> Result<GcReport> {
        if self.is_remote() {
            // Deleting objects other writers may be deduplicating against needs a
            // protocol of its own (the bucket is shared); not done yet.
            return Err(StoreError::Unsupported(
                "gc of an object-storage store".into(),
            ));
        }
        let _exclusive = self.writer_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = GcReport::default();
        let mut plan = self.plan_gc(live_files)?;
        report.bytes_before = plan.bytes_before;
        let copied = self.copy_sparse_packs(&mut plan)?;
        self.commit_gc(&plan, &copied)?;
        let gone: Vec<u32> = plan
            .to_delete
            .iter()
            .chain(&copied.rewritten)
            .copied()
            .collect();
        self.backend.forget(&gone);
        self.remove_pack_files(&gone)?;
        // Lazily written packs are recompressed at the store's level, live frames only
        // (the dead ones left the index above); a separate crash-safe step.
        let compacted = self.compact_locked(&mut crate::progress::ignore)?;
        report.files_removed = plan.dead_files.len() as u64;
        report.chunks_removed = plan.dead_chunks.len() as u64;
        report.packs_rewritten = (copied.rewritten.len() as u64) + compacted.packs_compacted;
        report.packs_deleted = gone.len() as u64;
        report.bytes_after = self.stats()?.pack_bytes;
        Ok(report)
    }

    /// Gc's read phase, in one read transaction: which files and chunks die, which packs
    /// become empty (deleted) or sparse (rewritten), and the live frames of each pack.
    fn plan_gc(&self, live_files: &HashSet<FileDigest>) -> Result<GcPlan> {
        let txn = self.db.begin_read()?;
        let pinned = crate::pins::pinned_in(&txn)?;
        let lazy = crate::compact::lazy_packs_in(&txn)?;
        let mut dead_files = Vec::new();
        let mut live_chunks: HashSet<ChunkId> = HashSet::new();
        for row in txn.open_table(FILES)?.iter()? {
            let (k, v) = row?;
            let digest = FileDigest(*k.value());
            if live_files.contains(&digest) || pinned.contains(&digest) {
                let rec = FileRecord::decode(v.value()).map_err(|e| StoreError::Record {
                    what: format!("file {digest}"),
                    message: e.to_string(),
                })?;
                live_chunks.extend(rec.chunks);
            } else {
                dead_files.push(digest);
            }
        }
        let mut dead_chunks = Vec::new();
        let mut live_by_pack: BTreeMap<u32, Vec<LiveFrame>> = BTreeMap::new();
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        for row in txn.open_table(CHUNKS)?.iter()? {
            let (k, v) = row?;
            let id = ChunkId(*k.value());
            let loc = ChunkLocation::decode(v.value());
            if live_chunks.contains(&id) {
                *live_bytes.entry(loc.pack).or_default() += u64::from(loc.frame_len);
                live_by_pack
                    .entry(loc.pack)
                    .or_default()
                    .push(LiveFrame { id, loc });
            } else {
                dead_chunks.push(id);
            }
        }
        let packs: Vec<(u32, u64)> = txn
            .open_table(PACKS)?
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value(), v.value())))
            .collect::<std::result::Result<_, _>>()?;
        drop(txn);
        let mut to_delete = Vec::new();
        let mut to_rewrite = Vec::new();
        for &(n, len) in &packs {
            let live = live_bytes.get(&n).copied().unwrap_or(0);
            if live == 0 {
                to_delete.push(n);
            } else if lazy.contains(&n) {
                // Rewritten below by compaction, recompressed (a verbatim copy here would
                // keep the frames uncompressed and lose the mark).
            } else if live * 2 < len.saturating_sub(PACK_HEADER_LEN) {
                to_rewrite.push(n);
            }
        }
        Ok(GcPlan {
            dead_files,
            dead_chunks,
            live_by_pack,
            bytes_before: packs.iter().map(|p| p.1).sum(),
            next_pack_number: packs.iter().map(|p| p.0).max().unwrap_or(0) + 1,
            to_delete,
            to_rewrite,
        })
    }

    /// Copy the live frames of the plan's sparse packs into one new pack, verifying each;
    /// a pack holding a damaged frame is left as it is (fsck reports it), so gc never
    /// turns damage into loss. The new pack and its directory are fsynced before return,
    /// so the index commit that follows may point at it.
    fn copy_sparse_packs(&self, plan: &mut GcPlan) -> Result<CopiedFrames> {
        let mut moved: Vec<(ChunkId, ChunkLocation)> = Vec::new();
        let mut rewritten = Vec::new();
        let mut new_pack: Option<PackAppender> = None;
        for &n in &plan.to_rewrite {
            let frames = plan.live_by_pack.remove(&n).unwrap_or_default();
            let Some(copies) = self.read_verified_frames(n, &frames)? else {
                continue;
            };
            let appender = match new_pack.as_mut() {
                Some(p) => p,
                None => new_pack.insert(PackAppender::open(
                    &self.packs_dir(),
                    plan.next_pack_number,
                    None,
                )?),
            };
            for (id, loc, bytes) in copies {
                let offset = appender.append(&bytes)?;
                moved.push((
                    id,
                    ChunkLocation {
                        pack: appender.number,
                        offset,
                        ..loc
                    },
                ));
            }
            rewritten.push(n);
        }
        if let Some(p) = &new_pack {
            p.sync()?;
            sync_dir(&self.packs_dir())?;
        }
        Ok(CopiedFrames {
            moved,
            rewritten,
            new_pack: new_pack.map(|p| (p.number, p.len)),
        })
    }

    /// The raw frame bytes of pack `n`'s live `frames`, each verified first; `None` when
    /// one does not verify or cannot be read (the pack then stays as it is).
    fn read_verified_frames(&self, n: u32, frames: &[LiveFrame]) -> Result<Option<Vec<FrameCopy>>> {
        let mut copies = Vec::with_capacity(frames.len());
        let mut scratch = Vec::new();
        for f in frames {
            scratch.clear();
            if self.read_frame(&f.id, &f.loc, &mut scratch).is_err() {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            if self
                .backend
                .read_at(n, f.loc.offset, f.loc.frame_len as usize, &mut bytes)?
                .is_err()
            {
                return Ok(None);
            }
            copies.push((f.id, f.loc, bytes));
        }
        Ok(Some(copies))
    }

    /// The one index commit of gc: dead files and chunks leave, moved chunks point at the
    /// new pack, deleted and rewritten packs leave the pack table and the new pack joins it.
    fn commit_gc(&self, plan: &GcPlan, copied: &CopiedFrames) -> Result<()> {
        let wtxn = self.db.begin_write()?;
        {
            let mut files = wtxn.open_table(FILES)?;
            for d in &plan.dead_files {
                files.remove(d.as_bytes())?;
            }
            let mut chunks = wtxn.open_table(CHUNKS)?;
            for id in &plan.dead_chunks {
                chunks.remove(id.as_bytes())?;
            }
            for (id, loc) in &copied.moved {
                chunks.insert(id.as_bytes(), &loc.encode())?;
            }
            let mut pack_table = wtxn.open_table(PACKS)?;
            for n in plan.to_delete.iter().chain(&copied.rewritten) {
                pack_table.remove(*n)?;
            }
            if let Some((number, len)) = copied.new_pack {
                pack_table.insert(number, len)?;
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Delete pack files the committed index no longer names (already gone is fine), then
    /// fsync the directory so the deletions are durable.
    fn remove_pack_files(&self, gone: &[u32]) -> Result<()> {
        for n in gone {
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
        if !gone.is_empty() {
            sync_dir(&self.packs_dir())?;
        }
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        let mut s = StoreStats::default();
        let txn = self.db.begin_read()?;
        for row in txn.open_table(CHUNKS)?.iter()? {
            let loc = ChunkLocation::decode(row?.1.value());
            s.chunks += 1;
            s.unique_bytes += u64::from(loc.raw_len);
            s.stored_bytes += u64::from(loc.frame_len);
        }
        for row in txn.open_table(FILES)?.iter()? {
            let (k, v) = row?;
            let rec = FileRecord::decode(v.value()).map_err(|e| StoreError::Record {
                what: format!("file {}", FileDigest(*k.value())),
                message: e.to_string(),
            })?;
            s.files += 1;
            s.file_bytes += rec.size;
        }
        for row in txn.open_table(PACKS)?.iter()? {
            s.packs += 1;
            s.pack_bytes += row?.1.value();
        }
        Ok(s)
    }
}
