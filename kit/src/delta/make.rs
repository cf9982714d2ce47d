//! `ouk delta make`: two kit bundles (or a host's inventory and a folder of kits) in, one
//! signed delta bundle out. Each kit is unpacked into a temporary directory through the
//! manifest-gated unpacker and every file checked against its manifest before the delta
//! codec reads it; the bundle is written atomically (a failure leaves no output).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ouk_delta::GenerationId;
use ouk_delta::content::{DirContent, TreeFile};
use ouk_delta::format::{DeltaHeader, DeltaSummary, FeedChangesRef, GenerationRef};
use ouk_delta::plan::{MakeOptions, make_delta_reporting};
use ouk_store::FileDigest;
use serde::Serialize;

use super::inventory::Inventory;
use super::{HEADER_PATH, PAYLOAD_PATH};
use crate::build::{KitMetadata, ManifestRef, write_bundle_sidecars};
use crate::bundle::writer::{BundleSummary, BundleWriter};
use crate::bundle::{EntrySource, EntrySpec, GzOptions, unpack_to_dir};
use crate::error::{IoContext, KitError, Result};
use crate::manifest::{MANIFEST_PATH, OfflineManifest};
use crate::sign::SigningKey;
use crate::verify::{self, ManifestGate};

/// A kit unpacked for delta making.
struct UnpackedKit {
    _dir: tempfile::TempDir,
    manifest: OfflineManifest,
    files: Vec<TreeFile>,
    content: DirContent,
}

fn unpack_kit(bundle: &Path) -> Result<UnpackedKit> {
    if !bundle.is_file() {
        return Err(KitError::NotFound(bundle.to_path_buf()));
    }
    let (manifest, manifest_bytes) = verify::manifest_from_bundle(bundle)?;
    let dir = tempfile::Builder::new()
        .prefix("ouk-delta-")
        .tempdir()
        .ctx(|| "create a temporary directory".to_string())?;
    let gate = ManifestGate::new(&manifest, &manifest_bytes);
    let lookup = |p: &str| gate.size_of(p);
    let file = File::open(bundle).ctx(|| format!("open {}", bundle.display()))?;
    let unpacked = unpack_to_dir(file, dir.path(), &lookup, gate.limits())?;
    let mut files = Vec::with_capacity(unpacked.len());
    let mut content = Vec::with_capacity(unpacked.len());
    for u in unpacked {
        let sha = u.sha256_hex();
        if !gate.matches(&u.path, u.size, &sha) {
            return Err(KitError::DigestMismatch {
                what: format!("{} in {}", u.path, bundle.display()),
                // (The manifest entry's own digest was never listed: named as empty.)
                expected: if u.path == MANIFEST_PATH {
                    String::new()
                } else {
                    gate.expected(&u.path).1.to_string()
                },
                actual: sha,
            });
        }
        content.push((FileDigest(u.sha256), dir.path().join(&u.path)));
        files.push(TreeFile {
            path: u.path,
            mode: u.mode,
            size: u.size,
            sha256: FileDigest(u.sha256),
        });
    }
    if files.len() != manifest.artifacts.len() + 1 {
        return Err(KitError::Validation(format!(
            "{}: files and manifest disagree",
            bundle.display()
        )));
    }
    Ok(UnpackedKit {
        _dir: dir,
        manifest,
        files,
        content: DirContent::new(content),
    })
}

/// What `delta make` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaMakeReport {
    /// The delta bundle.
    pub delta: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Baseline.
    pub baseline: GenerationRef,
    /// Target.
    pub target: GenerationRef,
    /// Counts.
    pub summary: DeltaSummary,
    /// Signed?
    pub signed: bool,
    /// Feed rows changed, per source (when the target kit has a feed index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feeds: Option<crate::feeds::diff::DiffCounts>,
}

/// Make the delta from kit bundle `from` to kit bundle `to`.
pub fn make_from_bundles(
    from: &Path,
    to: &Path,
    output: &Path,
    key: Option<&SigningKey>,
    options: &MakeOptions,
) -> Result<DeltaMakeReport> {
    make_from_bundles_reporting(
        from,
        to,
        output,
        key,
        options,
        &mut ouk_store::progress::ignore,
    )
}

