//! Rule 1: the debug store, its summary, and `ouk debug-store mirror`.
//!
//! Layout:
//!
//! ```text
//! debug/.build-id/<aa>/<rest>.debug      aa = 2 lowercase hex digits, rest >= 1 of them
//! debug/debug-manifest.json              see DebugManifest
//! debug/debug-manifest.json.sha256       "<hex>  debug-manifest.json"
//! ```
//!
//! The manifest ([`DebugManifest::parse`]) is a JSON object with an `artifacts` (or
//! `artefacts`, not both) array; each item has `buildId` (lowercase hex, at least 3 digits),
//! `platform` (non-empty string), `sha256` (64 hex digits), and optionally `path`, `size`
//! (bytes) and `image`; other members (e.g. `binary`) are ignored. `path` may be relative
//! to the tree root (`debug/.build-id/..`, what the release generator writes) or to
//! `debug/` (`.build-id/..`); either way it must be the path the build-id implies, and it
//! defaults to that path. Two items may not name the same path.
//!
//! Checks: `debug/` exists (unless allowed missing); every regular file under
//! `debug/.build-id/` follows the layout; the manifest and its sidecar exist and match;
//! the manifest parses; every artefact exists with the recorded SHA-256 and size. `.debug`
//! files the manifest does not list are warnings, not violations (the seed's mirror helper
//! fails only on missing or wrong artefacts).
//!
//! The summary ([`DebugStoreSummary`], written to `metadata/debug-store.json`) is a pure
//! function of the manifest bytes and the optional `generatedAt` the caller passes, so it
//! is reproducible.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ouk_store::fsutil::{AtomicFile, FsError, HashingWriter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sidecar::{check_one, parse_hex_digest};
use super::walk::{read_small, walk_under};
use super::{
    BUILD_ID_DIR, DEBUG_DIR, DEBUG_MANIFEST, DEBUG_MANIFEST_SHA256, DEBUG_SUMMARY, FileEntry,
    Index, LayoutError, LayoutOptions, LayoutReport, Violation, Warning, index_entries,
    is_normalized_rel_path,
};

/// The largest debug manifest read.
pub const MAX_DEBUG_MANIFEST: u64 = 64 << 20;
/// How many build-ids the summary samples.
pub const SAMPLE_BUILD_IDS: usize = 5;

/// One artefact of the debug manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugArtefact {
    /// Lowercase hex GNU build-id.
    pub build_id: String,
    pub platform: String,
    /// Tree-relative path: `debug/.build-id/<aa>/<rest>.debug`.
    pub path: String,
    pub sha256: [u8; 32],
    pub size: Option<u64>,
    pub image: Option<String>,
}

/// A parsed `debug/debug-manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugManifest {
    pub generated_at: Option<String>,
    pub version: Option<String>,
    pub channel: Option<String>,
    /// In manifest order.
    pub artefacts: Vec<DebugArtefact>,
}

/// Something wrong in a debug manifest: `index` is the artefact's position, `None` for the
/// document itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    pub index: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "artifacts[{i}]: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The tree path of the `.debug` file of `build_id`, if the id is well-formed.
pub fn build_id_path(build_id: &str) -> Option<String> {
    if build_id.len() < 3 || !is_lower_hex(build_id) {
        return None;
    }
    let (aa, rest) = build_id.split_at(2);
    Some(format!("{BUILD_ID_DIR}/{aa}/{rest}.debug"))
}

