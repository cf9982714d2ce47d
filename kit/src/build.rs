//! `ouk kit build`: turn a release tree into a signed, reproducible Offline Kit.
//!
//! Order of work (two reads of each release file, three of a feed, none of generated
//! files):
//! 1. walk the release tree (regular files only) and, in parallel, hash every file once:
//!    SHA-256 (manifest, signatures), SHA-1 (SPDX 2.3 requires it) and the store's chunk
//!    ids (the generation id) in one streaming pass;
//! 0. prepare the kit content ([`crate::ops::content`]): plan the Policy Gateway copy and notes,
//!    check certificates, the Authority guardrails and cold-start caches;
//! 2. check the layout rules (debug store, plug-ins, secrets at 0600, `.sha256` sidecars);
//!    then index the feeds under `feeds/<source>/` into `metadata/feeds-index.jsonl`
//!    ([`crate::feeds`]; a separate read of each feed, streaming, in bounded memory, into a
//!    temporary file of the output directory) and audit the index: a bad row (unless
//!    `--skip-bad-rows`) or a conflict (unless `--allow-feed-conflicts`) stops the build;
//! 3. generate `metadata/debug-store.json`, plug-in `.sha256`/`.sig` sidecars, the SPDX SBOM
//!    and the signed in-toto provenance, then the offline manifest of every other file and
//!    the generation id of that file set;
//! 4. stream the deterministic bundle (second read of each release file; a file whose
//!    digest changed since step 1 aborts the build) to a temporary name, fsync, rename;
//! 5. write `.sha256`, `.sig`, `.metadata.json`, and `manifest/offline-manifest.json` with
//!    its `.sha256`, `.sig` (cosign blob signature) and `.jws`, each atomically.
//!
//! Reproducibility: every artifact's `capturedAt` comes from the tree (file mtimes) or
//! `--captured-at`; the kit's `createdAt` from `--created-at`, else `SOURCE_DATE_EPOCH`,
//! else `--captured-at`, else the build time (the clock: the one input a reproducible build
//! must fix, with either of the first two). Modes are normalized (0644, 0755 when any
//! execute bit is set, 0600 under `secrets/`). Memory: the bundle writer's bound (about
//! 16 MiB) plus the per-file records and the small generated files.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_store::fsutil::AtomicFile;
use ouk_store::progress::{Step, StepSink, Unit};
use ouk_store::{ChunkId, Chunker, ChunkerParams, FileDigest};
use rayon::prelude::*;
use serde::Serialize;

use crate::bundle::{BundleSummary, BundleWriter, EntryInfo, EntrySource, EntrySpec, GzOptions};
use crate::error::{IoContext, KitError, Result};
use crate::layout::{self, FileEntry, LayoutOptions, LayoutReport};
use crate::manifest::{Artifact, MANIFEST_PATH, Note, OfflineManifest, SCHEMA};
use crate::ops::content::KitContent;
use crate::provenance::{
    self, DualHasher, FileDigests, ProvenanceInput, SbomFile, SbomInfo, Subject, time::format_utc,
};
use crate::sign::SigningKey;

// The sidecars a build writes beside its bundle have their own module; these names keep
// `crate::build::..` paths working.
pub use crate::sidecars::{KitMetadata, ManifestRef, own_manifest_name};
pub(crate) use crate::sidecars::{sign_failed, write_bundle_sidecars};

