//! Moving a host's trust forward: one link ([`verify_next`]), a carried chain of links
//! ([`apply_chain`]), and expiry ([`check_expiry`]). TUF's root update (client workflow
//! 5.3), without a network: the chain travels in the kit.
//!
//! Rules for the link from version N (trusted) to a candidate:
//! 1. its version is exactly N + 1: lower or equal is a replay or rollback, higher is a
//!    missing link;
//! 2. a threshold of version N's `trust` keys (none revoked in N) signed it: the keys the
//!    host already trusts agree to the change;
//! 3. then (and only then) its payload is parsed and validated, and a threshold of its own
//!    `trust` keys signed it: the new keys hold, so a typo does not lock a fleet out;
//! 4. it keeps every revocation of version N.
//!
//! Expiry is checked on the newest version only, after the whole chain applied: an
//! intermediate version may have expired long ago (a host far behind), what counts is that
//! the host ends on a current document.

use serde::Deserialize;

use crate::document::{Role, TrustDocument, format_time};
use crate::envelope::{SignedDocument, VerifiedDocument};
use crate::error::TrustError;

/// What a chain did to a host's trust.
#[derive(Debug, Clone, Default)]
pub struct ChainOutcome {
    /// Versions applied, in order (empty: nothing newer was carried).
    pub applied: Vec<VerifiedDocument>,
    /// Links at or below the host's version, passed over unused.
    pub skipped: usize,
}

impl ChainOutcome {
    /// The newest version applied.
    pub fn latest(&self) -> Option<&VerifiedDocument> {
        self.applied.last()
    }
}

/// The `version` of an envelope's (unverified) payload. Used only to pass over links a
/// host is already past and to name the problem in a refusal; nothing it returns is
/// trusted or applied.
pub fn peek_version(env: &SignedDocument) -> Result<u64, TrustError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u64,
    }
    let bytes = env.payload_bytes()?;
    serde_json::from_slice::<VersionOnly>(&bytes)
        .map(|v| v.version)
        .map_err(|e| TrustError::Malformed(format!("payload: {e}")))
}

/// A host's first document (`ouk trust init`, or one installed by hand): valid and signed
/// by a threshold of its own `trust` keys. Whoever installs it is the root of trust.
pub fn verify_first(env: &SignedDocument) -> Result<VerifiedDocument, TrustError> {
    env.check_shape()?;
    let document = TrustDocument::from_canonical_bytes(&env.payload_bytes()?)?;
    env.require_threshold(&document, Role::Trust, document.version)?;
    Ok(VerifiedDocument {
        document,
        envelope: env.clone(),
    })
}

/// The link from `current` to `candidate` (rules 1-4 of the module doc).
pub fn verify_next(
    current: &TrustDocument,
    candidate: &SignedDocument,
) -> Result<VerifiedDocument, TrustError> {
    candidate.check_shape()?;
    let next = current.version.saturating_add(1);
    let claimed = peek_version(candidate)?;
    check_successor(current.version, claimed)?;
    candidate.require_threshold(current, Role::Trust, next)?;
    let document = TrustDocument::from_canonical_bytes(&candidate.payload_bytes()?)?;
    // The verified bytes are the peeked bytes; checked again on the parsed document anyway.
    check_successor(current.version, document.version)?;
    candidate.require_threshold(&document, Role::Trust, next)?;
    for kid in &current.revoked.keys {
        if !document.is_key_revoked(kid) {
            return Err(TrustError::RevocationDropped {
                version: next,
                what: format!("key {kid}"),
            });
        }
    }
    for digest in &current.revoked.kits {
        if !document.is_kit_revoked(digest) {
            return Err(TrustError::RevocationDropped {
                version: next,
                what: format!("kit {digest}"),
            });
        }
    }
    Ok(VerifiedDocument {
        document,
        envelope: candidate.clone(),
    })
}

fn check_successor(current: u64, found: u64) -> Result<(), TrustError> {
    if found <= current {
        Err(TrustError::Rollback { current, found })
    } else if found != current.saturating_add(1) {
        Err(TrustError::MissingLink { current, found })
    } else {
        Ok(())
    }
}

/// Apply a carried chain to a host at `current`: links at or below its version are passed
/// over (they serve hosts further behind), the rest must follow one another from
/// `current.version + 1`, each verified by [`verify_next`] against the one before. All or
/// nothing: on a refusal nothing is applied.
pub fn apply_chain(
    current: &TrustDocument,
    links: &[SignedDocument],
) -> Result<ChainOutcome, TrustError> {
    let mut outcome = ChainOutcome::default();
    let mut at = current.clone();
    for link in links {
        if peek_version(link)? <= current.version {
            outcome.skipped += 1;
            continue;
        }
        let verified = verify_next(&at, link)?;
        at = verified.document.clone();
        outcome.applied.push(verified);
    }
    Ok(outcome)
}

/// Refuse a document that expired at `now` (Unix seconds): the host fails closed until a
/// kit brings a newer one (or its clock is corrected).
pub fn check_expiry(doc: &TrustDocument, now: i64) -> Result<(), TrustError> {
    if now >= doc.expires_unix()? {
        return Err(TrustError::Expired {
            version: doc.version,
            expires: doc.expires.clone(),
            now: format_time(now),
        });
    }
    Ok(())
}
