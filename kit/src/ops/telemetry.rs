//! The telemetry collector bundle: `telemetry/telemetry-offline-bundle.tar.gz` and its
//! `.sha256`, the OTLP collector config, Helm/Compose overlays and operator notes for sites
//! without upstream access.
//!
//! Job: package a directory into that bundle reproducibly ([`package_telemetry`], `ouk
//! telemetry package`), and check a release tree's copy before a kit carries it
//! ([`check_release_bundle`], called by the kit build).
//!
//! Invariants:
//! - packaging uses the deterministic bundle writer: regular files only (a symbolic link or
//!   other special file in the input is refused), names relative to the input directory,
//!   modes normalized to 0644 (0755 when any execute bit is set), mtime/uid/gid 0; the same
//!   input tree gives the same bytes. The bundle is written to a temporary name, fsynced
//!   and renamed, then its sidecar (`<hex>  <name>\n`, what `sha256sum -c` reads);
//! - the output may not lie inside the input directory (a second run would package the
//!   first run's output);
//! - a kit build carries the release tree's bundle only when its `.sha256` sidecar exists
//!   and records the bundle's digest (a mismatch is [`TelemetryError::DigestMismatch`],
//!   naming the file and both digests) and the bundle reads cleanly through the hardened
//!   bundle reader (no links, `..`, devices, bombs, truncation).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ouk_store::fsutil::{AtomicFile, FsError, write_atomic};
use serde::Serialize;

use crate::bundle::{BundleReader, EntrySource, EntrySpec, GzOptions, ReadError, ReadLimits};
use crate::bundle::{WriteError, write_bundle};
use crate::layout::FileEntry;

/// Where the telemetry bundle lives in a release tree and in a kit.
pub const TELEMETRY_PATH: &str = "telemetry/telemetry-offline-bundle.tar.gz";
/// Its sidecar.
pub const TELEMETRY_SHA256_PATH: &str = "telemetry/telemetry-offline-bundle.tar.gz.sha256";
/// Largest sidecar read.
const MAX_SIDECAR: u64 = 64 * 1024;

