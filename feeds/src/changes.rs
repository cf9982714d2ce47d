//! The changes file (`ouk-feeds-changes/1`): the rows a generation changed, one per line.
//!
//! ```text
//! {"format":"ouk-feeds-changes/1","generation":"<64 hex>","baseline":"<64 hex>"}
//! {"source":"osv","id":"GHSA-aaaa","change":"modified","hash":"<64 hex>","previous":"<64 hex>"}
//! {"source":"osv","id":"GHSA-cccc","tenant":"acme","change":"added","hash":"<64 hex>"}
//! {"source":"osv","id":"GHSA-dddd","change":"withdrawn","previous":"<64 hex>"}
//! ```
//!
//! The first line names the format, the generation the rows lead to and the baseline they
//! were diffed against (`null`: none, every row is added). Each further line is a
//! [`RowChange`], in (source, id, tenant) order, as [`super::diff`] defines it.
//!
//! The importer writes it as `ROOT/changes/<gen-id>.jsonl`; `ouk delta make` puts the same
//! format into a delta as `delta/feeds-changes.jsonl` (baseline: the delta's baseline).
//!
//! Invariant: a changes file under `ROOT/changes/` is complete or absent: it is written
//! under a dot-name, fsynced, renamed into place and its directory fsynced; a dot-name
//! left by a crash is removed when the root is next opened.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use ouk_delta::GenerationId;
use ouk_store::fsutil::{AtomicFile, FsError};
use serde::{Deserialize, Serialize};

use super::diff::RowChange;

/// The format name on a changes file's first line.
pub const CHANGES_FORMAT: &str = "ouk-feeds-changes/1";
/// Longest line a reader accepts.
const MAX_LINE: u64 = 256 * 1024;

/// A changes file's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesHeader {
    /// [`CHANGES_FORMAT`].
    pub format: String,
    /// The generation the changes lead to.
    pub generation: GenerationId,
    /// The generation they were computed against; `None`: no baseline.
    pub baseline: Option<GenerationId>,
}

impl ChangesHeader {
    /// The header for changes from `baseline` to `generation`.
    pub fn new(generation: GenerationId, baseline: Option<GenerationId>) -> Self {
        ChangesHeader {
            format: CHANGES_FORMAT.into(),
            generation,
            baseline,
        }
    }
}

/// A malformed changes file, or one that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// A line breaks the format (1-based).
    #[error("{path}: line {line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// The line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Writes a changes file's lines to any output.
pub struct ChangesLines<W: Write> {
    out: W,
}

