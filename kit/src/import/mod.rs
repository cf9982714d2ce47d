//! The import pipeline: one fixed order, each step able to refuse with its own error (and
//! so exit code); nothing under `current` changes until the last step.
//!
//! 1. **lock** the root (exit 13 when another importer holds it, or wait), and check free
//!    space against what the import writes plus a margin (exit 12);
//! 2. **verify**: read the input once into a private copy under `staging/`, hashing it on
//!    the way ([`crate::read_once`]; every later step reads the copy, never the user's
//!    path); check that digest against the recorded one (exit 2) and the signature over
//!    it against the trust store (exit 5) before anything is unpacked; load the manifest
//!    (sidecar, checked against its JWS, or the bundle's own copy, covered by the bundle
//!    signature); tell a kit from a delta by the copy's first entry;
//! 3. **unpack** into `staging/`, refusing unsafe entries (exit 11) and a secret whose mode
//!    is broader than 0600 (exit 11, naming file and mode), and stopping any entry at
//!    its declared size; every file is streamed once: written to staging and fed to the
//!    store writer (chunk, hash, compress) at the same time, but nothing is committed;
//! 4. **check** every file against the manifest (digest 2, missing/extra 11) and the
//!    manifest's generation id against the unpacked tree (11);
//! 5. **policy**: version newer than the active one (exit 8 unless forced with a reason),
//!    layout rules (11);
//! 6. **ingest**: commit the store writer (packs fsynced before the index), record the
//!    generation, write the feed rows it changes (`ROOT/changes/<gen-id>.jsonl`, the
//!    supersedes history; [`crate::feeds::host`]), materialize it from staging (files are
//!    moved, not copied; unchanged files hard-linked), fsync;
//! 7. **activate**: flip `current`, log the activation and the import.
//!
//! A refusal is recorded in `quarantine/<time>-<name>/` with a `reason.json` {step, code,
//! message, ...} and, when it got past its signature check and fits the cap, the input (see
//! [`quarantine`]); staging is emptied; `current` is untouched.
//! Importing what is already current is a no-op that writes nothing. A crash anywhere
//! leaves staging and uncommitted pack tails, which the next open of the root removes.

// Refusals are the cold path and carry the whole story (step, error, quarantine path);
// their size does not matter next to an import's I/O.
#![allow(clippy::result_large_err)]

pub mod policy;
pub mod quarantine;
pub mod trust;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_root::{ActivateOutcome, FileSource, Labels, LockWait, Root};
use ouk_store::{FileDigest, StoreError, StoreOptions};
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleReader, EntryKind, ReadError, ReadLimits};
use crate::error::{IoContext, KitError, Result};
use crate::layout::{self, FileEntry, LayoutOptions};
use crate::manifest::{MANIFEST_PATH, OfflineManifest};
use crate::sign::VerifyingKey;
use crate::split::BundleInput;
use crate::verify::{self, Sidecars};

const IMPORTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("kit_imports");

/// Default staleness window, days.
pub const DEFAULT_MAX_AGE_DAYS: u64 = 7;

/// Default free-space margin on top of what an import writes (the seed: "Free >= 2 GiB").
pub const DEFAULT_FREE_MARGIN: u64 = 2 << 30;

/// A forced activation's justification.
#[derive(Debug, Clone)]
pub struct Force {
    /// Why (recorded in the activation log).
    pub reason: String,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// Sidecars named on the command line (others are discovered).
    pub sidecars: Sidecars,
    /// Keys given with `--trust-key` (in addition to the trust store).
    pub extra_keys: Vec<VerifyingKey>,
    /// Accept a bundle without a valid signature.
    pub allow_unsigned: bool,
    /// Run steps 1-5 and report.
    pub dry_run: bool,
    /// Override the version policy.
    pub force: Option<Force>,
    /// Wait for the lock instead of failing.
    pub wait: bool,
    /// Free space required beyond what the import writes.
    pub free_margin: u64,
    /// Refuse kits created more than this many days ago (0: no limit). Guards against a
    /// freeze: an attacker replaying old, validly signed kits to hold a host back.
    pub max_age_days: u64,
    /// Refuse kits dated more than this many seconds ahead of this host's clock
    /// ([`policy::DEFAULT_MAX_CLOCK_SKEW_SECS`]): a kit dated far ahead never goes stale.
    pub max_clock_skew_secs: u64,
    /// How much the quarantine may hold (oldest entries dropped first).
    pub quarantine: quarantine::Limits,
}

