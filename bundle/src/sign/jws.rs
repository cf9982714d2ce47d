//! Detached JWS for the kit manifest: RFC 7515 compact serialization with the RFC 7797
//! unencoded payload option, ES256.
//!
//! Output: `BASE64URL(header) || ".." || BASE64URL(signature)` where the protected header is
//! exactly `{"alg":"ES256","b64":false,"crit":["b64"],"kid":"<RFC 7638 thumbprint>"}` (fixed
//! member order, no whitespace: deterministic), the signing input is
//! `ASCII(BASE64URL(header)) || "." || payload bytes` (payload not encoded, RFC 7797), and
//! the signature is the 64-byte JOSE form `r || s` (not DER). base64url has no padding.
//!
//! Invariants:
//! - Signing is deterministic (RFC 6979): same key + payload give the same JWS string.
//! - Verification accepts only what signing produces: three parts with an empty payload
//!   part, `alg` = `ES256`, `b64` = `false`, `crit` = `["b64"]` (an unknown critical header
//!   is refused, RFC 7515 §4.1.11), a `kid` naming one of the trusted keys, and a valid
//!   64-byte signature. Surrounding ASCII whitespace of the token (a trailing newline in a
//!   `.jws` file) is ignored.
//! - The payload is hashed by streaming in the `_reader` variants; memory is bounded.

use std::io::{self, Read};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::{SigningKey, VerifyingKey};
use ouk_store::fsutil::{HASH_BUFFER, PassError, read_through};

/// The only JWS algorithm produced and accepted.
pub const ALG: &str = "ES256";

/// Why a JWS could not be made, or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("reading the payload: {0}")]
    Io(#[from] io::Error),
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    #[error("JWS protected header is not valid JSON: {0}")]
    Header(String),
    #[error("JWS algorithm {0:?} is not accepted (expected \"ES256\")")]
    UnsupportedAlg(String),
    #[error("JWS header must have \"b64\": false (RFC 7797 unencoded payload)")]
    B64NotFalse,
    #[error("JWS header \"crit\" must be exactly [\"b64\"], found {0:?}")]
    Crit(Vec<String>),
    #[error("JWS header has no \"kid\"")]
    MissingKid,
    #[error("JWS kid {0:?} matches none of the trusted keys")]
    UnknownKid(String),
    #[error("JWS carries an attached payload; expected the detached form header..signature")]
    NotDetached,
    #[error("JWS signature is not a base64url 64-byte ES256 signature")]
    SignatureEncoding,
    #[error("JWS signature does not match the payload (kid {kid})")]
    Mismatch { kid: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The JWS protected header, as written (member order is the serialization order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    pub b64: bool,
    pub crit: Vec<String>,
    pub kid: String,
}

/// Header as read: every member optional so that each missing one gets its own error.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    b64: Option<bool>,
    crit: Option<Vec<String>>,
    kid: Option<String>,
}

/// Detached JWS over `payload` (in memory).
pub fn sign_detached_jws(key: &SigningKey, payload: &[u8]) -> Result<String, JwsError> {
    sign_detached_jws_reader(key, payload)
}

/// Detached JWS over the bytes of `reader` (streamed).
pub fn sign_detached_jws_reader<R: Read>(key: &SigningKey, reader: R) -> Result<String, JwsError> {
    let header = JwsHeader {
        alg: ALG.to_owned(),
        b64: false,
        crit: vec!["b64".to_owned()],
        kid: key.kid(),
    };
    let header_json = serde_json::to_vec(&header).map_err(|e| JwsError::Header(e.to_string()))?;
    let header_b64 = Base64UrlUnpadded::encode_string(&header_json);
    let digest = signing_input_digest(&header_b64, reader)?;
    let sig: Signature = key
        .inner()
        .sign_prehash(&digest)
        .map_err(|e| JwsError::Sign(e.to_string()))?;
    Ok(format!(
        "{header_b64}..{}",
        Base64UrlUnpadded::encode_string(&sig.to_bytes())
    ))
}

/// Verifies a detached JWS over `payload` against the trusted `keys` (selected by `kid`);
/// returns the key that verified it.
pub fn verify_detached_jws<'k>(
    keys: &'k [VerifyingKey],
    jws: &str,
    payload: &[u8],
) -> Result<&'k VerifyingKey, JwsError> {
    verify_detached_jws_reader(keys, jws, payload)
}

