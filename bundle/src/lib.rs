//! `ouk-bundle`: what a kit is on the wire, apart from how it is built or imported.
//!
//! - [`codec`]: the deterministic `.tar.gz` writer and the safe streaming reader;
//! - [`manifest`]: `offline-manifest.json`, the signed inventory of every file of a kit;
//! - [`sign`]: keys, cosign blob signatures, the manifest's detached JWS, DSSE envelopes;
//! - [`provenance`]: the in-toto statement and SPDX document of a kit;
//! - [`layout`]: the rules a release tree must follow before it becomes a kit.
//!
//! Invariants: untrusted bytes (a bundle, a manifest, a signature) are parsed by bounded,
//! strict readers that return typed errors and never panic; the same input writes the
//! same bytes (entries, manifest, signatures). Every error answers `class()`
//! ([`ouk_store::ErrorClass`]). This crate knows nothing of roots, imports or the binary:
//! it depends on the store (file plumbing) and the delta layer (path rules) only.

mod class;
pub mod codec;
pub mod layout;
pub mod manifest;
pub mod provenance;
pub mod sign;