/// The build-id of a tree path laid out as `debug/.build-id/<aa>/<rest>.debug`.
pub fn build_id_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(BUILD_ID_DIR)?.strip_prefix('/')?;
    let (aa, file) = rest.split_once('/')?;
    let stem = file.strip_suffix(".debug")?;
    (aa.len() == 2 && is_lower_hex(aa) && !stem.is_empty() && is_lower_hex(stem))
        .then(|| format!("{aa}{stem}"))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl DebugManifest {
    /// Parses a manifest; on failure returns every problem found.
    pub fn parse(bytes: &[u8]) -> Result<DebugManifest, Vec<ManifestProblem>> {
        let (m, problems) = DebugManifest::parse_lenient(bytes)?;
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(problems)
        }
    }

    /// Parses a manifest, keeping the well-formed artefacts when some items are not; a
    /// document-level problem is an error.
    fn parse_lenient(
        bytes: &[u8],
    ) -> Result<(DebugManifest, Vec<ManifestProblem>), Vec<ManifestProblem>> {
        let doc = |reason: String| {
            vec![ManifestProblem {
                index: None,
                reason,
            }]
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| doc(format!("not JSON: {e}")))?;
        let Value::Object(obj) = v else {
            return Err(doc("not a JSON object".to_owned()));
        };
        let items = match (obj.get("artifacts"), obj.get("artefacts")) {
            (Some(_), Some(_)) => {
                return Err(doc(
                    "has both `artifacts` and `artefacts`; expected one".to_owned()
                ));
            }
            (Some(Value::Array(a)), None) | (None, Some(Value::Array(a))) => a,
            (Some(_), None) | (None, Some(_)) => {
                return Err(doc("`artifacts` is not an array".to_owned()));
            }
            (None, None) => return Err(doc("no `artifacts` array".to_owned())),
        };
        let opt_str = |k: &str| -> Result<Option<String>, Vec<ManifestProblem>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(doc(format!("`{k}` is not a string"))),
            }
        };
        let generated_at = opt_str("generatedAt")?;
        let version = opt_str("version")?;
        let channel = opt_str("channel")?;

        let mut problems = Vec::new();
        let mut artefacts = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match parse_artefact(item) {
                Ok(a) => {
                    if let Some(first) = seen.insert(a.path.clone(), i) {
                        problems.push(ManifestProblem {
                            index: Some(i),
                            reason: format!("{} is already listed at artifacts[{first}]", a.path),
                        });
                    } else {
                        artefacts.push(a);
                    }
                }
                Err(reason) => problems.push(ManifestProblem {
                    index: Some(i),
                    reason,
                }),
            }
        }
        Ok((
            DebugManifest {
                generated_at,
                version,
                channel,
                artefacts,
            },
            problems,
        ))
    }
}

fn parse_artefact(item: &Value) -> Result<DebugArtefact, String> {
    let Value::Object(o) = item else {
        return Err("not a JSON object".to_owned());
    };
    let req_str = |k: &str| -> Result<&str, String> {
        match o.get(k) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("`{k}` is not a string")),
            None => Err(format!("`{k}` is missing")),
        }
    };
    let build_id = req_str("buildId")?;
    let expected_path = build_id_path(build_id)
        .ok_or_else(|| format!("buildId {build_id:?} is not lowercase hex of at least 3 digits"))?;
    let platform = req_str("platform")?;
    if platform.is_empty() {
        return Err("`platform` is empty".to_owned());
    }
    let sha256 = parse_hex_digest(req_str("sha256")?).map_err(|e| format!("sha256: {e}"))?;
    let path = match o.get("path") {
        None | Some(Value::Null) => expected_path.clone(),
        Some(Value::String(p)) => {
            let p = p.strip_prefix("./").unwrap_or(p);
            if !is_normalized_rel_path(p) {
                return Err(format!("path {p:?} is not a normalized relative path"));
            }
            let tree_path = if p.starts_with(&format!("{DEBUG_DIR}/")) {
                p.to_owned()
            } else {
                format!("{DEBUG_DIR}/{p}")
            };
            if tree_path != expected_path {
                return Err(format!(
                    "path {p:?} does not match buildId {build_id} (expected {expected_path})"
                ));
            }
            tree_path
        }
        Some(_) => return Err("`path` is not a string".to_owned()),
    };
    let size = match o.get("size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| "`size` is not a non-negative integer".to_owned())?,
        ),
    };
    let image = match o.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`image` is not a string".to_owned()),
    };
    Ok(DebugArtefact {
        build_id: build_id.to_owned(),
        platform: platform.to_owned(),
        path,
        sha256,
        size,
        image,
    })
}

