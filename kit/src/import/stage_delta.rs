//! The import pipeline's staging step for a delta: unpack the verified copy's header and
//! payload (the payload bounded by the size the header declares), rebuild against the
//! baseline generation the host keeps (every piece decoded against verified store bytes,
//! every file hashed as it is written), and check the rebuilt target against the manifest
//! the delta carries.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use ouk_delta::apply::{
    CopiedSoFar, ProducedDigest, RebuiltSink, apply_delta, create_rebuilt, create_rebuilt_presized,
    finish_rebuilt, set_rebuilt_mode,
};
use ouk_delta::baseline_cuts::BaselineCuts;
use ouk_delta::content::{CheckedDirContent, StoreContent, TreeFile};
use ouk_delta::format::DeltaHeader;
use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_root::Root;
use ouk_store::progress::{Step, StepSink, Unit};
use ouk_store::{FileDigest, FileHashing};

use super::{
    ImportOptions, Stage, StageContext, Staged, StagedTree, Staging, StepResult, Verified,
    base_report, check_disk, check_version, step,
};
use crate::bundle::{ReadLimits, unpack_to_dir};
use crate::delta::derive::DerivedIndex;
use crate::delta::{
    FEED_CHANGES_PATH, HEADER_PATH, JWS_PATH, MAX_FEED_CHANGES, MAX_HEADER, MAX_PAYLOAD,
    PAYLOAD_PATH, parse_header,
};
use crate::error::{IoContext, KitError, Result};
use crate::layout::FileEntry;
use crate::manifest::{MANIFEST_PATH, MAX_MANIFEST_BYTES, OfflineManifest};
use crate::split::BundleInput;

/// Files of at most this size are rehydrated into staging so the layout rules can read them.
const SMALL_FILE: u64 = 1 << 20;

/// Most feed row changes computed ahead and kept in memory (~260 bytes each: ~17 MiB,
/// inside the apply's memory bound); a delta that changes more rows has them diffed and
/// streamed by step 6b instead.
const MAX_CHANGES_AHEAD: usize = 1 << 16;

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

/// The delta's staging step (steps 3-5a; 1, 2, 6 and 7 are the pipeline's).
pub(super) struct DeltaStage;

/// Where a delta's staging step works, inside the root's private `staging/`.
struct DeltaDirs {
    /// The delta bundle's own entries (header, payload, JWS).
    parts: PathBuf,
    /// The target tree being rebuilt.
    tree: PathBuf,
    /// Plain forms of compressed baseline files and re-created compressed files (the
    /// decoded tier) spill here.
    scratch: PathBuf,
}

impl DeltaDirs {
    fn create(root: &Root) -> StepResult<DeltaDirs> {
        let staging = root
            .staging_dir()
            .join(format!("delta-{}", std::process::id()));
        let dirs = DeltaDirs {
            parts: staging.join("parts"),
            tree: staging.join("tree"),
            scratch: staging.join("plain"),
        };
        step(
            "unpack",
            fs::create_dir_all(&dirs.parts)
                .and_then(|_| fs::create_dir_all(&dirs.tree))
                .and_then(|_| fs::create_dir_all(&dirs.scratch))
                .ctx(|| format!("create {}", staging.display()))
                .map_err(Into::into),
        )?;
        Ok(dirs)
    }
}

/// The target files a delta rebuilt: their digests and the chunks the store writer
/// recorded for them (still uncommitted).
struct Rebuilt {
    digests: HashMap<String, FileDigest>,
    chunks: HashMap<String, Vec<ouk_store::ChunkId>>,
    /// The feed rows the target changes against the active generation, computed while
    /// the derived feed index was stored (`None`: step 6b diffs them).
    feed_changes: Option<crate::feeds::host::ComputedChanges>,
}

