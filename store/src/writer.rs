//! Writing into the store: chunk, hash, dedup, compress, append, commit.
//!
//! A [`StoreWriter`] batches any number of `put`s into one durable commit:
//! 1. input is cut by the streaming chunker while the whole-file SHA-256 is computed;
//! 2. chunks are gathered into batches of [`BATCH_BYTES`]; each batch's BLAKE3 ids are
//!    computed (in parallel when the store has more than one thread), chunks already in the
//!    index or pending in this writer are dropped, the rest are compressed into frames (in
//!    parallel) and appended to the current pack;
//! 3. [`StoreWriter::commit`] fsyncs every pack it appended to (and the pack directory when
//!    a pack was created), then commits one redb transaction with the new chunk locations,
//!    file records and pack lengths.
//!
//! Memory is bounded by the chunker's read buffer plus two batches of raw chunks (one
//! being filled while the other is hashed and compressed) and one batch's frames, whatever
//! the input size: about `READ_BUFFER + 3 * BATCH_BYTES` (16 MiB).
//! A writer dropped without `commit` (a refused import) rolls its appends back: packs it
//! extended are cut back to their committed length and packs it created are deleted, so a
//! refusal leaves the store's files as they were. A crash (no drop) leaves only
//! unreferenced bytes past a pack's committed length, which the next writer or the next
//! open cuts off.
//!
//! On an object-storage store ([`crate::backend`]) packs are immutable: the writer builds
//! each new pack in a spool file (`STORE/spool/`), uploads it once it reaches the
//! backend's target size, and at `commit` uploads the last one and then one pack-index
//! object per pack (the file records in the last) before the redb transaction that
//! references them. A writer dropped or crashed before that leaves at worst packs in the
//! bucket that no index object names; the spool is emptied at the next open.

use redb::{ReadableDatabase, ReadableTable};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use sha2::Digest;

use crate::Store;
use crate::backend::SealedPack;
use crate::chunker::{KnownCuts, NoKnownCuts, StreamChunker};
use crate::error::{IoContext, Result, StoreError};
use crate::frame::encode_frame;
use crate::id::{ChunkId, FileDigest};
use crate::index::{CHUNKS, ChunkLocation, FILES, FileRecord, PACKS, REMOTE_PACKS};
use crate::pack::{PACK_TARGET_LEN, PackAppender, pack_file_name, sync_dir};
use crate::pack_index::IndexedChunk;

/// Raw bytes gathered before a batch is hashed and compressed.
pub const BATCH_BYTES: usize = 4 << 20;

/// What one `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// SHA-256 of the whole input.
    pub digest: FileDigest,
    /// Input length.
    pub size: u64,
    /// Chunk ids in order.
    pub chunks: Vec<ChunkId>,
    /// Chunks that were new to the store.
    pub new_chunks: u64,
    /// Raw bytes of those new chunks.
    pub new_raw_bytes: u64,
    /// Bytes appended to packs for them (frames, headers included).
    pub new_stored_bytes: u64,
}

/// Totals over a writer's life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteTotals {
    /// Files put.
    pub files: u64,
    /// Input bytes.
    pub bytes: u64,
    /// New chunks stored.
    pub new_chunks: u64,
    /// Raw bytes of new chunks.
    pub new_raw_bytes: u64,
    /// Frame bytes appended.
    pub new_stored_bytes: u64,
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// A complete frame of `raw`: zstd at `level`, or stored raw when `level` is `None`.
pub(crate) fn compress_frame(
    level: Option<i32>,
    id: &ChunkId,
    raw: &[u8],
) -> std::io::Result<Vec<u8>> {
    let Some(level) = level else {
        let mut out = Vec::with_capacity(raw.len() + crate::frame::HEADER_LEN);
        return crate::frame::encode_raw_frame(id, raw, &mut out).map(|_| out);
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        match slot.as_mut() {
            Some((_, c)) => encode_frame(c, id, raw, &mut out).map(|_| out),
            None => Err(std::io::Error::other("zstd compressor unavailable")),
        }
    })
}

