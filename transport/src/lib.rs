//! Carrying kits between machines: what a kit directory publishes, how it is served and
//! how it is pulled.
//!
//! - [`index`]: the published index (`index.json`): every bundle a directory offers
//!   (kits and deltas, with their sidecars), each file with its size and SHA-256. `ouk
//!   serve` builds it on the fly; `ouk kit index` writes it as a file so any static web
//!   server (nginx, say) can publish the same directory.
//! - [`serve`]: `ouk serve`, an HTTP/1.1 server (hyper, axum) publishing that directory
//!   with `Range`, `ETag`, `If-None-Match` and `If-Range`, and the import API
//!   (`POST /api/offline-kit/import`, `GET /api/offline-kit/status`) behind a bearer token.
//! - [`metrics`]: `GET /metrics` of `ouk serve`, the Prometheus text format (the root's
//!   gauges, the server's counters).
//! - [`pull`]: `ouk kit pull`, a client that downloads one bundle and its sidecars,
//!   resumes partial files with range requests (refusing a file that changed on the
//!   server meanwhile), checks every digest against the index, and verifies the bundle's
//!   digest and signature before it reports success.
//!
//! The invariant both sides keep: a file is published, and a download is kept, only under
//! the name and with the bytes the index gives it; nothing outside the published directory
//! is ever reachable, whatever the URL.

pub mod error;
pub mod index;
pub mod metrics;
pub mod pull;
pub mod serve;

pub use error::{PullRefusal, RefusalReason, Result, TransportError};