impl Stage for DeltaStage {
    fn stage<'r>(&self, v: &Verified, ctx: &mut StageContext<'r, '_>) -> StepResult<Staging<'r>> {
        let (root, opts) = (ctx.root, ctx.opts);
        let dirs = DeltaDirs::create(root)?;
        let parts = step("unpack", unpack_delta(&v.input, &dirs.parts))?;
        let header = &parts.header;
        let target_id = header.target.generation;
        let previous = step("verify", root.current().map_err(KitError::from))?;
        let target_version = header.target.version.clone().unwrap_or_default();
        // Idempotent: applying a delta whose target is current changes nothing.
        if previous == Some(target_id) && root.generation_dir(&target_id).is_dir() {
            return already_current(root, opts, v, target_id, target_version);
        }
        // The host must have the baseline (active or retained).
        let baseline = step(
            "check",
            baseline_files(root, &header.baseline.generation)
                .map_err(|e| missing_baseline_if_unknown(e, header)),
        )?;
        check_version(root, previous, &target_version, opts.force.is_some())?;
        let new_bytes: u64 = header.files.iter().map(|f| f.size).sum();
        check_disk(
            root,
            super::policy::space_needed_for_apply(new_bytes, opts.free_margin),
        )?;

        // 3. Rebuild what the baseline lacks.
        let mut writer = step("unpack", root.store().writer().map_err(KitError::from))?;
        // The chunks an apply creates are stored uncompressed, in packs that `store gc` /
        // `store compact` compress later (the operator waits on the apply, not on zstd).
        writer.store_new_chunks_fast();
        (ctx.progress)(Step::Phase {
            name: "unpack",
            total: Some(new_bytes),
            unit: Unit::Bytes,
        });
        let mut rebuilt = rebuild(
            root,
            &parts,
            &baseline,
            previous,
            &dirs,
            &mut writer,
            &mut *ctx.progress,
        )?;
        let target_files = step(
            "check",
            header
                .target_files(&baseline, &rebuilt.digests)
                .map_err(KitError::from),
        )?;
        // 4. The target manifest: rebuilt from the delta, checked against the delta's JWS
        // and against every target file.
        let (manifest, manifest_bytes) =
            target_manifest(root, v, &parts, &target_files, &rebuilt, &dirs.tree)?;
        if manifest.generation_id != target_id.to_hex() || manifest.version != target_version {
            return Err((
                "check",
                KitError::Validation("the delta's header and its target manifest disagree".into()),
            ));
        }
        let files: Vec<&TreeFile> = target_files
            .iter()
            .filter(|f| f.path != MANIFEST_PATH)
            .collect();
        check_target_files(&manifest, &files, &rebuilt)?;
        tracing::debug!(step = "check", "target manifest and files checked");
        let (entries, layout_entries) =
            gather_entries(root, header, &files, &mut rebuilt, &dirs.tree)?;
        let chunk_set = step(
            "check",
            ChunkSetManifest::new(entries).map_err(KitError::from),
        )?;
        let mut report = base_report(opts, v, &manifest, target_id, previous);
        report.bundle_sha256 = hex::encode(v.bundle_sha);
        let tree = StagedTree {
            chunk_set,
            layout_entries,
            manifest,
            manifest_bytes,
            staging: dirs.tree,
            kind: "delta",
            feed_changes: rebuilt.feed_changes.take(),
        };
        Ok(Staging::Staged {
            staged: Staged { writer, tree },
            report,
        })
    }
}

/// The report of a delta whose target is current already (nothing is written).
fn already_current<'r>(
    root: &Root,
    opts: &ImportOptions,
    v: &Verified,
    target_id: GenerationId,
    target_version: String,
) -> StepResult<Staging<'r>> {
    let m = OfflineManifest {
        schema: crate::manifest::SCHEMA.into(),
        version: target_version,
        channel: String::new(),
        created_at: String::new(),
        generation_id: target_id.to_hex(),
        notes: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut r = base_report(opts, v, &m, target_id, Some(target_id));
    r.outcome = "already-active".into();
    if let Some(rec) = step(
        "verify",
        root.generation_record(&target_id).map_err(KitError::from),
    )? {
        r.channel = rec.labels.get("channel").cloned().unwrap_or_default();
        r.files = rec.files;
        r.bytes = rec.bytes;
    }
    Ok(Staging::AlreadyCurrent(r))
}

/// An unknown baseline generation is a missing baseline, named with the version the
/// delta's header gives it.
fn missing_baseline_if_unknown(e: KitError, header: &DeltaHeader) -> KitError {
    match e {
        KitError::Delta(ouk_delta::DeltaError::UnknownGeneration(_)) => missing_baseline(header),
        other => other,
    }
}

fn missing_baseline(header: &DeltaHeader) -> KitError {
    KitError::Delta(ouk_delta::DeltaError::MissingBaseline {
        generation: header.baseline.generation.to_hex(),
        version: header
            .baseline
            .version
            .clone()
            .unwrap_or_else(|| "unknown".into()),
    })
}

