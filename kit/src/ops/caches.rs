//! Optional cold-start caches (the seed: "Drop the most recent vulxml.zip alongside the kit
//! if operators need a cold-start cache").
//!
//! A cache travels inside the kit under `caches/` (signed and listed in the manifest like
//! every other file, so it is imported atomically and checked by digest): either the
//! release tree carries `caches/<name>`, or `ouk kit build --cold-start-cache FILE` adds
//! `FILE` as `caches/<file name>`. Every cache named `*.zip` must be a valid zip archive;
//! [`check_zip`] proves it by reading the whole archive:
//! - the end-of-central-directory record is found (a trailing comment is allowed) and
//!   describes one disk; ZIP64 archives (more than 65,535 entries or 4 GiB) are refused as
//!   unsupported rather than half-checked;
//! - the central directory lies before it and holds exactly the entries it counts;
//! - every entry's name is a safe relative path (no absolute path, `..`, backslash or NUL,
//!   since an operator will unpack it), its local header is where the directory says, its
//!   data lies before the central directory, and it is stored or deflated, unencrypted;
//! - every entry decompresses to exactly its recorded size with its recorded CRC-32.
//!
//! Invariants: memory is bounded (the central directory, capped at
//! [`MAX_CENTRAL_DIRECTORY`], plus a 64 KiB buffer); decompression stops one byte past the
//! recorded size, so no bomb runs long; no panic on any input.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where caches live in a kit (and in a release tree).
pub const CACHES_DIR: &str = "caches";
/// Largest central directory read, bytes.
pub const MAX_CENTRAL_DIRECTORY: u64 = 64 << 20;

const EOCD_SIG: u32 = 0x0605_4b50;
const CEN_SIG: u32 = 0x0201_4b50;
const LOC_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: u64 = 22;
const MAX_COMMENT: u64 = 0xffff;

/// Whether the tree-relative `path` is a cache that claims to be a zip archive.
pub fn is_zip_cache(path: &str) -> bool {
    path.strip_prefix(CACHES_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
        && path.to_ascii_lowercase().ends_with(".zip")
}

/// What a valid archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZipSummary {
    /// Entries.
    pub entries: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
}

/// Why a cache is refused.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Not a valid zip archive.
    #[error("{path}: not a valid zip archive: {reason}")]
    InvalidZip {
        /// The cache (kit path).
        path: String,
        /// What is wrong (naming the entry when one is at fault).
        reason: String,
    },
    /// The cache could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cold-start cache given for the kit that cannot be carried.
    #[error("{}: {reason}", file.display())]
    Unusable {
        /// The file given.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A zip problem, before it is given the file's name.
#[derive(Debug)]
pub enum ZipProblem {
    /// The archive is malformed.
    Invalid(String),
    /// Reading failed.
    Io(io::Error),
}

impl From<io::Error> for ZipProblem {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ZipProblem::Invalid("truncated".into())
        } else {
            ZipProblem::Io(e)
        }
    }
}

fn bad<T>(reason: impl Into<String>) -> Result<T, ZipProblem> {
    Err(ZipProblem::Invalid(reason.into()))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn safe_name(name: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(name) else {
        // Legacy code pages: judged on the bytes that matter.
        return !name.is_empty()
            && !name.contains(&0)
            && !name.contains(&b'\\')
            && name[0] != b'/'
            && !name.split(|&b| b == b'/').any(|c| c == b"..");
    };
    !s.is_empty()
        && !s.contains('\0')
        && !s.contains('\\')
        && !s.starts_with('/')
        && !s.split('/').any(|c| c == "..")
}

struct CountCrc<'a, R> {
    inner: R,
    crc: &'a mut crc32fast::Hasher,
    n: &'a mut u64,
}

impl<R: Read> Read for CountCrc<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.crc.update(&buf[..k]);
        *self.n += k as u64;
        Ok(k)
    }
}

