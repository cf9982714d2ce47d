//! The store's error type. Every variant says what was being done and to what.

use std::io;
use std::path::PathBuf;

use crate::class::ErrorClass;
use crate::frame::FrameError;
use crate::id::{ChunkId, FileDigest};

/// What went wrong with a request to object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteFailure {
    /// The keys were refused (wrong access key, wrong secret, no permission).
    AccessDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// An object the index names is not in the bucket.
    NotFound,
    /// Anything else, after the retries: a timeout, the server gone, a 5xx.
    Request,
}

impl RemoteFailure {
    fn hint(&self) -> &'static str {
        match self {
            RemoteFailure::AccessDenied => {
                "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            }
            RemoteFailure::NoSuchBucket => "the bucket does not exist",
            RemoteFailure::NotFound => "object not found (run `ouk store reindex`)",
            RemoteFailure::Request => "request failed",
        }
    }
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.hint())
    }
}

/// Errors from the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The redb index failed.
    #[error("store index: {0}")]
    Index(#[from] redb::Error),
    /// The index file is damaged: redb met a page or structure it cannot read.
    #[error("store index is damaged: {message} (run `ouk store fsck`)")]
    IndexDamaged {
        /// What redb reported.
        message: String,
    },
    /// Another process has the store open.
    #[error("store {path} is in use by another process")]
    Locked {
        /// The index file.
        path: PathBuf,
    },
    /// The store was created with other chunker parameters or a newer format.
    #[error("store {path}: {message}")]
    Incompatible {
        /// The store directory.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
    /// An object-storage store's cache was opened as a local store: its packs are elsewhere.
    #[error("store {path}: its packs are in {url}")]
    PacksElsewhere {
        /// The store directory.
        path: PathBuf,
        /// Where its packs are (the store URL it was created with).
        url: String,
    },
    /// A local store with packs of its own was opened as an object-storage store's cache.
    #[error("store {path}: it is a local store with packs of its own")]
    LocalPacks {
        /// The store directory.
        path: PathBuf,
    },
    /// A record in the index did not decode.
    #[error("store record {what} is damaged: {message}")]
    Record {
        /// Which record.
        what: String,
        /// Why it did not decode.
        message: String,
    },
    /// A chunk the caller needs is not in the index.
    #[error("chunk {0} is missing from the store")]
    MissingChunk(ChunkId),
    /// A chunk's stored bytes do not verify.
    #[error("chunk {id} (pack {pack}, offset {offset}) is damaged: {source}")]
    DamagedChunk {
        /// The chunk.
        id: ChunkId,
        /// Pack number.
        pack: u32,
        /// Frame offset in the pack.
        offset: u64,
        /// What is wrong with the frame.
        #[source]
        source: FrameError,
    },
    /// The operation does not exist on this backend.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A `--store-url` that does not name a bucket and prefix this build can use.
    #[error("store URL {url}: {message}")]
    RemoteUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A request to object storage failed.
    #[error("bucket {bucket} at {endpoint}: {kind} ({what}: {message})")]
    Remote {
        /// Which failure.
        kind: RemoteFailure,
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// The request (operation and key).
        what: String,
        /// The client's error.
        message: String,
    },
    /// A file digest is not in the store.
    #[error("file sha256:{0} is not in the store")]
    MissingFile(FileDigest),
    /// Bytes read back do not match the file digest they were stored under.
    #[error("file sha256:{expected} reads back as sha256:{actual}")]
    FileMismatch {
        /// Digest asked for.
        expected: FileDigest,
        /// Digest of what the chunks gave.
        actual: FileDigest,
    },
}

impl StoreError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Io { source, .. } => ErrorClass::of_io(source),
            StoreError::Locked { .. } => ErrorClass::Locked,
            // Missing or wrong bytes, and a damaged index, are all damaged data.
            StoreError::DamagedChunk { .. }
            | StoreError::FileMismatch { .. }
            | StoreError::MissingChunk(_)
            | StoreError::MissingFile(_)
            | StoreError::IndexDamaged { .. }
            | StoreError::Record { .. } => ErrorClass::Digest,
            StoreError::Incompatible { .. }
            | StoreError::PacksElsewhere { .. }
            | StoreError::LocalPacks { .. } => ErrorClass::Validation,
            StoreError::Index(_) | StoreError::Unsupported(_) => ErrorClass::Other,
            // Wrong keys, a missing bucket, an unusable store URL: the configuration is
            // invalid, not the data.
            StoreError::RemoteUrl { .. } => ErrorClass::Validation,
            StoreError::Remote { kind, .. } => kind.class(),
        }
    }
}

impl RemoteFailure {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            RemoteFailure::AccessDenied | RemoteFailure::NoSuchBucket => ErrorClass::Validation,
            // An object the index names is gone from the bucket: data is missing.
            RemoteFailure::NotFound => ErrorClass::Digest,
            RemoteFailure::Request => ErrorClass::Other,
        }
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The crate's I/O-context trait is the workspace's one ([`crate::fsutil::IoContext`]);
/// its [`crate::fsutil::FsError`] becomes [`StoreError::Io`] through `?`.
pub(crate) use crate::fsutil::IoContext;

impl StoreError {
    /// A redb error as a store error. An I/O error of the index file stays an I/O error
    /// (so a full disk during an index commit is "no space", not an opaque index failure),
    /// and redb's "corrupted" is [`StoreError::IndexDamaged`] (damage, not a failure).
    pub fn from_index(e: impl Into<redb::Error>) -> StoreError {
        match e.into() {
            // The index file ends early or holds bytes that are not redb's: damage.
            redb::Error::Io(source)
                if matches!(
                    source.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ) =>
            {
                StoreError::IndexDamaged {
                    message: source.to_string(),
                }
            }
            redb::Error::Io(source) => StoreError::Io {
                context: "store index".into(),
                source,
            },
            redb::Error::Corrupted(message) => StoreError::IndexDamaged { message },
            // The store's tables have one fixed schema; a stored definition that differs
            // from it was damaged.
            e @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }) => StoreError::IndexDamaged {
                message: e.to_string(),
            },
            other => StoreError::Index(other),
        }
    }
}

macro_rules! redb_into_store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from_index(e)
            }
        }
    )*};
}
redb_into_store_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A failed file write keeps its context and its `io::Error` (so `ENOSPC` still maps to
/// "no space").
impl From<crate::fsutil::FsError> for StoreError {
    fn from(e: crate::fsutil::FsError) -> Self {
        StoreError::Io {
            context: e.context,
            source: e.source,
        }
    }
}
