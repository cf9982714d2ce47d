//! `ouk-root`: an ouk root on disk: its layout, its generations and how one becomes active.
//!
//! A [`Root`] holds the chunk store, the recorded generations, their materialized
//! read-only trees and the `current` symlink, under one lock; [`generation`] publishes and
//! activates trees atomically (OSTree's order: write aside, fsync, rename, flip a
//! symlink); [`published`] keeps `ROOT/state.json`, what lock-free readers (status,
//! monitoring) see; [`trust`] keeps the root's trust store (`ROOT/trust/`).
//!
//! Invariants: a generation becomes current only by one atomic flip of `ROOT/current`,
//! after its tree and records are durable; the published state is rewritten (atomically)
//! after every change a reader could see; one process at a time holds the root's lock.
//! Depends on the store, the delta layer's manifests and ouk-trust's key type, never on
//! kits, transport or the binary.

pub mod generation;
pub mod published;
pub mod root;
mod stamps;
pub mod trust;

pub use generation::{
    ActivateOutcome, Activation, FileSource, GenerationGc, GenerationRecord, GenerationSummary,
    Labels, Materialized, now_unix,
};
pub use published::{PublishedGeneration, PublishedState, RootView, STATE_FILE};
pub use root::{LockWait, Root, RootRecovery, remove_tree};
