//! `ouk store {ingest|fsck|stats|gc|reindex}`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_root::{ActivateOutcome, Labels};
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Put a file or a directory tree into the store as a generation and make it current.
    Ingest {
        /// File or directory to ingest.
        path: PathBuf,
        /// Record but do not activate.
        #[arg(long)]
        no_activate: bool,
    },
    /// Re-hash every chunk; report damaged chunks, files and generations (exit 2 if any).
    Fsck,
    /// Chunk count, logical bytes, stored bytes, dedup ratio.
    Stats,
    /// Remove chunks no retained generation references; repack sparse packs.
    Gc,
    /// Compress the packs a delta apply wrote uncompressed to the store's own level
    /// (gc does this too; compact does only this, for an idle moment). Crash-safe like gc.
    Compact,
    /// Rebuild the local index of an object-storage store (--store-url) from the bucket:
    /// packs, chunks, file records and the mirror's catalog.
    Reindex,
}

#[derive(Serialize)]
struct IngestReport {
    generation: GenerationId,
    files: u64,
    bytes: u64,
    new_chunks: u64,
    new_stored_bytes: u64,
    status: &'static str,
    previous: Option<GenerationId>,
}

fn single_file_manifest(
    root: &ouk_root::Root,
    path: &Path,
) -> Result<(ChunkSetManifest, ouk_store::WriteTotals), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Failure::new(
            ExitCode::Failure,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let mode = std::fs::metadata(path)
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))?
        .permissions()
        .mode()
        & 0o777;
    let mut w = root.store().writer()?;
    let put = w.put_file(path, &mut |_| {})?;
    let totals = w.commit()?;
    let m = ChunkSetManifest::new(vec![ManifestEntry {
        path: name.to_string(),
        mode,
        size: put.size,
        sha256: put.digest,
        chunks: put.chunks,
    }])?;
    Ok((m, totals))
}

