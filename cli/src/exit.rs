//! Exit codes shared by every command, and the mapping from library errors to them.
//!
//! | code | meaning                                   |
//! |------|-------------------------------------------|
//! | 0    | ok                                        |
//! | 1    | input not found, or another failure       |
//! | 2    | digest mismatch / damaged data            |
//! | 5    | signature invalid or untrusted            |
//! | 8    | version not newer                         |
//! | 9    | `status`: nothing active, or kit stale    |
//! | 11   | validation failed                         |
//! | 12   | not enough disk space                     |
//! | 13   | locked by another importer                |
//! | 64   | usage error (EX_USAGE): bad options       |
//! | 130  | interrupted                               |

use ouk_delta::DeltaError;
use ouk_kit::KitError;
use ouk_store::{RemoteFailure, StoreError};

/// A process exit code with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Input not found or a failure with no code of its own.
    Failure = 1,
    /// A digest did not match.
    DigestMismatch = 2,
    /// A signature did not verify or its key is not trusted.
    Signature = 5,
    /// The kit is not newer than the active one.
    NotNewer = 8,
    /// `status` only: nothing is active, or the active kit is older than the staleness
    /// window (a check for cron and Nagios-style monitors; its own code, so a monitor tells
    /// "not current" from "could not look").
    NotCurrent = 9,
    /// Validation failed.
    Validation = 11,
    /// Out of disk space.
    NoSpace = 12,
    /// Another process holds the root's lock.
    Locked = 13,
    /// The command line could not be parsed (sysexits' EX_USAGE; clap's own 2 is taken by
    /// "digest mismatch").
    Usage = 64,
    /// Interrupted by a signal.
    Interrupted = 130,
}

pub(crate) fn io_code(e: &std::io::Error) -> ExitCode {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => ExitCode::NoSpace,
        Some(libc::EINTR) => ExitCode::Interrupted,
        _ => ExitCode::Failure,
    }
}

/// The exit code for a store error.
pub fn store_code(e: &StoreError) -> ExitCode {
    match e {
        StoreError::Io { source, .. } => io_code(source),
        StoreError::Locked { .. } => ExitCode::Locked,
        StoreError::DamagedChunk { .. } | StoreError::FileMismatch { .. } => {
            ExitCode::DigestMismatch
        }
        StoreError::MissingChunk(_) | StoreError::MissingFile(_) => ExitCode::DigestMismatch,
        // A damaged index is damaged data, like a damaged chunk.
        StoreError::IndexDamaged { .. } | StoreError::Record { .. } => ExitCode::DigestMismatch,
        StoreError::Incompatible { .. } => ExitCode::Validation,
        StoreError::Index(_) => ExitCode::Failure,
        // Wrong keys, a missing bucket, an unusable store URL: the configuration is
        // invalid, not the data.
        StoreError::RemoteUrl { .. } => ExitCode::Validation,
        StoreError::Remote { kind, .. } => match kind {
            RemoteFailure::AccessDenied | RemoteFailure::NoSuchBucket => ExitCode::Validation,
            // An object the index names is gone from the bucket: data is missing.
            RemoteFailure::NotFound => ExitCode::DigestMismatch,
            RemoteFailure::Request => ExitCode::Failure,
        },
        StoreError::Unsupported(_) => ExitCode::Failure,
    }
}

/// The exit code for a generation-layer error.
pub fn delta_code(e: &DeltaError) -> ExitCode {
    match e {
        DeltaError::Store(s) => store_code(s),
        DeltaError::Io { source, .. } => io_code(source),
        DeltaError::Locked { .. } => ExitCode::Locked,
        DeltaError::Record { .. } => ExitCode::DigestMismatch,
        DeltaError::BadManifest(_)
        | DeltaError::Unsupported { .. }
        | DeltaError::BadDelta(_)
        | DeltaError::CannotRebuild { .. }
        | DeltaError::MissingBaseline { .. } => ExitCode::Validation,
        DeltaError::DigestMismatch { .. } => ExitCode::DigestMismatch,
        DeltaError::NoRoot { .. } | DeltaError::Unpublished { .. } => ExitCode::Failure,
        DeltaError::UnknownGeneration(_)
        | DeltaError::AmbiguousGeneration(_)
        | DeltaError::NothingToRollBackTo
        | DeltaError::Index(_) => ExitCode::Failure,
    }
}

