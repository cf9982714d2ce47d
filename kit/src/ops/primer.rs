//! The advisory AI volume primer: a tiny tarball of empty directories with ownership
//! metadata, built into every kit and laid onto the RWX volume that advisory-ai-web and
//! advisory-ai-worker share, so their pods start with the expected tree on air-gapped nodes.
//!
//! Job: write the primer ([`write_primer`]), read one back strictly ([`read_primer`]),
//! find it in a kit or take it as given ([`load_primer`]), and extract it onto a volume
//! idempotently ([`extract_primer`]).
//!
//! Invariants:
//! - the primer lives in a kit at [`PRIMER_PATH`] and holds exactly the directories
//!   [`PRIMER_DIRS`] (`outputs/`, `plans/`, `queue/`), each an explicit tar directory entry
//!   with its mode and numeric uid/gid, written by the deterministic bundle writer: the
//!   same [`PrimerSpec`] always gives the same bytes;
//! - a primer being read is untrusted input: it is parsed by the hardened bundle reader
//!   (which refuses links, devices, `..`, absolute and non-canonical names, setuid bits,
//!   duplicates, bombs) and then anything that is not one of those three top-level
//!   directories (a file, a nested directory, an unknown name, a missing owner) is refused
//!   before anything is written to the volume;
//! - extraction never follows a symbolic link: each directory is opened with `O_NOFOLLOW`
//!   and changed through that descriptor (`fchmod`, `fchown`); an existing non-directory in
//!   the way is refused, never replaced;
//! - ownership is applied only when running as root; otherwise the report says it was not,
//!   and modes are still applied. A second run over a primed volume changes nothing and
//!   says so.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{
    BundleReader, BundleWriter, EntryKind, GzOptions, MAX_OWNER_ID, Owner, ReadError, ReadLimits,
    WriteError,
};

/// Where the primer lives inside a kit.
pub const PRIMER_PATH: &str = "advisory-ai/volume-primer.tar.gz";
/// The primer's directories, in archive order.
pub const PRIMER_DIRS: [&str; 3] = ["outputs", "plans", "queue"];
/// Default owner: uid 1654, the `app` user of the .NET 8+ container images the advisory
/// AI services run as (`APP_UID`).
pub const DEFAULT_UID: u32 = 1654;
/// Default group: gid 1654 (`app`).
pub const DEFAULT_GID: u32 = 1654;
/// Default mode: owner and group read/write/search (web and worker share the volume),
/// nothing for others.
pub const DEFAULT_MODE: u32 = 0o770;
/// Largest primer read out of a kit (a real one is well under 1 KiB).
pub const MAX_PRIMER_BYTES: u64 = 64 * 1024;

/// Errors of the volume primer.
#[derive(Debug, thiserror::Error)]
pub enum PrimerError {
    /// The requested owner or mode cannot be written.
    #[error("invalid primer setting: {0}")]
    InvalidSpec(String),
    /// The primer holds something that is not a directory.
    #[error(
        "primer entry {entry:?} is a file: the primer holds only the directories outputs/, plans/ and queue/"
    )]
    NotADirectory { entry: String },
    /// The primer holds a directory other than the three expected.
    #[error("primer entry {entry:?} is not one of outputs/, plans/, queue/")]
    UnexpectedDirectory { entry: String },
    /// One of the three directories is missing.
    #[error("the primer has no {name}/ directory")]
    MissingDirectory { name: String },
    /// A directory entry's uid/gid fields do not parse.
    #[error("primer entry {entry:?} has no valid numeric owner")]
    NoOwner { entry: String },
    /// The primer (or the kit holding it) is malformed or unsafe.
    #[error("primer refused ({path}): {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    /// The file given is a kit without a primer, or neither a kit nor a primer.
    #[error("{path}: no {PRIMER_PATH} in this kit (and it is not a primer itself)")]
    NoPrimerInKit { path: PathBuf },
    /// The primer inside a kit is larger than any real primer.
    #[error(
        "{path}: {PRIMER_PATH} is {size} bytes, more than the {MAX_PRIMER_BYTES} a primer may have"
    )]
    TooLarge { path: PathBuf, size: u64 },
    /// Something other than a directory is in the way on the volume.
    #[error(
        "{path}: exists and is not a directory (symbolic links are not followed); remove it and retry"
    )]
    NotADirectoryOnVolume { path: PathBuf },
    /// An input or the volume does not exist.
    #[error("{0}: not found")]
    NotFound(PathBuf),
    /// Writing the primer failed.
    #[error("writing the primer: {0}")]
    Write(#[from] WriteError),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_ctx(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> PrimerError {
    move |source| PrimerError::Io {
        context: context(),
        source,
    }
}

