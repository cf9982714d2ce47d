//! `ouk-kit`: the Offline Kit format.
//!
//! A kit is a deterministic `tar.gz` bundle plus its manifest, signatures and provenance.
//! This crate writes kits on the connected side and reads (verifies, unpacks, imports) them
//! on the air-gapped side.

pub mod authority;
pub mod build;
pub mod bundle;
pub mod caches;
pub mod certs;
mod class;
pub mod content;
pub mod delta;
mod error;
pub mod exposure;
pub mod feeds;
pub mod import;
pub mod layout;
pub mod manifest;
pub mod mirror;
pub mod policy_gateway;
pub mod primer;
pub mod provenance;
pub mod quota;
pub mod read_once;
pub mod sign;
pub mod split;
pub mod telemetry;
pub mod trust_root;
pub mod verify;

pub use error::{KitError, Result};
