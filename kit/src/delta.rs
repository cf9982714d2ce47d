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
//! - `delta/feeds-changes.jsonl` when the target kit has a feed index: the feed rows the
//!   delta changes (baseline kit's index against the target's), in the format of a host's
//!   changes file ([`crate::feeds::changes`]), so `ouk delta show` reports them on the
//!   connected site before the delta is carried. It is covered by the delta's signature;
//!   the importer does not use it (it diffs against whatever generation is active).
//!
//! The target's offline manifest travels as one of the delta's files
//! (`manifest/offline-manifest.json`, patched against the baseline's manifest, which every
//! host keeps in its store), so the delta carries the target's full manifest in a few
//! hundred bytes. It is signed like a kit (`.sig`, `.sha256`, `.metadata.json` with
//! `kind: delta`) and imported through the same pipeline: same trust store, exit codes,
//! quarantine, atomic flip; applying it yields the same generation id as importing the
//! target kit.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use ouk_delta::apply::{RebuiltSink, apply_delta, create_rebuilt, finish_rebuilt};
use ouk_delta::content::{CheckedDirContent, DirContent, StoreContent, TreeFile};
use ouk_delta::format::{DeltaHeader, DeltaSummary, GenerationRef};
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_root::Root;
use ouk_store::FileDigest;
use serde::{Deserialize, Serialize};

use crate::build::{KitMetadata, ManifestRef, write_bundle_sidecars};
use crate::bundle::{
    BundleReader, EntrySource, EntrySpec, GzOptions, ReadError, ReadLimits, unpack_to_dir,
    write_bundle,
};
use crate::error::{IoContext, KitError, Result};
use crate::import::{
    ImportOptions, ImportReport, Staged, StepResult, Verified, base_report, check_disk,
    check_version, finish, step,
};
use crate::layout::FileEntry;
use crate::manifest::{MANIFEST_PATH, MAX_MANIFEST_BYTES, OfflineManifest};
use crate::sign::SigningKey;
use crate::split::BundleInput;
use crate::verify;