/// The owner and mode every primer directory gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimerSpec {
    pub owner: Owner,
    /// Permission bits (0o777 at most).
    pub mode: u32,
}

impl Default for PrimerSpec {
    fn default() -> Self {
        PrimerSpec {
            owner: Owner {
                uid: DEFAULT_UID,
                gid: DEFAULT_GID,
            },
            mode: DEFAULT_MODE,
        }
    }
}

impl PrimerSpec {
    /// A checked spec: ids at most 2097151 (the tar field), mode within 0o777.
    pub fn new(uid: u32, gid: u32, mode: u32) -> Result<Self, PrimerError> {
        if uid > MAX_OWNER_ID || gid > MAX_OWNER_ID {
            return Err(PrimerError::InvalidSpec(format!(
                "uid/gid {uid}:{gid}: ids must be at most {MAX_OWNER_ID}"
            )));
        }
        if mode & !0o777 != 0 {
            return Err(PrimerError::InvalidSpec(format!(
                "mode {mode:#o}: only permission bits (0o777) are allowed"
            )));
        }
        Ok(PrimerSpec {
            owner: Owner { uid, gid },
            mode,
        })
    }
}

/// One directory of a primer, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrimerDir {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The primer's bytes for `spec` (deterministic).
pub fn write_primer(spec: &PrimerSpec) -> Result<Vec<u8>, PrimerError> {
    let opts = GzOptions {
        threads: 1,
        ..GzOptions::default()
    };
    let mut writer = BundleWriter::with_options(Vec::new(), opts)?;
    for name in PRIMER_DIRS {
        writer.add_directory(name, spec.mode, spec.owner)?;
    }
    let (_, bytes) = writer.finish()?;
    Ok(bytes)
}

/// Limits for reading a primer: a few headers, a few KiB.
fn primer_limits() -> ReadLimits {
    ReadLimits {
        max_total_bytes: 1 << 20,
        max_entries: 64,
    }
}

/// Reads a primer strictly (see the module doc); `path` names it in errors.
pub fn read_primer(input: impl Read, path: &Path) -> Result<Vec<PrimerDir>, PrimerError> {
    let refused = |source| PrimerError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Files are let through the reader (any declared size) so that they are refused here,
    // by name, before a byte of their data is read.
    let mut reader = BundleReader::new(input, |_: &str| Some(u64::MAX), primer_limits());
    let mut dirs: Vec<PrimerDir> = Vec::new();
    while let Some(entry) = reader.next_entry().map_err(refused)? {
        if entry.kind != EntryKind::Directory {
            return Err(PrimerError::NotADirectory { entry: entry.path });
        }
        if !PRIMER_DIRS.contains(&entry.path.as_str()) {
            return Err(PrimerError::UnexpectedDirectory { entry: entry.path });
        }
        let Some(owner) = entry.owner else {
            return Err(PrimerError::NoOwner { entry: entry.path });
        };
        dirs.push(PrimerDir {
            name: entry.path.clone(),
            uid: owner.uid,
            gid: owner.gid,
            mode: entry.mode,
        });
    }
    for name in PRIMER_DIRS {
        if !dirs.iter().any(|d| d.name == name) {
            return Err(PrimerError::MissingDirectory { name: name.into() });
        }
    }
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(dirs)
}

