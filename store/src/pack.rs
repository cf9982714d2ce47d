//! Pack files: append-only files of frames, read with positioned reads (`pread`).
//!
//! A pack starts with a 16-byte header (`OUKPACK1`, pack number u32, zero u32), then
//! frames back to back. Only the prefix up to the length recorded in the index is
//! meaningful: bytes past it are the remains of an interrupted write and are cut off when
//! the store opens. Packs are never rewritten in place; `gc` copies live frames into a new
//! pack and deletes the old file after the index stops pointing at it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{IoContext, Result};
use crate::writeback::Handed;

/// Pack header length.
pub const PACK_HEADER_LEN: u64 = 16;
/// A writer starts a new pack once the current one reaches this size.
pub const PACK_TARGET_LEN: u64 = 1 << 30;

/// The file name of pack `n`.
pub fn pack_file_name(n: u32) -> String {
    format!("pack-{n:08}.ouk")
}

/// The pack number in a file name made by [`pack_file_name`].
pub fn parse_pack_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("pack-")?.strip_suffix(".ouk")?;
    if digits.len() != 8 {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn pack_header(n: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(b"OUKPACK1");
    h[8..12].copy_from_slice(&n.to_le_bytes());
    h
}

/// fsync a directory so entries created or removed in it are durable (one implementation
/// for every crate: [`crate::fsutil::sync_dir`]; this wrapper gives the store's error).
pub fn sync_dir(dir: &Path) -> Result<()> {
    Ok(crate::fsutil::sync_dir(dir)?)
}

/// An open pack being appended to.
pub(crate) struct PackAppender {
    pub number: u32,
    pub path: PathBuf,
    file: File,
    pub len: u64,
    pub created: bool,
    /// Committed length when opened (0 for a pack this appender created).
    pub start_len: u64,
    /// How far the device was asked to write the pack back: the commit's `fsync` then
    /// waits for the last few MiB, not for every frame appended (an apply appends a few
    /// hundred MB of raw frames).
    handed: Handed,
}

impl PackAppender {
    /// Open pack `n` for appending at `committed_len`, or create it when `committed_len` is
    /// `None`.
    pub fn open(dir: &Path, n: u32, committed_len: Option<u64>) -> Result<Self> {
        let path = dir.join(pack_file_name(n));
        match committed_len {
            Some(len) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .ctx(|| format!("open pack {}", path.display()))?;
                // Drop anything past the committed length (the store does this at open too;
                // doing it here keeps the invariant local).
                file.set_len(len)
                    .ctx(|| format!("truncate pack {}", path.display()))?;
                Ok(PackAppender {
                    number: n,
                    path,
                    file,
                    len,
                    created: false,
                    start_len: len,
                    handed: Handed::from(len),
                })
            }
            None => Self::create(dir, n, n),
        }
    }

    /// Create spool pack `n` in `dir` for an object-storage store. Its header carries
    /// number 0: the pack's bytes (and so its name, their BLAKE3) must not depend on the
    /// local numbering, so two writers storing the same frames make the same object.
    pub fn create_spooled(dir: &Path, n: u32) -> Result<Self> {
        Self::create(dir, n, 0)
    }

    /// Create pack file `n` (never over an existing one), its header naming `header_number`.
    fn create(dir: &Path, n: u32, header_number: u32) -> Result<Self> {
        let path = dir.join(pack_file_name(n));
        // 0600: packs hold kit content (secrets too); the store directory is private as
        // well, this keeps a pack private when copied or moved out of it.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("create pack {}", path.display()))?;
        file.write_all(&pack_header(header_number))
            .ctx(|| format!("write pack header {}", path.display()))?;
        Ok(PackAppender {
            number: n,
            path,
            file,
            len: PACK_HEADER_LEN,
            created: true,
            start_len: 0,
            handed: Handed::default(),
        })
    }

    /// Append `bytes` at the end; returns the offset they start at.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        use std::io::{Seek, SeekFrom};
        let at = self.len;
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(bytes))
            .ctx(|| format!("append to pack {}", self.path.display()))?;
        self.len += bytes.len() as u64;
        self.handed.advance(&self.file, self.len);
        Ok(at)
    }

    /// Undo every append of this appender: cut the pack back to its committed length, or
    /// delete it when this appender created it. Only for a writer that never started to
    /// commit (nothing in the index can point past `start_len`).
    pub fn roll_back(&self) -> Result<()> {
        if self.created {
            fs::remove_file(&self.path)
                .ctx(|| format!("remove pack {}", self.path.display()))
                .map_err(Into::into)
        } else {
            self.file
                .set_len(self.start_len)
                .ctx(|| format!("truncate pack {}", self.path.display()))
                .map_err(Into::into)
        }
    }

    /// Make every appended byte durable.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .ctx(|| format!("fsync pack {}", self.path.display()))
            .map_err(Into::into)
    }
}

