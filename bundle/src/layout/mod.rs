//! Release-tree layout rules, checked when a kit is built (on the release tree) and when it
//! is imported (on the unpacked staging tree, import step 5).
//!
//! The rules (each broken rule is a [`Violation`] that names the offending file):
//!
//! 1. **Debug store** ([`debug`]): a tree has `debug/`, unless
//!    [`LayoutOptions::allow_missing_debug`] is set. Every regular file under
//!    `debug/.build-id/` is `debug/.build-id/<aa>/<rest>.debug` (`aa` two lowercase hex
//!    digits, `rest` one or more lowercase hex digits). `debug/debug-manifest.json` and
//!    `debug/debug-manifest.json.sha256` exist and the sidecar (sha256sum format) matches the
//!    manifest. The manifest parses (see [`debug::DebugManifest`]) and every artefact it
//!    lists exists with the recorded SHA-256 (and size, when recorded), at the path its
//!    build-id implies. The summary written to `metadata/debug-store.json` is
//!    [`debug::DebugStoreSummary`]; [`debug::mirror_debug_store`] is `ouk debug-store mirror`.
//! 2. **Analyzer plug-ins** ([`plugins`]): every directory
//!    `plugins/scanner/analyzers/lang/<id>/` holds a `manifest.json` that parses as a JSON
//!    object; when it names an entry-point assembly, that file exists, and when it also
//!    records a `sha256`, the assembly matches it. Each plug-in's DLL and manifest get `.sig`
//!    and `.sha256` sidecars in the kit ([`plugins::plugin_sidecar_targets`]).
//! 3. **Secrets** ([`secrets`]): every file under `secrets/` has mode exactly `0600`.
//! 4. **Sidecars** ([`sidecar`]): every `X.sha256` names an existing `X` and matches it
//!    (`<hex>  <name>`, `<hex> *<name>`, a bare `<hex>`, or BSD `SHA256 (<name>) = <hex>`;
//!    `<name>` is `X`'s base name or tree-relative path).
//!
//! Inputs: [`check_tree`] walks a directory and hashes every regular file; callers that have
//! already streamed the files (the kit build, the import) pass their inventory to
//! [`check_entries`] instead, so large files are never read twice. Only small files
//! (sidecars, manifests) are read by the rules, each with a size cap. Symbolic links and
//! other non-regular files are not listed by [`walk_tree`]; whether they are allowed at all
//! is the bundle writer's and the unpacker's decision.
//!
//! Invariants: the rules never panic on input-derived data; results are deterministic
//! (violations in rule order, then path order); no rule writes anything, except
//! [`debug::mirror_debug_store`], which writes only under the offline kit directory and the
//! summary path it is given.

pub mod debug;
pub mod plugins;
pub mod secrets;
pub mod sidecar;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use debug::{
    DebugArtefact, DebugManifest, DebugStoreSummary, ManifestProblem, MirrorReport,
    mirror_debug_store,
};
pub use plugins::{PluginInfo, plugin_sidecar_targets, sha256_sidecar_body};
pub use sidecar::{SidecarLine, parse_sidecar};
pub use walk::walk_tree;

/// The debug store's directory.
pub const DEBUG_DIR: &str = "debug";
/// Where the `.debug` files live: `debug/.build-id/<aa>/<rest>.debug`.
pub const BUILD_ID_DIR: &str = "debug/.build-id";
/// The debug store's manifest.
pub const DEBUG_MANIFEST: &str = "debug/debug-manifest.json";
/// The debug manifest's sha256sum sidecar.
pub const DEBUG_MANIFEST_SHA256: &str = "debug/debug-manifest.json.sha256";
/// Where the debug store summary goes inside the kit.
pub const DEBUG_SUMMARY: &str = "metadata/debug-store.json";
/// The root of the language analyzer plug-ins.
pub const PLUGIN_ROOT: &str = "plugins/scanner/analyzers/lang";

/// The public key that verifies plug-in `.sig` files, generated into signed kits that
/// carry plug-ins (directly under the plug-in root, where the layout rules look at
/// nothing).
pub const PLUGIN_SIGNING_KEY: &str = "plugins/scanner/analyzers/lang/plugin-signing.pub";
/// The secrets directory.
pub const SECRETS_DIR: &str = "secrets";
/// The only mode a file under `secrets/` may have.
pub const SECRET_MODE: u32 = 0o600;