/// Where a primer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrimerSource {
    /// The file was a primer.
    Primer,
    /// The file was a kit holding one at [`PRIMER_PATH`].
    Kit,
}

fn open_input(path: &Path) -> Result<File, PrimerError> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            PrimerError::NotFound(path.to_path_buf())
        } else {
            PrimerError::Io {
                context: format!("open {}", path.display()),
                source: e,
            }
        }
    })
}

/// Reads the primer in `path`, which is either a primer (its first entry is one of the
/// primer's directories) or a kit bundle holding one at [`PRIMER_PATH`].
pub fn load_primer(path: &Path) -> Result<(PrimerSource, Vec<PrimerDir>), PrimerError> {
    let refused = |source| PrimerError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = open_input(path)?;
    // A kit can be large: its entries are skipped, never buffered; only names are kept.
    let limits = ReadLimits {
        max_total_bytes: u64::MAX,
        max_entries: 16 << 20,
    };
    let mut reader = BundleReader::new(file, |_: &str| Some(u64::MAX), limits);
    let mut first = true;
    while let Some(mut entry) = reader.next_entry().map_err(refused)? {
        if first && PRIMER_DIRS.contains(&entry.path.as_str()) {
            drop(entry);
            let dirs = read_primer(open_input(path)?, path)?;
            return Ok((PrimerSource::Primer, dirs));
        }
        first = false;
        if entry.path == PRIMER_PATH && entry.kind == EntryKind::File {
            if entry.size > MAX_PRIMER_BYTES {
                return Err(PrimerError::TooLarge {
                    path: path.to_path_buf(),
                    size: entry.size,
                });
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| refused(ReadError::from_io(e, 0, Some(PRIMER_PATH))))?;
            let inner = path.join(PRIMER_PATH);
            let dirs = read_primer(&bytes[..], &inner)?;
            return Ok((PrimerSource::Kit, dirs));
        }
    }
    Err(PrimerError::NoPrimerInKit {
        path: path.to_path_buf(),
    })
}

/// What extraction did to one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirAction {
    /// It did not exist and was made.
    Created,
    /// It existed with another mode (or, as root, owner) and was corrected.
    Corrected,
    /// It was already as the primer says (as far as this user may apply it).
    Unchanged,
}

/// One directory's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirOutcome {
    pub path: PathBuf,
    pub action: DirAction,
    pub uid: u32,
    pub gid: u32,
    pub mode: String,
    /// Whether the directory now has the primer's uid/gid.
    pub owner_matches: bool,
}

/// What [`extract_primer`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractReport {
    pub volume: PathBuf,
    /// Whether anything on the volume changed.
    pub changed: bool,
    /// Whether ownership was applied (only as root).
    pub ownership_applied: bool,
    /// Why ownership was not applied, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership_note: Option<String>,
    pub directories: Vec<DirOutcome>,
}

/// Whether this process may change ownership (effective uid 0).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Lays `dirs` onto the existing directory `volume` (see the module doc); ownership is
/// applied only when `apply_ownership` (normally [`running_as_root`]).
pub fn extract_primer(
    dirs: &[PrimerDir],
    volume: &Path,
    apply_ownership: bool,
) -> Result<ExtractReport, PrimerError> {
    match fs::metadata(volume) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(PrimerError::NotADirectoryOnVolume {
                path: volume.to_path_buf(),
            });
        }
        Err(_) => return Err(PrimerError::NotFound(volume.to_path_buf())),
    }
    let mut outcomes = Vec::with_capacity(dirs.len());
    for dir in dirs {
        // Names were checked by `read_primer`; check again so this function is safe alone.
        if !PRIMER_DIRS.contains(&dir.name.as_str()) {
            return Err(PrimerError::UnexpectedDirectory {
                entry: dir.name.clone(),
            });
        }
        outcomes.push(apply_dir(dir, &volume.join(&dir.name), apply_ownership)?);
    }
    let changed = outcomes.iter().any(|o| o.action != DirAction::Unchanged);
    let all_owned = outcomes.iter().all(|o| o.owner_matches);
    let ownership_note = (!apply_ownership && !all_owned)
        .then(|| "ownership was not applied: not running as root (modes were applied)".to_string());
    Ok(ExtractReport {
        volume: volume.to_path_buf(),
        changed,
        ownership_applied: apply_ownership,
        ownership_note,
        directories: outcomes,
    })
}

