//! The quota ledger's error type. A token that does not verify is not an error (it counts
//! as anonymous, see [`super::subject`]); what is left are bad arguments and a ledger that
//! cannot be read or written.

use std::path::PathBuf;

/// Why a quota command could not count or report.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The `--subject` argument is not `anon:<ip>`, `anon:unknown` or `token:<jwt>`.
    #[error("invalid quota subject: {0} (expected anon:<ip>, anon:unknown or token:<jwt>)")]
    Subject(String),
    /// A file of the ledger (lock, salt, database) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// redb refused to open or update the ledger.
    #[error("quota ledger {path}: {source}")]
    Ledger {
        /// `ROOT/quota.redb`.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// The ledger or its salt holds something this version did not write.
    #[error("quota ledger {path} is damaged or from a newer ouk: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl QuotaError {
    /// An I/O error underneath, if any (for the binary's no-space mapping).
    pub fn io_source(&self) -> Option<&std::io::Error> {
        match self {
            QuotaError::Io { source, .. } => Some(source),
            QuotaError::Ledger {
                source: redb::Error::Io(source),
                ..
            } => Some(source),
            _ => None,
        }
    }

    /// True when the ledger's bytes are damaged (redb's own corruption report included).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            QuotaError::Damaged { .. }
                | QuotaError::Ledger {
                    source: redb::Error::Corrupted(_),
                    ..
                }
        )
    }
}

pub(crate) trait QuotaIo<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, QuotaError>;
}

impl<T> QuotaIo<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, QuotaError> {
        self.map_err(|source| QuotaError::Io {
            context: context(),
            source,
        })
    }
}