/// Paths the build writes itself; a release tree may not carry them.
pub const GENERATED_PATHS: [&str; 5] = [
    MANIFEST_PATH,
    layout::DEBUG_SUMMARY,
    crate::feeds::FEED_INDEX_PATH,
    provenance::SBOM_PATH,
    provenance::PROVENANCE_PATH,
];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Kit version, e.g. `2025.10.0`.
    pub version: String,
    /// Release channel, e.g. `edge`.
    pub channel: String,
    /// The release tree.
    pub release_dir: PathBuf,
    /// Where the output set goes.
    pub output_dir: PathBuf,
    /// Where generated files are also written for inspection, if given.
    pub staging_dir: Option<PathBuf>,
    /// Signing key; `None` builds an unsigned kit.
    pub signing_key: Option<SigningKey>,
    /// Every artifact's `capturedAt` (RFC 3339) instead of its mtime.
    pub captured_at: Option<String>,
    /// The kit's `createdAt` (RFC 3339); default: `SOURCE_DATE_EPOCH`, else `captured_at`,
    /// else the build time (never the tree's mtimes: an old tree made a kit every host
    /// refused as stale).
    pub created_at: Option<String>,
    /// Accept a release tree without `debug/`.
    pub allow_missing_debug: bool,
    /// Compression threads (output does not depend on it).
    pub threads: usize,
    /// The advisory AI volume primer to add at [`crate::ops::primer::PRIMER_PATH`]; `None`
    /// leaves it out.
    pub primer: Option<crate::ops::primer::PrimerSpec>,
    /// Cold-start caches to carry as `caches/<file name>` (`--cold-start-cache`).
    pub cold_start_caches: Vec<PathBuf>,
    /// How feeds under `feeds/<source>/` are indexed (id fields, `--skip-bad-rows`, sort
    /// budget; spilled sort runs go to the output directory unless a directory is set).
    pub feed_index: crate::feeds::IndexOptions,
    /// Build the kit even though its feeds conflict (`--allow-feed-conflicts`).
    pub allow_feed_conflicts: bool,
    /// Replace a different bundle of the same version and channel already in the output
    /// directory (by default that is refused: a reproducible rebuild gives the same bytes
    /// and replaces nothing; different bytes under the same name would confuse every copy).
    pub force: bool,
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    /// The bundle.
    pub bundle: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// The manifest in the output directory.
    pub manifest: PathBuf,
    /// The manifest's SHA-256.
    pub manifest_sha256: String,
    /// Files in the bundle (manifest included).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Generation id of the artifact set (`generation`, the name every JSON output of ouk
    /// gives a generation's id; the `.metadata.json` sidecar's format keeps `generationId`).
    #[serde(rename = "generation")]
    pub generation_id: GenerationId,
    /// Signed?
    pub signed: bool,
    /// Key id of the signing key (`signedBy`, as in every JSON output of ouk).
    #[serde(rename = "signedBy", skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Layout warnings.
    pub warnings: Vec<String>,
    /// Per feed: rows indexed and rows skipped.
    pub feeds: Vec<crate::feeds::FeedSummary>,
    /// Rows left out by `--skip-bad-rows` (the first
    /// [`MAX_LISTED_BAD_ROWS`](crate::feeds::indexer::MAX_LISTED_BAD_ROWS)).
    pub skipped_rows: Vec<crate::feeds::BadRow>,
    /// All rows left out.
    pub skipped_total: u64,
    /// The feed audit (conflicts are only possible here with `--allow-feed-conflicts`).
    pub feed_audit: crate::feeds::AuditReport,
}

/// One file of the kit, hashed.
struct KitFile {
    path: String,
    mode: u32,
    digests: FileDigests,
    chunks: Vec<ChunkId>,
    captured_at: String,
    source: EntrySource,
}

/// The bundle's file name.
pub fn bundle_name(version: &str, channel: &str) -> String {
    format!("stella-ops-offline-kit-{version}-{channel}.tar.gz")
}

fn check_label(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        && !value.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(KitError::Usage(format!(
            "{what} {value:?} must be 1-64 characters of letters, digits, '.', '_', '+' or '-'"
        )))
    }
}

/// Normalized kit mode for a release file.
pub fn kit_mode(path: &str, mode: u32) -> u32 {
    if path.starts_with("secrets/") {
        0o600
    } else if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

fn hash_reader(chunker: &Chunker, r: impl Read) -> std::io::Result<(FileDigests, Vec<ChunkId>)> {
    let mut dual = DualHasher::new();
    let mut sc = ouk_store::chunker::StreamChunker::new(chunker.clone(), r);
    let mut chunks = Vec::new();
    while let Some(c) = sc.next_chunk(&mut |b| dual.update(b))? {
        chunks.push(ChunkId::of(c));
    }
    Ok((dual.finalize(), chunks))
}

fn generated(chunker: &Chunker, path: &str, bytes: Vec<u8>, captured_at: &str) -> Result<KitFile> {
    let (digests, chunks) = hash_reader(chunker, &bytes[..]).ctx(|| format!("hash {path}"))?;
    Ok(KitFile {
        path: path.to_string(),
        mode: 0o644,
        digests,
        chunks,
        captured_at: captured_at.to_string(),
        source: EntrySource::Bytes(bytes),
    })
}

/// Write `bytes` to `path` atomically: [`ouk_store::fsutil::write_atomic`] (exclusive,
/// no-follow temporary file, fsync, rename, directory fsync) with the kit's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(ouk_store::fsutil::write_atomic(path, bytes)?)
}