/// Open pack files, shared by readers.
///
/// Frames are read with `pread` into the caller's buffer rather than through memory maps:
/// a map keeps every page a reader touched resident (counted in the process's RSS) until
/// the map goes, so reading a large file's chunks grew the RSS with the bytes read. With
/// `pread` the page cache still serves repeated reads, but the process holds only the
/// frame it is decoding.
#[derive(Default)]
pub(crate) struct PackFiles {
    files: Mutex<HashMap<u32, Arc<File>>>,
}

impl PackFiles {
    fn file(&self, dir: &Path, n: u32) -> Result<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&n) {
            return Ok(f.clone());
        }
        let path = dir.join(pack_file_name(n));
        let file = Arc::new(File::open(&path).ctx(|| format!("open pack {}", path.display()))?);
        files.insert(n, file.clone());
        Ok(file)
    }

    /// Read `len` bytes of pack `n` at `offset` into `buf` (replacing its contents).
    /// Returns `Ok(Err(have))` with the pack's length when it ends before `offset + len`.
    pub fn read_at(
        &self,
        dir: &Path,
        n: u32,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<std::result::Result<(), u64>> {
        let file = self.file(dir, n)?;
        buf.clear();
        buf.resize(len, 0);
        match file.read_exact_at(buf, offset) {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let have = file
                    .metadata()
                    .ctx(|| format!("stat pack {}", dir.join(pack_file_name(n)).display()))?
                    .len();
                Ok(Err(have))
            }
            Err(e) => Err(e)
                .ctx(|| format!("read pack {}", dir.join(pack_file_name(n)).display()))
                .map_err(Into::into),
        }
    }

    /// Forget the open files of packs (before they are deleted or truncated).
    pub fn forget(&self, packs: impl IntoIterator<Item = u32>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for n in packs {
            files.remove(&n);
        }
    }
}

/// Pack numbers of the pack files present in `dir`, with their lengths.
pub(crate) fn list_pack_files(dir: &Path) -> Result<Vec<(u32, u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(parse_pack_file_name) {
            let len = entry
                .metadata()
                .ctx(|| format!("stat {}", entry.path().display()))?
                .len();
            out.push((n, len, entry.path()));
        }
    }
    out.sort_by_key(|(n, _, _)| *n);
    Ok(out)
}

/// Walk a pack's frames by their headers alone, without the index: each frame's offset and
/// header, stopping at the first header that does not parse. Used by tooling and fuzzing.
pub fn scan_pack(
    bytes: &[u8],
) -> Vec<(
    u64,
    Result<crate::frame::FrameHeader, crate::frame::FrameError>,
)> {
    let mut out = Vec::new();
    let mut pos = PACK_HEADER_LEN as usize;
    while pos < bytes.len() {
        match crate::frame::decode_header(&bytes[pos..]) {
            Ok(h) => {
                out.push((pos as u64, Ok(h)));
                pos += h.frame_len() as usize;
            }
            Err(e) => {
                out.push((pos as u64, Err(e)));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(pack_file_name(7), "pack-00000007.ouk");
        assert_eq!(parse_pack_file_name("pack-00000007.ouk"), Some(7));
        assert_eq!(parse_pack_file_name("pack-7.ouk"), None);
        assert_eq!(parse_pack_file_name("index.redb"), None);
    }
}
