//! The quarantine: what a refused import leaves for the operator, within a cap.
//!
//! Job: record every refusal in a fresh `ROOT/quarantine/<time>-<name>/` holding a
//! `reason.json` (step, exit code, message, the input's path, when, what was kept and, when
//! nothing was, why), keep the refused input beside it as evidence when that is worth its
//! space, hold the whole quarantine within [`Limits`], and list, show and remove entries
//! (`ouk quarantine list|show|clean`).
//!
//! Invariants:
//! - an entry's directory is fresh (never reused: copying into an existing hard link would
//!   write through to the user's file); files are hard-linked, else copied with
//!   `create_new`, never over anything; a failed copy is removed;
//! - an input refused before its signature was checked (at step `lock` or `disk`, or with a
//!   digest or signature error at step `verify`) is never kept: nobody has authenticated
//!   it, and anyone who can hand the importer a file (the import API's token holders) could
//!   otherwise fill the disk with junk. Nor is an input refused for lack of space (its copy
//!   would take the space the next attempt needs), nor a split kit with a part missing;
//! - before an entry is added, the oldest entries are dropped until the new one fits: at
//!   most [`Limits::max_entries`] entries and [`Limits::max_bytes`] bytes in all (sizes as
//!   the files report them, hard links counted in full). An input larger than the byte cap
//!   by itself is not kept; its reason is;
//! - entry names given to [`show`] and [`remove`] are single path components naming a
//!   directory directly under the quarantine, never a path elsewhere;
//! - quarantining never fails the import it records: its own errors are swallowed (the
//!   refusal is what the operator must see).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ouk_root::Root;
use ouk_store::ErrorClass;
use serde::Serialize;

use crate::error::KitError;

/// Default cap on the number of entries.
pub const DEFAULT_MAX_ENTRIES: usize = 32;
/// Default cap on the bytes of all entries.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// How much the quarantine may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Entries (each refusal is one, kept input or not). At least 1.
    pub max_entries: usize,
    /// Bytes of all entries.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a quarantine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Reading or removing an entry failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No entry has this name.
    #[error("no quarantine entry {name:?} (see `ouk quarantine list`)")]
    UnknownEntry {
        /// The name given.
        name: String,
    },
    /// The name is not an entry name (a path, `..`, empty).
    #[error("{name:?} is not a quarantine entry name (give a name `ouk quarantine list` shows)")]
    BadName {
        /// The name given.
        name: String,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> QuarantineError {
    let context = context.into();
    move |source| QuarantineError::Io { context, source }
}

/// A file kept in an entry.
#[derive(Debug, Clone, Serialize)]
pub struct KeptFile {
    /// File name in the entry.
    pub name: String,
    /// Bytes.
    pub size: u64,
}

/// One quarantine entry, as `list` and `show` report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Directory name under `quarantine/`.
    pub name: String,
    /// The directory.
    pub path: PathBuf,
    /// When the refusal was recorded (RFC 3339), from `reason.json` (`at` there).
    #[serde(rename = "quarantinedAt")]
    pub at: Option<String>,
    /// Step that refused.
    pub step: Option<String>,
    /// Exit code of the refusal (`code` in `reason.json`; `exitCode`, the name every JSON
    /// output of ouk gives it).
    #[serde(rename = "exitCode")]
    pub code: Option<u64>,
    /// The refusal's message.
    pub message: Option<String>,
    /// The refused input's path at the time.
    pub bundle: Option<String>,
    /// Why the input was not kept, when it was not.
    pub not_kept: Option<String>,
    /// Files in the entry other than `reason.json`.
    pub files: Vec<KeptFile>,
    /// Bytes of the whole entry (`reason.json` included).
    pub bytes: u64,
    /// The whole `reason.json`, when it parses.
    #[serde(skip)]
    pub reason: Option<serde_json::Value>,
    #[serde(skip)]
    modified: Option<SystemTime>,
}