/// Build the kit: the steps of the module doc, each in its own function below.
pub fn build_kit(opts: &BuildOptions, progress: StepSink<'_>) -> Result<BuildReport> {
    tracing::info!(version = %opts.version, channel = %opts.channel, release = %opts.release_dir.display(), "build");
    check_label("version", &opts.version)?;
    check_label("channel", &opts.channel)?;
    if !opts.release_dir.is_dir() {
        return Err(KitError::NotFound(opts.release_dir.clone()));
    }
    let chunker = Chunker::new(ChunkerParams::V1);
    let (listed, content) = list_release(opts)?;
    let fixed_capture = match &opts.captured_at {
        Some(t) => Some(
            provenance::normalize_rfc3339(t).ok_or_else(|| KitError::BadTime {
                what: crate::GivenTime::CapturedAt,
                value: t.clone(),
            })?,
        ),
        None => None,
    };

    // 1. Hash every release file once, in parallel.
    let (mut files, entries) = hash_release(&chunker, &listed, fixed_capture.as_deref(), progress)?;
    let (created_at, created_from) = kit_created_at(opts, fixed_capture, ouk_root::now_unix())?;

    // Operational extras: a telemetry bundle must match its sidecar and read cleanly; the
    // volume primer is generated (a release tree may not carry its own).
    crate::ops::telemetry::check_release_bundle(&opts.release_dir, &entries)?;
    add_primer(opts, &chunker, &mut files, &created_at)?;

    // 2. Layout rules.
    let report = layout::check_entries(
        &opts.release_dir,
        &entries,
        &LayoutOptions {
            allow_missing_debug: opts.allow_missing_debug,
            generated_at: None,
        },
    )?
    .into_result()?;
    let mut warnings: Vec<String> = report.warnings.iter().map(|w| w.to_string()).collect();
    warnings.extend(content.warnings.iter().cloned());
    if let Some(warning) = stale_at_birth(&created_at, created_from, ouk_root::now_unix()) {
        warnings.push(warning);
    }

    // 2b. The feed index (a separate read of each feed; see docs/benchmarks.md) and its
    // audit.
    fs::create_dir_all(&opts.output_dir).ctx(|| format!("create {}", opts.output_dir.display()))?;
    progress(Step::Phase {
        name: "feeds",
        total: None,
        unit: Unit::Files,
    });
    let feeds = add_feed_index(opts, &chunker, &mut files, &mut warnings, &created_at)?;
    let feed_index = feeds.file.path().to_path_buf();

    // 3. Generated files.
    let extra = layout_files(opts, &chunker, &report, &files, &created_at)?;
    files.extend(extra);
    add_sbom_and_provenance(opts, &chunker, &mut files, &created_at, &mut warnings)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let (generation_id, manifest) = offline_manifest(opts, &files, &created_at, &content.notes)?;
    let manifest_bytes = manifest.to_bytes();
    let manifest_sha = FileDigest::of(&manifest_bytes);
    if let Some(staging) = &opts.staging_dir {
        write_staging(staging, &files, &feed_index, &content, &manifest_bytes)?;
    }

    // 4. The bundle.
    let name = bundle_name(&opts.version, &opts.channel);
    let bundle_path = opts.output_dir.join(&name);
    let written = write_kit_bundle(opts, &bundle_path, files, &manifest_bytes, progress)?;

    // 5. Sidecars.
    let bundle_hex = hex::encode(written.summary.sha256);
    let manifest_out = write_manifest_files(opts, &name, &manifest_bytes, &manifest_sha)?;
    let kid = opts.signing_key.as_ref().map(SigningKey::kid);
    let metadata = KitMetadata {
        name: name.clone(),
        kind: "kit".into(),
        version: opts.version.clone(),
        channel: opts.channel.clone(),
        sha256: bundle_hex.clone(),
        size: written.summary.size,
        manifest: ManifestRef {
            name: MANIFEST_PATH.into(),
            sha256: manifest_sha.to_hex(),
            size: manifest_bytes.len() as u64,
        },
        created_at,
        generation_id: generation_id.to_hex(),
        signed: opts.signing_key.is_some(),
        kid: kid.clone(),
        secrets: Some(crate::exposure::manifest_lists_secrets(&manifest)),
    };
    write_bundle_sidecars(
        &opts.output_dir,
        &written.summary.sha256,
        opts.signing_key.as_ref(),
        &metadata,
    )?;
    Ok(BuildReport {
        bundle: bundle_path,
        sha256: bundle_hex,
        size: written.summary.size,
        manifest: manifest_out,
        manifest_sha256: manifest_sha.to_hex(),
        files: written.file_count,
        bytes: written.total_bytes,
        generation_id,
        signed: opts.signing_key.is_some(),
        kid,
        warnings,
        feeds: feeds.report.feeds,
        skipped_rows: feeds.report.skipped_rows,
        skipped_total: feeds.report.skipped_total,
        feed_audit: feeds.audit,
    })
}

/// A file to put in the kit: its path in the kit, its source file and its mode.
type ListedFile = (String, PathBuf, u32);

/// The release tree's files (path in the kit, source path, mode) plus the operations
/// content's extra files, and that content's notes and warnings. A release file at a path
/// the build writes itself is refused; the content is checked before anything is hashed.
fn list_release(opts: &BuildOptions) -> Result<(Vec<ListedFile>, KitContent)> {
    let mut listed = ouk_delta::tree::list_tree(&opts.release_dir)?;
    for (rel, _, _) in &listed {
        if GENERATED_PATHS.contains(&rel.as_str()) {
            return Err(KitError::Validation(format!(
                "{rel}: the build writes this file itself; remove it from the release tree"
            )));
        }
    }
    // Policy Gateway bundle, trust material, Authority guardrails, cold-start caches: checked
    // before anything is hashed; their extra files are hashed and bundled like release files.
    let content =
        crate::ops::content::prepare(&opts.release_dir, &listed, &opts.cold_start_caches)?;
    listed.extend(content.extra_files.iter().cloned());
    Ok((listed, content))
}

