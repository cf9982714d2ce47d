//! The class of every error this crate returns ([`ErrorClass`]), in one place.
//!
//! Job: answer `class()` for each feed error type, so the binary's exit code, the import
//! API's HTTP status and a quarantine entry's `reason.json` follow from one value (see
//! `ouk_store::ErrorClass`).
//!
//! Invariants: an error that wraps another answers the inner error's class, and an
//! `io::Error` is classed by [`ErrorClass::of_io`]; the classes are the ones the binary's
//! exit codes have always reported (the CLI tests pin them).

use ouk_store::ErrorClass;

use crate::FeedError;
use crate::changes::ChangesError;
use crate::diff::DiffError;
use crate::history::HistoryError;
use crate::host::FeedsError;
use crate::index::IndexError;
use crate::scan::ScanError;

impl FeedError {
    /// A bad row, a broken feed, a file under `feeds/` in the wrong place or a malformed
    /// index is invalid release content.
    pub fn class(&self) -> ErrorClass {
        match self {
            FeedError::Io { source, .. } => ErrorClass::of_io(source),
            FeedError::Index(i) => i.class(),
            FeedError::BadRow(_) | FeedError::Broken { .. } | FeedError::Layout(_) => {
                ErrorClass::Validation
            }
        }
    }
}

impl IndexError {
    /// A malformed feed index is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            IndexError::Io(source) => ErrorClass::of_io(source),
            _ => ErrorClass::Validation,
        }
    }
}

impl ScanError {
    /// A broken feed is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            ScanError::Io(source) => ErrorClass::of_io(source),
            ScanError::Broken { .. } => ErrorClass::Validation,
        }
    }
}

impl DiffError {
    /// Reading an index is I/O; anything else wrong with the indexes is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            DiffError::Index {
                source: IndexError::Io(io),
                ..
            } => ErrorClass::of_io(io),
            _ => ErrorClass::Validation,
        }
    }
}

impl ChangesError {
    /// A malformed changes file is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            ChangesError::Io { source, .. } => ErrorClass::of_io(source),
            ChangesError::Malformed { .. } => ErrorClass::Validation,
        }
    }
}

impl HistoryError {
    /// A damaged history is damaged data.
    pub fn class(&self) -> ErrorClass {
        match self {
            HistoryError::Store(s) => s.class(),
            HistoryError::Damaged(_) => ErrorClass::Digest,
            HistoryError::Aborted => ErrorClass::Other,
        }
    }
}

impl FeedsError {
    /// The class of what failed underneath.
    pub fn class(&self) -> ErrorClass {
        match self {
            FeedsError::Diff(d) => d.class(),
            FeedsError::Changes(c) => c.class(),
            FeedsError::History(h) => h.class(),
            FeedsError::Delta(d) => d.class(),
            FeedsError::Store(s) => s.class(),
            FeedsError::Io { source, .. } => ErrorClass::of_io(source),
        }
    }
}
