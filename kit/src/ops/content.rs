//! Kit content the build prepares and checks beyond the layout rules, in one call from
//! [`crate::build`]: the Policy Gateway bundle ([`crate::ops::policy_gateway`]), trust material
//! ([`crate::ops::certs`]), the Authority scope guardrails ([`crate::ops::authority`]) and cold-start
//! caches ([`crate::ops::caches`]).
//!
//! [`prepare`] runs before any release file is hashed, so a broken certificate bundle, a
//! broken Authority sample or a broken cache fails the build at once. It returns the files
//! the kit carries in addition to the release tree (each as `(kit path, source file,
//! mode)`, hashed and bundled like release files), the manifest notes and warnings.
//! Invariants: it writes nothing; it refuses an extra file whose kit path the tree already
//! has; checks run in a fixed order (gateway, certificates, Authority, caches), so the
//! first error is the same on every run.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{authority, caches, certs, policy_gateway};
use crate::error::{KitError, Result};
use crate::manifest::Note;

/// What the build adds to the kit.
#[derive(Debug, Clone, Default)]
pub struct KitContent {
    /// `(kit path, source file, mode)` of files carried besides the release tree's own.
    pub extra_files: Vec<(String, PathBuf, u32)>,
    /// Manifest notes.
    pub notes: Vec<Note>,
    /// Things worth telling the operator.
    pub warnings: Vec<String>,
}

/// Prepare and check the kit content of the release tree at `root` with the files
/// `listed` (as [`ouk_delta::tree::list_tree`] returns them), plus the cold-start caches
/// given on the command line.
pub fn prepare(
    root: &Path,
    listed: &[(String, PathBuf, u32)],
    cold_start_caches: &[PathBuf],
) -> Result<KitContent> {
    let paths: BTreeSet<&str> = listed.iter().map(|(p, _, _)| p.as_str()).collect();
    let mut out = KitContent::default();

    let gateway = policy_gateway::plan(root, paths.iter().copied())?;
    if let Some((to, from)) = gateway.copy {
        let mode = listed
            .iter()
            .find(|(_, p, _)| *p == from)
            .map_or(0o644, |(_, _, m)| *m);
        out.extra_files.push((to, from, mode));
    }
    out.notes.extend(gateway.notes);
    out.warnings.extend(gateway.warnings);

    certs::check_tree(root, paths.iter().copied())?;

    for rel in authority::AUTHORITY_PATHS {
        if paths.contains(rel) {
            authority::check_file(rel, &root.join(rel))?.into_result()?;
        }
    }

    for (rel, file, _) in listed {
        if caches::is_zip_cache(rel) {
            caches::check_zip_file(rel, file)?;
        }
    }
    for file in cold_start_caches {
        let rel = caches::cache_kit_path(file)?;
        if paths.contains(rel.as_str()) || out.extra_files.iter().any(|(p, _, _)| *p == rel) {
            return Err(KitError::CacheCollides {
                file: file.clone(),
                kit_path: rel,
            });
        }
        if caches::is_zip_cache(&rel) {
            caches::check_zip_file(&rel, file)?;
        }
        let mode = std::fs::metadata(file)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(|source| KitError::Io {
                context: format!("stat {}", file.display()),
                source,
            })?;
        out.extra_files.push((rel, file.clone(), mode));
    }
    out.extra_files.sort();
    Ok(out)
}