/// Why the refused input is not kept, or `None` when it may be (within the cap).
fn not_kept_because(step: &str, error: &KitError) -> Option<String> {
    let class = error.class();
    if class == ErrorClass::NoSpace {
        return Some(
            "refused for lack of space: a copy would take the space the next attempt needs".into(),
        );
    }
    if matches!(error, KitError::Part(p) if p.is_missing()) {
        return Some(
            "a part of the split kit (or its index) is missing; the parts present are unchanged: copy the missing one next to them and retry".into(),
        );
    }
    if step == "lock" || step == "disk" {
        return Some(format!(
            "refused at step {step}, before its signature was checked: an input nobody has authenticated is not kept"
        ));
    }
    let digest = class == ErrorClass::Digest;
    let signature = class == ErrorClass::Signature;
    if step == "verify" && (digest || signature) {
        let what = if signature {
            "its signature did not verify"
        } else {
            "its digest did not match, so its signature was never checked"
        };
        return Some(format!(
            "refused at step verify ({what}): an input nobody has authenticated is not kept"
        ));
    }
    None
}

/// Record the refusal of `bundle` at `step` with `error` in a fresh entry (its `code` is
/// the exit code of the error's class),
/// within `limits`. Returns the entry, or `None` when none could be made. Never fails the
/// caller: see the module invariants.
pub fn quarantine(
    root: &Root,
    bundle: &Path,
    step: &str,
    error: &KitError,
    limits: &Limits,
) -> Option<PathBuf> {
    let qdir = root.quarantine_dir();
    let name = bundle.file_name()?.to_string_lossy().into_owned();
    // A bundle is kept as itself; a split kit as its index and parts.
    let evidence: Vec<(PathBuf, u64)> = crate::split::evidence_files(bundle)
        .into_iter()
        .filter_map(|f| {
            let meta = fs::metadata(&f).ok()?;
            meta.is_file().then_some((f, meta.len()))
        })
        .collect();
    let evidence_bytes: u64 = evidence.iter().map(|(_, n)| n).sum();
    let not_kept = not_kept_because(step, error).or_else(|| {
        (evidence_bytes > limits.max_bytes).then(|| {
            format!(
                "{evidence_bytes} bytes is more than the quarantine may hold in all ({} bytes)",
                limits.max_bytes
            )
        })
    });
    let incoming = if not_kept.is_some() {
        0
    } else {
        evidence_bytes
    };
    // Room first: the oldest entries go until this one fits.
    let _ = make_room(&qdir, limits, 1, incoming);

    let stamp = crate::provenance::time::format_utc(ouk_root::now_unix())?.replace(':', "");
    // A fresh directory every time: two refusals in the same second must never share one
    // (copying into an existing hard link would write through to the user's bundle).
    let mut dir = qdir.join(format!("{stamp}-{name}"));
    let mut n = 1;
    while fs::create_dir(&dir).is_err() {
        if n > 1000 {
            return None;
        }
        dir = qdir.join(format!("{stamp}-{n}-{name}"));
        n += 1;
    }
    let mut kept = Vec::new();
    if not_kept.is_none() {
        for (file, _) in &evidence {
            let Some(file_name) = file.file_name() else {
                continue;
            };
            let dest = dir.join(file_name);
            let linked = fs::hard_link(file, &dest).is_ok();
            let copied = !linked
                && match (
                    File::open(file),
                    OpenOptions::new().write(true).create_new(true).open(&dest),
                ) {
                    (Ok(mut from), Ok(mut to)) => {
                        let ok = io::copy(&mut from, &mut to).is_ok();
                        if !ok {
                            let _ = fs::remove_file(&dest);
                        }
                        ok
                    }
                    _ => false,
                };
            if linked || copied {
                kept.push(file_name.to_string_lossy().into_owned());
            }
        }
    }
    let not_kept = match (&not_kept, kept.len() == evidence.len()) {
        (Some(why), _) => Some(why.clone()),
        (None, true) => None,
        (None, false) => Some("copying the input failed (see the free space)".into()),
    };
    let reason = serde_json::json!({
        "step": step,
        "code": error.class().exit_code(),
        "message": error.to_string(),
        "bundle": bundle.display().to_string(),
        "at": crate::provenance::time::format_utc(ouk_root::now_unix()),
        "kept": kept,
        "notKept": not_kept,
    });
    let _ =
        crate::build::write_atomic(&dir.join("reason.json"), format!("{reason:#}\n").as_bytes());
    Some(dir)
}

