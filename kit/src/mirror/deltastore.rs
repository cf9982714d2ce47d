//! Delta storage inside the mirror: a bundle's stream kept as a stream delta
//! ([`super::streamdelta`]) against the stream of a bundle mirrored before it, when that
//! costs less than the chunks the stream would add to the store.
//!
//! Like git's packs, deltas form chains: a record whose content is
//! [`StoredContent::Delta`] names its base bundle, whose content is chunks (a snapshot,
//! depth 0) or a delta itself. Rebuilding a stream walks the chain from its snapshot up,
//! each step a bounded, windowed decode into a scratch file checked against the SHA-256 its
//! record names.
//!
//! Invariants:
//! - Chains are bounded: `mirror add` deltas against a base only while the new bundle's
//!   depth stays at most [`AddPolicy::max_chain_depth`] (a snapshot every N = depth + 1
//!   roll-ups), and no walk goes past [`MAX_CHAIN_WALK`] steps whatever the catalog says
//!   (a damaged catalog with a cycle is an error, not a loop).
//! - Every rebuilt stream is checked against its record's SHA-256 and length before the
//!   next step or export uses it; a snapshot's stream comes from `Store::read_file`, which
//!   checks the same.
//! - A delta is cataloged only after the whole bundle was reproduced from the store through
//!   it (`mirror add` runs the same `try_recipe` check as for chunks).
//! - Removing a bundle never breaks a chain: every dependant is re-based first (a delta
//!   against the removed bundle's own base, or chunks when it was a snapshot), each in one
//!   catalog transaction after its new content committed, and the removed record goes last,
//!   so a kill at any point leaves every record exportable; pins are recomputed from the
//!   records in each of those transactions.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use ouk_root::Root;
use ouk_store::{FileDigest, Store, StoreError, StoreWriter};
use redb::ReadableTable;
use serde::Serialize;

use super::catalog::{self, MirroredBundle, SidecarFile, StoredContent};
use super::gzip::{DigestWriter, GzipRecipe};
use super::seethrough::{self, MemberRecipe};
use super::streamdelta::{self, ChunkedStream, StreamDeltaError};
use super::{index_err, list, lookup};
use crate::error::{IoContext, KitError, Result};

/// Default deepest chain `mirror add` makes: a full snapshot every 8 roll-ups of a channel.
pub const DEFAULT_MAX_CHAIN_DEPTH: u32 = 7;
/// Most steps any chain walk takes (the deepest `--max-chain-depth` accepted).
pub const MAX_CHAIN_WALK: u32 = 64;

/// How `mirror add` stores a new bundle.
#[derive(Debug, Clone, Copy)]
pub struct AddPolicy {
    /// Deepest delta chain a new bundle may end (0: never store a delta).
    pub max_chain_depth: u32,
}

impl Default for AddPolicy {
    fn default() -> Self {
        AddPolicy {
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
        }
    }
}

fn stream_err(what: &str, e: StreamDeltaError) -> KitError {
    KitError::Validation(format!("{what}: {e}"))
}

fn scratch(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    tempfile::tempfile_in(dir).ctx(|| format!("create a scratch file in {}", dir.display()))
}

/// The records from `record` down to its snapshot (`record` first).
fn chain_of(root: &Root, record: &MirroredBundle) -> Result<Vec<MirroredBundle>> {
    let mut chain = vec![record.clone()];
    while let Some(base) = chain.last().and_then(MirroredBundle::delta_base) {
        if chain.len() > MAX_CHAIN_WALK as usize {
            return Err(KitError::Validation(format!(
                "{}: its delta chain is longer than {MAX_CHAIN_WALK} (a damaged catalog?)",
                record.name
            )));
        }
        let next = lookup(root, &base)?.ok_or_else(|| {
            KitError::Validation(format!(
                "{}: its delta base sha256:{base} is not mirrored",
                record.name
            ))
        })?;
        chain.push(next);
    }
    Ok(chain)
}

