//! The files that travel beside a bundle (kit or delta): `<name>.sha256` (sha256sum
//! format), `<name>.sig` (cosign blob signature), `<name>.metadata.json` (the
//! [`KitMetadata`] descriptor) and the name of the bundle's own manifest copy. Build,
//! delta make and split write them through [`write_bundle_sidecars`]; verify, import,
//! serve and mirror read the descriptor. Invariant: every sidecar is written atomically
//! ([`crate::build::write_atomic`]), and the descriptor is unsigned: a reader treats it as
//! a claim, never as proof.

use std::path::Path;

use serde::Serialize;

use crate::build::write_atomic;
use crate::error::{KitError, Result};
use crate::sign::SigningKey;

/// The descriptor written next to the bundle (`<bundle>.metadata.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KitMetadata {
    /// Bundle file name.
    pub name: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Kit version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Bundle SHA-256.
    pub sha256: String,
    /// Bundle size.
    pub size: u64,
    /// The manifest's name, digest and size.
    pub manifest: ManifestRef,
    /// Build time.
    pub created_at: String,
    /// Generation id.
    pub generation_id: String,
    /// Whether `.sig` and `.jws` exist.
    pub signed: bool,
    /// Signing key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Whether the bundle holds secrets (a kit: its manifest lists a file under
    /// `secrets/`; a delta: its target kit's does), so `ouk serve` hands it out only with
    /// the pull token. `None` in descriptors of older builds (and left out when `None`, so
    /// they keep their bytes): a publisher then asks the bundle itself
    /// ([`crate::exposure::bundle_holds_secrets`]). The descriptor is an unsigned sidecar:
    /// a publisher treats `true` as binding and `false` as a claim to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<bool>,
}

/// A manifest named with its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRef {
    /// Path.
    pub name: String,
    /// SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A signing failure for the file `what`.
pub(crate) fn sign_failed(what: String) -> impl FnOnce(crate::sign::BlobError) -> KitError {
    move |e| KitError::Signature {
        what,
        message: e.to_string(),
    }
}

/// Write the files that travel next to a bundle in `dir`: `<name>.sha256` (sha256sum
/// format), `<name>.sig` (cosign blob signature, when signing) and `<name>.metadata.json`.
pub(crate) fn write_bundle_sidecars(
    dir: &Path,
    sha256: &[u8; 32],
    key: Option<&SigningKey>,
    metadata: &KitMetadata,
) -> Result<()> {
    let name = &metadata.name;
    let line = format!("{}  {name}\n", hex::encode(sha256));
    write_atomic(&dir.join(format!("{name}.sha256")), line.as_bytes())?;
    if let Some(k) = key {
        let sig =
            crate::sign::sign_blob_sha256(k, sha256).map_err(sign_failed(format!("{name}.sig")))?;
        write_atomic(&dir.join(format!("{name}.sig")), sig.as_bytes())?;
    }
    let mut meta = serde_json::to_vec_pretty(metadata).unwrap_or_default();
    meta.push(b'\n');
    write_atomic(&dir.join(format!("{name}.metadata.json")), &meta)
}

/// The name of a bundle's own copy of its offline manifest, beside it.
pub fn own_manifest_name(bundle_name: &str) -> String {
    format!("{bundle_name}.manifest.json")
}