/// Drop the oldest entries of the quarantine at `qdir` until `adding` more entries of
/// `incoming` bytes fit `limits`. Returns the entries removed.
fn make_room(
    qdir: &Path,
    limits: &Limits,
    adding: usize,
    incoming: u64,
) -> Result<Vec<Entry>, QuarantineError> {
    let entries = list_dir(qdir)?;
    let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut removed = Vec::new();
    let mut oldest = 0;
    while oldest < entries.len()
        && (entries.len() - oldest + adding > limits.max_entries.max(adding)
            || bytes.saturating_add(incoming) > limits.max_bytes)
    {
        let e = &entries[oldest];
        remove_entry(e)?;
        bytes = bytes.saturating_sub(e.bytes);
        removed.push(e.clone());
        oldest += 1;
    }
    Ok(removed)
}

fn remove_entry(e: &Entry) -> Result<(), QuarantineError> {
    ouk_root::remove_tree(&e.path).map_err(|err| QuarantineError::Io {
        context: format!("remove {}", e.path.display()),
        source: match err {
            ouk_delta::DeltaError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        },
    })
}

/// Every entry of `root`'s quarantine, oldest first.
pub fn list(root: &Root) -> Result<Vec<Entry>, QuarantineError> {
    list_dir(&root.quarantine_dir())
}

fn list_dir(qdir: &Path) -> Result<Vec<Entry>, QuarantineError> {
    let rd = match fs::read_dir(qdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("list {}", qdir.display()))(e)),
    };
    let mut entries = Vec::new();
    for item in rd {
        let item = item.map_err(io_err(format!("list {}", qdir.display())))?;
        // Only directories are entries (a symlink is not followed).
        if !item.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = item.file_name().to_string_lossy().into_owned();
        // An entry removed meanwhile (by a concurrent clean) is skipped.
        if let Some(e) = read_entry(qdir, &name)? {
            entries.push(e);
        }
    }
    // Oldest first: by when reason.json was written (nanoseconds where the filesystem has
    // them; the names' stamps only have seconds), then by name.
    entries.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
    Ok(entries)
}