/// Files added, changed and removed relative to the active generation.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TreeDiff {
    /// New paths.
    pub added: Vec<String>,
    /// Paths whose content or mode changed.
    pub changed: Vec<String>,
    /// Paths no longer present.
    pub removed: Vec<String>,
    /// Bytes of added and changed files.
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// `activated`, `already-active`, or `dry-run`.
    pub outcome: String,
    /// The kit's generation.
    pub generation: GenerationId,
    /// What was active before.
    pub previous: Option<GenerationId>,
    /// Kit version.
    pub version: String,
    /// Kit channel.
    pub channel: String,
    /// Bundle SHA-256.
    pub bundle_sha256: String,
    /// Key that verified the bundle, when checked.
    pub signed_by: Option<String>,
    /// Files in the generation.
    pub files: u64,
    /// Bytes in the generation.
    pub bytes: u64,
    /// Change relative to the previous generation.
    pub diff: TreeDiff,
    /// New chunks stored.
    pub new_chunks: u64,
    /// Bytes appended to packs.
    pub new_stored_bytes: u64,
    /// Forced activation reason, if forced.
    pub forced: Option<String>,
    /// Feed rows changed and where they were written (`ROOT/changes/<gen-id>.jsonl`), for
    /// a generation with a feed index that this import activated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feeds: Option<crate::feeds::host::RecordedChanges>,
    /// Trust document versions the kit's chain applied before its signature was checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_applied: Vec<u64>,
    /// This import migrated the root's flat key list to a (local) trust document.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trust_migrated: bool,
}

/// A refused import: which step refused, and why.
#[derive(Debug)]
pub struct ImportFailure {
    /// Step name (`lock`, `disk`, `verify`, `unpack`, `check`, `policy`, `ingest`, `activate`).
    pub step: &'static str,
    /// The error.
    pub error: KitError,
    /// Where the bundle was quarantined, if it was.
    pub quarantined: Option<PathBuf>,
}

/// One recorded import.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportRecord {
    generation: GenerationId,
    version: String,
    at: i64,
}

pub(crate) struct Tee<'a, R> {
    pub(crate) inner: R,
    pub(crate) out: &'a mut BufWriter<File>,
    pub(crate) write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let kind = e.kind();
            self.write_error = Some(e);
            return Err(io::Error::new(kind, "writing to staging failed"));
        }
        Ok(n)
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| KitError::Usage(format!("{}: path contains NUL", dir.display())))?;
    // SAFETY: statvfs writes into the struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(KitError::Io {
            context: format!("statvfs {}", dir.display()),
            source: io::Error::last_os_error(),
        });
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

fn gib(n: u64) -> f64 {
    n as f64 / (1u64 << 30) as f64
}

/// The keys an import trusts: the trust store plus `--trust-key`s.
pub fn trusted_keys(root: &Path, extra: &[VerifyingKey]) -> Result<Vec<VerifyingKey>> {
    // A signed trust document replaces the flat list (crate::trust_root).
    let mut keys: Vec<VerifyingKey> = match crate::trust_root::load(root)? {
        Some(t) if !t.is_local() => t.role_keys(ouk_trust::Role::Kits)?,
        _ => trust::list(root)?.into_iter().map(|(_, k)| k).collect(),
    };
    keys.extend(extra.iter().cloned());
    Ok(keys)
}

