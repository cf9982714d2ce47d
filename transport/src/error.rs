//! Errors of the transport layer, typed so each answers its class (and so its exit code).

use std::path::PathBuf;

use ouk_store::ErrorClass;

/// What went wrong while publishing, serving or pulling.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be reached or the transfer broke off.
    #[error("{url}: {message}")]
    Network {
        /// The URL.
        url: String,
        /// The cause.
        message: String,
    },
    /// The server answered with an unexpected status.
    #[error("{url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The server refused a file for want of a (valid) token: a bundle that holds secrets
    /// needs the pull token.
    #[error("{url}: the server refused the download ({status}): {message}; {hint}")]
    Refused {
        /// The URL.
        url: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// What the server said (bounded, control characters escaped).
        message: String,
        /// What the client can do.
        hint: String,
    },
    /// The index or a descriptor does not parse or is inconsistent.
    #[error("{what}: {message}")]
    Invalid {
        /// Which document.
        what: String,
        /// Why.
        message: String,
    },
    /// No bundle in the index matches the request.
    #[error("no {what} in the index at {url}")]
    NotPublished {
        /// What was asked for.
        what: String,
        /// The index URL.
        url: String,
    },
    /// A downloaded file does not have the size or digest the index gives it.
    #[error(
        "{path}: downloaded {actual}, the index says {expected}: the download was removed, re-run to fetch it again"
    )]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// From the index.
        expected: String,
        /// Downloaded.
        actual: String,
    },
    /// A partial download cannot be resumed because the file changed on the server.
    #[error(
        "{path}: the file changed on the server since the partial download (ETag {before} -> {after}); the partial file was removed, re-run to download the new one"
    )]
    ChangedMidResume {
        /// The file.
        path: PathBuf,
        /// The ETag the partial download was made under.
        before: String,
        /// What the server says now.
        after: String,
    },
    /// The bundle, once downloaded, failed verification (boxed: it is large).
    #[error(transparent)]
    Kit(Box<ouk_kit::KitError>),
    /// The server could not start.
    #[error("serve: {0}")]
    Serve(String),
}

impl TransportError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            TransportError::Io { source, .. } => ErrorClass::of_io(source),
            TransportError::Network { .. }
            | TransportError::Status { .. }
            | TransportError::Serve(_) => ErrorClass::Other,
            TransportError::NotPublished { .. } => ErrorClass::NotFound,
            TransportError::Invalid { .. } | TransportError::ChangedMidResume { .. } => {
                ErrorClass::Validation
            }
            // No (valid) pull token: the client's configuration is wrong, not the data (as a
            // store's access denied).
            TransportError::Refused { .. } => ErrorClass::Validation,
            TransportError::DigestMismatch { .. } => ErrorClass::Digest,
            TransportError::Kit(k) => k.class(),
        }
    }
}

impl From<ouk_kit::KitError> for TransportError {
    fn from(e: ouk_kit::KitError) -> Self {
        TransportError::Kit(Box::new(e))
    }
}

/// A failed file write keeps its context and its `io::Error` (a full disk stays exit 12).
impl From<ouk_store::fsutil::FsError> for TransportError {
    fn from(e: ouk_store::fsutil::FsError) -> Self {
        TransportError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, TransportError>;

/// The workspace's one I/O-context trait ([`ouk_store::fsutil::IoContext`]); its
/// [`ouk_store::fsutil::FsError`] becomes [`TransportError::Io`] through `?`.
pub(crate) use ouk_store::fsutil::IoContext;