/// Header entry.
pub const HEADER_PATH: &str = "delta/delta.json";
/// Payload entry.
pub const PAYLOAD_PATH: &str = "delta/payload.bin";
/// JWS over the target manifest.
pub const JWS_PATH: &str = "delta/offline-manifest.json.jws";
/// The feed rows the delta changes.
pub const FEED_CHANGES_PATH: &str = "delta/feeds-changes.jsonl";
/// Largest feed-changes entry accepted.
const MAX_FEED_CHANGES: u64 = 1 << 30;
const MAX_HEADER: u64 = 64 << 20;
const MAX_PAYLOAD: u64 = 16 << 30;
/// Files of at most this size are rehydrated into staging so the layout rules can read them.
const SMALL_FILE: u64 = 1 << 20;

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
    let declared: HashMap<&str, u64> = manifest
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.size))
        .collect();
    let mlen = manifest_bytes.len() as u64;
    let lookup = |p: &str| {
        if p == MANIFEST_PATH {
            Some(mlen)
        } else {
            declared.get(p).copied()
        }
    };
    let limits = ReadLimits::for_declared(
        manifest.artifacts.len() as u64 + 1,
        manifest.total_bytes() + mlen,
    );
    let file = File::open(bundle).ctx(|| format!("open {}", bundle.display()))?;
    let unpacked = unpack_to_dir(file, dir.path(), &lookup, limits)?;
    let by_name: HashMap<&str, &crate::manifest::Artifact> = manifest
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    let mut files = Vec::with_capacity(unpacked.len());
    let mut content = Vec::with_capacity(unpacked.len());
    for u in unpacked {
        let sha = u.sha256_hex();
        let ok = if u.path == MANIFEST_PATH {
            u.sha256 == FileDigest::of(&manifest_bytes).0
        } else {
            by_name
                .get(u.path.as_str())
                .is_some_and(|a| a.sha256 == sha && a.size == u.size)
        };
        if !ok {
            return Err(KitError::DigestMismatch {
                what: format!("{} in {}", u.path, bundle.display()),
                expected: by_name
                    .get(u.path.as_str())
                    .map(|a| a.sha256.clone())
                    .unwrap_or_default(),
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
    tracing::info!(from = %from.display(), to = %to.display(), "delta make: unpacking both kits");
    let old = unpack_kit(from)?;
    let new = unpack_kit(to)?;
    tracing::info!("delta make: planning and writing");
    write_delta(&old, &new, output, key, options)
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
) -> Result<DeltaMakeReport> {
    let mut payload = Vec::new();
    let header = make_delta(
        gref(&old.manifest)?,
        &old.files,
        &old.content,
        gref(&new.manifest)?,
        &new.files,
        &new.content,
        options,
        &mut payload,
    )?;
    let mut header_bytes =
        serde_json::to_vec(&header).map_err(|e| KitError::Validation(e.to_string()))?;
    header_bytes.push(b'\n');
    let feeds = feed_changes(old, new, &header)?;
    let mut specs = vec![
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
    if let Some((path, _)) = &feeds {
        specs.push(EntrySpec {
            path: FEED_CHANGES_PATH.into(),
            mode: 0o644,
            source: EntrySource::File(path.clone()),
        });
    }
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
    let (summary, _, out) = write_bundle(BufWriter::new(out), specs, GzOptions::default())?;
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
    Ok(DeltaMakeReport {
        delta: output.to_path_buf(),
        sha256: hexd,
        size: summary.size,
        baseline: header.baseline.clone(),
        target: header.target.clone(),
        summary: header.summary(),
        signed: key.is_some(),
        feeds: feeds.map(|(_, counts)| counts),
    })
}

/// The feed changes from the baseline kit's index to the target's, written beside the
/// target's unpacked files; `None` when the target has no index (a baseline without one
/// counts as empty: every row is added).
fn feed_changes(
    old: &UnpackedKit,
    new: &UnpackedKit,
    header: &DeltaHeader,
) -> Result<Option<(PathBuf, crate::feeds::diff::DiffCounts)>> {
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
    Ok(Some((path, counts)))
}

/// The feed rows a delta changes, as `delta make` recorded them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaFeeds {
    /// Per source: rows added, modified, withdrawn.
    pub counts: crate::feeds::diff::DiffCounts,
    /// Every changed row, in (source, id, tenant) order.
    pub rows: Vec<crate::feeds::diff::RowChange>,
}

/// The feed changes read from `input` (named `name` in messages), which must be for
/// `header`'s baseline and target.
fn read_feed_changes(
    input: impl std::io::BufRead,
    name: &str,
    header: &DeltaHeader,
) -> Result<DeltaFeeds> {
    use crate::feeds::changes::ChangesReader;
    use crate::feeds::host::FeedsError;
    let err = |e| KitError::from(FeedsError::from(e));
    let (h, mut reader) = ChangesReader::new(input, name).map_err(err)?;
    if h.generation != header.target.generation || h.baseline != Some(header.baseline.generation) {
        return Err(KitError::Validation(format!(
            "{FEED_CHANGES_PATH} is for another baseline or target than {HEADER_PATH}"
        )));
    }
    let mut feeds = DeltaFeeds {
        counts: Default::default(),
        rows: Vec::new(),
    };
    while let Some(c) = reader.next_change().map_err(err)? {
        feeds
            .counts
            .entry(c.source.clone())
            .or_default()
            .count(c.change);
        feeds.rows.push(c);
    }
    Ok(feeds)
}

/// What a host has: enough for a connected site to pick a baseline (a few hundred bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// `ouk-inventory/1`.
    pub format: String,
    /// Active generation.
    pub current: Option<GenerationId>,
    /// Retained generations, most recently activated first.
    pub generations: Vec<InventoryGeneration>,
}

/// One retained generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryGeneration {
    /// Id.
    pub generation: GenerationId,
    /// Kit version.
    pub version: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// File count.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `ouk inventory export`.
pub fn inventory(root: &Root) -> Result<Inventory> {
    let generations = root
        .generations()?
        .into_iter()
        .map(|g| InventoryGeneration {
            generation: g.id,
            version: g.record.labels.get("version").cloned(),
            channel: g.record.labels.get("channel").cloned(),
            files: g.record.files,
            bytes: g.record.bytes,
        })
        .collect();
    Ok(Inventory {
        format: "ouk-inventory/1".into(),
        current: root.current()?,
        generations,
    })
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

/// The header and parts of a delta bundle, unpacked into `dir`.
struct DeltaParts {
    header: DeltaHeader,
    payload: PathBuf,
    jws: Option<String>,
}

fn read_header(dir: &Path) -> Result<DeltaHeader> {
    let bytes = fs::read(dir.join(HEADER_PATH)).ctx(|| format!("read {HEADER_PATH}"))?;
    parse_header(&bytes)
}

fn parse_header(bytes: &[u8]) -> Result<DeltaHeader> {
    let header: DeltaHeader = serde_json::from_slice(bytes)
        .map_err(|e| KitError::Validation(format!("{HEADER_PATH}: {e}")))?;
    header.validate(1 << 40)?;
    Ok(header)
}

fn unpack_delta(input: &BundleInput, dir: &Path) -> Result<DeltaParts> {
    let bundle = &input.path();
    // The header comes first (`delta make` writes it so), and the payload is bounded by the
    // size the header declares, not by a global cap: a signed delta with an endless payload
    // is refused at its declared size instead of filling the disk. A payload met before a
    // valid header may hold no bytes at all; the header's own error is reported then.
    let header: std::cell::RefCell<Option<Result<DeltaHeader>>> = std::cell::RefCell::new(None);
    let lookup = |p: &str| match p {
        HEADER_PATH => Some(MAX_HEADER),
        PAYLOAD_PATH => {
            let mut h = header.borrow_mut();
            let h = h.get_or_insert_with(|| {
                if dir.join(HEADER_PATH).is_file() {
                    read_header(dir)
                } else {
                    Err(KitError::Validation(format!(
                        "{PAYLOAD_PATH} comes before {HEADER_PATH}: not a delta ouk made"
                    )))
                }
            });
            Some(h.as_ref().map_or(0, |h| h.payload_size))
        }
        JWS_PATH => Some(64 << 10),
        FEED_CHANGES_PATH => Some(MAX_FEED_CHANGES),
        _ => None,
    };
    let file = input.reader()?;
    let limits = ReadLimits {
        max_total_bytes: MAX_HEADER + MAX_PAYLOAD + MAX_FEED_CHANGES + (1 << 20),
        max_entries: 16,
    };
    let unpacked = unpack_to_dir(file, dir, &lookup, limits);
    // The header parsed for the payload's bound is the one used below; it is read again
    // only when no payload asked for it (or asked before the header was there).
    let early = header.into_inner();
    let files = match unpacked {
        Ok(files) => files,
        // A payload refused at a bound of 0 because the header was bad: the header's error
        // is the one that explains it.
        Err(e) => {
            return Err(match early {
                Some(Err(h)) => h,
                _ => e.into(),
            });
        }
    };
    let have = |p: &str| files.iter().any(|f| f.path == p);
    if !have(HEADER_PATH) || !have(PAYLOAD_PATH) {
        return Err(KitError::Validation(format!(
            "{}: not a delta (no {HEADER_PATH} and {PAYLOAD_PATH})",
            bundle.display()
        )));
    }
    let header = match early {
        Some(Ok(h)) => h,
        _ => read_header(dir)?,
    };

    let payload = dir.join(PAYLOAD_PATH);
    let payload_len = fs::metadata(&payload)
        .ctx(|| format!("stat {PAYLOAD_PATH}"))?
        .len();
    if payload_len != header.payload_size {
        return Err(KitError::Validation(format!(
            "{PAYLOAD_PATH} has {payload_len} bytes, the header says {}",
            header.payload_size
        )));
    }
    let jws = if have(JWS_PATH) {
        Some(
            fs::read_to_string(dir.join(JWS_PATH))
                .ctx(|| format!("read {JWS_PATH}"))?
                .trim()
                .to_string(),
        )
    } else {
        None
    };
    Ok(DeltaParts {
        header,
        payload,
        jws,
    })
}

/// `ouk delta show`: the header, its summary, and the feed rows the delta changes (`None`
/// when the delta records none: its target kit has no feed index, or an older ouk made it).
///
/// Reads only what it shows. `delta show` runs on files nobody has verified yet (it checks
/// no signature), so nothing is unpacked to disk: the header and the feed changes are read
/// from the stream, and the payload is passed over in it, never written nor held, at most
/// the size the header declares (a 4 MB file declaring a 4 GiB payload used to write 4 GiB
/// into the temporary directory).
pub fn show(bundle: &Path) -> Result<(DeltaHeader, DeltaSummary, Option<DeltaFeeds>)> {
    if !bundle.is_file() {
        return Err(KitError::NotFound(bundle.to_path_buf()));
    }
    let header: std::cell::RefCell<Option<DeltaHeader>> = std::cell::RefCell::new(None);
    // A payload before the header is let through the reader's size check (it is not read)
    // so that the refusal below can say what is wrong.
    let lookup = |p: &str| match p {
        HEADER_PATH => Some(MAX_HEADER),
        PAYLOAD_PATH => Some(
            header
                .borrow()
                .as_ref()
                .map_or(u64::MAX, |h| h.payload_size),
        ),
        JWS_PATH => Some(64 << 10),
        FEED_CHANGES_PATH => Some(MAX_FEED_CHANGES),
        _ => None,
    };
    let limits = ReadLimits {
        max_total_bytes: MAX_HEADER + MAX_PAYLOAD + MAX_FEED_CHANGES + (1 << 20),
        max_entries: 16,
    };
    let input = BundleInput::File(bundle.to_path_buf());
    let file = input.reader()?;
    let mut reader = BundleReader::new(file, lookup, limits);
    let mut payload_seen = false;
    let mut feeds = None;
    while let Some(mut entry) = reader.next_entry()? {
        if entry.kind == crate::bundle::EntryKind::Directory {
            continue;
        }
        match entry.path.as_str() {
            HEADER_PATH => {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| ReadError::from_io(e, 0, Some(HEADER_PATH)))?;
                *header.borrow_mut() = Some(parse_header(&bytes)?);
            }
            PAYLOAD_PATH => {
                let declared = header.borrow().as_ref().map(|h| h.payload_size);
                match declared {
                    None => {
                        return Err(KitError::Validation(format!(
                            "{PAYLOAD_PATH} comes before {HEADER_PATH}: not a delta ouk made"
                        )));
                    }
                    Some(n) if n != entry.size => {
                        return Err(KitError::Validation(format!(
                            "{PAYLOAD_PATH} has {} bytes, the header says {n}",
                            entry.size
                        )));
                    }
                    Some(_) => payload_seen = true,
                }
            }
            FEED_CHANGES_PATH => {
                let h = header.borrow();
                let h = h.as_ref().ok_or_else(|| {
                    KitError::Validation(format!(
                        "{FEED_CHANGES_PATH} comes before {HEADER_PATH}: not a delta ouk made"
                    ))
                })?;
                feeds = Some(read_feed_changes(
                    std::io::BufReader::new(&mut entry),
                    FEED_CHANGES_PATH,
                    h,
                )?);
            }
            // The JWS is not shown; the reader skips what is not read.
            _ => {}
        }
    }
    drop(reader);
    let header = header.into_inner();
    let (Some(header), true) = (header, payload_seen) else {
        return Err(KitError::Validation(format!(
            "{}: not a delta (no {HEADER_PATH} and {PAYLOAD_PATH})",
            bundle.display()
        )));
    };
    let summary = header.summary();
    Ok((header, summary, feeds))
}

/// The baseline generation's file list as a delta sees it: its files plus its offline
/// manifest (kept in the store when the generation was imported).
fn baseline_files(root: &Root, id: &GenerationId) -> Result<Vec<TreeFile>> {
    let m = root.manifest(id)?;
    let mut files: Vec<TreeFile> = m
        .entries()
        .iter()
        .map(|e| TreeFile {
            path: e.path.clone(),
            mode: e.mode,
            size: e.size,
            sha256: e.sha256,
        })
        .collect();
    if let Some(rec) = root.generation_record(id)?
        && let Some(sha) = rec
            .labels
            .get("manifestSha256")
            .and_then(|s| s.parse::<FileDigest>().ok())
        && let Some(frec) = root.store().file_record(&sha)?
    {
        files.push(TreeFile {
            path: MANIFEST_PATH.into(),
            mode: 0o644,
            size: frec.size,
            sha256: sha,
        });
    }
    Ok(files)
}

/// The delta branch of the import pipeline (steps 3-5 differ; 1, 2, 6, 7 are shared).
// Refusals are the cold path (see `import`): their size does not matter.
#[allow(clippy::result_large_err)]
pub(crate) fn import_delta(
    root: &Root,
    opts: &ImportOptions,
    v: &Verified,
    progress: &mut dyn FnMut(u64),
) -> StepResult<ImportReport> {
    let staging = root
        .staging_dir()
        .join(format!("delta-{}", std::process::id()));
    let parts_dir = staging.join("parts");
    let tree = staging.join("tree");
    // Plain forms of compressed baseline files and re-created compressed files (the
    // decoded tier) are spilled here, inside the private staging directory.
    let scratch = staging.join("plain");
    step(
        "unpack",
        fs::create_dir_all(&parts_dir)
            .and_then(|_| fs::create_dir_all(&tree))
            .and_then(|_| fs::create_dir_all(&scratch))
            .ctx(|| format!("create {}", staging.display())),
    )?;
    let parts = step("unpack", unpack_delta(&v.input, &parts_dir))?;
    let header = &parts.header;
    let target_id = header.target.generation;
    let previous = step("verify", root.current().map_err(KitError::from))?;
    let target_version = header.target.version.clone().unwrap_or_default();
    // Idempotent: applying a delta whose target is current changes nothing.
    if previous == Some(target_id) && root.generation_dir(&target_id).is_dir() {
        let m = OfflineManifest {
            schema: crate::manifest::SCHEMA.into(),
            version: target_version,
            channel: String::new(),
            created_at: String::new(),
            generation_id: target_id.to_hex(),
            notes: Vec::new(),
            artifacts: Vec::new(),
        };
        let mut r = base_report(opts, v, &m, target_id, previous);
        r.outcome = "already-active".into();
        if let Some(rec) = step(
            "verify",
            root.generation_record(&target_id).map_err(KitError::from),
        )? {
            r.channel = rec.labels.get("channel").cloned().unwrap_or_default();
            r.files = rec.files;
            r.bytes = rec.bytes;
        }
        return Ok(r);
    }
    // The host must have the baseline (active or retained).
    let baseline = step(
        "check",
        baseline_files(root, &header.baseline.generation).map_err(|e| match e {
            KitError::Delta(ouk_delta::DeltaError::UnknownGeneration(_)) => {
                KitError::Delta(ouk_delta::DeltaError::MissingBaseline {
                    generation: header.baseline.generation.to_hex(),
                    version: header
                        .baseline
                        .version
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                })
            }
            other => other,
        }),
    )?;
    check_version(root, previous, &target_version, opts.force.is_some())?;
    let new_bytes: u64 = header.files.iter().map(|f| f.size).sum();
    check_disk(root, new_bytes, opts.free_margin)?;

    // 3. Rebuild what the baseline lacks (every piece decoded against verified store bytes,
    // every file's SHA-256 computed on the way and checked against the manifest below).
    let mut payload = step(
        "unpack",
        File::open(&parts.payload).ctx(|| format!("open {}", parts.payload.display())),
    )?;
    // Rebuilt bytes go to staging and, on the same pass, to the store writer (uncommitted
    // until the last step), so each rebuilt file is hashed and chunked once.
    let mut writer = step("unpack", root.store().writer().map_err(KitError::from))?;
    let mut sink = StagingAndStore {
        tree: &tree,
        writer: &mut writer,
        chunks: HashMap::new(),
    };
    // Reference bytes come from the baseline generation's files when they are on disk and
    // still hash to what the manifest says (one `pread` each), else from the store.
    let store_content = StoreContent(root.store());
    let baseline_dir = root.generation_dir(&header.baseline.generation);
    let reference = CheckedDirContent::new(
        baseline
            .iter()
            .map(|f| (f.sha256, (baseline_dir.join(&f.path), f.size))),
        &store_content,
    );
    let written = step(
        "unpack",
        apply_delta(
            header,
            &mut payload,
            &baseline,
            &reference,
            &scratch,
            &mut sink,
        )
        .map_err(KitError::from),
    )?;
    let mut rebuilt_chunks = sink.chunks;
    progress(new_bytes);
    let rebuilt: HashMap<String, FileDigest> = written.into_iter().collect();
    let target_files = step(
        "check",
        header
            .target_files(&baseline, &rebuilt)
            .map_err(KitError::from),
    )?;
    // 4. The target manifest: rebuilt from the delta, checked against the delta's JWS.
    let manifest_bytes = match target_files.iter().find(|f| f.path == MANIFEST_PATH) {
        Some(f) if rebuilt.contains_key(MANIFEST_PATH) => {
            let p = tree.join(MANIFEST_PATH);
            let bytes = step(
                "check",
                fs::read(&p).ctx(|| format!("read {}", p.display())),
            )?;
            step(
                "check",
                fs::remove_file(&p).ctx(|| format!("remove {}", p.display())),
            )?;
            let _ = f;
            bytes
        }
        Some(f) => step("check", read_store_file(root, &f.sha256))?,
        None => {
            return Err((
                "check",
                KitError::Validation("the delta's target has no offline manifest".into()),
            ));
        }
    };
    if manifest_bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err((
            "check",
            KitError::Validation("target manifest too large".into()),
        ));
    }
    // The delta's signature covers the whole bundle, so the manifest rebuilt from its
    // payload is authenticated; a JWS, when a delta carries one, is checked too.
    if let Some(jws) = parts.jws.as_deref()
        && v.signed_by.is_some()
    {
        step(
            "verify",
            crate::sign::verify_detached_jws(&v.keys, jws, &manifest_bytes)
                .map(|_| ())
                .map_err(|e| KitError::Signature {
                    what: JWS_PATH.into(),
                    message: e.to_string(),
                }),
        )?;
    }
    let manifest = step("check", OfflineManifest::parse(&manifest_bytes))?;
    if manifest.generation_id != target_id.to_hex() || manifest.version != target_version {
        return Err((
            "check",
            KitError::Validation("the delta's header and its target manifest disagree".into()),
        ));
    }
    // Every target file (but the manifest) must be exactly what the manifest lists; a
    // rebuilt file that hashes to something else is named with both digests.
    let files: Vec<&TreeFile> = target_files
        .iter()
        .filter(|f| f.path != MANIFEST_PATH)
        .collect();
    for f in &files {
        if let (Some(a), true) = (manifest.get(&f.path), rebuilt.contains_key(&f.path))
            && a.sha256 != f.sha256.to_hex()
            && let Ok(expected) = a.sha256.parse::<FileDigest>()
        {
            return Err((
                "check",
                KitError::Delta(ouk_delta::DeltaError::DigestMismatch {
                    path: f.path.clone(),
                    expected,
                    actual: f.sha256,
                }),
            ));
        }
    }
    if files.len() != manifest.artifacts.len()
        || files.iter().any(|f| {
            manifest
                .get(&f.path)
                .is_none_or(|a| a.sha256 != f.sha256.to_hex() || a.size != f.size)
        })
    {
        return Err((
            "check",
            KitError::Validation("the delta's target files do not match its manifest".into()),
        ));
    }

    // Gather chunk lists (rebuilt files are already in the writer).
    let mut entries = Vec::with_capacity(files.len());
    let mut layout_entries = Vec::with_capacity(files.len());
    for f in files {
        let staged = tree.join(&f.path);
        let chunks = if rebuilt.contains_key(f.path.as_str()) {
            rebuilt_chunks.remove(f.path.as_str()).unwrap_or_default()
        } else {
            let rec = step(
                "check",
                root.store().file_record(&f.sha256).map_err(KitError::from),
            )?
            .ok_or_else(|| {
                (
                    "check",
                    KitError::Delta(ouk_delta::DeltaError::MissingBaseline {
                        generation: header.baseline.generation.to_hex(),
                        version: header
                            .baseline
                            .version
                            .clone()
                            .unwrap_or_else(|| "unknown".into()),
                    }),
                )
            })?;
            // Small files are rehydrated so the layout rules can read them.
            if f.size <= SMALL_FILE {
                step("unpack", rehydrate(root, f, &staged))?;
            }
            rec.chunks
        };
        layout_entries.push(FileEntry {
            path: f.path.clone(),
            mode: f.mode,
            size: f.size,
            sha256: f.sha256.0,
        });
        entries.push(ManifestEntry {
            path: f.path.clone(),
            mode: f.mode,
            size: f.size,
            sha256: f.sha256,
            chunks,
        });
    }
    let chunk_set = step(
        "check",
        ChunkSetManifest::new(entries).map_err(KitError::from),
    )?;
    let mut base = base_report(opts, v, &manifest, target_id, previous);
    base.bundle_sha256 = hex::encode(v.bundle_sha);
    let staged = Staged {
        writer,
        chunk_set,
        layout_entries,
        manifest,
        manifest_bytes,
        staging: tree,
        kind: "delta",
    };
    finish(root, opts, v, staged, base)
}

/// The importer's [`RebuiltSink`]: each rebuilt file is written to staging (for the layout
/// rules and materialization) while the store writer chunks, hashes and stores the same
/// bytes; the digest returned is the writer's.
struct StagingAndStore<'a, 's> {
    tree: &'a Path,
    writer: &'a mut ouk_store::StoreWriter<'s>,
    chunks: HashMap<String, Vec<ouk_store::ChunkId>>,
}

impl RebuiltSink for StagingAndStore<'_, '_> {
    fn put(
        &mut self,
        file: &ouk_delta::format::DeltaFile,
        content: &mut dyn std::io::Read,
    ) -> ouk_delta::Result<FileDigest> {
        let mut out = create_rebuilt(self.tree, file)?;
        let mut tee = crate::import::Tee {
            inner: content,
            out: &mut out,
            write_error: None,
        };
        let put = self.writer.put_reader(&mut tee, &mut |_| {});
        if let Some(e) = tee.write_error.take() {
            return Err(ouk_delta::DeltaError::Io {
                context: format!("write {}", self.tree.join(&file.path).display()),
                source: e,
            });
        }
        let put = put?;
        finish_rebuilt(out, file, self.tree)?;
        self.chunks.insert(file.path.clone(), put.chunks);
        Ok(put.digest)
    }
}

fn read_store_file(root: &Root, sha: &FileDigest) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    root.store().read_file(sha, &mut out)?;
    Ok(out)
}

fn rehydrate(root: &Root, f: &TreeFile, dest: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
    }
    let mut out = File::create(dest).ctx(|| format!("create {}", dest.display()))?;
    root.store().read_file(&f.sha256, &mut out)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(f.mode))
        .ctx(|| format!("chmod {}", dest.display()))
}
