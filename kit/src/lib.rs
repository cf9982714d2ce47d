//! `ouk-kit`: what is done with Offline Kits.
//!
//! A kit is a deterministic `tar.gz` bundle plus its manifest, signatures and provenance
//! (their formats are `ouk-bundle`'s). This crate builds kits on the connected side
//! ([`build`], [`split`], [`mirror`]) and verifies, unpacks and imports them on the
//! air-gapped side ([`verify`], [`import`], [`delta`]); [`ops`] holds the operations
//! content a kit carries. Feeds are `ouk-feeds`'s.

pub mod build;
mod class;
pub mod delta;
mod error;
pub mod exposure;
pub mod import;
pub mod mirror;
pub mod ops;
pub mod read_once;
pub mod sidecars;
pub mod split;
pub mod trust_root;
pub mod verify;

pub use error::{GivenTime, KitError, MissingSignature, Result};
/// The operations content moved to `ops/`; the old paths keep working.
pub use ops::{authority, caches, certs, content, policy_gateway, primer, quota, telemetry};
/// The bundle codec, manifest, signatures, provenance and layout rules moved to `ouk-bundle`;
/// the old paths keep working.
pub use ouk_bundle::codec as bundle;
pub use ouk_bundle::{layout, manifest, provenance, sign};
/// Feeds moved to their own crate; the old path keeps working.
pub use ouk_feeds as feeds;

/// Helpers the crate's unit tests share.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;

    use ouk_root::{LockWait, Root};
    use ouk_store::StoreOptions;

    /// A new root at `dir` with the default store, failing rather than waiting for a lock.
    pub(crate) fn root_at(dir: &Path) -> Root {
        Root::open(dir, LockWait::Fail, StoreOptions::default()).expect("open a test root")
    }
}
