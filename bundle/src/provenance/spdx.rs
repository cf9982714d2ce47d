//! `provenance/sbom.spdx.json`: an SPDX 2.3 JSON document of the kit's files.
//!
//! Shape (every member is SPDX 2.3 JSON; `pyspdxtools -i` validates it):
//!
//! - the document (`SPDXRef-DOCUMENT`, `dataLicense` CC0-1.0, name
//!   `stella-ops-offline-kit-<version>-<channel>`) DESCRIBES one package,
//!   `SPDXRef-Package-stella-ops-offline-kit` (name `stella-ops-offline-kit`, the kit's
//!   version, `downloadLocation`/licenses/copyright NOASSERTION, `filesAnalyzed: true`);
//! - the package CONTAINS one file element per kit file: `fileName` `./<path>`, checksums
//!   SHA1 and SHA256 (SPDX 2.3 requires SHA1), licenses/copyright NOASSERTION. SPDX 2.3
//!   has no file-size field, so sizes are not recorded here (the offline manifest has them);
//! - the package's `packageVerificationCode` follows SPDX 2.3 §7.9: SHA-1 of the
//!   concatenation of the files' lowercase hex SHA-1s sorted ascending. The SBOM itself
//!   (`./provenance/sbom.spdx.json`) is a file of the kit that cannot list its own digest:
//!   it is never listed and is named in `packageVerificationCodeExcludedFiles`.
//!
//! Determinism: the output is a pure function of the inputs. Files are sorted by path; a
//! file's SPDXID is `SPDXRef-File-` + the first 16 hex digits of SHA-256 of its path (all
//! 64 where two paths would collide), so ids do not shift when files are added;
//! `created` is the caller's time (normalized to `YYYY-MM-DDThh:mm:ssZ`, the form SPDX
//! requires); `documentNamespace` is
//! `https://stella-ops.org/spdx/stella-ops-offline-kit/<version>-<channel>/<hex>` where
//! `<hex>` is SHA-256 over version, channel, created and every (path, SHA-256).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{KIT_PACKAGE_NAME, ProvenanceError, SBOM_PATH, normalize_time};
use crate::layout::is_normalized_rel_path;

/// `NOASSERTION`.
pub const NOASSERTION: &str = "NOASSERTION";
/// The SPDXID of the package representing the kit.
pub const PACKAGE_SPDXID: &str = "SPDXRef-Package-stella-ops-offline-kit";

/// One file of the kit as the SBOM lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomFile {
    /// Tree-relative `/`-separated path (as in the bundle and the offline manifest).
    pub path: String,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    pub size: u64,
}

impl SbomFile {
    pub fn new(path: impl Into<String>, d: &super::FileDigests) -> SbomFile {
        SbomFile {
            path: path.into(),
            sha1: d.sha1,
            sha256: d.sha256,
            size: d.size,
        }
    }
}

/// What the SBOM says about the kit itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomInfo {
    pub version: String,
    pub channel: String,
    /// RFC 3339; the build's time (e.g. the manifest's `createdAt`), never the wall clock
    /// implicitly.
    pub created: String,
    /// Goes into `creators` as `Tool: ouk-<tool_version>`.
    pub tool_version: String,
}