/// [`verify_detached_jws`] with the payload streamed from `reader`. The token and key are
/// checked before the payload is read.
pub fn verify_detached_jws_reader<'k, R: Read>(
    keys: &'k [VerifyingKey],
    jws: &str,
    reader: R,
) -> Result<&'k VerifyingKey, JwsError> {
    let (header_b64, header, sig_b64) = split(jws)?;
    let key = keys
        .iter()
        .find(|k| k.kid() == header.kid)
        .ok_or_else(|| JwsError::UnknownKid(header.kid.clone()))?;
    let sig_bytes =
        Base64UrlUnpadded::decode_vec(sig_b64).map_err(|_| JwsError::SignatureEncoding)?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| JwsError::SignatureEncoding)?;
    let digest = signing_input_digest(header_b64, reader)?;
    key.inner()
        .verify_prehash(&digest, &sig)
        .map_err(|_| JwsError::Mismatch { kid: header.kid })?;
    Ok(key)
}

/// Parses and checks a detached JWS's protected header (without verifying the signature).
pub fn parse_jws_header(jws: &str) -> Result<JwsHeader, JwsError> {
    split(jws).map(|(_, header, _)| header)
}

/// Splits `header..signature`, decodes and checks the header.
fn split(jws: &str) -> Result<(&str, JwsHeader, &str), JwsError> {
    let mut parts = jws.trim_ascii().split('.');
    let (Some(header_b64), Some(payload), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("expected three dot-separated parts"));
    };
    if !payload.is_empty() {
        return Err(JwsError::NotDetached);
    }
    let header_json = Base64UrlUnpadded::decode_vec(header_b64)
        .map_err(|_| JwsError::Malformed("protected header is not base64url"))?;
    let raw: RawHeader =
        serde_json::from_slice(&header_json).map_err(|e| JwsError::Header(e.to_string()))?;
    let alg = raw.alg.unwrap_or_default();
    if alg != ALG {
        return Err(JwsError::UnsupportedAlg(alg));
    }
    if raw.b64 != Some(false) {
        return Err(JwsError::B64NotFalse);
    }
    let crit = raw.crit.unwrap_or_default();
    if crit != ["b64"] {
        return Err(JwsError::Crit(crit));
    }
    let kid = raw.kid.ok_or(JwsError::MissingKid)?;
    Ok((
        header_b64,
        JwsHeader {
            alg,
            b64: false,
            crit,
            kid,
        },
        sig_b64,
    ))
}

