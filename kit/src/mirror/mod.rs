//! The mirror: many bundles (weekly kits, deltas) kept deduplicated in a root's chunk
//! store, each given back byte-identical on export.
//!
//! `add` verifies a bundle as `ouk kit verify` does (digest against its `.sha256` and
//! `.metadata.json`, the cosign signature against the root's trust store, which must hold
//! a key unless the caller allows unsigned bundles, a kit's content against its manifest),
//! then stores the *uncompressed* tar stream inside
//! it, so successive kits share chunks, plus its sidecars; the catalog ([`catalog`])
//! records the gzip recipe ([`gzip`]) that re-creates the bundle from that stream. Whether
//! the recipe works is decided there and then, by re-compressing the stream read back from
//! the store and comparing with the original bytes; when no recipe reproduces them (a
//! bundle another gzip wrote), the compressed bytes themselves are stored (still chunked)
//! and the record says so. Better than the tar stream is its *see-through* form
//! ([`seethrough`]): each compressed member (a gzip layer, a `.json.gz` feed, a zip, a zstd
//! file) replaced by its plain form, with a recipe per member in the record, so roll-ups
//! whose members were compressed anew still share chunks; when that form does not give the
//! bundle back exactly, the plain tar is stored instead. When the channel's previous bundle
//! is close, the stream (see-through or tar) may instead be kept as a delta against that
//! bundle's stream ([`deltastore`], [`streamdelta`]), in chains of bounded depth.
//!
//! Invariants:
//! - Nothing is cataloged that export could not reproduce: a record is written only after
//!   its content, read back from the store, gave exactly the bundle's bytes (same SHA-256).
//!   Where the content is the tar itself, or a delta rebuilding it, the recipe was proven
//!   on that very tar (hashed as it was spooled) before anything was stored, and
//!   re-compression is deterministic; the check is then that the store gives back that tar
//!   (same SHA-256 and length, every chunk verified), and the bundle is compressed once.
//! - Catalog record and gc pins commit in one transaction ([`catalog::PIN_HOLDER`]).
//! - Adding a bundle already in the catalog writes nothing.
//! - A record is kept with the store's truth (`Store::put_record`: the bucket of an
//!   object-storage store) after its content committed and before the local catalog
//!   transaction, so `ouk store reindex` can rebuild the catalog from the bucket
//!   ([`reindex`]) and a cached record always names content the bucket holds.
//! - `export` writes every file under a temporary directory inside the output directory,
//!   checks each against its recorded SHA-256 and size, and only then renames them into
//!   place; on any failure it removes what it wrote and no output file appears.

pub mod catalog;
pub mod chain;
pub mod deltastore;
pub mod gzip;
pub mod reverify;
pub mod seethrough;
pub mod streamdelta;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ouk_root::Root;
use ouk_store::{FileDigest, StoreError, fsutil};
use redb::{ReadableDatabase, ReadableTable};
use serde::Serialize;

use crate::build::KitMetadata;
use crate::error::{IoContext, KitError, Result};
use crate::manifest::MANIFEST_PATH;
use crate::split::BundleInput;
use crate::verify::{self, Sidecars};

pub use catalog::{MirroredBundle, SidecarFile, StoredContent};
pub use deltastore::{AddPolicy, ChainFailure, RemoveReport, remove, verify_chains};
pub use gzip::{Deflate, GzipRecipe};
pub use seethrough::MemberRecipe;

/// Largest sidecar file the mirror keeps (manifests are the big ones).
const MAX_SIDECAR_BYTES: u64 = 64 << 20;

fn index_err(e: impl Into<redb::Error>) -> KitError {
    KitError::Store(StoreError::from_index(e))
}

fn damaged_record(digest: &[u8; 32], e: catalog::CatalogError) -> KitError {
    KitError::Store(StoreError::Record {
        what: format!("mirror bundle {}", hex::encode(digest)),
        message: e.to_string(),
    })
}

/// A mirrored bundle as listed (`mirror list`, and in the other reports).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleListing {
    /// File name.
    pub name: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Bundle SHA-256.
    pub sha256: FileDigest,
    /// Bundle bytes.
    pub size: u64,
    /// `tar` (re-compressed on export) or `compressed` (the bytes themselves).
    pub stored_as: &'static str,
    /// The recipe, for `tar`.
    pub recipe: Option<String>,
    /// SHA-256 of the stored stream (its store file), for `tar`: the uncompressed tar, or
    /// its see-through form when `see_through` is set.
    pub tar_sha256: Option<FileDigest>,
    /// Bytes of the stored stream, for `tar`.
    pub tar_size: Option<u64>,
    /// The compressed members stored as their plain forms, when any were.
    pub see_through: Option<SeeThroughListing>,
    /// For `delta`: SHA-256 of the bundle whose stream it is a delta against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_base: Option<FileDigest>,
    /// For `delta`: bytes of the stored delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_size: Option<u64>,
    /// Sidecar paths.
    pub sidecars: Vec<String>,
    /// Key id that verified it when added.
    pub signed_by: Option<String>,
    /// When added, seconds since the epoch (RFC 3339 in JSON).
    #[serde(serialize_with = "crate::provenance::time::serialize_unix_as_rfc3339")]
    pub added_at: i64,
}

/// The members of a bundle stored see-through ([`seethrough`]).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeeThroughListing {
    /// Compressed members stored as their plain forms.
    pub members: u64,
    /// Their plain bytes (what the store keeps).
    pub plain_bytes: u64,
    /// Their original (compressed) bytes (what export gives back).
    pub original_bytes: u64,
}

impl SeeThroughListing {
    fn of(members: &[MemberRecipe]) -> Self {
        SeeThroughListing {
            members: members.len() as u64,
            plain_bytes: members.iter().map(|m| m.plain_len).sum(),
            original_bytes: members.iter().map(|m| m.original_len).sum(),
        }
    }
}