impl SbomInfo {
    /// With `tool_version` = this crate's version.
    pub fn new(
        version: impl Into<String>,
        channel: impl Into<String>,
        created: impl Into<String>,
    ) -> SbomInfo {
        SbomInfo {
            version: version.into(),
            channel: channel.into(),
            created: created.into(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxDocument {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    pub packages: Vec<SpdxPackage>,
    pub files: Vec<SpdxFile>,
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxPackage {
    pub name: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub version_info: String,
    pub download_location: String,
    pub files_analyzed: bool,
    pub package_verification_code: PackageVerificationCode,
    pub license_concluded: String,
    pub license_declared: String,
    pub copyright_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageVerificationCode {
    pub package_verification_code_value: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_verification_code_excluded_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpdxFile {
    pub file_name: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub checksums: Vec<Checksum>,
    pub license_concluded: String,
    pub copyright_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

/// The SPDX 2.3 package verification code of files with these SHA-1s: SHA-1 over the
/// concatenated lowercase hex SHA-1s sorted ascending (duplicates kept, as the spec says
/// "for all files").
pub fn package_verification_code<'a>(sha1s: impl IntoIterator<Item = &'a [u8; 20]>) -> String {
    let mut hexes: Vec<String> = sha1s.into_iter().map(hex::encode).collect();
    hexes.sort();
    let mut h = Sha1::new();
    for x in &hexes {
        h.update(x.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Builds the SBOM of `files`. An entry at the SBOM's own path is left out (see the
/// module doc). Errors: a path that is not normalized, a duplicate path, a bad time.
pub fn spdx_document(info: &SbomInfo, files: &[SbomFile]) -> Result<SpdxDocument, ProvenanceError> {
    let created = normalize_time("created", &info.created)?;
    let mut sorted: Vec<&SbomFile> = Vec::with_capacity(files.len());
    let mut seen = BTreeSet::new();
    for f in files {
        if !is_normalized_rel_path(&f.path) {
            return Err(ProvenanceError::InvalidPath(f.path.clone()));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(ProvenanceError::DuplicatePath(f.path.clone()));
        }
        if f.path != SBOM_PATH {
            sorted.push(f);
        }
    }
    sorted.sort_by(|a, b| a.path.cmp(&b.path));

    let ids = file_ids(&sorted);
    // A namespace derived from a few strings, not a read loop over a file or stream.
    let mut ns = Sha256::new();
    for part in [&info.version, &info.channel, &created] {
        ns.update(part.as_bytes());
        ns.update([0]);
    }
    let mut spdx_files = Vec::with_capacity(sorted.len());
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".to_owned(),
        relationship_type: "DESCRIBES".to_owned(),
        related_spdx_element: PACKAGE_SPDXID.to_owned(),
    }];
    for (f, id) in sorted.iter().zip(&ids) {
        ns.update(f.path.as_bytes());
        ns.update([0]);
        ns.update(f.sha256);
        spdx_files.push(SpdxFile {
            file_name: format!("./{}", f.path),
            spdx_id: id.clone(),
            checksums: vec![
                Checksum {
                    algorithm: "SHA1".to_owned(),
                    checksum_value: hex::encode(f.sha1),
                },
                Checksum {
                    algorithm: "SHA256".to_owned(),
                    checksum_value: hex::encode(f.sha256),
                },
            ],
            license_concluded: NOASSERTION.to_owned(),
            copyright_text: NOASSERTION.to_owned(),
        });
        relationships.push(Relationship {
            spdx_element_id: PACKAGE_SPDXID.to_owned(),
            relationship_type: "CONTAINS".to_owned(),
            related_spdx_element: id.clone(),
        });
    }
    let namespace = format!(
        "https://stella-ops.org/spdx/{KIT_PACKAGE_NAME}/{}-{}/{}",
        uri_segment(&info.version),
        uri_segment(&info.channel),
        hex::encode(ns.finalize())
    );

    Ok(SpdxDocument {
        spdx_version: "SPDX-2.3".to_owned(),
        data_license: "CC0-1.0".to_owned(),
        spdx_id: "SPDXRef-DOCUMENT".to_owned(),
        name: format!("{KIT_PACKAGE_NAME}-{}-{}", info.version, info.channel),
        document_namespace: namespace,
        creation_info: CreationInfo {
            created,
            creators: vec![format!("Tool: ouk-{}", info.tool_version)],
        },
        packages: vec![SpdxPackage {
            name: KIT_PACKAGE_NAME.to_owned(),
            spdx_id: PACKAGE_SPDXID.to_owned(),
            version_info: info.version.clone(),
            download_location: NOASSERTION.to_owned(),
            files_analyzed: true,
            package_verification_code: PackageVerificationCode {
                package_verification_code_value: package_verification_code(
                    sorted.iter().map(|f| &f.sha1),
                ),
                package_verification_code_excluded_files: vec![format!("./{SBOM_PATH}")],
            },
            license_concluded: NOASSERTION.to_owned(),
            license_declared: NOASSERTION.to_owned(),
            copyright_text: NOASSERTION.to_owned(),
            primary_package_purpose: Some("ARCHIVE".to_owned()),
        }],
        files: spdx_files,
        relationships,
    })
}

/// The bytes of `provenance/sbom.spdx.json`: pretty JSON and a final newline.
pub fn spdx_json(info: &SbomInfo, files: &[SbomFile]) -> Result<Vec<u8>, ProvenanceError> {
    let doc = spdx_document(info, files)?;
    let mut out = serde_json::to_vec_pretty(&doc).map_err(ProvenanceError::Json)?;
    out.push(b'\n');
    Ok(out)
}

/// SPDXIDs for sorted, unique paths: 16 hex digits of SHA-256(path), 64 on collision.
fn file_ids(files: &[&SbomFile]) -> Vec<String> {
    let full: Vec<String> = files
        .iter()
        .map(|f| hex::encode(Sha256::digest(f.path.as_bytes())))
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &full {
        *count.entry(h.get(..16).unwrap_or(h)).or_default() += 1;
    }
    full.iter()
        .map(|h| {
            let short = h.get(..16).unwrap_or(h);
            if count.get(short).copied().unwrap_or(0) > 1 {
                format!("SPDXRef-File-{h}")
            } else {
                format!("SPDXRef-File-{short}")
            }
        })
        .collect()
}

/// Keeps `[A-Za-z0-9._-]`, replaces anything else by `-` (URI path segment, no escapes).
fn uri_segment(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
}