/// Hash every listed file once, in parallel: the kit files and the layout checker's
/// entries (raw modes).
fn hash_release(
    chunker: &Chunker,
    listed: &[ListedFile],
    fixed_capture: Option<&str>,
    progress: StepSink<'_>,
) -> Result<(Vec<KitFile>, Vec<FileEntry>)> {
    // The total is known up front (a stat per file), so the bar has a percent and an ETA.
    let total: u64 = listed
        .iter()
        .filter_map(|(_, path, _)| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    progress(Step::Phase {
        name: "hash",
        total: Some(total),
        unit: Unit::Bytes,
    });
    // Hashed in parallel within batches of files, reported after each batch: the sink is
    // not shared across threads, and a batch of 64 keeps both cores busy.
    let mut hashed: Vec<Result<(KitFile, u32)>> = Vec::with_capacity(listed.len());
    for batch in listed.chunks(64) {
        let done: Vec<Result<(KitFile, u32)>> = batch
            .par_iter()
            .map(|(rel, path, mode)| {
                let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
                let meta = file.metadata().ctx(|| format!("stat {}", path.display()))?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                let (digests, chunks) =
                    hash_reader(chunker, std::io::BufReader::with_capacity(1 << 20, file))
                        .ctx(|| format!("read {}", path.display()))?;
                let captured_at = match fixed_capture {
                    Some(t) => t.to_string(),
                    None => format_utc(mtime).unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
                };
                Ok((
                    KitFile {
                        path: rel.clone(),
                        mode: kit_mode(rel, *mode),
                        digests,
                        chunks,
                        captured_at,
                        source: EntrySource::File(path.clone()),
                    },
                    *mode,
                ))
            })
            .collect();
        let bytes: u64 = done
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|(f, _)| f.digests.size)
            .sum();
        progress(Step::Advance(bytes));
        hashed.extend(done);
    }
    let mut files = Vec::with_capacity(hashed.len());
    let mut entries = Vec::with_capacity(hashed.len());
    for h in hashed {
        let (f, raw_mode) = h?;
        entries.push(FileEntry {
            path: f.path.clone(),
            mode: raw_mode,
            size: f.digests.size,
            sha256: f.digests.sha256,
        });
        files.push(f);
    }
    Ok((files, entries))
}

/// Where the kit's `createdAt` came from: the one given (named for the stale warning) or
/// the build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreatedFrom {
    /// `--created-at`.
    Flag,
    /// The `SOURCE_DATE_EPOCH` environment variable.
    SourceDateEpoch,
    /// `--captured-at` (every artifact's time, the kit's too when nothing else is given).
    CapturedAt,
    /// The clock at build time: fresh by construction, never reproducible.
    BuildTime,
}

impl CreatedFrom {
    /// Names the flag: only the stale-at-birth warning uses it, which reaches only the
    /// output of the build that was given the flag (never reason.json or the import API).
    fn describe(self) -> &'static str {
        match self {
            CreatedFrom::Flag => "--created-at",
            CreatedFrom::SourceDateEpoch => "SOURCE_DATE_EPOCH",
            CreatedFrom::CapturedAt => "--captured-at",
            CreatedFrom::BuildTime => "the build time",
        }
    }
}

/// The kit's creation time: `--created-at`, else `SOURCE_DATE_EPOCH` (the reproducible-
/// builds convention, Unix seconds), else the fixed capture time, else `now` (the build
/// time). A reproducible build gives one of the first two; the tree's mtimes are no
/// longer the default, since a tree last touched weeks ago gave a kit born stale.
fn kit_created_at(
    opts: &BuildOptions,
    fixed_capture: Option<String>,
    now: i64,
) -> Result<(String, CreatedFrom)> {
    if let Some(t) = &opts.created_at {
        let t = provenance::normalize_rfc3339(t).ok_or_else(|| KitError::BadTime {
            what: crate::GivenTime::CreatedAt,
            value: t.clone(),
        })?;
        return Ok((t, CreatedFrom::Flag));
    }
    if let Some(epoch) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let epoch = epoch.to_string_lossy();
        let t = epoch
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(format_utc)
            .ok_or_else(|| {
                KitError::Usage(format!("SOURCE_DATE_EPOCH {epoch:?} is not a Unix time"))
            })?;
        return Ok((t, CreatedFrom::SourceDateEpoch));
    }
    if let Some(t) = fixed_capture {
        return Ok((t, CreatedFrom::CapturedAt));
    }
    let t = format_utc(now).ok_or(KitError::ClockOutOfRange { now })?;
    Ok((t, CreatedFrom::BuildTime))
}

/// Generate the volume primer when asked for; a release tree may not carry its own.
fn add_primer(
    opts: &BuildOptions,
    chunker: &Chunker,
    files: &mut Vec<KitFile>,
    created_at: &str,
) -> Result<()> {
    let Some(spec) = &opts.primer else {
        return Ok(());
    };
    if files
        .iter()
        .any(|f| f.path == crate::ops::primer::PRIMER_PATH)
    {
        return Err(KitError::Validation(format!(
            "{}: the build writes this file itself; remove it from the release tree",
            crate::ops::primer::PRIMER_PATH
        )));
    }
    let primer = crate::ops::primer::write_primer(spec)?;
    files.push(generated(
        chunker,
        crate::ops::primer::PRIMER_PATH,
        primer,
        created_at,
    )?);
    Ok(())
}

