//! Daily deltas as bundles: `ouk delta make`, `ouk delta show`, `ouk inventory export`, and
//! the delta branch of the import pipeline.
//!
//! A delta bundle (`stella-ouk-YYYY-MM-DD.delta.tgz`) is a deterministic tar.gz that
//! `tar -tzf` lists, holding:
//! - `delta/delta.json`: the [`DeltaHeader`]: baseline and target generation ids and
//!   versions, the target's file list as an edit of the baseline's, and where each new
//!   file's bytes come from;
//! - `delta/payload.bin`: the encoded bytes (patches, literals, the solid block);
//! - optionally `delta/offline-manifest.json.jws`, a JWS over the target's offline manifest
//!   (checked when present; not written, since the delta's signature already covers the
//!   payload the manifest is rebuilt from);
//! - `delta/feeds-changes.jsonl` in deltas made before `ouk-delta/5`, when the target
//!   kit has a feed index: the feed rows the delta changes (baseline kit's index against
//!   the target's), in the format of a host's changes file ([`crate::feeds::changes`]), so
//!   `ouk delta show` reports them on the connected site before the delta is carried. The
//!   importer does not use it (it diffs against whatever generation is active). Since,
//!   the file is kept beside the bundle instead, declared (rows, SHA-256, size) by the
//!   header ([`feed_changes`]), and not kept at all when no row changed.
//!
//! The target's offline manifest travels as one of the delta's files
//! (`manifest/offline-manifest.json`, patched against the baseline's manifest, which every
//! host keeps in its store), so the delta carries the target's full manifest in a few
//! hundred bytes. It is signed like a kit (`.sig`, `.sha256`, `.metadata.json` with
//! `kind: delta`) and imported through the same pipeline: same trust store, exit codes,
//! quarantine, atomic flip; applying it yields the same generation id as importing the
//! target kit.
//!
//! Layout: [`make`] writes deltas, [`show`] reads what one says about itself, [`inventory`]
//! describes a host; this file holds the bundle's entry names and bounds, the header parser
//! and the kind check. Applying a delta on a host is the import pipeline's delta staging
//! step (`crate::import::stage_delta`), which uses this module and never the reverse.

pub(crate) mod derive;
mod feed_changes;
mod inventory;
mod make;
mod show;

use std::fs;
use std::path::Path;

use ouk_delta::format::DeltaHeader;

pub use feed_changes::{FEED_CHANGES_SUFFIX, kept_path as kept_feed_changes_path};
pub use inventory::{Inventory, InventoryGeneration, inventory};
pub use make::{
    DeltaMakeReport, make_from_bundles, make_from_bundles_reporting, make_from_inventory,
};
pub use show::{DeltaFeeds, ShownFeeds, show, show_as};

use crate::build::KitMetadata;
use crate::bundle::{BundleReader, ReadLimits};
use crate::error::{KitError, Result};
use crate::split::BundleInput;

/// Header entry.
pub const HEADER_PATH: &str = "delta/delta.json";
/// Payload entry.
pub const PAYLOAD_PATH: &str = "delta/payload.bin";
/// JWS over the target manifest.
pub const JWS_PATH: &str = "delta/offline-manifest.json.jws";
/// The feed rows the delta changes.
pub const FEED_CHANGES_PATH: &str = "delta/feeds-changes.jsonl";
/// Largest feed-changes entry accepted.
pub(crate) const MAX_FEED_CHANGES: u64 = 1 << 30;
pub(crate) const MAX_HEADER: u64 = 64 << 20;
pub(crate) const MAX_PAYLOAD: u64 = 16 << 30;

/// True when `bundle` is a delta (by name, descriptor, or first entry).
pub fn is_delta(bundle: &Path) -> bool {
    is_delta_input(&BundleInput::File(bundle.to_path_buf()))
}

/// [`is_delta`] for a bundle or a split kit (named as its bundle; read through its parts).
/// The name and the descriptor decide when they say something, else the first entry.
pub(crate) fn is_delta_input(input: &BundleInput) -> bool {
    declared_delta(input).unwrap_or_else(|| first_entry_is_delta(input).unwrap_or(false))
}

/// What the importer does with an input read once: the (signed) content decides whether
/// it is a delta, and a name or descriptor that says otherwise refuses it (a kit named as
/// a delta, or the reverse, is a disguise; neither is covered by the signature).
pub(crate) fn verified_kind_is_delta(input: &BundleInput) -> Result<bool> {
    // Damaged content (no first entry to read) goes the way its name says, where the
    // parser names the damage.
    let declared = declared_delta(input);
    let Some(content) = first_entry_is_delta(input) else {
        return Ok(declared.unwrap_or(false));
    };
    match declared {
        Some(declared) if declared != content => {
            let (said, is) = if declared {
                ("a delta", "a kit")
            } else {
                ("a kit", "a delta")
            };
            Err(KitError::Validation(format!(
                "{}: not {said}: its name or descriptor says {said}, but it holds {is}",
                input.path().display()
            )))
        }
        _ => Ok(content),
    }
}

/// What the input's name (`.delta.tgz`, `.delta.tar.gz`) or `.metadata.json` says it is,
/// when either says anything.
fn declared_delta(input: &BundleInput) -> Option<bool> {
    let bundle = &input.path();
    let name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".delta.tgz") || name.ends_with(".delta.tar.gz") {
        return Some(true);
    }
    let meta = bundle.with_file_name(format!("{name}.metadata.json"));
    let bytes = fs::read(&meta).ok()?;
    let m = serde_json::from_slice::<KitMetadata>(&bytes).ok()?;
    Some(m.kind == "delta")
}

/// Whether the bundle's first entry is the delta header's directory or file (`None` when
/// no first entry can be read).
fn first_entry_is_delta(input: &BundleInput) -> Option<bool> {
    let file = input.reader().ok()?;
    let mut reader = BundleReader::new(
        file,
        |_: &str| Some(u64::MAX),
        ReadLimits {
            max_total_bytes: 1 << 20,
            max_entries: 8,
        },
    );
    match reader.next_entry() {
        Ok(Some(e)) => Some(e.path == "delta" || e.path.starts_with("delta/")),
        _ => None,
    }
}

pub(crate) fn parse_header(bytes: &[u8]) -> Result<DeltaHeader> {
    let header: DeltaHeader = serde_json::from_slice(bytes)
        .map_err(|e| KitError::Validation(format!("{HEADER_PATH}: {e}")))?;
    header.validate(1 << 40)?;
    Ok(header)
}
