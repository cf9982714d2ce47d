//! A trust document as it travels: a DSSE v1 envelope (`payloadType`
//! [`PAYLOAD_TYPE`], `payload` the document's canonical bytes in standard base64,
//! `signatures` of `{keyid, sig}`), each `sig` the base64 of a DER ECDSA P-256 signature
//! over SHA-256 of the DSSE pre-authentication encoding (PAE) of type and payload.
//!
//! Why DSSE: the PAE binds the payload type into what is signed, so a signature made over a
//! trust document can never be presented as a kit's cosign `.sig` (which signs a bundle's
//! SHA-256), a JWS or an in-toto attestation, and the reverse; and DSSE tooling can read it.
//!
//! Invariants: [`SignedDocument::parse`] checks structure and bounds only; the payload is
//! decoded into a [`TrustDocument`] by the chain logic only once enough signatures from the
//! host's current trust role verified over it. Signatures by unknown or revoked keys, and
//! repeated signatures by one key, are ignored (never counted twice).

use std::collections::BTreeSet;

use base64ct::{Base64, Encoding};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{DerSignature, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::document::{Role, TrustDocument};
use crate::error::TrustError;
use crate::keys::kid_of;

/// DSSE payload type of a trust document.
pub const PAYLOAD_TYPE: &str = "application/vnd.ouk.trust-root.v1+json";
/// Largest envelope accepted (bytes of JSON).
pub const MAX_ENVELOPE_BYTES: usize = 8 << 20;
/// Most signatures looked at on one envelope.
pub const MAX_SIGNATURES: usize = 64;

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's kid (a hint: the signature is checked against that key only).
    pub keyid: String,
    /// Base64 of the DER signature over SHA-256(PAE).
    pub sig: String,
}

/// A signed trust document (DSSE envelope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDocument {
    /// Base64 of the canonical document bytes.
    pub payload: String,
    /// Always [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures (any order).
    pub signatures: Vec<EnvelopeSignature>,
}

/// A document whose signatures were checked, with who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDocument {
    /// The document (parsed from verified bytes).
    pub document: TrustDocument,
    /// The envelope it came in (to store and to pass on).
    pub envelope: SignedDocument,
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl SignedDocument {
    /// Parse an envelope (structure and bounds only; nothing is trusted yet).
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(TrustError::Malformed(format!(
                "envelope of {} bytes, at most {MAX_ENVELOPE_BYTES}",
                bytes.len()
            )));
        }
        let env: SignedDocument =
            serde_json::from_slice(bytes).map_err(|e| TrustError::Malformed(e.to_string()))?;
        env.check_shape()?;
        Ok(env)
    }

    pub(crate) fn check_shape(&self) -> Result<(), TrustError> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(TrustError::Malformed(format!(
                "payloadType {:?}, expected {PAYLOAD_TYPE:?}",
                self.payload_type
            )));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(TrustError::Malformed(format!(
                "{} signatures, at most {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        Ok(())
    }

    /// The envelope as JSON (what is stored and carried).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The payload bytes (still unverified).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, TrustError> {
        Base64::decode_vec(&self.payload)
            .map_err(|_| TrustError::Malformed("payload is not standard base64".into()))
    }

    /// An unsigned envelope around `doc` (validated first).
    pub fn unsigned(doc: &TrustDocument) -> Result<Self, TrustError> {
        doc.validate()?;
        Ok(SignedDocument {
            payload: Base64::encode_string(&doc.to_canonical_bytes()),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: Vec::new(),
        })
    }

    /// Add `key`'s signature (replacing an earlier one by the same key). Deterministic
    /// (RFC 6979).
    pub fn sign(&mut self, key: &p256::ecdsa::SigningKey) -> Result<(), TrustError> {
        let payload = self.payload_bytes()?;
        let digest = Sha256::digest(pae(&self.payload_type, &payload));
        let sig: DerSignature = key
            .sign_prehash(&digest)
            .map_err(|e| TrustError::Sign(e.to_string()))?;
        let keyid = kid_of(key.verifying_key());
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(EnvelopeSignature {
            keyid,
            sig: Base64::encode_string(sig.as_bytes()),
        });
        self.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
        Ok(())
    }

    /// `doc` signed by every key of `keys`.
    pub fn signed(
        doc: &TrustDocument,
        keys: &[&p256::ecdsa::SigningKey],
    ) -> Result<Self, TrustError> {
        let mut env = Self::unsigned(doc)?;
        for k in keys {
            env.sign(k)?;
        }
        Ok(env)
    }

    /// The distinct kids of `by`'s `role` (not revoked in `by`) whose signature over this
    /// envelope verifies.
    pub fn valid_signers(&self, by: &TrustDocument, role: Role) -> Result<Vec<String>, TrustError> {
        let Some(spec) = by.role(role) else {
            return Err(TrustError::NoSuchRole(role.name().into()));
        };
        let payload = self.payload_bytes()?;
        let digest = Sha256::digest(pae(&self.payload_type, &payload));
        let mut good = BTreeSet::new();
        for s in self.signatures.iter().take(MAX_SIGNATURES) {
            if good.contains(&s.keyid)
                || by.is_key_revoked(&s.keyid)
                || spec.keyids.binary_search(&s.keyid).is_err()
            {
                continue;
            }
            let Ok(key) = by.key(&s.keyid) else { continue };
            let Ok(der) = Base64::decode_vec(&s.sig) else {
                continue;
            };
            let Ok(sig) = Signature::from_der(&der) else {
                continue;
            };
            if key.as_p256().verify_prehash(&digest, &sig).is_ok() {
                good.insert(s.keyid.clone());
            }
        }
        Ok(good.into_iter().collect())
    }

    /// [`valid_signers`](Self::valid_signers), refusing fewer than the role's threshold.
    /// `version` names the document being checked in the error.
    pub fn require_threshold(
        &self,
        by: &TrustDocument,
        role: Role,
        version: u64,
    ) -> Result<Vec<String>, TrustError> {
        let signers = self.valid_signers(by, role)?;
        let need = by.role(role).map_or(u32::MAX, |s| s.threshold);
        if signers.len() < need as usize {
            let revoked: Vec<&str> = self
                .signatures
                .iter()
                .filter(|s| by.is_key_revoked(&s.keyid))
                .map(|s| s.keyid.as_str())
                .collect();
            let detail = if revoked.is_empty() {
                String::new()
            } else {
                format!(" (signed by revoked key(s) {})", revoked.join(", "))
            };
            return Err(TrustError::BelowThreshold {
                version,
                role: role.name().into(),
                by_version: by.version,
                have: signers.len(),
                need,
                detail,
            });
        }
        Ok(signers)
    }
}
