//! A threshold of signatures over a digest (a kit or delta bundle, a plug-in, a package),
//! checked against one role of a verified trust document.
//!
//! A signature here is a cosign blob signature (base64 of the DER ECDSA P-256 signature
//! over the SHA-256 of the bytes), so a kit's `.sig` counts as one signature of the set and
//! countersignatures are of the same kind.
//!
//! Invariants: only keys of the named role count (a `packages` or `plugins` key never
//! authorizes a kit); a revoked key never counts, whatever the age of what it signed; a
//! revoked digest is refused whoever signed it; one key counts once.

use std::collections::BTreeSet;

use base64ct::{Base64, Encoding};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::hazmat::PrehashVerifier;

use crate::document::{Role, TrustDocument};
use crate::error::TrustError;

/// One signature of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitSignature {
    /// The signer's kid when recorded (a `.sig` file does not say; then every key of the
    /// role is tried).
    pub keyid: Option<String>,
    /// Base64 of the DER signature over the SHA-256.
    pub sig: String,
}

/// Who authorized a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// Distinct kids whose signature verified (at least the threshold).
    pub signers: Vec<String>,
    /// The trust version that authorized it.
    pub version: u64,
}

/// Most signatures looked at for one digest.
pub const MAX_SET: usize = 64;

/// Check that a threshold of `role`'s keys in `doc` signed `sha256`. `what` names the
/// signed thing in a refusal.
pub fn authorize_digest(
    doc: &TrustDocument,
    role: Role,
    sha256: &[u8; 32],
    sigs: &[KitSignature],
    what: &str,
) -> Result<Authorized, TrustError> {
    let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    if doc.is_kit_revoked(&hex) {
        return Err(TrustError::RevokedKit {
            digest: hex,
            version: doc.version,
        });
    }
    let spec = doc
        .role(role)
        .ok_or_else(|| TrustError::NoSuchRole(role.name().into()))?;
    let mut good = BTreeSet::new();
    let mut revoked_signers = BTreeSet::new();
    for s in sigs.iter().take(MAX_SET) {
        if let Some(kid) = &s.keyid
            && doc.is_key_revoked(kid)
        {
            revoked_signers.insert(kid.clone());
            continue;
        }
        let Ok(der) = Base64::decode_vec(s.sig.trim_ascii()) else {
            continue;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            continue;
        };
        for kid in &spec.keyids {
            if good.contains(kid) || s.keyid.as_ref().is_some_and(|k| k != kid) {
                continue;
            }
            let Ok(key) = doc.key(kid) else { continue };
            if key.as_p256().verify_prehash(sha256, &sig).is_ok() {
                good.insert(kid.clone());
                break;
            }
        }
    }
    if good.len() < spec.threshold as usize {
        let mut detail = String::new();
        if !revoked_signers.is_empty() {
            let list: Vec<&str> = revoked_signers.iter().map(String::as_str).collect();
            detail = format!(" (signed by revoked key(s) {})", list.join(", "));
        }
        return Err(TrustError::Unauthorized {
            what: what.into(),
            role: role.name().into(),
            version: doc.version,
            have: good.len(),
            need: spec.threshold,
            detail,
        });
    }
    Ok(Authorized {
        signers: good.into_iter().collect(),
        version: doc.version,
    })
}