impl<W: Write> ChangesLines<W> {
    /// Start: writes the header line.
    pub fn new(mut out: W, header: &ChangesHeader) -> io::Result<Self> {
        line(&mut out, header)?;
        Ok(ChangesLines { out })
    }
    /// One changed row.
    pub fn push(&mut self, change: &RowChange) -> io::Result<()> {
        line(&mut self.out, change)
    }
    /// Flush and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn line<W: Write, T: Serialize>(out: &mut W, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Writes `dest` atomically: lines go to a temporary file beside it
/// ([`AtomicFile`]: created exclusively, never through a link), which
/// [`ChangesFile::commit`] fsyncs and renames. Dropped without commit, it is removed.
pub struct ChangesFile {
    lines: ChangesLines<BufWriter<AtomicFile>>,
    dest: PathBuf,
}

/// A failed file write keeps its context and its `io::Error` (a full disk stays exit 12).
impl From<FsError> for ChangesError {
    fn from(e: FsError) -> Self {
        ChangesError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

fn write_err(dest: &Path) -> impl FnOnce(io::Error) -> ChangesError + use<> {
    let context = format!("write {}", dest.display());
    move |source| ChangesError::Io { context, source }
}

impl ChangesFile {
    /// Start `dest` (its directory is created when missing).
    pub fn create(dest: &Path, header: &ChangesHeader) -> Result<ChangesFile, ChangesError> {
        let file = AtomicFile::create(dest)?;
        let lines = ChangesLines::new(BufWriter::new(file), header).map_err(write_err(dest))?;
        Ok(ChangesFile {
            lines,
            dest: dest.to_path_buf(),
        })
    }

    /// One changed row.
    pub fn push(&mut self, change: &RowChange) -> Result<(), ChangesError> {
        self.lines.push(change).map_err(write_err(&self.dest))
    }

    /// fsync, rename into place, fsync the directory.
    pub fn commit(self) -> Result<PathBuf, ChangesError> {
        let w = self.lines.finish().map_err(write_err(&self.dest))?;
        let file = w
            .into_inner()
            .map_err(|e| write_err(&self.dest)(e.into_error()))?;
        Ok(file.commit()?)
    }
}

/// Reads a changes file line by line.
pub struct ChangesReader<R: BufRead> {
    input: R,
    name: String,
    line: u64,
    buf: Vec<u8>,
}

impl ChangesReader<BufReader<File>> {
    /// Open the file at `path`.
    pub fn open(path: &Path) -> Result<(ChangesHeader, Self), ChangesError> {
        let f = File::open(path).map_err(|source| ChangesError::Io {
            context: format!("open {}", path.display()),
            source,
        })?;
        ChangesReader::new(BufReader::new(f), &path.display().to_string())
    }
}

impl<R: BufRead> ChangesReader<R> {
    /// Read and check the header line; `name` is used in messages.
    pub fn new(input: R, name: &str) -> Result<(ChangesHeader, Self), ChangesError> {
        let mut r = ChangesReader {
            input,
            name: name.to_string(),
            line: 0,
            buf: Vec::new(),
        };
        if !r.read_line()? {
            return Err(r.malformed("empty changes file".into()));
        }
        let header: ChangesHeader = r.parse()?;
        if header.format != CHANGES_FORMAT {
            return Err(r.malformed(format!(
                "format {:?}, this ouk reads {CHANGES_FORMAT}",
                header.format
            )));
        }
        Ok((header, r))
    }

    /// The next change; `None` at the end.
    pub fn next_change(&mut self) -> Result<Option<RowChange>, ChangesError> {
        if !self.read_line()? {
            return Ok(None);
        }
        self.parse().map(Some)
    }

    fn read_line(&mut self) -> Result<bool, ChangesError> {
        use std::io::Read;
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ChangesError::Io {
                context: format!("read {}", self.name),
                source,
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.pop() != Some(b'\n') {
            return Err(self.malformed("line too long or without newline".into()));
        }
        Ok(true)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ChangesError> {
        serde_json::from_slice(&self.buf).map_err(|e| self.malformed(e.to_string()))
    }

    fn malformed(&self, message: String) -> ChangesError {
        ChangesError::Malformed {
            path: self.name.clone(),
            line: self.line,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ChangeKind;
    use crate::index::RowHash;
    use std::fs;

    fn change(id: &str, kind: ChangeKind) -> RowChange {
        RowChange {
            source: "osv".into(),
            id: id.into(),
            tenant: None,
            change: kind,
            hash: (kind != ChangeKind::Withdrawn).then_some(RowHash([1; 32])),
            previous: (kind != ChangeKind::Added).then_some(RowHash([2; 32])),
            hashes: Vec::new(),
            previous_hashes: Vec::new(),
        }
    }

    #[test]
    fn a_committed_file_reads_back_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("changes/x.jsonl");
        let header = ChangesHeader::new(GenerationId([7; 32]), None);
        let mut f = ChangesFile::create(&dest, &header).unwrap();
        f.push(&change("A", ChangeKind::Added)).unwrap();
        f.push(&change("B", ChangeKind::Withdrawn)).unwrap();
        assert!(!dest.exists(), "nothing under the real name before commit");
        f.commit().unwrap();
        let text = fs::read_to_string(&dest).unwrap();
        assert!(text.starts_with(&format!(
            "{{\"format\":\"{CHANGES_FORMAT}\",\"generation\":\"{}\",\"baseline\":null}}\n",
            "07".repeat(32)
        )));
        let (h, mut r) = ChangesReader::open(&dest).unwrap();
        assert_eq!(h, header);
        assert_eq!(r.next_change().unwrap().unwrap().id, "A");
        assert_eq!(
            r.next_change().unwrap().unwrap().change,
            ChangeKind::Withdrawn
        );
        assert!(r.next_change().unwrap().is_none());

        let other = dir.path().join("changes/y.jsonl");
        let mut f = ChangesFile::create(&other, &header).unwrap();
        f.push(&change("A", ChangeKind::Added)).unwrap();
        drop(f);
        let names: Vec<String> = fs::read_dir(dir.path().join("changes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["x.jsonl".to_string()]);
    }

    #[test]
    fn a_reader_refuses_other_formats_and_truncated_lines() {
        let bad = b"{\"format\":\"ouk-feeds-changes/9\",\"generation\":\"00\",\"baseline\":null}\n";
        assert!(ChangesReader::new(&bad[..], "t").is_err());
        let mut good = Vec::new();
        let lines =
            ChangesLines::new(&mut good, &ChangesHeader::new(GenerationId([0; 32]), None)).unwrap();
        lines.finish().unwrap();
        good.extend_from_slice(b"{\"source\":\"osv\"");
        let (_, mut r) = ChangesReader::new(&good[..], "t").unwrap();
        assert!(matches!(
            r.next_change(),
            Err(ChangesError::Malformed { line: 2, .. })
        ));
    }
}
