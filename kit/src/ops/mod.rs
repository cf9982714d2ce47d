//! Operations content: what a kit carries for the services that run on the host, beside
//! the release files themselves, and the checks and tools that go with it.
//!
//! None of it is part of the bundle format (that is `ouk-bundle`) nor of moving kits
//! (build, verify, import, mirror): each module here knows one kind of payload and the
//! rules it must meet before a build accepts it or a host uses it.
//!
//! - [`content`]: the build's one call into this group ([`content::prepare`]): it runs the
//!   checks below in a fixed order and returns the extra files, notes and warnings;
//! - [`policy_gateway`]: the Policy Gateway bundle and its DPoP key note;
//! - [`certs`]: trust material under `certificates/` (PEM X.509);
//! - [`authority`]: the Authority configuration's scope guardrails;
//! - [`caches`]: cold-start caches;
//! - [`telemetry`]: the telemetry bundle and its sidecar;
//! - [`primer`]: the advisory AI volume primer;
//! - [`quota`]: the quota ledger, keyed subjects and signed quota tokens.
//!
//! Invariants: checks write nothing and fail the build before any release file is hashed;
//! their order is fixed, so the first error is the same on every run. Nothing here depends
//! on the import pipeline, delta bundles or the mirror.

pub mod authority;
pub mod caches;
pub mod certs;
pub mod content;
pub mod policy_gateway;
pub mod primer;
pub mod quota;
pub mod telemetry;
