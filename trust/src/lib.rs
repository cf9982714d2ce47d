//! The signed, versioned trust document of an ouk host (TUF's root metadata for an
//! air-gapped fleet): which keys may sign for which role, how many of them must agree, which
//! keys and kits are revoked, and until when the document may be relied on.
//!
//! Pure logic: no file system, no clock (every time-dependent check takes `now`, seconds
//! since the Unix epoch), so every attack of TUF's list is a unit test here.
//!
//! - [`document`]: [`TrustDocument`] and its canonical encoding (sorted-key, whitespace-free
//!   JSON; one document has exactly one byte form), its validation rules.
//! - [`keys`]: public keys as they appear in a document (PKIX DER, base64) and in a trust
//!   store file (PKIX PEM), their `kid` (RFC 7638 thumbprint, the same `kid` as ouk-kit's
//!   keys).
//! - [`envelope`]: [`SignedDocument`], a DSSE envelope around the canonical bytes, and the
//!   threshold check of its signatures.
//! - [`chain`]: a host's move from one version to the next ([`verify_next`]) and a carried
//!   chain of versions ([`apply_chain`]), expiry ([`check_expiry`]).
//! - [`authorize`]: a threshold of signatures over a kit (or plug-in, or package) digest
//!   against one role, with revocations.
//!
//! Invariants:
//! - Untrusted bytes are used only after they verified: an envelope's payload is parsed as a
//!   document only once a threshold of signatures the host already trusts covers it (the
//!   one exception, [`chain::peek_version`], reads a version number to skip links the host
//!   is already past; a skipped link changes nothing).
//! - A revoked key's signature never counts, for any role, on any document or kit, whatever
//!   its age; a revocation once made stays in every later version.
//! - Versions move by exactly one per link; a document never replaces one of equal or
//!   higher version.

pub mod authorize;
pub mod chain;
pub mod document;
pub mod envelope;
pub mod error;
pub mod keys;

#[cfg(test)]
mod tests;

pub use authorize::{Authorized, KitSignature, authorize_digest};
pub use chain::{ChainOutcome, apply_chain, check_expiry, peek_version, verify_first, verify_next};
pub use document::{KeyEntry, Revocations, Role, RoleSpec, TrustDocument};
pub use envelope::{PAYLOAD_TYPE, SignedDocument, VerifiedDocument};
pub use error::{PemError, TrustError};
pub use keys::{PUBLIC_KEY_LABEL, PublicKey, kid_of};