/// One regular file of a tree: tree-relative `/`-separated path, permission bits, size and
/// SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// What the checks accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutOptions {
    /// A tree without `debug/` passes (with a warning) instead of failing.
    pub allow_missing_debug: bool,
    /// `generatedAt` of the debug store summary (RFC 3339). `None` leaves it out, so the
    /// summary depends on the tree only.
    pub generated_at: Option<String>,
}

/// One broken rule. Every variant names the offending file (or directory) in `path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error(
        "{path}: the release tree has no debug store (debug/.build-id/** and debug/debug-manifest.json); \
         re-run the release with symbol extraction, or pass --allow-missing-debug"
    )]
    DebugStoreMissing { path: String },
    #[error("{path}: not laid out as debug/.build-id/<aa>/<rest>.debug (lowercase hex build-id)")]
    DebugFileLayout { path: String },
    #[error("{path}: the debug store manifest is missing")]
    DebugManifestMissing { path: String },
    #[error("{path}: the debug store manifest's .sha256 sidecar is missing")]
    DebugManifestSidecarMissing { path: String },
    #[error(
        "{path}: debug manifest digest mismatch: sidecar records {expected}, file has {actual}"
    )]
    DebugManifestDigest {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: invalid debug manifest: {reason}")]
    DebugManifestInvalid { path: String, reason: String },
    #[error(
        "{path}: artefact listed by debug/debug-manifest.json (build-id {build_id}) is missing"
    )]
    DebugArtefactMissing { path: String, build_id: String },
    #[error(
        "{path}: debug artefact digest mismatch: manifest records {expected}, file has {actual}"
    )]
    DebugArtefactDigest {
        path: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: debug artefact size mismatch: manifest records {expected} bytes, file has {actual}"
    )]
    DebugArtefactSize {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: analyzer plug-in directory has no manifest.json")]
    PluginManifestMissing { path: String },
    #[error("{path}: invalid plug-in manifest: {reason}")]
    PluginManifestInvalid { path: String, reason: String },
    #[error("{path}: plug-in entry-point assembly named by {manifest} is missing")]
    PluginAssemblyMissing { path: String, manifest: String },
    #[error(
        "{path}: plug-in assembly digest mismatch: {manifest} records {expected}, file has {actual}"
    )]
    PluginAssemblyDigest {
        path: String,
        manifest: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: secret has mode {mode:04o}, must be exactly 0600 (broader modes are refused)")]
    SecretMode { path: String, mode: u32 },
    #[error("{path}: malformed .sha256 sidecar: {reason}")]
    SidecarMalformed { path: String, reason: String },
    #[error("{path}: sidecar without its file ({target} is missing)")]
    SidecarTargetMissing { path: String, target: String },
    #[error("{path}: sidecar names {name:?}, expected {expected:?}")]
    SidecarName {
        path: String,
        name: String,
        expected: String,
    },
    #[error("{path}: digest mismatch for {target}: sidecar records {expected}, file has {actual}")]
    SidecarMismatch {
        path: String,
        target: String,
        expected: String,
        actual: String,
    },
}

impl Violation {
    /// The offending file or directory (tree-relative).
    pub fn path(&self) -> &str {
        match self {
            Violation::DebugStoreMissing { path }
            | Violation::DebugFileLayout { path }
            | Violation::DebugManifestMissing { path }
            | Violation::DebugManifestSidecarMissing { path }
            | Violation::DebugManifestDigest { path, .. }
            | Violation::DebugManifestInvalid { path, .. }
            | Violation::DebugArtefactMissing { path, .. }
            | Violation::DebugArtefactDigest { path, .. }
            | Violation::DebugArtefactSize { path, .. }
            | Violation::PluginManifestMissing { path }
            | Violation::PluginManifestInvalid { path, .. }
            | Violation::PluginAssemblyMissing { path, .. }
            | Violation::PluginAssemblyDigest { path, .. }
            | Violation::SecretMode { path, .. }
            | Violation::SidecarMalformed { path, .. }
            | Violation::SidecarTargetMissing { path, .. }
            | Violation::SidecarName { path, .. }
            | Violation::SidecarMismatch { path, .. } => path,
        }
    }
}

