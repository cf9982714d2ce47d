//! `ouk-store`: the content-addressed chunk store under every ouk root.
//!
//! Files are cut into content-defined chunks ([`chunker`], FastCDC 2020 with pinned
//! parameters), each named by the BLAKE3-256 of its bytes ([`ChunkId`]). New chunks are
//! compressed into self-verifying frames ([`frame`]) appended to pack files ([`pack`]); the
//! redb index ([`index`]) maps chunk ids to frame locations and file SHA-256 digests to
//! chunk lists. Identical content is stored once, whatever file or generation it is in.
//!
//! Packs live where a [`PackBackend`] keeps them ([`backend`]): in the store directory (the
//! default), or as immutable objects in an S3-compatible bucket (feature `aws`,
//! [`StoreOptions::remote`]), where the bucket is the truth and the redb index a cache that
//! [`Store::reindex`] rebuilds ([`pack_index`]).
//!
//! Invariants:
//! - **Durability order.** Pack bytes are fsynced before the index transaction that points
//!   at them commits. A crash can leave unreferenced bytes at a pack's tail, never an index
//!   entry without its data. [`Store::open`] cuts such tails off and deletes pack files the
//!   index does not know. On object storage the packs and their index objects are in
//!   the bucket before the index transaction that references them commits.
//! - **Verified reads.** Every chunk read is decompressed and re-hashed against its id; a
//!   file read is also checked against its SHA-256. Wrong bytes are an error, never output.
//! - **Pinned format.** The store header records the chunker parameters; opening a store
//!   made with others is refused rather than silently mixing chunk boundaries.
//! - **Pinned files are live.** [`Store::gc`] keeps every file a holder pinned ([`pins`]),
//!   whatever live set its caller passes.
//! - **One process.** redb locks the index file; a second process opening the same store
//!   gets [`StoreError::Locked`]. Within a process one [`StoreWriter`] runs at a time.

pub mod backend;
pub mod chunker;
mod class;
pub mod compact;
pub mod envelope;
mod error;
pub mod frame;
pub mod fsutil;
mod id;
pub mod index;
mod maintenance;
pub mod mapping;
pub mod pack;
pub mod pack_index;
pub mod pins;
pub mod presized;
pub mod progress;
mod reindex;
#[cfg(feature = "aws")]
pub mod remote;
pub mod units;
pub mod writeback;
mod writer;

use redb::{ReadableDatabase, ReadableTable};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use backend::{PackBackend, RemoteOptions, RequestCounts};
pub use chunker::{Chunker, ChunkerParams};
pub use class::ErrorClass;
pub use compact::CompactReport;
pub use error::{RemoteFailure, Result, StoreError};
pub use id::{ChunkId, FileDigest, ParseDigestError, deserialize_digest, serialize_digest};
pub use index::{ChunkLocation, FileRecord, StoreHeader};
pub use maintenance::{DamagedChunk, FsckReport, GcReport, IndexCheck, RecoveryReport, StoreStats};
pub use reindex::ReindexReport;
pub use writer::{BATCH_BYTES, FileHashing, PutOutcome, StoreWriter, WriteTotals};

use backend::LocalPacks;
use error::IoContext;
use index::{BACKEND_KEY, CHUNKS, FILES, HEADER_KEY, META, PACKS, REMOTE_PACKS};

/// Frames longer than this do not keep their buffer for the next read.
const FRAME_BUF_KEEP: usize = 1 << 20;

/// Largest run of adjacent frames a sequential reader fetches with one request from a
/// backend that [prefers windows](PackBackend::prefers_windows).
pub const READ_WINDOW: u64 = 8 << 20;

/// What [`Store::read_windows`] calls per frame: its index and its verified chunk bytes, or
/// why it failed; an error it returns stops the walk.
pub(crate) type FrameVisitor<'a> = dyn FnMut(usize, Result<&[u8]>) -> Result<()> + 'a;

/// Bytes between two frames of one pack that a windowed reader reads through rather than
/// send another request (a GET costs far more than 128 KiB on any link worth using).
pub const SPAN_GAP: u64 = 128 << 10;

