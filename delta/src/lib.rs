//! `ouk-delta`: chunk-set manifests and the delta codec between them.
//!
//! A generation is a content-addressed tree: its [`ChunkSetManifest`] (every file's path,
//! mode, SHA-256 and chunk ids) hashes to its [`GenerationId`]. This crate plans, encodes
//! and applies deltas between such trees ([`plan`], [`format`], [`apply`]), seeing through
//! compressed files ([`plain`]). Where generations are kept and activated (the root
//! layout, `current`, `state.json`) is `ouk-root`, above this crate.

pub mod apply;
pub mod baseline_cuts;
pub mod bsdiffx;
pub mod content;
pub mod envelope;
mod error;
pub mod format;
pub mod manifest;
pub mod members;
pub mod patch;
pub mod plain;
pub mod plan;
pub mod records;
pub mod tree;

pub use error::{DeltaError, IoContext, Result};
pub use manifest::{ChunkSetManifest, GenerationId, ManifestEntry, check_relative_path};