/// Depth of `record`'s chain: 0 for a snapshot.
pub fn chain_depth(root: &Root, record: &MirroredBundle) -> Result<u32> {
    Ok(chain_of(root, record)?.len() as u32 - 1)
}

/// Rebuild the stream `content` names into a fresh scratch file in `scratch_dir`, checked
/// against its SHA-256 and length; returns it rewound, with its length. `content` may
/// belong to a record not yet in the catalog (its base must be).
pub fn materialize(
    root: &Root,
    content: &StoredContent,
    scratch_dir: &Path,
) -> Result<(File, u64)> {
    let store = root.store();
    // The chain below `content`, snapshot last.
    let mut deltas: Vec<(FileDigest, u64, StoredContent)> = Vec::new();
    let mut cur = content.clone();
    loop {
        match cur {
            StoredContent::Delta {
                base,
                patch,
                patch_size,
                target,
            } => {
                if deltas.len() >= MAX_CHAIN_WALK as usize {
                    return Err(KitError::Validation(format!(
                        "a delta chain longer than {MAX_CHAIN_WALK} (a damaged catalog?)"
                    )));
                }
                deltas.push((patch, patch_size, *target));
                let rec = lookup(root, &base)?.ok_or_else(|| {
                    KitError::Validation(format!("delta base sha256:{base} is not mirrored"))
                })?;
                cur = rec.content;
            }
            StoredContent::Compressed => {
                return Err(KitError::Validation(
                    "a bundle kept as its compressed bytes has no stream to rebuild".into(),
                ));
            }
            snapshot => {
                let (sha, size) = stream_id(&snapshot);
                let mut file = scratch(scratch_dir)?;
                let mut w = BufWriter::with_capacity(1 << 20, &file);
                let n = store.read_file(&sha, &mut w)?;
                w.flush().ctx(|| "write a scratch stream".to_string())?;
                drop(w);
                if n != size {
                    return Err(KitError::Validation(format!(
                        "mirror stream sha256:{sha} holds {n} bytes, its record says {size}"
                    )));
                }
                file.seek(SeekFrom::Start(0))
                    .ctx(|| "rewind a scratch stream".to_string())?;
                let mut prev = (file, size);
                while let Some((patch, patch_size, target)) = deltas.pop() {
                    prev = apply_step(store, &prev, &patch, patch_size, &target, scratch_dir)?;
                }
                return Ok(prev);
            }
        }
    }
}

/// SHA-256 and length of the stream a tar or see-through content names.
fn stream_id(content: &StoredContent) -> (FileDigest, u64) {
    match content {
        StoredContent::Tar { sha256, size, .. }
        | StoredContent::SeeThrough { sha256, size, .. } => (*sha256, *size),
        // Validated records never get here (a delta's target is tar or see-through).
        StoredContent::Delta { target, .. } => stream_id(target),
        StoredContent::Compressed => (FileDigest([0; 32]), 0),
    }
}

/// One chain step: `base` and the patch store file rebuild `target`'s stream.
fn apply_step(
    store: &Store,
    base: &(File, u64),
    patch: &FileDigest,
    patch_size: u64,
    target: &StoredContent,
    scratch_dir: &Path,
) -> Result<(File, u64)> {
    let (sha, size) = stream_id(target);
    let patch_file = scratch(scratch_dir)?;
    let mut w = BufWriter::with_capacity(1 << 20, &patch_file);
    let n = store.read_file(patch, &mut w)?;
    w.flush().ctx(|| "write a scratch patch".to_string())?;
    drop(w);
    if n != patch_size {
        return Err(KitError::Validation(format!(
            "mirror delta sha256:{patch} holds {n} bytes, its record says {patch_size}"
        )));
    }
    let mut out = scratch(scratch_dir)?;
    let mut digest = DigestWriter::new(BufWriter::with_capacity(1 << 20, &out));
    streamdelta::apply(&base.0, base.1, &patch_file, patch_size, &mut digest)
        .map_err(|e| stream_err(&format!("mirror delta sha256:{patch}"), e))?;
    let (got, len, w) = digest.finish();
    w.into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| "write a scratch stream".to_string())?;
    if got != *sha.as_bytes() || len != size {
        return Err(KitError::DigestMismatch {
            what: format!("mirror stream rebuilt by delta sha256:{patch} ({len} bytes)"),
            expected: sha.to_hex(),
            actual: hex::encode(got),
        });
    }
    out.seek(SeekFrom::Start(0))
        .ctx(|| "rewind a scratch stream".to_string())?;
    Ok((out, size))
}