/// Something worth telling the operator that does not fail the check. Its text names no
/// flag of the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// No `debug/`, accepted because of [`LayoutOptions::allow_missing_debug`].
    DebugStoreMissingAllowed,
    /// A `.debug` file the debug manifest does not list.
    DebugUnlisted { path: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Says what is missing and what it costs, not which flag allowed it: the binary
            // that was given the flag words it (`cli/src/hint.rs`).
            Warning::DebugStoreMissingAllowed => write!(
                f,
                "debug/: no debug store in the release tree; symbol lookup will not work offline"
            ),
            Warning::DebugUnlisted { path } => {
                write!(f, "{path}: .debug file not listed in {DEBUG_MANIFEST}")
            }
        }
    }
}

/// Result of checking a tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayoutReport {
    /// Every broken rule, in rule order (debug store, plug-ins, secrets, sidecars), each
    /// rule's in path order.
    pub violations: Vec<Violation>,
    pub warnings: Vec<Warning>,
    /// The debug store summary, when the debug manifest could be read and parsed.
    pub debug_summary: Option<DebugStoreSummary>,
    /// The analyzer plug-ins found, sorted by id.
    pub plugins: Vec<PluginInfo>,
}

impl LayoutReport {
    /// No rule is broken.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// `Ok(self)` when no rule is broken, else [`LayoutError::Violations`] with all of them.
    pub fn into_result(self) -> Result<LayoutReport, LayoutError> {
        if self.violations.is_empty() {
            Ok(self)
        } else {
            Err(LayoutError::Violations(self.violations))
        }
    }
}

/// Why a check could not run, or (from [`LayoutReport::into_result`] and
/// [`mirror_debug_store`]) that rules are broken.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: path is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    #[error("{path}: not a normalized tree-relative path (empty, absolute, `.` or `..` component)")]
    InvalidPath { path: String },
    #[error("{path}: listed twice in the tree inventory")]
    DuplicatePath { path: String },
    #[error("{}: changed while it was being copied (expected sha256 {expected}, copied {actual})", path.display())]
    Changed {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}", ViolationList(.0))]
    Violations(Vec<Violation>),
}

struct ViolationList<'a>(&'a [Violation]);

impl fmt::Display for ViolationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "release tree breaks {} layout rule(s):", self.0.len())?;
        for v in self.0 {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}

/// Walks `root` and checks every rule. Hashes every regular file once.
pub fn check_tree(root: &Path, opts: &LayoutOptions) -> Result<LayoutReport, LayoutError> {
    let entries = walk_tree(root)?;
    check_entries(root, &entries, opts)
}

/// Checks every rule against `entries` (the regular files of the tree at `root`, with their
/// digests as the caller computed them). Only small files (sidecars, manifests) are read
/// from `root`; digests of everything else come from `entries`.
pub fn check_entries(
    root: &Path,
    entries: &[FileEntry],
    opts: &LayoutOptions,
) -> Result<LayoutReport, LayoutError> {
    let index = index_entries(entries)?;
    let mut report = LayoutReport::default();
    report.debug_summary = debug::check(root, &index, opts, &mut report)?;
    report.plugins = plugins::check(root, &index, &mut report.violations)?;
    secrets::check(&index, &mut report.violations);
    sidecar::check(root, &index, &mut report.violations)?;
    Ok(report)
}

/// The entries by path; refuses unnormalized and duplicate paths.
pub(crate) type Index<'a> = BTreeMap<&'a str, &'a FileEntry>;

fn index_entries(entries: &[FileEntry]) -> Result<Index<'_>, LayoutError> {
    let mut index = BTreeMap::new();
    for e in entries {
        if !is_normalized_rel_path(&e.path) {
            return Err(LayoutError::InvalidPath {
                path: e.path.clone(),
            });
        }
        if index.insert(e.path.as_str(), e).is_some() {
            return Err(LayoutError::DuplicatePath {
                path: e.path.clone(),
            });
        }
    }
    Ok(index)
}

/// `a/b/c`: not empty, no leading or trailing `/`, no empty, `.` or `..` component, no NUL.
pub(crate) fn is_normalized_rel_path(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The last component of a `/`-separated path.
pub(crate) fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}
