//! The published index: what a kit directory offers to pullers.
//!
//! A kit directory is what `ouk kit build` and `ouk delta make` write: bundles with their
//! `.sha256`, `.sig` and `.metadata.json` sidecars, and the shared `manifest/` sidecar. The
//! index lists every bundle whose descriptor (`.metadata.json`) is consistent with the bundle
//! on disk (same name, size and SHA-256), with the files a puller fetches for it: the
//! bundle, its sidecars, and the manifest files when the manifest there is this bundle's
//! (several kits share one directory; the shared manifest belongs to the last build).
//! A bundle that holds secrets (files under `secrets/`) is listed with `"secrets": true`,
//! so a puller knows it needs the pull token before it asks; its sidecars stay public.
//!
//! Invariants: every listed path is relative, made of plain segments (no `.`, `..`, empty
//! or hidden segment, no backslash or NUL), and names a regular file inside the directory
//! (symlinks are not followed out of it); a listed digest is the SHA-256 of the file's
//! bytes when the index was made. The server serves only listed paths, so a URL can reach
//! nothing else. A bundle is listed without `secrets` only when its descriptor does not
//! say `true` and the bundle itself, read to its end, holds no secret
//! ([`DigestCache::holds_secrets`]): a descriptor is an unsigned sidecar (one from an older
//! build has no such field), so its `false` is never taken on trust.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ouk_kit::build::KitMetadata;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, TransportError};

/// The index's file name in a published directory.
pub const INDEX_NAME: &str = "index.json";
/// Schema name written in every index.
pub const SCHEMA: &str = "ouk-index/1";
/// Largest index a puller accepts.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

/// One published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Length.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// One published bundle (a kit or a delta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedBundle {
    /// Bundle file name.
    pub name: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Kit version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Build time (RFC 3339).
    pub created_at: String,
    /// Generation id the bundle yields.
    pub generation_id: String,
    /// Bundle SHA-256.
    pub sha256: String,
    /// Bundle size.
    pub size: u64,
    /// Every file a puller fetches for this bundle, the bundle first.
    pub files: Vec<PublishedFile>,
    /// Whether the bundle holds secrets (`ouk serve` hands it out only with the pull
    /// token, unless started with `--public-secrets`). Left out when false, so indexes of
    /// directories without secrets keep their bytes, and older indexes parse as `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secrets: bool,
    /// Files a puller also fetches that no import needs: a delta's kept feed changes
    /// (`<delta>.feeds-changes.jsonl`, which `ouk delta show` checks against the digest
    /// the delta's header declares). Listed apart from `files` because a puller refuses a
    /// bundle whose `files` name one it does not know: one that predates this field
    /// ignores it and pulls the delta as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<PublishedFile>,
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedIndex {
    /// [`SCHEMA`].
    pub schema: String,
    /// Channels of the listed bundles, sorted.
    pub channels: Vec<String>,
    /// Bundles, oldest first (by build time, then version, then name).
    pub bundles: Vec<PublishedBundle>,
}

/// A bundle left out of the index, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The descriptor or bundle.
    pub name: String,
    /// Why it is not published.
    pub reason: String,
}

/// The largest size an index may give a file (2^53: past any real file, and exact in any
/// JSON parser).
pub const MAX_FILE_SIZE: u64 = 1 << 53;