impl From<&MirroredBundle> for BundleListing {
    fn from(b: &MirroredBundle) -> Self {
        let (recipe, tar_sha256, tar_size, see_through) = match b.stream() {
            Some(StoredContent::Tar {
                sha256,
                size,
                recipe,
            }) => (
                Some(recipe.deflate.to_string()),
                Some(*sha256),
                Some(*size),
                None,
            ),
            Some(StoredContent::SeeThrough {
                sha256,
                size,
                recipe,
                members,
            }) => (
                Some(recipe.deflate.to_string()),
                Some(*sha256),
                Some(*size),
                Some(SeeThroughListing::of(members)),
            ),
            _ => (None, None, None, None),
        };
        let delta_size = match &b.content {
            StoredContent::Delta { patch_size, .. } => Some(*patch_size),
            _ => None,
        };
        BundleListing {
            name: b.name.clone(),
            kind: b.kind.clone(),
            version: b.version.clone(),
            channel: b.channel.clone(),
            sha256: b.sha256,
            size: b.size,
            stored_as: b.stored_as(),
            recipe,
            tar_sha256,
            tar_size,
            see_through,
            delta_base: b.delta_base(),
            delta_size,
            sidecars: b.sidecars.iter().map(|s| s.path.clone()).collect(),
            signed_by: b.signed_by.clone(),
            added_at: b.added_at,
        }
    }
}

/// What `add` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddReport {
    /// `added` or `already-mirrored` (nothing written).
    pub outcome: &'static str,
    /// The bundle.
    pub bundle: BundleListing,
    /// Bytes appended to packs by this add.
    pub new_stored_bytes: u64,
    /// Files checked against the manifest (kits with a manifest).
    pub files_checked: Option<u64>,
    /// Recipes tried that did not reproduce the bundle, with where they differed.
    pub rejected_recipes: Vec<String>,
}

/// All catalog records, sorted by channel, then add time, then name.
pub fn list(root: &Root) -> Result<Vec<MirroredBundle>> {
    let txn = root.store().database().begin_read().map_err(index_err)?;
    let table = match txn.open_table(catalog::BUNDLES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(index_err(e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(index_err)? {
        let (k, v) = row.map_err(index_err)?;
        let key = *k.value();
        let record = MirroredBundle::decode(v.value()).map_err(|e| damaged_record(&key, e))?;
        if record.sha256.as_bytes() != &key {
            return Err(damaged_record(
                &key,
                catalog::CatalogError::Invalid("record is filed under another digest".into()),
            ));
        }
        out.push(record);
    }
    out.sort_by(|a, b| (&a.channel, a.added_at, &a.name).cmp(&(&b.channel, b.added_at, &b.name)));
    Ok(out)
}

fn lookup(root: &Root, sha: &FileDigest) -> Result<Option<MirroredBundle>> {
    let txn = root.store().database().begin_read().map_err(index_err)?;
    let table = match txn.open_table(catalog::BUNDLES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(index_err(e)),
    };
    match table.get(sha.as_bytes()).map_err(index_err)? {
        None => Ok(None),
        Some(v) => MirroredBundle::decode(v.value())
            .map(Some)
            .map_err(|e| damaged_record(sha.as_bytes(), e)),
    }
}

fn read_metadata(path: &Path) -> Result<KitMetadata> {
    let len = fs::metadata(path)
        .ctx(|| format!("stat {}", path.display()))?
        .len();
    if len > 1 << 20 {
        return Err(KitError::Validation(format!(
            "{}: larger than 1 MiB",
            path.display()
        )));
    }
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| KitError::Validation(format!("{}: {e}", path.display())))
}

/// The sidecars of `bundle` worth keeping: `(relative path, file)`.
fn sidecar_files(bundle: &Path, name: &str, sidecars: &Sidecars) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (ext, found) in [
        ("sha256", &sidecars.sha256),
        ("sig", &sidecars.signature),
        ("metadata.json", &sidecars.metadata),
    ] {
        if let Some(p) = found {
            out.push((format!("{name}.{ext}"), p.clone()));
        }
    }
    // The signature set and the carried trust chain (issue 25), kept and given back so a
    // kit exported or served by the mirror still brings its rotations and countersignatures.
    for ext in ["sigs.json", "trust.json"] {
        let p = PathBuf::from(format!("{}.{ext}", bundle.display()));
        if p.is_file() {
            out.push((format!("{name}.{ext}"), p));
        }
    }
    // The manifest and its companions only when discovery decided it is this bundle's:
    // its own copy beside it (`<name>.manifest.json`, with its JWS), and the seed's shared
    // `manifest/` files when they hold the same manifest (the last kit built there).
    if let Some(manifest) = &sidecars.manifest {
        let dir = bundle.parent().unwrap_or(Path::new("."));
        let own = crate::build::own_manifest_name(name);
        let shared = dir.join(MANIFEST_PATH);
        let shared_is_this = if manifest == &dir.join(&own) {
            out.push((own.clone(), manifest.clone()));
            let jws = dir.join(format!("{own}.jws"));
            if jws.is_file() {
                out.push((format!("{own}.jws"), jws));
            }
            matches!((fs::read(manifest), fs::read(&shared)), (Ok(a), Ok(b)) if a == b)
        } else {
            manifest == &shared
        };
        if shared_is_this {
            out.push((MANIFEST_PATH.to_string(), shared.clone()));
            for ext in ["sha256", "sig", "jws"] {
                let p = dir.join(format!("{MANIFEST_PATH}.{ext}"));
                if p.is_file() {
                    out.push((format!("{MANIFEST_PATH}.{ext}"), p));
                }
            }
        }
    }
    out
}

/// Try `recipe` on the tar stream `feed` writes: re-compress it and compare with `bundle`
/// byte for byte. `Ok(None)` when it reproduces `expected`, `Ok(Some(why))` when it does
/// not.
fn try_recipe(
    recipe: &GzipRecipe,
    bundle: &Path,
    expected: &FileDigest,
    threads: usize,
    feed: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<Option<String>> {
    let original = File::open(bundle).ctx(|| format!("open {}", bundle.display()))?;
    let mut sink = gzip::MatchingSink::new(BufReader::with_capacity(1 << 20, original));
    let ran = (|| -> Result<()> {
        let mut gz = recipe
            .compressor(&mut sink, threads)
            .ctx(|| "start the compressor".to_string())?;
        feed(&mut gz)?;
        gz.finish().ctx(|| "finish the gzip member".to_string())?;
        Ok(())
    })();
    if let Some(at) = sink.diverged_at() {
        return Ok(Some(format!("{}: differs from byte {at}", recipe.deflate)));
    }
    ran?;
    match sink.finish().ctx(|| format!("read {}", bundle.display()))? {
        Err(at) => Ok(Some(format!(
            "{}: the bundle goes on past byte {at}",
            recipe.deflate
        ))),
        Ok((digest, _)) if digest != *expected.as_bytes() => Err(KitError::DigestMismatch {
            what: format!("{} changed while it was being mirrored", bundle.display()),
            expected: expected.to_hex(),
            actual: hex::encode(digest),
        }),
        Ok(_) => {
            #[cfg(test)]
            streamdelta::probe::bundle_recompressed();
            Ok(None)
        }
    }
}

/// Write the tar stream of `content` (read from the store; see-through members rebuilt,
/// their scratch files in `scratch_dir`) to `out`.
fn write_tar(
    root: &Root,
    content: &StoredContent,
    scratch_dir: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let store = root.store();
    match content {
        StoredContent::Delta { target, .. } => {
            // The chain rebuilds the stream in one pass (checked against its SHA-256 at
            // the end; the caller checks what it writes before using it); the target's
            // members then turn it into the tar as for chunks.
            match &**target {
                StoredContent::SeeThrough { members, .. } => {
                    let mut rebuilder = seethrough::Rebuilder::new(out, members, scratch_dir);
                    chain::rebuild(root, content, scratch_dir, &mut rebuilder)?;
                    rebuilder
                        .finish()
                        .ctx(|| "rebuild a stream's compressed members".to_string())?;
                }
                _ => {
                    chain::rebuild(root, content, scratch_dir, out)?;
                }
            }
        }
        StoredContent::Tar { sha256, .. } => {
            store.read_file(sha256, out)?;
        }
        StoredContent::SeeThrough {
            sha256, members, ..
        } => {
            let mut rebuilder = seethrough::Rebuilder::new(out, members, scratch_dir);
            store.read_file(sha256, &mut rebuilder)?;
            rebuilder
                .finish()
                .ctx(|| format!("rebuild the compressed members of sha256:{sha256}"))?;
        }
        StoredContent::Compressed => {
            return Err(KitError::Validation(
                "a bundle kept as its compressed bytes has no tar stream".into(),
            ));
        }
    }
    Ok(())
}

/// What a delta attempt in `add` needs besides the stream.
struct DeltaAttempt<'a> {
    root: &'a Root,
    policy: &'a AddPolicy,
    kind: &'a str,
    channel: &'a str,
    put_sidecars: &'a dyn Fn(&mut ouk_store::StoreWriter<'_>) -> Result<Vec<SidecarFile>>,
    staging: &'a Path,
    copy: &'a Path,
    sha: &'a FileDigest,
    threads: usize,
    /// SHA-256 and length of the tar the chosen recipe re-compressed into the bundle.
    proven_tar: (FileDigest, u64),
}

