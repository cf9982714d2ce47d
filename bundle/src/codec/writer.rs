//! The deterministic bundle writer.
//!
//! Job: turn a sorted sequence of (name, mode, content) into the kit's `.tar.gz`, reporting
//! each entry's SHA-256 and size as its bytes are copied and the bundle's SHA-256 and size
//! as they are written, so nothing is read twice.
//!
//! Invariants of the output (the bundle format):
//! - GNU tar headers (see `header`), entries at the archive root with no `./` prefix;
//! - regular files plus, right before the first entry below it, one entry per parent
//!   directory (`name/`, mode 0755), so GNU tar extracts the same directory modes whatever
//!   the umask (unless [`BundleWriter::without_parent_entries`] leaves them out: a delta,
//!   whose one directory carries nothing, since readers create parents); no links,
//!   devices or other types are ever written;
//! - entries strictly sorted by the bytes of their names (a directory's name compared with
//!   its trailing `/`): the caller adds files in strictly increasing byte order of their
//!   paths ([`write_bundle`] sorts for you) and the directories then fall into place;
//! - mtime, uid and gid 0, empty uname/gname, the caller's mode (only 0o777 bits);
//!   the one exception is [`BundleWriter::add_directory`], an explicit (possibly empty)
//!   directory with the caller's mode and numeric owner (the advisory AI volume primer);
//! - the archive ends with two zero blocks (no padding to a 10 KiB record);
//! - gzip: one member, written by `pgzip` (fixed header, pinned compressor, level 6 by
//!   default, output independent of the thread count).
//!
//! Memory bound: the compressor's bound (about 16 MiB with 2 threads and 1 MiB blocks,
//! see `pgzip`), a 256 KiB copy buffer, and the set of names written so far (needed to
//! refuse a file that is also a directory): O(sum of name lengths), about 100 bytes per
//! entry. File contents are streamed; multi-GiB inputs do not grow memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ouk_store::fsutil::HashingReader;

use super::error::WriteError;
use super::header::{self, BLOCK, MAX_OWNER_ID, Owner, TYPE_DIR, TYPE_FILE};
use super::path;
use super::pgzip::{GzOptions, ParGzWriter};

/// Mode of the directory entries the writer adds.
pub const DIR_MODE: u32 = 0o755;

const COPY_BUF: usize = 256 * 1024;

/// Options of the bundle writer. `level` and `block_size` are part of the output format;
/// `threads` is not.
pub type WriterOptions = GzOptions;

/// What the writer reports for each file it copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Name in the archive.
    pub path: String,
    /// Mode written.
    pub mode: u32,
    /// Bytes of content.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

impl EntryInfo {
    /// The SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// What the writer reports for the whole bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleSummary {
    /// SHA-256 of the `.tar.gz` bytes.
    pub sha256: [u8; 32],
    /// Size of the `.tar.gz` in bytes.
    pub size: u64,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Regular files written.
    pub files: u64,
    /// Directory entries written.
    pub directories: u64,
}

impl BundleSummary {
    /// The SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Where an entry's content comes from (for [`write_bundle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A file on disk, copied when the entry is written.
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// One file to put in a bundle (for [`write_bundle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    pub path: String,
    pub mode: u32,
    pub source: EntrySource,
}

/// Streams a deterministic `.tar.gz`; see the module doc.
pub struct BundleWriter<W: Write> {
    gz: ParGzWriter<W>,
    /// Every name written; `true` for directories.
    names: HashMap<String, bool>,
    last: Option<String>,
    files: u64,
    directories: u64,
    /// Whether parents get their directory entry.
    parent_entries: bool,
    header_buf: Vec<u8>,
    copy_buf: Vec<u8>,
}

impl<W: Write> BundleWriter<W> {
    /// A writer with the default options (level 6, 1 MiB blocks, one thread per core).
    pub fn new(out: W) -> Result<Self, WriteError> {
        Self::with_options(out, WriterOptions::default())
    }