thread_local! {
    /// Each reading thread's buffer for a frame's stored bytes (reused across reads).
    static FRAME_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Threads for hashing and compression (1 = everything on the calling thread).
    pub threads: usize,
    /// zstd level for new frames (recorded in the header when the store is created).
    pub zstd_level: i32,
    /// redb page cache, bytes.
    pub index_cache_bytes: usize,
    /// Keep packs in object storage (`None`: in the store directory, the default).
    pub remote: Option<RemoteOptions>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            zstd_level: 3,
            index_cache_bytes: 32 << 20,
            remote: None,
        }
    }
}

/// An open chunk store (a directory holding `index.redb` and `packs/`).
pub struct Store {
    dir: PathBuf,
    db: redb::Database,
    header: StoreHeader,
    chunker: Chunker,
    backend: Box<dyn PackBackend>,
    pool: Option<rayon::ThreadPool>,
    writer_lock: Mutex<()>,
    recovery: RecoveryReport,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open the store in `dir`, creating it when absent, and recover from any interrupted
    /// write (see [`Store::recovery`]).
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_with(dir, options, &connect_remote)
    }

    /// [`Store::open`], with `connect` making the backend when `options.remote` is set
    /// (tests hand in an in-memory object store this way).
    pub fn open_with(
        dir: &Path,
        options: StoreOptions,
        connect: &dyn Fn(&RemoteOptions) -> Result<Box<dyn PackBackend>>,
    ) -> Result<Store> {
        // The store holds every file of every kit, secrets included: private to its owner.
        fsutil::ensure_private_dir(dir)
            .ctx(|| format!("create store directory {}", dir.display()))?;
        let packs = dir.join("packs");
        fs::create_dir_all(&packs).ctx(|| format!("create store directory {}", packs.display()))?;
        let index_path = dir.join("index.redb");
        let db = redb::Builder::new()
            .set_cache_size(options.index_cache_bytes)
            .create(&index_path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: index_path.clone(),
                },
                other => other.into(),
            })?;
        let wanted = StoreHeader {
            chunker: ChunkerParams::V1,
            zstd_level: options.zstd_level,
        };
        // Read first: opening an existing store must write nothing (an import of what is
        // already current is a no-op, down to the index file).
        let existing = {
            let txn = db.begin_read()?;
            match txn.open_table(META) {
                Ok(meta) => meta.get(HEADER_KEY)?.map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let header = match existing {
            Some(bytes) => StoreHeader::decode(&bytes).map_err(|e| StoreError::Incompatible {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?,
            None => {
                let txn = db.begin_write()?;
                txn.open_table(META)?
                    .insert(HEADER_KEY, wanted.encode().as_slice())?;
                txn.open_table(CHUNKS)?;
                txn.open_table(PACKS)?;
                txn.open_table(FILES)?;
                txn.commit()?;
                wanted.clone()
            }
        };
        let backend = open_backend(dir, &db, options.remote.as_ref(), connect)?;
        if header.chunker != ChunkerParams::V1 {
            return Err(StoreError::Incompatible {
                path: dir.to_path_buf(),
                message: format!(
                    "made with chunker {:?}; this ouk chunks with {:?}",
                    header.chunker,
                    ChunkerParams::V1
                ),
            });
        }
        let pool = if options.threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(options.threads)
                    .thread_name(|i| format!("ouk-store-{i}"))
                    .build()
                    .map_err(|e| StoreError::Io {
                        context: "start store threads".into(),
                        source: std::io::Error::other(e),
                    })?,
            )
        } else {
            None
        };
        let mut store = Store {
            dir: dir.to_path_buf(),
            db,
            chunker: Chunker::new(header.chunker),
            header,
            backend,
            pool,
            writer_lock: Mutex::new(()),
            recovery: RecoveryReport::default(),
        };
        store.recovery = if store.is_remote() {
            store.clean_spool()?;
            RecoveryReport::default()
        } else {
            store.recover()?
        };
        Ok(store)
    }

    /// Whether packs live in object storage.
    pub fn is_remote(&self) -> bool {
        self.backend.sealed_pack_target().is_some()
    }

    /// `local`, or the store URL.
    pub fn backend_description(&self) -> String {
        self.backend.describe()
    }

    /// Requests sent to object storage by this process (`None` for a local store).
    pub fn requests(&self) -> Option<RequestCounts> {
        self.backend.requests()
    }

    /// Keep `holder`'s record `key` where the store's truth is: in the bucket for an
    /// object-storage store (create-only: `Ok(false)` when one was there already and
    /// stays), nowhere else for a local one (its redb index is the truth). Call it after
    /// the files the record names were committed and before the holder's own index
    /// transaction, so a record in the bucket names only data in the bucket.
    pub fn put_record(&self, holder: &str, key: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        self.backend.put_record(holder, key, bytes)
    }

    /// `holder`'s records kept by [`Store::put_record`] (empty for a local store).
    pub fn records(&self, holder: &str) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        self.backend.records(holder)
    }

    /// Where packs being written wait for their upload (object-storage stores).
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Delete spooled packs an interrupted writer left: nothing references them.
    fn clean_spool(&self) -> Result<()> {
        let spool = self.spool_dir();
        fs::create_dir_all(&spool).ctx(|| format!("create {}", spool.display()))?;
        for entry in fs::read_dir(&spool).ctx(|| format!("list {}", spool.display()))? {
            let path = entry.ctx(|| format!("list {}", spool.display()))?.path();
            fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        }
        Ok(())
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding pack files.
    pub fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs")
    }

    /// The store's header.
    pub fn header(&self) -> &StoreHeader {
        &self.header
    }

    /// The chunker this store cuts with.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// What opening the store had to repair.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The redb database. Other crates keep their own tables here (named with their own
    /// prefix) so a generation record and the store it references share one index; they
    /// must not write the `store_*` tables.
    pub fn database(&self) -> &redb::Database {
        &self.db
    }

    /// Start a batch of puts that [`StoreWriter::commit`] makes durable at once.
    pub fn writer(&self) -> Result<StoreWriter<'_>> {
        StoreWriter::new(self)
    }

    /// Put one file and commit.
    pub fn put_file(&self, path: &Path) -> Result<PutOutcome> {
        let mut w = self.writer()?;
        let out = w.put_file(path, &mut |_| {})?;
        w.commit()?;
        Ok(out)
    }

    /// Put one stream and commit.
    pub fn put_reader(&self, reader: impl std::io::Read) -> Result<PutOutcome> {
        let mut w = self.writer()?;
        let out = w.put_reader(reader, &mut |_| {})?;
        w.commit()?;
        Ok(out)
    }

    /// Where chunk `id` is stored, if it is.
    pub fn locate(&self, id: &ChunkId) -> Result<Option<ChunkLocation>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        Ok(table
            .get(id.as_bytes())?
            .map(|v| ChunkLocation::decode(v.value())))
    }

    /// The cuts of file `digest` ([`chunker::FileCuts`]), if the store has it and every
    /// chunk of it.
    pub fn file_cuts(&self, digest: &FileDigest) -> Result<Option<chunker::FileCuts>> {
        let Some(record) = self.file_record(digest)? else {
            return Ok(None);
        };
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        let mut lengths = Vec::with_capacity(record.chunks.len());
        for id in &record.chunks {
            match table.get(id.as_bytes())? {
                Some(v) => lengths.push(u64::from(ChunkLocation::decode(v.value()).raw_len)),
                None => return Ok(None),
            }
        }
        Ok(Some(chunker::FileCuts::new(lengths)))
    }

    /// The record of file `digest`, if the store has it.
    pub fn file_record(&self, digest: &FileDigest) -> Result<Option<FileRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILES)?;
        match table.get(digest.as_bytes())? {
            None => Ok(None),
            Some(v) => FileRecord::decode(v.value())
                .map(Some)
                .map_err(|e| StoreError::Record {
                    what: format!("file {digest}"),
                    message: e.to_string(),
                }),
        }
    }

    /// Decode and verify the frame at `loc`, appending the chunk's bytes to `out`.
    pub(crate) fn read_frame(
        &self,
        id: &ChunkId,
        loc: &ChunkLocation,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let damaged = damaged_at(id, loc);
        // The length comes from the index, which may be damaged: never allocate for more
        // than a frame can be.
        if u64::from(loc.frame_len) > frame::MAX_FRAME_LEN {
            return Err(damaged(frame::FrameError::Truncated {
                need: u64::from(loc.frame_len),
                have: frame::MAX_FRAME_LEN,
            }));
        }
        FRAME_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let read =
                self.backend
                    .read_at(loc.pack, loc.offset, loc.frame_len as usize, &mut buf)?;
            if let Err(have) = read {
                return Err(damaged(frame::FrameError::Truncated {
                    need: loc.offset + u64::from(loc.frame_len),
                    have,
                }));
            }
            let h = decode_verified(id, loc, &buf, out);
            // A reused buffer, but not a huge one kept forever after an outsized frame.
            if buf.capacity() > FRAME_BUF_KEEP {
                *buf = Vec::new();
            }
            h
        })?;
        Ok(())
    }

    /// Read `frames` and call `each` with every frame's index and its verified chunk bytes
    /// (or why it failed), in the order given. For backends where each read is a request:
    /// the frames are taken in batches of at most [`READ_WINDOW`] frame bytes, and each
    /// batch's frames are fetched per pack as spans of nearby frames (gaps up to
    /// [`SPAN_GAP`] are read through), one ranged GET per span, whatever order the file
    /// names them in (a deduplicated file jumps between packs).
    pub(crate) fn read_windows(
        &self,
        frames: &[(ChunkId, ChunkLocation)],
        each: &mut FrameVisitor<'_>,
    ) -> Result<()> {
        let mut chunk = Vec::new();
        let mut start = 0;
        while start < frames.len() {
            let mut end = start;
            let mut batch_bytes = 0u64;
            while end < frames.len()
                && (end == start || batch_bytes + u64::from(frames[end].1.frame_len) <= READ_WINDOW)
            {
                batch_bytes += u64::from(frames[end].1.frame_len);
                end += 1;
            }
            // Plan: the batch's frames by (pack, offset), merged into spans.
            let mut order: Vec<usize> = (start..end).collect();
            order.sort_by_key(|&i| (frames[i].1.pack, frames[i].1.offset));
            // (pack, span start, span end) and, per frame, its span.
            let mut spans: Vec<(u32, u64, u64)> = Vec::new();
            let mut span_of = vec![usize::MAX; end - start];
            for &i in &order {
                let loc = frames[i].1;
                // Offsets come from the index, which may be damaged: never overflow.
                let frame_end = loc.offset.saturating_add(u64::from(loc.frame_len));
                if u64::from(loc.frame_len) > frame::MAX_FRAME_LEN {
                    continue; // read alone below, where the bound is reported as damage
                }
                match spans.last_mut() {
                    Some((pack, from, to))
                        if *pack == loc.pack
                            && loc.offset >= *from
                            && loc.offset <= to.saturating_add(SPAN_GAP)
                            && frame_end.max(*to) - *from <= 2 * READ_WINDOW =>
                    {
                        *to = frame_end.max(*to);
                    }
                    _ => spans.push((loc.pack, loc.offset, frame_end)),
                }
                span_of[i - start] = spans.len() - 1;
            }
            let mut fetched: Vec<Option<Vec<u8>>> = Vec::with_capacity(spans.len());
            for &(pack, from, to) in &spans {
                let mut bytes = Vec::new();
                // A span the pack does not hold whole is read frame by frame below, which
                // tells which frames are cut.
                let whole = self
                    .backend
                    .read_at(pack, from, (to - from) as usize, &mut bytes)?
                    .is_ok();
                fetched.push(whole.then_some(bytes));
            }
            for i in start..end {
                let (id, loc) = &frames[i];
                chunk.clear();
                let span = span_of[i - start];
                let r = match (spans.get(span), fetched.get(span)) {
                    (Some(&(_, from, _)), Some(Some(bytes))) => {
                        let at = (loc.offset - from) as usize;
                        decode_verified(
                            id,
                            loc,
                            &bytes[at..at + loc.frame_len as usize],
                            &mut chunk,
                        )
                    }
                    _ => self.read_frame(id, loc, &mut chunk),
                };
                each(i, r.map(|_| chunk.as_slice()))?;
            }
            start = end;
        }
        Ok(())
    }

    /// Append chunk `id`'s verified bytes to `out`.
    pub fn read_chunk(&self, id: &ChunkId, out: &mut Vec<u8>) -> Result<()> {
        let loc = self.locate(id)?.ok_or(StoreError::MissingChunk(*id))?;
        self.read_frame(id, &loc, out)
    }

    /// Write file `digest` to `out`, verifying every chunk and the whole-file SHA-256.
    /// Returns the byte count. On a verification error some bytes may have been written:
    /// callers write into a temporary file and publish it only on success.
    pub fn read_file(&self, digest: &FileDigest, out: &mut dyn Write) -> Result<u64> {
        let rec = self
            .file_record(digest)?
            .ok_or(StoreError::MissingFile(*digest))?;
        self.read_chunks(&rec.chunks, Some(digest), out)
    }

    /// `length` bytes of file `digest` starting at `offset`, every chunk touched verified.
    /// Short when the file ends first.
    pub fn read_file_range(
        &self,
        digest: &FileDigest,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let rec = self
            .file_record(digest)?
            .ok_or(StoreError::MissingFile(*digest))?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        let end = offset.saturating_add(length).min(rec.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut buf = Vec::new();
        let mut pos = 0u64;
        for id in &rec.chunks {
            if pos >= end {
                break;
            }
            let loc = table
                .get(id.as_bytes())?
                .map(|v| ChunkLocation::decode(v.value()))
                .ok_or(StoreError::MissingChunk(*id))?;
            let chunk_end = pos + u64::from(loc.raw_len);
            if chunk_end > offset {
                buf.clear();
                self.read_frame(id, &loc, &mut buf)?;
                let from = offset.saturating_sub(pos) as usize;
                let to = (end - pos).min(buf.len() as u64) as usize;
                out.extend_from_slice(&buf[from..to]);
            }
            pos = chunk_end;
        }
        Ok(out)
    }

    /// Write the concatenation of `chunks` to `out`, verifying each chunk, and the whole
    /// against `expect` when given.
    pub fn read_chunks(
        &self,
        chunks: &[ChunkId],
        expect: Option<&FileDigest>,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHUNKS)?;
        let mut out = fsutil::HashingWriter::new(out);
        if self.backend.prefers_windows() {
            // One request per run of adjacent frames, READ_WINDOW at most in memory.
            let mut batch = Vec::new();
            let mut batch_bytes = 0u64;
            let mut flush = |batch: &mut Vec<(ChunkId, ChunkLocation)>| -> Result<()> {
                self.read_windows(batch, &mut |_, bytes| {
                    out.write_all(bytes?)
                        .ctx(|| "write file bytes".to_string())?;
                    Ok(())
                })?;
                batch.clear();
                Ok(())
            };
            for id in chunks {
                let loc = table
                    .get(id.as_bytes())?
                    .map(|v| ChunkLocation::decode(v.value()))
                    .ok_or(StoreError::MissingChunk(*id))?;
                batch_bytes += u64::from(loc.frame_len);
                batch.push((*id, loc));
                if batch_bytes >= READ_WINDOW {
                    flush(&mut batch)?;
                    batch_bytes = 0;
                }
            }
            flush(&mut batch)?;
            return check_file_digest(out, expect);
        }
        let mut buf = Vec::with_capacity(self.chunker.params().max_size as usize);
        for id in chunks {
            let loc = table
                .get(id.as_bytes())?
                .map(|v| ChunkLocation::decode(v.value()))
                .ok_or(StoreError::MissingChunk(*id))?;
            buf.clear();
            self.read_frame(id, &loc, &mut buf)?;
            out.write_all(&buf).ctx(|| "write file bytes".to_string())?;
        }
        check_file_digest(out, expect)
    }
}

