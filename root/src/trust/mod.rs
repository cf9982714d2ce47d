//! A root's trust on disk, under `ROOT/trust/`: the flat store of accepted public keys
//! ([`keys`], `ROOT/trust/<kid>.pub`) and the signed, versioned trust document
//! ([`document`], `ROOT/trust/root.json` and `ROOT/trust/history/`).
//!
//! Here because it is part of the root's layout, like every other thing under `ROOT/`; the
//! key type is ouk-trust's [`ouk_trust::PublicKey`] (PKIX PEM and the RFC 7638 kid), so
//! this crate depends on no crate that knows kits.

pub mod document;
pub mod keys;

pub use document::{ActiveTrust, TrustDocError, TrustRefusal};
pub use keys::{TrustStoreError, TrustedKey};