/// Index and audit the kit's feeds into a temporary file of the output directory and add
/// that index to the kit's files.
fn add_feed_index(
    opts: &BuildOptions,
    chunker: &Chunker,
    files: &mut Vec<KitFile>,
    warnings: &mut Vec<String>,
    created_at: &str,
) -> Result<BuiltFeedIndex> {
    let feeds = index_feeds_of(opts, files, warnings)?;
    let feed_index = feeds.file.path().to_path_buf();
    let (digests, chunks) = hash_reader(
        chunker,
        std::io::BufReader::with_capacity(
            1 << 20,
            File::open(&feed_index).ctx(|| format!("open {}", feed_index.display()))?,
        ),
    )
    .ctx(|| format!("read {}", feed_index.display()))?;
    files.push(KitFile {
        path: crate::feeds::FEED_INDEX_PATH.into(),
        mode: 0o644,
        digests,
        chunks,
        captured_at: created_at.to_string(),
        source: EntrySource::File(feed_index),
    });
    Ok(feeds)
}

/// The files the layout report asks for: the debug-store summary, the plug-in signing
/// key and the plug-ins' `.sha256`/`.sig` sidecars the tree does not already carry.
fn layout_files(
    opts: &BuildOptions,
    chunker: &Chunker,
    report: &LayoutReport,
    files: &[KitFile],
    created_at: &str,
) -> Result<Vec<KitFile>> {
    let have: std::collections::HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    let mut extra = Vec::new();
    if let Some(summary) = &report.debug_summary {
        extra.push(generated(
            chunker,
            layout::DEBUG_SUMMARY,
            summary.to_json_bytes(),
            created_at,
        )?);
    }
    // Plug-in files are a supplier's bytes: they are signed by the key derived for
    // plug-ins, never by the kit key (see `SigningKey::derive_for_role`), and the kit
    // carries that key's public half so hosts verify plug-ins with cosign as before.
    let plugin_key = opts
        .signing_key
        .as_ref()
        .map(|k| k.derive_for_role(crate::sign::KeyRole::Plugin));
    if let Some(key) = &plugin_key
        && !report.plugins.is_empty()
        && !have.contains(layout::PLUGIN_SIGNING_KEY)
    {
        let pem = key.verifying_key().to_pem()?;
        extra.push(generated(
            chunker,
            layout::PLUGIN_SIGNING_KEY,
            pem.into_bytes(),
            created_at,
        )?);
    }
    for target in layout::plugin_sidecar_targets(&report.plugins) {
        let Some(f) = files.iter().find(|f| f.path == target) else {
            continue;
        };
        let base = target.rsplit('/').next().unwrap_or(&target).to_string();
        let sha_path = format!("{target}.sha256");
        if !have.contains(&sha_path) {
            let body = layout::sha256_sidecar_body(&f.digests.sha256, &base);
            extra.push(generated(
                chunker,
                &sha_path,
                body.into_bytes(),
                created_at,
            )?);
        }
        let sig_path = format!("{target}.sig");
        if let Some(key) = &plugin_key
            && !have.contains(&sig_path)
        {
            let sig = crate::sign::sign_blob_sha256(key, &f.digests.sha256).map_err(|e| {
                KitError::Signature {
                    what: sig_path.clone(),
                    message: e.to_string(),
                }
            })?;
            extra.push(generated(chunker, &sig_path, sig.into_bytes(), created_at)?);
        }
    }
    Ok(extra)
}

/// Add the SPDX SBOM of every file so far and, when signing, the signed in-toto
/// provenance over every file including the SBOM (unsigned: a warning instead).
fn add_sbom_and_provenance(
    opts: &BuildOptions,
    chunker: &Chunker,
    files: &mut Vec<KitFile>,
    created_at: &str,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let sbom_files: Vec<SbomFile> = files
        .iter()
        .map(|f| SbomFile::new(f.path.clone(), &f.digests))
        .collect();
    let sbom = provenance::spdx_json(
        &SbomInfo::new(&opts.version, &opts.channel, created_at),
        &sbom_files,
    )?;
    files.push(generated(chunker, provenance::SBOM_PATH, sbom, created_at)?);
    match &opts.signing_key {
        Some(key) => {
            let subjects = files
                .iter()
                .map(|f| Subject::sha256(f.path.clone(), &f.digests.sha256))
                .collect();
            let mut input = ProvenanceInput::new(&opts.version, &opts.channel, subjects);
            input.started_on = Some(created_at.to_string());
            input.finished_on = Some(created_at.to_string());
            let envelope = provenance::provenance_json(key, &input)?;
            files.push(generated(
                chunker,
                provenance::PROVENANCE_PATH,
                envelope,
                created_at,
            )?);
        }
        None => warnings.push(
            "no signing key: the kit is UNSIGNED (no .sig, no .jws, no provenance attestation)"
                .into(),
        ),
    }
    Ok(())
}