/// The content of `metadata/debug-store.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugStoreSummary {
    /// When the summary was made, if the caller gave a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<String>,
    /// `debug/debug-manifest.json`.
    pub manifest_path: String,
    /// Lowercase hex SHA-256 of the manifest.
    pub manifest_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Sorted, unique.
    pub platforms: Vec<String>,
    pub artefact_count: u64,
    /// Distinct build-ids.
    pub build_id_count: u64,
    /// Artefacts per platform.
    pub artefacts_by_platform: BTreeMap<String, u64>,
    /// Sum of the recorded sizes; absent when an artefact has no recorded size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<u64>,
    /// Originating images, sorted, unique.
    pub images: Vec<String>,
    /// The first [`SAMPLE_BUILD_IDS`] build-ids in sorted order.
    pub sample_build_ids: Vec<String>,
}

impl DebugStoreSummary {
    /// The summary of a parsed manifest whose bytes hash to `manifest_sha256`.
    pub fn new(
        manifest: &DebugManifest,
        manifest_sha256: &[u8; 32],
        generated_at: Option<&str>,
    ) -> DebugStoreSummary {
        let mut platforms = BTreeSet::new();
        let mut by_platform: BTreeMap<String, u64> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let mut images = BTreeSet::new();
        let mut total: Option<u64> = Some(0);
        for a in &manifest.artefacts {
            platforms.insert(a.platform.clone());
            *by_platform.entry(a.platform.clone()).or_default() += 1;
            ids.insert(a.build_id.clone());
            if let Some(i) = &a.image {
                images.insert(i.clone());
            }
            total = match (total, a.size) {
                (Some(t), Some(s)) => t.checked_add(s),
                _ => None,
            };
        }
        DebugStoreSummary {
            generated_at: generated_at.map(str::to_owned),
            manifest_path: DEBUG_MANIFEST.to_owned(),
            manifest_sha256: hex::encode(manifest_sha256),
            manifest_generated_at: manifest.generated_at.clone(),
            version: manifest.version.clone(),
            channel: manifest.channel.clone(),
            platforms: platforms.into_iter().collect(),
            artefact_count: manifest.artefacts.len() as u64,
            build_id_count: ids.len() as u64,
            artefacts_by_platform: by_platform,
            total_size: total,
            images: images.into_iter().collect(),
            sample_build_ids: ids.into_iter().take(SAMPLE_BUILD_IDS).collect(),
        }
    }

    /// Parses manifest bytes and summarizes them.
    pub fn from_manifest_bytes(
        bytes: &[u8],
        generated_at: Option<&str>,
    ) -> Result<DebugStoreSummary, Vec<ManifestProblem>> {
        let m = DebugManifest::parse(bytes)?;
        Ok(DebugStoreSummary::new(
            &m,
            &Sha256::digest(bytes).into(),
            generated_at,
        ))
    }

