//! `ouk-delta`: chunk-set manifests, generations, and deltas between them.
//!
//! A generation is a content-addressed tree: its [`ChunkSetManifest`] (every file's path,
//! mode, SHA-256 and chunk ids) hashes to its [`GenerationId`]. A [`Root`] holds the chunk
//! store, the recorded generations, their materialized read-only trees and the `current`
//! symlink; [`generation`] publishes and activates trees atomically (OSTree's order:
//! write aside, fsync, rename, flip a symlink).

pub mod apply;
pub mod bsdiffx;
pub mod content;
mod error;
pub mod format;
pub mod generation;
pub mod manifest;
pub mod members;
pub mod patch;
pub mod plain;
pub mod plan;
pub mod published;
pub mod records;
pub mod root;
mod stamps;
pub mod tree;

pub use error::{DeltaError, Result};
pub use generation::{
    ActivateOutcome, Activation, FileSource, GenerationGc, GenerationRecord, GenerationSummary,
    Labels, Materialized, now_unix,
};
pub use manifest::{ChunkSetManifest, GenerationId, ManifestEntry, check_relative_path};
pub use published::{PublishedGeneration, PublishedState, RootView, STATE_FILE};
pub use root::{LockWait, Root, RootRecovery, remove_tree};
