//! The import pipeline's staging step for a kit: load its manifest (sidecar checked
//! against its JWS, or the bundle's own copy), then stream every entry of the verified copy
//! once, into staging and into the store writer at the same time, checking each file
//! against the manifest as it goes.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_store::StoreError;
use ouk_store::progress::{Step, StepSink, Unit};
use ouk_store::writeback::WritebackFile;

use super::{
    ImportReport, Stage, StageContext, Staged, StagedTree, Staging, StepResult, Tee, Verified,
    base_report, check_disk, check_version, step,
};
use crate::bundle::{BundleReader, EntryKind, ReadError};
use crate::error::{IoContext, KitError};
use crate::layout::{self, FileEntry};
use crate::manifest::{MANIFEST_PATH, OfflineManifest};
use crate::sign::VerifyingKey;
use crate::split::BundleInput;
use crate::verify::{self, ManifestGate};

/// The kit's staging step.
pub(super) struct KitStage;

impl Stage for KitStage {
    fn stage<'r>(&self, v: &Verified, ctx: &mut StageContext<'r, '_>) -> StepResult<Staging<'r>> {
        let (root, opts) = (ctx.root, ctx.opts);
        let (manifest, manifest_bytes) = load_manifest(v)?;
        let target_id: GenerationId = manifest.generation_id.parse().map_err(|_| {
            (
                "verify",
                KitError::InvalidManifest("generationId does not parse".into()),
            )
        })?;
        let previous = step("verify", root.current().map_err(KitError::from))?;
        tracing::info!(step = "verify", version = %manifest.version, channel = %manifest.channel, files = manifest.artifacts.len(), bytes = manifest.total_bytes(), generation = %target_id, "manifest read");
        let base = base_report(opts, v, &manifest, target_id, previous);
        // Idempotency: the kit's generation is already current -> nothing to do, nothing
        // written. But only for a bundle that is the kit its manifest describes: a manifest
        // sidecar found beside some other bundle must not make that bundle "already
        // active". The check reads the private copy once and writes nothing.
        if previous == Some(target_id) && root.generation_dir(&target_id).is_dir() {
            step(
                "check",
                verify::check_input_content(&v.input, &manifest, &manifest_bytes),
            )?;
            return Ok(Staging::AlreadyCurrent(ImportReport {
                outcome: "already-active".into(),
                ..base
            }));
        }
        check_disk(
            root,
            super::policy::space_needed(manifest.total_bytes(), opts.free_margin),
        )?;
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
            fs::create_dir_all(&staging)
                .ctx(|| format!("create {}", staging.display()))
                .map_err(Into::into),
        )?;
        let mut writer = step("unpack", root.store().writer().map_err(KitError::from))?;
        (ctx.progress)(Step::Phase {
            name: "unpack",
            total: Some(manifest.total_bytes()),
            unit: Unit::Bytes,
        });
        let mut target = UnpackTarget {
            staging: &staging,
            writer: &mut writer,
            progress: &mut *ctx.progress,
        };
        let (entries, layout_entries) =
            unpack_and_stage(&v.input, &manifest, &manifest_bytes, &mut target)?;
        let chunk_set = step(
            "check",
            ChunkSetManifest::new(entries).map_err(KitError::from),
        )?;
        tracing::info!(
            step = "unpack",
            files = chunk_set.entries().len(),
            "unpacked, checked against the manifest and staged"
        );
        let tree = StagedTree {
            chunk_set,
            layout_entries,
            manifest,
            manifest_bytes,
            staging,
            kind: "kit",
            feed_changes: None,
        };
        Ok(Staging::Staged {
            staged: Staged { writer, tree },
            report: base,
        })
    }
}

/// The kit's manifest: the sidecar (checked against its JWS when the bundle's signature
/// was), else the bundle's own copy (covered by the bundle signature).
fn load_manifest(v: &Verified) -> StepResult<(OfflineManifest, Vec<u8>)> {
    match &v.sidecars.manifest {
        Some(path) => {
            let keys_for_jws: &[VerifyingKey] = if v.signed_by.is_some() { &v.keys } else { &[] };
            let (m, bytes, _) = step(
                "verify",
                verify::load_manifest(path, v.sidecars.manifest_signature.as_deref(), keys_for_jws),
            )?;
            Ok((m, bytes))
        }
        None => step("verify", verify::manifest_from_input(&v.input)),
    }
}

/// Where unpacked entries go: files under `staging`, their bytes into the store writer
/// (same pass), their sizes to the `unpack` phase.
struct UnpackTarget<'a, 's> {
    staging: &'a Path,
    writer: &'a mut ouk_store::StoreWriter<'s>,
    progress: StepSink<'a>,
}

#[allow(clippy::type_complexity)]
fn unpack_and_stage(
    bundle: &BundleInput,
    manifest: &OfflineManifest,
    manifest_bytes: &[u8],
    target: &mut UnpackTarget<'_, '_>,
) -> StepResult<(Vec<ManifestEntry>, Vec<FileEntry>)> {
    let gate = ManifestGate::new(manifest, manifest_bytes);
    let lookup = |p: &str| gate.size_of(p);
    let file = step("unpack", bundle.reader())?;
    let limits = gate.limits();
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
        let put = stage_file(&mut entry, &path, mode, &gate, target)?;
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

/// One file entry: written to staging (mode 0600 until it is complete) and fed to the
/// store writer on the same pass, then checked against its declared size and digest.
fn stage_file(
    entry: &mut impl Read,
    path: &str,
    mode: u32,
    gate: &ManifestGate<'_>,
    target: &mut UnpackTarget<'_, '_>,
) -> StepResult<ouk_store::PutOutcome> {
    let dest = target.staging.join(path);
    if let Some(parent) = dest.parent() {
        step(
            "unpack",
            fs::create_dir_all(parent)
                .ctx(|| format!("create {}", parent.display()))
                .map_err(Into::into),
        )?;
    }
    let f = step(
        "unpack",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .ctx(|| format!("create {}", dest.display()))
            .map_err(Into::into),
    )?;
    // Handed to the device as it is written, so the `syncfs` before publication waits
    // for the last pages only (`ouk_store::writeback`).
    let mut out = BufWriter::with_capacity(1 << 20, WritebackFile::new(f));
    let mut tee = Tee {
        inner: entry,
        out: &mut out,
        write_error: None,
    };
    let put = target
        .writer
        .put_reader(&mut tee, &mut |n| (target.progress)(Step::Advance(n)));
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
                KitError::Read(ReadError::from_io(source, 0, Some(path))),
            ));
        }
        (Err(e), None) => return Err(("unpack", e.into())),
    };
    let written = step(
        "unpack",
        out.into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("write {}", dest.display()))
            .map_err(Into::into),
    )?;
    drop(written.into_inner());
    if !gate.matches(path, put.size, &put.digest.to_hex()) {
        return Err((
            "check",
            KitError::DigestMismatch {
                what: verify::could_not_verify_file(path),
                expected: gate.expected(path).1.to_string(),
                actual: put.digest.to_hex(),
            },
        ));
    }
    step(
        "unpack",
        fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .ctx(|| format!("chmod {}", dest.display()))
            .map_err(Into::into),
    )?;
    Ok(put)
}