/// Check that `r` (of `len` bytes) is a valid zip archive; see the module docs.
pub fn check_zip<R: Read + Seek>(r: &mut R, len: u64) -> Result<ZipSummary, ZipProblem> {
    let end = read_end_record(r, len)?;
    // 2. The central directory.
    r.seek(SeekFrom::Start(end.cd_offset))?;
    let mut cd = vec![0u8; end.cd_size as usize];
    r.read_exact(&mut cd)?;
    let mut at = 0usize;
    let mut summary = ZipSummary::default();
    let mut buf = vec![0u8; 64 << 10];
    while at < cd.len() {
        let entry = parse_central_entry(&cd, &mut at, summary.entries + 1)?;
        // 3. The local header and the data.
        check_entry_data(r, &entry, end.cd_offset, &mut buf)?;
        summary.entries += 1;
        summary.bytes += entry.size;
    }
    if summary.entries != u64::from(end.total) {
        return bad(format!(
            "the end record counts {} entries, the central directory holds {}",
            end.total, summary.entries
        ));
    }
    Ok(summary)
}

/// Where the end-of-central-directory record puts the central directory.
struct EndRecord {
    /// Entries the archive claims.
    total: u16,
    /// Central directory length, bytes (at most [`MAX_CENTRAL_DIRECTORY`]).
    cd_size: u64,
    /// Central directory offset; it ends exactly where the end record starts.
    cd_offset: u64,
}

/// Step 1: find the end-of-central-directory record, searched backwards over a possible
/// comment, and check what it says (one disk, no ZIP64, directory right before it).
fn read_end_record<R: Read + Seek>(r: &mut R, len: u64) -> Result<EndRecord, ZipProblem> {
    if len < EOCD_LEN {
        return bad("too short for an end-of-central-directory record");
    }
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT);
    r.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail)?;
    let eocd_at = (0..=tail.len() - EOCD_LEN as usize).rev().find(|&i| {
        u32_at(&tail, i) == EOCD_SIG
            && i + EOCD_LEN as usize + usize::from(u16_at(&tail, i + 20)) == tail.len()
    });
    let Some(e) = eocd_at else {
        return bad("no end-of-central-directory record");
    };
    let eocd_offset = len - tail_len + e as u64;
    let (disk, cd_disk) = (u16_at(&tail, e + 4), u16_at(&tail, e + 6));
    let (on_disk, total) = (u16_at(&tail, e + 8), u16_at(&tail, e + 10));
    let (cd_size, cd_offset) = (
        u64::from(u32_at(&tail, e + 12)),
        u64::from(u32_at(&tail, e + 16)),
    );
    if total == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        return bad("ZIP64 archives are not supported");
    }
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return bad("multi-disk archives are not supported");
    }
    if cd_offset.checked_add(cd_size) != Some(eocd_offset) {
        return bad(format!(
            "central directory at {cd_offset} (+{cd_size} bytes) does not end at the end record ({eocd_offset})"
        ));
    }
    if cd_size > MAX_CENTRAL_DIRECTORY {
        return bad(format!(
            "central directory of {cd_size} bytes is past the limit"
        ));
    }
    Ok(EndRecord {
        total,
        cd_size,
        cd_offset,
    })
}

/// One central directory entry, its name and method already judged acceptable.
struct CentralEntry {
    /// The name as shown in messages (lossy, at most 120 characters).
    shown: String,
    /// 0 stored, 8 deflate.
    method: u16,
    /// Recorded CRC-32 of the uncompressed data.
    crc: u32,
    /// Compressed size.
    compressed: u64,
    /// Uncompressed size.
    size: u64,
    /// Offset of the local header.
    local: u64,
}