/// Store `stream` as a delta ([`deltastore`]) when that pays, and keep it only when the
/// whole bundle comes back from the store through it; `None` leaves the chunk forms to try.
fn try_delta(
    a: &DeltaAttempt<'_>,
    stream: &mut dyn Read,
    target: deltastore::Target,
    rejected: &mut Vec<String>,
    new_stored_bytes: &mut u64,
) -> Result<Option<(StoredContent, Vec<SidecarFile>)>> {
    let recipe = match &target {
        deltastore::Target::Tar(r) | deltastore::Target::SeeThrough(r, _) => r.clone(),
    };
    let Some(d) = deltastore::store_as_delta(
        a.root,
        a.policy,
        a.kind,
        a.channel,
        stream,
        target,
        a.put_sidecars,
        a.staging,
    )?
    else {
        return Ok(None);
    };
    *new_stored_bytes += d.new_stored_bytes;
    let feed = &mut |w: &mut dyn Write| write_tar(a.root, &d.content, a.staging, w);
    let t = std::time::Instant::now();
    let rebuilds_the_proven_tar = matches!(
        &d.content,
        StoredContent::Delta { target, .. }
            if matches!(**target, StoredContent::Tar { sha256, size, .. }
                if (sha256, size) == a.proven_tar)
    );
    let reproduced = if rebuilds_the_proven_tar {
        // The delta rebuilds, from the store, the very tar (same SHA-256, checked by the
        // rebuild) the recipe already re-compressed into the bundle: compressing it
        // again would give the same bytes, so the rebuild is the check.
        chain::rebuild(a.root, &d.content, a.staging, &mut std::io::sink()).map(|_| None)
    } else {
        try_recipe(&recipe, a.copy, a.sha, a.threads, feed)
    };
    deltastore::phase_done("delta: reproduce the bundle from the store", t);
    match reproduced {
        Ok(None) => Ok(Some((d.content, d.sidecars))),
        Ok(Some(why)) => {
            rejected.push(format!("delta: {why}"));
            Ok(None)
        }
        Err(e @ KitError::DigestMismatch { .. }) => Err(e),
        Err(e) => {
            rejected.push(format!("delta: {e}"));
            Ok(None)
        }
    }
}

/// `mirror add`: verify `bundle` and keep it; see the module doc. With no trusted key the
/// bundle is refused (exit 5) unless `allow_unsigned`: a mirror serves what it keeps on to
/// other hosts, so it must not take in bundles nobody vouched for by default.
pub fn add(root: &Root, bundle: &Path, threads: usize, allow_unsigned: bool) -> Result<AddReport> {
    add_with(root, bundle, threads, allow_unsigned, &AddPolicy::default())
}

/// What `add` established about a bundle before it stores anything.
struct VerifiedBundle {
    sha: FileDigest,
    size: u64,
    signed_by: Option<String>,
    files_checked: Option<u64>,
}

/// Content and sidecar records of a stored form that gave the bundle back.
type StoredForm = (StoredContent, Vec<SidecarFile>);

/// What the forms tried so far left behind: the ones refused (with why) and the bytes
/// they appended to packs (kept: an unchosen form's chunks go at the next gc).
#[derive(Default)]
struct Attempts {
    rejected: Vec<String>,
    new_stored_bytes: u64,
}

/// What every stored form tried in `add` shares.
struct AddContext<'a> {
    root: &'a Root,
    policy: &'a AddPolicy,
    kind: &'a str,
    channel: &'a str,
    /// Stores the bundle's sidecars in the writer of the form being stored.
    put_sidecars: &'a dyn Fn(&mut ouk_store::StoreWriter<'_>) -> Result<Vec<SidecarFile>>,
    /// The input as named: in messages only.
    bundle: &'a Path,
    /// The private copy every pass reads.
    copy: &'a Path,
    sha: &'a FileDigest,
    threads: usize,
}

/// The bundle's tar stream in an unnamed scratch file, hashed as it was spooled.
struct ScratchTar {
    file: File,
    len: u64,
    sha: FileDigest,
}

