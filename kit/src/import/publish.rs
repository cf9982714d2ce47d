//! Steps 4 to 7 of the import, the same for every input kind: check the staged tree's
//! generation id and layout, commit the store writes, record and materialize the
//! generation, write the feed rows it changes, flip `current` and log the import.

use std::path::PathBuf;

use ouk_delta::{ChunkSetManifest, GenerationId};
use ouk_root::{ActivateOutcome, FileSource, Labels, Root};
use ouk_store::progress::{Step, StepSink, Unit};
use ouk_store::{StoreWriter, WriteTotals};

use super::policy::check_fresh;
use super::{ImportOptions, ImportReport, StepResult, Verified, diff, record_import, step};
use crate::error::KitError;
use crate::feeds::host::RecordedChanges;
use crate::layout::{self, FileEntry, LayoutOptions};
use crate::manifest::OfflineManifest;

/// A verified, unpacked (or rebuilt) target waiting for policy and activation: the tree
/// in staging and the store writes of its files, not yet committed.
pub(crate) struct Staged<'s> {
    pub writer: ouk_store::StoreWriter<'s>,
    pub tree: StagedTree,
}

/// The staged tree and what it was checked against.
pub(crate) struct StagedTree {
    pub chunk_set: ChunkSetManifest,
    pub layout_entries: Vec<FileEntry>,
    pub manifest: OfflineManifest,
    pub manifest_bytes: Vec<u8>,
    pub staging: PathBuf,
    pub kind: &'static str,
    /// The feed rows the target changes against the active generation, when the stage
    /// computed them already (a delta does, beside its other work); else step 6b diffs
    /// the indexes itself.
    pub feed_changes: Option<crate::feeds::host::ComputedChanges>,
}

/// Steps 4 (generation id), 5 (layout, freshness), 6 (store, record, materialize) and 7
/// (flip), shared by every input kind. Reports the phases `store` and `activate`.
pub(crate) fn publish(
    root: &Root,
    opts: &ImportOptions,
    v: &Verified,
    staged: Staged<'_>,
    base: ImportReport,
    progress: StepSink<'_>,
) -> StepResult<ImportReport> {
    let Staged {
        writer,
        tree: mut staged,
    } = staged;
    let feed_changes = staged.feed_changes.take();
    check_staged(opts, &staged, base.generation)?;
    let old_manifest = base.previous.and_then(|p| root.manifest(&p).ok());
    let tree_diff = diff(old_manifest.as_ref(), &staged.chunk_set);
    if opts.dry_run {
        return Ok(ImportReport {
            outcome: "dry-run".into(),
            diff: tree_diff,
            ..base
        });
    }
    let generation_bytes: u64 = staged.chunk_set.entries().iter().map(|e| e.size).sum();
    progress(Step::Phase {
        name: "store",
        total: Some(generation_bytes),
        unit: Unit::Bytes,
    });
    let (totals, feeds) = store_and_materialize(root, v, writer, &staged, &base, feed_changes)?;
    progress(Step::Advance(generation_bytes));
    progress(Step::Phase {
        name: "activate",
        total: None,
        unit: Unit::Files,
    });
    let outcome = activate(root, opts, v, &staged, base.generation, feeds.as_ref())?;
    Ok(ImportReport {
        outcome: match outcome {
            ActivateOutcome::AlreadyCurrent => "already-active".into(),
            ActivateOutcome::Activated { .. } => "activated".into(),
        },
        diff: tree_diff,
        feeds,
        new_chunks: totals.new_chunks,
        new_stored_bytes: totals.new_stored_bytes,
        ..base
    })
}

/// Steps 4 and 5b-c: the staged files make the generation the manifest names, the kit is
/// fresh, and the tree keeps the layout rules.
fn check_staged(
    opts: &ImportOptions,
    staged: &StagedTree,
    target_id: GenerationId,
) -> StepResult<()> {
    check_fresh(&staged.manifest.created_at, opts)?;
    if staged.chunk_set.id() != target_id {
        return Err((
            "check",
            KitError::Validation(format!(
                "the manifest names generation {target_id} but the files make {}",
                staged.chunk_set.id()
            )),
        ));
    }
    let layout_opts = LayoutOptions {
        allow_missing_debug: true,
        generated_at: None,
    };
    step(
        "policy",
        layout::check_entries(&staged.staging, &staged.layout_entries, &layout_opts)
            .and_then(|r| r.into_result())
            .map(|_| ())
            .map_err(KitError::from),
    )
}