/// Who computes the SHA-256 a put records its file under.
pub enum FileHashing<'a> {
    /// The writer, over every byte it reads.
    Compute,
    /// The producer of the input, over exactly the bytes the writer reads (a decoder
    /// thread hashing each piece before it hands it on, say, so the SHA-256 is not on the
    /// writer's thread): asked once the input is at its end; `None` is an error.
    Given(&'a mut dyn FnMut() -> Option<FileDigest>),
}

/// Batches puts into one durable commit. Get one from [`Store::writer`].
pub struct StoreWriter<'s> {
    store: &'s Store,
    snapshot: redb::ReadTransaction,
    current: Option<PackAppender>,
    finished: Vec<PackAppender>,
    /// Object-storage packs that filled up and are already uploaded (spool file gone).
    sealed: Vec<SealedPack>,
    pending_chunks: HashMap<ChunkId, ChunkLocation>,
    pending_files: HashMap<FileDigest, FileRecord>,
    totals: WriteTotals,
    /// Set once `commit` starts: from then on the index may reference appended bytes, so
    /// they are never rolled back.
    commit_started: bool,
    /// Set by [`StoreWriter::store_new_chunks_fast`]: new frames are written at
    /// lazily ([`crate::compact::LAZY_LEVEL`]) into packs of their own, recorded as lazy.
    fast: bool,
    /// Packs this writer created while fast (marked lazy by its commit).
    lazy_created: HashSet<u32>,
    /// Lazy packs of earlier writers (a normal write never appends to one).
    lazy_committed: HashSet<u32>,
    _exclusive: std::sync::MutexGuard<'s, ()>,
}

/// Raw chunks gathered for one round of hashing and compression.
struct Batch {
    data: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl Batch {
    fn with_capacity(bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            ranges: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ranges.clear();
    }
}

/// A batch's chunk ids, which of them are new to the store (first occurrence in the batch,
/// in neither the index nor this writer's pending chunks), and their frames.
struct Prepared {
    ids: Vec<ChunkId>,
    fresh: Vec<usize>,
    frames: Vec<std::io::Result<Vec<u8>>>,
}

/// Chunk `reader` into `batch` until it holds [`BATCH_BYTES`] or the input ends (then
/// `true`), feeding every byte read to `sha` and its count to `progress`.
fn fill_batch<R: Read>(
    chunker: &mut StreamChunker<R>,
    known: &mut dyn KnownCuts,
    sha: &mut Option<sha2::Sha256>,
    batch: &mut Batch,
    progress: &mut dyn FnMut(u64),
) -> Result<bool> {
    while batch.data.len() < BATCH_BYTES {
        let mut read = 0u64;
        let next = chunker
            .next_chunk_knowing(
                &mut |b| {
                    if let Some(sha) = sha.as_mut() {
                        sha.update(b);
                    }
                    read += b.len() as u64;
                },
                known,
            )
            .ctx(|| "read input".to_string())?;
        if read > 0 {
            progress(read);
        }
        let Some(chunk) = next else { return Ok(true) };
        let start = batch.data.len();
        batch.data.extend_from_slice(chunk);
        batch.ranges.push((start, chunk.len()));
    }
    Ok(false)
}

/// Hash `batch`'s chunks, drop those `snapshot`'s index or `pending` already hold (and
/// repeats within the batch), and compress the rest at `level` (`None`: raw); in parallel on the
/// current rayon pool when `parallel`.
fn prepare(
    batch: &Batch,
    snapshot: &redb::ReadTransaction,
    pending: &HashMap<ChunkId, ChunkLocation>,
    level: Option<i32>,
    parallel: bool,
) -> Result<Prepared> {
    let data = &batch.data;
    let hash = |&(o, l): &(usize, usize)| ChunkId::of(&data[o..o + l]);
    let ids: Vec<ChunkId> = if parallel {
        batch.ranges.par_iter().map(hash).collect()
    } else {
        batch.ranges.iter().map(hash).collect()
    };
    let index = snapshot.open_table(CHUNKS)?;
    let mut fresh = Vec::new();
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if pending.contains_key(id) || !seen.insert(*id) {
            continue;
        }
        if index.get(id.as_bytes())?.is_none() {
            fresh.push(i);
        }
    }
    drop(index);
    let encode = |&i: &usize| {
        let (o, l) = batch.ranges[i];
        compress_frame(level, &ids[i], &data[o..o + l])
    };
    let frames = if parallel {
        fresh.par_iter().map(encode).collect()
    } else {
        fresh.iter().map(encode).collect()
    };
    Ok(Prepared { ids, fresh, frames })
}

