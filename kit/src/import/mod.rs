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
mod publish;
pub mod quarantine;
mod stage_delta;
mod stage_kit;
pub mod trust;
mod verify_input;

#[cfg(test)]
mod tests;

pub use policy::{age_days, free_bytes, space_needed};
pub(crate) use policy::{check_disk, check_version};
pub(crate) use publish::{Staged, StagedTree};
pub(crate) use verify_input::Verified;
pub use verify_input::trusted_keys;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ouk_delta::{ChunkSetManifest, GenerationId};
use ouk_root::{LockWait, Root};
use ouk_store::progress::StepSink;
use ouk_store::{FileDigest, StoreError, StoreOptions};
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{KitError, Result};
use crate::manifest::OfflineManifest;
use crate::sign::VerifyingKey;
use crate::verify::Sidecars;

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

/// A reader that writes what it reads to `out` (the staging copy); a write error is kept
/// in `write_error` and ends the read.
pub(crate) struct Tee<'a, R, W> {
    pub(crate) inner: R,
    pub(crate) out: &'a mut W,
    pub(crate) write_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
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
///
/// `progress` hears the phases `verify` (bytes read into the private copy: the input's
/// size), `unpack` (bytes of the target's files written to staging), `store` (bytes of the
/// generation published) and `activate`, in that order; a refused or already-current
/// import stops after the phase it got to.
pub fn import(
    root_dir: &Path,
    opts: &ImportOptions,
    progress: StepSink<'_>,
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

/// What a staging step hands on: the target waiting in staging for steps 4-7, or the
/// finding that it is already the current generation (then nothing was written).
// One value per import, moved once from the stage to `run`: boxing the staged tree would
// buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Staging<'r> {
    /// The target is current already; the report says so.
    AlreadyCurrent(ImportReport),
    /// The target is staged; `report` is its report skeleton ([`base_report`]).
    Staged {
        staged: Staged<'r>,
        report: ImportReport,
    },
}

/// What a staging step works with besides the verified input.
pub(crate) struct StageContext<'r, 'p> {
    pub root: &'r Root,
    pub opts: &'r ImportOptions,
    /// Where the `unpack` phase is reported.
    pub progress: StepSink<'p>,
}

/// Step 3 for one input kind (kit or delta): turn a verified input into a staged tree and
/// uncommitted store writes, checked against the manifest the input carries, after the
/// disk and version gates. A staging step never touches `current`; everything before it
/// (lock, read once, digest, signature) and after it (publish, flip, quarantine) is the
/// pipeline's, the same for every kind.
pub(crate) trait Stage {
    fn stage<'r>(
        &self,
        verified: &Verified,
        ctx: &mut StageContext<'r, '_>,
    ) -> StepResult<Staging<'r>>;
}

fn run(root: &Root, opts: &ImportOptions, progress: StepSink<'_>) -> StepResult<ImportReport> {
    let verified = verify_input::verify_step(root, opts, progress)?;
    let kind: &dyn Stage = if step(
        "verify",
        crate::delta::verified_kind_is_delta(&verified.input),
    )? {
        tracing::info!(step = "verify", "the input is a delta");
        &stage_delta::DeltaStage
    } else {
        &stage_kit::KitStage
    };
    let mut ctx = StageContext {
        root,
        opts,
        progress,
    };
    match kind.stage(&verified, &mut ctx)? {
        Staging::AlreadyCurrent(report) => Ok(report),
        Staging::Staged { staged, report } => {
            publish::publish(root, opts, &verified, staged, report, ctx.progress)
        }
    }
}
