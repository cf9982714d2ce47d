//! Blob signatures exactly as `cosign sign-blob --key` writes them: base64 (standard, padded)
//! of the ASN.1 DER ECDSA P-256 signature over the SHA-256 of the blob. So
//! `base64 -d x.sig > x.der && openssl dgst -sha256 -verify cosign.pub -signature x.der FILE`
//! prints `Verified OK`.
//!
//! Invariants:
//! - Streaming: the blob is hashed incrementally through a fixed 256 KiB buffer and the
//!   32-byte prehash is signed, so memory does not grow with the blob (multi-GiB bundles).
//!   Callers that already hashed the bytes (e.g. while writing them) use
//!   [`sign_blob_sha256`] / [`verify_blob_sha256`] and avoid a second read.
//! - Deterministic: RFC 6979 nonces, so the same key and bytes give the same signature.
//! - Verification trims surrounding ASCII whitespace of the `.sig` text (files often end
//!   with a newline), then requires strict base64 and strict DER.

use std::io::{self, Read};

use base64ct::{Base64, Encoding};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{DerSignature, Signature};

use super::key::{SigningKey, VerifyingKey};

/// Why a blob could not be signed or its signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("reading the blob: {0}")]
    Io(#[from] io::Error),
    #[error("signature is not valid base64")]
    Base64,
    #[error("signature is not a DER-encoded ECDSA P-256 signature")]
    Der,
    #[error("signature does not match the blob and key (kid {kid})")]
    Mismatch { kid: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// SHA-256 of everything `reader` yields ([`ouk_store::fsutil::sha256_reader`], the one
/// hashing read loop).
pub fn sha256_reader<R: Read>(reader: R) -> io::Result<[u8; 32]> {
    ouk_store::fsutil::sha256_reader(reader).map(|(digest, _)| digest)
}

/// Signs the bytes of `reader` (streamed): base64 of the DER signature.
pub fn sign_blob<R: Read>(key: &SigningKey, reader: R) -> Result<String, BlobError> {
    let digest = sha256_reader(reader)?;
    sign_blob_sha256(key, &digest)
}

/// Signs a blob given its SHA-256: base64 of the DER signature.
pub fn sign_blob_sha256(key: &SigningKey, sha256: &[u8; 32]) -> Result<String, BlobError> {
    let sig: DerSignature = key
        .inner()
        .sign_prehash(sha256)
        .map_err(|e| BlobError::Sign(e.to_string()))?;
    Ok(Base64::encode_string(sig.as_bytes()))
}

/// Verifies a cosign blob signature (`sig_b64`, the `.sig` file's text) over the bytes of
/// `reader` (streamed).
pub fn verify_blob<R: Read>(key: &VerifyingKey, reader: R, sig_b64: &str) -> Result<(), BlobError> {
    // Decode first: a malformed signature is reported without reading a large blob.
    let sig = decode_signature(sig_b64)?;
    let digest = sha256_reader(reader)?;
    verify_prehash(key, &digest, &sig)
}

/// Verifies a cosign blob signature given the blob's SHA-256.
pub fn verify_blob_sha256(
    key: &VerifyingKey,
    sha256: &[u8; 32],
    sig_b64: &str,
) -> Result<(), BlobError> {
    let sig = decode_signature(sig_b64)?;
    verify_prehash(key, sha256, &sig)
}

fn decode_signature(sig_b64: &str) -> Result<Signature, BlobError> {
    let der = Base64::decode_vec(sig_b64.trim_ascii()).map_err(|_| BlobError::Base64)?;
    Signature::from_der(&der).map_err(|_| BlobError::Der)
}

fn verify_prehash(key: &VerifyingKey, digest: &[u8; 32], sig: &Signature) -> Result<(), BlobError> {
    key.inner()
        .verify_prehash(digest, sig)
        .map_err(|_| BlobError::Mismatch { kid: key.kid() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::testutil::{fixture_key, require_tool, run};
    use sha2::{Digest, Sha256};
    use std::io::Cursor;

    fn fixture() -> SigningKey {
        SigningKey::from_pem(&fixture_key(), Some(b"hello")).expect("fixture key")
    }

    /// Writes `data` to FILE, the DER signature and the public key, and runs
    /// `openssl dgst -sha256 -verify pub.pem -signature x.der FILE`.
    fn openssl_verify(public: &VerifyingKey, sig_b64: &str, data: &[u8]) -> (bool, String) {
        require_tool("openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("blob.bin");
        let der = dir.path().join("x.der");
        let pem = dir.path().join("pub.pem");
        std::fs::write(&file, data).expect("write blob");
        std::fs::write(&der, Base64::decode_vec(sig_b64).expect("b64")).expect("write der");
        std::fs::write(&pem, public.to_pem().expect("pem")).expect("write pem");
        let out = run(
            "openssl",
            [
                "dgst".as_ref(),
                "-sha256".as_ref(),
                "-verify".as_ref(),
                pem.as_os_str(),
                "-signature".as_ref(),
                der.as_os_str(),
                file.as_os_str(),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (
            out.status.success() && stdout.contains("Verified OK"),
            format!("{stdout}{stderr}"),
        )
    }

    #[test]
    fn openssl_verifies_our_blob_signature_and_rejects_a_changed_byte() {
        let key = fixture();
        let mut data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let sig = sign_blob(&key, Cursor::new(&data)).expect("sign");
        let (ok, out) = openssl_verify(&key.verifying_key(), &sig, &data);
        assert!(ok, "openssl did not verify: {out}");
        assert!(out.contains("Verified OK"));

        data[123_456] ^= 1;
        let (ok, out) = openssl_verify(&key.verifying_key(), &sig, &data);
        assert!(!ok, "openssl verified a changed blob: {out}");
        assert!(out.contains("Verification failure"), "{out}");
    }

    #[test]
    fn openssl_verifies_a_fresh_key_too() {
        let key = SigningKey::generate().expect("generate");
        let sig = sign_blob(&key, Cursor::new(b"")).expect("sign empty");
        let (ok, out) = openssl_verify(&key.verifying_key(), &sig, b"");
        assert!(ok, "openssl did not verify: {out}");
    }

    #[test]
    fn verify_round_trip_and_tamper() {
        let key = fixture();
        let public = key.verifying_key();
        let data = b"stella-ops-offline-kit".repeat(1000);
        let sig = sign_blob(&key, Cursor::new(&data)).expect("sign");
        verify_blob(&public, Cursor::new(&data), &sig).expect("verifies");
        verify_blob(&public, Cursor::new(&data), &format!("{sig}\n")).expect("trailing newline ok");
        let digest = sha256_reader(Cursor::new(&data)).expect("hash");
        assert_eq!(digest.as_slice(), Sha256::digest(&data).as_slice());
        verify_blob_sha256(&public, &digest, &sig).expect("prehash verifies");
        assert_eq!(sign_blob_sha256(&key, &digest).expect("sign"), sig);

        let mut bad = data.clone();
        bad[0] ^= 0x80;
        assert!(matches!(
            verify_blob(&public, Cursor::new(&bad), &sig),
            Err(BlobError::Mismatch { .. })
        ));
        let other = SigningKey::generate().expect("generate").verifying_key();
        assert!(matches!(
            verify_blob(&other, Cursor::new(&data), &sig),
            Err(BlobError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_blob(&public, Cursor::new(&data), "not base64!"),
            Err(BlobError::Base64)
        ));
        assert!(matches!(
            verify_blob(&public, Cursor::new(&data), "AAAA"),
            Err(BlobError::Der)
        ));
    }

    #[test]
    fn signing_is_deterministic() {
        let key = fixture();
        let a = sign_blob(&key, Cursor::new(b"same bytes")).expect("sign");
        let b = sign_blob(&key, Cursor::new(b"same bytes")).expect("sign");
        assert_eq!(a, b);
        let c = sign_blob(&key, Cursor::new(b"other bytes")).expect("sign");
        assert_ne!(a, c);
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        assert!(matches!(
            sign_blob(&fixture(), Failing),
            Err(BlobError::Io(_))
        ));
    }
}
