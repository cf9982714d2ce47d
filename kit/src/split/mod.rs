//! Split kits: a bundle cut into numbered parts small enough for a FAT32 USB stick
//! (`ouk kit split`), and the importer's view of a bundle as one file or as such a set of
//! parts ([`BundleInput`]).
//!
//! On disk, next to each other (see `docs/formats.md`):
//! - `<bundle>.part001`, `.part002`, ...: consecutive byte ranges of the bundle, each with
//!   a `<part>.sha256` sidecar in `sha256sum` format;
//! - `<bundle>.parts.json`: the [`PartsIndex`] (order, sizes and digests of the parts, the
//!   bundle's size and digest), written last, so its presence means the set is complete;
//! - the bundle's own `.sha256`, `.sig`, `.metadata.json` (and the `manifest/` sidecar when
//!   it belongs to the bundle), copied unchanged, so the import finds them exactly as it
//!   would next to the whole bundle.
//!
//! Invariants:
//! - [`PartsReader`] chains the part files into one `Read`; the importer reads it once,
//!   into its private copy ([`BundleInput::read_once`]), and every later pass reads that
//!   copy (`kit verify` reads the parts in one pass);
//! - every part is checked against the index as it is read: its size before the first
//!   byte (so a truncated or padded part fails at once), its SHA-256 when its last byte has
//!   been read (so a part that changes between the pipeline's passes fails that pass, and
//!   the pass that unpacks reads every part to the end before anything is committed);
//! - the index is untrusted: the signature is checked against the SHA-256 of the bytes the
//!   parts actually hold, and the whole-bundle digest the index records must match them;
//! - errors name the part (number, file, expected and actual size or digest).

mod index;
mod write;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ouk_store::fsutil::HashingReader;

use crate::read_once::{PrivateCopy, ReportingReader};

pub use index::{
    BundleRef, INDEX_FORMAT, InvalidIndex, MAX_INDEX_BYTES, MAX_NAME_BYTES, MAX_PARTS, PartName,
    PartRef, PartsIndex, check_bundle_name, index_name, part_name,
};
pub use write::{DEFAULT_MAX_PART_SIZE, SplitOptions, SplitPart, SplitReport, split_bundle};

use crate::error::{KitError, Result};

