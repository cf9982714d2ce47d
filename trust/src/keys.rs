//! Public keys as a trust document holds them: ECDSA P-256, PKIX (SubjectPublicKeyInfo) DER
//! in standard base64, named by their `kid`; and as a trust store file holds them, PKIX PEM
//! (`BEGIN PUBLIC KEY`), so the root's trust store (ouk-root) needs no crate above this one.
//!
//! Invariants: the `kid` is the RFC 7638 JWK thumbprint (base64url, no padding, of SHA-256
//! over `{"crv":"P-256","kty":"EC","x":"..","y":".."}`), computed exactly as ouk-kit computes
//! it, so a key has one name in `ouk trust status`, in a JWS header and here. A key entry
//! whose `kid` is not its thumbprint is refused (a document cannot give a key another key's
//! name).
//! - PEM is read strictly (a block needs its END line; only a `PUBLIC KEY` block is a key)
//!   and written in one form (LF line endings, trailing newline), the bytes cosign writes;
//!   the refusals are worded as ouk-bundle's `KeyError` words the same ones, so an operator
//!   reads one message for one fault whichever crate read the file.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

use crate::error::{PemError, TrustError};

/// PEM label of a PKIX (SubjectPublicKeyInfo) public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: p256::ecdsa::VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid())
            .finish()
    }
}

impl PublicKey {
    /// Wrap a p256 key.
    pub fn from_p256(inner: p256::ecdsa::VerifyingKey) -> Self {
        Self { inner }
    }

    /// The p256 key (to verify with).
    pub fn as_p256(&self) -> &p256::ecdsa::VerifyingKey {
        &self.inner
    }

    /// A key from PKIX DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, TrustError> {
        p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(Self::from_p256)
            .map_err(|e| TrustError::Key {
                kid: "?".into(),
                reason: format!("not an ECDSA P-256 PKIX public key: {e}"),
            })
    }

    /// A key from the base64 of its PKIX DER (the document's `public` field).
    pub fn from_base64(b64: &str) -> Result<Self, TrustError> {
        let der = Base64::decode_vec(b64).map_err(|_| TrustError::Key {
            kid: "?".into(),
            reason: "public key is not standard base64".into(),
        })?;
        Self::from_spki_der(&der)
    }

    /// PKIX DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.inner
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            // A valid P-256 point always encodes; an empty key would fail every later parse.
            .unwrap_or_default()
    }

    /// Base64 of the PKIX DER.
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.to_spki_der())
    }

    /// RFC 7638 thumbprint.
    pub fn kid(&self) -> String {
        kid_of(&self.inner)
    }

    /// Reads the first `PUBLIC KEY` (PKIX) block of `text`; text between blocks and blocks
    /// of other labels are skipped.
    pub fn from_pem(text: &str) -> Result<Self, PemError> {
        let blocks = pem_blocks(text)?;
        let block = blocks
            .iter()
            .find(|b| b.label == PUBLIC_KEY_LABEL)
            .ok_or_else(|| PemError::NoSuchBlock {
                wanted: PUBLIC_KEY_LABEL,
                found: blocks
                    .iter()
                    .map(|b| b.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let (_, der) = pem::decode_vec(block.text.as_bytes()).map_err(|e| PemError::Pem {
            label: block.label.clone(),
            reason: e.to_string(),
        })?;
        p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map(Self::from_p256)
            .map_err(|e| PemError::Spki(e.to_string()))
    }

    /// The key as PKIX PEM (`BEGIN PUBLIC KEY`, LF line endings, trailing newline).
    pub fn to_pem(&self) -> Result<String, PemError> {
        self.inner
            .to_public_key_pem(pem::LineEnding::LF)
            .map_err(|e| PemError::Encode(e.to_string()))
    }
}

/// One `-----BEGIN X----- ... -----END X-----` block of a PEM text.
pub struct PemBlock<'a> {
    /// The label between `BEGIN ` and the dashes (`PUBLIC KEY`, `ENCRYPTED SIGSTORE PRIVATE KEY`).
    pub label: String,
    /// The whole block, BEGIN and END lines included.
    pub text: &'a str,
}

/// Splits a text into its PEM blocks, ignoring text between blocks. The one splitter: the
/// signing and verifying keys of ouk-bundle use it too.
pub fn pem_blocks(input: &str) -> Result<Vec<PemBlock<'_>>, PemError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut blocks = Vec::new();
    let mut rest = 0usize;
    while let Some(off) = input.get(rest..).and_then(|s| s.find(BEGIN)) {
        let start = rest + off;
        let label_start = start + BEGIN.len();
        let tail = input.get(label_start..).unwrap_or_default();
        let Some(label_len) = tail.find(DASHES) else {
            break;
        };
        let label = tail.get(..label_len).unwrap_or_default().to_owned();
        let end_marker = format!("-----END {label}-----");
        let Some(end_off) = tail.find(&end_marker) else {
            return Err(PemError::Pem {
                label,
                reason: "missing END line".to_owned(),
            });
        };
        let end = label_start + end_off + end_marker.len();
        blocks.push(PemBlock {
            label,
            text: input.get(start..end).unwrap_or_default(),
        });
        rest = end;
    }
    if blocks.is_empty() {
        return Err(PemError::NotPem);
    }
    Ok(blocks)
}

/// RFC 7638 thumbprint of a P-256 key (the same value as ouk-kit's `VerifyingKey::kid`).
pub fn kid_of(key: &p256::ecdsa::VerifyingKey) -> String {
    let point = key.to_sec1_point(false);
    // A valid P-256 point's uncompressed SEC1 form is 0x04 || x (32) || y (32).
    let xy = point.as_bytes().get(1..).unwrap_or_default();
    let (x, y) = xy.split_at_checked(32).unwrap_or_default();
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        Base64UrlUnpadded::encode_string(x),
        Base64UrlUnpadded::encode_string(y)
    );
    Base64UrlUnpadded::encode_string(&Sha256::digest(jwk.as_bytes()))
}
