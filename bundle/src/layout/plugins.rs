//! Rule 2: language analyzer plug-ins under `plugins/scanner/analyzers/lang/<id>/`.
//!
//! - Every directory directly under the plug-in root (seen on disk, or implied by a file
//!   of the inventory) is a plug-in and must contain `manifest.json`, at most
//!   [`MAX_PLUGIN_MANIFEST`] bytes, that parses as a JSON object.
//! - When the manifest names an entry-point assembly (`entryPoint.assembly`, a path
//!   relative to the plug-in directory), that file must exist; when the manifest also
//!   records a `sha256`, the assembly must match it.
//! - Files directly under the plug-in root (not in a plug-in directory) are ignored.
//!
//! In the kit, each plug-in's DLL (the entry-point assembly, else `<id>.dll`) and its
//! `manifest.json` get a cosign `.sig` and a `.sha256` sidecar next to them
//! ([`plugin_sidecar_targets`], [`sha256_sidecar_body`]).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use super::sidecar::parse_hex_digest;
use super::walk::read_small;
use super::{Index, LayoutError, PLUGIN_ROOT, Violation, is_normalized_rel_path};

/// The largest plug-in manifest read.
pub const MAX_PLUGIN_MANIFEST: u64 = 1 << 20;

/// One analyzer plug-in of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The directory name, e.g. `StellaOps.Scanner.Analyzers.Lang.Go`.
    pub id: String,
    /// `plugins/scanner/analyzers/lang/<id>`.
    pub dir: String,
    /// `<dir>/manifest.json`, when it exists.
    pub manifest: Option<String>,
    /// The plug-in's DLL (entry-point assembly, else `<id>.dll`), when it exists.
    pub dll: Option<String>,
}

/// The plug-in files that need `.sig` and `.sha256` sidecars in the kit: each plug-in's DLL
/// and manifest, sorted.
pub fn plugin_sidecar_targets(plugins: &[PluginInfo]) -> Vec<String> {
    let mut out: Vec<String> = plugins
        .iter()
        .flat_map(|p| p.dll.iter().chain(p.manifest.iter()).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The body of a `.sha256` sidecar in `sha256sum` format: `<hex>  <file_name>\n`.
/// `file_name` should be the target's base name (as `sha256sum` run in its directory
/// writes), so `sha256sum -c` works from that directory.
pub fn sha256_sidecar_body(sha256: &[u8; 32], file_name: &str) -> String {
    format!("{}  {file_name}\n", hex::encode(sha256))
}

pub(crate) fn check(
    root: &Path,
    index: &Index<'_>,
    out: &mut Vec<Violation>,
) -> Result<Vec<PluginInfo>, LayoutError> {
    let prefix = format!("{PLUGIN_ROOT}/");
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for &path in index.keys() {
        if let Some((id, _)) = path
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        {
            ids.insert(id.to_owned());
        }
    }
    let dir = root.join(PLUGIN_ROOT);
    match fs::read_dir(&dir) {
        Ok(rd) => {
            for ent in rd {
                let ent = ent.map_err(|source| LayoutError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let is_dir = ent.file_type().is_ok_and(|t| t.is_dir());
                if let (true, Some(name)) = (is_dir, ent.file_name().to_str()) {
                    ids.insert(name.to_owned());
                }
            }
        }
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {}
        Err(source) => return Err(LayoutError::Io { path: dir, source }),
    }

    let mut plugins = Vec::new();
    for id in ids {
        let pdir = format!("{PLUGIN_ROOT}/{id}");
        let manifest_path = format!("{pdir}/manifest.json");
        let mut info = PluginInfo {
            id: id.clone(),
            dir: pdir.clone(),
            manifest: None,
            dll: None,
        };
        let mut assembly: Option<String> = None;
        if index.contains_key(manifest_path.as_str()) {
            info.manifest = Some(manifest_path.clone());
            match read_small(root, &manifest_path, MAX_PLUGIN_MANIFEST) {
                Err(e) => out.push(Violation::PluginManifestInvalid {
                    path: manifest_path.clone(),
                    reason: e.violation_reason()?,
                }),
                Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Err(e) => out.push(Violation::PluginManifestInvalid {
                        path: manifest_path.clone(),
                        reason: format!("not JSON: {e}"),
                    }),
                    Ok(serde_json::Value::Object(m)) => {
                        assembly = check_assembly(&pdir, &manifest_path, &m, index, out);
                    }
                    Ok(_) => out.push(Violation::PluginManifestInvalid {
                        path: manifest_path.clone(),
                        reason: "not a JSON object".to_owned(),
                    }),
                },
            }
        } else {
            out.push(Violation::PluginManifestMissing { path: pdir.clone() });
        }
        let default_dll = format!("{pdir}/{id}.dll");
        info.dll = assembly.or_else(|| {
            index
                .contains_key(default_dll.as_str())
                .then_some(default_dll)
        });
        plugins.push(info);
    }
    Ok(plugins)
}

/// Checks the manifest's entry-point assembly; returns its tree path when it exists.
fn check_assembly(
    pdir: &str,
    manifest_path: &str,
    m: &serde_json::Map<String, serde_json::Value>,
    index: &Index<'_>,
    out: &mut Vec<Violation>,
) -> Option<String> {
    let assembly = m.get("entryPoint").and_then(|e| e.get("assembly"))?;
    let Some(rel) = assembly.as_str().filter(|r| is_normalized_rel_path(r)) else {
        out.push(Violation::PluginManifestInvalid {
            path: manifest_path.to_owned(),
            reason: format!(
                "entryPoint.assembly {assembly} is not a relative path inside the plug-in directory"
            ),
        });
        return None;
    };
    let path = format!("{pdir}/{rel}");
    let Some(entry) = index.get(path.as_str()) else {
        out.push(Violation::PluginAssemblyMissing {
            path,
            manifest: manifest_path.to_owned(),
        });
        return None;
    };
    match m.get("sha256") {
        None => {}
        Some(v) => match v.as_str().map(parse_hex_digest) {
            Some(Ok(d)) if d == entry.sha256 => {}
            Some(Ok(d)) => out.push(Violation::PluginAssemblyDigest {
                path: path.clone(),
                manifest: manifest_path.to_owned(),
                expected: hex::encode(d),
                actual: hex::encode(entry.sha256),
            }),
            Some(Err(reason)) => out.push(Violation::PluginManifestInvalid {
                path: manifest_path.to_owned(),
                reason: format!("sha256: {reason}"),
            }),
            None => out.push(Violation::PluginManifestInvalid {
                path: manifest_path.to_owned(),
                reason: "sha256 is not a string".to_owned(),
            }),
        },
    }
    Some(path)
}
