//! Chunk-set manifests: the complete, canonical description of one generation's tree.
//!
//! A manifest lists every file of a tree, sorted by path, with its mode, size, SHA-256 and
//! chunk ids. Its canonical encoding is the versioned postcard envelope `OKCM` v1 of the
//! sorted entries; the [`GenerationId`] is the BLAKE3-256 of those bytes. So the same tree
//! always has the same id, whoever computes it (kit build, import, delta apply), and a
//! second import of the same content is recognisably a no-op.
//!
//! Invariants enforced by [`ChunkSetManifest::new`] and on decode: paths are relative,
//! `/`-separated, without empty, `.` or `..` components, unique and sorted; modes are
//! permission bits only; a file's chunk list is present (possibly empty for an empty file).

use std::fmt;
use std::str::FromStr;

use ouk_store::envelope;
use ouk_store::{ChunkId, FileDigest, ParseDigestError};
use serde::{Deserialize, Serialize};

use crate::error::DeltaError;

/// Envelope kind of a canonical manifest.
const KIND: [u8; 4] = *b"OKCM";
const VERSION: u16 = 1;

/// The id of a generation: BLAKE3-256 of its canonical chunk-set manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GenerationId(pub [u8; 32]);

impl Serialize for GenerationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ouk_store::serialize_digest(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for GenerationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ouk_store::deserialize_digest(d).map(GenerationId)
    }
}

impl GenerationId {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GenerationId({})", self.short())
    }
}

impl FromStr for GenerationId {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<ChunkId>().map(|c| GenerationId(c.0))
    }
}

/// One file of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Permission bits (e.g. 0o644, 0o755, 0o600).
    pub mode: u32,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: FileDigest,
    /// BLAKE3 chunk ids, in order.
    pub chunks: Vec<ChunkId>,
}

/// A validated, sorted chunk-set manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSetManifest {
    entries: Vec<ManifestEntry>,
}

/// Check that `path` is a safe relative path. Returns a reason when it is not.
pub fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("NUL or backslash in path");
    }
    for part in path.split('/') {
        match part {
            "" => return Err("empty path component"),
            "." => return Err("'.' path component"),
            ".." => return Err("'..' path component"),
            _ => {}
        }
    }
    Ok(())
}

impl ChunkSetManifest {
    /// Build a manifest from entries in any order; refuses unsafe or duplicate paths and
    /// files that are also directories of other files.
    pub fn new(mut entries: Vec<ManifestEntry>) -> Result<Self, DeltaError> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Self::check(&entries)?;
        Ok(ChunkSetManifest { entries })
    }

    fn check(entries: &[ManifestEntry]) -> Result<(), DeltaError> {
        let bad = |path: &str, why: &str| DeltaError::BadManifest(format!("{path:?}: {why}"));
        let files: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.path.as_str()).collect();
        for (i, e) in entries.iter().enumerate() {
            check_relative_path(&e.path).map_err(|why| bad(&e.path, why))?;
            if e.mode & !0o777 != 0 {
                return Err(bad(&e.path, "mode has bits beyond permissions"));
            }
            if let Some(next) = entries.get(i + 1)
                && next.path <= e.path
            {
                return Err(bad(&next.path, "duplicate or unsorted path"));
            }
            // "a" and "a/b" cannot both be files.
            for (at, _) in e.path.match_indices('/') {
                if files.contains(&e.path[..at]) {
                    return Err(bad(&e.path[..at], "is both a file and a directory"));
                }
            }
        }
        Ok(())
    }

    /// Entries sorted by path.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sum of file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        envelope::seal(KIND, VERSION, &self.entries)
    }

    /// Decode and validate canonical bytes. Refuses anything that is not exactly canonical
    /// (so one tree has exactly one encoding and one id).
    pub fn decode(bytes: &[u8]) -> Result<Self, DeltaError> {
        let (_, entries): (u16, Vec<ManifestEntry>) = envelope::open(KIND, VERSION, bytes)
            .map_err(|e| DeltaError::BadManifest(e.to_string()))?;
        Self::check(&entries)?;
        let m = ChunkSetManifest { entries };
        // postcard accepts overlong varints; one tree must have exactly one encoding (and
        // so one id), so anything that does not re-encode to the same bytes is refused
        // (found by fuzzing).
        if m.encode() != bytes {
            return Err(DeltaError::BadManifest("not in canonical encoding".into()));
        }
        Ok(m)
    }

    /// The generation id: BLAKE3 of the canonical bytes.
    pub fn id(&self) -> GenerationId {
        GenerationId(*blake3::hash(&self.encode()).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str, n: u8) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            mode: 0o644,
            size: u64::from(n),
            sha256: FileDigest([n; 32]),
            chunks: vec![ChunkId([n; 32])],
        }
    }

    #[test]
    fn id_is_independent_of_input_order() {
        let a = ChunkSetManifest::new(vec![entry("b", 1), entry("a/c", 2)]).unwrap();
        let b = ChunkSetManifest::new(vec![entry("a/c", 2), entry("b", 1)]).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(
            a.id(),
            ChunkSetManifest::new(vec![entry("b", 1)]).unwrap().id()
        );
        assert_eq!(ChunkSetManifest::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "..",
            "a\\b",
        ] {
            assert!(ChunkSetManifest::new(vec![entry(p, 1)]).is_err(), "{p:?}");
        }
        assert!(ChunkSetManifest::new(vec![entry("a", 1), entry("a", 2)]).is_err());
        assert!(ChunkSetManifest::new(vec![entry("a", 1), entry("a/b", 2)]).is_err());
        assert!(
            ChunkSetManifest::new(vec![entry("a", 1), entry("a.b", 2), entry("a/c", 3)]).is_err()
        );
        assert!(ChunkSetManifest::new(vec![entry("a", 1), entry("a.b", 2)]).is_ok());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes: Vec<u8>) {
            let _ = ChunkSetManifest::decode(&bytes);
        }

        #[test]
        fn round_trip(names in proptest::collection::btree_set("[a-z]{1,8}(/[a-z]{1,8}){0,2}", 0..20)) {
            // btree_set gives unique names; drop ones that would be both file and directory.
            let mut entries: Vec<ManifestEntry> = Vec::new();
            for (i, n) in names.iter().enumerate() {
                if !entries.iter().any(|e| n.starts_with(&format!("{}/", e.path)) || e.path.starts_with(&format!("{n}/"))) {
                    entries.push(entry(n, i as u8));
                }
            }
            let m = ChunkSetManifest::new(entries).unwrap();
            prop_assert_eq!(ChunkSetManifest::decode(&m.encode()).unwrap(), m);
        }
    }
}