/// The generation id of `files` (sorted by path) and the offline manifest listing them.
fn offline_manifest(
    opts: &BuildOptions,
    files: &[KitFile],
    created_at: &str,
    notes: &[Note],
) -> Result<(GenerationId, OfflineManifest)> {
    let chunk_set = ChunkSetManifest::new(
        files
            .iter()
            .map(|f| ManifestEntry {
                path: f.path.clone(),
                mode: f.mode,
                size: f.digests.size,
                sha256: FileDigest(f.digests.sha256),
                chunks: f.chunks.clone(),
            })
            .collect(),
    )?;
    let generation_id = chunk_set.id();
    let manifest = OfflineManifest {
        schema: SCHEMA.into(),
        version: opts.version.clone(),
        channel: opts.channel.clone(),
        created_at: created_at.to_string(),
        generation_id: generation_id.to_hex(),
        notes: notes.to_vec(),
        artifacts: files
            .iter()
            .map(|f| Artifact {
                name: f.path.clone(),
                sha256: hex::encode(f.digests.sha256),
                size: f.digests.size,
                captured_at: f.captured_at.clone(),
            })
            .collect(),
    };
    Ok((generation_id, manifest))
}

/// Write the generated files, the feed index, the content's extra files and the manifest
/// into `staging` (`BuildOptions::staging_dir`).
fn write_staging(
    staging: &Path,
    files: &[KitFile],
    feed_index: &Path,
    content: &KitContent,
    manifest_bytes: &[u8],
) -> Result<()> {
    for f in files {
        if let EntrySource::Bytes(b) = &f.source {
            write_atomic(&staging.join(&f.path), b)?;
        }
    }
    let to = staging.join(crate::feeds::FEED_INDEX_PATH);
    fs::create_dir_all(to.parent().unwrap_or(staging))
        .and_then(|_| fs::copy(feed_index, &to))
        .ctx(|| format!("copy the feed index to {}", to.display()))?;
    for (rel, from, _) in &content.extra_files {
        let to = staging.join(rel);
        fs::create_dir_all(to.parent().unwrap_or(staging))
            .and_then(|_| fs::copy(from, &to))
            .ctx(|| format!("copy {} to {}", from.display(), to.display()))?;
    }
    write_atomic(&staging.join(MANIFEST_PATH), manifest_bytes)
}

/// What writing the bundle produced.
struct WrittenBundle {
    summary: BundleSummary,
    /// Entries written, the manifest included.
    file_count: u64,
    /// Bytes of every entry, the manifest included.
    total_bytes: u64,
}

/// Stream the deterministic bundle of `files` and the manifest to a temporary name and
/// commit it at `bundle_path`. A file whose digest changed since it was hashed aborts the
/// build, and a different bundle already at `bundle_path` is replaced only when forced.
fn write_kit_bundle(
    opts: &BuildOptions,
    bundle_path: &Path,
    files: Vec<KitFile>,
    manifest_bytes: &[u8],
    progress: StepSink<'_>,
) -> Result<WrittenBundle> {
    let expected: std::collections::HashMap<String, [u8; 32]> = files
        .iter()
        .map(|f| (f.path.clone(), f.digests.sha256))
        .collect();
    let total_bytes: u64 =
        files.iter().map(|f| f.digests.size).sum::<u64>() + manifest_bytes.len() as u64;
    let mut specs: Vec<EntrySpec> = files
        .into_iter()
        .map(|f| EntrySpec {
            path: f.path,
            mode: f.mode,
            source: f.source,
        })
        .collect();
    specs.push(EntrySpec {
        path: MANIFEST_PATH.into(),
        mode: 0o644,
        source: EntrySource::Bytes(manifest_bytes.to_vec()),
    });
    let file_count = specs.len() as u64;
    // Dropped on any error below, the temporary file is removed.
    let out = AtomicFile::create(bundle_path)?;
    let gz = GzOptions {
        threads: opts.threads.max(1),
        ..GzOptions::default()
    };
    // The compressed size is not known before it is written, the content's is: the phase
    // counts the entries' bytes as they are read into the bundle, against that total, so
    // the bar has a percent and an ETA.
    progress(Step::Phase {
        name: "write",
        total: Some(total_bytes),
        unit: Unit::Bytes,
    });
    let (summary, infos, out) = write_entries_counted(
        std::io::BufWriter::with_capacity(1 << 20, out),
        specs,
        gz,
        progress,
    )?;
    for info in &infos {
        if let Some(exp) = expected.get(&info.path)
            && *exp != info.sha256
        {
            return Err(KitError::Validation(format!(
                "{}: changed while the kit was being built; rebuild from a quiescent release tree",
                info.path
            )));
        }
    }
    let file = out.into_inner().map_err(|e| KitError::Io {
        context: format!("write {}", bundle_path.display()),
        source: e.into_error(),
    })?;
    file.set_mode(0o644)?;
    refuse_replacing(bundle_path, &summary.sha256, opts)?;
    file.commit()?;
    Ok(WrittenBundle {
        summary,
        file_count,
        total_bytes,
    })
}