/// The bytes `out` passed on, checked against `expect` when given.
fn check_file_digest(
    out: fsutil::HashingWriter<impl Write>,
    expect: Option<&FileDigest>,
) -> Result<u64> {
    let (digest, total, _) = out.finish();
    if let Some(expected) = expect {
        let actual = FileDigest(digest);
        if actual != *expected {
            return Err(StoreError::FileMismatch {
                expected: *expected,
                actual,
            });
        }
    }
    Ok(total)
}

/// The error for chunk `id`'s frame at `loc` failing to read or decode.
fn damaged_at(
    id: &ChunkId,
    loc: &ChunkLocation,
) -> impl Fn(frame::FrameError) -> StoreError + Copy {
    let (id, pack, offset) = (*id, loc.pack, loc.offset);
    move |source| StoreError::DamagedChunk {
        id,
        pack,
        offset,
        source,
    }
}

/// Decode the frame `bytes` of chunk `id` at `loc`, check it is that chunk, and append its
/// bytes to `out`.
fn decode_verified(
    id: &ChunkId,
    loc: &ChunkLocation,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let damaged = damaged_at(id, loc);
    let h = frame::decode_frame(bytes, out).map_err(damaged)?;
    if h.id != *id || h.raw_len != loc.raw_len {
        return Err(damaged(frame::FrameError::HashMismatch {
            expected: *id,
            actual: h.id,
        }));
    }
    Ok(())
}

