//! Access to file content by SHA-256, the one thing delta make and apply need from the
//! world: on the connected site, unpacked kit trees; on the host, the chunk store, or the
//! baseline generation's own files where they still hold what the store holds.
//!
//! Reference windows (up to 64 MiB per 32 MiB piece) are the apply's largest reads: a
//! checked baseline file lends them from a read-only mapping ([`ContentReader::map_range`])
//! instead of copying them, so only the pages a patch actually copies from are read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>>;
    /// `length` bytes at `offset` (short at the end of the file).
    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>>;
    /// The same bytes as [`ContentReader::read_range`], possibly lent from a read-only
    /// mapping of a file instead of copied (readers that keep files on disk do so).
    fn map_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<RangeBytes> {
        self.read_range(sha256, offset, length)
            .map(RangeBytes::Owned)
    }
}

/// A range of content: copied into memory, or mapped read-only from its file.
pub enum RangeBytes {
    /// Copied.
    Owned(Vec<u8>),
    /// Mapped (see [`Mapping`]).
    Mapped(Mapping),
}

impl std::ops::Deref for RangeBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            RangeBytes::Owned(v) => v,
            RangeBytes::Mapped(m) => m.bytes(),
        }
    }
}

/// A read-only, private mapping of a range of a file, unmapped on drop.
///
/// Invariant: the file must not shrink while the mapping lives (a read past its new end
/// faults the process). The apply maps only the baseline generation's published files,
/// which ouk never writes (read-only files in read-only directories owned by the root's
/// user); a truncation by that user kills the apply before anything is activated, which
/// import's staging cleanup and crash safety already cover. A change of content (not of
/// size) gives wrong bytes, which the rebuilt file's SHA-256 then refuses.
pub struct Mapping {
    map: ouk_store::mapping::FileMapping,
    offset: u64,
    len: usize,
}

impl Mapping {
    /// Map `len` bytes of `file` at `offset`; the caller has checked that they lie inside
    /// the file. `len` 0 maps nothing.
    pub fn of(file: &File, offset: u64, len: usize) -> io::Result<Mapping> {
        Ok(Mapping {
            map: ouk_store::mapping::FileMapping::read_only(file, offset, len)?,
            offset,
            len,
        })
    }

    /// The mapped range.
    pub fn bytes(&self) -> &[u8] {
        // The mapping was made for exactly this range, so it always holds it.
        self.map.slice(self.offset, self.len).unwrap_or_default()
    }
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
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>> {
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
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>> {
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

/// Content from files on disk that are *not* trusted to hold what their digest says (a
/// materialized generation an operator may have edited), with another reader to fall back
/// on. Each file is SHA-256-checked once, when first used; a file that is missing, has
/// another size or hashes to something else is never read again and its ranges come from
/// the fallback. Reading a range of a checked file is one `pread` (page cache), where the
/// store would decode and verify every frame of the range.
///
/// A file changed on disk *after* its check gives wrong bytes; the apply then fails on
/// the rebuilt file's SHA-256 (refused, nothing activated), never with a wrong file.
pub struct CheckedDirContent<'f> {
    files: HashMap<FileDigest, (PathBuf, u64)>,
    fallback: &'f dyn ContentReader,
    /// Per digest, the file once checked: the map's lock is held only to find a digest's
    /// cell, so a check (hashing a whole file) holds up only readers of that same file.
    checked: Mutex<HashMap<FileDigest, CheckedCell>>,
    /// Digests whose file the caller has already vouched for (see
    /// [`CheckedDirContent::vouched_for`]): checked by size only.
    vouched: std::collections::HashSet<FileDigest>,
}

/// A file's check, made once: the file, when it checks out.
type CheckedCell = Arc<OnceLock<Option<Arc<File>>>>;

impl<'f> CheckedDirContent<'f> {
    /// `files`: digest -> (path, size) of the candidate files.
    pub fn new(
        files: impl IntoIterator<Item = (FileDigest, (PathBuf, u64))>,
        fallback: &'f dyn ContentReader,
    ) -> Self {
        CheckedDirContent {
            files: files.into_iter().collect(),
            fallback,
            checked: Mutex::new(HashMap::new()),
            vouched: std::collections::HashSet::new(),
        }
    }

    /// Files the caller has shown to be unchanged since they were verified (the host's
    /// publication stamps: any write to a file moves its ctime), so their SHA-256 is not
    /// computed again; they are still opened, and refused when not a regular file of the
    /// listed size. A file changed after all gives wrong reference bytes, which the
    /// rebuilt file's SHA-256 refuses (as for a file changed after its check).
    pub fn vouched_for(mut self, digests: impl IntoIterator<Item = FileDigest>) -> Self {
        self.vouched.extend(digests);
        self
    }

    /// The file for `sha256`, if it checks out (checked at most once).
    fn checked_file(&self, sha256: &FileDigest) -> Option<Arc<File>> {
        let cell = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(*sha256)
            .or_default()
            .clone();
        cell.get_or_init(|| {
            self.files
                .get(sha256)
                .and_then(|(path, size)| {
                    if self.vouched.contains(sha256) {
                        open_sized(path, *size)
                    } else {
                        check_file(path, *size, sha256)
                    }
                })
                .map(Arc::new)
        })
        .clone()
    }
}

/// `path` opened, when it is a regular file of `size` bytes.
fn open_sized(path: &Path, size: u64) -> Option<File> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.len() == size).then_some(file)
}