/// Errors of the telemetry bundle.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The bundle does not match its sidecar.
    #[error(
        "{path}: digest mismatch against {sidecar} (expected {expected}, got {actual}): re-package the telemetry bundle or fix its .sha256"
    )]
    DigestMismatch {
        path: String,
        sidecar: String,
        expected: String,
        actual: String,
    },
    /// The sidecar is missing or malformed.
    #[error("{path}: {reason}")]
    Sidecar { path: String, reason: String },
    /// The bundle does not read cleanly.
    #[error("{path}: not a clean telemetry bundle: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: ReadError,
    },
    /// The input holds something the bundle cannot carry (a symbolic link, say).
    #[error("{path}: {why}")]
    Input { path: PathBuf, why: String },
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// An input does not exist.
    #[error("{0}: not found")]
    NotFound(PathBuf),
    /// Writing the bundle failed.
    #[error("writing the telemetry bundle: {0}")]
    Write(#[from] WriteError),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// A failed file write keeps its context and its `io::Error` (a full disk stays exit 12).
impl From<FsError> for TelemetryError {
    fn from(e: FsError) -> Self {
        TelemetryError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

fn io_ctx(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> TelemetryError {
    move |source| TelemetryError::Io {
        context: context(),
        source,
    }
}

/// What [`package_telemetry`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryReport {
    pub output: PathBuf,
    pub sidecar: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub files: u64,
}

/// Packages every regular file under `input` into the bundle `output` plus
/// `output.sha256` (see the module doc).
pub fn package_telemetry(input: &Path, output: &Path) -> Result<TelemetryReport, TelemetryError> {
    if !input.is_dir() {
        return Err(TelemetryError::NotFound(input.to_path_buf()));
    }
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| TelemetryError::Usage(format!("{}: not a file name", output.display())))?
        .to_string();
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&out_dir).map_err(io_ctx(|| format!("create {}", out_dir.display())))?;
    let input_real =
        fs::canonicalize(input).map_err(io_ctx(|| format!("resolve {}", input.display())))?;
    let out_real =
        fs::canonicalize(&out_dir).map_err(io_ctx(|| format!("resolve {}", out_dir.display())))?;
    if out_real.starts_with(&input_real) {
        return Err(TelemetryError::Usage(format!(
            "{}: the output may not be inside the input directory {}",
            output.display(),
            input.display()
        )));
    }
    let listed = ouk_delta::tree::list_tree(input).map_err(|e| match e {
        ouk_delta::DeltaError::Unsupported { path, why } => TelemetryError::Input { path, why },
        other => TelemetryError::Input {
            path: input.to_path_buf(),
            why: other.to_string(),
        },
    })?;
    let specs: Vec<EntrySpec> = listed
        .into_iter()
        .map(|(rel, path, mode)| EntrySpec {
            path: rel,
            mode: if mode & 0o111 != 0 { 0o755 } else { 0o644 },
            source: EntrySource::File(path),
        })
        .collect();
    let files = specs.len() as u64;
    // Dropped on any error below, the temporary file is removed.
    let file = AtomicFile::create(output)?;
    let (summary, _, buffered) = write_bundle(
        io::BufWriter::with_capacity(1 << 20, file),
        specs,
        GzOptions::default(),
    )?;
    let file = buffered.into_inner().map_err(|e| TelemetryError::Io {
        context: format!("write {}", output.display()),
        source: e.into_error(),
    })?;
    file.commit()?;
    let sha256 = summary.sha256_hex();
    let sidecar = out_dir.join(format!("{name}.sha256"));
    write_atomic(&sidecar, format!("{sha256}  {name}\n").as_bytes())?;
    Ok(TelemetryReport {
        output: output.to_path_buf(),
        sidecar,
        sha256,
        size: summary.size,
        files,
    })
}

/// Checks the release tree's telemetry bundle, when it has one (see the module doc).
/// `entries` are the tree's hashed files. Returns whether there was one.
pub fn check_release_bundle(root: &Path, entries: &[FileEntry]) -> Result<bool, TelemetryError> {
    let Some(bundle) = entries.iter().find(|e| e.path == TELEMETRY_PATH) else {
        return Ok(false);
    };
    if !entries.iter().any(|e| e.path == TELEMETRY_SHA256_PATH) {
        return Err(TelemetryError::Sidecar {
            path: TELEMETRY_SHA256_PATH.into(),
            reason: format!(
                "missing: the kit carries {TELEMETRY_PATH} only with its .sha256 (ouk telemetry package writes both)"
            ),
        });
    }
    let sidecar_path = root.join(TELEMETRY_SHA256_PATH);
    let mut body = Vec::new();
    File::open(&sidecar_path)
        .and_then(|f| f.take(MAX_SIDECAR).read_to_end(&mut body))
        .map_err(io_ctx(|| format!("read {}", sidecar_path.display())))?;
    let line = crate::layout::parse_sidecar(&body).map_err(|reason| TelemetryError::Sidecar {
        path: TELEMETRY_SHA256_PATH.into(),
        reason,
    })?;
    if line.sha256 != bundle.sha256 {
        return Err(TelemetryError::DigestMismatch {
            path: TELEMETRY_PATH.into(),
            sidecar: TELEMETRY_SHA256_PATH.into(),
            expected: hex::encode(line.sha256),
            actual: hex::encode(bundle.sha256),
        });
    }
    check_readable(&root.join(TELEMETRY_PATH), bundle.size)?;
    Ok(true)
}

/// Reads every entry of the bundle at `path` (of `size` bytes) to its end.
fn check_readable(path: &Path, size: u64) -> Result<(), TelemetryError> {
    let unreadable = |source| TelemetryError::Unreadable {
        path: TELEMETRY_PATH.into(),
        source,
    };
    let file = File::open(path).map_err(io_ctx(|| format!("open {}", path.display())))?;
    // Deflate expands at most about 1032:1; anything past that is a bomb.
    let limits = ReadLimits {
        max_total_bytes: size.saturating_mul(1032).saturating_add(1 << 20),
        max_entries: 1 << 20,
    };
    let mut reader = BundleReader::new(file, |_: &str| Some(u64::MAX), limits);
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(mut entry) = reader.next_entry().map_err(unreadable)? {
        while entry.read_chunk(&mut buf).map_err(unreadable)? > 0 {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(dir: &Path) -> PathBuf {
        let i = dir.join("in");
        fs::create_dir_all(i.join("overlays/helm")).expect("mkdir");
        fs::write(i.join("otel-collector.yaml"), b"receivers: {otlp: {}}\n").expect("w");
        fs::write(i.join("overlays/helm/values.yaml"), b"collector: {}\n").expect("w");
        fs::write(i.join("README.md"), b"# operator notes\n").expect("w");
        i
    }

    fn entry(root: &Path, path: &str) -> FileEntry {
        let bytes = fs::read(root.join(path)).expect("read");
        FileEntry {
            path: path.into(),
            mode: 0o644,
            size: bytes.len() as u64,
            sha256: <sha2::Sha256 as sha2::Digest>::digest(&bytes).into(),
        }
    }

    #[test]
    fn telemetry_package_is_reproducible_and_checked() {
        let tmp = tempfile::tempdir().expect("tmp");
        let i = input(tmp.path());
        let release = tmp.path().join("release");
        let out = release.join(TELEMETRY_PATH);
        let a = package_telemetry(&i, &out).expect("package");
        let first = fs::read(&out).expect("read");
        let b = package_telemetry(&i, &out).expect("package");
        assert_eq!(first, fs::read(&out).expect("read"));
        assert_eq!((a.sha256.as_str(), a.files), (b.sha256.as_str(), 3));
        let sidecar = fs::read_to_string(&a.sidecar).expect("sidecar");
        assert_eq!(
            sidecar,
            format!("{}  telemetry-offline-bundle.tar.gz\n", a.sha256)
        );

        let entries = vec![
            entry(&release, TELEMETRY_PATH),
            entry(&release, TELEMETRY_SHA256_PATH),
        ];
        assert!(check_release_bundle(&release, &entries).expect("check"));
        fs::write(
            &a.sidecar,
            format!("{}  telemetry-offline-bundle.tar.gz\n", "0".repeat(64)),
        )
        .expect("tamper");
        let e = check_release_bundle(&release, &entries).expect_err("tampered");
        assert!(matches!(e, TelemetryError::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(TELEMETRY_PATH));
        let e = check_release_bundle(&release, &entries[..1]).expect_err("no sidecar");
        assert!(matches!(e, TelemetryError::Sidecar { .. }), "{e}");
    }

    #[test]
    fn telemetry_refuses_garbage_and_links() {
        let tmp = tempfile::tempdir().expect("tmp");
        let release = tmp.path().join("release");
        fs::create_dir_all(release.join("telemetry")).expect("mkdir");
        fs::write(release.join(TELEMETRY_PATH), b"not gzip").expect("w");
        let e = check_readable(&release.join(TELEMETRY_PATH), 8).expect_err("garbage");
        assert!(matches!(e, TelemetryError::Unreadable { .. }), "{e}");

        let i = input(tmp.path());
        std::os::unix::fs::symlink("/etc/passwd", i.join("passwd")).expect("link");
        let e = package_telemetry(&i, &tmp.path().join("t.tar.gz")).expect_err("link");
        assert!(matches!(e, TelemetryError::Input { .. }), "{e}");
        let e = package_telemetry(&i, &i.join("t.tar.gz")).expect_err("inside");
        assert!(matches!(e, TelemetryError::Usage(_)), "{e}");
    }
}
