//! One module per command group.

pub mod authority;
pub mod delta;
pub mod doctor;
pub mod feeds;
pub mod feeds_history;
pub mod generation;
pub mod inspect;
pub mod kit;
pub mod mirror;
pub mod primer;
pub mod quarantine;
pub mod quota;
pub mod split;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod trust;
