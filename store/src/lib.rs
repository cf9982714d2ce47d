//! `ouk-store`: the content-addressed chunk store under every ouk root.
//!
//! Files are cut into content-defined chunks ([`chunker`], FastCDC 2020 with pinned
//! parameters), each named by the BLAKE3-256 of its bytes ([`ChunkId`]). New chunks are
//! compressed into self-verifying frames ([`frame`]) appended to pack files ([`pack`]); the
//! redb index ([`index`]) maps chunk ids to frame locations and file SHA-256 digests to
//! chunk lists. Identical content is stored once, whatever file or generation it is in.
//!
//! Invariants:
//! - **Durability order.** Pack bytes are fsynced before the index transaction that points
//!   at them commits. A crash can leave unreferenced bytes at a pack's tail, never an index
//!   entry without its data. [`Store::open`] cuts such tails off and deletes pack files the
//!   index does not know.
//! - **Verified reads.** Every chunk read is decompressed and re-hashed against its id; a
//!   file read is also checked against its SHA-256. Wrong bytes are an error, never output.
//! - **Pinned format.** The store header records the chunker parameters; opening a store
//!   made with others is refused rather than silently mixing chunk boundaries.
//! - **Pinned files are live.** [`Store::gc`] keeps every file a holder pinned ([`pins`]),
//!   whatever live set its caller passes.
//! - **One process.** redb locks the index file; a second process opening the same store
//!   gets [`StoreError::Locked`]. Within a process one [`StoreWriter`] runs at a time.

pub mod chunker;
pub mod envelope;
mod error;
pub mod frame;
mod id;
pub mod index;
mod maintenance;
pub mod pack;
pub mod pins;
mod writer;

use redb::ReadableDatabase;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::Digest;

pub use chunker::{Chunker, ChunkerParams};
pub use error::{Result, StoreError};
pub use id::{ChunkId, FileDigest, ParseDigestError, deserialize_digest, serialize_digest};
pub use index::{ChunkLocation, FileRecord, StoreHeader};
pub use maintenance::{DamagedChunk, FsckReport, GcReport, IndexCheck, RecoveryReport, StoreStats};
pub use writer::{BATCH_BYTES, PutOutcome, StoreWriter, WriteTotals};

use error::IoContext;
use index::{CHUNKS, FILES, HEADER_KEY, META, PACKS};
use pack::PackFiles;

/// Frames longer than this do not keep their buffer for the next read.
const FRAME_BUF_KEEP: usize = 1 << 20;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            zstd_level: 3,
            index_cache_bytes: 32 << 20,
        }
    }
}

/// An open chunk store (a directory holding `index.redb` and `packs/`).
pub struct Store {
    dir: PathBuf,
    db: redb::Database,
    header: StoreHeader,
    chunker: Chunker,
    packs: PackFiles,
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
            packs: PackFiles::default(),
            pool,
            writer_lock: Mutex::new(()),
            recovery: RecoveryReport::default(),
        };
        store.recovery = store.recover()?;
        Ok(store)
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
        let damaged = |source| StoreError::DamagedChunk {
            id: *id,
            pack: loc.pack,
            offset: loc.offset,
            source,
        };
        // The length comes from the index, which may be damaged: never allocate for more
        // than a frame can be.
        if u64::from(loc.frame_len) > frame::MAX_FRAME_LEN {
            return Err(damaged(frame::FrameError::Truncated {
                need: u64::from(loc.frame_len),
                have: frame::MAX_FRAME_LEN,
            }));
        }
        let h = FRAME_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let read = self.packs.read_at(
                &self.packs_dir(),
                loc.pack,
                loc.offset,
                loc.frame_len as usize,
                &mut buf,
            )?;
            if let Err(have) = read {
                return Err(damaged(frame::FrameError::Truncated {
                    need: loc.offset + u64::from(loc.frame_len),
                    have,
                }));
            }
            let h = frame::decode_frame(&buf, out).map_err(damaged);
            // A reused buffer, but not a huge one kept forever after an outsized frame.
            if buf.capacity() > FRAME_BUF_KEEP {
                *buf = Vec::new();
            }
            h
        })?;
        if h.id != *id || h.raw_len != loc.raw_len {
            return Err(damaged(frame::FrameError::HashMismatch {
                expected: *id,
                actual: h.id,
            }));
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
        let mut sha = sha2::Sha256::new();
        let mut buf = Vec::with_capacity(self.chunker.params().max_size as usize);
        let mut total = 0u64;
        for id in chunks {
            let loc = table
                .get(id.as_bytes())?
                .map(|v| ChunkLocation::decode(v.value()))
                .ok_or(StoreError::MissingChunk(*id))?;
            buf.clear();
            self.read_frame(id, &loc, &mut buf)?;
            sha.update(&buf);
            out.write_all(&buf).ctx(|| "write file bytes".to_string())?;
            total += buf.len() as u64;
        }
        if let Some(expected) = expect {
            let actual = FileDigest(sha.finalize().into());
            if actual != *expected {
                return Err(StoreError::FileMismatch {
                    expected: *expected,
                    actual,
                });
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