/// Diff two file lists (path -> (sha256, mode, size)).
pub fn diff(old: Option<&ChunkSetManifest>, new: &ChunkSetManifest) -> TreeDiff {
    let mut d = TreeDiff::default();
    let before: HashMap<&str, (&FileDigest, u32)> = old
        .map(|m| {
            m.entries()
                .iter()
                .map(|e| (e.path.as_str(), (&e.sha256, e.mode)))
                .collect()
        })
        .unwrap_or_default();
    for e in new.entries() {
        match before.get(e.path.as_str()) {
            None => {
                d.added.push(e.path.clone());
                d.bytes += e.size;
            }
            Some((sha, mode)) if **sha != e.sha256 || *mode != e.mode => {
                d.changed.push(e.path.clone());
                d.bytes += e.size;
            }
            Some(_) => {}
        }
    }
    if let Some(m) = old {
        d.removed = m
            .entries()
            .iter()
            .filter(|e| new.get(&e.path).is_none())
            .map(|e| e.path.clone())
            .collect();
    }
    d
}

/// Run the pipeline against the root at `root_dir`.
pub fn import(
    root_dir: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportFailure> {
    let fail = |step: &'static str| {
        move |error: KitError| ImportFailure {
            step,
            error,
            quarantined: None,
        }
    };
    if !opts.bundle.is_file() {
        return Err(fail("verify")(KitError::NotFound(opts.bundle.clone())));
    }
    let wait = if opts.wait {
        LockWait::Wait
    } else {
        LockWait::Fail
    };
    tracing::info!(bundle = %opts.bundle.display(), root = %root_dir.display(), "import");
    let root =
        Root::open(root_dir, wait, StoreOptions::default()).map_err(|e| fail("lock")(e.into()))?;
    tracing::debug!("root locked");
    let result = run(&root, opts, progress);
    match &result {
        Ok(r) => {
            tracing::info!(outcome = %r.outcome, generation = %r.generation, version = %r.version, "import done")
        }
        Err((step, e)) => tracing::warn!(step, error = %e, "import refused"),
    }
    let _ = root.clean_staging();
    result.map_err(|(step, error)| {
        let quarantined = match &error {
            KitError::NotFound(_) => None,
            e => quarantine::quarantine(&root, &opts.bundle, step, e, &opts.quarantine),
        };
        ImportFailure {
            step,
            error,
            quarantined,
        }
    })
}