/// [`add`] with how the bundle may be stored ([`AddPolicy`]: delta chains).
pub fn add_with(
    root: &Root,
    bundle: &Path,
    threads: usize,
    allow_unsigned: bool,
    policy: &AddPolicy,
) -> Result<AddReport> {
    if !bundle.is_file() {
        return Err(KitError::NotFound(bundle.to_path_buf()));
    }
    let started = std::time::Instant::now();
    let name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| catalog::is_plain_file_name(n))
        .ok_or_else(|| {
            KitError::Validation(format!("{}: not a usable file name", bundle.display()))
        })?
        .to_string();
    let sidecars = Sidecars::discover(bundle, Sidecars::default());
    // Read once: every pass below (verification, the tar stream, the recipes, the
    // fallback) reads this private copy, whose digest is what the signature is checked
    // against; `bundle` names the input in messages only.
    let input = BundleInput::File(bundle.to_path_buf()).read_once(&root.staging_dir())?;
    let copy = input.private_path().unwrap_or(bundle);
    let metadata = sidecars
        .metadata
        .as_deref()
        .map(read_metadata)
        .transpose()?;
    let kind = metadata
        .as_ref()
        .map_or("kit", |m| m.kind.as_str())
        .to_string();
    if !catalog::KINDS.contains(&kind.as_str()) {
        return Err(KitError::Validation(format!(
            "{name}: kind {kind:?} is not kit or delta"
        )));
    }
    let t = deltastore::phase_done("take a private copy", started);
    let verified = verify_bundle(root, &input, &sidecars, &kind, &name, allow_unsigned)?;
    let t = deltastore::phase_done("verify", t);
    if let Some(existing) = lookup(root, &verified.sha)? {
        return Ok(AddReport {
            outcome: "already-mirrored",
            bundle: BundleListing::from(&existing),
            new_stored_bytes: 0,
            files_checked: verified.files_checked,
            rejected_recipes: Vec::new(),
        });
    }
    let (version, channel) = match &metadata {
        Some(m) => (m.version.clone(), m.channel.clone()),
        None => {
            let (m, _) = verify::manifest_from_input(&input)?;
            (m.version, m.channel)
        }
    };
    let extra = sidecars_to_keep(bundle, &name, &sidecars)?;
    let put_sidecars = |w: &mut ouk_store::StoreWriter<'_>| -> Result<Vec<SidecarFile>> {
        let mut out = Vec::new();
        for (rel, path) in &extra {
            let put = w.put_file(path, &mut |_| {})?;
            out.push(SidecarFile {
                path: rel.clone(),
                sha256: put.digest,
                size: put.size,
            });
        }
        Ok(out)
    };
    let ctx = AddContext {
        root,
        policy,
        kind: &kind,
        channel: &channel,
        put_sidecars: &put_sidecars,
        bundle,
        copy,
        sha: &verified.sha,
        threads,
    };
    let mut attempts = Attempts::default();
    // First choice: the tar stream plus a recipe that reproduces the bundle (see-through,
    // tar, or a delta of either); else the compressed bytes themselves (the tar stored
    // by a refused form, if any, is pinned by nothing and goes at the next gc).
    let (content, sidecar_records) = match store_decoded_forms(&ctx, &mut attempts, t)? {
        Some(found) => found,
        None => store_compressed(&ctx, &name, verified.size, &mut attempts)?,
    };
    let record = MirroredBundle {
        name,
        kind,
        version,
        channel,
        sha256: verified.sha,
        size: verified.size,
        added_at: ouk_root::now_unix(),
        signed_by: verified.signed_by,
        content,
        sidecars: sidecar_records,
    };
    catalog_record(root, &record)?;
    Ok(AddReport {
        outcome: "added",
        bundle: BundleListing::from(&record),
        new_stored_bytes: attempts.new_stored_bytes,
        files_checked: verified.files_checked,
        rejected_recipes: attempts.rejected,
    })
}

/// What `ouk kit verify` checks, with the root's trust store as the keys: a kit against
/// its manifest too, a delta (which carries no offline manifest) by digest and signature.
fn verify_bundle(
    root: &Root,
    input: &BundleInput,
    sidecars: &Sidecars,
    kind: &str,
    name: &str,
    allow_unsigned: bool,
) -> Result<VerifiedBundle> {
    let keys = crate::import::trusted_keys(root.dir(), &[])?;
    if kind == "kit" {
        let report = verify::verify_input(input, Sidecars::default(), &keys, allow_unsigned)?;
        let sha: FileDigest = report.sha256.parse().map_err(|_| {
            KitError::Validation(format!("{name}: digest {:?} does not parse", report.sha256))
        })?;
        Ok(VerifiedBundle {
            sha,
            size: report.size,
            signed_by: report.signature_kid,
            files_checked: report.files_checked,
        })
    } else {
        let (sha, size, _) = verify::check_input_digest(input, sidecars)?;
        verify::require_keys(&keys, allow_unsigned)?;
        let kid = verify::check_signature(&sha, sidecars, &keys)?;
        Ok(VerifiedBundle {
            sha: FileDigest(sha),
            size,
            signed_by: kid,
            files_checked: None,
        })
    }
}

/// The sidecars of `bundle` the mirror keeps, each refused above [`MAX_SIDECAR_BYTES`].
fn sidecars_to_keep(
    bundle: &Path,
    name: &str,
    sidecars: &Sidecars,
) -> Result<Vec<(String, PathBuf)>> {
    let extra = sidecar_files(bundle, name, sidecars);
    for (rel, path) in &extra {
        let len = fs::metadata(path)
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        if len > MAX_SIDECAR_BYTES {
            return Err(KitError::Validation(format!(
                "{rel}: larger than {MAX_SIDECAR_BYTES} bytes"
            )));
        }
    }
    Ok(extra)
}

/// An unnamed scratch file in `staging`.
fn scratch_file(staging: &Path) -> Result<File> {
    Ok(tempfile::tempfile_in(staging)
        .ctx(|| format!("create a scratch file in {}", staging.display()))?)
}