/// Write the manifest into the output directory: the shared
/// `manifest/offline-manifest.json` with its `.sha256` (and, when signing, `.sig` and
/// `.jws`), and the bundle's own copy (with its `.jws`). Returns the shared manifest's path.
fn write_manifest_files(
    opts: &BuildOptions,
    name: &str,
    manifest_bytes: &[u8],
    manifest_sha: &FileDigest,
) -> Result<PathBuf> {
    let manifest_out = opts.output_dir.join(MANIFEST_PATH);
    write_atomic(&manifest_out, manifest_bytes)?;
    // The bundle's own copy: kits and deltas built into one directory share
    // `manifest/offline-manifest.json` (the seed's layout, the last kit built), so each
    // bundle also keeps its manifest beside it, and verify, pull and serve use that one.
    let own_manifest = opts.output_dir.join(own_manifest_name(name));
    write_atomic(&own_manifest, manifest_bytes)?;
    write_atomic(
        &opts.output_dir.join(format!("{MANIFEST_PATH}.sha256")),
        format!("{manifest_sha}  offline-manifest.json\n").as_bytes(),
    )?;
    if let Some(key) = &opts.signing_key {
        let manifest_sig = crate::sign::sign_blob_sha256(key, &manifest_sha.0)
            .map_err(sign_failed(format!("{MANIFEST_PATH}.sig")))?;
        write_atomic(
            &opts.output_dir.join(format!("{MANIFEST_PATH}.sig")),
            manifest_sig.as_bytes(),
        )?;
        let jws = crate::sign::sign_detached_jws(key, manifest_bytes).map_err(|e| {
            KitError::Signature {
                what: format!("{MANIFEST_PATH}.jws"),
                message: e.to_string(),
            }
        })?;
        write_atomic(
            &opts.output_dir.join(format!("{MANIFEST_PATH}.jws")),
            jws.as_bytes(),
        )?;
        write_atomic(
            &PathBuf::from(format!("{}.jws", own_manifest.display())),
            jws.as_bytes(),
        )?;
    }
    Ok(manifest_out)
}

/// The feed index of a kit being built, in a temporary file of the output directory.
struct BuiltFeedIndex {
    file: tempfile::NamedTempFile,
    report: crate::feeds::IndexReport,
    audit: crate::feeds::AuditReport,
}

/// Conflicts named in the error that refuses a kit (all are counted).
const CONFLICTS_IN_ERROR: usize = 20;

/// Index the feeds among `files` (release files under `feeds/<source>/`) and audit the
/// index; a kit whose feeds conflict is refused unless `allow_feed_conflicts`.
fn index_feeds_of(
    opts: &BuildOptions,
    files: &[KitFile],
    warnings: &mut Vec<String>,
) -> Result<BuiltFeedIndex> {
    let on_disk: Vec<(&str, &Path)> = files
        .iter()
        .filter_map(|f| match &f.source {
            EntrySource::File(p) => Some((f.path.as_str(), p.as_path())),
            EntrySource::Bytes(_) => None,
        })
        .collect();
    for (rel, _) in &on_disk {
        let sidecar = [".sha256", ".sig", ".jws"].iter().any(|x| rel.ends_with(x));
        if rel.starts_with("feeds/")
            && !sidecar
            && crate::feeds::indexer::feed_source(rel).is_none()
        {
            warnings.push(format!(
                "{rel}: not indexed (feeds are feeds/<source>/<name>.json, .jsonl or .ndjson, optionally .gz or .zst)"
            ));
        }
    }
    let feeds = crate::feeds::indexer::select_feeds(on_disk);
    let mut index_opts = opts.feed_index.clone();
    if index_opts.temp_dir.is_none() {
        index_opts.temp_dir = Some(opts.output_dir.clone());
    }
    let file = tempfile::NamedTempFile::new_in(&opts.output_dir)
        .ctx(|| format!("create a temporary file in {}", opts.output_dir.display()))?;
    let out = std::io::BufWriter::with_capacity(
        1 << 20,
        file.reopen().ctx(|| "reopen the feed index".into())?,
    );
    let (report, out) = crate::feeds::index_feeds(&feeds, &index_opts, out)?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("write {}", file.path().display()))?;
    let path = file.path().to_path_buf();
    let audit = crate::feeds::audit(
        || File::open(&path).map(|f| std::io::BufReader::with_capacity(1 << 20, f)),
        crate::feeds::audit::DEFAULT_LIMIT,
    )
    .map_err(crate::feeds::FeedError::from)?;
    if audit.has_conflicts() {
        let mut text = format!(
            "the kit's feeds conflict: {} duplicate and {} divergent row groups",
            audit.duplicates, audit.divergent
        );
        for c in audit.first.iter().take(CONFLICTS_IN_ERROR) {
            text.push_str(&format!("\n  {c}"));
        }
        if audit.conflicts > CONFLICTS_IN_ERROR as u64 {
            text.push_str(&format!(
                "\n  ... and {} more",
                audit.conflicts - CONFLICTS_IN_ERROR as u64
            ));
        }
        if !opts.allow_feed_conflicts {
            // The binary adds how to build anyway (`cli/src/hint.rs`).
            return Err(KitError::FeedConflicts(text));
        }
        // A build's warnings reach only the output of the build that was given the flag
        // (never reason.json or the import API), so naming it here says why it passed.
        warnings.push(format!("{text}\n(built anyway: --allow-feed-conflicts)"));
    }
    Ok(BuiltFeedIndex {
        file,
        report,
        audit,
    })
}