pub(crate) type StepResult<T> = std::result::Result<T, (&'static str, KitError)>;

pub(crate) fn step<T>(name: &'static str, r: Result<T>) -> StepResult<T> {
    if let Err(e) = &r {
        tracing::debug!(step = name, error = %e, "import step refused");
    }
    r.map_err(|e| (name, e))
}

/// What steps 1-2 established about a bundle.
pub(crate) struct Verified {
    /// The bundle: a file, or a split kit's parts (every later pass reads through it).
    pub input: BundleInput,
    pub bundle_sha: [u8; 32],
    pub signed_by: Option<String>,
    pub keys: Vec<VerifyingKey>,
    pub sidecars: Sidecars,
    /// Trust versions the kit's chain applied.
    pub trust_applied: Vec<u64>,
    /// A flat key list was migrated to a trust document.
    pub trust_migrated: bool,
}

fn verify_step(root: &Root, opts: &ImportOptions) -> StepResult<Verified> {
    // A part or index of a split kit names the parts (checked against the index as they
    // are read); the sidecars are found where the whole bundle would be.
    // Read once: the input is copied into the root's private staging directory as it is
    // hashed, and every later pass (manifest, kind, unpack) reads that copy, so the bytes
    // the signature is checked against are the bytes that are used.
    let input = step(
        "verify",
        BundleInput::open(&opts.bundle).and_then(|i| i.read_once(&root.staging_dir())),
    )?;
    let sidecars = Sidecars::discover(&input.path(), opts.sidecars.clone());
    let (bundle_sha, size, digest_checked) =
        step("verify", verify::check_input_digest(&input, &sidecars))?;
    tracing::info!(step = "verify", sha256 = %hex::encode(bundle_sha), size, digest_sidecar = digest_checked, "read once into staging");
    tracing::debug!(step = "verify", ?sidecars, "sidecars");
    // Trust first: a chain the kit carries is applied (and an expired document refused)
    // before its signature is checked against the result (crate::trust_root::sigset).
    let trust = step(
        "verify",
        crate::trust_root::sigset::prepare_import(
            root.dir(),
            &input.path(),
            ouk_root::now_unix(),
            !opts.dry_run,
        ),
    )?;
    let keys = step("verify", import_keys(root.dir(), &trust, &opts.extra_keys))?;
    let signed_by = if let Some(doc) = &trust.document {
        let sig = sidecars.signature.as_deref();
        let authorized = crate::trust_root::sigset::authorize_bundle(
            doc,
            &input.path(),
            &bundle_sha,
            sig,
            &opts.extra_keys,
        );
        match authorized {
            Ok(kids) => Some(kids),
            Err(_) if opts.allow_unsigned => {
                step(
                    "verify",
                    crate::trust_root::sigset::check_not_revoked(doc, &bundle_sha),
                )?;
                None
            }
            Err(e) => return Err(("verify", e)),
        }
    } else if opts.allow_unsigned && keys.is_empty() {
        None
    } else if keys.is_empty() {
        return Err((
            "verify",
            KitError::Signature {
                what: "bundle".into(),
                message: "no trusted keys: add one with `ouk trust add PUB` or give --trust-key (or --allow-unsigned)".into(),
            },
        ));
    } else {
        match verify::check_signature(&bundle_sha, &sidecars, &keys) {
            Ok(kid) => kid,
            Err(_) if opts.allow_unsigned => None,
            Err(e) => return Err(("verify", e)),
        }
    };
    tracing::info!(
        step = "verify",
        signed_by = signed_by.as_deref().unwrap_or("-"),
        trusted_keys = keys.len(),
        "signature checked"
    );
    Ok(Verified {
        input,
        bundle_sha,
        signed_by,
        keys,
        sidecars,
        trust_applied: trust.applied,
        trust_migrated: trust.migrated,
    })
}

/// The keys an import checks the manifest JWS with: the active document's `kits` keys (the
/// flat list when there is none) plus `--trust-key`s.
fn import_keys(
    root: &Path,
    trust: &crate::trust_root::sigset::ImportTrust,
    extra: &[VerifyingKey],
) -> Result<Vec<VerifyingKey>> {
    match &trust.document {
        Some(doc) => {
            let mut keys = crate::trust_root::role_keys(doc, ouk_trust::Role::Kits)?;
            keys.extend(
                extra
                    .iter()
                    .filter(|k| !doc.is_key_revoked(&k.kid()))
                    .cloned(),
            );
            Ok(keys)
        }
        None => trusted_keys(root, extra),
    }
}

/// Free space an import of `bytes` of new content needs: 1.5 x (unpacked files and the
/// store's packs of them) plus the kept `margin`.
pub fn space_needed(bytes: u64, margin: u64) -> u64 {
    bytes.saturating_add(bytes / 2).saturating_add(margin)
}

/// Step 1b: free space for `bytes` of new content plus the margin.
pub(crate) fn check_disk(root: &Root, bytes: u64, margin: u64) -> StepResult<()> {
    let needed = space_needed(bytes, margin);
    let free = step("disk", free_bytes(root.dir()))?;
    if free < needed {
        return Err((
            "disk",
            KitError::NoSpace {
                path: root.dir().to_path_buf(),
                needed_gib: gib(needed),
                free_gib: gib(free),
            },
        ));
    }
    Ok(())
}

/// Step 5a: the version must be newer than the active one unless forced.
pub(crate) fn check_version(
    root: &Root,
    previous: Option<GenerationId>,
    version: &str,
    force: bool,
) -> StepResult<()> {
    let active_version = match previous {
        Some(p) => step("policy", root.generation_record(&p).map_err(KitError::from))?
            .and_then(|r| r.labels.get("version").cloned()),
        None => None,
    };
    if let Some(active) = &active_version
        && policy::compare_versions(version, active) != std::cmp::Ordering::Greater
        && !force
    {
        return Err((
            "policy",
            KitError::NotNewer {
                kit: version.to_string(),
                active: active.clone(),
            },
        ));
    }
    Ok(())
}

/// Whole days since `created_at` (RFC 3339), or `None` when it does not parse. Never
/// negative: a kit dated ahead of this host's clock (within the skew, or forced) is 0
/// days old.
pub fn age_days(created_at: &str) -> Option<i64> {
    crate::provenance::time::parse_rfc3339(created_at)
        .map(|t| ouk_root::now_unix().saturating_sub(t).max(0) / 86_400)
}

/// Step 5c: a kit older than the staleness window, or dated further ahead of this host's
/// clock than the skew allows, is refused unless forced ([`policy::freshness`]).
fn check_fresh(created_at: &str, opts: &ImportOptions) -> StepResult<()> {
    if opts.force.is_some() {
        return Ok(());
    }
    let now = ouk_root::now_unix();
    let created = crate::provenance::time::parse_rfc3339(created_at);
    match policy::freshness(created, now, opts.max_age_days, opts.max_clock_skew_secs) {
        policy::Freshness::Fresh => Ok(()),
        policy::Freshness::Stale => Err((
            "policy",
            KitError::Stale {
                created_at: created_at.to_string(),
                max_days: opts.max_age_days,
            },
        )),
        policy::Freshness::Future => Err((
            "policy",
            KitError::FutureDated {
                created_at: created_at.to_string(),
                now: crate::provenance::time::format_utc(now).unwrap_or_else(|| now.to_string()),
                max_skew_secs: opts.max_clock_skew_secs,
            },
        )),
    }
}

/// A verified, unpacked (or rebuilt) target waiting for policy and activation.
pub(crate) struct Staged<'s> {
    pub writer: ouk_store::StoreWriter<'s>,
    pub chunk_set: ChunkSetManifest,
    pub layout_entries: Vec<FileEntry>,
    pub manifest: OfflineManifest,
    pub manifest_bytes: Vec<u8>,
    pub staging: PathBuf,
    pub kind: &'static str,
}

