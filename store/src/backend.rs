//! Where committed pack bytes live: the [`PackBackend`] trait and its local implementation.
//!
//! Two implementations exist:
//! - [`LocalPacks`] (the default, what every command uses without configuration): pack
//!   files under `STORE/packs/`, appended in place, read with `pread`;
//! - `remote::S3Packs` (cargo feature `aws`, `--store-url s3://bucket/prefix`): immutable
//!   packs named by their BLAKE3 in an S3-compatible bucket, written once with
//!   create-only semantics and read with ranged GETs, plus one pack-index object per pack.
//!
//! Invariants every backend keeps:
//! - Bytes a reader gets for `(pack, offset, len)` are the bytes a writer put there; a
//!   backend never returns bytes of another pack or fills a short read.
//! - [`PackBackend::publish`] returns only after the packs and their index objects are
//!   durable where the backend keeps them: the caller commits index entries that
//!   reference them only after it returns (data before references).
//! - Backend calls are blocking: an asynchronous client keeps its runtime to itself, so
//!   the store API stays synchronous for its callers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::id::FileDigest;
use crate::index::FileRecord;
use crate::pack::{PackFiles, list_pack_files};
use crate::pack_index::{IndexedChunk, PackIndex, PackName};

/// How to reach an object-storage store (`--store-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// A pack is sealed and uploaded once it reaches this many bytes.
    pub pack_target: u64,
}

/// Default target size of an object-storage pack: big enough that requests per GiB stay
/// low (about 32 PUTs), small enough to be one PUT and to hold in memory while uploading.
pub const DEFAULT_REMOTE_PACK_TARGET: u64 = 32 << 20;

impl RemoteOptions {
    /// Options for `url` with the default pack target.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteOptions {
            url: url.into(),
            pack_target: DEFAULT_REMOTE_PACK_TARGET,
        }
    }
}

/// Requests a backend sent, by kind, and the bytes they moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// GETs (ranged or whole).
    pub get: u64,
    /// PUTs (packs, index objects, records), retries not included.
    pub put: u64,
    /// LIST pages (one per 1000 keys listed, at least one per listing).
    pub list: u64,
    /// HEADs.
    pub head: u64,
    /// Bytes sent in PUT bodies.
    pub bytes_put: u64,
    /// Bytes received in GET bodies.
    pub bytes_got: u64,
}

/// A sealed pack waiting to be published: a complete pack file in the spool directory.
#[derive(Debug)]
pub struct SealedPack {
    /// Its local number (what chunk locations in the redb index name).
    pub number: u32,
    /// The spool file.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
    /// Its frames.
    pub chunks: Vec<IndexedChunk>,
    /// Set when the pack object is already in the bucket (uploaded when it filled up).
    pub uploaded: Option<PackName>,
}

/// What a bucket holds, as [`PackBackend::listing`] reads it.
#[derive(Debug, Default)]
pub struct BucketListing {
    /// Pack objects present, with their lengths.
    pub packs: Vec<(PackName, u64)>,
    /// Index objects that decoded and whose name matches their bytes.
    pub indexes: Vec<PackIndex>,
    /// Index objects refused, with why.
    pub refused: Vec<(String, String)>,
}

/// Where committed pack bytes live; see the module doc.
pub trait PackBackend: Send + Sync {
    /// `local`, or the store URL.
    fn describe(&self) -> String;

    /// Read `len` bytes of committed pack `pack` at `offset` into `buf` (replacing its
    /// contents). `Ok(Err(have))` with the pack's length when it ends first.
    fn read_at(
        &self,
        pack: u32,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<std::result::Result<(), u64>>;

    /// `Some(target)` when packs are immutable objects sealed at `target` bytes and
    /// published with [`PackBackend::publish`]; `None` for packs appended in place.
    fn sealed_pack_target(&self) -> Option<u64> {
        None
    }

    /// Whether a sequential reader should fetch runs of adjacent frames at once (each
    /// read is a request, not a `pread`).
    fn prefers_windows(&self) -> bool {
        false
    }

    /// Upload a pack that filled up (before the commit; nothing references it yet).
    fn upload_pack(&self, _pack: &SealedPack) -> Result<PackName> {
        Err(crate::StoreError::Unsupported(
            "sealed packs on the local backend".into(),
        ))
    }

    /// Make `packs` and their index objects (with `files` in the last one) durable.
    /// Returns each pack's name, in order.
    fn publish(
        &self,
        _packs: &mut [SealedPack],
        _files: &[(FileDigest, FileRecord)],
    ) -> Result<Vec<PackName>> {
        Err(crate::StoreError::Unsupported(
            "publishing packs on the local backend".into(),
        ))
    }

    /// Learn that local pack `number` is the object `name` (after a commit or reindex).
    fn register(&self, _number: u32, _name: PackName) {}

    /// Forget open handles or names of `packs` (before they are deleted or renumbered).
    fn forget(&self, packs: &[u32]);

    /// Pack numbers whose bytes are present, among those the index names.
    fn present_packs(&self) -> Result<HashSet<u32>>;

    /// Keep `holder`'s record `key` where the store's truth is (no-op on the local
    /// backend, whose redb index is the truth). Create-only: when a record with this key
    /// exists already, the existing one stays and `Ok(false)` is returned.
    fn put_record(&self, _holder: &str, _key: &[u8; 32], _bytes: &[u8]) -> Result<bool> {
        Ok(true)
    }

    /// `holder`'s records (empty on the local backend).
    fn records(&self, _holder: &str) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        Ok(Vec::new())
    }

    /// Everything needed to rebuild the redb index (object-storage backends only).
    fn listing(&self) -> Result<BucketListing> {
        Err(crate::StoreError::Unsupported(
            "reindex of a local store (its redb index is the truth)".into(),
        ))
    }

    /// Requests sent so far (`None` for the local backend, which sends none).
    fn requests(&self) -> Option<RequestCounts> {
        None
    }
}

/// Pack files in a local directory.
pub struct LocalPacks {
    dir: PathBuf,
    files: PackFiles,
}

impl LocalPacks {
    /// The packs in `dir`.
    pub fn new(dir: &Path) -> Self {
        LocalPacks {
            dir: dir.to_path_buf(),
            files: PackFiles::default(),
        }
    }
}

impl PackBackend for LocalPacks {
    fn describe(&self) -> String {
        "local".into()
    }

    fn read_at(
        &self,
        pack: u32,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<std::result::Result<(), u64>> {
        self.files.read_at(&self.dir, pack, offset, len, buf)
    }

    fn forget(&self, packs: &[u32]) {
        self.files.forget(packs.iter().copied());
    }

    fn present_packs(&self) -> Result<HashSet<u32>> {
        Ok(list_pack_files(&self.dir)?
            .into_iter()
            .map(|p| p.0)
            .collect())
    }
}