/// What can be wrong with a split kit.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// The file named is not a part or index of a split kit (or not one its index lists).
    #[error("{path}: not a part of a split kit ({reason})")]
    NotAPart {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The index is not next to the parts.
    #[error(
        "{index}: the parts index is missing (`ouk kit split` writes it last; copy it next to the parts)"
    )]
    MissingIndex {
        /// Where it was looked for.
        index: PathBuf,
    },
    /// The index does not parse or breaks a rule.
    #[error("{path}: invalid parts index: {reason}")]
    BadIndex {
        /// The index.
        path: PathBuf,
        /// What is wrong.
        reason: InvalidIndex,
    },
    /// A part the index lists is not there.
    #[error(
        "part {number} of {count} is missing: {path} (expected {expected_size} bytes, sha256 {expected_sha256})"
    )]
    Missing {
        /// 1-based part number.
        number: usize,
        /// Parts in the set.
        count: usize,
        /// Where it should be.
        path: PathBuf,
        /// Its recorded size.
        expected_size: u64,
        /// Its recorded digest.
        expected_sha256: String,
    },
    /// A part has another size than the index records (truncated, padded, or another
    /// part under its name).
    #[error(
        "part {number} of {count} ({path}) has {actual} bytes, expected {expected}: re-copy it{hint}"
    )]
    Size {
        /// 1-based part number.
        number: usize,
        /// Parts in the set.
        count: usize,
        /// The part file.
        path: PathBuf,
        /// Recorded size.
        expected: u64,
        /// Size found.
        actual: u64,
        /// A guess at what happened, or empty.
        hint: String,
    },
    /// A part's bytes do not have the recorded SHA-256.
    #[error(
        "part {number} of {count} ({path}): digest mismatch (expected {expected}, got {actual}): re-copy it{hint}"
    )]
    Digest {
        /// 1-based part number.
        number: usize,
        /// Parts in the set.
        count: usize,
        /// The part file.
        path: PathBuf,
        /// Recorded hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
        /// A guess at what happened (the bytes of another part: renamed or reordered), or
        /// empty.
        hint: String,
    },
    /// Every part matches the index but the index's whole-bundle digest does not match
    /// the concatenation (a forged or inconsistent index).
    #[error(
        "{index}: the parts reassemble to sha256 {actual} ({actual_size} bytes) but the index records {expected} ({expected_size} bytes)"
    )]
    Whole {
        /// The index.
        index: PathBuf,
        /// Recorded digest.
        expected: String,
        /// Digest of the parts.
        actual: String,
        /// Recorded size.
        expected_size: u64,
        /// Bytes in the parts.
        actual_size: u64,
    },
    /// `kit split` would overwrite something.
    #[error("{path} exists: {reason}")]
    Exists {
        /// The file in the way.
        path: PathBuf,
        /// Why it is in the way.
        reason: String,
    },
    /// `kit split`: the output directory already holds parts of this bundle.
    #[error("{} exists: {} already holds {count} part file(s) of {bundle}", path.display(), dir.display())]
    PartsInTheWay {
        /// The first part file in the way.
        path: PathBuf,
        /// The output directory.
        dir: PathBuf,
        /// How many part files of the bundle it holds.
        count: usize,
        /// The bundle's file name.
        bundle: String,
    },
    /// `kit split`: the part size would cut the bundle into more parts than a set holds.
    #[error(
        "a part size of {max_part_size} bytes would cut {size} bytes into {count} parts, more than {}",
        MAX_PARTS
    )]
    TooManyParts {
        /// The part size asked for.
        max_part_size: u64,
        /// The bundle's size.
        size: u64,
        /// The parts it would make.
        count: u64,
    },
    /// Reading a part or the index failed (local I/O).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl PartError {
    /// True for a set that is incomplete (a part or the index not there): nothing is
    /// wrong with the bytes that are there.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            PartError::Missing { .. } | PartError::MissingIndex { .. }
        )
    }

    /// True when the bytes of a part (or the index's whole digest) are wrong: damage,
    /// truncation, reordering.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            PartError::Size { .. } | PartError::Digest { .. } | PartError::Whole { .. }
        )
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The `PartError` inside an `io::Error` from a [`PartsReader`], or the error back
    /// when it holds none.
    pub(crate) fn from_read_error(e: io::Error) -> Result<PartError, io::Error> {
        if e.get_ref().is_some_and(|inner| inner.is::<PartError>()) {
            Ok(PartError::from_io(e, String::new))
        } else {
            Err(e)
        }
    }

    /// Recover a `PartError` that travelled inside an `io::Error` (from [`PartsReader`]).
    fn from_io(e: io::Error, context: impl FnOnce() -> String) -> PartError {
        if e.get_ref().is_some_and(|inner| inner.is::<PartError>()) {
            match e.into_inner().map(|inner| inner.downcast::<PartError>()) {
                Some(Ok(p)) => return *p,
                Some(Err(other)) => {
                    return PartError::Io {
                        context: context(),
                        source: io::Error::other(other),
                    };
                }
                None => {
                    return PartError::Io {
                        context: context(),
                        source: io::Error::other("empty wrapped error"),
                    };
                }
            }
        }
        PartError::Io {
            context: context(),
            source: e,
        }
    }
}

/// A verified-against-nothing-yet set of parts: the index, parsed and validated, and where
/// the parts are.
#[derive(Debug, Clone)]
pub struct PartSet {
    dir: PathBuf,
    index_path: PathBuf,
    index: PartsIndex,
}