/// The report skeleton for a target described by `manifest`.
pub(crate) fn base_report(
    opts: &ImportOptions,
    v: &Verified,
    manifest: &OfflineManifest,
    generation: GenerationId,
    previous: Option<GenerationId>,
) -> ImportReport {
    ImportReport {
        outcome: String::new(),
        generation,
        previous,
        version: manifest.version.clone(),
        channel: manifest.channel.clone(),
        bundle_sha256: hex::encode(v.bundle_sha),
        signed_by: v.signed_by.clone(),
        files: manifest.artifacts.len() as u64,
        bytes: manifest.total_bytes(),
        diff: TreeDiff::default(),
        new_chunks: 0,
        new_stored_bytes: 0,
        forced: opts.force.as_ref().map(|f| f.reason.clone()),
        feeds: None,
        trust_applied: v.trust_applied.clone(),
        trust_migrated: v.trust_migrated,
    }
}

/// Steps 4 (generation id), 5 (layout), 6 and 7, shared by kits and deltas.
pub(crate) fn finish(
    root: &Root,
    opts: &ImportOptions,
    v: &Verified,
    mut staged: Staged<'_>,
    base: ImportReport,
) -> StepResult<ImportReport> {
    let target_id = base.generation;
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
            .map_err(KitError::from),
    )?;
    let old_manifest = base.previous.and_then(|p| root.manifest(&p).ok());
    let tree_diff = diff(old_manifest.as_ref(), &staged.chunk_set);
    if opts.dry_run {
        return Ok(ImportReport {
            outcome: "dry-run".into(),
            diff: tree_diff,
            ..base
        });
    }
    // 6. Keep the manifest itself in the store (a later delta patches against it), commit
    // the store, record and materialize the generation.
    let put = step(
        "ingest",
        staged
            .writer
            .put_reader(&staged.manifest_bytes[..], &mut |_| {})
            .map_err(KitError::from),
    )?;
    let totals = step("ingest", staged.writer.commit().map_err(KitError::from))?;
    let mut labels = Labels::new();
    labels.insert("version".into(), staged.manifest.version.clone());
    labels.insert("channel".into(), staged.manifest.channel.clone());
    labels.insert("createdAt".into(), staged.manifest.created_at.clone());
    labels.insert("bundleSha256".into(), hex::encode(v.bundle_sha));
    labels.insert("manifestSha256".into(), put.digest.to_hex());
    labels.insert("kind".into(), staged.kind.into());
    step(
        "ingest",
        root.record_generation(&staged.chunk_set, labels)
            .map_err(KitError::from),
    )?;
    // 6b. The feed rows this generation changes (changes file + history): before the tree
    // is published, so running out of space here leaves no extra generation behind.
    let feeds = step(
        "ingest",
        crate::feeds::host::record_import(
            root,
            &target_id,
            Some(&staged.staging),
            base.previous,
            &staged.manifest.version,
        )
        .map_err(KitError::from),
    )?;
    // Refused before the flip: what 6b wrote goes.
    let undo_feeds = || {
        if let Some(f) = &feeds
            && root.current().ok().flatten() != Some(target_id)
        {
            let _ = crate::feeds::host::undo_import(root, &target_id, f);
        }
    };
    if let Err(e) = root.materialize(&target_id, FileSource::Staged(&staged.staging)) {
        undo_feeds();
        return Err(("ingest", e.into()));
    }

    // 7. Activate.
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
            // (After the flip, the changes are the active generation's and stay.)
            undo_feeds();
            return Err(("activate", e.into()));
        }
    };
    step(
        "activate",
        record_import(root, &v.bundle_sha, &target_id, &staged.manifest.version),
    )?;
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

