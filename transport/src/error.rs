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
    #[error("{url}: the server refused the download ({status}): {message}; {refusal}")]
    Refused {
        /// The URL.
        url: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// What the server said (bounded, control characters escaped: [`shown`]).
        message: String,
        /// The server's machine-readable `reason`, when it gave one this client knows.
        reason: Option<RefusalReason>,
        /// What the refusal means for this client.
        refusal: PullRefusal,
    },
    /// A pulled bundle's signature cannot be checked: no key was given or trusted (and
    /// unsigned bundles are not accepted).
    #[error("{bundle}: no trusted key to check the signature with")]
    NoKeyToVerify {
        /// The bundle's name.
        bundle: String,
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
    /// The directory to serve is not one (the binary names the flag that gave it).
    #[error("serve: {} is not a directory", path.display())]
    NotADirectory {
        /// The directory asked for.
        path: std::path::PathBuf,
    },
}

/// What a 401 or 403 means for the pulling client, by the status and whether it sent a
/// token. The messages name no flag: the binary says which one gives the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PullRefusal {
    /// A token was sent and the server answered 401: not the server's token.
    #[error("the server did not accept the pull token given: ask its operator for the right one")]
    TokenRejected,
    /// A token was sent and the server answered 403: it has none to compare it with.
    #[error("the server has no pull token configured")]
    ServerHasNoToken,
    /// No token was sent.
    #[error("a bundle that holds secrets needs the pull token")]
    TokenNeeded,
}

/// The stable, machine-readable `reason` of a refusal body of `ouk serve` (beside its
/// human `error` text, which names no flag: an HTTP client has none). Both ends of the
/// wire use this one list: the server writes [`RefusalReason::as_str`], `ouk kit pull`
/// reads it back with [`RefusalReason::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A bundle holds secrets and the server has no pull token: it hands them to nobody.
    SecretsNotServed,
    /// A bundle holds secrets and the request bears no (or another) pull token.
    SecretsNeedToken,
    /// The import API (and status) is off: the server has no import token.
    ImportApiOff,
    /// The import API needs its bearer token.
    ImportTokenRequired,
    /// `/metrics` needs the metrics token.
    MetricsTokenRequired,
}

impl RefusalReason {
    /// Every reason, for tests and documentation.
    pub const ALL: [RefusalReason; 5] = [
        RefusalReason::SecretsNotServed,
        RefusalReason::SecretsNeedToken,
        RefusalReason::ImportApiOff,
        RefusalReason::ImportTokenRequired,
        RefusalReason::MetricsTokenRequired,
    ];

    /// The `reason` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::SecretsNotServed => "secrets-not-served",
            RefusalReason::SecretsNeedToken => "secrets-need-token",
            RefusalReason::ImportApiOff => "import-api-off",
            RefusalReason::ImportTokenRequired => "import-token-required",
            RefusalReason::MetricsTokenRequired => "metrics-token-required",
        }
    }

    /// The reason a `reason` field names, if this build knows it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The `error` text the server sends with it: what is refused and why.
    pub fn message(self) -> &'static str {
        match self {
            RefusalReason::SecretsNotServed => {
                "this bundle holds secrets (files under secrets/, such as the Policy Gateway's DPoP key) and this server has no pull token configured: it hands them to nobody"
            }
            RefusalReason::SecretsNeedToken => {
                "this bundle holds secrets (files under secrets/): the pull token is required"
            }
            RefusalReason::ImportApiOff => {
                "the import API is off: this server has no import token configured"
            }
            RefusalReason::ImportTokenRequired => "a valid bearer token is required",
            RefusalReason::MetricsTokenRequired => {
                "the metrics token is required: this server guards /metrics with a read-only token"
            }
        }
    }
}

/// Text a server sent, as an error shows it: at most 600 characters, trimmed, control
/// characters (and quotes) escaped, so a hostile server cannot draw on the terminal.
pub fn shown(said: &str) -> String {
    said.trim()
        .chars()
        .take(600)
        .flat_map(char::escape_debug)
        .collect()
}

impl TransportError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            TransportError::Io { source, .. } => ErrorClass::of_io(source),
            TransportError::Network { .. }
            | TransportError::Status { .. }
            | TransportError::Serve(_)
            | TransportError::NotADirectory { .. } => ErrorClass::Other,
            TransportError::NotPublished { .. } => ErrorClass::NotFound,
            TransportError::Invalid { .. } | TransportError::ChangedMidResume { .. } => {
                ErrorClass::Validation
            }
            // No (valid) pull token: the client's configuration is wrong, not the data (as a
            // store's access denied).
            TransportError::Refused { .. } => ErrorClass::Validation,
            // As the kit's refusal of an unchecked signature.
            TransportError::NoKeyToVerify { .. } => ErrorClass::Signature,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each reason reads back as itself, and no body text or client message names a flag
    /// (the binary's hint table adds them for its own user).
    #[test]
    fn refusal_reasons_are_stable_and_flag_free() {
        let words: Vec<_> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            words,
            [
                "secrets-not-served",
                "secrets-need-token",
                "import-api-off",
                "import-token-required",
                "metrics-token-required"
            ]
        );
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::parse(r.as_str()), Some(r));
            assert!(!r.message().contains("--"), "{r:?}");
        }
        assert_eq!(RefusalReason::parse("secrets"), None);
        for p in [
            PullRefusal::TokenRejected,
            PullRefusal::ServerHasNoToken,
            PullRefusal::TokenNeeded,
        ] {
            assert!(!p.to_string().contains("--"), "{p}");
        }
        let e = TransportError::NoKeyToVerify {
            bundle: "k.tar.gz".into(),
        };
        assert_eq!(e.class(), ErrorClass::Signature);
        assert!(!e.to_string().contains("--"), "{e}");
    }

    /// What a server said is bounded and cannot draw on the terminal.
    #[test]
    fn server_text_is_shown_escaped_and_bounded() {
        assert_eq!(shown(" a\u{1b}[2Jb' \n"), "a\\u{1b}[2Jb\\'");
        assert_eq!(shown(&"x".repeat(700)).len(), 600);
    }
}
