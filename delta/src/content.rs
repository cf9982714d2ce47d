//! Access to file content by SHA-256, the one thing delta make and apply need from the
//! world: on the connected site, unpacked kit trees; on the host, the chunk store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use ouk_store::{FileDigest, Store};

/// A file as a delta sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative path.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Length.
    pub size: u64,
    /// SHA-256.
    pub sha256: FileDigest,
}

/// Content by digest.
pub trait ContentReader: Sync {
    /// A reader over the whole content of `sha256`.
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + '_>>;
    /// `length` bytes at `offset` (short at the end of the file).
    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>>;
}

/// Content from files on disk, indexed by digest.
#[derive(Debug, Default)]
pub struct DirContent {
    by_digest: HashMap<FileDigest, PathBuf>,
}

impl DirContent {
    /// Index `files` (digest -> absolute path).
    pub fn new(files: impl IntoIterator<Item = (FileDigest, PathBuf)>) -> Self {
        DirContent {
            by_digest: files.into_iter().collect(),
        }
    }

    fn path(&self, sha256: &FileDigest) -> io::Result<&PathBuf> {
        self.by_digest.get(sha256).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no file with sha256 {sha256}"),
            )
        })
    }
}

impl ContentReader for DirContent {
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            File::open(self.path(sha256)?)?,
        )))
    }

    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.path(sha256)?)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(length.min(1 << 30) as usize);
        f.take(length).read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Content from the chunk store (every chunk verified as it is read).
pub struct StoreContent<'s>(pub &'s Store);

impl ContentReader for StoreContent<'_> {
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + '_>> {
        // Files are rehydrated in 8 MiB ranges so memory stays bounded.
        Ok(Box::new(StoreRangeReader {
            store: self.0,
            digest: *sha256,
            pos: 0,
            buf: Vec::new(),
            at: 0,
        }))
    }

    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        self.0
            .read_file_range(sha256, offset, length)
            .map_err(io::Error::other)
    }
}

struct StoreRangeReader<'s> {
    store: &'s Store,
    digest: FileDigest,
    pos: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Read for StoreRangeReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buf.len() {
            self.buf = self
                .store
                .read_file_range(&self.digest, self.pos, 8 << 20)
                .map_err(io::Error::other)?;
            self.at = 0;
            self.pos += self.buf.len() as u64;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
