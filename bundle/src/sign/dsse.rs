//! DSSE v1 envelopes (Dead Simple Signing Envelope), used for the kit's in-toto provenance.
//!
//! `Envelope = {"payload": b64(body), "payloadType": type, "signatures": [{"keyid", "sig"}]}`
//! where `sig` = base64 (standard, padded) of the ASN.1 DER ECDSA P-256 signature over
//! SHA-256 of `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (LEN =
//! ASCII decimal byte count). DER, not raw `r||s`: securesystemslib verifies DER. `keyid` is
//! the RFC 7638 thumbprint of the signing key, as in the manifest JWS.
//!
//! Invariants:
//! - Signing is deterministic (RFC 6979); the envelope serializes with members in the order
//!   `payload`, `payloadType`, `signatures`.
//! - [`dsse_verify`] succeeds when at least one signature verifies under a trusted key whose
//!   `kid` equals the signature's `keyid` (an empty `keyid` is tried against every trusted
//!   key); it returns the decoded payload, so callers only ever use verified bytes.
//!   Signatures by unknown keys are ignored. Base64 fields accept the standard or URL-safe
//!   alphabet, padded or not, as the DSSE spec allows.

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{DerSignature, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::{SigningKey, VerifyingKey};

/// A DSSE envelope as serialized to JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    /// Media type of the payload, e.g. `application/vnd.in-toto+json`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// RFC 7638 thumbprint of the signing key (may be empty in envelopes made elsewhere).
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the DER ECDSA signature over SHA-256 of the PAE.
    pub sig: String,
}

/// A verified envelope's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'k> {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// The trusted key that verified a signature.
    pub key: &'k VerifyingKey,
}