/// Refuse to replace a different bundle at `path` unless forced (see [`BuildOptions::force`]).
fn refuse_replacing(path: &Path, new_sha256: &[u8; 32], opts: &BuildOptions) -> Result<()> {
    if opts.force || !path.is_file() {
        return Ok(());
    }
    let (existing, _) = crate::verify::sha256_file(path)?;
    if existing == *new_sha256 {
        return Ok(());
    }
    Err(KitError::BundleExists {
        path: path.to_path_buf(),
        existing: hex::encode(existing),
        built: hex::encode(new_sha256),
    })
}

/// A warning when a given `created_at` is already past the staleness window hosts apply
/// by default ([`crate::import::DEFAULT_MAX_AGE_DAYS`]) at `now`: such a kit is refused by
/// every host that keeps the default, and the build is the last moment anyone can notice
/// cheaply. The build time itself is never stale. The clock is read for this warning (and
/// the build-time default) only.
fn stale_at_birth(created_at: &str, from: CreatedFrom, now: i64) -> Option<String> {
    let created = crate::provenance::time::parse_rfc3339(created_at)?;
    let days = (now - created) / 86_400;
    let window = crate::import::DEFAULT_MAX_AGE_DAYS as i64;
    (days > window).then(|| {
        format!(
            "the kit's createdAt {created_at} (from {}) is {days} days old: hosts refuse kits older than {window} days by default; give a recent time (or none: the default is the build time) unless this kit is meant for hosts that accept old kits",
            from.describe()
        )
    })
}

/// [`crate::bundle::write_bundle`] (the same entries in the same order, so the same bytes)
/// with each entry's content bytes reported as progress of the current phase as they are
/// read: a file through [`CountingReader`], in-memory bytes once added.
fn write_entries_counted<W: std::io::Write>(
    out: W,
    mut entries: Vec<EntrySpec>,
    gz: GzOptions,
    progress: StepSink<'_>,
) -> Result<(BundleSummary, Vec<EntryInfo>, W)> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut writer = BundleWriter::with_options(out, gz)?;
    let mut infos = Vec::with_capacity(entries.len());
    for e in &entries {
        let info = match &e.source {
            EntrySource::File(p) => {
                let source_error = |source| crate::bundle::WriteError::Source {
                    source_path: p.clone(),
                    source,
                };
                let file = File::open(p).map_err(source_error)?;
                let size = file.metadata().map_err(source_error)?.len();
                let mut reader = CountingReader {
                    inner: file,
                    progress: &mut *progress,
                };
                writer
                    .add_reader(&e.path, e.mode, size, &mut reader)
                    .map_err(|err| match err {
                        // add_reader names the entry; the source file is what to look at.
                        crate::bundle::WriteError::Source { source, .. } => source_error(source),
                        other => other,
                    })?
            }
            EntrySource::Bytes(b) => {
                let info = writer.add_bytes(&e.path, e.mode, b)?;
                progress(Step::Advance(b.len() as u64));
                info
            }
        };
        infos.push(info);
    }
    let (summary, out) = writer.finish()?;
    Ok((summary, infos, out))
}

/// A reader that reports the bytes read through it as progress of the current phase.
struct CountingReader<'a, R> {
    inner: R,
    progress: StepSink<'a>,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(Step::Advance(n as u64));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{CreatedFrom, stale_at_birth};

    const DAY: i64 = 86_400;
    /// 2025-10-23T00:00:00Z.
    const T: i64 = 1_761_177_600;

    #[test]
    fn a_given_time_past_the_window_is_warned_about_by_its_source() {
        let window = crate::import::DEFAULT_MAX_AGE_DAYS as i64;
        let created = "2025-10-23T00:00:00Z";
        let old = stale_at_birth(
            created,
            CreatedFrom::SourceDateEpoch,
            T + (window + 1) * DAY,
        )
        .expect("past the window");
        assert!(
            old.contains("SOURCE_DATE_EPOCH") && old.contains("days old"),
            "{old}"
        );
        assert_eq!(
            stale_at_birth(created, CreatedFrom::Flag, T + window * DAY),
            None
        );
        assert_eq!(stale_at_birth(created, CreatedFrom::BuildTime, T), None);
    }
}