/// The base `mirror add` deltas a new `kind` bundle of `channel` against: the channel's
/// newest bundle of that kind with a stream, when the new one's depth stays in `policy`.
fn pick_base(
    root: &Root,
    kind: &str,
    channel: &str,
    policy: &AddPolicy,
) -> Result<Option<MirroredBundle>> {
    if policy.max_chain_depth == 0 {
        return Ok(None);
    }
    let Some(base) = list(root)?
        .into_iter()
        .filter(|b| b.kind == kind && b.channel == channel && b.stream().is_some())
        .max_by_key(|b| b.added_at)
    else {
        return Ok(None);
    };
    let depth = chain_depth(root, &base)?;
    Ok((depth < policy.max_chain_depth).then_some(base))
}

/// Bytes the store would add for `target`'s chunks it lacks (each new chunk compressed as
/// the store frames it).
fn new_chunk_cost(store: &Store, target: &ChunkedStream) -> Result<u64> {
    let level = store.header().zstd_level;
    let mut seen = std::collections::HashSet::new();
    let mut cost = 0u64;
    let mut buf = Vec::new();
    for (off, len, id) in &target.chunks {
        if !seen.insert(*id) || store.locate(id)?.is_some() {
            continue;
        }
        buf.resize(*len as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(&target.file, &mut buf, *off)
            .ctx(|| "read a scratch stream".to_string())?;
        let framed =
            zstd::bulk::compress(&buf, level).ctx(|| "compress a chunk to weigh it".to_string())?;
        // A frame stores the smaller of the raw and compressed bytes, plus its header.
        cost += framed.len().min(buf.len()) as u64 + 48;
    }
    Ok(cost)
}

/// The stream a new bundle will be stored as, before its digest is known.
pub(super) enum Target {
    /// The tar itself.
    Tar(GzipRecipe),
    /// The see-through stream with these members.
    SeeThrough(GzipRecipe, Vec<MemberRecipe>),
}

/// A delta stored for a new bundle, not yet verified nor cataloged.
pub(super) struct StoredDelta {
    /// The record's content.
    pub content: StoredContent,
    /// Its sidecars, stored in the same commit.
    pub sidecars: Vec<SidecarFile>,
    /// Bytes the commit appended to packs.
    pub new_stored_bytes: u64,
}

/// Store `stream` (what `target` describes) as a delta against the channel's previous
/// bundle when that costs less than its new chunks; `None` (nothing stored) otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn store_as_delta(
    root: &Root,
    policy: &AddPolicy,
    kind: &str,
    channel: &str,
    stream: &mut dyn Read,
    target: Target,
    put_sidecars: &dyn Fn(&mut StoreWriter<'_>) -> Result<Vec<SidecarFile>>,
    scratch_dir: &Path,
) -> Result<Option<StoredDelta>> {
    let Some(base) = pick_base(root, kind, channel, policy)? else {
        return Ok(None);
    };
    let store = root.store();
    let chunker = store.chunker();
    let target_stream = streamdelta::spool(chunker, stream, scratch(scratch_dir)?)
        .map_err(|e| stream_err("spool the new stream", e))?;
    let target_content = match target {
        Target::Tar(recipe) => StoredContent::Tar {
            sha256: target_stream.sha256,
            size: target_stream.len,
            recipe,
        },
        Target::SeeThrough(recipe, members) => {
            if seethrough::validate_members(&members, target_stream.len).is_err() {
                return Ok(None);
            }
            StoredContent::SeeThrough {
                sha256: target_stream.sha256,
                size: target_stream.len,
                recipe,
                members,
            }
        }
    };
    let budget = new_chunk_cost(store, &target_stream)?;
    let (base_file, _) = materialize(root, &base.content, scratch_dir)?;
    let base_stream = streamdelta::spool(chunker, &base_file, scratch(scratch_dir)?)
        .map_err(|e| stream_err("index the base stream", e))?;
    drop(base_file);
    let mut patch = scratch(scratch_dir)?;
    let Some(patch_len) = streamdelta::encode(
        &base_stream,
        &target_stream,
        budget,
        scratch_dir,
        &mut patch,
    )
    .map_err(|e| stream_err("make the delta", e))?
    else {
        return Ok(None);
    };
    patch
        .seek(SeekFrom::Start(0))
        .ctx(|| "rewind the patch".to_string())?;
    let mut w = store.writer()?;
    let sidecars = put_sidecars(&mut w)?;
    let put = w.put_reader((&patch).take(patch_len), &mut |_| {})?;
    let new_stored_bytes = w.commit()?.new_stored_bytes;
    Ok(Some(StoredDelta {
        content: StoredContent::Delta {
            base: base.sha256,
            patch: put.digest,
            patch_size: put.size,
            target: Box::new(target_content),
        },
        sidecars,
        new_stored_bytes,
    }))
}

/// Write `records` (replacing those under the same key) and delete `remove`, re-pinning
/// every record's files, in one transaction.
fn commit_catalog(
    root: &Root,
    records: &[&MirroredBundle],
    remove: Option<&FileDigest>,
) -> Result<()> {
    let txn = root.store().database().begin_write().map_err(index_err)?;
    {
        let mut table = txn.open_table(catalog::BUNDLES).map_err(index_err)?;
        for r in records {
            table
                .insert(r.sha256.as_bytes(), r.encode().as_slice())
                .map_err(index_err)?;
        }
        if let Some(key) = remove {
            table.remove(key.as_bytes()).map_err(index_err)?;
        }
    }
    // Pins follow the records: a file several records share stays pinned while any does.
    ouk_store::pins::unpin_all(&txn, catalog::PIN_HOLDER)?;
    {
        let table = txn.open_table(catalog::BUNDLES).map_err(index_err)?;
        for row in table.iter().map_err(index_err)? {
            let (k, v) = row.map_err(index_err)?;
            let record = MirroredBundle::decode(v.value())
                .map_err(|e| super::damaged_record(k.value(), e))?;
            for digest in record.store_files() {
                ouk_store::pins::pin(&txn, catalog::PIN_HOLDER, &digest)?;
            }
        }
    }
    txn.commit().map_err(index_err)
}

/// New content for `dependant` (a delta against `removed`) that does not need `removed`:
/// a delta against `removed`'s own base, or its stream as chunks.
fn rebase_content(
    root: &Root,
    dependant: &MirroredBundle,
    removed: &MirroredBundle,
    scratch_dir: &Path,
) -> Result<StoredContent> {
    let store = root.store();
    let target = dependant
        .stream()
        .cloned()
        .ok_or_else(|| KitError::Validation(format!("{}: no stream", dependant.name)))?;
    let (stream_file, _) = materialize(root, &dependant.content, scratch_dir)?;
    if let Some(grand) = removed.delta_base() {
        let grand_record = lookup(root, &grand)?.ok_or_else(|| {
            KitError::Validation(format!("{}: its base is not mirrored", removed.name))
        })?;
        let (grand_file, _) = materialize(root, &grand_record.content, scratch_dir)?;
        let chunker = store.chunker();
        let base = streamdelta::spool(chunker, &grand_file, scratch(scratch_dir)?)
            .map_err(|e| stream_err("index the new base", e))?;
        let t = streamdelta::spool(chunker, &stream_file, scratch(scratch_dir)?)
            .map_err(|e| stream_err("index the re-based stream", e))?;
        let mut patch = scratch(scratch_dir)?;
        if let Some(len) = streamdelta::encode(&base, &t, u64::MAX, scratch_dir, &mut patch)
            .map_err(|e| stream_err("make the delta", e))?
        {
            patch
                .seek(SeekFrom::Start(0))
                .ctx(|| "rewind the patch".to_string())?;
            let mut w = store.writer()?;
            let put = w.put_reader((&patch).take(len), &mut |_| {})?;
            w.commit()?;
            return Ok(StoredContent::Delta {
                base: grand,
                patch: put.digest,
                patch_size: put.size,
                target: Box::new(target),
            });
        }
    }
    let mut w = store.writer()?;
    let put = w.put_reader(&stream_file, &mut |_| {})?;
    w.commit()?;
    let (sha, size) = stream_id(&target);
    if put.digest != sha || put.size != size {
        return Err(KitError::DigestMismatch {
            what: format!("{} stream stored as chunks", dependant.name),
            expected: sha.to_hex(),
            actual: put.digest.to_hex(),
        });
    }
    Ok(target)
}

/// What [`remove`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    /// The bundle removed.
    pub removed: String,
    /// Bundles that were deltas against it, re-based first (name, now stored as).
    pub rebased: Vec<(String, &'static str)>,
}

/// `mirror remove`: drop one bundle from the catalog, re-basing its dependants first (see
/// the module doc). Its store content goes at the next `ouk store gc`.
pub fn remove(root: &Root, selector: &super::Selector) -> Result<RemoveReport> {
    if root.store().is_remote() {
        // Records in the bucket are create-only: a removed one would come back with the
        // next `store reindex`, and a re-based one could not be replaced.
        return Err(KitError::Store(StoreError::Unsupported(
            "mirror remove on an object-storage store".into(),
        )));
    }
    let record = super::select(root, selector)?;
    let scratch_dir = root.staging_dir();
    let mut rebased = Vec::new();
    for dependant in list(root)?
        .into_iter()
        .filter(|b| b.delta_base() == Some(record.sha256))
    {
        let content = rebase_content(root, &dependant, &record, &scratch_dir)?;
        let updated = MirroredBundle {
            content,
            ..dependant
        };
        // The new content rebuilds the same stream before it replaces the old.
        materialize(root, &updated.content, &scratch_dir)?;
        commit_catalog(root, &[&updated], None)?;
        rebased.push((updated.name.clone(), updated.stored_as()));
    }
    commit_catalog(root, &[], Some(&record.sha256))?;
    Ok(RemoveReport {
        removed: record.name,
        rebased,
    })
}

/// One delta-stored bundle whose chain did not rebuild (`store fsck`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainFailure {
    /// The bundle.
    pub name: String,
    /// Why.
    pub error: String,
}

/// Rebuild every delta-stored bundle's stream through its whole chain, checking each step's
/// SHA-256: the failures (`store fsck`).
pub fn verify_chains(root: &Root) -> Result<(u64, Vec<ChainFailure>)> {
    let scratch_dir = root.staging_dir();
    let mut checked = 0;
    let mut failures = Vec::new();
    for record in list(root)? {
        if record.delta_base().is_none() {
            continue;
        }
        checked += 1;
        if let Err(e) = materialize(root, &record.content, &scratch_dir) {
            failures.push(ChainFailure {
                name: record.name.clone(),
                error: e.to_string(),
            });
        }
    }
    Ok((checked, failures))
}