/// [`make_from_bundles`], reporting its phases: `baseline` and `target` (each kit's
/// bundle bytes, counted once it is unpacked and checked), then `encode` (reported by the
/// planner: the bytes of the changed target files, counted as each is planned).
pub fn make_from_bundles_reporting(
    from: &Path,
    to: &Path,
    output: &Path,
    key: Option<&SigningKey>,
    options: &MakeOptions,
    progress: ouk_store::progress::StepSink<'_>,
) -> Result<DeltaMakeReport> {
    use ouk_store::progress::{Step, Unit};
    tracing::info!(from = %from.display(), to = %to.display(), "delta make: unpacking both kits");
    let mut unpack = |name: &'static str, bundle: &Path| -> Result<UnpackedKit> {
        let size = fs::metadata(bundle).map(|m| m.len()).ok();
        progress(Step::Phase {
            name,
            total: size,
            unit: Unit::Bytes,
        });
        let kit = unpack_kit(bundle)?;
        progress(Step::Advance(size.unwrap_or(0)));
        Ok(kit)
    };
    let old = unpack("baseline", from)?;
    let new = unpack("target", to)?;
    tracing::info!("delta make: planning and writing");
    write_delta(&old, &new, output, key, options, progress)
}

fn gref(m: &OfflineManifest) -> Result<GenerationRef> {
    Ok(GenerationRef {
        generation: m
            .generation_id
            .parse()
            .map_err(|_| KitError::InvalidManifest("generationId does not parse".into()))?,
        version: Some(m.version.clone()),
    })
}

fn write_delta(
    old: &UnpackedKit,
    new: &UnpackedKit,
    output: &Path,
    key: Option<&SigningKey>,
    options: &MakeOptions,
    progress: ouk_store::progress::StepSink<'_>,
) -> Result<DeltaMakeReport> {
    let mut payload = Vec::new();
    let options = &super::derive::with_derived(options, &new.files, new._dir.path())?;
    let mut header = make_delta_reporting(
        gref(&old.manifest)?,
        &old.files,
        &old.content,
        gref(&new.manifest)?,
        &new.files,
        &new.content,
        options,
        &mut payload,
        progress,
    )?;
    // The feed changes are kept beside the bundle, and the header (signed with it) names
    // their digest, so `delta show` checks the unsigned file before reading a row of it.
    let feeds = feed_changes(old, new, &header)?;
    header.feed_changes = feeds.as_ref().map(|f| f.reference.clone());
    let mut header_bytes =
        serde_json::to_vec(&header).map_err(|e| KitError::Validation(e.to_string()))?;
    header_bytes.push(b'\n');
    let specs = vec![
        EntrySpec {
            path: HEADER_PATH.into(),
            mode: 0o644,
            source: EntrySource::Bytes(header_bytes),
        },
        EntrySpec {
            path: PAYLOAD_PATH.into(),
            mode: 0o644,
            source: EntrySource::Bytes(payload),
        },
    ];
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| KitError::Usage(format!("{}: not a file name", output.display())))?;
    // Dropped on any error below, the temporary file is removed.
    let out = ouk_store::fsutil::AtomicFile::create(output)?;
    let (summary, out) = write_delta_bundle(BufWriter::new(out), specs)?;
    let f = out.into_inner().map_err(|e| KitError::Io {
        context: format!("write {}", output.display()),
        source: e.into_error(),
    })?;
    f.commit()?;
    let hexd = hex::encode(summary.sha256);
    let manifest_bytes = new.manifest.to_bytes();
    let metadata = KitMetadata {
        name: name.clone(),
        kind: "delta".into(),
        version: new.manifest.version.clone(),
        channel: new.manifest.channel.clone(),
        sha256: hexd.clone(),
        size: summary.size,
        manifest: ManifestRef {
            name: MANIFEST_PATH.into(),
            sha256: FileDigest::of(&manifest_bytes).to_hex(),
            size: manifest_bytes.len() as u64,
        },
        created_at: new.manifest.created_at.clone(),
        generation_id: new.manifest.generation_id.clone(),
        signed: key.is_some(),
        kid: key.map(SigningKey::kid),
        // The target's secrets: a delta carries the new bytes of those that changed, and
        // a publisher should not have to know which did.
        secrets: Some(crate::exposure::manifest_lists_secrets(&new.manifest)),
    };
    write_bundle_sidecars(dir, &summary.sha256, key, &metadata)?;
    // Kept only when a row changed: "none changed" is the header's to say.
    let kept = feeds
        .as_ref()
        .filter(|f| f.reference.rows != 0)
        .map(|f| f.path.as_path());
    super::feed_changes::keep_feed_changes(kept, output)?;
    Ok(DeltaMakeReport {
        delta: output.to_path_buf(),
        sha256: hexd,
        size: summary.size,
        baseline: header.baseline.clone(),
        target: header.target.clone(),
        summary: header.summary(),
        signed: key.is_some(),
        feeds: feeds.map(|f| f.counts),
    })
}