fn run(
    root: &Root,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> StepResult<ImportReport> {
    let v = verify_step(root, opts)?;
    if step("verify", crate::delta::verified_kind_is_delta(&v.input))? {
        tracing::info!(step = "verify", "the input is a delta");
        return crate::delta::import_delta(root, opts, &v, progress);
    }
    let (manifest, manifest_bytes) = match &v.sidecars.manifest {
        Some(path) => {
            let keys_for_jws: &[VerifyingKey] = if v.signed_by.is_some() { &v.keys } else { &[] };
            let (m, bytes, _) = step(
                "verify",
                verify::load_manifest(path, v.sidecars.manifest_signature.as_deref(), keys_for_jws),
            )?;
            (m, bytes)
        }
        None => step("verify", verify::manifest_from_input(&v.input))?,
    };
    let target_id: GenerationId = manifest.generation_id.parse().map_err(|_| {
        (
            "verify",
            KitError::InvalidManifest("generationId does not parse".into()),
        )
    })?;
    let previous = step("verify", root.current().map_err(KitError::from))?;
    tracing::info!(step = "verify", version = %manifest.version, channel = %manifest.channel, files = manifest.artifacts.len(), bytes = manifest.total_bytes(), generation = %target_id, "manifest read");
    let base = base_report(opts, &v, &manifest, target_id, previous);
    // Idempotency: the kit's generation is already current -> nothing to do, nothing written.
    // But only for a bundle that is the kit its manifest describes: a manifest sidecar
    // found beside some other bundle must not make that bundle "already active". The
    // check reads the private copy once and writes nothing.
    if previous == Some(target_id) && root.generation_dir(&target_id).is_dir() {
        step(
            "check",
            verify::check_input_content(&v.input, &manifest, &manifest_bytes),
        )?;
        return Ok(ImportReport {
            outcome: "already-active".into(),
            ..base
        });
    }
    check_disk(root, manifest.total_bytes(), opts.free_margin)?;
    tracing::debug!(step = "disk", "free space checked");
    // Version policy needs only the manifest: refuse before the long unpack.
    check_version(root, previous, &manifest.version, opts.force.is_some())?;
    tracing::info!(step = "policy", previous = ?previous, "version is newer (or forced)");

    // 3 + 4. Unpack, verify, and stage into the store (uncommitted).
    let staging = root
        .staging_dir()
        .join(format!("import-{}", std::process::id()));
    step(
        "unpack",
        fs::create_dir_all(&staging).ctx(|| format!("create {}", staging.display())),
    )?;
    let mut writer = step("unpack", root.store().writer().map_err(KitError::from))?;
    let (entries, layout_entries) = unpack_and_stage(
        &v.input,
        &manifest,
        &manifest_bytes,
        &staging,
        &mut writer,
        progress,
    )?;
    let chunk_set = step(
        "check",
        ChunkSetManifest::new(entries).map_err(KitError::from),
    )?;
    tracing::info!(
        step = "unpack",
        files = chunk_set.entries().len(),
        "unpacked, checked against the manifest and staged"
    );
    let staged = Staged {
        writer,
        chunk_set,
        layout_entries,
        manifest,
        manifest_bytes,
        staging,
        kind: "kit",
    };
    finish(root, opts, &v, staged, base)
}

fn record_import(
    root: &Root,
    bundle_sha: &[u8; 32],
    generation: &GenerationId,
    version: &str,
) -> Result<()> {
    let db = root.store().database();
    let txn = db
        .begin_write()
        .map_err(|e| KitError::Store(StoreError::from_index(e)))?;
    {
        let mut t = txn
            .open_table(IMPORTS)
            .map_err(|e| KitError::Store(StoreError::from_index(e)))?;
        let rec = ImportRecord {
            generation: *generation,
            version: version.to_string(),
            at: ouk_root::now_unix(),
        };
        t.insert(
            bundle_sha,
            ouk_store::envelope::seal(*b"OKIM", 1, &rec).as_slice(),
        )
        .map_err(|e| KitError::Store(StoreError::from_index(e)))?;
    }
    txn.commit()
        .map_err(|e| KitError::Store(StoreError::from_index(e)))?;
    Ok(())
}

/// How many imports are recorded (for status).
pub fn imports_recorded(root: &Root) -> usize {
    let Ok(txn) = root.store().database().begin_read() else {
        return 0;
    };
    txn.open_table(IMPORTS)
        .ok()
        .and_then(|t| redb::ReadableTableMetadata::len(&t).ok())
        .unwrap_or(0) as usize
}

#[allow(clippy::type_complexity)]
fn unpack_and_stage(
    bundle: &BundleInput,
    manifest: &OfflineManifest,
    manifest_bytes: &[u8],
    staging: &Path,
    writer: &mut ouk_store::StoreWriter<'_>,
    progress: &mut dyn FnMut(u64),
) -> StepResult<(Vec<ManifestEntry>, Vec<FileEntry>)> {
    let declared: BTreeMap<&str, (u64, &str)> = manifest
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), (a.size, a.sha256.as_str())))
        .collect();
    let manifest_len = manifest_bytes.len() as u64;
    let lookup = |p: &str| {
        if p == MANIFEST_PATH {
            Some(manifest_len)
        } else {
            declared.get(p).map(|d| d.0)
        }
    };
    let file = step("unpack", bundle.reader())?;
    let limits = ReadLimits::for_declared(
        manifest.artifacts.len() as u64 + 1,
        manifest.total_bytes() + manifest_len,
    );
    let mut reader = BundleReader::new(file, lookup, limits);
    let mut entries = Vec::with_capacity(manifest.artifacts.len());
    let mut layout_entries = Vec::with_capacity(manifest.artifacts.len());
    let mut saw_manifest = false;
    loop {
        let next = reader
            .next_entry()
            .map_err(|e| ("unpack", KitError::Read(e)))?;
        let Some(mut entry) = next else { break };
        if entry.kind == EntryKind::Directory {
            continue;
        }
        let path = entry.path.clone();
        let mode = entry.mode;
        // A secret whose mode is broader than 0600 is refused before a byte of it is
        // written, naming the file and the mode (the layout rule of step 5 would refuse it
        // too, but only after the generation-id check, whose message names neither).
        if layout::secrets::is_secret(&path) && mode & 0o7777 != layout::SECRET_MODE {
            return Err((
                "unpack",
                KitError::Layout(layout::LayoutError::Violations(vec![
                    layout::Violation::SecretMode {
                        path,
                        mode: mode & 0o7777,
                    },
                ])),
            ));
        }
        if path == MANIFEST_PATH {
            let mut inner = Vec::new();
            entry.read_to_end(&mut inner).map_err(|e| {
                (
                    "unpack",
                    KitError::Read(ReadError::from_io(e, 0, Some(&path))),
                )
            })?;
            if inner != manifest_bytes {
                return Err((
                    "check",
                    KitError::Validation(format!(
                        "the bundle's {MANIFEST_PATH} differs from the manifest it was verified with"
                    )),
                ));
            }
            saw_manifest = true;
            continue;
        }
        let dest = staging.join(&path);
        if let Some(parent) = dest.parent() {
            step(
                "unpack",
                fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display())),
            )?;
        }
        let f = step(
            "unpack",
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .ctx(|| format!("create {}", dest.display())),
        )?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let mut tee = Tee {
            inner: &mut entry,
            out: &mut out,
            write_error: None,
        };
        let put = writer.put_reader(&mut tee, progress);
        let write_error = tee.write_error.take();
        let put = match (put, write_error) {
            (Ok(p), None) => p,
            (_, Some(e)) => {
                return Err((
                    "unpack",
                    KitError::Io {
                        context: format!("write {}", dest.display()),
                        source: e,
                    },
                ));
            }
            (Err(StoreError::Io { source, .. }), None)
                if source.get_ref().is_some_and(|e| e.is::<ReadError>()) =>
            {
                return Err((
                    "unpack",
                    KitError::Read(ReadError::from_io(source, 0, Some(&path))),
                ));
            }
            (Err(e), None) => return Err(("unpack", e.into())),
        };
        step(
            "unpack",
            out.flush().ctx(|| format!("write {}", dest.display())),
        )?;
        drop(out);
        let (want_size, want_sha) = declared.get(path.as_str()).copied().unwrap_or((0, ""));
        if put.size != want_size || put.digest.to_hex() != want_sha {
            return Err((
                "check",
                KitError::DigestMismatch {
                    what: verify::could_not_verify_file(&path),
                    expected: want_sha.to_string(),
                    actual: put.digest.to_hex(),
                },
            ));
        }
        step(
            "unpack",
            fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .ctx(|| format!("chmod {}", dest.display())),
        )?;
        layout_entries.push(FileEntry {
            path: path.clone(),
            mode,
            size: put.size,
            sha256: put.digest.0,
        });
        entries.push(ManifestEntry {
            path,
            mode,
            size: put.size,
            sha256: put.digest,
            chunks: put.chunks,
        });
    }
    if !saw_manifest {
        return Err((
            "check",
            KitError::Validation(format!("the bundle has no {MANIFEST_PATH}")),
        ));
    }
    if entries.len() != manifest.artifacts.len() {
        let have: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.path.as_str()).collect();
        let missing: Vec<&str> = manifest
            .artifacts
            .iter()
            .map(|a| a.name.as_str())
            .filter(|n| !have.contains(n))
            .take(5)
            .collect();
        return Err((
            "check",
            KitError::Validation(format!(
                "the bundle lacks files the manifest lists: {}",
                missing.join(", ")
            )),
        ));
    }
    Ok((entries, layout_entries))
}