impl PartSet {
    /// The set `file` (one of its parts, or its index) belongs to: finds and parses the
    /// index next to it. The named file must be the index or a part the index lists.
    pub fn open(file: &Path) -> Result<PartSet, PartError> {
        let not_a_part = |reason: &str| PartError::NotAPart {
            path: file.to_path_buf(),
            reason: reason.into(),
        };
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| not_a_part("no UTF-8 file name"))?;
        let which = PartName::of(name)
            .ok_or_else(|| not_a_part("expected NAME.partNNN or NAME.parts.json"))?;
        let bundle = which.bundle();
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let index_path = dir.join(index_name(bundle));
        let mut bytes = Vec::new();
        match File::open(&index_path) {
            Ok(f) => f
                .take(MAX_INDEX_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| PartError::Io {
                    context: format!("read {}", index_path.display()),
                    source,
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PartError::MissingIndex { index: index_path });
            }
            Err(source) => {
                return Err(PartError::Io {
                    context: format!("open {}", index_path.display()),
                    source,
                });
            }
        };
        let index = PartsIndex::parse(&bytes).map_err(|reason| PartError::BadIndex {
            path: index_path.clone(),
            reason,
        })?;
        if index.bundle.name != bundle {
            return Err(PartError::BadIndex {
                path: index_path,
                reason: InvalidIndex(format!(
                    "it describes {:?}, not {bundle:?}",
                    index.bundle.name
                )),
            });
        }
        if let PartName::Part { number, .. } = which
            && index
                .parts
                .get(number.wrapping_sub(1))
                .map(|p| p.name.as_str())
                != Some(name)
        {
            return Err(not_a_part(&format!(
                "{} does not list it (the set has parts {} to {})",
                index_path.display(),
                part_name(bundle, 1),
                part_name(bundle, index.parts.len())
            )));
        }
        Ok(PartSet {
            dir,
            index_path,
            index,
        })
    }

    /// The index.
    pub fn index(&self) -> &PartsIndex {
        &self.index
    }

    /// Where the index is.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// Where part `i` (0-based) is.
    pub fn part_path(&self, i: usize) -> Option<PathBuf> {
        self.index.parts.get(i).map(|p| self.dir.join(&p.name))
    }

    /// The path the whole bundle would have next to the parts: its sidecars are found
    /// from it as from a bundle (`<bundle>.sha256`, `.sig`, `.metadata.json`, `manifest/`).
    /// Nothing is read from this path.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join(&self.index.bundle.name)
    }

    /// The concatenation of the parts, checked part by part as it is read.
    pub fn reader(&self) -> PartsReader<'_> {
        PartsReader {
            set: self,
            next: 0,
            current: None,
        }
    }

    /// Read every part once, checking each against the index, and return the SHA-256 and
    /// size of the concatenation, which must also be what the index records for the whole
    /// bundle.
    pub fn verify(&self) -> Result<([u8; 32], u64), PartError> {
        let (digest, size) = crate::read_once::HashingReader::new(self.reader())
            .finish()
            .map_err(|e| {
                PartError::from_io(e, || {
                    format!("read the parts of {}", self.index.bundle.name)
                })
            })?;
        self.check_whole(digest, size)?;
        Ok((digest, size))
    }

    /// The concatenation's digest and size against what the index records for the whole
    /// bundle.
    pub(crate) fn check_whole(&self, digest: [u8; 32], size: u64) -> Result<(), PartError> {
        let actual = hex::encode(digest);
        if actual != self.index.bundle.sha256 || size != self.index.bundle.size {
            return Err(PartError::Whole {
                index: self.index_path.clone(),
                expected: self.index.bundle.sha256.clone(),
                actual,
                expected_size: self.index.bundle.size,
                actual_size: size,
            });
        }
        Ok(())
    }

    /// A guess for a part whose content is wrong: whose bytes it holds.
    fn hint_for_digest(&self, number: usize, actual: &str) -> String {
        match self.index.parts.iter().position(|p| p.sha256 == actual) {
            Some(i) if i + 1 != number => format!(
                " (it holds the bytes of part {} ({}): parts renamed or out of order?)",
                i + 1,
                self.index.parts.get(i).map_or("", |p| p.name.as_str())
            ),
            _ => String::new(),
        }
    }

    /// A guess for a part whose size is wrong.
    fn hint_for_size(&self, number: usize, actual: u64) -> String {
        let count = self.index.parts.len();
        let expected = self.index.parts.get(number - 1).map_or(0, |p| p.size);
        let last_size = self.index.parts.last().map_or(0, |p| p.size);
        if actual < expected {
            if number != count && actual == last_size {
                format!(" (the size of part {count}, the last: parts renamed or out of order?)")
            } else {
                " (truncated: an interrupted copy?)".into()
            }
        } else if number == count && actual == self.index.max_part_size {
            " (the size of a full part: parts renamed or out of order?)".into()
        } else {
            String::new()
        }
    }
}

struct CurrentPart {
    number: usize,
    path: PathBuf,
    /// The part, hashed as it is read.
    file: HashingReader<File>,
    remaining: u64,
}

/// The parts of a [`PartSet`] as one stream. Errors are `io::Error`s of kind
/// `InvalidData` wrapping a [`PartError`] that names the part.
pub struct PartsReader<'a> {
    set: &'a PartSet,
    next: usize,
    current: Option<CurrentPart>,
}

