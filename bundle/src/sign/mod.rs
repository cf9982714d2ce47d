//! Signing primitives of the Offline Kit: keys, cosign-compatible blob signatures, the
//! manifest's detached JWS and the DSSE envelope of the in-toto provenance.
//!
//! Everything here is ECDSA P-256 with SHA-256, and every signature is deterministic
//! (RFC 6979): signing the same bytes with the same key twice gives the same signature
//! bytes, so two builds of the same kit produce identical signature files.
//!
//! - [`key`]: [`SigningKey`] / [`VerifyingKey`], read from cosign's encrypted format, PKCS#8
//!   or SEC1 PEM (private) and PKIX PEM (public); written as cosign's encrypted format and
//!   PKIX PEM; `kid` = RFC 7638 JWK thumbprint.
//! - [`encrypted`]: cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` container (scrypt + NaCl
//!   secretbox).
//! - [`cosign`]: blob signatures as `cosign sign-blob` writes them: base64 of the ASN.1 DER
//!   signature over SHA-256 of the bytes, computed by streaming.
//! - [`jws`]: RFC 7515 compact detached JWS with RFC 7797 unencoded payload (`b64:false`).
//! - [`dsse`]: DSSE v1 envelopes (PAE, DER signatures).
//!
//! Invariants shared by all modules: input-derived data never panics (every decode returns
//! a typed error), secret material is zeroized when dropped, and verification is strict
//! (no algorithm or encoding is accepted that the writer would not produce, except where a
//! spec explicitly allows alternatives, as DSSE does for base64 flavours).

pub mod cosign;
pub mod dsse;
pub mod encrypted;
pub mod jws;
pub mod key;

#[cfg(test)]
mod testutil;

pub use cosign::{
    BlobError, sha256_reader, sign_blob, sign_blob_sha256, verify_blob, verify_blob_sha256,
};
pub use dsse::{DsseError, Envelope, EnvelopeSignature, Verified, dsse_sign, dsse_verify, pae};
pub use encrypted::EncryptedKeyError;
pub use jws::{
    JwsError, JwsHeader, parse_jws_header, sign_detached_jws, sign_detached_jws_reader,
    verify_detached_jws, verify_detached_jws_reader,
};
pub use key::{KeyError, KeyRole, SigningKey, VerifyingKey, write_key_pair};