/// Parse and judge the central directory entry at `*at` (the `number`th, for messages),
/// moving `*at` past it.
fn parse_central_entry(cd: &[u8], at: &mut usize, number: u64) -> Result<CentralEntry, ZipProblem> {
    let here = *at;
    if cd.len() - here < 46 || u32_at(cd, here) != CEN_SIG {
        return bad(format!("central directory entry {number} is malformed"));
    }
    let flags = u16_at(cd, here + 8);
    let method = u16_at(cd, here + 10);
    let crc = u32_at(cd, here + 16);
    let compressed = u64::from(u32_at(cd, here + 20));
    let size = u64::from(u32_at(cd, here + 24));
    let name_len = usize::from(u16_at(cd, here + 28));
    let extra_len = usize::from(u16_at(cd, here + 30));
    let comment_len = usize::from(u16_at(cd, here + 32));
    let local = u64::from(u32_at(cd, here + 42));
    let Some(name) = cd.get(here + 46..here + 46 + name_len) else {
        return bad(format!("central directory entry {number} is cut short"));
    };
    let shown = String::from_utf8_lossy(name)
        .chars()
        .take(120)
        .collect::<String>();
    if !safe_name(name) {
        return bad(format!(
            "entry {shown:?}: unsafe name (absolute, `..`, backslash or NUL)"
        ));
    }
    if flags & 1 != 0 {
        return bad(format!("entry {shown:?}: encrypted"));
    }
    if method != 0 && method != 8 {
        return bad(format!(
            "entry {shown:?}: compression method {method} is not stored or deflate"
        ));
    }
    if compressed == 0xffff_ffff || size == 0xffff_ffff || local == 0xffff_ffff {
        return bad("ZIP64 archives are not supported");
    }
    *at = here + 46 + name_len + extra_len + comment_len;
    if *at > cd.len() {
        return bad(format!(
            "entry {shown:?}: central directory record is cut short"
        ));
    }
    Ok(CentralEntry {
        shown,
        method,
        crc,
        compressed,
        size,
        local,
    })
}