/// Why an envelope could not be made or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("DSSE payload is not valid base64")]
    PayloadEncoding,
    #[error("DSSE envelope has no signatures")]
    NoSignatures,
    #[error("no DSSE signature verified under a trusted key (keyids in envelope: {0:?})")]
    NotVerified(Vec<String>),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` of `payload_type` into a one-signature envelope.
pub fn dsse_sign(
    key: &SigningKey,
    payload_type: &str,
    payload: &[u8],
) -> Result<Envelope, DsseError> {
    let digest = Sha256::digest(pae(payload_type, payload));
    let sig: DerSignature = key
        .inner()
        .sign_prehash(&digest)
        .map_err(|e| DsseError::Sign(e.to_string()))?;
    Ok(Envelope {
        payload: Base64::encode_string(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: key.kid(),
            sig: Base64::encode_string(sig.as_bytes()),
        }],
    })
}

/// Verifies `envelope` against the trusted `keys`; returns the payload on success.
pub fn dsse_verify<'k>(
    keys: &'k [VerifyingKey],
    envelope: &Envelope,
) -> Result<Verified<'k>, DsseError> {
    if envelope.signatures.is_empty() {
        return Err(DsseError::NoSignatures);
    }
    let payload = decode_any_b64(&envelope.payload).ok_or(DsseError::PayloadEncoding)?;
    let digest = Sha256::digest(pae(&envelope.payload_type, &payload));
    for s in &envelope.signatures {
        let Some(sig) = decode_any_b64(&s.sig).and_then(|der| Signature::from_der(&der).ok())
        else {
            continue;
        };
        for key in keys {
            if !s.keyid.is_empty() && s.keyid != key.kid() {
                continue;
            }
            if key.inner().verify_prehash(&digest, &sig).is_ok() {
                return Ok(Verified {
                    payload_type: envelope.payload_type.clone(),
                    payload,
                    key,
                });
            }
        }
    }
    Err(DsseError::NotVerified(
        envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .collect(),
    ))
}

/// Decodes standard or URL-safe base64, padded or not.
fn decode_any_b64(s: &str) -> Option<Vec<u8>> {
    Base64::decode_vec(s)
        .or_else(|_| Base64Unpadded::decode_vec(s))
        .or_else(|_| Base64Url::decode_vec(s))
        .or_else(|_| Base64UrlUnpadded::decode_vec(s))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::testutil::{fixture_key, require_python_module, run};

    const INTOTO: &str = "application/vnd.in-toto+json";
    const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"kit.tar.gz","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;

    fn fixture() -> SigningKey {
        SigningKey::from_pem(&fixture_key(), Some(b"hello")).expect("fixture key")
    }

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn round_trip_serde_and_tamper() {
        let key = fixture();
        let keys = [key.verifying_key()];
        let env = dsse_sign(&key, INTOTO, STATEMENT).expect("sign");
        assert_eq!(env.signatures[0].keyid, key.kid());

        let json = serde_json::to_string(&env).expect("json");
        assert!(json.starts_with(r#"{"payload":""#), "{json}");
        assert!(
            json.contains(
                r#""payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":""#
            )
        );
        let back: Envelope = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, env);

        let ok = dsse_verify(&keys, &back).expect("verifies");
        assert_eq!(ok.payload, STATEMENT);
        assert_eq!(ok.payload_type, INTOTO);
        assert_eq!(ok.key, &keys[0]);

        // Changed payload byte.
        let mut body = STATEMENT.to_vec();
        body[3] ^= 1;
        let mut t = env.clone();
        t.payload = Base64::encode_string(&body);
        assert!(matches!(
            dsse_verify(&keys, &t),
            Err(DsseError::NotVerified(_))
        ));
        // Changed payload type (PAE binds it).
        let mut t = env.clone();
        t.payload_type = "application/json".into();
        assert!(matches!(
            dsse_verify(&keys, &t),
            Err(DsseError::NotVerified(_))
        ));
        // Untrusted key.
        let other = [SigningKey::generate().expect("gen").verifying_key()];
        assert!(matches!(
            dsse_verify(&other, &env),
            Err(DsseError::NotVerified(_))
        ));
        // Garbage.
        let mut t = env.clone();
        t.payload = "%%%".into();
        assert!(matches!(
            dsse_verify(&keys, &t),
            Err(DsseError::PayloadEncoding)
        ));
        let mut t = env.clone();
        t.signatures[0].sig = "AAAA".into();
        assert!(matches!(
            dsse_verify(&keys, &t),
            Err(DsseError::NotVerified(_))
        ));
        let mut t = env.clone();
        t.signatures.clear();
        assert!(matches!(
            dsse_verify(&keys, &t),
            Err(DsseError::NoSignatures)
        ));
        // Empty keyid is tried against every trusted key; url-safe base64 is accepted.
        let mut t = env.clone();
        t.signatures[0].keyid.clear();
        t.payload = Base64UrlUnpadded::encode_string(STATEMENT);
        assert_eq!(dsse_verify(&keys, &t).expect("verifies").payload, STATEMENT);
    }

    #[test]
    fn signing_is_deterministic() {
        let key = fixture();
        let a = dsse_sign(&key, INTOTO, STATEMENT).expect("sign");
        let b = dsse_sign(&key, INTOTO, STATEMENT).expect("sign");
        assert_eq!(a, b);
    }

    const SSLIB_VERIFY: &str = r#"
import sys, json
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
pem = open(sys.argv[1]).read()
env = Envelope.from_dict(json.load(open(sys.argv[2])))
key = SSlibKey(sys.argv[3], "ecdsa", "ecdsa-sha2-nistp256", {"public": pem})
try:
    env.verify([key], 1)
except Exception as e:
    print("FAILED " + repr(e))
    sys.exit(3)
print("VERIFIED")
"#;

    fn sslib_verify(public: &VerifyingKey, env: &Envelope) -> (bool, String) {
        require_python_module("securesystemslib.signer", "securesystemslib[crypto]");
        require_python_module("cryptography", "securesystemslib[crypto]");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("verify.py");
        let pem = dir.path().join("pub.pem");
        let envf = dir.path().join("envelope.json");
        std::fs::write(&script, SSLIB_VERIFY).expect("write");
        std::fs::write(&pem, public.to_pem().expect("pem")).expect("write");
        std::fs::write(&envf, serde_json::to_vec(env).expect("json")).expect("write");
        let kid = public.kid();
        let out = run(
            "python3",
            [
                script.as_os_str(),
                pem.as_os_str(),
                envf.as_os_str(),
                kid.as_ref(),
            ],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && text.contains("VERIFIED"), text)
    }

    #[test]
    fn securesystemslib_verifies_our_envelope_and_rejects_a_changed_byte() {
        let key = fixture();
        let env = dsse_sign(&key, INTOTO, STATEMENT).expect("sign");
        let (ok, out) = sslib_verify(&key.verifying_key(), &env);
        assert!(ok, "securesystemslib did not verify: {out}");

        let mut body = STATEMENT.to_vec();
        body[20] ^= 1;
        let mut t = env.clone();
        t.payload = Base64::encode_string(&body);
        let (ok, out) = sslib_verify(&key.verifying_key(), &t);
        assert!(!ok, "securesystemslib verified a changed payload: {out}");
        assert!(out.contains("FAILED"), "{out}");
    }
}