/// The exit code for a kit error.
pub fn kit_code(e: &KitError) -> ExitCode {
    use ouk_kit::bundle::ReadError;
    match e {
        KitError::Io { source, .. } => io_code(source),
        KitError::NotFound(_) | KitError::Usage(_) => ExitCode::Failure,
        KitError::DigestMismatch { .. } => ExitCode::DigestMismatch,
        KitError::NotNewer { .. } | KitError::Stale { .. } => ExitCode::NotNewer,
        KitError::NoSpace { .. } => ExitCode::NoSpace,
        KitError::Signature { .. } | KitError::Key(_) => ExitCode::Signature,
        KitError::Read(r) if r.is_local_io() => match r {
            ReadError::Output { source, .. } => io_code(source),
            _ => ExitCode::Failure,
        },
        KitError::Layout(_)
        | KitError::Read(_)
        | KitError::InvalidManifest(_)
        | KitError::Validation(_)
        | KitError::FutureDated { .. }
        | KitError::Provenance(_) => ExitCode::Validation,
        KitError::Write(w) => match w {
            ouk_kit::bundle::WriteError::Output(source) => io_code(source),
            _ => ExitCode::Validation,
        },
        KitError::Certificate(c) => match c {
            ouk_kit::certs::CertError::Io { source, .. } => io_code(source),
            _ => ExitCode::Validation,
        },
        KitError::Authority(a) => authority_code(a),
        KitError::PolicyGateway(g) => match g {
            ouk_kit::policy_gateway::GatewayError::Io { source, .. } => io_code(source),
            ouk_kit::policy_gateway::GatewayError::Conflict { .. } => ExitCode::Validation,
        },
        KitError::Cache(c) => match c {
            ouk_kit::caches::CacheError::Io { source, .. } => io_code(source),
            ouk_kit::caches::CacheError::Unusable { .. } => ExitCode::Failure,
            ouk_kit::caches::CacheError::InvalidZip { .. } => ExitCode::Validation,
        },
        KitError::Feeds(f) => feed_code(f),
        KitError::FeedConflicts(_) => ExitCode::Validation,
        KitError::Part(p) => part_code(p),
        KitError::Primer(p) => primer_code(p),
        KitError::Telemetry(t) => telemetry_code(t),
        KitError::FeedChanges(f) => feeds_code(f),
        KitError::Delta(d) => delta_code(d),
        KitError::Store(s) => store_code(s),
    }
}

/// The exit code of a feed-changes error: a malformed feed index or changes file is a
/// validation failure (11); I/O keeps its code (a full disk is 12); the store's and the
/// generation layer's errors map as theirs do.
pub fn feeds_code(e: &ouk_kit::feeds::host::FeedsError) -> ExitCode {
    use ouk_kit::feeds::changes::ChangesError;
    use ouk_kit::feeds::diff::DiffError;
    use ouk_kit::feeds::history::HistoryError;
    use ouk_kit::feeds::host::FeedsError as F;
    use ouk_kit::feeds::index::IndexError;
    match e {
        F::Diff(DiffError::Index {
            source: IndexError::Io(io),
            ..
        }) => io_code(io),
        F::Diff(_) => ExitCode::Validation,
        F::Changes(ChangesError::Io { source, .. }) | F::Io { source, .. } => io_code(source),
        F::Changes(ChangesError::Malformed { .. }) => ExitCode::Validation,
        F::History(HistoryError::Store(s)) | F::Store(s) => store_code(s),
        F::History(HistoryError::Damaged(_)) => ExitCode::DigestMismatch,
        F::History(HistoryError::Aborted) => ExitCode::Failure,
        F::Delta(d) => delta_code(d),
    }
}

/// The exit code of a feed indexing error: a bad row, a broken feed, a file under
/// `feeds/` in the wrong place or a malformed index is a validation failure (11), like
/// any other release content that does not validate; I/O follows the usual rules.
pub fn feed_code(e: &ouk_kit::feeds::FeedError) -> ExitCode {
    use ouk_kit::feeds::{FeedError as F, IndexError};
    match e {
        F::Io { source, .. } => io_code(source),
        F::Index(IndexError::Io(source)) => io_code(source),
        F::BadRow(_) | F::Broken { .. } | F::Layout(_) | F::Index(_) => ExitCode::Validation,
    }
}