impl PartsReader<'_> {
    fn open_next(&mut self) -> Result<Option<CurrentPart>, PartError> {
        let index = &self.set.index;
        let count = index.parts.len();
        let Some(part) = index.parts.get(self.next) else {
            return Ok(None);
        };
        let number = self.next + 1;
        let path = self.set.dir.join(&part.name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PartError::Missing {
                    number,
                    count,
                    path,
                    expected_size: part.size,
                    expected_sha256: part.sha256.clone(),
                });
            }
            Err(source) => {
                return Err(PartError::Io {
                    context: format!("open {}", path.display()),
                    source,
                });
            }
        };
        let meta = file.metadata().map_err(|source| PartError::Io {
            context: format!("stat {}", path.display()),
            source,
        })?;
        if !meta.is_file() {
            return Err(PartError::NotAPart {
                path,
                reason: "not a regular file".into(),
            });
        }
        if meta.len() != part.size {
            let hint = self.set.hint_for_size(number, meta.len());
            return Err(PartError::Size {
                number,
                count,
                path,
                expected: part.size,
                actual: meta.len(),
                hint,
            });
        }
        Ok(Some(CurrentPart {
            number,
            path,
            file: HashingReader::new(file),
            remaining: part.size,
        }))
    }

    /// Called when a part's last recorded byte has been read.
    fn finish(&self, cur: CurrentPart) -> Result<(), PartError> {
        let index = &self.set.index;
        let expected = index
            .parts
            .get(cur.number - 1)
            .map(|p| p.sha256.clone())
            .unwrap_or_default();
        let actual = hex::encode(cur.file.digest().0);
        if actual != expected {
            let hint = self.set.hint_for_digest(cur.number, &actual);
            return Err(PartError::Digest {
                number: cur.number,
                count: index.parts.len(),
                path: cur.path,
                expected,
                actual,
                hint,
            });
        }
        Ok(())
    }
}

impl Read for PartsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(cur) = self.current.as_mut() else {
                match self.open_next().map_err(PartError::into_io)? {
                    Some(c) => {
                        self.current = Some(c);
                        continue;
                    }
                    None => return Ok(0),
                }
            };
            if cur.remaining == 0 {
                if let Some(done) = self.current.take() {
                    self.finish(done).map_err(PartError::into_io)?;
                }
                self.next += 1;
                continue;
            }
            let want = usize::try_from(cur.remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let Some(window) = buf.get_mut(..want) else {
                return Ok(0);
            };
            let n = match cur.file.read(window) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(PartError::Io {
                        context: format!("read {}", cur.path.display()),
                        source,
                    }
                    .into_io());
                }
            };
            if n == 0 {
                // The file shrank after its size was checked.
                let count = self.set.index.parts.len();
                let expected = self
                    .set
                    .index
                    .parts
                    .get(cur.number - 1)
                    .map_or(0, |p| p.size);
                return Err(PartError::Size {
                    number: cur.number,
                    count,
                    path: cur.path.clone(),
                    expected,
                    actual: expected.saturating_sub(cur.remaining),
                    hint: " (it shrank while being read)".into(),
                }
                .into_io());
            }
            cur.remaining -= n as u64;
            return Ok(n);
        }
    }
}

/// Open the bundle file at `p` (a missing one is `NotFound`, named as the user gave it).
fn open_bundle(p: &Path) -> Result<File> {
    File::open(p).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => KitError::NotFound(p.to_path_buf()),
        _ => KitError::Io {
            context: format!("open {}", p.display()),
            source,
        },
    })
}

/// The bundle an import or verification reads: one file, or a split kit's parts, or a
/// private copy of either ([`BundleInput::read_once`]).
#[derive(Debug, Clone)]
pub enum BundleInput {
    /// A whole bundle.
    File(PathBuf),
    /// A split kit.
    Parts(PartSet),
    /// A private copy of `origin`, taken in one read: every pass reads the copy, and its
    /// digest is that of the copied bytes.
    Private {
        /// What was copied (its path finds the sidecars and names the input in messages).
        origin: Box<BundleInput>,
        /// The copy.
        copy: Arc<PrivateCopy>,
    },
}

impl BundleInput {
    /// Read the input once into a private copy in `dir` (the root's `staging/`): the
    /// pipeline's later passes read the copy, so what was hashed (and what the signature
    /// is checked against) is exactly what is unpacked, whatever the original path returns
    /// afterwards. A split kit's parts are checked against their index on the way, and the
    /// whole against the index's digest.
    pub fn read_once(self, dir: &Path) -> Result<BundleInput> {
        self.read_once_reporting(dir, &mut ouk_store::progress::ignore)
    }