/// Whether no directory on the way from `dir` to `dir/rel` is a symlink (the last
/// component is checked by whoever opens it). A published directory may contain symlinks,
/// but nothing is published through one: that would reach outside the directory.
pub fn no_symlink_on_the_way(dir: &Path, rel: &str) -> bool {
    let mut at = dir.to_path_buf();
    let segs: Vec<&str> = rel.split('/').collect();
    for seg in &segs[..segs.len().saturating_sub(1)] {
        at.push(seg);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// Whether `path` is a relative path of plain segments (see the module invariants).
pub fn is_plain_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.') && seg.len() <= 255)
}

/// SHA-256 of files, and whether bundles hold secrets, remembered by (device, inode,
/// length, modification time) so a directory is read once, not on every scan.
#[derive(Default)]
pub struct DigestCache {
    known: Mutex<HashMap<PathBuf, CachedDigest>>,
    secrets: Mutex<HashMap<PathBuf, (Identity, bool)>>,
}

/// (device, inode, length, mtime seconds, mtime nanoseconds) of a file.
type Identity = (u64, u64, u64, i64, i64);

/// A file's [`Identity`].
fn identity(meta: &fs::Metadata) -> Identity {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// A file's identity when it was hashed, and its digest.
struct CachedDigest {
    /// (device, inode, length, mtime seconds, mtime nanoseconds).
    key: Identity,
    hex: String,
}

impl DigestCache {
    /// The SHA-256 of the regular file at `path` (not following a final symlink), with its
    /// length.
    pub fn digest(&self, path: &Path) -> Result<(u64, String)> {
        let meta = fs::symlink_metadata(path).ctx(|| format!("stat {}", path.display()))?;
        if !meta.file_type().is_file() {
            return Err(TransportError::Invalid {
                what: path.display().to_string(),
                message: "not a regular file".into(),
            });
        }
        let key = identity(&meta);
        if let Some(k) = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            && k.key == key
        {
            return Ok((key.2, k.hex.clone()));
        }
        let (digest, len) = ouk_store::fsutil::sha256_file(path)?;
        let hex = hex::encode(digest);
        // A file that changed while it was read is hashed again next time.
        let after = fs::symlink_metadata(path).ctx(|| format!("stat {}", path.display()))?;
        if after.len() == len && after.mtime() == key.3 && after.mtime_nsec() == key.4 {
            self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(
                path.to_path_buf(),
                CachedDigest {
                    key: (key.0, key.1, len, key.3, key.4),
                    hex: hex.clone(),
                },
            );
        }
        Ok((len, hex))
    }

    /// Whether the bundle at `path` holds secrets, by its own content
    /// ([`ouk_kit::exposure::bundle_holds_secrets`]): read once per version of the file
    /// (a gzip pass over the whole bundle unless a secret turns up early), then
    /// remembered like digests. A bundle that cannot be read to its end counts as holding
    /// secrets: an unreadable bundle is not evidence of a harmless one.
    pub fn holds_secrets(&self, path: &Path) -> bool {
        let Ok(before) = fs::symlink_metadata(path) else {
            return true;
        };
        let key = identity(&before);
        if let Some((k, answer)) = self
            .secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            && *k == key
        {
            return *answer;
        }
        let answer = ouk_kit::exposure::bundle_holds_secrets(path).unwrap_or(true);
        // A file that changed while it was read is read again next time.
        if fs::symlink_metadata(path).is_ok_and(|after| identity(&after) == key) {
            self.secrets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path.to_path_buf(), (key, answer));
        }
        answer
    }
}

fn sidecar_names(name: &str) -> [String; 7] {
    let own_manifest = ouk_kit::build::own_manifest_name(name);
    [
        format!("{name}.sha256"),
        format!("{name}.sig"),
        format!("{name}.metadata.json"),
        // The signature set and the carried trust chain (a host catches up through them).
        format!("{name}.sigs.json"),
        format!("{name}.trust.json"),
        format!("{own_manifest}.jws"),
        own_manifest,
    ]
}

/// Scan `dir` and build its index. Bundles whose descriptor is missing, unreadable or
/// inconsistent with the bundle are left out and returned as [`Skipped`].
pub fn scan(dir: &Path, cache: &DigestCache) -> Result<(PublishedIndex, Vec<Skipped>)> {
    let mut bundles = Vec::new();
    let mut skipped = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        if let Some(n) = entry.file_name().to_str()
            && let Some(bundle) = n.strip_suffix(".metadata.json")
            && is_plain_path(bundle)
        {
            names.push(bundle.to_string());
        }
    }
    names.sort();
    for name in names {
        match published_bundle(dir, &name, cache) {
            Ok(b) => bundles.push(b),
            Err(e) => skipped.push(Skipped {
                name,
                reason: e.to_string(),
            }),
        }
    }
    bundles.sort_by(|a, b| {
        (&a.created_at, &a.version, &a.name).cmp(&(&b.created_at, &b.version, &b.name))
    });
    let mut channels: Vec<String> = bundles.iter().map(|b| b.channel.clone()).collect();
    channels.sort();
    channels.dedup();
    Ok((
        PublishedIndex {
            schema: SCHEMA.into(),
            channels,
            bundles,
        },
        skipped,
    ))
}

