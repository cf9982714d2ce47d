//! The class of every error this crate returns ([`ErrorClass`]), in one place.
//!
//! Job: answer `class()` for each error type of the kit crate, so the binary's exit code,
//! the import API's HTTP status and a quarantine entry's `reason.json` follow from one
//! value (see `ouk_store::ErrorClass`), and no caller needs a mapping of its own.
//!
//! Invariants:
//! - an error that wraps another answers the inner error's class, and an `io::Error` is
//!   classed by [`ErrorClass::of_io`] (a full disk is no space wherever it happens), except
//!   where a comment below says why not;
//! - the classes here are the ones the binary's exit codes have always reported: changing
//!   one changes a documented exit code, and the CLI tests pin them.
//!
//! Kept apart from the error types themselves so the whole mapping reads as one table.

use ouk_store::ErrorClass;

use crate::KitError;
use crate::authority::{AuthorityError, Guardrail};
use crate::caches::CacheError;
use crate::certs::{CertError, PemProblem};
use crate::import::quarantine::QuarantineError;
use crate::mirror::catalog::CatalogError;
use crate::mirror::gzip::RecipeError;
use crate::policy_gateway::GatewayError;
use crate::primer::PrimerError;
use crate::quota::{QuotaError, TokenError};
use crate::split::{InvalidIndex, PartError};
use crate::telemetry::TelemetryError;

impl KitError {
    /// What kind of failure this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            KitError::Io { source, .. } => ErrorClass::of_io(source),
            KitError::NotFound(_) => ErrorClass::NotFound,
            KitError::Usage(_) => ErrorClass::Other,
            KitError::DigestMismatch { .. } => ErrorClass::Digest,
            KitError::Policy(p) => p.class(),
            KitError::Signature { .. } | KitError::Unsigned { .. } => ErrorClass::Signature,
            KitError::NoTrust
            | KitError::BadTime { .. }
            | KitError::ClockOutOfRange { .. }
            | KitError::AmbiguousBundle { .. } => ErrorClass::Other,
            KitError::Key(k) => k.class(),
            KitError::Read(r) => r.class(),
            KitError::Layout(l) => l.class(),
            KitError::Provenance(p) => p.class(),
            KitError::InvalidManifest(_)
            | KitError::Validation(_)
            | KitError::FeedConflicts(_)
            | KitError::CacheCollides { .. }
            | KitError::BundleExists { .. } => ErrorClass::Validation,
            KitError::Write(w) => w.class(),
            KitError::Certificate(c) => c.class(),
            KitError::Authority(a) => a.class(),
            KitError::PolicyGateway(g) => g.class(),
            KitError::Cache(c) => c.class(),
            KitError::Feeds(f) => f.class(),
            KitError::Part(p) => p.class(),
            KitError::Primer(p) => p.class(),
            KitError::Telemetry(t) => t.class(),
            KitError::FeedChanges(f) => f.class(),
            KitError::Delta(d) => d.class(),
            KitError::Store(s) => s.class(),
            KitError::TrustStore(t) => t.class(),
            KitError::TrustRefused(r) => r.class(),
        }
    }
}

impl CertError {
    /// A certificate that does not parse is invalid; reading it is I/O.
    pub fn class(&self) -> ErrorClass {
        match self {
            CertError::Io { source, .. } => ErrorClass::of_io(source),
            _ => ErrorClass::Validation,
        }
    }
}

impl PemProblem {
    /// Always validation.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl AuthorityError {
    /// A YAML error or a broken guardrail is invalid configuration. An unreadable file is
    /// "other" whatever its OS error: the check only reads, so no space cannot be its cause.
    pub fn class(&self) -> ErrorClass {
        match self {
            AuthorityError::Io { .. } => ErrorClass::Other,
            AuthorityError::TooLarge { .. }
            | AuthorityError::Yaml { .. }
            | AuthorityError::Guardrails { .. } => ErrorClass::Validation,
        }
    }
}

impl Guardrail {
    /// Always validation.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl GatewayError {
    /// A conflicting Policy Gateway bundle is invalid content.
    pub fn class(&self) -> ErrorClass {
        match self {
            GatewayError::Io { source, .. } => ErrorClass::of_io(source),
            GatewayError::Conflict { .. } => ErrorClass::Validation,
        }
    }
}

impl CacheError {
    /// A cache that is not the zip it claims is invalid; one that cannot be used here is
    /// "other".
    pub fn class(&self) -> ErrorClass {
        match self {
            CacheError::Io { source, .. } => ErrorClass::of_io(source),
            CacheError::Unusable { .. } => ErrorClass::Other,
            CacheError::InvalidZip { .. } => ErrorClass::Validation,
        }
    }
}

impl PartError {
    /// Damaged bytes (a part's size or digest, the whole bundle's digest) are a digest
    /// mismatch like a damaged bundle; a missing part or index, or an index that does not
    /// parse, is invalid input.
    pub fn class(&self) -> ErrorClass {
        match self {
            PartError::Size { .. } | PartError::Digest { .. } | PartError::Whole { .. } => {
                ErrorClass::Digest
            }
            PartError::Missing { .. }
            | PartError::MissingIndex { .. }
            | PartError::BadIndex { .. } => ErrorClass::Validation,
            PartError::NotAPart { .. }
            | PartError::Exists { .. }
            | PartError::PartsInTheWay { .. }
            | PartError::TooManyParts { .. } => ErrorClass::Other,
            PartError::Io { source, .. } => ErrorClass::of_io(source),
        }
    }
}

