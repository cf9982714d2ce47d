//! The kit crate's error type: one variant per way a kit can be refused or fail; each
//! answers its class (`class()`, in `crate::class`), from which the exit code follows.
//! Messages say what is wrong, never which flag of the binary overrides it: the binary adds
//! that hint (an import through the API has no flags).

use std::path::PathBuf;

/// Errors from building, verifying and importing kits.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// A file or directory could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An input the user named does not exist.
    #[error("{0}: not found")]
    NotFound(PathBuf),
    /// The release tree breaks a layout rule.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// Writing the bundle failed.
    #[error("writing the bundle: {0}")]
    Write(#[from] crate::bundle::WriteError),
    /// The bundle is malformed or unsafe.
    #[error("bundle refused: {0}")]
    Read(#[from] crate::bundle::ReadError),
    /// A key could not be read or written.
    #[error("key: {0}")]
    Key(#[from] crate::sign::KeyError),
    /// Provenance could not be produced.
    #[error("provenance: {0}")]
    Provenance(#[from] crate::provenance::ProvenanceError),
    /// A digest did not match.
    #[error("{what}: digest mismatch (expected {expected}, got {actual})")]
    DigestMismatch {
        /// Which file or check.
        what: String,
        /// Expected hex.
        expected: String,
        /// Actual hex.
        actual: String,
    },
    /// A signature is missing, malformed, invalid or from an untrusted key.
    #[error("{what}: {message}")]
    Signature {
        /// Which signature.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// The manifest is malformed.
    #[error("invalid offline manifest: {0}")]
    InvalidManifest(String),
    /// The bundle and its manifest disagree, or some other validation failed.
    #[error("{0}")]
    Validation(String),
    /// The import policy refused the kit (not newer, stale, dated ahead, no space).
    #[error(transparent)]
    Policy(#[from] crate::import::policy::PolicyRefusal),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// The Policy Gateway bundle cannot be made.
    #[error("policy gateway: {0}")]
    PolicyGateway(#[from] crate::policy_gateway::GatewayError),
    /// A certificate under `certificates/` is not valid PEM X.509.
    #[error("trust material: {0}")]
    Certificate(#[from] crate::certs::CertError),
    /// The Authority configuration breaks a scope guardrail or does not parse.
    #[error("authority: {0}")]
    Authority(#[from] crate::authority::AuthorityError),
    /// A cold-start cache is not what it claims to be.
    #[error("cold-start cache: {0}")]
    Cache(#[from] crate::caches::CacheError),
    /// A split kit's part or index is missing, damaged or in the way.
    #[error(transparent)]
    Part(#[from] crate::split::PartError),
    /// The advisory AI volume primer could not be written, read or extracted.
    #[error(transparent)]
    Primer(#[from] crate::primer::PrimerError),
    /// The release tree's telemetry bundle does not match its sidecar or does not read.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// Feed row changes could not be computed or recorded (a malformed feed index, the
    /// changes file, the supersedes history).
    #[error(transparent)]
    FeedChanges(Box<crate::feeds::host::FeedsError>),
    /// A feed could not be indexed (a bad row, a broken feed) or its index is unusable.
    #[error("feeds: {0}")]
    Feeds(#[from] crate::feeds::FeedError),
    /// The output directory already holds a different bundle under the name being built.
    #[error(
        "{} already holds a different bundle of this version and channel (sha256 {existing}, this build {built}): refusing to replace it; build into another directory, or force the rebuild",
        path.display()
    )]
    BundleExists {
        /// The bundle in the way.
        path: PathBuf,
        /// Its SHA-256.
        existing: String,
        /// The SHA-256 of what this build made.
        built: String,
    },
    /// The kit's feeds conflict (duplicate or divergent rows) and conflicts are not allowed.
    #[error("{0}")]
    FeedConflicts(String),
    /// The generation layer failed.
    #[error(transparent)]
    Delta(#[from] ouk_delta::DeltaError),
    /// A signature, or a key to check one with, was not given (and unsigned input is not
    /// accepted). Distinct from [`KitError::Signature`] (same class) so the binary can say
    /// which flag gives it.
    #[error("{what}: {missing}")]
    Unsigned {
        /// Which signature (`bundle`, `manifest`).
        what: String,
        /// What is missing.
        missing: MissingSignature,
    },
    /// `trust update --chain`: the root holds no trust to verify a chain against.
    #[error("no trust on this root to verify a chain against")]
    NoTrust,
    /// A time given for the kit (its creation or capture time) is not RFC 3339.
    #[error("the {what} {value:?} is not an RFC 3339 time")]
    BadTime {
        /// Which time.
        what: GivenTime,
        /// The text given.
        value: String,
    },
    /// The clock reads a time the kit's `createdAt` cannot carry.
    #[error("the clock ({now} s since the epoch) is not a time a kit can carry")]
    ClockOutOfRange {
        /// The clock, Unix seconds.
        now: i64,
    },
    /// A cold-start cache would land on a path the release tree already fills.
    #[error("cold-start cache {}: the kit already has {kit_path}", file.display())]
    CacheCollides {
        /// The cache file given.
        file: PathBuf,
        /// Its path in the kit.
        kit_path: String,
    },
    /// A name, version or digest prefix matches more than one mirrored bundle.
    #[error(
        "{what:?} matches {} bundles ({}): name one by file name or sha256",
        names.len(),
        names.join(", ")
    )]
    AmbiguousBundle {
        /// What was asked for.
        what: String,
        /// The file names of the bundles it matches.
        names: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ouk_store::StoreError),
    /// The root's trust store (`ROOT/trust/<kid>.pub`) could not be read or changed.
    #[error(transparent)]
    TrustStore(#[from] ouk_root::trust::TrustStoreError),
    /// The root's trust document does not allow the change as asked.
    #[error(transparent)]
    TrustRefused(#[from] ouk_root::trust::document::TrustRefusal),
}

/// What is missing for a signature check ([`KitError::Unsigned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MissingSignature {
    /// No `.sig` beside the bundle.
    #[error("unsigned: no .sig found next to the bundle")]
    BundleSig,
    /// No `.jws` for the manifest.
    #[error("no .jws found for the manifest")]
    ManifestJws,
    /// `verify`: no key to check the bundle's signature with.
    #[error("no trusted keys to check its signature with")]
    KeyToVerify,
    /// Import: no key on the root's trust store nor given for this import.
    #[error("no trusted keys")]
    KeyToImport,
}

/// Which time given for a kit ([`KitError::BadTime`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GivenTime {
    /// The kit's `createdAt`.
    #[error("kit creation time")]
    CreatedAt,
    /// The capture time of every artifact.
    #[error("capture time")]
    CapturedAt,
}

impl From<crate::feeds::host::FeedsError> for KitError {
    fn from(e: crate::feeds::host::FeedsError) -> Self {
        KitError::FeedChanges(Box::new(e))
    }
}

/// A manifest refused by its parser stays the kit's "invalid offline manifest" (same
/// message, same class).
impl From<ouk_bundle::manifest::ManifestError> for KitError {
    fn from(e: ouk_bundle::manifest::ManifestError) -> Self {
        KitError::InvalidManifest(e.0)
    }
}

/// A failed file write keeps its context and its `io::Error` (a full disk stays exit 12).
impl From<ouk_store::fsutil::FsError> for KitError {
    fn from(e: ouk_store::fsutil::FsError) -> Self {
        KitError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

/// Result alias.
pub type Result<T, E = KitError> = std::result::Result<T, E>;

/// The workspace's one I/O-context trait ([`ouk_store::fsutil::IoContext`]); its
/// [`ouk_store::fsutil::FsError`] becomes [`KitError::Io`] through `?`.
pub(crate) use ouk_store::fsutil::IoContext;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::policy::PolicyRefusal;

    #[test]
    fn no_space_message_says_what_to_free() {
        let e = KitError::Policy(PolicyRefusal::NoSpace {
            path: PathBuf::from("/var/lib/stella"),
            needed_gib: 2.0,
            free_gib: 0.25,
        });
        assert_eq!(
            e.to_string(),
            "not enough disk space: free >= 2 GiB in /var/lib/stella before retrying (have 0.2 GiB)"
        );
    }

    /// Overrides are the binary's flags: the library's message says what is wrong, the
    /// binary adds how to override it (an import through the API has no flags).
    #[test]
    fn messages_name_no_flag_of_the_binary() {
        let refusals = [
            KitError::Policy(PolicyRefusal::NotNewer {
                kit: "1.0.0".into(),
                active: "2.0.0".into(),
            }),
            KitError::Policy(PolicyRefusal::Stale {
                created_at: "2026-01-01T00:00:00Z".into(),
                max_days: 30,
            }),
            KitError::Policy(PolicyRefusal::FutureDated {
                created_at: "2030-01-01T00:00:00Z".into(),
                now: "2026-01-01T00:00:00Z".into(),
                max_skew_secs: 300,
            }),
            KitError::Feeds(crate::feeds::FeedError::BadRow(crate::feeds::BadRow {
                file: "feeds/a.jsonl".into(),
                line: 3,
                reason: "not JSON".into(),
            })),
            KitError::Delta(ouk_delta::DeltaError::NoRoot {
                path: PathBuf::from("/var/lib/ouk"),
            }),
        ];
        for e in refusals {
            let message = e.to_string();
            assert!(!message.contains("--"), "{message}");
            assert!(!message.contains("OUK_"), "{message}");
        }
    }
}