fn published_bundle(dir: &Path, name: &str, cache: &DigestCache) -> Result<PublishedBundle> {
    let invalid = |message: String| TransportError::Invalid {
        what: format!("{name}.metadata.json"),
        message,
    };
    let meta_path = dir.join(format!("{name}.metadata.json"));
    let meta_bytes = fs::read(&meta_path).ctx(|| format!("read {}", meta_path.display()))?;
    let meta: KitMetadata =
        serde_json::from_slice(&meta_bytes).map_err(|e| invalid(e.to_string()))?;
    if meta.name != name {
        return Err(invalid(format!("names the bundle {:?}", meta.name)));
    }
    let (size, sha256) = cache.digest(&dir.join(name))?;
    if size != meta.size || sha256 != meta.sha256 {
        return Err(invalid(format!(
            "describes {} bytes with sha256 {}, the bundle has {size} bytes with sha256 {sha256}",
            meta.size, meta.sha256
        )));
    }
    // A descriptor saying `true` is binding; anything else is checked against the bundle
    // (see the module invariants).
    let secrets = meta.secrets == Some(true) || cache.holds_secrets(&dir.join(name));
    let mut files = vec![PublishedFile {
        path: name.to_string(),
        size,
        sha256: sha256.clone(),
    }];
    for side in sidecar_names(name) {
        let p = dir.join(&side);
        if p.is_file() {
            let (size, sha256) = cache.digest(&p)?;
            files.push(PublishedFile {
                path: side,
                size,
                sha256,
            });
        }
    }
    // The shared manifest sidecar, when it is this bundle's.
    let m = &meta.manifest.name;
    if is_plain_path(m) && no_symlink_on_the_way(dir, m) {
        let p = dir.join(m);
        if p.is_file()
            && let Ok((size, sha)) = cache.digest(&p)
            && sha == meta.manifest.sha256
        {
            files.push(PublishedFile {
                path: m.clone(),
                size,
                sha256: sha,
            });
            for ext in ["jws", "sig", "sha256"] {
                let side = format!("{m}.{ext}");
                let p = dir.join(&side);
                if p.is_file() {
                    let (size, sha256) = cache.digest(&p)?;
                    files.push(PublishedFile {
                        path: side,
                        size,
                        sha256,
                    });
                }
            }
        }
    }
    let mut extras = Vec::new();
    if meta.kind == "delta" {
        let side = format!("{name}{}", ouk_kit::delta::FEED_CHANGES_SUFFIX);
        let p = dir.join(&side);
        if p.is_file() {
            let (size, sha256) = cache.digest(&p)?;
            extras.push(PublishedFile {
                path: side,
                size,
                sha256,
            });
        }
    }
    Ok(PublishedBundle {
        name: name.to_string(),
        kind: meta.kind,
        version: meta.version,
        channel: meta.channel,
        created_at: meta.created_at,
        generation_id: meta.generation_id,
        sha256,
        size,
        files,
        secrets,
        extras,
    })
}

impl PublishedIndex {
    /// Parse an index a server sent, checking what a puller relies on: the schema, plain
    /// paths, hex digests, and that each bundle's first file is the bundle itself.
    pub fn parse(bytes: &[u8]) -> Result<PublishedIndex> {
        let invalid = |message: String| TransportError::Invalid {
            what: INDEX_NAME.into(),
            message,
        };
        let index: PublishedIndex =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if index.schema != SCHEMA {
            return Err(invalid(format!(
                "schema {:?}, expected {SCHEMA:?}",
                index.schema
            )));
        }
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        for b in &index.bundles {
            let first = b.files.first();
            if !is_plain_path(&b.name)
                || b.name.contains('/')
                || first
                    .is_none_or(|f| f.path != b.name || f.sha256 != b.sha256 || f.size != b.size)
            {
                return Err(invalid(format!(
                    "bundle {:?} is not listed first among its files",
                    b.name
                )));
            }
            for f in b.files.iter().chain(&b.extras) {
                if !is_plain_path(&f.path) {
                    return Err(invalid(format!("unsafe path {:?}", f.path)));
                }
                if f.size > MAX_FILE_SIZE {
                    return Err(invalid(format!(
                        "{}: size {} is not a real size",
                        f.path, f.size
                    )));
                }
                if !hex64(&f.sha256) {
                    return Err(invalid(format!("{}: sha256 {:?}", f.path, f.sha256)));
                }
            }
        }
        Ok(index)
    }