/// SHA-256 of `ASCII(header_b64) || "." || payload`, the payload streamed.
fn signing_input_digest<R: Read>(header_b64: &str, mut reader: R) -> io::Result<[u8; 32]> {
    // Not the shared hashing reader: the digest covers the JWS header and "." before the
    // payload, so the hasher is primed first; the payload goes through the shared loop.
    let mut hasher = Sha256::new();
    hasher.update(header_b64.as_bytes());
    hasher.update(b".");
    read_through(&mut reader, HASH_BUFFER, |piece| {
        hasher.update(piece);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        PassError::Read(e) => e,
        PassError::Sink(never) => match never {},
    })?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::testutil::{fixture_key, require_python_module, run};
    use p256::ecdsa::signature::Verifier;

    fn fixture() -> SigningKey {
        SigningKey::from_pem(&fixture_key(), Some(b"hello")).expect("fixture key")
    }

    const MANIFEST: &[u8] = br#"{"version":"2025.10.0","channel":"edge","artifacts":[{"name":"a.txt","sha256":"00","size":1}]}
"#;

    #[test]
    fn header_is_exact_and_signature_is_raw_r_s() {
        let key = fixture();
        let jws = sign_detached_jws(&key, MANIFEST).expect("sign");
        let (h, empty, s) = {
            let mut it = jws.split('.');
            (
                it.next().unwrap_or(""),
                it.next().unwrap_or("x"),
                it.next().unwrap_or(""),
            )
        };
        assert_eq!(empty, "");
        let header = Base64UrlUnpadded::decode_vec(h).expect("b64");
        assert_eq!(
            String::from_utf8(header).expect("utf8"),
            format!(
                r#"{{"alg":"ES256","b64":false,"crit":["b64"],"kid":"{}"}}"#,
                key.kid()
            )
        );
        let sig = Base64UrlUnpadded::decode_vec(s).expect("b64");
        assert_eq!(sig.len(), 64);
        // Independent check of the signing input: plain (non-prehash) ES256 verify.
        let mut input = h.as_bytes().to_vec();
        input.push(b'.');
        input.extend_from_slice(MANIFEST);
        let sig = Signature::from_slice(&sig).expect("sig");
        key.verifying_key()
            .inner()
            .verify(&input, &sig)
            .expect("verifies over header_b64 '.' payload");
    }

    #[test]
    fn round_trip_tamper_and_header_checks() {
        let key = fixture();
        let keys = [
            SigningKey::generate().expect("gen").verifying_key(),
            key.verifying_key(),
        ];
        let jws = sign_detached_jws(&key, MANIFEST).expect("sign");
        let who = verify_detached_jws(&keys, &jws, MANIFEST).expect("verifies");
        assert_eq!(who, &keys[1]);
        verify_detached_jws(&keys, &format!("{jws}\n"), MANIFEST).expect("trailing newline");
        assert_eq!(parse_jws_header(&jws).expect("header").kid, key.kid());

        let mut changed = MANIFEST.to_vec();
        changed[5] ^= 1;
        assert!(matches!(
            verify_detached_jws(&keys, &jws, &changed),
            Err(JwsError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_detached_jws(&keys[..1], &jws, MANIFEST),
            Err(JwsError::UnknownKid(_))
        ));

        let sig = jws.rsplit('.').next().unwrap_or_default();
        let forge = |header: &str| {
            format!(
                "{}..{sig}",
                Base64UrlUnpadded::encode_string(header.as_bytes())
            )
        };
        let kid = key.kid();
        type Check = fn(&JwsError) -> bool;
        let cases: [(String, Check); 6] = [
            (
                forge(&format!(
                    r#"{{"alg":"none","b64":false,"crit":["b64"],"kid":"{kid}"}}"#
                )),
                |e| matches!(e, JwsError::UnsupportedAlg(_)),
            ),
            (
                forge(&format!(
                    r#"{{"alg":"ES256","crit":["b64"],"kid":"{kid}"}}"#
                )),
                |e| matches!(e, JwsError::B64NotFalse),
            ),
            (
                forge(&format!(
                    r#"{{"alg":"ES256","b64":true,"crit":["b64"],"kid":"{kid}"}}"#
                )),
                |e| matches!(e, JwsError::B64NotFalse),
            ),
            (
                forge(&format!(r#"{{"alg":"ES256","b64":false,"kid":"{kid}"}}"#)),
                |e| matches!(e, JwsError::Crit(_)),
            ),
            (
                forge(&format!(
                    r#"{{"alg":"ES256","b64":false,"crit":["b64","exp"],"kid":"{kid}"}}"#
                )),
                |e| matches!(e, JwsError::Crit(_)),
            ),
            (
                forge(r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#),
                |e| matches!(e, JwsError::MissingKid),
            ),
        ];
        for (token, check) in cases {
            let err = verify_detached_jws(&keys, &token, MANIFEST).expect_err(&token);
            assert!(check(&err), "{token}: {err}");
        }
        // A reordered but equivalent header changes the signing input: mismatch.
        let reordered = forge(&format!(
            r#"{{"b64":false,"alg":"ES256","crit":["b64"],"kid":"{kid}"}}"#
        ));
        assert!(matches!(
            verify_detached_jws(&keys, &reordered, MANIFEST),
            Err(JwsError::Mismatch { .. })
        ));
    }

    #[test]
    fn malformed_tokens_are_typed_errors() {
        let keys = [fixture().verifying_key()];
        let jws = sign_detached_jws(&fixture(), MANIFEST).expect("sign");
        let (h, s) = jws.split_once("..").unwrap_or_default();
        for (token, what) in [
            (String::new(), "empty"),
            ("a.b".to_owned(), "two parts"),
            (format!("{h}..{s}.x"), "four parts"),
            (format!("{h}.e30.{s}"), "attached"),
            (format!("!!..{s}"), "header b64"),
            (
                format!("{}..{s}", Base64UrlUnpadded::encode_string(b"[1]")),
                "header json",
            ),
            (format!("{h}..AAAA"), "short signature"),
            (format!("{h}..{s}="), "padded signature"),
        ] {
            assert!(
                verify_detached_jws(&keys, &token, MANIFEST).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn signing_is_deterministic_and_streaming_matches() {
        let key = fixture();
        let a = sign_detached_jws(&key, MANIFEST).expect("sign");
        let b = sign_detached_jws(&key, MANIFEST).expect("sign");
        let c = sign_detached_jws_reader(&key, std::io::Cursor::new(MANIFEST)).expect("sign");
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    const JWCRYPTO_VERIFY: &str = r#"
import sys
from jwcrypto import jwk, jws
pub = open(sys.argv[1], 'rb').read()
token = open(sys.argv[2]).read().strip()
payload = open(sys.argv[3], 'rb').read()
key = jwk.JWK.from_pem(pub)
print("THUMBPRINT " + key.thumbprint())
obj = jws.JWS()
obj.deserialize(token)
try:
    obj.verify(key, alg='ES256', detached_payload=payload)
except Exception as e:
    print("FAILED " + repr(e))
    sys.exit(3)
print("VERIFIED")
"#;

    /// Runs jwcrypto on (public key, token, payload); returns (verified, output).
    fn jwcrypto_verify(public: &VerifyingKey, token: &str, payload: &[u8]) -> (bool, String) {
        require_python_module("jwcrypto", "jwcrypto");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("verify.py");
        let pem = dir.path().join("pub.pem");
        let tok = dir.path().join("manifest.jws");
        let pay = dir.path().join("manifest.json");
        std::fs::write(&script, JWCRYPTO_VERIFY).expect("write");
        std::fs::write(&pem, public.to_pem().expect("pem")).expect("write");
        std::fs::write(&tok, token).expect("write");
        std::fs::write(&pay, payload).expect("write");
        let out = run(
            "python3",
            [
                script.as_os_str(),
                pem.as_os_str(),
                tok.as_os_str(),
                pay.as_os_str(),
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
    fn jwcrypto_verifies_our_jws_and_rejects_a_changed_byte() {
        let key = fixture();
        let jws = sign_detached_jws(&key, MANIFEST).expect("sign");
        let (ok, out) = jwcrypto_verify(&key.verifying_key(), &jws, MANIFEST);
        assert!(ok, "jwcrypto did not verify: {out}");
        assert!(
            out.contains(&format!("THUMBPRINT {}\n", key.kid())),
            "jwcrypto's RFC 7638 thumbprint differs from our kid {}: {out}",
            key.kid()
        );

        let mut changed = MANIFEST.to_vec();
        changed[10] ^= 1;
        let (ok, out) = jwcrypto_verify(&key.verifying_key(), &jws, &changed);
        assert!(!ok, "jwcrypto verified a changed payload: {out}");
        assert!(out.contains("FAILED"), "{out}");
    }
}
