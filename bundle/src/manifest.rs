//! `offline-manifest.json`: the signed inventory of every file in a kit.
//!
//! ```json
//! { "schema": "stella-ops/offline-manifest@1", "version": "2025.10.0", "channel": "edge",
//!   "createdAt": "2025-10-23T00:00:00Z", "generationId": "<64 hex>",
//!   "artifacts": [ {"name": "...", "sha256": "...", "size": 33792, "capturedAt": "..."} ] }
//! ```
//!
//! `artifacts` lists every file of the bundle except the manifest itself, sorted by name
//! (so `jq '.artifacts[] | {name, sha256, size, capturedAt}'` reads it as the seed shows).
//! `notes` (optional, omitted when empty, so manifests without notes are byte-identical to
//! those of earlier builds and older readers, which ignore unknown top-level fields, still
//! read newer ones) points operators at files that need attention, e.g.
//! `{"topic": "policy-gateway", "path": "secrets/policy-gateway/policy-gateway-dpop.pem",
//! "text": "..."}`; a note's `path` must name one of the artifacts.
//! `generationId` is the id of the chunk-set manifest of exactly those files: what an
//! importer must arrive at. Serialization is deterministic (fixed field order, sorted
//! artifacts, two-space indentation, trailing newline), so the same kit gives the same bytes.
//!
//! Parsing is of untrusted input: [`OfflineManifest::parse`] bounds the size, checks every
//! name is a safe relative path, every digest is 64 lowercase hex, names are unique and
//! sorted, and the artifact count is bounded.

use serde::{Deserialize, Serialize};

/// A manifest that does not parse or breaks a rule (untrusted input refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid offline manifest: {0}")]
pub struct ManifestError(pub String);

/// Schema name written into every manifest.
pub const SCHEMA: &str = "stella-ops/offline-manifest@1";
/// Path of the manifest inside a bundle and in the output directory.
pub const MANIFEST_PATH: &str = "manifest/offline-manifest.json";
/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most artifacts accepted.
pub const MAX_ARTIFACTS: usize = 1_000_000;

/// One file of the kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    /// Path inside the bundle.
    pub name: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// When the file was captured (RFC 3339 UTC).
    pub captured_at: String,
}

/// Most notes accepted.
pub const MAX_NOTES: usize = 1024;
/// Longest note topic or text accepted, bytes.
pub const MAX_NOTE_LEN: usize = 4096;

/// A note for operators about one file or topic of the kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Note {
    /// What the note is about, e.g. `policy-gateway`.
    pub topic: String,
    /// The artifact it refers to, when it refers to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The note itself.
    pub text: String,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineManifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// Kit version.
    pub version: String,
    /// Release channel.
    pub channel: String,
    /// Build time (RFC 3339 UTC).
    pub created_at: String,
    /// Generation id of the artifact set.
    pub generation_id: String,
    /// Notes for operators (optional; absent in manifests without notes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// Every other file of the bundle, sorted by name.
    pub artifacts: Vec<Artifact>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl OfflineManifest {
    /// Deterministic JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse and validate untrusted bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let bad = ManifestError;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{} bytes is past the {MAX_MANIFEST_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let m: OfflineManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.schema != SCHEMA {
            return Err(bad(format!("schema {:?}, expected {SCHEMA:?}", m.schema)));
        }
        if !is_hex64(&m.generation_id) {
            return Err(bad("generationId is not 64 lowercase hex digits".into()));
        }
        if m.artifacts.len() > MAX_ARTIFACTS {
            return Err(bad(format!(
                "{} artifacts is past the limit",
                m.artifacts.len()
            )));
        }
        for (i, a) in m.artifacts.iter().enumerate() {
            ouk_delta::check_relative_path(&a.name)
                .map_err(|why| bad(format!("artifact {:?}: {why}", a.name)))?;
            if a.name == MANIFEST_PATH {
                return Err(bad("the manifest lists itself".into()));
            }
            if !is_hex64(&a.sha256) {
                return Err(bad(format!(
                    "artifact {:?}: sha256 is not 64 lowercase hex digits",
                    a.name
                )));
            }
            if i > 0 && m.artifacts[i - 1].name >= a.name {
                return Err(bad(format!(
                    "artifact {:?}: names not sorted or duplicated",
                    a.name
                )));
            }
        }
        if m.notes.len() > MAX_NOTES {
            return Err(bad(format!("{} notes is past the limit", m.notes.len())));
        }
        for n in &m.notes {
            if n.topic.len() > MAX_NOTE_LEN || n.text.len() > MAX_NOTE_LEN {
                return Err(bad(format!(
                    "note {:?}: longer than {MAX_NOTE_LEN} bytes",
                    n.topic.chars().take(64).collect::<String>()
                )));
            }
            if let Some(p) = &n.path
                && m.get(p).is_none()
            {
                return Err(bad(format!(
                    "note {:?} names {p:?}, which is not an artifact",
                    n.topic
                )));
            }
        }
        Ok(m)
    }

    /// The artifact named `name`.
    pub fn get(&self, name: &str) -> Option<&Artifact> {
        self.artifacts
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.artifacts[i])
    }

    /// Sum of artifact sizes.
    pub fn total_bytes(&self) -> u64 {
        // Saturating: sizes come from untrusted input (found by fuzzing).
        self.artifacts
            .iter()
            .fold(0u64, |t, a| t.saturating_add(a.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> OfflineManifest {
        OfflineManifest {
            schema: SCHEMA.into(),
            version: "2025.10.0".into(),
            channel: "edge".into(),
            created_at: "2025-10-23T00:00:00Z".into(),
            generation_id: "ab".repeat(32),
            notes: Vec::new(),
            artifacts: vec![
                Artifact {
                    name: "a/b".into(),
                    sha256: "cd".repeat(32),
                    size: 3,
                    captured_at: "2025-10-23T00:00:00Z".into(),
                },
                Artifact {
                    name: "c".into(),
                    sha256: "ef".repeat(32),
                    size: 0,
                    captured_at: "2025-10-23T00:00:00Z".into(),
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let m = sample();
        assert_eq!(OfflineManifest::parse(&m.to_bytes()).unwrap(), m);
        let mut evil = sample();
        evil.artifacts[0].name = "../etc/passwd".into();
        assert!(OfflineManifest::parse(&evil.to_bytes()).is_err());
        let mut dup = sample();
        dup.artifacts[1].name = "a/b".into();
        assert!(OfflineManifest::parse(&dup.to_bytes()).is_err());
        let mut upper = sample();
        upper.artifacts[0].sha256 = "CD".repeat(32);
        assert!(OfflineManifest::parse(&upper.to_bytes()).is_err());
    }

    #[test]
    fn notes_are_optional_and_must_name_artifacts() {
        let plain = sample();
        let bytes = plain.to_bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains("notes"));
        let mut noted = sample();
        noted.notes.push(Note {
            topic: "policy-gateway".into(),
            path: Some("a/b".into()),
            text: "DPoP key".into(),
        });
        assert_eq!(OfflineManifest::parse(&noted.to_bytes()).unwrap(), noted);
        noted.notes[0].path = Some("missing".into());
        let e = OfflineManifest::parse(&noted.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("not an artifact"), "{e}");
    }

    #[test]
    fn fuzz_regression_total_bytes_overflow_does_not_panic() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/fuzz-regressions/offline_manifest/total-bytes-overflow.json"
        );
        let bytes = std::fs::read(p).unwrap();
        if let Ok(m) = OfflineManifest::parse(&bytes) {
            let _ = m.total_bytes();
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = OfflineManifest::parse(&bytes);
        }
    }
}