/// `path` opened, when it is a regular file of `size` bytes whose SHA-256 is `sha256`.
pub fn check_file(path: &Path, size: u64, sha256: &FileDigest) -> Option<File> {
    let file = open_sized(path, size)?;
    // Later reads of the checked file are positioned (`pread`, mappings): the offset this
    // pass moves does not matter.
    let (digest, n) = ouk_store::fsutil::sha256_reader((&file).take(size)).ok()?;
    (n == size && FileDigest(digest) == *sha256).then_some(file)
}

impl ContentReader for CheckedDirContent<'_> {
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>> {
        // A file of its own, not a clone of the checked one: clones share one offset.
        match (self.checked_file(sha256), self.files.get(sha256)) {
            (Some(_), Some((path, _))) => Ok(Box::new(io::BufReader::with_capacity(
                1 << 20,
                File::open(path)?,
            ))),
            _ => self.fallback.open(sha256),
        }
    }

    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let Some(f) = self.checked_file(sha256) else {
            return self.fallback.read_range(sha256, offset, length);
        };
        let size = self.files.get(sha256).map_or(0, |(_, s)| *s);
        let n = size.saturating_sub(offset).min(length);
        let mut out = vec![0u8; usize::try_from(n).map_err(io::Error::other)?];
        f.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    fn map_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<RangeBytes> {
        let Some(f) = self.checked_file(sha256) else {
            return self.fallback.map_range(sha256, offset, length);
        };
        let size = self.files.get(sha256).map_or(0, |(_, s)| *s);
        let n = size.saturating_sub(offset).min(length);
        let n = usize::try_from(n).map_err(io::Error::other)?;
        Mapping::of(&f, offset, n).map(RangeBytes::Mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fallback that must not be used.
    struct Refuse;
    impl ContentReader for Refuse {
        fn open(&self, _: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>> {
            Err(io::Error::other("fallback used"))
        }
        fn read_range(&self, _: &FileDigest, _: u64, _: u64) -> io::Result<Vec<u8>> {
            Err(io::Error::other("fallback used"))
        }
    }

    fn digest(bytes: &[u8]) -> FileDigest {
        FileDigest::of(bytes)
    }

    #[test]
    fn checked_files_are_read_in_place_and_changed_ones_come_from_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let d = digest(&body);
        let good = dir.path().join("good");
        std::fs::write(&good, &body).unwrap();

        let in_place = CheckedDirContent::new([(d, (good.clone(), body.len() as u64))], &Refuse);
        assert_eq!(
            in_place.read_range(&d, 99_990, 100).unwrap(),
            &body[99_990..]
        );
        assert_eq!(in_place.read_range(&d, 5, 10).unwrap(), &body[5..15]);
        let mut all = Vec::new();
        in_place.open(&d).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, body);

        // Same size, one byte changed: the check refuses the file, the fallback serves.
        let edited = dir.path().join("edited");
        let mut wrong = body.clone();
        wrong[50_000] ^= 1;
        std::fs::write(&edited, &wrong).unwrap();
        let store_copy = dir.path().join("store-copy");
        std::fs::write(&store_copy, &body).unwrap();
        let fallback = DirContent::new([(d, store_copy)]);
        let checked = CheckedDirContent::new([(d, (edited.clone(), body.len() as u64))], &fallback);
        assert_eq!(
            checked.read_range(&d, 49_990, 20).unwrap(),
            &body[49_990..50_010]
        );
        let refusing = CheckedDirContent::new([(d, (edited.clone(), body.len() as u64))], &Refuse);
        assert!(
            refusing.read_range(&d, 0, 10).is_err(),
            "an edited file is never read"
        );

        // Mapped ranges are the same bytes as copied ones, at any offset (page-aligned or
        // not), short at the end of the file, and empty past it.
        for (off, len) in [
            (0u64, 100_000u64),
            (4095, 10),
            (4096, 5000),
            (99_990, 100),
            (100_000, 8),
        ] {
            let mapped = in_place.map_range(&d, off, len).unwrap();
            assert!(
                matches!(mapped, RangeBytes::Mapped(_)),
                "a checked file is mapped"
            );
            assert_eq!(&*mapped, &in_place.read_range(&d, off, len).unwrap()[..]);
        }
        // An edited file is not mapped either: its ranges come from the fallback.
        assert_eq!(
            &*checked.map_range(&d, 49_990, 20).unwrap(),
            &body[49_990..50_010]
        );

        // Missing, or another size: the fallback too.
        let missing = CheckedDirContent::new([(d, (dir.path().join("gone"), 10))], &Refuse);
        assert!(missing.read_range(&d, 0, 1).is_err());
        let resized = CheckedDirContent::new([(d, (good.clone(), 10))], &Refuse);
        assert!(resized.read_range(&d, 0, 1).is_err());

        // Vouched for: not hashed (an edited file of the right size is served as it is,
        // the rebuilt file's digest being the check), but still refused at another size.
        let vouched =
            CheckedDirContent::new([(d, (edited, body.len() as u64))], &Refuse).vouched_for([d]);
        assert_eq!(vouched.read_range(&d, 50_000, 1).unwrap(), [wrong[50_000]]);
        let vouched_resized = CheckedDirContent::new([(d, (good, 10))], &Refuse).vouched_for([d]);
        assert!(vouched_resized.map_range(&d, 0, 1).is_err());
    }
}