/// Step 3 proper, the one place a delta is applied: every piece is decoded against
/// verified store bytes, and every rebuilt file's SHA-256 is computed on the way (checked
/// against the manifest afterwards). Rebuilt bytes go to staging and, on the same pass, to
/// the store writer (uncommitted until the last step), so each file is hashed and chunked
/// once; their sizes are the `unpack` phase's advances.
fn rebuild(
    root: &Root,
    parts: &DeltaParts,
    baseline: &[TreeFile],
    previous: Option<GenerationId>,
    dirs: &DeltaDirs,
    writer: &mut ouk_store::StoreWriter<'_>,
    progress: StepSink<'_>,
) -> StepResult<Rebuilt> {
    let header = &parts.header;
    let mut payload = step(
        "unpack",
        File::open(&parts.payload)
            .ctx(|| format!("open {}", parts.payload.display()))
            .map_err(Into::into),
    )?;
    let baseline_digests: HashMap<String, FileDigest> = baseline
        .iter()
        .map(|f| (f.path.clone(), f.sha256))
        .collect();
    let mut sink = StagingAndStore {
        tree: &dirs.tree,
        store: root.store(),
        baseline: &baseline_digests,
        writer,
        chunks: HashMap::new(),
        progress,
        decoder_copied: None,
        copies: HashMap::new(),
    };
    // Reference bytes come from the baseline generation's files when they are on disk and
    // still hold what the manifest says, else from the store. A file whose publication
    // stamp still matches is unchanged since it was verified (as materialization trusts
    // it for a hard link) and is not hashed again; any other is hashed once, on first use.
    let store_content = StoreContent(root.store());
    let baseline_id = header.baseline.generation;
    let baseline_dir = root.generation_dir(&baseline_id);
    let unchanged = root.unchanged_published_files(&baseline_id);
    let reference = CheckedDirContent::new(
        baseline
            .iter()
            .map(|f| (f.sha256, (baseline_dir.join(&f.path), f.size))),
        &store_content,
    )
    .vouched_for(
        baseline
            .iter()
            .filter(|f| unchanged.contains(&f.path))
            .map(|f| f.sha256),
    );
    let written = step(
        "unpack",
        apply_delta(
            header,
            &mut payload,
            baseline,
            &reference,
            &dirs.scratch,
            &mut sink,
        )
        .map_err(KitError::from),
    )?;
    tracing::debug!(
        step = "unpack",
        files = written.len(),
        "delta pieces rebuilt"
    );
    // Files the host derives (the feed index) from what was just rebuilt and the verified
    // baseline, each checked against the digest the signed header declares. While the
    // store takes the derived index, another thread diffs it against the active
    // generation's (from the rows the derive holds when the baseline is the active
    // generation, else from the full scan's file): the feed changes step 6b records. Any
    // other case, or a failure there, leaves that diff to step 6b.
    let baseline_id = header.baseline.generation;
    let diff_beside = |index: DerivedIndex<'_>| {
        let computed = match index {
            // The rows the derive holds are the baseline's index and the derived one: when
            // the baseline is the active generation, their diff is the one to record.
            DerivedIndex::Rows(held) if previous == Some(baseline_id) => match held.feeds() {
                Some((old, new)) => {
                    crate::feeds::host::changes_of_rows(previous, &old, &new, MAX_CHANGES_AHEAD)
                }
                // A feed was scanned, not held: 6b diffs the staged index.
                None => Ok(None),
            },
            // Against another generation the index is diffed once it is staged (6b).
            DerivedIndex::Rows(_) => Ok(None),
            DerivedIndex::File(index) => {
                crate::feeds::host::compute_changes(root, previous, index, MAX_CHANGES_AHEAD)
            }
        };
        computed
            .map_err(|e| tracing::debug!("feed changes left to the record step: {e}"))
            .ok()
            .flatten()
    };
    let derived = step(
        "check",
        crate::delta::derive::derive_files(
            header,
            baseline,
            &written,
            &std::mem::take(&mut sink.copies),
            &dirs.tree,
            &reference,
            &dirs.scratch,
            &mut sink,
            &diff_beside,
        ),
    )?;
    tracing::debug!(step = "check", "derived files rebuilt");
    Ok(Rebuilt {
        digests: written.into_iter().chain(derived.files).collect(),
        chunks: sink.chunks,
        feed_changes: derived.feed_changes,
    })
}

