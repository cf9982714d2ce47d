//! Why a trust document, a chain or a signature set was refused. Every variant says what
//! was expected and what was found, so an operator knows what to carry to the host.

/// A refusal of the trust logic.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust document is malformed: {0}")]
    Malformed(String),
    #[error(
        "trust document is not in canonical form (sorted keys, no whitespace): re-sign it with ouk"
    )]
    NonCanonical,
    #[error("trust document is invalid: {0}")]
    Invalid(String),
    #[error("public key {kid}: {reason}")]
    Key { kid: String, reason: String },
    #[error(
        "trust document version {version}: {have} valid signature(s) from role {role:?} of version {by_version}, {need} required{detail}"
    )]
    BelowThreshold {
        version: u64,
        role: String,
        by_version: u64,
        have: usize,
        need: u32,
        detail: String,
    },
    #[error(
        "trust document version {found} does not follow version {current}: replay or rollback of an older trust document"
    )]
    Rollback { current: u64, found: u64 },
    #[error(
        "trust chain is missing a link: the host is at version {current}, the next document carried is version {found} (carry every version from {next} on)",
        next = current + 1
    )]
    MissingLink { current: u64, found: u64 },
    #[error(
        "trust document version {version} drops the revocation of {what}: revocations are permanent"
    )]
    RevocationDropped { version: u64, what: String },
    #[error(
        "trust document version {version} expired at {expires} (host clock {now}): carry a kit with a newer trust document (`ouk trust add`/`remove`/`renew` on the connected side), or correct this host's clock"
    )]
    Expired {
        version: u64,
        expires: String,
        now: String,
    },
    #[error("kit {digest} is revoked by trust document version {version}")]
    RevokedKit { digest: String, version: u64 },
    #[error(
        "{what}: {have} valid signature(s) from role {role:?} of trust version {version}, {need} required{detail}"
    )]
    Unauthorized {
        what: String,
        role: String,
        version: u64,
        have: usize,
        need: u32,
        detail: String,
    },
    #[error("role {0:?} is not defined in the trust document")]
    NoSuchRole(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a PKIX PEM public key could not be read or written. The messages are ouk-bundle's
/// `KeyError` messages for the same faults (one fault, one message, whichever crate read it).
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("no PEM block found (expected -----BEGIN ...-----)")]
    NotPem,
    #[error("malformed PEM block {label:?}: {reason}")]
    Pem { label: String, reason: String },
    #[error("no {wanted} PEM block found (found: {found})")]
    NoSuchBlock { wanted: &'static str, found: String },
    #[error("not an ECDSA P-256 PKIX public key: {0}")]
    Spki(String),
    #[error("encoding the key failed: {0}")]
    Encode(String),
}