fn apply_dir(
    dir: &PrimerDir,
    target: &Path,
    apply_ownership: bool,
) -> Result<DirOutcome, PrimerError> {
    let mut action = DirAction::Unchanged;
    match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(_) => {
            return Err(PrimerError::NotADirectoryOnVolume {
                path: target.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(target).map_err(io_ctx(|| format!("create {}", target.display())))?;
            action = DirAction::Created;
        }
        Err(e) => {
            return Err(PrimerError::Io {
                context: format!("stat {}", target.display()),
                source: e,
            });
        }
    }
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(target)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => PrimerError::NotADirectoryOnVolume {
                path: target.to_path_buf(),
            },
            _ => PrimerError::Io {
                context: format!("open {}", target.display()),
                source: e,
            },
        })?;
    let stat = |f: &File| {
        f.metadata()
            .map_err(io_ctx(|| format!("stat {}", target.display())))
    };
    let meta = stat(&handle)?;
    if apply_ownership && (meta.uid(), meta.gid()) != (dir.uid, dir.gid) {
        std::os::unix::fs::fchown(&handle, Some(dir.uid), Some(dir.gid))
            .map_err(io_ctx(|| format!("chown {}", target.display())))?;
        if action == DirAction::Unchanged {
            action = DirAction::Corrected;
        }
    }
    // After chown, which may clear mode bits on some systems.
    let meta = stat(&handle)?;
    if meta.mode() & 0o7777 != dir.mode {
        handle
            .set_permissions(fs::Permissions::from_mode(dir.mode))
            .map_err(io_ctx(|| format!("chmod {}", target.display())))?;
        if action == DirAction::Unchanged {
            action = DirAction::Corrected;
        }
    }
    let meta = stat(&handle)?;
    Ok(DirOutcome {
        path: target.to_path_buf(),
        action,
        uid: dir.uid,
        gid: dir.gid,
        mode: format!("{:04o}", dir.mode),
        owner_matches: (meta.uid(), meta.gid()) == (dir.uid, dir.gid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Owner;
    use std::io::Write;

    fn spec() -> PrimerSpec {
        PrimerSpec::new(4242, 4343, 0o750).expect("spec")
    }

    #[test]
    fn primer_is_deterministic_and_reads_back() {
        let a = write_primer(&spec()).expect("write");
        let b = write_primer(&spec()).expect("write");
        assert_eq!(a, b);
        assert_ne!(a, write_primer(&PrimerSpec::default()).expect("write"));
        let dirs = read_primer(&a[..], Path::new("p")).expect("read");
        assert_eq!(dirs.len(), 3);
        for (d, name) in dirs.iter().zip(PRIMER_DIRS) {
            assert_eq!(
                (d.name.as_str(), d.uid, d.gid, d.mode),
                (name, 4242, 4343, 0o750)
            );
        }
    }

    #[test]
    fn primer_spec_is_checked() {
        assert!(PrimerSpec::new(0, 0, 0o4770).is_err());
        assert!(PrimerSpec::new(MAX_OWNER_ID + 1, 0, 0o770).is_err());
        assert_eq!(
            PrimerSpec::default().owner,
            Owner {
                uid: 1654,
                gid: 1654
            }
        );
    }

    /// A gzip'd tar of hand-made GNU headers (the writer refuses these): (name, type,
    /// data; for a link type the data is the target).
    fn hostile(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, typeflag, data) in entries {
            let is_link = *typeflag == b'1' || *typeflag == b'2';
            let size = if is_link { 0 } else { data.len() };
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000755\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = *typeflag;
            if is_link {
                h[157..157 + data.len()].copy_from_slice(data);
            }
            h[257..263].copy_from_slice(b"ustar ");
            h[263..265].copy_from_slice(b" \0");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            tar.extend_from_slice(&h);
            if !is_link {
                tar.extend_from_slice(data);
                tar.resize(tar.len().div_ceil(512) * 512, 0);
            }
        }
        tar.resize(tar.len() + 1024, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn primer_refuses_anything_but_its_directories() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                hostile(&[("outputs/", b'5', b""), ("outputs/x", b'0', b"hi")]),
                "is a file",
            ),
            (hostile(&[("outputs", b'2', b"/etc")]), "symbolic link"),
            (hostile(&[("../outputs/", b'5', b"")]), "`..`"),
            (hostile(&[("/queue/", b'5', b"")]), "absolute"),
            (hostile(&[("tmp/", b'5', b"")]), "not one of"),
            (hostile(&[("queue/sub/", b'5', b"")]), "not one of"),
            (hostile(&[("outputs/", b'5', b"")]), "no plans/"),
        ];
        for (bytes, want) in cases {
            let e = read_primer(&bytes[..], Path::new("p")).expect_err(want);
            let text = format!(
                "{e} {:?}",
                std::error::Error::source(&e).map(|s| s.to_string())
            );
            assert!(text.contains(want), "{text} should contain {want}");
        }
    }

    #[test]
    fn extract_is_idempotent_and_corrects() {
        let dirs = read_primer(&write_primer(&spec()).expect("w")[..], Path::new("p")).expect("r");
        let vol = tempfile::tempdir().expect("tmp");
        // Not root: modes applied, ownership reported as not applied.
        let first = extract_primer(&dirs, vol.path(), false).expect("extract");
        assert!(first.changed);
        assert!(
            first
                .directories
                .iter()
                .all(|d| d.action == DirAction::Created)
        );
        let second = extract_primer(&dirs, vol.path(), false).expect("extract");
        assert!(!second.changed);
        assert!(
            second
                .directories
                .iter()
                .all(|d| d.action == DirAction::Unchanged)
        );
        let queue = vol.path().join("queue");
        fs::set_permissions(&queue, fs::Permissions::from_mode(0o700)).expect("chmod");
        let third = extract_primer(&dirs, vol.path(), false).expect("extract");
        assert!(third.changed);
        assert_eq!(fs::metadata(&queue).expect("stat").mode() & 0o777, 0o750);
        if running_as_root() {
            let owned = extract_primer(&dirs, vol.path(), true).expect("extract");
            assert!(owned.ownership_applied && owned.ownership_note.is_none());
            assert!(owned.directories.iter().all(|d| d.owner_matches));
            let again = extract_primer(&dirs, vol.path(), true).expect("extract");
            assert!(!again.changed);
        } else {
            assert!(third.ownership_note.is_some());
        }
    }

    #[test]
    fn extract_refuses_a_symlink_or_file_in_the_way() {
        let dirs = read_primer(&write_primer(&spec()).expect("w")[..], Path::new("p")).expect("r");
        let vol = tempfile::tempdir().expect("tmp");
        let elsewhere = tempfile::tempdir().expect("tmp");
        std::os::unix::fs::symlink(elsewhere.path(), vol.path().join("plans")).expect("link");
        let e = extract_primer(&dirs, vol.path(), false).expect_err("symlink");
        assert!(
            matches!(e, PrimerError::NotADirectoryOnVolume { .. }),
            "{e}"
        );
        fs::remove_file(vol.path().join("plans")).expect("rm");
        fs::write(vol.path().join("plans"), b"x").expect("file");
        let e = extract_primer(&dirs, vol.path(), false).expect_err("file");
        assert!(
            matches!(e, PrimerError::NotADirectoryOnVolume { .. }),
            "{e}"
        );
    }
}