    /// Pretty JSON with a final newline (the bytes of `metadata/debug-store.json`).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, integers and string-keyed maps cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Whether the tree has a debug store directory at all.
fn debug_present(root: &Path, index: &Index<'_>) -> bool {
    let prefix = format!("{DEBUG_DIR}/");
    index.keys().any(|p| p.starts_with(&prefix))
        || fs::symlink_metadata(root.join(DEBUG_DIR)).is_ok_and(|m| m.is_dir())
}

pub(crate) fn check(
    root: &Path,
    index: &Index<'_>,
    opts: &LayoutOptions,
    report: &mut LayoutReport,
) -> Result<Option<DebugStoreSummary>, LayoutError> {
    let out = &mut report.violations;
    if !debug_present(root, index) {
        if opts.allow_missing_debug {
            report.warnings.push(Warning::DebugStoreMissingAllowed);
        } else {
            out.push(Violation::DebugStoreMissing {
                path: format!("{DEBUG_DIR}/"),
            });
        }
        return Ok(None);
    }

    let bid_prefix = format!("{BUILD_ID_DIR}/");
    for &path in index.keys() {
        if path.starts_with(&bid_prefix) && build_id_of_path(path).is_none() {
            out.push(Violation::DebugFileLayout {
                path: path.to_owned(),
            });
        }
    }

    if !index.contains_key(DEBUG_MANIFEST) {
        out.push(Violation::DebugManifestMissing {
            path: DEBUG_MANIFEST.to_owned(),
        });
        if !index.contains_key(DEBUG_MANIFEST_SHA256) {
            out.push(Violation::DebugManifestSidecarMissing {
                path: DEBUG_MANIFEST_SHA256.to_owned(),
            });
        }
        return Ok(None);
    }
    let bytes = match read_small(root, DEBUG_MANIFEST, MAX_DEBUG_MANIFEST) {
        Ok(b) => b,
        Err(e) => {
            out.push(Violation::DebugManifestInvalid {
                path: DEBUG_MANIFEST.to_owned(),
                reason: e.violation_reason()?,
            });
            return Ok(None);
        }
    };
    let digest: [u8; 32] = Sha256::digest(&bytes).into();

    if index.contains_key(DEBUG_MANIFEST_SHA256) {
        match read_small(root, DEBUG_MANIFEST_SHA256, super::sidecar::MAX_SIDECAR) {
            Err(e) => out.push(Violation::SidecarMalformed {
                path: DEBUG_MANIFEST_SHA256.to_owned(),
                reason: e.violation_reason()?,
            }),
            Ok(body) => match check_one(DEBUG_MANIFEST_SHA256, &body, DEBUG_MANIFEST, &digest) {
                Some(Violation::SidecarMismatch {
                    expected, actual, ..
                }) => out.push(Violation::DebugManifestDigest {
                    path: DEBUG_MANIFEST.to_owned(),
                    expected,
                    actual,
                }),
                Some(v) => out.push(v),
                None => {}
            },
        }
    } else {
        out.push(Violation::DebugManifestSidecarMissing {
            path: DEBUG_MANIFEST_SHA256.to_owned(),
        });
    }

    // Item-level problems are reported and the well-formed artefacts still checked; no
    // summary is made of a manifest with problems.
    let invalid = |p: ManifestProblem| Violation::DebugManifestInvalid {
        path: DEBUG_MANIFEST.to_owned(),
        reason: p.to_string(),
    };
    let (manifest, problems) = match DebugManifest::parse_lenient(&bytes) {
        Ok(parsed) => parsed,
        Err(problems) => {
            out.extend(problems.into_iter().map(invalid));
            return Ok(None);
        }
    };
    let complete = problems.is_empty();
    out.extend(problems.into_iter().map(invalid));

    let mut listed = BTreeSet::new();
    let mut artefact_violations = Vec::new();
    for a in &manifest.artefacts {
        listed.insert(a.path.as_str());
        match index.get(a.path.as_str()) {
            None => artefact_violations.push(Violation::DebugArtefactMissing {
                path: a.path.clone(),
                build_id: a.build_id.clone(),
            }),
            Some(e) => {
                if e.sha256 != a.sha256 {
                    artefact_violations.push(Violation::DebugArtefactDigest {
                        path: a.path.clone(),
                        expected: hex::encode(a.sha256),
                        actual: hex::encode(e.sha256),
                    });
                } else if let Some(size) = a.size.filter(|&s| s != e.size) {
                    artefact_violations.push(Violation::DebugArtefactSize {
                        path: a.path.clone(),
                        expected: size,
                        actual: e.size,
                    });
                }
            }
        }
    }
    artefact_violations.sort_by(|a, b| a.path().cmp(b.path()));
    out.extend(artefact_violations);
    for &path in index.keys() {
        if path.starts_with(&bid_prefix) && path.ends_with(".debug") && !listed.contains(path) {
            report.warnings.push(Warning::DebugUnlisted {
                path: path.to_owned(),
            });
        }
    }

    Ok(complete.then(|| DebugStoreSummary::new(&manifest, &digest, opts.generated_at.as_deref())))
}

/// What [`mirror_debug_store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorReport {
    pub summary: DebugStoreSummary,
    /// Where the summary was written.
    pub summary_path: PathBuf,
    /// Files copied (every regular file under the release tree's `debug/`).
    pub files: u64,
    pub bytes: u64,
    /// Files that were under the offline kit's `debug/` but not the release's, removed
    /// (tree-relative paths).
    pub removed: Vec<String>,
    pub warnings: Vec<Warning>,
}