/// The forms built on the decoded tar stream: decode it, find the recipe that
/// re-compresses it into the bundle, then store the first form that gives the bundle back
/// ([`store_tar_forms`]). `None` when the bundle is no gzip stream a recipe reproduces.
fn store_decoded_forms(
    ctx: &AddContext<'_>,
    attempts: &mut Attempts,
    t: std::time::Instant,
) -> Result<Option<StoredForm>> {
    let mut head = Vec::new();
    File::open(ctx.copy)
        .ctx(|| format!("open {}", ctx.copy.display()))?
        .take(gzip::MAX_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .ctx(|| format!("read {}", ctx.bundle.display()))?;
    let len = match gzip::header_len(&head) {
        Err(e) => {
            attempts.rejected.push(e.to_string());
            return Ok(None);
        }
        Ok(len) => len,
    };
    // The tar stream goes to an unnamed scratch file first: the recipes are tried on it
    // and the see-through walk reads it before anything is stored.
    let staging = ctx.root.staging_dir();
    fs::create_dir_all(&staging).ctx(|| format!("create {}", staging.display()))?;
    let decoded = decode_to_scratch(ctx, &staging, attempts);
    let t = deltastore::phase_done("decode the gzip stream", t);
    let Some(tar) = decoded? else {
        return Ok(None);
    };
    let recipe = find_recipe(ctx, &head[..len], &tar, attempts)?;
    let t = deltastore::phase_done("find the gzip recipe", t);
    match recipe {
        Some(recipe) => store_tar_forms(ctx, &staging, &tar, &recipe, attempts, t),
        None => Ok(None),
    }
}

/// Decode the bundle's gzip stream into a scratch file, hashing it as it is spooled (the
/// recipe found next is proven on exactly these bytes, and a stored form that gives them
/// back needs no second compression). `None` when flate2 does not decode it whole.
fn decode_to_scratch(
    ctx: &AddContext<'_>,
    staging: &Path,
    attempts: &mut Attempts,
) -> Result<Option<ScratchTar>> {
    let tar_file = scratch_file(staging)?;
    let file = File::open(ctx.copy).ctx(|| format!("open {}", ctx.copy.display()))?;
    let mut gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, file));
    let mut spool = fsutil::HashingWriter::new(BufWriter::with_capacity(1 << 20, &tar_file));
    let decoded = std::io::copy(&mut gz, &mut spool).and_then(|n| spool.flush().map(|()| n));
    let (tar_sha, _, spool) = spool.finish();
    drop(spool);
    match decoded {
        // Not a gzip stream flate2 decodes whole: keep the bytes.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            ) =>
        {
            attempts
                .rejected
                .push(format!("the gzip stream does not decode: {e}"));
            Ok(None)
        }
        Err(e) => Err(KitError::Io {
            context: format!("decode {} into a scratch file", ctx.bundle.display()),
            source: e,
        }),
        Ok(len) => Ok(Some(ScratchTar {
            file: tar_file,
            len,
            sha: FileDigest(tar_sha),
        })),
    }
}

/// The first candidate recipe for the gzip header `header` that re-compresses `tar` into
/// the bundle byte for byte; each one that does not is recorded as rejected.
fn find_recipe(
    ctx: &AddContext<'_>,
    header: &[u8],
    tar: &ScratchTar,
    attempts: &mut Attempts,
) -> Result<Option<GzipRecipe>> {
    for recipe in GzipRecipe::candidates(header) {
        let feed = &mut |w: &mut dyn Write| -> Result<()> {
            std::io::copy(&mut seethrough::file_range(&tar.file, 0, tar.len), w)
                .ctx(|| "read the scratch tar".to_string())?;
            Ok(())
        };
        match try_recipe(&recipe, ctx.copy, ctx.sha, ctx.threads, feed)? {
            None => return Ok(Some(recipe)),
            Some(why) => attempts.rejected.push(why),
        }
    }
    Ok(None)
}

/// With a recipe proven on the tar, the stored forms in order of preference: the
/// see-through stream as a delta, then as chunks (when the tar has members to see
/// through); else the tar as a delta; then the tar as chunks. The first that gives the
/// bundle back from the store wins.
fn store_tar_forms(
    ctx: &AddContext<'_>,
    staging: &Path,
    tar: &ScratchTar,
    recipe: &GzipRecipe,
    attempts: &mut Attempts,
    t: std::time::Instant,
) -> Result<Option<StoredForm>> {
    // One attempt description for both delta forms tried below.
    let attempt = DeltaAttempt {
        root: ctx.root,
        policy: ctx.policy,
        kind: ctx.kind,
        channel: ctx.channel,
        put_sidecars: ctx.put_sidecars,
        staging,
        copy: ctx.copy,
        sha: ctx.sha,
        threads: ctx.threads,
        proven_tar: (tar.sha, tar.len),
    };
    let mut found = None;
    let members_file = scratch_file(staging)?;
    let plan = seethrough::plan(&tar.file, tar.len, &members_file).ctx(|| {
        format!(
            "see through the compressed members of {}",
            ctx.bundle.display()
        )
    })?;
    let t = deltastore::phase_done("see through the members", t);
    if !plan.is_empty() {
        let (mut stream, members, _) =
            seethrough::Stream::new(&tar.file, tar.len, &members_file, &plan);
        found = try_delta(
            &attempt,
            &mut stream,
            deltastore::Target::SeeThrough(recipe.clone(), members),
            &mut attempts.rejected,
            &mut attempts.new_stored_bytes,
        )?;
    }
    if !plan.is_empty() && found.is_none() {
        found =
            store_see_through_chunks(ctx, staging, tar, &members_file, &plan, recipe, attempts)?;
    }
    drop(members_file);
    deltastore::phase_done("store the see-through stream or its delta", t);
    if found.is_none() && plan.is_empty() {
        found = try_delta(
            &attempt,
            &mut seethrough::file_range(&tar.file, 0, tar.len),
            deltastore::Target::Tar(recipe.clone()),
            &mut attempts.rejected,
            &mut attempts.new_stored_bytes,
        )?;
    }
    if found.is_none() {
        found = store_tar_chunks(ctx, staging, tar, recipe, attempts)?;
    }
    Ok(found)
}