/// Step 6: keep the manifest itself in the store (a later delta patches against it),
/// commit the store, record the generation and the feed rows it changes, and materialize
/// it from staging. Nothing here is visible under `current` yet.
fn store_and_materialize(
    root: &Root,
    v: &Verified,
    mut writer: StoreWriter<'_>,
    staged: &StagedTree,
    base: &ImportReport,
    feed_changes: Option<crate::feeds::host::ComputedChanges>,
) -> StepResult<(WriteTotals, Option<RecordedChanges>)> {
    let target_id = base.generation;
    let put = step(
        "ingest",
        writer
            .put_reader(&staged.manifest_bytes[..], &mut |_| {})
            .map_err(KitError::from),
    )?;
    let totals = step("ingest", writer.commit().map_err(KitError::from))?;
    tracing::debug!(
        step = "ingest",
        new_chunks = totals.new_chunks,
        "store committed"
    );
    let mut labels = Labels::new();
    labels.insert("version".into(), staged.manifest.version.clone());
    labels.insert("channel".into(), staged.manifest.channel.clone());
    labels.insert("createdAt".into(), staged.manifest.created_at.clone());
    labels.insert("bundleSha256".into(), hex::encode(v.bundle_sha));
    labels.insert("manifestSha256".into(), put.digest.to_hex());
    labels.insert("kind".into(), staged.kind.into());
    // Who signed it (the keys the trust accepted, comma-separated): `trust list` shows
    // which kits each key signed on this root.
    if let Some(kid) = &v.signed_by {
        labels.insert("signedBy".into(), kid.clone());
    }
    step(
        "ingest",
        root.record_generation(&staged.chunk_set, labels)
            .map_err(KitError::from),
    )?;
    tracing::debug!(step = "ingest", "generation recorded");
    // 6b. The feed rows this generation changes (changes file + history): before the tree
    // is published, so running out of space here leaves no extra generation behind. While
    // this thread diffs the feed indexes (CPU), another starts the device writing the
    // staged tree, so the `syncfs` that makes it durable (in `materialize`) finds little
    // left to wait for. Best effort: that later `syncfs` is the one whose result counts.
    let feeds = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = ouk_root::generation::syncfs(&staged.staging);
        });
        let recorded = match feed_changes {
            Some(computed) => crate::feeds::host::record_computed(
                root,
                &target_id,
                computed,
                &staged.manifest.version,
            )
            .map(Some),
            None => crate::feeds::host::record_import(
                root,
                &target_id,
                Some(&staged.staging),
                base.previous,
                &staged.manifest.version,
            ),
        };
        step("ingest", recorded.map_err(KitError::from))
    })?;
    tracing::debug!(step = "ingest", "feed changes recorded");
    if let Err(e) = root.materialize(&target_id, FileSource::Staged(&staged.staging)) {
        undo_feeds(root, &target_id, feeds.as_ref());
        return Err(("ingest", e.into()));
    }
    tracing::debug!(step = "ingest", "generation materialized");
    Ok((totals, feeds))
}

/// Refused before the flip: the feed rows step 6b wrote go. (After the flip they are the
/// active generation's and stay.)
fn undo_feeds(root: &Root, target_id: &GenerationId, feeds: Option<&RecordedChanges>) {
    if let Some(f) = feeds
        && root.current().ok().flatten() != Some(*target_id)
    {
        let _ = crate::feeds::host::undo_import(root, target_id, f);
    }
}

/// Step 7: flip `current`, log the activation and the import.
fn activate(
    root: &Root,
    opts: &ImportOptions,
    v: &Verified,
    staged: &StagedTree,
    target_id: GenerationId,
    feeds: Option<&RecordedChanges>,
) -> StepResult<ActivateOutcome> {
    let mut details = Labels::new();
    details.insert("bundleSha256".into(), hex::encode(v.bundle_sha));
    details.insert("version".into(), staged.manifest.version.clone());
    details.insert("kind".into(), staged.kind.into());
    let reason = match &opts.force {
        Some(f) => format!("forced import: {}", f.reason),
        None => "import".into(),
    };
    let outcome = match root.activate(&target_id, &reason, opts.force.is_some(), details) {
        Ok(o) => o,
        Err(e) => {
            undo_feeds(root, &target_id, feeds);
            return Err(("activate", e.into()));
        }
    };
    step(
        "activate",
        record_import(root, &v.bundle_sha, &target_id, &staged.manifest.version),
    )?;
    Ok(outcome)
}