/// The exit code of a volume primer error: a primer (or kit) that holds anything but its
/// three directories, or a non-directory in the way on the volume, is a validation failure
/// (11); a missing input, a kit without a primer or a bad option is 1.
pub fn primer_code(e: &ouk_kit::primer::PrimerError) -> ExitCode {
    use ouk_kit::primer::PrimerError as P;
    match e {
        P::NotADirectory { .. }
        | P::UnexpectedDirectory { .. }
        | P::MissingDirectory { .. }
        | P::NoOwner { .. }
        | P::TooLarge { .. }
        | P::NotADirectoryOnVolume { .. } => ExitCode::Validation,
        P::Read { source, .. } => match source {
            ouk_kit::bundle::ReadError::Output { source, .. } => io_code(source),
            _ => ExitCode::Validation,
        },
        P::InvalidSpec(_) | P::NoPrimerInKit { .. } | P::NotFound(_) => ExitCode::Failure,
        P::Write(ouk_kit::bundle::WriteError::Output(source)) => io_code(source),
        P::Write(_) => ExitCode::Validation,
        P::Io { source, .. } => io_code(source),
    }
}

/// The exit code of a telemetry bundle error: a bundle that does not match its sidecar is
/// a digest mismatch (2); a missing or malformed sidecar, a bundle that does not read, or
/// an input with links is a validation failure (11).
pub fn telemetry_code(e: &ouk_kit::telemetry::TelemetryError) -> ExitCode {
    use ouk_kit::telemetry::TelemetryError as T;
    match e {
        T::DigestMismatch { .. } => ExitCode::DigestMismatch,
        T::Sidecar { .. } | T::Unreadable { .. } | T::Input { .. } => ExitCode::Validation,
        T::Usage(_) | T::NotFound(_) => ExitCode::Failure,
        T::Write(ouk_kit::bundle::WriteError::Output(source)) => io_code(source),
        T::Write(_) => ExitCode::Validation,
        T::Io { source, .. } => io_code(source),
    }
}

/// The exit code of an Authority check: an unreadable file is 1 (0 is never returned
/// here), a YAML error or a broken guardrail 11.
pub fn authority_code(e: &ouk_kit::authority::AuthorityError) -> ExitCode {
    use ouk_kit::authority::AuthorityError as A;
    match e {
        A::Io { .. } => ExitCode::Failure,
        A::TooLarge { .. } | A::Yaml { .. } | A::Guardrails { .. } => ExitCode::Validation,
    }
}

/// The exit code for a split kit's error: damaged bytes (a part's size or digest, or the
/// index's whole-bundle digest) are a digest mismatch like a damaged bundle (2); a missing
/// part or index, or an index that does not parse, is a validation failure (11).
pub fn part_code(e: &ouk_kit::split::PartError) -> ExitCode {
    use ouk_kit::split::PartError;
    match e {
        PartError::Size { .. } | PartError::Digest { .. } | PartError::Whole { .. } => {
            ExitCode::DigestMismatch
        }
        PartError::Missing { .. } | PartError::MissingIndex { .. } | PartError::BadIndex { .. } => {
            ExitCode::Validation
        }
        PartError::NotAPart { .. } | PartError::Exists { .. } => ExitCode::Failure,
        PartError::Io { source, .. } => io_code(source),
    }
}

/// The exit code of a transport error (serve, pull, index).
pub fn transport_code(e: &ouk_transport::TransportError) -> ExitCode {
    use ouk_transport::TransportError as T;
    match e {
        T::Io { source, .. } => io_code(source),
        T::Network { .. } | T::Status { .. } | T::NotPublished { .. } | T::Serve(_) => {
            ExitCode::Failure
        }
        T::Invalid { .. } | T::ChangedMidResume { .. } => ExitCode::Validation,
        // No (valid) pull token: the client's configuration is wrong, not the data (as a
        // store's access denied).
        T::Refused { .. } => ExitCode::Validation,
        T::DigestMismatch { .. } => ExitCode::DigestMismatch,
        T::Kit(k) => kit_code(k.as_ref()),
    }
}

/// The exit code of a quota ledger error: a bad subject is a usage error (1), a damaged
/// ledger or salt is damaged data (2), a full disk is 12.
pub fn quota_code(e: &ouk_kit::quota::QuotaError) -> ExitCode {
    if let Some(source) = e.io_source() {
        return io_code(source);
    }
    if e.is_damage() {
        ExitCode::DigestMismatch
    } else {
        ExitCode::Failure
    }
}