/// Store the see-through stream as chunks and keep it only when the record's members
/// validate and the whole bundle comes back from the store through them.
fn store_see_through_chunks(
    ctx: &AddContext<'_>,
    staging: &Path,
    tar: &ScratchTar,
    members_file: &File,
    plan: &[seethrough::Planned],
    recipe: &GzipRecipe,
    attempts: &mut Attempts,
) -> Result<Option<StoredForm>> {
    let (stream, members, _) = seethrough::Stream::new(&tar.file, tar.len, members_file, plan);
    let mut w = ctx.root.store().writer()?;
    let files = (ctx.put_sidecars)(&mut w)?;
    let put = w.put_reader(stream, &mut |_| {})?;
    attempts.new_stored_bytes += w.commit()?.new_stored_bytes;
    // What the record will be checked against when decoded, then the whole bundle
    // reproduced from the store, before it is chosen.
    let checked = seethrough::validate_members(&members, put.size);
    let content = StoredContent::SeeThrough {
        sha256: put.digest,
        size: put.size,
        recipe: recipe.clone(),
        members,
    };
    if let Err(why) = checked {
        attempts.rejected.push(format!("see-through: {why}"));
        return Ok(None);
    }
    let feed = &mut |w: &mut dyn Write| write_tar(ctx.root, &content, staging, w);
    // A member that does not rebuild is a rejected form (the plain tar is tried next),
    // not a failed add.
    match try_recipe(recipe, ctx.copy, ctx.sha, ctx.threads, feed) {
        Ok(None) => Ok(Some((content, files))),
        Ok(Some(why)) => {
            attempts.rejected.push(format!("see-through: {why}"));
            Ok(None)
        }
        Err(e @ KitError::DigestMismatch { .. }) => Err(e),
        Err(e) => {
            attempts.rejected.push(format!("see-through: {e}"));
            Ok(None)
        }
    }
}

/// Store the tar itself as chunks and keep it only when the bundle comes back from it.
fn store_tar_chunks(
    ctx: &AddContext<'_>,
    staging: &Path,
    tar: &ScratchTar,
    recipe: &GzipRecipe,
    attempts: &mut Attempts,
) -> Result<Option<StoredForm>> {
    let store = ctx.root.store();
    let mut w = store.writer()?;
    let files = (ctx.put_sidecars)(&mut w)?;
    let put = w.put_reader(seethrough::file_range(&tar.file, 0, tar.len), &mut |_| {})?;
    attempts.new_stored_bytes += w.commit()?.new_stored_bytes;
    let content = StoredContent::Tar {
        sha256: put.digest,
        size: put.size,
        recipe: recipe.clone(),
    };
    let reproduced = if (put.digest, put.size) == (tar.sha, tar.len) {
        // The store holds the very tar the recipe re-compressed into the bundle (same
        // SHA-256): read it back through the store's verified path (every chunk and the
        // whole checked) instead of compressing it a second time.
        store.read_file(&put.digest, &mut std::io::sink())?;
        None
    } else {
        let feed = &mut |w: &mut dyn Write| write_tar(ctx.root, &content, staging, w);
        try_recipe(recipe, ctx.copy, ctx.sha, ctx.threads, feed)?
    };
    match reproduced {
        None => Ok(Some((content, files))),
        Some(why) => {
            attempts.rejected.push(why);
            Ok(None)
        }
    }
}

/// The fallback form: the bundle's compressed bytes themselves (still chunked), read back
/// through the store's verified path before they are cataloged.
fn store_compressed(
    ctx: &AddContext<'_>,
    name: &str,
    size: u64,
    attempts: &mut Attempts,
) -> Result<StoredForm> {
    let store = ctx.root.store();
    let mut w = store.writer()?;
    let files = (ctx.put_sidecars)(&mut w)?;
    let put = w.put_file(ctx.copy, &mut |_| {})?;
    attempts.new_stored_bytes += w.commit()?.new_stored_bytes;
    if put.digest != *ctx.sha {
        return Err(KitError::DigestMismatch {
            what: format!(
                "{} changed while it was being mirrored",
                ctx.bundle.display()
            ),
            expected: ctx.sha.to_hex(),
            actual: put.digest.to_hex(),
        });
    }
    // Read back through the store's verified path before cataloging it.
    let mut sink = fsutil::HashingWriter::new(std::io::sink());
    store.read_file(&put.digest, &mut sink)?;
    let (digest, len, _) = sink.finish();
    if digest != *ctx.sha.as_bytes() || len != size {
        return Err(KitError::DigestMismatch {
            what: format!("{name} read back from the store"),
            expected: ctx.sha.to_hex(),
            actual: hex::encode(digest),
        });
    }
    Ok((StoredContent::Compressed, files))
}

/// Catalog `record`: validated, kept with the store's truth, then its catalog row and gc
/// pins in one transaction.
fn catalog_record(root: &Root, record: &MirroredBundle) -> Result<()> {
    record
        .validate()
        .map_err(|e| KitError::Validation(format!("{}: {e}", record.name)))?;
    let store = root.store();
    let sha = &record.sha256;
    // Where the store's truth is (the bucket of an object-storage store; nothing to do
    // for a local one) before the local catalog: a cached record is always in the truth.
    // A record there already (another mirror added the bundle first) stays as it is.
    store.put_record(catalog::PIN_HOLDER, sha.as_bytes(), &record.encode())?;
    let txn = store.database().begin_write().map_err(index_err)?;
    {
        let mut table = txn.open_table(catalog::BUNDLES).map_err(index_err)?;
        table
            .insert(sha.as_bytes(), record.encode().as_slice())
            .map_err(index_err)?;
    }
    for digest in record.store_files() {
        ouk_store::pins::pin(&txn, catalog::PIN_HOLDER, &digest)?;
    }
    txn.commit().map_err(index_err)?;
    Ok(())
}

/// What [`reindex`] rebuilt.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexReport {
    /// Catalog records restored.
    pub bundles: u64,
    /// Records left out, with why (damaged, or naming a store file the store lacks).
    pub refused: Vec<String>,
}

/// Rebuild the catalog (and its pins) from the records kept with the store's truth, after
/// `Store::reindex` rebuilt the store's own tables. Only records whose every store file is
/// in the rebuilt index are restored.
pub fn reindex(root: &Root) -> Result<ReindexReport> {
    let store = root.store();
    let mut report = ReindexReport::default();
    let mut records = Vec::new();
    for (key, bytes) in store.records(catalog::PIN_HOLDER)? {
        let record = match MirroredBundle::decode(&bytes) {
            Ok(r) if r.sha256.as_bytes() == &key => r,
            Ok(_) => {
                report
                    .refused
                    .push(format!("{}: filed under another digest", hex::encode(key)));
                continue;
            }
            Err(e) => {
                report.refused.push(format!("{}: {e}", hex::encode(key)));
                continue;
            }
        };
        let mut missing = None;
        for f in record.store_files() {
            if store.file_record(&f)?.is_none() {
                missing = Some(f);
                break;
            }
        }
        match missing {
            Some(f) => report.refused.push(format!(
                "{}: store file sha256:{f} is not in the store",
                record.name
            )),
            None => records.push(record),
        }
    }
    let txn = store.database().begin_write().map_err(index_err)?;
    txn.delete_table(catalog::BUNDLES).map_err(index_err)?;
    ouk_store::pins::unpin_all(&txn, catalog::PIN_HOLDER)?;
    {
        let mut table = txn.open_table(catalog::BUNDLES).map_err(index_err)?;
        for record in &records {
            table
                .insert(record.sha256.as_bytes(), record.encode().as_slice())
                .map_err(index_err)?;
        }
    }
    for record in &records {
        for digest in record.store_files() {
            ouk_store::pins::pin(&txn, catalog::PIN_HOLDER, &digest)?;
        }
    }
    txn.commit().map_err(index_err)?;
    report.bundles = records.len() as u64;
    Ok(report)
}