fn read_entry(qdir: &Path, name: &str) -> Result<Option<Entry>, QuarantineError> {
    let path = qdir.join(name);
    let rd = match fs::read_dir(&path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("list {}", path.display()))(e)),
    };
    let mut files = Vec::new();
    let mut bytes = 0u64;
    for item in rd {
        let item = item.map_err(io_err(format!("list {}", path.display())))?;
        let meta = fs::symlink_metadata(item.path())
            .map_err(io_err(format!("stat {}", item.path().display())))?;
        bytes = bytes.saturating_add(meta.len());
        let file_name = item.file_name().to_string_lossy().into_owned();
        if file_name != "reason.json" {
            files.push(KeptFile {
                name: file_name,
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let reason_path = path.join("reason.json");
    // A damaged or missing reason.json leaves the entry listed (and removable) without it.
    let reason: Option<serde_json::Value> = fs::read(&reason_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let modified = fs::metadata(&reason_path)
        .or_else(|_| fs::metadata(&path))
        .and_then(|m| m.modified())
        .ok();
    let text = |k: &str| {
        reason
            .as_ref()
            .and_then(|r| r.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Ok(Some(Entry {
        name: name.to_string(),
        at: text("at"),
        step: text("step"),
        code: reason
            .as_ref()
            .and_then(|r| r.get("code"))
            .and_then(|v| v.as_u64()),
        message: text("message"),
        bundle: text("bundle"),
        not_kept: text("notKept"),
        files,
        bytes,
        path,
        reason,
        modified,
    }))
}

/// Check that `name` is one entry name (a single normal path component).
fn check_name(name: &str) -> Result<(), QuarantineError> {
    let mut parts = Path::new(name).components();
    let single = matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    );
    if !single || name.contains('/') || name.contains('\0') {
        return Err(QuarantineError::BadName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The entry named `name`.
pub fn show(root: &Root, name: &str) -> Result<Entry, QuarantineError> {
    check_name(name)?;
    let qdir = root.quarantine_dir();
    let unknown = || QuarantineError::UnknownEntry {
        name: name.to_string(),
    };
    // A directory directly under quarantine/, not a symlink to one elsewhere.
    match fs::symlink_metadata(qdir.join(name)) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(unknown()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(io_err(format!("stat {}", qdir.join(name).display()))(e)),
    }
    read_entry(&qdir, name)?.ok_or_else(unknown)
}

/// Remove the entries named `names` (all checked before any is removed).
pub fn remove(root: &Root, names: &[String]) -> Result<Vec<Entry>, QuarantineError> {
    let entries = names
        .iter()
        .map(|n| show(root, n))
        .collect::<Result<Vec<_>, _>>()?;
    for e in &entries {
        remove_entry(e)?;
    }
    Ok(entries)
}

/// Remove every entry.
pub fn remove_all(root: &Root) -> Result<Vec<Entry>, QuarantineError> {
    let entries = list(root)?;
    for e in &entries {
        remove_entry(e)?;
    }
    Ok(entries)
}

/// Drop the oldest entries until the quarantine is within `limits` (after the limits were
/// lowered, or to apply them now).
pub fn enforce(root: &Root, limits: &Limits) -> Result<Vec<Entry>, QuarantineError> {
    make_room(&root.quarantine_dir(), limits, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig_error() -> KitError {
        KitError::Signature {
            what: "bundle".into(),
            message: "no trusted key".into(),
        }
    }

    #[test]
    fn unauthenticated_refusals_keep_no_input() {
        let digest = KitError::DigestMismatch {
            what: "bundle".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert!(not_kept_because("verify", &digest).is_some());
        assert!(not_kept_because("verify", &sig_error()).is_some());
        assert!(not_kept_because("lock", &KitError::Validation("x".into())).is_some());
        assert!(not_kept_because("disk", &KitError::Validation("x".into())).is_some());
        // Signed and verified, refused later: kept (within the cap).
        assert!(not_kept_because("check", &digest).is_none());
        assert!(not_kept_because("policy", &KitError::Validation("x".into())).is_none());
        assert!(not_kept_because("verify", &KitError::InvalidManifest("x".into())).is_none());
        // Decided by the error's class, wherever the error is wrapped: damaged data deep
        // in the store is a digest failure, a full disk under any context is no space.
        let damaged = KitError::Store(ouk_store::StoreError::MissingFile(
            ouk_store::FileDigest::of(b"x"),
        ));
        assert!(not_kept_because("verify", &damaged).is_some());
        assert!(not_kept_because("check", &damaged).is_none());
        let full = KitError::Io {
            context: "write".into(),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(not_kept_because("stage", &full).is_some());
    }

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/etc", "../x", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("2025-10-24T120000Z-kit.tgz").is_ok());
    }

    fn entry_of(dir: &Path, name: &str, bytes: usize) {
        let d = dir.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("kit.tgz"), vec![0u8; bytes]).unwrap();
        fs::write(d.join("reason.json"), b"{\"step\":\"check\",\"code\":2}\n").unwrap();
        // Distinct, increasing mtimes without sleeping.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    #[test]
    fn room_is_made_oldest_first_by_count_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let q = tmp.path();
        for (i, name) in ["c-old", "a-mid", "b-new"].iter().enumerate() {
            entry_of(q, name, 1000 * (i + 1));
        }
        let names = |q: &Path| -> Vec<String> {
            list_dir(q).unwrap().into_iter().map(|e| e.name).collect()
        };
        assert_eq!(names(q), ["c-old", "a-mid", "b-new"]);
        // Count: room for one more of 3 at most -> the oldest goes.
        let limits = Limits {
            max_entries: 3,
            max_bytes: 1 << 30,
        };
        let gone = make_room(q, &limits, 1, 0).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(names(q), ["a-mid", "b-new"]);
        // Bytes: 5000 + reasons held; 2500 more within 6000 -> a-mid (2000+) goes.
        let limits = Limits {
            max_entries: 10,
            max_bytes: 6000,
        };
        make_room(q, &limits, 1, 2500).unwrap();
        assert_eq!(names(q), ["b-new"]);
        // More than the cap can hold: everything goes (the caller keeps only the reason).
        make_room(q, &limits, 1, 7000).unwrap();
        assert!(names(q).is_empty());
    }
}