/// The backend `remote` asks for, checked against what the store was created with (a
/// store's packs are all in one place: a local store opened with a store URL, or an
/// object-storage cache opened without one, is refused).
fn open_backend(
    dir: &Path,
    db: &redb::Database,
    remote: Option<&RemoteOptions>,
    connect: &dyn Fn(&RemoteOptions) -> Result<Box<dyn PackBackend>>,
) -> Result<Box<dyn PackBackend>> {
    let incompatible = |message: String| StoreError::Incompatible {
        path: dir.to_path_buf(),
        message,
    };
    let (recorded, has_chunks) = {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let recorded = meta
            .get(BACKEND_KEY)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        let has_chunks = txn.open_table(CHUNKS)?.first()?.is_some();
        (recorded, has_chunks)
    };
    match (remote, recorded) {
        (None, None) => Ok(Box::new(LocalPacks::new(&dir.join("packs")))),
        (None, Some(url)) => Err(StoreError::PacksElsewhere {
            path: dir.to_path_buf(),
            url,
        }),
        (Some(r), Some(url)) if r.url != url => Err(incompatible(format!(
            "it caches the index of {url}, not {}",
            r.url
        ))),
        (Some(_), None) if has_chunks => Err(StoreError::LocalPacks {
            path: dir.to_path_buf(),
        }),
        (Some(r), recorded) => {
            let backend = connect(r)?;
            if recorded.is_none() {
                // First open of this cache: record where its packs are.
                let txn = db.begin_write()?;
                txn.open_table(META)?
                    .insert(BACKEND_KEY, r.url.as_bytes())?;
                txn.open_table(REMOTE_PACKS)?;
                txn.commit()?;
            }
            let txn = db.begin_read()?;
            for row in txn.open_table(REMOTE_PACKS)?.iter()? {
                let (k, v) = row?;
                backend.register(k.value(), pack_index::PackName(*v.value()));
            }
            Ok(backend)
        }
    }
}

#[cfg(feature = "aws")]
fn connect_remote(r: &RemoteOptions) -> Result<Box<dyn PackBackend>> {
    Ok(Box::new(remote::S3Packs::connect(r)?))
}

#[cfg(not(feature = "aws"))]
fn connect_remote(r: &RemoteOptions) -> Result<Box<dyn PackBackend>> {
    Err(StoreError::RemoteUrl {
        url: r.url.clone(),
        message: "this ouk was built without object-storage support (cargo feature `aws`)".into(),
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_compact;
#[cfg(all(test, feature = "aws"))]
mod tests_remote;