    /// A writer with explicit options.
    pub fn with_options(out: W, opts: WriterOptions) -> Result<Self, WriteError> {
        if opts.level > 9 {
            return Err(WriteError::InvalidOptions("level must be 0..=9"));
        }
        if opts.block_size < super::pgzip::WINDOW || opts.threads == 0 {
            return Err(WriteError::InvalidOptions(
                "block size must be >= 32 KiB and threads >= 1",
            ));
        }
        Ok(BundleWriter {
            gz: ParGzWriter::new(out, opts).map_err(WriteError::Output)?,
            names: HashMap::new(),
            last: None,
            files: 0,
            directories: 0,
            parent_entries: true,
            header_buf: Vec::with_capacity(4 * BLOCK),
            copy_buf: vec![0; COPY_BUF],
        })
    }

    /// Writes no directory entry for files' parents (they are still checked: a file is
    /// never also a directory). For a bundle whose directories carry nothing.
    pub fn without_parent_entries(mut self) -> Self {
        self.parent_entries = false;
        self
    }

    /// Adds a file from disk. Its size is taken when it is opened; a file that changes size
    /// while being copied is an error ([`WriteError::SourceChanged`]).
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        source: &Path,
    ) -> Result<EntryInfo, WriteError> {
        let with_path = |e: io::Error| WriteError::Source {
            source_path: source.to_path_buf(),
            source: e,
        };
        let mut file = File::open(source).map_err(with_path)?;
        let size = file.metadata().map_err(with_path)?.len();
        self.add_reader_inner(path, mode, size, &mut file, source)
    }

    /// Adds a file whose content is in memory.
    pub fn add_bytes(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
    ) -> Result<EntryInfo, WriteError> {
        let mut reader = data;
        self.add_reader_inner(path, mode, data.len() as u64, &mut reader, Path::new(""))
    }

    /// Adds a file of `size` bytes read from `reader` (which must yield exactly `size`
    /// bytes).
    pub fn add_reader(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<EntryInfo, WriteError> {
        self.add_reader_inner(path, mode, size, reader, Path::new(""))
    }

    /// Write the directory entries of `path`'s ancestors not written yet, shortest first;
    /// refuses an ancestor that is a file.
    fn add_ancestors(&mut self, path: &str) -> Result<(), WriteError> {
        for ancestor in path::ancestors(path) {
            match self.names.get(ancestor) {
                Some(true) => {}
                Some(false) => {
                    return Err(WriteError::PathConflict {
                        path: path.to_owned(),
                        ancestor: ancestor.to_owned(),
                    });
                }
                None if !self.parent_entries => {
                    self.names.insert(ancestor.to_owned(), true);
                }
                None => {
                    self.header_buf.clear();
                    header::encode(
                        &mut self.header_buf,
                        &format!("{ancestor}/"),
                        TYPE_DIR,
                        DIR_MODE,
                        0,
                    );
                    self.gz
                        .write_all(&self.header_buf)
                        .map_err(WriteError::Output)?;
                    self.names.insert(ancestor.to_owned(), true);
                    self.directories += 1;
                }
            }
        }
        Ok(())
    }

    fn add_reader_inner(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        reader: &mut dyn Read,
        source: &Path,
    ) -> Result<EntryInfo, WriteError> {
        self.check_new_file(path, mode)?;
        self.add_ancestors(path)?;
        self.header_buf.clear();
        header::encode(&mut self.header_buf, path, TYPE_FILE, mode, size);
        self.gz
            .write_all(&self.header_buf)
            .map_err(WriteError::Output)?;

        let mut hashed = HashingReader::new(&mut *reader);
        let mut copied: u64 = 0;
        let read_err = |e: io::Error| WriteError::Source {
            source_path: if source.as_os_str().is_empty() {
                PathBuf::from(path)
            } else {
                source.to_path_buf()
            },
            source: e,
        };
        while copied < size {
            let want = usize::try_from(size - copied)
                .unwrap_or(usize::MAX)
                .min(self.copy_buf.len());
            let n = match hashed.read(&mut self.copy_buf[..want]) {
                Ok(0) => {
                    return Err(WriteError::SourceChanged {
                        path: path.to_owned(),
                        expected: size,
                        actual: copied,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            self.gz
                .write_all(&self.copy_buf[..n])
                .map_err(WriteError::Output)?;
            copied += n as u64;
        }
        let (sha256, _) = hashed.digest();
        // The source must end here: a file that grew would give a bundle whose content
        // differs from what was measured.
        let mut probe = [0u8; 1];
        loop {
            match reader.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(WriteError::SourceChanged {
                        path: path.to_owned(),
                        expected: size,
                        actual: size + 1,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            }
        }
        let pad = header::padding(size) as usize;
        self.gz
            .write_all(&[0u8; BLOCK][..pad])
            .map_err(WriteError::Output)?;

        self.names.insert(path.to_owned(), false);
        self.last = Some(path.to_owned());
        self.files += 1;
        Ok(EntryInfo {
            path: path.to_owned(),
            mode,
            size,
            sha256,
        })
    }

    /// Adds an explicit directory entry `path/` with `mode` and the numeric `owner`, after
    /// its parent directories (0755, root). It must come, by the bytes of `path/`, after
    /// every entry written so far, and must not have been written already (as a parent of
    /// an earlier file, say).
    pub fn add_directory(&mut self, path: &str, mode: u32, owner: Owner) -> Result<(), WriteError> {
        let tar_name = format!("{path}/");
        path::check(path).map_err(|problem| WriteError::InvalidPath {
            path: path.to_owned(),
            problem,
        })?;
        if mode & !0o777 != 0 {
            return Err(WriteError::InvalidMode {
                path: path.to_owned(),
                mode,
            });
        }
        if owner.uid > MAX_OWNER_ID || owner.gid > MAX_OWNER_ID {
            return Err(WriteError::InvalidOwner {
                path: path.to_owned(),
                uid: owner.uid,
                gid: owner.gid,
            });
        }
        if self.names.contains_key(path)
            || self
                .last
                .as_ref()
                .is_some_and(|previous| previous.as_bytes() >= tar_name.as_bytes())
        {
            return Err(WriteError::OutOfOrder {
                previous: self.last.clone().unwrap_or_default(),
                path: tar_name,
            });
        }
        self.add_ancestors(path)?;
        self.header_buf.clear();
        header::encode_owned(&mut self.header_buf, &tar_name, TYPE_DIR, mode, 0, owner);
        self.gz
            .write_all(&self.header_buf)
            .map_err(WriteError::Output)?;
        self.names.insert(path.to_owned(), true);
        self.last = Some(tar_name);
        self.directories += 1;
        Ok(())
    }

    fn check_new_file(&self, path: &str, mode: u32) -> Result<(), WriteError> {
        path::check(path).map_err(|problem| WriteError::InvalidPath {
            path: path.to_owned(),
            problem,
        })?;
        if mode & !0o777 != 0 {
            return Err(WriteError::InvalidMode {
                path: path.to_owned(),
                mode,
            });
        }
        if let Some(previous) = &self.last
            && previous.as_bytes() >= path.as_bytes()
        {
            return Err(WriteError::OutOfOrder {
                previous: previous.clone(),
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    /// Uncompressed tar bytes written so far.
    pub fn tar_bytes(&self) -> u64 {
        self.gz.consumed()
    }

    /// Writes the end-of-archive marker, ends the gzip member and returns the output.
    pub fn finish(mut self) -> Result<(BundleSummary, W), WriteError> {
        self.gz
            .write_all(&[0u8; 2 * BLOCK])
            .map_err(WriteError::Output)?;
        let (out, gz) = self.gz.finish().map_err(WriteError::Output)?;
        Ok((
            BundleSummary {
                sha256: gz.sha256,
                size: gz.size,
                tar_size: gz.uncompressed_size,
                files: self.files,
                directories: self.directories,
            },
            out,
        ))
    }
}

/// Writes a whole bundle from `entries` in any order (they are sorted by name here).
/// Returns the summary, each file's [`EntryInfo`] in archive order, and the output.
pub fn write_bundle<W: Write>(
    out: W,
    mut entries: Vec<EntrySpec>,
    opts: WriterOptions,
) -> Result<(BundleSummary, Vec<EntryInfo>, W), WriteError> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut writer = BundleWriter::with_options(out, opts)?;
    let mut infos = Vec::with_capacity(entries.len());
    for e in &entries {
        let info = match &e.source {
            EntrySource::File(p) => writer.add_file(&e.path, e.mode, p)?,
            EntrySource::Bytes(b) => writer.add_bytes(&e.path, e.mode, b)?,
        };
        infos.push(info);
    }
    let (summary, out) = writer.finish()?;
    Ok((summary, infos, out))
}