impl<'s> StoreWriter<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Self> {
        let guard = store.writer_lock.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = store.db.begin_read()?;
        let lazy_committed = crate::compact::lazy_packs_in(&snapshot)?;
        Ok(StoreWriter {
            store,
            snapshot,
            current: None,
            finished: Vec::new(),
            sealed: Vec::new(),
            pending_chunks: HashMap::new(),
            pending_files: HashMap::new(),
            totals: WriteTotals::default(),
            commit_started: false,
            fast: false,
            lazy_created: HashSet::new(),
            lazy_committed,
            _exclusive: guard,
        })
    }

    /// From now on, store new chunks fast rather than small: raw
    /// ([`crate::compact::LAZY_LEVEL`]), into packs of their own that the commit marks lazy,
    /// so `gc` or `compact` later recompresses them at the store's level. For writes an
    /// operator waits on that create many chunks (a delta apply). Object-storage stores
    /// ignore it (their packs are immutable and shared: they are not compacted).
    pub fn store_new_chunks_fast(&mut self) {
        if !self.store.is_remote() {
            self.fast = true;
        }
    }

    /// Totals so far.
    pub fn totals(&self) -> WriteTotals {
        self.totals
    }

    /// Put the file at `path`.
    pub fn put_file(&mut self, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<PutOutcome> {
        let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
        self.put_reader(file, progress).map_err(|e| match e {
            StoreError::Io { context, source } => StoreError::Io {
                context: format!("{context} (ingesting {})", path.display()),
                source,
            },
            other => other,
        })
    }

    /// Put everything `reader` yields. `progress` is called with the count of bytes read
    /// since the last call.
    ///
    /// While one batch is hashed, deduplicated and compressed on the store's threads, this
    /// thread already chunks the next one (and computes the file's SHA-256): the two
    /// halves of the work overlap instead of taking turns. Batches are stored strictly in
    /// order, each prepared only after the one before it was appended, so a chunk seen in
    /// an earlier batch is never stored twice.
    pub fn put_reader(
        &mut self,
        reader: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PutOutcome> {
        self.put_reader_knowing(reader, &mut NoKnownCuts, FileHashing::Compute, progress)
    }

    /// [`StoreWriter::put_reader`], taking the length of a chunk from `known` where it
    /// knows one instead of running the cutter (see [`KnownCuts`]): the chunks are then
    /// what cutting would give, when the hints are right, and still named by their own
    /// BLAKE3 either way.
    pub fn put_reader_knowing(
        &mut self,
        reader: impl Read,
        known: &mut dyn KnownCuts,
        hashing: FileHashing<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PutOutcome> {
        // Hashed where the chunker reads (its callback sees every byte once), not through
        // `fsutil::HashingReader`: the chunker owns the reader and its read loop.
        let mut sha = matches!(hashing, FileHashing::Compute).then(sha2::Sha256::new);
        let mut chunker = StreamChunker::new(self.store.chunker.clone(), reader);
        let capacity = BATCH_BYTES + self.store.chunker.params().max_size as usize;
        let mut filling = Batch::with_capacity(capacity);
        let mut sealed = Batch::with_capacity(capacity);
        let mut outcome = PutOutcome {
            digest: FileDigest([0; 32]),
            size: 0,
            chunks: Vec::new(),
            new_chunks: 0,
            new_raw_bytes: 0,
            new_stored_bytes: 0,
        };
        let level = if self.fast {
            crate::compact::LAZY_LEVEL
        } else {
            Some(self.store.header.zstd_level)
        };
        let mut input_done = false;
        loop {
            let mut prepared: Option<Result<Prepared>> = None;
            let mut filled: Result<bool> = Ok(input_done);
            let (snapshot, pending) = (&self.snapshot, &self.pending_chunks);
            let mut fill = || {
                if !input_done {
                    filled = fill_batch(&mut chunker, known, &mut sha, &mut filling, progress);
                }
            };
            match (&self.store.pool, sealed.ranges.is_empty()) {
                (_, true) => fill(),
                (Some(pool), false) => pool.in_place_scope(|s| {
                    s.spawn(|_| prepared = Some(prepare(&sealed, snapshot, pending, level, true)));
                    fill();
                }),
                (None, false) => {
                    prepared = Some(prepare(&sealed, snapshot, pending, level, false));
                    fill();
                }
            }
            // The input's error first: it says what failed (a read of the kit, say), and
            // the batch prepared meanwhile need not be stored.
            input_done = filled?;
            if let Some(p) = prepared {
                self.append_prepared(&sealed, p?, &mut outcome)?;
                sealed.clear();
            }
            if !filling.ranges.is_empty() && (input_done || filling.data.len() >= BATCH_BYTES) {
                std::mem::swap(&mut filling, &mut sealed);
            }
            if input_done && sealed.ranges.is_empty() && filling.ranges.is_empty() {
                break;
            }
        }
        outcome.digest = match hashing {
            FileHashing::Compute => FileDigest(sha.unwrap_or_default().finalize().into()),
            FileHashing::Given(given) => given().ok_or_else(|| StoreError::Io {
                context: "put a file hashed by its producer".into(),
                source: std::io::Error::other("the producer gave no digest of the input"),
            })?,
        };
        let known = self.pending_files.contains_key(&outcome.digest)
            || self
                .snapshot
                .open_table(FILES)?
                .get(outcome.digest.as_bytes())?
                .is_some();
        if !known {
            self.pending_files.insert(
                outcome.digest,
                FileRecord {
                    size: outcome.size,
                    chunks: outcome.chunks.clone(),
                },
            );
        }
        self.totals.files += 1;
        self.totals.bytes += outcome.size;
        Ok(outcome)
    }

    /// Append the new frames of `batch` (prepared by [`prepare`] after every earlier batch
    /// was appended) and account for its chunks.
    fn append_prepared(
        &mut self,
        batch: &Batch,
        prepared: Prepared,
        outcome: &mut PutOutcome,
    ) -> Result<()> {
        let Prepared { ids, fresh, frames } = prepared;
        for (&i, frame) in fresh.iter().zip(frames) {
            let frame = frame.ctx(|| "compress chunk".to_string())?;
            let pack = self.pack_for_append()?;
            let offset = pack.append(&frame)?;
            let pack_number = pack.number;
            let raw_len = batch.ranges[i].1 as u32;
            self.pending_chunks.insert(
                ids[i],
                ChunkLocation {
                    pack: pack_number,
                    offset,
                    frame_len: frame.len() as u32,
                    raw_len,
                },
            );
            outcome.new_chunks += 1;
            outcome.new_raw_bytes += u64::from(raw_len);
            outcome.new_stored_bytes += frame.len() as u64;
            self.totals.new_chunks += 1;
            self.totals.new_raw_bytes += u64::from(raw_len);
            self.totals.new_stored_bytes += frame.len() as u64;
        }
        outcome.size += batch.ranges.iter().map(|r| r.1 as u64).sum::<u64>();
        outcome.chunks.extend_from_slice(&ids);
        Ok(())
    }

    fn pack_for_append(&mut self) -> Result<&mut PackAppender> {
        if let Some(target) = self.store.backend.sealed_pack_target() {
            return self.spool_pack_for_append(target);
        }
        // A fast writer's frames go only to packs it created fast (all of such a pack is
        // recompressed later); a pack it had started before turning fast is finished.
        let fast = self.fast;
        let lazy_created = &self.lazy_created;
        let full = self.current.as_ref().is_some_and(|p| {
            p.len >= PACK_TARGET_LEN || (fast && !lazy_created.contains(&p.number))
        });
        if full && let Some(p) = self.current.take() {
            self.finished.push(p);
        }
        if self.current.is_none() {
            let dir = self.store.packs_dir();
            let packs = self.snapshot.open_table(PACKS)?;
            let last = packs.last()?.map(|(k, v)| (k.value(), v.value()));
            drop(packs);
            let in_use: HashSet<u32> = self.finished.iter().map(|p| p.number).collect();
            // Appending to the last pack: only a normal write to a normal pack (a lazy pack
            // holds lazy frames only, and a fast write starts its own).
            let appendable =
                |n: u32| !self.fast && !self.lazy_committed.contains(&n) && !in_use.contains(&n);
            let appender = match last {
                Some((n, len)) if len < PACK_TARGET_LEN && appendable(n) => {
                    PackAppender::open(&dir, n, Some(len))?
                }
                other => {
                    let n = other
                        .map_or(1, |(n, _)| n + 1)
                        .max(in_use.iter().max().map_or(0, |m| m + 1));
                    // A file with this number can only be the leftover of a writer dropped
                    // without commit in this process: nothing in the index points into it.
                    let stale = dir.join(pack_file_name(n));
                    if stale.exists() {
                        std::fs::remove_file(&stale)
                            .ctx(|| format!("remove {}", stale.display()))?;
                    }
                    if self.fast {
                        self.lazy_created.insert(n);
                    }
                    PackAppender::open(&dir, n, None)?
                }
            };
            self.current = Some(appender);
        }
        match self.current.as_mut() {
            Some(p) => Ok(p),
            None => unreachable!("current pack set above"),
        }
    }

    /// The spool pack to append to on an object-storage store: a full one is uploaded
    /// first (nothing references it until the commit), a new one is numbered past every
    /// pack the index or this writer knows.
    fn spool_pack_for_append(&mut self, target: u64) -> Result<&mut PackAppender> {
        let full = self.current.as_ref().is_some_and(|p| p.len >= target);
        if full && let Some(p) = self.current.take() {
            let mut sealed = self.seal(&p);
            let name = self.store.backend.upload_pack(&sealed)?;
            sealed.uploaded = Some(name);
            // Uploaded: the spool copy is no longer needed (the drop of a writer that never
            // commits leaves the object unreferenced in the bucket).
            std::fs::remove_file(&p.path).ctx(|| format!("remove {}", p.path.display()))?;
            self.sealed.push(sealed);
        }
        if self.current.is_none() {
            let last = self
                .snapshot
                .open_table(PACKS)?
                .last()?
                .map_or(0, |(k, _)| k.value());
            let n = self
                .sealed
                .iter()
                .map(|p| p.number)
                .max()
                .map_or(last, |m| m.max(last))
                + 1;
            let spool = self.store.spool_dir();
            let stale = spool.join(pack_file_name(n));
            if stale.exists() {
                std::fs::remove_file(&stale).ctx(|| format!("remove {}", stale.display()))?;
            }
            self.current = Some(PackAppender::create_spooled(&spool, n)?);
        }
        match self.current.as_mut() {
            Some(p) => Ok(p),
            None => unreachable!("current pack set above"),
        }
    }

    /// The spool pack `p` as a pack to publish, with the frames this writer put in it.
    fn seal(&self, p: &PackAppender) -> SealedPack {
        let mut chunks: Vec<IndexedChunk> = self
            .pending_chunks
            .iter()
            .filter(|(_, loc)| loc.pack == p.number)
            .map(|(id, loc)| IndexedChunk {
                id: *id,
                offset: loc.offset,
                frame_len: loc.frame_len,
                raw_len: loc.raw_len,
            })
            .collect();
        chunks.sort_by_key(|c| c.offset);
        SealedPack {
            number: p.number,
            path: p.path.clone(),
            len: p.len,
            chunks,
            uploaded: None,
        }
    }

    /// `commit` on an object-storage store: publish, then reference (see the module doc).
    fn commit_remote(mut self) -> Result<WriteTotals> {
        self.commit_started = true;
        let mut packs = std::mem::take(&mut self.sealed);
        if let Some(p) = &self.current {
            packs.push(self.seal(p));
        }
        let mut files: Vec<(FileDigest, FileRecord)> = self
            .pending_files
            .iter()
            .map(|(d, r)| (*d, r.clone()))
            .collect();
        files.sort_by_key(|(d, _)| *d);
        let names = if packs.is_empty() && files.is_empty() {
            Vec::new()
        } else {
            self.store.backend.publish(&mut packs, &files)?
        };
        let txn = self.store.db.begin_write()?;
        {
            let mut chunks = txn.open_table(CHUNKS)?;
            for (id, loc) in &self.pending_chunks {
                chunks.insert(id.as_bytes(), &loc.encode())?;
            }
            let mut file_table = txn.open_table(FILES)?;
            for (digest, rec) in &files {
                file_table.insert(digest.as_bytes(), rec.encode().as_slice())?;
            }
            let mut pack_table = txn.open_table(PACKS)?;
            let mut name_table = txn.open_table(REMOTE_PACKS)?;
            for (p, name) in packs.iter().zip(&names) {
                pack_table.insert(p.number, p.len)?;
                name_table.insert(p.number, &name.0)?;
            }
        }
        txn.commit()?;
        for (p, name) in packs.iter().zip(&names) {
            self.store.backend.register(p.number, *name);
        }
        if let Some(p) = self.current.take() {
            std::fs::remove_file(&p.path).ctx(|| format!("remove {}", p.path.display()))?;
        }
        Ok(self.totals)
    }

    /// Make everything put so far durable and visible. Packs are fsynced before the index
    /// transaction that references them commits.
    pub fn commit(mut self) -> Result<WriteTotals> {
        if self.store.is_remote() {
            return self.commit_remote();
        }
        self.commit_started = true;
        let packs: Vec<&PackAppender> = self.finished.iter().chain(self.current.as_ref()).collect();
        for p in &packs {
            p.sync()?;
        }
        if packs.iter().any(|p| p.created) {
            sync_dir(&self.store.packs_dir())?;
        }
        let txn = self.store.db.begin_write()?;
        {
            let mut chunks = txn.open_table(CHUNKS)?;
            for (id, loc) in &self.pending_chunks {
                chunks.insert(id.as_bytes(), &loc.encode())?;
            }
            let mut files = txn.open_table(FILES)?;
            for (digest, rec) in &self.pending_files {
                files.insert(digest.as_bytes(), rec.encode().as_slice())?;
            }
            let mut pack_table = txn.open_table(PACKS)?;
            for p in &packs {
                pack_table.insert(p.number, p.len)?;
            }
            if !self.lazy_created.is_empty() {
                let mut lazy = txn.open_table(crate::compact::LAZY_PACKS)?;
                for n in &self.lazy_created {
                    lazy.insert(*n, ())?;
                }
            }
        }
        txn.commit()?;
        Ok(self.totals)
    }
}

impl Drop for StoreWriter<'_> {
    /// A writer dropped before `commit` undoes its appends (see the module doc). Errors are
    /// ignored: whatever is left past the committed lengths is cut at the next open.
    fn drop(&mut self) {
        if self.commit_started {
            return;
        }
        let packs: Vec<&PackAppender> = self.finished.iter().chain(self.current.as_ref()).collect();
        let numbers: Vec<u32> = packs.iter().map(|p| p.number).collect();
        self.store.backend.forget(&numbers);
        for p in packs {
            let _ = p.roll_back();
        }
    }
}