    /// [`BundleInput::read_once`], reporting the copy as the phase `verify` (bytes; its
    /// total is the file's size, or the size a split kit's index declares).
    pub fn read_once_reporting(
        self,
        dir: &Path,
        progress: ouk_store::progress::StepSink<'_>,
    ) -> Result<BundleInput> {
        let verify_phase = |total: Option<u64>| ouk_store::progress::Step::Phase {
            name: "verify",
            total,
            unit: ouk_store::progress::Unit::Bytes,
        };
        let copy = match &self {
            BundleInput::Private { .. } => return Ok(self),
            BundleInput::File(p) => {
                let file = open_bundle(p)?;
                let is_file = file.metadata().is_ok_and(|m| m.is_file());
                if !is_file {
                    return Err(KitError::Validation(format!(
                        "{}: not a regular file",
                        p.display()
                    )));
                }
                progress(verify_phase(file.metadata().ok().map(|m| m.len())));
                let file = ReportingReader::new(file, &mut *progress);
                PrivateCopy::take(file, dir, &p.display().to_string())?
            }
            BundleInput::Parts(s) => {
                progress(verify_phase(Some(s.index.bundle.size)));
                let copy = PrivateCopy::take(
                    ReportingReader::new(s.reader(), &mut *progress),
                    dir,
                    &format!("the parts of {}", s.index.bundle.name),
                )?;
                s.check_whole(copy.sha256(), copy.size())?;
                copy
            }
        };
        Ok(BundleInput::Private {
            origin: Box::new(self),
            copy: Arc::new(copy),
        })
    }

    /// `path` as the user named it: a file whose name is a part name
    /// (`<bundle>.partNNN`) or an index name (`<bundle>.parts.json`) is a split kit,
    /// anything else a whole bundle.
    pub fn open(path: &Path) -> Result<BundleInput> {
        let is_part = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(PartName::of)
            .is_some();
        if !is_part {
            return Ok(BundleInput::File(path.to_path_buf()));
        }
        if !path.is_file() {
            return Err(KitError::NotFound(path.to_path_buf()));
        }
        Ok(BundleInput::Parts(PartSet::open(path)?))
    }

    /// The bundle's path: sidecars are discovered from it. For a split kit, where the
    /// bundle would be next to its parts (it need not exist).
    pub fn path(&self) -> PathBuf {
        match self {
            BundleInput::File(p) => p.clone(),
            BundleInput::Parts(s) => s.bundle_path(),
            BundleInput::Private { origin, .. } => origin.path(),
        }
    }

    /// The bundle's bytes, from the start.
    pub fn reader(&self) -> Result<Box<dyn Read + '_>> {
        match self {
            BundleInput::File(p) => Ok(Box::new(open_bundle(p)?)),
            BundleInput::Parts(s) => Ok(Box::new(s.reader())),
            BundleInput::Private { copy, .. } => Ok(Box::new(copy.open()?)),
        }
    }

    /// SHA-256 and size of the bundle (for a split kit: every part checked on the way).
    pub fn digest(&self) -> Result<([u8; 32], u64)> {
        match self {
            BundleInput::File(p) => {
                if !p.is_file() {
                    return Err(KitError::NotFound(p.clone()));
                }
                crate::verify::sha256_file(p)
            }
            BundleInput::Parts(s) => Ok(s.verify()?),
            BundleInput::Private { copy, .. } => Ok((copy.sha256(), copy.size())),
        }
    }

    /// The private copy's file, for a private copy: code that reads by path reads it.
    pub fn private_path(&self) -> Option<&Path> {
        match self {
            BundleInput::Private { copy, .. } => Some(copy.path()),
            _ => None,
        }
    }

    /// The split kit, when it is one.
    pub fn parts(&self) -> Option<&PartSet> {
        match self {
            BundleInput::File(_) => None,
            BundleInput::Parts(s) => Some(s),
            BundleInput::Private { origin, .. } => origin.parts(),
        }
    }
}

/// The files to keep as evidence when the import of `path` is refused: `path` itself for a
/// bundle; for a part or index, the index and every `<bundle>.partNNN` next to it (found by
/// name: the index may be what is wrong).
pub fn evidence_files(path: &Path) -> Vec<PathBuf> {
    let Some(bundle) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(PartName::of)
        .map(|p| p.bundle().to_string())
    else {
        return vec![path.to_path_buf()];
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let belongs = PartName::of(&name).is_some_and(|p| p.bundle() == bundle);
            (belongs && e.file_type().is_ok_and(|t| t.is_file())).then(|| e.path())
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests;