/// `ouk debug-store mirror`: checks the debug store of `release_dir` (rule 1, a missing
/// `debug/` is an error), copies every regular file under `release_dir/debug/` to the same
/// relative path under `offline_kit_dir` (each through a temporary file renamed into place,
/// re-hashed while copying and compared with the digest checked before), removes files
/// under `offline_kit_dir/debug/` the release does not have, and writes the summary to
/// `summary_path` (default `offline_kit_dir/metadata/debug-store.json`).
///
/// Nothing is copied when the release's debug store breaks a rule: the error lists every
/// violation. Memory is bounded by the copy buffer and the manifest.
pub fn mirror_debug_store(
    release_dir: &Path,
    offline_kit_dir: &Path,
    summary_path: Option<&Path>,
    generated_at: Option<&str>,
) -> Result<MirrorReport, LayoutError> {
    let entries = walk_under(release_dir, DEBUG_DIR)?;
    let index = index_entries(&entries)?;
    let opts = LayoutOptions {
        allow_missing_debug: false,
        generated_at: generated_at.map(str::to_owned),
    };
    let mut report = LayoutReport::default();
    let summary = check(release_dir, &index, &opts, &mut report)?;
    let summary = match (report.violations.is_empty(), summary) {
        (true, Some(s)) => s,
        _ => return Err(LayoutError::Violations(report.violations)),
    };

    let mut bytes = 0u64;
    for e in &entries {
        copy_verified(
            &release_dir.join(&e.path),
            &offline_kit_dir.join(&e.path),
            e,
        )?;
        bytes += e.size;
    }
    let keep: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut removed = Vec::new();
    remove_stale(offline_kit_dir, DEBUG_DIR, &keep, &mut removed)?;

    let summary_path = summary_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| offline_kit_dir.join(DEBUG_SUMMARY));
    write_atomic(&summary_path, &summary.to_json_bytes())?;
    Ok(MirrorReport {
        summary,
        summary_path,
        files: entries.len() as u64,
        bytes,
        removed,
        warnings: report.warnings,
    })
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file error from [`ouk_store::fsutil`], reported at `path`.
fn fs_at(path: &Path) -> impl FnOnce(FsError) -> LayoutError + '_ {
    move |e| LayoutError::Io {
        path: path.to_path_buf(),
        source: e.source,
    }
}

/// Copies `src` to `dst` through `dst`'s temporary sibling, hashing on the way, and renames
/// it into place only if the copy hashes to `entry.sha256`.
fn copy_verified(src: &Path, dst: &Path, entry: &FileEntry) -> Result<(), LayoutError> {
    // Dropped on any error below, the temporary file is removed.
    let output = AtomicFile::create_with_mode(dst, 0o644).map_err(fs_at(dst))?;
    let input = File::open(src).map_err(io_at(src))?;
    let mut output = HashingWriter::new(output);
    ouk_store::fsutil::read_through(input, ouk_store::fsutil::HASH_BUFFER, |piece| {
        output.write_all(piece)
    })
    .map_err(|e| match e {
        ouk_store::fsutil::PassError::Read(e) => io_at(src)(e),
        ouk_store::fsutil::PassError::Sink(e) => io_at(dst)(e),
    })?;
    let (got, _, output) = output.finish();
    if got != entry.sha256 {
        return Err(LayoutError::Changed {
            path: src.to_path_buf(),
            expected: hex::encode(entry.sha256),
            actual: hex::encode(got),
        });
    }
    output.set_mode(0o644).map_err(fs_at(dst))?;
    output.commit().map_err(fs_at(dst))?;
    Ok(())
}

/// Removes files under `root/sub` whose tree path is not in `keep` (not following links).
fn remove_stale(
    root: &Path,
    sub: &str,
    keep: &BTreeSet<&str>,
    removed: &mut Vec<String>,
) -> Result<(), LayoutError> {
    let dir = root.join(sub);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(&dir)(e)),
    };
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io_at(&dir))?;
        let name = ent
            .file_name()
            .into_string()
            .map_err(|_| LayoutError::NonUtf8Path(ent.path()))?;
        let ft = ent.file_type().map_err(io_at(&ent.path()))?;
        names.push((name, ft.is_dir()));
    }
    names.sort();
    for (name, is_dir) in names {
        let rel = format!("{sub}/{name}");
        if is_dir {
            remove_stale(root, &rel, keep, removed)?;
        } else if !keep.contains(rel.as_str()) {
            let p = root.join(&rel);
            fs::remove_file(&p).map_err(io_at(&p))?;
            removed.push(rel);
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    ouk_store::fsutil::write_atomic_with_mode(path, bytes, 0o644).map_err(fs_at(path))
}