/// Step 3 for one entry: its local header is where the directory says, its data lies before
/// the central directory (at `cd_offset`), and it decompresses to exactly the recorded size
/// and CRC-32 (reading at most one byte past the size, so no bomb runs long).
fn check_entry_data<R: Read + Seek>(
    r: &mut R,
    entry: &CentralEntry,
    cd_offset: u64,
    buf: &mut [u8],
) -> Result<(), ZipProblem> {
    let (shown, local, size) = (&entry.shown, entry.local, entry.size);
    r.seek(SeekFrom::Start(local))?;
    let mut lh = [0u8; 30];
    r.read_exact(&mut lh)?;
    if u32_at(&lh, 0) != LOC_SIG {
        return bad(format!(
            "entry {shown:?}: no local header at offset {local}"
        ));
    }
    let data_at = local + 30 + u64::from(u16_at(&lh, 26)) + u64::from(u16_at(&lh, 28));
    if data_at
        .checked_add(entry.compressed)
        .is_none_or(|end| end > cd_offset)
    {
        return bad(format!(
            "entry {shown:?}: data runs into the central directory"
        ));
    }
    r.seek(SeekFrom::Start(data_at))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut produced = 0u64;
    let raw = (&mut *r).take(entry.compressed);
    let mut reader: Box<dyn Read + '_> = if entry.method == 0 {
        Box::new(raw)
    } else {
        Box::new(flate2::read::DeflateDecoder::new(raw))
    };
    let mut counted = CountCrc {
        inner: (&mut reader).take(size + 1),
        crc: &mut hasher,
        n: &mut produced,
    };
    loop {
        match counted.read(buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::InvalidInput
                    || e.kind() == io::ErrorKind::InvalidData =>
            {
                return bad(format!("entry {shown:?}: corrupt deflate data ({e})"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if produced != size {
        return bad(format!(
            "entry {shown:?}: {} bytes recorded, {produced}{} decompressed",
            size,
            if produced > size { "+" } else { "" }
        ));
    }
    if hasher.finalize() != entry.crc {
        return bad(format!("entry {shown:?}: CRC-32 mismatch"));
    }
    Ok(())
}

/// Check the cache `path` (kit path, for messages) stored at `file`.
pub fn check_zip_file(path: &str, file: &Path) -> Result<ZipSummary, CacheError> {
    let io_err = |source| CacheError::Io {
        file: file.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut r = io::BufReader::with_capacity(1 << 20, &mut f);
    check_zip(&mut r, len).map_err(|p| match p {
        ZipProblem::Invalid(reason) => CacheError::InvalidZip {
            path: path.to_string(),
            reason,
        },
        ZipProblem::Io(source) => io_err(source),
    })
}

/// The kit path of `--cold-start-cache FILE`: `caches/<file name>`.
pub fn cache_kit_path(file: &Path) -> Result<String, CacheError> {
    let unusable = |reason: &str| CacheError::Unusable {
        file: file.to_path_buf(),
        reason: reason.into(),
    };
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| unusable("the file name is not UTF-8"))?;
    if name.starts_with('.') || name.ends_with(".sha256") || name.contains('\\') {
        return Err(unusable(
            "a cache is named like a plain file (not a dot-file or a .sha256 sidecar)",
        ));
    }
    if !std::fs::metadata(file).is_ok_and(|m| m.is_file()) {
        return Err(unusable("not a regular file"));
    }
    Ok(format!("{CACHES_DIR}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    /// A zip of `(name, data, deflate?)` entries written by hand.
    fn zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data, deflate) in entries {
            let body = if *deflate {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.to_vec()
            };
            let crc = crc32fast::hash(data);
            let method: u16 = if *deflate { 8 } else { 0 };
            let local = out.len() as u32;
            out.extend(LOC_SIG.to_le_bytes());
            out.extend(20u16.to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(method.to_le_bytes());
            out.extend([0u8; 4]);
            out.extend(crc.to_le_bytes());
            out.extend((body.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(&body);
            cd.extend(CEN_SIG.to_le_bytes());
            cd.extend(20u16.to_le_bytes());
            cd.extend(20u16.to_le_bytes());
            cd.extend(0u16.to_le_bytes());
            cd.extend(method.to_le_bytes());
            cd.extend([0u8; 4]);
            cd.extend(crc.to_le_bytes());
            cd.extend((body.len() as u32).to_le_bytes());
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((name.len() as u16).to_le_bytes());
            cd.extend([0u8; 12]);
            cd.extend(local.to_le_bytes());
            cd.extend(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend(&cd);
        out.extend(EOCD_SIG.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((cd.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    fn check(bytes: &[u8]) -> Result<ZipSummary, String> {
        check_zip(&mut Cursor::new(bytes), bytes.len() as u64).map_err(|p| match p {
            ZipProblem::Invalid(r) => r,
            ZipProblem::Io(e) => format!("io: {e}"),
        })
    }

    const XML: &[u8] = b"<vulnerabilities><vul id=\"BDU:2025-00001\"/></vulnerabilities>\n";

    #[test]
    fn a_valid_archive_passes() {
        let z = zip(&[("export/vulxml.xml", XML, true), ("README", b"hi", false)]);
        assert_eq!(
            check(&z).unwrap(),
            ZipSummary {
                entries: 2,
                bytes: XML.len() as u64 + 2
            }
        );
        assert_eq!(check(&zip(&[])).unwrap().entries, 0);
        assert!(is_zip_cache("caches/vulxml.zip"));
        assert!(!is_zip_cache("caches/vulxml.zip.sha256"));
        assert!(!is_zip_cache("feeds/vulxml.zip"));
    }

    #[test]
    fn broken_archives_are_refused() {
        let z = zip(&[("vulxml.xml", XML, true)]);
        assert!(
            check(&z[..z.len() - 1])
                .unwrap_err()
                .contains("end-of-central")
        );
        assert!(check(b"PK\x03\x04 not really").is_err());
        assert!(check(b"").is_err());
        // A flipped byte in the data: corrupt deflate or a CRC mismatch.
        let mut flipped = z.clone();
        flipped[45] ^= 0x55;
        let e = check(&flipped).unwrap_err();
        assert!(e.contains("vulxml.xml"), "{e}");
        // Stored data that lies about its CRC.
        let mut s = zip(&[("a", b"abc", false)]);
        s[31] ^= 1;
        assert!(check(&s).unwrap_err().contains("CRC-32"));
        // Unsafe names.
        for name in ["../evil", "/etc/passwd", "a\\b"] {
            let e = check(&zip(&[(name, b"x", false)])).unwrap_err();
            assert!(e.contains("unsafe name"), "{name}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = check(&bytes);
        }

        #[test]
        fn damaged_archives_never_panic(at in 0usize..200, x in 1u8..=255) {
            let mut z = zip(&[("vulxml.xml", XML, true), ("b", b"bb", false)]);
            let i = at % z.len();
            z[i] ^= x;
            let _ = check(&z);
        }
    }
}
