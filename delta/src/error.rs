//! Errors of the generation and delta layer.

use std::io;
use std::path::PathBuf;

use ouk_store::{ErrorClass, StoreError};

/// Errors from `ouk-delta`.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The chunk store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    #[error("index: {0}")]
    Index(#[from] redb::Error),
    /// A read-only command was pointed at a root that does not exist (it never creates one).
    #[error("no ouk root at {path}: nothing was imported here")]
    NoRoot {
        /// The directory named.
        path: PathBuf,
    },
    /// The root has a store but no published state (`state.json`): it was last written by
    /// an ouk that did not publish one. Any command that opens the root for writing does.
    #[error(
        "{path} has no published state (state.json): run an ouk command that writes the root (such as `ouk store stats`) once as its owner"
    )]
    Unpublished {
        /// The root.
        path: PathBuf,
    },
    /// Another process holds the root's lock.
    #[error("{path} is locked by another ouk process (an import or maintenance is running)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A delta is malformed, unsafe, or does not decode.
    #[error("invalid delta: {0}")]
    BadDelta(String),
    /// A delta asks for a rebuild this host cannot do (a compressor version it lacks).
    #[error("{path}: this ouk cannot rebuild it: {why}")]
    CannotRebuild {
        /// The file.
        path: String,
        /// What is needed.
        why: String,
    },
    /// A rebuilt file does not hash to its declared digest.
    #[error("{path}: rebuilt content has sha256 {actual}, the delta declares {expected}")]
    DigestMismatch {
        /// The file.
        path: String,
        /// Declared.
        expected: ouk_store::FileDigest,
        /// Computed.
        actual: ouk_store::FileDigest,
    },
    /// The host lacks the generation a delta applies to.
    #[error(
        "this delta applies to generation {generation} (version {version}), which this host does not have"
    )]
    MissingBaseline {
        /// Baseline generation id.
        generation: String,
        /// Baseline version, or "unknown".
        version: String,
    },
    /// A manifest is malformed or unsafe.
    #[error("invalid chunk-set manifest: {0}")]
    BadManifest(String),
    /// A record in the index did not decode.
    #[error("record {what} is damaged: {message}")]
    Record {
        /// Which record.
        what: String,
        /// Why.
        message: String,
    },
    /// No generation matches.
    #[error("no generation matches {0:?}")]
    UnknownGeneration(String),
    /// Several generations match a prefix.
    #[error("{0:?} matches several generations; give more digits of the generation id")]
    AmbiguousGeneration(String),
    /// Rollback without an earlier generation.
    #[error("no earlier generation to roll back to")]
    NothingToRollBackTo,
    /// A tree holds something a generation cannot (symlink, device, non-UTF-8 name).
    #[error("{path}: {why}")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Why it cannot be stored.
        why: String,
    },
}

/// Result alias.
pub type Result<T, E = DeltaError> = std::result::Result<T, E>;

/// The workspace's one I/O-context trait ([`ouk_store::fsutil::IoContext`]); its
/// [`ouk_store::fsutil::FsError`] becomes [`DeltaError::Io`] through `?`.
pub use ouk_store::fsutil::IoContext;

impl DeltaError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            DeltaError::Store(s) => s.class(),
            DeltaError::Io { source, .. } => ErrorClass::of_io(source),
            DeltaError::Locked { .. } => ErrorClass::Locked,
            DeltaError::Record { .. } | DeltaError::DigestMismatch { .. } => ErrorClass::Digest,
            DeltaError::BadManifest(_)
            | DeltaError::Unsupported { .. }
            | DeltaError::BadDelta(_)
            | DeltaError::CannotRebuild { .. }
            | DeltaError::MissingBaseline { .. } => ErrorClass::Validation,
            DeltaError::NoRoot { .. } | DeltaError::UnknownGeneration(_) => ErrorClass::NotFound,
            DeltaError::Unpublished { .. }
            | DeltaError::AmbiguousGeneration(_)
            | DeltaError::NothingToRollBackTo
            | DeltaError::Index(_) => ErrorClass::Other,
        }
    }

    /// A redb error of the generation tables, classified as the store classifies its own
    /// (they share `index.redb`): damage is [`StoreError::IndexDamaged`], I/O stays I/O.
    pub fn from_index(e: impl Into<redb::Error>) -> DeltaError {
        match StoreError::from_index(e) {
            StoreError::Index(other) => DeltaError::Index(other),
            store => DeltaError::Store(store),
        }
    }
}

macro_rules! redb_into {
    ($($t:ty),*) => {$(
        impl From<$t> for DeltaError {
            fn from(e: $t) -> Self {
                DeltaError::from_index(e)
            }
        }
    )*};
}
redb_into!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A failed file write keeps its context and its `io::Error` (a full disk stays exit 12).
impl From<ouk_store::fsutil::FsError> for DeltaError {
    fn from(e: ouk_store::fsutil::FsError) -> Self {
        DeltaError::Io {
            context: e.context,
            source: e.source,
        }
    }
}
