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
use super::chain;
use super::gzip::GzipRecipe;
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

/// Log how long a phase of a mirror operation took (`OUK_LOG=ouk_kit::mirror=debug`):
/// where an add's time goes, measured on the machine at hand.
pub(super) fn phase_done(phase: &str, since: std::time::Instant) -> std::time::Instant {
    tracing::debug!(
        phase,
        seconds = since.elapsed().as_secs_f64(),
        "mirror phase"
    );
    std::time::Instant::now()
}

fn stream_err(what: &str, e: StreamDeltaError) -> KitError {
    KitError::Validation(format!("{what}: {e}"))
}

fn scratch(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    #[cfg(test)]
    streamdelta::probe::scratch_created();
    tempfile::tempfile_in(dir)
        .ctx(|| format!("create a scratch file in {}", dir.display()))
        .map_err(Into::into)
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

/// Rebuild the stream `content` names into a fresh scratch file in `scratch_dir`
/// ([`chain::rebuild`]: one pass, checked against its SHA-256 and length); returns it
/// rewound, with its length. `content` may belong to a record not yet in the catalog (its
/// base must be).
pub fn materialize(
    root: &Root,
    content: &StoredContent,
    scratch_dir: &Path,
) -> Result<(File, u64)> {
    let mut file = scratch(scratch_dir)?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    let size = chain::rebuild(root, content, scratch_dir, &mut w)?;
    w.flush().ctx(|| "write a scratch stream".to_string())?;
    drop(w);
    file.seek(SeekFrom::Start(0))
        .ctx(|| "rewind a scratch stream".to_string())?;
    Ok((file, size))
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
    let t = std::time::Instant::now();
    let target_stream = streamdelta::spool(chunker, stream, scratch(scratch_dir)?)
        .map_err(|e| stream_err("spool the new stream", e))?;
    let t = phase_done("delta: spool and chunk the new stream", t);
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
    let t = phase_done("delta: weigh the new chunks", t);
    // The base is rebuilt into one scratch file and indexed where it lies.
    let (base_file, _) = materialize(root, &base.content, scratch_dir)?;
    let t = phase_done("delta: rebuild the base stream", t);
    let base_stream = streamdelta::index(chunker, base_file)
        .map_err(|e| stream_err("index the base stream", e))?;
    let t = phase_done("delta: chunk the base stream", t);
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
        phase_done("delta: encode (over budget)", t);
        return Ok(None);
    };
    let t = phase_done("delta: encode", t);
    patch
        .seek(SeekFrom::Start(0))
        .ctx(|| "rewind the patch".to_string())?;
    let mut w = store.writer()?;
    let sidecars = put_sidecars(&mut w)?;
    let put = w.put_reader((&patch).take(patch_len), &mut |_| {})?;
    let new_stored_bytes = w.commit()?.new_stored_bytes;
    phase_done("delta: store the patch", t);
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
        let base = streamdelta::index(chunker, grand_file)
            .map_err(|e| stream_err("index the new base", e))?;
        let stream_copy = stream_file
            .try_clone()
            .ctx(|| "reopen a scratch stream".to_string())?;
        let t = streamdelta::index(chunker, stream_copy)
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
    // Indexing above read the stream through a clone sharing this offset.
    (&stream_file)
        .seek(SeekFrom::Start(0))
        .ctx(|| "rewind a scratch stream".to_string())?;
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