/// Which mirrored bundle `export` means.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// A version, a bundle file name, or a SHA-256 prefix (at least 8 hex digits).
    pub what: String,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this kind (`kit`, `delta`).
    pub kind: Option<String>,
}

/// The one catalog record `selector` names.
pub fn select(root: &Root, selector: &Selector) -> Result<MirroredBundle> {
    let what = selector.what.as_str();
    let is_digest_prefix =
        what.len() >= 8 && what.len() <= 64 && what.bytes().all(|b| b.is_ascii_hexdigit());
    let mut hits: Vec<MirroredBundle> = list(root)?
        .into_iter()
        .filter(|b| {
            (b.version == what
                || b.name == what
                || (is_digest_prefix && b.sha256.to_hex().starts_with(&what.to_ascii_lowercase())))
                && selector.channel.as_ref().is_none_or(|c| &b.channel == c)
                && selector.kind.as_ref().is_none_or(|k| &b.kind == k)
        })
        .collect();
    match hits.len() {
        0 => Err(KitError::Usage(format!(
            "no mirrored bundle matches {what:?} (see `ouk mirror list`)"
        ))),
        1 => Ok(hits.remove(0)),
        _ => Err(KitError::AmbiguousBundle {
            what: what.to_string(),
            names: hits.into_iter().map(|b| b.name).collect(),
        }),
    }
}

/// What `export` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// The bundle exported.
    pub bundle: BundleListing,
    /// The bundle file written.
    pub path: PathBuf,
    /// Every file written, relative to the output directory (bundle last).
    pub files: Vec<String>,
}

/// Write one store-produced file at `path`, checking its SHA-256 and length.
fn write_checked(
    path: &Path,
    expected: &FileDigest,
    size: u64,
    what: &str,
    produce: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    let file = File::create(path).ctx(|| format!("create {}", path.display()))?;
    let mut out = fsutil::HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    produce(&mut out)?;
    let (digest, len, buffered) = out.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("write {}", path.display()))?;
    if digest != *expected.as_bytes() || len != size {
        return Err(KitError::DigestMismatch {
            what: format!("{what} as re-created from the mirror ({len} bytes)"),
            expected: expected.to_hex(),
            actual: hex::encode(digest),
        });
    }
    file.sync_all()
        .ctx(|| format!("fsync {}", path.display()))
        .map_err(Into::into)
}

/// `mirror export`: re-create the selected bundle and its sidecars in `output_dir`; see the
/// module doc.
pub fn export(
    root: &Root,
    selector: &Selector,
    output_dir: &Path,
    threads: usize,
) -> Result<ExportReport> {
    let record = select(root, selector)?;
    let store = root.store();
    fs::create_dir_all(output_dir).ctx(|| format!("create {}", output_dir.display()))?;
    // A fresh directory under a random name (never one planted there); it and whatever
    // is left in it are removed when `tmp` drops, on success or error.
    let tmp = fsutil::temp_dir_in(output_dir, ".tmp-mirror-export-")?;
    let tmp_path = tmp.path().to_path_buf();
    for s in &record.sidecars {
        write_checked(&tmp_path.join(&s.path), &s.sha256, s.size, &s.path, |out| {
            store.read_file(&s.sha256, out)?;
            Ok(())
        })?;
    }
    write_checked(
        &tmp_path.join(&record.name),
        &record.sha256,
        record.size,
        &record.name,
        |out| {
            match record.gzip_recipe() {
                None => {
                    store.read_file(&record.sha256, out)?;
                }
                Some(recipe) => {
                    let mut gz = recipe
                        .compressor(out, threads)
                        .ctx(|| "start the compressor".to_string())?;
                    // Scratch files of see-through members (and of a delta chain's
                    // streams) go in the export's own temporary directory, removed with it.
                    write_tar(root, &record.content, &tmp_path, &mut gz)?;
                    gz.finish().ctx(|| "finish the gzip member".to_string())?;
                }
            }
            Ok(())
        },
    )?;
    // Everything verified: move into place, sidecars first, the bundle last.
    let mut files: Vec<String> = record.sidecars.iter().map(|s| s.path.clone()).collect();
    files.push(record.name.clone());
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for rel in &files {
        let to = output_dir.join(rel);
        let dir = to.parent().unwrap_or(output_dir).to_path_buf();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        fs::rename(tmp_path.join(rel), &to).ctx(|| format!("rename to {}", to.display()))?;
        dirs.insert(dir);
    }
    for dir in &dirs {
        fsutil::sync_dir(dir)?;
    }
    drop(tmp);
    Ok(ExportReport {
        bundle: BundleListing::from(&record),
        path: output_dir.join(&record.name),
        files,
    })
}

/// What [`publish`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// Bundles exported into the directory.
    pub exported: Vec<String>,
    /// Bundles already there with their recorded SHA-256 (left as they were).
    pub unchanged: Vec<String>,
}

/// Lay every mirrored bundle, with its sidecars, into `dir` (what `ouk serve --mirror`
/// publishes), oldest first per channel so the newest kit's manifest is the one left at
/// `manifest/`. A bundle already in `dir` with its recorded SHA-256 is not exported again.
pub fn publish(root: &Root, dir: &Path, threads: usize) -> Result<PublishReport> {
    let mut report = PublishReport::default();
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    for record in list(root)? {
        let path = dir.join(&record.name);
        if path.is_file() {
            let mut sink = fsutil::HashingWriter::new(std::io::sink());
            let mut file = File::open(&path).ctx(|| format!("open {}", path.display()))?;
            std::io::copy(&mut file, &mut sink).ctx(|| format!("read {}", path.display()))?;
            let (digest, len, _) = sink.finish();
            if digest == *record.sha256.as_bytes() && len == record.size {
                report.unchanged.push(record.name);
                continue;
            }
        }
        let selector = Selector {
            what: record.sha256.to_hex(),
            channel: None,
            kind: None,
        };
        export(root, &selector, dir, threads)?;
        report.exported.push(record.name);
    }
    Ok(report)
}

