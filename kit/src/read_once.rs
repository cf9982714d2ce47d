//! Read once: untrusted input is read a single time, and only the bytes that were read
//! (and hashed) are ever used.
//!
//! The attack this closes: the importer hashed a bundle (the digest its signature covers),
//! then opened the path again to read the manifest, tell a delta from a kit and unpack. A
//! drop directory, a network mount or a USB stick that returns other bytes on the second
//! open got an unsigned kit activated under the signed digest.
//!
//! Two ways to read once, both here:
//! - [`PrivateCopy`]: the input is streamed once into a file only this process's user can
//!   reach (created exclusively, mode 0600, inside the root's private `staging/`), and its
//!   SHA-256 is computed over exactly the bytes written. Every later pass reads the copy.
//!   Used where the pipeline needs several passes (import, `mirror add`).
//! - [`HashingReader`]: a pass that both uses the bytes and hashes them, for a check that
//!   needs one pass only (`kit verify`): the digest is compared after the pass, and nothing
//!   the pass saw is kept unless it matches.
//!
//! Invariants: a `PrivateCopy`'s digest and size are those of the bytes in its file; the
//! file is never reachable through a name another user can write; it is removed when the
//! copy is dropped (and a crash leaves it in `staging/`, which the next open empties).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use ouk_store::fsutil::PassError;

use crate::error::{IoContext, KitError, Result};

/// Buffer for streaming copies: large enough to keep syscalls off the profile.
const COPY_BUFFER: usize = 1 << 20;

/// A reader that hashes every byte it hands out: the workspace's one, in `ouk_store::fsutil`.
pub use ouk_store::fsutil::HashingReader;

/// A reader that reports every byte it hands out as an advance of the current phase
/// (`ouk_store::progress::Step::Advance`), so a copy reports how far it is without the copy
/// loop knowing about progress.
pub struct ReportingReader<'p, R> {
    inner: R,
    progress: ouk_store::progress::StepSink<'p>,
}

impl<'p, R: Read> ReportingReader<'p, R> {
    /// Wrap `inner`, reporting to `progress`.
    pub fn new(inner: R, progress: ouk_store::progress::StepSink<'p>) -> Self {
        ReportingReader { inner, progress }
    }
}

impl<R: Read> Read for ReportingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            (self.progress)(ouk_store::progress::Step::Advance(n as u64));
        }
        Ok(n)
    }
}

/// A private copy of an untrusted input, with the digest of exactly its bytes.
#[derive(Debug)]
pub struct PrivateCopy {
    file: tempfile::TempPath,
    sha256: [u8; 32],
    size: u64,
}

impl PrivateCopy {
    /// Stream `input` once into a new private file in `dir` (which must be private to
    /// this user: the root's `staging/`), hashing what is written. `what` names the input
    /// in errors.
    pub fn take(input: impl Read, dir: &Path, what: &str) -> Result<PrivateCopy> {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        // tempfile creates the file with O_CREAT|O_EXCL and mode 0600 under a random
        // name: a name planted in `dir` is never followed or reused.
        let (file, path) = tempfile::Builder::new()
            .prefix(".input-")
            .tempfile_in(dir)
            .ctx(|| format!("create a private copy of {what} in {}", dir.display()))?
            .into_parts();
        let mut out = BufWriter::with_capacity(COPY_BUFFER, file);
        let mut reader = HashingReader::new(input);
        copy_input(&mut reader, &mut out, what)?;
        out.flush()
            .ctx(|| format!("write the private copy of {what}"))?;
        let (sha256, size) = reader.finish().map_err(|e| input_error(e, what))?;
        Ok(PrivateCopy {
            file: path,
            sha256,
            size,
        })
    }

    /// The SHA-256 of the copied bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// How many bytes were copied.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the copy is (inside the private directory it was taken in).
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The copied bytes, from the start.
    pub fn open(&self) -> Result<File> {
        File::open(&self.file)
            .ctx(|| format!("open {}", self.file.display()))
            .map_err(Into::into)
    }
}

/// Copy with errors split by side: the input's read errors keep their own error (a part
/// that does not match its index, a truncated file), the copy's write errors are local
/// I/O (ENOSPC maps to "no space" like any other write).
fn copy_input(reader: &mut impl Read, out: &mut impl Write, what: &str) -> Result<()> {
    match ouk_store::fsutil::read_through(reader, COPY_BUFFER, |piece| out.write_all(piece)) {
        Ok(_) => Ok(()),
        Err(PassError::Read(e)) => Err(input_error(e, what)),
        Err(PassError::Sink(e)) => Err(e).ctx(|| format!("write the private copy of {what}"))?,
    }
}

/// An error reading the input: a [`crate::split::PartError`] inside stays one (it names the
/// part), anything else is I/O on the input.
pub(crate) fn input_error(e: io::Error, what: &str) -> KitError {
    match crate::split::PartError::from_read_error(e) {
        Ok(part) => KitError::Part(part),
        Err(e) => KitError::Io {
            context: format!("read {what}"),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_copy_holds_the_bytes_its_digest_names_and_goes_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let copy = PrivateCopy::take(&data[..], dir.path(), "test input").expect("copy");
        let want: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(copy.sha256(), want);
        assert_eq!(copy.size(), data.len() as u64);
        let mut back = Vec::new();
        copy.open()
            .expect("open")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back, data);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(copy.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the copy is private: {mode:o}");
        let path = copy.path().to_path_buf();
        drop(copy);
        assert!(!path.exists(), "the copy is removed with its owner");
    }

    #[test]
    fn hashing_reader_counts_what_the_parser_skipped() {
        let data = b"header and a tail nobody parsed".to_vec();
        let mut r = HashingReader::new(&data[..]);
        let mut head = [0u8; 6];
        r.read_exact(&mut head).expect("read");
        let (sha, size) = r.finish().expect("finish");
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(size, data.len() as u64);
    }
}