impl InvalidIndex {
    /// Always validation.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl PrimerError {
    /// A primer (or kit) that holds anything but its three directories, or a
    /// non-directory in the way on the volume, is invalid; a missing input, a kit without a
    /// primer or a bad option is "not found" or "other".
    pub fn class(&self) -> ErrorClass {
        match self {
            PrimerError::NotADirectory { .. }
            | PrimerError::UnexpectedDirectory { .. }
            | PrimerError::MissingDirectory { .. }
            | PrimerError::NoOwner { .. }
            | PrimerError::TooLarge { .. }
            | PrimerError::NotADirectoryOnVolume { .. } => ErrorClass::Validation,
            PrimerError::Read { source, .. } => source.class(),
            PrimerError::InvalidSpec(_) | PrimerError::NoPrimerInKit { .. } => ErrorClass::Other,
            PrimerError::NotFound(_) => ErrorClass::NotFound,
            PrimerError::Write(w) => w.class(),
            PrimerError::Io { source, .. } => ErrorClass::of_io(source),
        }
    }
}

impl TelemetryError {
    /// A bundle that does not match its sidecar is a digest mismatch; a missing or
    /// malformed sidecar, a bundle that does not read, or an input with links is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            TelemetryError::DigestMismatch { .. } => ErrorClass::Digest,
            TelemetryError::Sidecar { .. }
            | TelemetryError::Unreadable { .. }
            | TelemetryError::Input { .. } => ErrorClass::Validation,
            TelemetryError::Usage(_) => ErrorClass::Other,
            TelemetryError::NotFound(_) => ErrorClass::NotFound,
            TelemetryError::Write(w) => w.class(),
            TelemetryError::Io { source, .. } => ErrorClass::of_io(source),
        }
    }
}

impl QuotaError {
    /// A bad subject is "other" (a usage error), a damaged ledger or salt is damaged data,
    /// I/O underneath is classed as I/O.
    pub fn class(&self) -> ErrorClass {
        if let Some(source) = self.io_source() {
            return ErrorClass::of_io(source);
        }
        if self.is_damage() {
            ErrorClass::Digest
        } else {
            ErrorClass::Other
        }
    }
}

impl TokenError {
    /// A token that does not verify is a signature failure; one that does not parse or
    /// whose claims do not hold is invalid.
    pub fn class(&self) -> ErrorClass {
        match self {
            TokenError::NoTrustedKeys | TokenError::UnknownKid(_) | TokenError::BadSignature => {
                ErrorClass::Signature
            }
            _ => ErrorClass::Validation,
        }
    }
}

impl QuarantineError {
    /// An entry that is not there is "not found"; a bad name is "other".
    pub fn class(&self) -> ErrorClass {
        match self {
            QuarantineError::Io { source, .. } => ErrorClass::of_io(source),
            QuarantineError::UnknownEntry { .. } => ErrorClass::NotFound,
            QuarantineError::BadName { .. } => ErrorClass::Other,
        }
    }
}

// Signing and key errors are all signature failures: a key that cannot be read, written or
// decrypted, or a signature that does not verify, is what exit code 5 has always meant.

impl RecipeError {
    /// Always validation: a gzip recipe that does not describe a stream ouk can rebuild.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Validation
    }
}

impl CatalogError {
    /// Always digest: a catalog record that does not open or holds a bad recipe is damaged
    /// data in the mirror's index.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::ReadError;
    use crate::import::policy::PolicyRefusal;

    fn enospc() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENOSPC)
    }

    #[test]
    fn wrapped_errors_answer_their_inner_class() {
        let full = KitError::Delta(ouk_delta::DeltaError::Store(ouk_store::StoreError::Io {
            context: "pack".into(),
            source: enospc(),
        }));
        assert_eq!(full.class(), ErrorClass::NoSpace);
        let part = KitError::Part(PartError::Io {
            context: "part".into(),
            source: enospc(),
        });
        assert_eq!(part.class(), ErrorClass::NoSpace);
        let unpacked = KitError::Read(ReadError::Output {
            path: "x".into(),
            source: enospc(),
        });
        assert_eq!(unpacked.class(), ErrorClass::NoSpace);
        let hostile = KitError::Read(ReadError::Duplicate { path: "x".into() });
        assert_eq!(hostile.class(), ErrorClass::Validation);
    }

    #[test]
    fn each_refusal_has_the_class_its_exit_code_always_meant() {
        let cases = [
            (KitError::NotFound("x".into()), ErrorClass::NotFound, 1),
            (KitError::Usage("x".into()), ErrorClass::Other, 1),
            (
                KitError::DigestMismatch {
                    what: "x".into(),
                    expected: "a".into(),
                    actual: "b".into(),
                },
                ErrorClass::Digest,
                2,
            ),
            (
                KitError::Signature {
                    what: "x".into(),
                    message: "m".into(),
                },
                ErrorClass::Signature,
                5,
            ),
            (
                KitError::Policy(PolicyRefusal::NotNewer {
                    kit: "1".into(),
                    active: "2".into(),
                }),
                ErrorClass::NotNewer,
                8,
            ),
            (
                KitError::Policy(PolicyRefusal::Stale {
                    created_at: "t".into(),
                    max_days: 1,
                }),
                ErrorClass::NotNewer,
                8,
            ),
            (KitError::Validation("x".into()), ErrorClass::Validation, 11),
            (
                KitError::Policy(PolicyRefusal::NoSpace {
                    path: "/".into(),
                    needed_gib: 1.0,
                    free_gib: 0.0,
                }),
                ErrorClass::NoSpace,
                12,
            ),
            (
                KitError::Delta(ouk_delta::DeltaError::Locked { path: "l".into() }),
                ErrorClass::Locked,
                13,
            ),
        ];
        for (error, class, code) in cases {
            assert_eq!(error.class(), class, "{error}");
            assert_eq!(error.class().exit_code(), code, "{error}");
        }
    }
}