/// The delta's tar.gz: its entries in name order and no `delta/` directory entry (512
/// bytes of tar header, about 27 deflated, that carries nothing: every reader creates
/// the parents of what it extracts, and hosts of every release read a delta without it).
fn write_delta_bundle<W: std::io::Write>(
    out: W,
    mut specs: Vec<EntrySpec>,
) -> Result<(BundleSummary, W)> {
    specs.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut writer =
        BundleWriter::with_options(out, GzOptions::default())?.without_parent_entries();
    for spec in &specs {
        match &spec.source {
            EntrySource::Bytes(b) => writer.add_bytes(&spec.path, spec.mode, b)?,
            EntrySource::File(p) => writer.add_file(&spec.path, spec.mode, p)?,
        };
    }
    Ok(writer.finish()?)
}

/// The feed changes a delta records: the file written beside the target's unpacked
/// files, the rows per source, and what the header says of them.
struct FeedChanges {
    path: PathBuf,
    counts: crate::feeds::diff::DiffCounts,
    reference: FeedChangesRef,
}

/// The feed changes from the baseline kit's index to the target's, written beside the
/// target's unpacked files; `None` when the target has no index, or neither kit has a
/// feed (a baseline without an index counts as empty: every row is added).
fn feed_changes(
    old: &UnpackedKit,
    new: &UnpackedKit,
    header: &DeltaHeader,
) -> Result<Option<FeedChanges>> {
    use crate::feeds::changes::{ChangesHeader, ChangesLines};
    use crate::feeds::host::FeedsError;
    let new_index = new._dir.path().join(crate::feeds::FEED_INDEX_PATH);
    if !new_index.is_file() {
        return Ok(None);
    }
    let old_index = old._dir.path().join(crate::feeds::FEED_INDEX_PATH);
    let old_index = old_index.is_file().then_some(old_index);
    let path = new._dir.path().join(".feeds-changes.jsonl");
    let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
    let mut lines = ChangesLines::new(
        BufWriter::new(file),
        &ChangesHeader::new(header.target.generation, Some(header.baseline.generation)),
    )
    .ctx(|| format!("write {}", path.display()))?;
    let mut write_error = None;
    let counts =
        crate::feeds::diff::diff_indexes(old_index.as_deref(), Some(&new_index), &mut |c| {
            lines.push(&c).map_err(|e| {
                let message = e.to_string();
                write_error = Some(e);
                crate::feeds::diff::DiffError::Sink(message)
            })
        });
    if let Some(e) = write_error {
        return Err(KitError::Io {
            context: format!("write {}", path.display()),
            source: e,
        });
    }
    let counts = counts.map_err(|e| KitError::from(FeedsError::from(e)))?;
    lines.finish().ctx(|| format!("write {}", path.display()))?;
    if counts.is_empty() {
        // No feed on either side (an empty index): nothing to record, not even "no row
        // changed" (21 bytes of the smallest delta's header).
        return Ok(None);
    }
    let rows = counts.values().map(|c| c.total()).sum::<u64>();
    let reference = if rows == 0 {
        FeedChangesRef {
            rows,
            sha256: None,
            size: 0,
        }
    } else {
        // Our own file, just written: read back (streamed, it may be large) to hash it.
        let (sha256, size) = crate::verify::sha256_file(&path)?;
        FeedChangesRef {
            rows,
            sha256: Some(FileDigest(sha256)),
            size,
        }
    };
    Ok(Some(FeedChanges {
        path,
        counts,
        reference,
    }))
}

/// Make the one delta that brings the host described by `inventory` to `to`, using a kit
/// from `kits_dir` the host already has as the baseline (its current one when available,
/// else its newest).
pub fn make_from_inventory(
    inventory: &Inventory,
    kits_dir: &Path,
    to: &Path,
    output: &Path,
    key: Option<&SigningKey>,
    options: &MakeOptions,
) -> Result<DeltaMakeReport> {
    let mut candidates: HashMap<GenerationId, PathBuf> = HashMap::new();
    for entry in fs::read_dir(kits_dir).ctx(|| format!("list {}", kits_dir.display()))? {
        let path = entry.ctx(|| format!("list {}", kits_dir.display()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(bundle) = name.strip_suffix(".metadata.json") {
            let Ok(bytes) = fs::read(&path) else { continue };
            let Ok(meta) = serde_json::from_slice::<KitMetadata>(&bytes) else {
                continue;
            };
            if meta.kind == "kit"
                && let Ok(id) = meta.generation_id.parse::<GenerationId>()
            {
                candidates.insert(id, kits_dir.join(bundle));
            }
        }
    }
    let order = inventory
        .current
        .into_iter()
        .chain(inventory.generations.iter().map(|g| g.generation));
    let baseline = order
        .filter_map(|id| candidates.get(&id))
        .next()
        .ok_or_else(|| {
            KitError::Validation(format!(
                "no kit in {} matches any generation the host has",
                kits_dir.display()
            ))
        })?;
    make_from_bundles(baseline, to, output, key, options)
}