/// What `stats` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorStats {
    /// Bundles mirrored.
    pub bundles: u64,
    /// Of which kits.
    pub kits: u64,
    /// Of which deltas.
    pub deltas: u64,
    /// Stored as their tar stream (re-compressed on export).
    pub stored_as_tar: u64,
    /// Stored as their compressed bytes.
    pub stored_as_compressed: u64,
    /// Of those stored as tar, how many with compressed members seen through.
    pub stored_see_through: u64,
    /// Compressed members stored as their plain forms, over all bundles.
    pub see_through_members: u64,
    /// Their plain bytes.
    pub member_plain_bytes: u64,
    /// Their original (compressed) bytes.
    pub member_original_bytes: u64,
    /// Sum of the bundles' sizes.
    pub bundle_bytes: u64,
    /// Sum of the sidecars' sizes.
    pub sidecar_bytes: u64,
    /// Distinct chunks the mirrored files use.
    pub chunks: u64,
    /// Their raw bytes.
    pub unique_bytes: u64,
    /// Their frames' bytes in packs (what the mirror's content takes on disk).
    pub stored_bytes: u64,
    /// Every pack of the store plus its index file, on disk (generations' data included).
    pub store_disk_bytes: u64,
    /// `bundle_bytes / stored_bytes`.
    pub dedup_ratio: f64,
    /// Stored as a delta against another bundle's stream.
    pub stored_as_delta: u64,
    /// Deepest delta chain.
    pub max_chain_depth: u32,
    /// Per bundle, in list order: how it is stored and what it costs.
    pub per_bundle: Vec<BundleCost>,
}

/// How one bundle is stored and the bytes it costs (`mirror stats`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleCost {
    /// File name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Bundle bytes.
    pub size: u64,
    /// `tar` (chunks of its stream), `compressed` (chunks of its bytes) or `delta`.
    pub stored_as: &'static str,
    /// For `delta`: the bundle it is a delta against (file name).
    pub delta_base: Option<String>,
    /// Steps from a snapshot (0 for chunks).
    pub chain_depth: u32,
    /// Bytes in packs of the chunks this bundle's files use that no bundle listed before it
    /// uses (frames of its delta, or of its new chunks; sidecars included).
    pub cost_bytes: u64,
}

/// `mirror stats`.
pub fn stats(root: &Root) -> Result<MirrorStats> {
    let bundles = list(root)?;
    let store = root.store();
    let mut files: HashSet<FileDigest> = HashSet::new();
    let mut s = MirrorStats {
        bundles: bundles.len() as u64,
        kits: 0,
        deltas: 0,
        stored_as_tar: 0,
        stored_as_compressed: 0,
        stored_see_through: 0,
        see_through_members: 0,
        member_plain_bytes: 0,
        member_original_bytes: 0,
        bundle_bytes: 0,
        sidecar_bytes: 0,
        chunks: 0,
        unique_bytes: 0,
        stored_bytes: 0,
        store_disk_bytes: 0,
        dedup_ratio: 0.0,
        stored_as_delta: 0,
        max_chain_depth: 0,
        per_bundle: Vec::new(),
    };
    let names: std::collections::HashMap<FileDigest, String> =
        bundles.iter().map(|b| (b.sha256, b.name.clone())).collect();
    let mut counted: HashSet<ouk_store::ChunkId> = HashSet::new();
    for b in &bundles {
        if b.kind == "delta" {
            s.deltas += 1;
        } else {
            s.kits += 1;
        }
        match &b.content {
            StoredContent::Tar { .. } => s.stored_as_tar += 1,
            StoredContent::SeeThrough { members, .. } => {
                s.stored_as_tar += 1;
                s.stored_see_through += 1;
                let l = SeeThroughListing::of(members);
                s.see_through_members += l.members;
                s.member_plain_bytes += l.plain_bytes;
                s.member_original_bytes += l.original_bytes;
            }
            StoredContent::Compressed => s.stored_as_compressed += 1,
            StoredContent::Delta { .. } => s.stored_as_delta += 1,
        }
        let chain_depth = deltastore::chain_depth(root, b)?;
        s.max_chain_depth = s.max_chain_depth.max(chain_depth);
        let mut cost_bytes = 0u64;
        for f in b.store_files() {
            let rec = store.file_record(&f)?.ok_or(StoreError::MissingFile(f))?;
            for id in rec.chunks {
                if counted.insert(id) {
                    let loc = store.locate(&id)?.ok_or(StoreError::MissingChunk(id))?;
                    cost_bytes += u64::from(loc.frame_len);
                }
            }
        }
        s.per_bundle.push(BundleCost {
            name: b.name.clone(),
            version: b.version.clone(),
            channel: b.channel.clone(),
            size: b.size,
            stored_as: b.stored_as(),
            delta_base: b
                .delta_base()
                .map(|d| names.get(&d).cloned().unwrap_or_else(|| d.to_hex())),
            chain_depth,
            cost_bytes,
        });
        s.bundle_bytes += b.size;
        s.sidecar_bytes += b.sidecars.iter().map(|f| f.size).sum::<u64>();
        files.extend(b.store_files());
    }
    let mut chunks = HashSet::new();
    for f in &files {
        let rec = store.file_record(f)?.ok_or(StoreError::MissingFile(*f))?;
        chunks.extend(rec.chunks);
    }
    for id in &chunks {
        let loc = store.locate(id)?.ok_or(StoreError::MissingChunk(*id))?;
        s.unique_bytes += u64::from(loc.raw_len);
        s.stored_bytes += u64::from(loc.frame_len);
    }
    s.chunks = chunks.len() as u64;
    let index = store.dir().join("index.redb");
    let index_bytes = fs::metadata(&index)
        .ctx(|| format!("stat {}", index.display()))?
        .len();
    s.store_disk_bytes = store.stats()?.pack_bytes + index_bytes;
    if s.stored_bytes > 0 {
        s.dedup_ratio = s.bundle_bytes as f64 / s.stored_bytes as f64;
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_delta;