/// The target's offline manifest (rebuilt from the delta, or the baseline's when the delta
/// left it unchanged), bounded in size and checked against the delta's JWS when it
/// carries one and was signed.
fn target_manifest(
    root: &Root,
    v: &Verified,
    parts: &DeltaParts,
    target_files: &[TreeFile],
    rebuilt: &Rebuilt,
    tree: &Path,
) -> StepResult<(OfflineManifest, Vec<u8>)> {
    let manifest_bytes = match target_files.iter().find(|f| f.path == MANIFEST_PATH) {
        Some(_) if rebuilt.digests.contains_key(MANIFEST_PATH) => {
            let p = tree.join(MANIFEST_PATH);
            let bytes = step(
                "check",
                fs::read(&p)
                    .ctx(|| format!("read {}", p.display()))
                    .map_err(Into::into),
            )?;
            step(
                "check",
                fs::remove_file(&p)
                    .ctx(|| format!("remove {}", p.display()))
                    .map_err(Into::into),
            )?;
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
    let manifest = step(
        "check",
        OfflineManifest::parse(&manifest_bytes).map_err(KitError::from),
    )?;
    Ok((manifest, manifest_bytes))
}

/// Every target file (but the manifest) must be exactly what the manifest lists; a
/// rebuilt file that hashes to something else is named with both digests.
fn check_target_files(
    manifest: &OfflineManifest,
    files: &[&TreeFile],
    rebuilt: &Rebuilt,
) -> StepResult<()> {
    for f in files {
        if let (Some(a), true) = (manifest.get(&f.path), rebuilt.digests.contains_key(&f.path))
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
    Ok(())
}

/// The target's chunk lists (rebuilt files are already in the writer; unchanged ones are
/// the store's), with small unchanged files rehydrated into staging so the layout rules
/// can read them.
fn gather_entries(
    root: &Root,
    header: &DeltaHeader,
    files: &[&TreeFile],
    rebuilt: &mut Rebuilt,
    tree: &Path,
) -> StepResult<(Vec<ManifestEntry>, Vec<FileEntry>)> {
    let mut entries = Vec::with_capacity(files.len());
    let mut layout_entries = Vec::with_capacity(files.len());
    for f in files {
        let chunks = if rebuilt.digests.contains_key(f.path.as_str()) {
            rebuilt.chunks.remove(f.path.as_str()).unwrap_or_default()
        } else {
            let rec = step(
                "check",
                root.store().file_record(&f.sha256).map_err(KitError::from),
            )?
            .ok_or_else(|| ("check", missing_baseline(header)))?;
            if f.size <= SMALL_FILE {
                step("unpack", rehydrate(root, f, &tree.join(&f.path)))?;
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
    Ok((entries, layout_entries))
}

/// The importer's [`RebuiltSink`]: each rebuilt file is written to staging (for the layout
/// rules and materialization) while the store writer chunks, hashes and stores the same
/// bytes; the digest returned is the writer's. Files decoded piece by piece are written
/// to staging by the decoder thread ([`RebuiltSink::decoder_copy`]), so this thread only
/// hashes, chunks and stores them.
struct StagingAndStore<'a, 's> {
    tree: &'a Path,
    /// The store the writer writes to (its baseline files' cuts are read from it).
    store: &'a ouk_store::Store,
    /// The baseline's files by path.
    baseline: &'a HashMap<String, FileDigest>,
    writer: &'a mut ouk_store::StoreWriter<'s>,
    chunks: HashMap<String, Vec<ouk_store::ChunkId>>,
    progress: StepSink<'a>,
    /// The file whose staging copy the decoder thread is writing.
    decoder_copied: Option<String>,
    /// Per rebuilt file, the runs record patches copied from the baseline (for the derive).
    copies: HashMap<String, Vec<ouk_delta::apply::CopiedFrom>>,
}

impl RebuiltSink for StagingAndStore<'_, '_> {
    fn decoder_copy(
        &mut self,
        file: &ouk_delta::format::DeltaFile,
    ) -> ouk_delta::Result<Option<ouk_store::presized::PresizedFile>> {
        let out = create_rebuilt_presized(self.tree, file)?;
        self.decoder_copied = Some(file.path.clone());
        Ok(Some(out))
    }

    fn put(
        &mut self,
        file: &ouk_delta::format::DeltaFile,
        content: &mut dyn std::io::Read,
    ) -> ouk_delta::Result<FileDigest> {
        self.put_copying(file, content, &CopiedSoFar::default(), None)
    }

    fn put_copying(
        &mut self,
        file: &ouk_delta::format::DeltaFile,
        content: &mut dyn std::io::Read,
        copied: &CopiedSoFar,
        produced: Option<&ProducedDigest>,
    ) -> ouk_delta::Result<FileDigest> {
        // Inside the runs copied from the baseline, the baseline's own cuts are taken
        // instead of running the cutter again.
        let mut known = BaselineCuts::new(copied, self.baseline, self.store);
        // A producer that hashed the pieces it handed on (the decoder thread, the derived
        // feed index's writer) saves this thread the SHA-256: it only chunks.
        let mut given = || produced.and_then(ProducedDigest::get);
        let hashing = match produced {
            Some(_) => FileHashing::Given(&mut given),
            None => FileHashing::Compute,
        };
        if self.decoder_copied.take().as_deref() == Some(file.path.as_str()) {
            let put = self
                .writer
                .put_reader_knowing(content, &mut known, hashing, &mut |n| {
                    (self.progress)(Step::Advance(n))
                })?;
            set_rebuilt_mode(file, self.tree)?;
            self.chunks.insert(file.path.clone(), put.chunks);
            return Ok(put.digest);
        }
        let mut out = create_rebuilt(self.tree, file)?;
        let mut tee = super::Tee {
            inner: content,
            out: &mut out,
            write_error: None,
        };
        let put = self
            .writer
            .put_reader_knowing(&mut tee, &mut known, hashing, &mut |n| {
                (self.progress)(Step::Advance(n))
            });
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

    fn copied(
        &mut self,
        file: &ouk_delta::format::DeltaFile,
        copies: Vec<ouk_delta::apply::CopiedFrom>,
    ) {
        if !copies.is_empty() {
            self.copies.insert(file.path.clone(), copies);
        }
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
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use ouk_delta::format::{DeltaFile, Derivation, Source};

    use super::*;

    fn index_file(size: usize) -> DeltaFile {
        DeltaFile {
            path: crate::feeds::FEED_INDEX_PATH.into(),
            mode: 0o644,
            size: size as u64,
            sha256: None,
            source: Source::Derived {
                by: Derivation::FeedsIndex,
            },
            form: None,
        }
    }

    /// The derive's fallback on the importer's own sink: a streamed put takes the
    /// producer's digest (what it hashed) instead of hashing again, and once the staged
    /// file is removed a second put of the same path stages and records the new bytes.
    #[test]
    fn a_producers_digest_is_taken_and_a_second_put_replaces_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let root = crate::testutil::root_at(&tmp.path().join("root"));
        let tree = tmp.path().join("tree");
        let (first, second) = (vec![b'a'; 300_000], vec![b'b'; 200_000]);
        let mut writer = root.store().writer().unwrap();
        let baseline = HashMap::new();
        let mut progress = |_: Step<'_>| {};
        let mut sink = StagingAndStore {
            tree: &tree,
            store: root.store(),
            baseline: &baseline,
            writer: &mut writer,
            chunks: HashMap::new(),
            progress: &mut progress,
            decoder_copied: None,
            copies: HashMap::new(),
        };
        // A digest the sink cannot have computed: it is the producer's, taken as given.
        let given = FileDigest([7; 32]);
        let produced = ProducedDigest::default();
        produced.set(given);
        let f = index_file(first.len());
        let got = sink
            .put_copying(
                &f,
                &mut &first[..],
                &CopiedSoFar::default(),
                Some(&produced),
            )
            .unwrap();
        assert_eq!(got, given);
        let staged = tree.join(&f.path);
        assert_eq!(fs::read(&staged).unwrap(), first);
        fs::remove_file(&staged).unwrap();
        let f = index_file(second.len());
        let got = sink.put(&f, &mut &second[..]).unwrap();
        assert_eq!(got, FileDigest::of(&second));
        assert_eq!(fs::read(&staged).unwrap(), second);
        let chunks = sink.chunks.remove(&f.path).unwrap();
        writer.commit().unwrap();
        let rec = root.store().file_record(&got).unwrap().expect("recorded");
        assert_eq!((rec.size, rec.chunks), (second.len() as u64, chunks));
    }
}