fn tree_bytes(path: &Path) -> u64 {
    ouk_delta::tree::list_tree(path)
        .map(|files| {
            files
                .iter()
                .filter_map(|f| std::fs::metadata(&f.1).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Run one `ouk store` subcommand.
pub fn run(ctx: &Context, cmd: StoreCommand) -> Result<ExitCode, Failure> {
    match cmd {
        StoreCommand::Ingest { path, no_activate } => ingest(ctx, path, no_activate),
        StoreCommand::Fsck => fsck(ctx),
        StoreCommand::Stats => stats(ctx),
        StoreCommand::Reindex => reindex(ctx),
        StoreCommand::Gc => gc(ctx),
        StoreCommand::Compact => compact(ctx),
    }
}

/// `ouk store ingest PATH`: a tree (or one file) as a generation, activated unless
/// `--no-activate`.
fn ingest(ctx: &Context, path: PathBuf, no_activate: bool) -> Result<ExitCode, Failure> {
    let meta = std::fs::metadata(&path)
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))?;
    let root = ctx.open_root()?;
    let (manifest, totals) = if meta.is_dir() {
        let mut progress = ctx.out.progress("ingest", tree_bytes(&path));
        root.ingest_tree(&path, &mut |n| progress.inc(n))?
    } else {
        single_file_manifest(&root, &path)?
    };
    let mut labels = Labels::new();
    labels.insert("source".into(), path.display().to_string());
    let id = root.record_generation(&manifest, labels)?;
    let (status, previous) = if no_activate {
        ("recorded", None)
    } else {
        match root.activate(&id, "ingest", false, Labels::new())? {
            ActivateOutcome::AlreadyCurrent => ("already current", Some(id)),
            ActivateOutcome::Activated { previous } => ("activated", previous),
        }
    };
    let report = IngestReport {
        generation: id,
        files: manifest.entries().len() as u64,
        bytes: manifest.total_bytes(),
        new_chunks: totals.new_chunks,
        new_stored_bytes: totals.new_stored_bytes,
        status,
        previous,
    };
    ctx.out.emit(&report, || {
        format!(
            "generation {} {}\n  {} files, {}; {} new chunks, {} written to packs",
            id.short(),
            status,
            report.files,
            bytes(report.bytes),
            report.new_chunks,
            bytes(report.new_stored_bytes)
        )
    });
    Ok(ExitCode::Ok)
}

/// `ouk store fsck`: every chunk, file record, generation and mirror delta chain checked;
/// damage is exit 2.
fn fsck(ctx: &Context) -> Result<ExitCode, Failure> {
    let mut root = ctx.open_root()?;
    let total = root.store().stats()?.unique_bytes;
    let progress = std::sync::Mutex::new(ctx.out.progress("fsck", total));
    let report = root.store().fsck(&|n| {
        if let Ok(mut p) = progress.lock() {
            p.inc(n);
        }
    })?;
    drop(progress);
    let damaged_files: BTreeSet<_> = report.damaged_files.iter().copied().collect();
    let mut generations = Vec::new();
    for g in root.generations()? {
        let m = root.manifest(&g.id)?;
        let hit: Vec<String> = m
            .entries()
            .iter()
            .filter(|e| damaged_files.contains(&e.sha256))
            .map(|e| e.path.clone())
            .collect();
        if !hit.is_empty() {
            generations
                .push(serde_json::json!({"generation": g.id, "current": g.current, "files": hit}));
        }
    }
    // The index file's own pages last: the walk above names what damaged records
    // point at while they still read.
    // The mirror's delta chains end to end: every delta-stored bundle's stream
    // rebuilt through its chain and checked against its SHA-256 (a delta whose
    // chunks read fine but rebuild the wrong bytes is found here).
    let (chains_checked, chain_failures) = if report.is_clean() {
        ouk_kit::mirror::verify_chains(&root).map_err(crate::shared::kit_failure)?
    } else {
        (0, Vec::new())
    };
    let index = root.store_mut().check_index()?;
    let index_damaged = matches!(index, ouk_store::IndexCheck::Damaged { .. });
    let clean = report.is_clean() && !index_damaged && chain_failures.is_empty();
    let doc = serde_json::json!({"clean": clean, "index": index, "report": &report, "damagedGenerations": &generations, "mirrorChainsChecked": chains_checked, "damagedMirrorChains": &chain_failures});
    ctx.out.emit(&doc, || {
        let mut s = format!(
            "checked {} chunks ({}) and {} files\n",
            report.chunks_checked,
            bytes(report.bytes_checked),
            report.files_checked
        );
        match &index {
            ouk_store::IndexCheck::Clean => {}
            ouk_store::IndexCheck::Repaired => {
                s.push_str("index: repaired what an interrupted run left (pages reclaimed)\n")
            }
            ouk_store::IndexCheck::Damaged { message } => {
                s.push_str(&format!("DAMAGED index: {message}\n"))
            }
        }
        if clean {
            s.push_str("store is clean\n");
        }
        for p in &report.missing_packs {
            s.push_str(&format!("MISSING pack {p}\n"));
        }
        for d in &report.damaged {
            s.push_str(&format!(
                "DAMAGED chunk {} (pack {}, offset {}): {}\n",
                d.id, d.pack, d.offset, d.reason
            ));
        }
        for f in &report.damaged_files {
            s.push_str(&format!("DAMAGED file sha256:{f}\n"));
        }
        for g in &generations {
            s.push_str(&format!(
                "DAMAGED generation {}: {}\n",
                g["generation"].as_str().unwrap_or("?"),
                g["files"]
            ));
        }
        if chains_checked > 0 {
            s.push_str(&format!(
                "mirror: {chains_checked} delta-stored bundle(s) rebuilt through their chains\n"
            ));
        }
        for f in &chain_failures {
            s.push_str(&format!(
                "DAMAGED mirror delta chain of {}: {}\n",
                f.name, f.error
            ));
        }
        s
    });
    Ok(if clean {
        ExitCode::Ok
    } else {
        ExitCode::DigestMismatch
    })
}

/// `ouk store stats`: sizes and ratios of the store.
fn stats(ctx: &Context) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    let s = root.store().stats()?;
    let gens = root.generations()?;
    let logical: u64 = gens.iter().map(|g| g.record.bytes).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let doc = serde_json::json!({
        "backend": root.store().backend_description(),
        "requests": root.store().requests(),
        "chunks": s.chunks,
        "files": s.files,
        "generations": gens.len(),
        "logicalBytes": logical,
        "uniqueBytes": s.unique_bytes,
        "storedBytes": s.stored_bytes,
        "packBytes": s.pack_bytes,
        "packs": s.packs,
        "dedupRatio": ratio(logical, s.unique_bytes),
        "compressionRatio": ratio(s.unique_bytes, s.stored_bytes),
    });
    ctx.out.emit(&doc, || {
        format!(
            "chunks          {}\nfiles           {} distinct\ngenerations     {}\nlogical bytes   {} (all generations)\nunique bytes    {}\nstored bytes    {} in {} pack(s), {} on disk\ndedup ratio     {:.2}x\ncompression     {:.2}x",
            s.chunks,
            s.files,
            gens.len(),
            bytes(logical),
            bytes(s.unique_bytes),
            bytes(s.stored_bytes),
            s.packs,
            bytes(s.pack_bytes),
            ratio(logical, s.unique_bytes),
            ratio(s.unique_bytes, s.stored_bytes)
        )
    });
    Ok(ExitCode::Ok)
}

/// `ouk store reindex`: the index rebuilt from the bucket (the store, then the mirror catalog).
fn reindex(ctx: &Context) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    let store_report = root.store().reindex()?;
    let mirror_report = ouk_kit::mirror::reindex(&root).map_err(crate::shared::kit_failure)?;
    let doc = serde_json::json!({
        "store": store_report,
        "mirror": mirror_report,
        "requests": root.store().requests(),
    });
    ctx.out.emit(&doc, || {
        let mut s = format!(
            "reindexed {} from the bucket: {} pack(s) ({}), {} chunks, {} files; {} mirrored bundle(s)",
            root.store().backend_description(),
            store_report.packs,
            bytes(store_report.pack_bytes),
            store_report.chunks,
            store_report.files,
            mirror_report.bundles
        );
        for p in &store_report.orphan_packs {
            s.push_str(&format!("\n  not referenced (no index object): pack {p}"));
        }
        for r in store_report.refused_indexes.iter().chain(&mirror_report.refused) {
            s.push_str(&format!("\n  left out: {r}"));
        }
        for f in &store_report.incomplete_files {
            s.push_str(&format!("\n  left out: file sha256:{f} (a chunk is in no indexed pack)"));
        }
        s
    });
    Ok(ExitCode::Ok)
}

/// `ouk store gc`: files and chunks no generation references removed.
/// `ouk store compact`.
fn compact(ctx: &Context) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    let mut progress = ctx.out.progress("compact", 0);
    let r = root.store().compact(&mut |s| progress.step(s))?;
    drop(progress);
    ctx.out.emit(&r, || {
        format!(
            "recompressed {} chunks in {} pack(s): {} -> {}{}",
            r.chunks,
            r.packs_compacted,
            bytes(r.bytes_before),
            bytes(r.bytes_after),
            if r.packs_damaged > 0 {
                format!(
                    "; {} pack(s) left as they are: a frame does not verify (run `ouk store fsck`)",
                    r.packs_damaged
                )
            } else {
                String::new()
            }
        )
    });
    Ok(ExitCode::Ok)
}

fn gc(ctx: &Context) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    let r = root.gc_store()?;
    ctx.out.emit(&r, || {
        format!(
            "removed {} files and {} chunks; rewrote {} pack(s), deleted {}; packs {} -> {}",
            r.files_removed,
            r.chunks_removed,
            r.packs_rewritten,
            r.packs_deleted,
            bytes(r.bytes_before),
            bytes(r.bytes_after)
        )
    });
    Ok(ExitCode::Ok)
}
