//! One module per command group.

pub mod delta;
pub mod generation;
pub mod kit;
pub mod mirror;
pub mod status;
pub mod store;
