//! Which bundles hold secrets: what a publisher must not hand out to just anyone.
//!
//! A kit carries files under `secrets/` (the Policy Gateway's DPoP private key,
//! `secrets/policy-gateway/policy-gateway-dpop.pem`, among them) inside its bundle; a delta
//! carries the new bytes of every target file that changed, secrets included. `kit build`
//! and `delta make` record the answer in the bundle's descriptor
//! ([`KitMetadata::secrets`](crate::build::KitMetadata::secrets)); a publisher that cannot
//! trust a descriptor (it is an unsigned sidecar, and descriptors written by older builds
//! have no such field) asks the bundle itself with [`bundle_holds_secrets`].
//!
//! Invariants: [`manifest_lists_secrets`] is true exactly when the manifest lists a path
//! under `secrets/`; [`bundle_holds_secrets`] is true when any entry of the bundle is under
//! `secrets/`, or when the bundle is a delta whose header lists a file under `secrets/`
//! (its bytes are in the payload). It reads the whole bundle unless it finds one earlier,
//! never trusting the entry order, and it fails (rather than answering `false`) on a bundle
//! it cannot read to its end: callers treat an error as "holds secrets".

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::bundle::{BundleReader, ReadLimits};
use crate::error::{IoContext, KitError, Result};
use crate::layout::secrets::is_secret;
use crate::manifest::OfflineManifest;

/// Largest delta header read to look for secret paths (as the importer's bound).
const MAX_DELTA_HEADER: u64 = 64 << 20;

/// The part of a delta header ([`ouk_delta::format::DeltaHeader`]) this module needs: the
/// paths of the files whose bytes the delta carries. Read leniently (other fields ignored),
/// so a header of any format version still names its files.
#[derive(serde::Deserialize)]
struct HeaderPaths {
    files: Vec<HeaderPath>,
}

#[derive(serde::Deserialize)]
struct HeaderPath {
    path: String,
}

/// Whether the manifest lists a file under `secrets/`.
pub fn manifest_lists_secrets(manifest: &OfflineManifest) -> bool {
    manifest.artifacts.iter().any(|a| is_secret(&a.name))
}

/// Whether the bundle at `path` (a kit or a delta) holds secrets, from its own content.
pub fn bundle_holds_secrets(path: &Path) -> Result<bool> {
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    // Any name and size: this is a survey of the entries, not an unpack, and the reader
    // still refuses links, unsafe names and a corrupt stream (an error, so "secret").
    let mut reader = BundleReader::new(
        file,
        |_: &str| Some(u64::MAX),
        ReadLimits {
            max_total_bytes: u64::MAX,
            max_entries: 10_000_000,
        },
    );
    while let Some(mut entry) = reader.next_entry()? {
        if is_secret(&entry.path) {
            return Ok(true);
        }
        if entry.path == crate::delta::HEADER_PATH {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_DELTA_HEADER + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| KitError::Read(crate::bundle::ReadError::from_io(e, 0, None)))?;
            let header: HeaderPaths = serde_json::from_slice(&bytes).map_err(|e| {
                KitError::Validation(format!(
                    "{}: {}: {e}",
                    path.display(),
                    crate::delta::HEADER_PATH
                ))
            })?;
            if header.files.iter().any(|f| is_secret(&f.path)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{EntrySource, EntrySpec, GzOptions, write_bundle};

    fn bundle(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let specs = files
            .iter()
            .map(|(p, b)| EntrySpec {
                path: (*p).to_string(),
                mode: 0o644,
                source: EntrySource::Bytes(b.to_vec()),
            })
            .collect();
        let path = dir.join(name);
        let out = File::create(&path).unwrap();
        write_bundle(out, specs, GzOptions::default()).unwrap();
        path
    }

    #[test]
    fn a_bundle_holds_secrets_when_an_entry_or_a_delta_file_is_under_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = bundle(tmp.path(), "a.tar.gz", &[("bin/x", b"x"), ("z/y", b"y")]);
        assert!(!bundle_holds_secrets(&plain).unwrap());
        let kit = bundle(
            tmp.path(),
            "b.tar.gz",
            &[("bin/x", b"x"), ("secrets/k.pem", b"k"), ("z/y", b"y")],
        );
        assert!(bundle_holds_secrets(&kit).unwrap());
        // `secretsfile` and `x/secrets/k` are not under `secrets/`.
        let near = bundle(
            tmp.path(),
            "c.tar.gz",
            &[("secretsfile", b"x"), ("x/secrets/k", b"y")],
        );
        assert!(!bundle_holds_secrets(&near).unwrap());
        // A delta: the secret's bytes are in the payload, its path in the header.
        let header = |path: &str| {
            serde_json::json!({
                "format": "ouk-delta/2",
                "files": [{"path": path, "size": 1, "source": {"kind": "solid"}}],
                "payloadSize": 1
            })
            .to_string()
        };
        let delta = bundle(
            tmp.path(),
            "d.delta.tgz",
            &[
                ("delta/delta.json", header("secrets/k.pem").as_bytes()),
                ("delta/payload.bin", b"k"),
            ],
        );
        assert!(bundle_holds_secrets(&delta).unwrap());
        let delta = bundle(
            tmp.path(),
            "e.delta.tgz",
            &[
                ("delta/delta.json", header("bin/x").as_bytes()),
                ("delta/payload.bin", b"x"),
            ],
        );
        assert!(!bundle_holds_secrets(&delta).unwrap());
        // Not a bundle: an error, never "no secrets".
        std::fs::write(tmp.path().join("junk"), vec![7u8; 4096]).unwrap();
        assert!(bundle_holds_secrets(&tmp.path().join("junk")).is_err());
    }
}
