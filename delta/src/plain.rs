//! Plain forms of compressed baseline files: the reference side of the decoded tier.
//!
//! A `decoded` reference range ([`crate::format::ReferenceRange::decoded`]) is a range of a
//! baseline file's plain form ([`ouk_recompress::decode`]), not of its bytes. Decoding is
//! sequential, ranges are random: each file is decoded once, on first use, into a file of
//! its own in a private scratch directory, and ranges are read from there with `pread`.
//! Memory stays bounded whatever the plain form's size.
//!
//! Invariants:
//! - the bytes decoded come from the [`ContentReader`], which verifies what it serves (the
//!   host's store, or baseline files checked against their digests); the plain form is a
//!   pure function of them, so a range of it is as trustworthy as they are;
//! - decoding is bounded by [`ouk_recompress::Limits`] (a bomb in a baseline file fails the
//!   one reference, it is never decoded past the limit);
//! - the scratch files live as long as the [`PlainForms`] value and are removed with its
//!   directory by the caller (make: a temporary directory; apply: the import's staging).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ouk_recompress::{Format, Limits};
use ouk_store::FileDigest;

use crate::content::ContentReader;

/// A decoded file in the scratch directory.
#[derive(Debug)]
struct PlainFile {
    file: File,
    size: u64,
    format: Format,
}

/// What decoding one file gave: its plain form, or why there is none (kept as text so
/// every caller sharing the slot sees it).
type Slot = Arc<OnceLock<Result<Option<PlainFile>, String>>>;

/// Plain forms of the files of one [`ContentReader`], decoded on first use.
pub struct PlainForms<'c> {
    content: &'c dyn ContentReader,
    dir: PathBuf,
    limits: Limits,
    /// The plain form version decoded ([`ouk_recompress::decode_as`]).
    version: u32,
    slots: Mutex<HashMap<FileDigest, Slot>>,
}

impl<'c> PlainForms<'c> {
    /// Plain forms of `content`'s files, spilled under `dir` (which must exist and be
    /// private to this process's user).
    pub fn new(content: &'c dyn ContentReader, dir: &Path, limits: Limits) -> Self {
        PlainForms {
            content,
            dir: dir.to_path_buf(),
            limits,
            version: ouk_recompress::PLAIN_VERSION,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Decode as plain form `version` had it (a delta's `plain_forms`), not the newest.
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    fn slot(&self, digest: &FileDigest) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(*digest).or_default().clone()
    }

    /// Decode `digest` if not done yet, then run `f` on its plain form (`None` when the
    /// file is not in a format ouk sees through, or does not decode within the limits).
    fn with<T>(
        &self,
        digest: &FileDigest,
        f: impl FnOnce(Option<&PlainFile>) -> io::Result<T>,
    ) -> io::Result<T> {
        let slot = self.slot(digest);
        let decoded = slot.get_or_init(|| self.decode(digest).map_err(|e| e.to_string()));
        match decoded {
            Ok(plain) => f(plain.as_ref()),
            Err(e) => Err(io::Error::other(e.clone())),
        }
    }

    /// A read failure of the content is an error (the caller reports it); a file that is
    /// simply not decodable is `None`.
    fn decode(&self, digest: &FileDigest) -> io::Result<Option<PlainFile>> {
        let head = self.content.read_range(digest, 0, 4)?;
        if ouk_recompress::sniff(&head).is_none() {
            return Ok(None);
        }
        // Unnamed (O_TMPFILE where the filesystem has it, else created exclusively and
        // unlinked at once): the open handle is all later reads need, and nothing is left
        // behind if this process dies.
        let file = tempfile::tempfile_in(&self.dir)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut input = self.content.open(digest)?;
        let decoded = ouk_recompress::decode_as(&mut input, &mut out, &self.limits, self.version);
        let (format, size) = match decoded {
            Ok(v) => v,
            Err(ouk_recompress::RecompressError::Io(e)) => return Err(e),
            Err(_) => return Ok(None),
        };
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok(Some(PlainFile { file, size, format }))
    }

    /// The format and plain size of `digest`, decoding it on first use; `None` when it has
    /// no plain form.
    pub fn describe(&self, digest: &FileDigest) -> io::Result<Option<(Format, u64)>> {
        self.with(digest, |p| Ok(p.map(|p| (p.format, p.size))))
    }

    /// `length` bytes of `digest`'s plain form at `offset` (short at its end). An error
    /// when the file has no plain form.
    pub fn read_range(&self, digest: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        self.with(digest, |p| {
            let p = p.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{digest} is not in a compressed format ouk sees through"),
                )
            })?;
            let end = offset.saturating_add(length).min(p.size);
            let len = end.saturating_sub(offset);
            let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
            p.file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
    }

    /// A reader over `digest`'s whole plain form.
    pub fn open(&self, digest: &FileDigest) -> io::Result<Box<dyn Read + Send>> {
        self.with(digest, |p| {
            let p = p.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{digest} has no plain form"),
                )
            })?;
            let file = p.file.try_clone()?;
            Ok(Box::new(io::BufReader::with_capacity(
                1 << 20,
                PositionalReader {
                    file,
                    pos: 0,
                    end: p.size,
                },
            )) as Box<dyn Read + Send>)
        })
    }
}

/// Reads a shared file handle by position (clones share the offset; `pread` does not).
struct PositionalReader {
    file: File,
    pos: u64,
    end: u64,
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