    /// The bundle to pull: `selector` is `latest` (the newest kit) or a version; `kind`
    /// and `channel` narrow the choice.
    pub fn select(
        &self,
        selector: &str,
        kind: &str,
        channel: Option<&str>,
    ) -> Option<&PublishedBundle> {
        self.bundles.iter().rfind(|b| {
            b.kind == kind
                && channel.is_none_or(|c| b.channel == c)
                && (selector == "latest" || b.version == selector || b.name == selector)
        })
    }

    /// Whether `path` is a bundle the index says holds secrets.
    pub fn holds_secrets(&self, path: &str) -> bool {
        self.bundles.iter().any(|b| b.name == path && b.secrets)
    }

    /// Whether `path` is one of the listed bundles (not a sidecar).
    pub fn is_bundle(&self, path: &str) -> bool {
        self.bundles.iter().any(|b| b.name == path)
    }

    /// The listed file at `path`, if any bundle lists it.
    pub fn file(&self, path: &str) -> Option<&PublishedFile> {
        self.bundles
            .iter()
            .flat_map(|b| b.files.iter().chain(&b.extras))
            .find(|f| f.path == path)
    }
}

/// Write `dir`'s index to `dir/index.json` (atomically), for static web servers.
pub fn write_index(dir: &Path) -> Result<(PublishedIndex, Vec<Skipped>)> {
    let (index, skipped) = scan(dir, &DigestCache::default())?;
    let mut bytes = serde_json::to_vec_pretty(&index).map_err(|e| TransportError::Invalid {
        what: INDEX_NAME.into(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    ouk_kit::build::write_atomic(&dir.join(INDEX_NAME), &bytes)?;
    Ok((index, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_plain() {
        for ok in ["a.tar.gz", "manifest/offline-manifest.json", "a/b/c"] {
            assert!(is_plain_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/.",
            ".hidden",
            "a\\b",
            "a\0b",
            "a/",
            "..",
        ] {
            assert!(!is_plain_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_published_through_a_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("real")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
        assert!(no_symlink_on_the_way(tmp.path(), "real/x"));
        assert!(!no_symlink_on_the_way(tmp.path(), "link/x"));
        assert!(no_symlink_on_the_way(tmp.path(), "x"));
        assert!(!no_symlink_on_the_way(tmp.path(), "missing/x"));
    }

    #[test]
    fn an_index_with_an_unsafe_path_does_not_parse() {
        let good = serde_json::json!({
            "schema": SCHEMA, "channels": ["edge"],
            "bundles": [{
                "name": "k.tar.gz", "kind": "kit", "version": "1", "channel": "edge",
                "createdAt": "2025-10-23T00:00:00Z", "generationId": "00",
                "sha256": "ab".repeat(32), "size": 3,
                "files": [{"path": "k.tar.gz", "size": 3, "sha256": "ab".repeat(32)}]
            }]
        });
        let parsed = PublishedIndex::parse(good.to_string().as_bytes()).unwrap();
        assert_eq!(
            parsed.select("latest", "kit", None).unwrap().name,
            "k.tar.gz"
        );
        assert!(parsed.select("latest", "delta", None).is_none());
        for (edit, why) in [
            ("/bundles/0/files/0/path", "../../etc/passwd"),
            ("/bundles/0/name", "../k.tar.gz"),
            ("/bundles/0/files/0/sha256", "zz"),
            ("/bundles/0/name", "a/b.tar.gz"),
            ("/schema", "other/1"),
        ] {
            let mut v = good.clone();
            *v.pointer_mut(edit).unwrap() = why.into();
            assert!(
                PublishedIndex::parse(v.to_string().as_bytes()).is_err(),
                "{edit}"
            );
        }
        assert!(PublishedIndex::parse(b"not json").is_err());
    }
}
