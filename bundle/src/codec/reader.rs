//! The safe streaming bundle reader.
//!
//! Job: read a `.tar.gz` bundle from any `Read`, one entry at a time, refusing everything a
//! kit may not contain before the caller copies a byte of it.
//!
//! A kit holds regular files and directories only. The reader refuses, with a typed
//! [`ReadError`] naming the entry:
//! - names that are not canonical relative paths: absolute, `..` or `.` components, empty
//!   components, backslashes, NUL or control characters, non-UTF-8 (see `path`);
//! - every link, symbolic or hard, wherever it points; device nodes; FIFOs; any other type.
//!   GNU long-name records and pax extended headers are read only to get long names (pax
//!   keys `path` and `size`; `mtime`/`atime`/`ctime` are ignored; any other key, and global
//!   pax headers, are refused);
//! - modes with bits outside 0o777 (setuid, setgid, sticky);
//! - duplicate names, and names that are both a file and a directory;
//! - a file the caller's `declared` lookup does not know ([`ReadError::Undeclared`]), or
//!   whose header size exceeds the declared size ([`ReadError::SizeExceedsDeclared`]),
//!   checked when the header is read, before its data;
//! - a decompressed stream longer than [`ReadLimits::max_total_bytes`] (a gzip bomb stops
//!   there, not at the end of the disk), more headers than [`ReadLimits::max_entries`];
//! - a missing end-of-archive marker (truncation), non-zero data after it, and bytes after
//!   the gzip member; a corrupt gzip stream (deflate error, CRC-32 or ISIZE mismatch).
//!
//! Invariants: the reader never panics on any input and never allocates more than a fixed
//! amount per header (long names are capped at 4 KiB, pax headers at 64 KiB); its memory
//! is O(names seen), needed to refuse duplicates. The end-of-archive checks run when
//! [`BundleReader::next_entry`] returns `Ok(None)`: only then is the bundle known to be
//! whole. After an error the reader is poisoned: further calls fail.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;

use super::error::ReadError;
use super::header::{self, BLOCK, HeaderProblem, Owner, Parsed};
use super::path::{self, MAX_PATH_LEN, PathProblem};

/// Largest pax extended header accepted.
const MAX_PAX: u64 = 64 * 1024;

/// Caller-given bounds on what a bundle may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Maximum bytes of the decompressed tar stream (headers, data, padding, end marker and
    /// any zero padding after it).
    pub max_total_bytes: u64,
    /// Maximum header blocks (files, directories, long-name and pax records).
    pub max_entries: u64,
}

impl ReadLimits {
    /// Limits for a bundle whose manifest declares `files` files totalling `file_bytes`:
    /// the file bytes plus 16 KiB of headroom per file (its header, a long-name record,
    /// padding, and the directory entries it introduces) plus 1 MiB.
    pub fn for_declared(files: u64, file_bytes: u64) -> ReadLimits {
        ReadLimits {
            max_total_bytes: file_bytes
                .saturating_add(files.saturating_add(1).saturating_mul(16 * 1024))
                .saturating_add(1 << 20),
            max_entries: files.saturating_mul(8).saturating_add(4096),
        }
    }
}

/// A checked header: canonical name, kind, mode, size.
type Accepted = (String, EntryKind, u32, u64);

/// The type of an entry the reader yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    Dir { explicit: bool },
}

/// The decompressed tar stream with its position, its limit and the current entry.
struct Stream<R: Read> {
    gz: GzDecoder<BufReader<R>>,
    pos: u64,
    limit: u64,
    entry_left: u64,
    entry_pad: u64,
    entry_name: String,
}

impl<R: Read> Stream<R> {
    /// Reads at most `buf.len()` bytes, never past the limit: reading a byte past it is
    /// [`ReadError::TotalLimit`]. `Ok(0)` is the end of the gzip member.
    fn read_some(&mut self, buf: &mut [u8], entry: Option<&str>) -> Result<usize, ReadError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let budget = self.limit.saturating_sub(self.pos);
        let probe = budget == 0;
        let want = if probe {
            1
        } else {
            usize::try_from(budget).unwrap_or(usize::MAX).min(buf.len())
        };
        loop {
            match self.gz.read(&mut buf[..want]) {
                Ok(0) => return Ok(0),
                Ok(_) if probe => return Err(ReadError::TotalLimit { limit: self.limit }),
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::from_io(e, self.pos, entry)),
            }
        }
    }

    /// Fills `buf` completely; the stream ending first is [`ReadError::Truncated`].
    fn read_exact(&mut self, mut buf: &mut [u8], entry: Option<&str>) -> Result<(), ReadError> {
        if self.pos.saturating_add(buf.len() as u64) > self.limit {
            return Err(ReadError::TotalLimit { limit: self.limit });
        }
        while !buf.is_empty() {
            let n = self.read_some(buf, entry)?;
            if n == 0 {
                return Err(ReadError::Truncated {
                    offset: self.pos,
                    entry: entry.map(str::to_owned),
                });
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads and discards `n` bytes.
    fn skip(&mut self, mut n: u64, entry: Option<&str>) -> Result<(), ReadError> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let k = usize::try_from(n).unwrap_or(usize::MAX).min(scratch.len());
            self.read_exact(&mut scratch[..k], entry)?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// Reads a bundle entry by entry; see the module doc.
pub struct BundleReader<R: Read, D: Fn(&str) -> Option<u64>> {
    stream: Stream<R>,
    declared: D,
    limits: ReadLimits,
    seen: HashMap<String, Seen>,
    headers: u64,
    done: bool,
    poisoned: bool,
}

/// One entry: its checked metadata, and (for files) its content through `Read`.
pub struct Entry<'a, R: Read> {
    /// Canonical name (no trailing `/` for directories).
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (0o777 at most).
    pub mode: u32,
    /// Content length (0 for directories); never more than the declared size.
    pub size: u64,
    /// The numeric owner of the header; `None` when a field does not parse or does not
    /// fit 32 bits. Kits ignore it; the volume primer uses it.
    pub owner: Option<Owner>,
    stream: &'a mut Stream<R>,
}

impl<R: Read> Entry<'_, R> {
    /// Reads content with a typed error. `Ok(0)` once all `size` bytes were read.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let left = self.stream.entry_left;
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.stream.read_some(&mut buf[..n], Some(&self.path))?;
        if got == 0 {
            return Err(ReadError::Truncated {
                offset: self.stream.pos,
                entry: Some(self.path.clone()),
            });
        }
        self.stream.entry_left -= got as u64;
        Ok(got)
    }

    /// Bytes of content not yet read.
    pub fn remaining(&self) -> u64 {
        self.stream.entry_left
    }
}

impl<R: Read> Read for Entry<'_, R> {
    /// Errors carry a [`ReadError`]; get it back with [`ReadError::from_io`].
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_chunk(buf).map_err(ReadError::into_io)
    }
}

impl<R: Read, D: Fn(&str) -> Option<u64>> BundleReader<R, D> {
    /// A reader over the gzip bytes of a bundle. `declared(path)` gives the manifest's size
    /// of each file (`None`: not in the manifest).
    pub fn new(input: R, declared: D, limits: ReadLimits) -> Self {
        BundleReader {
            stream: Stream {
                gz: GzDecoder::new(BufReader::with_capacity(256 * 1024, input)),
                pos: 0,
                limit: limits.max_total_bytes,
                entry_left: 0,
                entry_pad: 0,
                entry_name: String::new(),
            },
            declared,
            limits,
            seen: HashMap::new(),
            headers: 0,
            done: false,
            poisoned: false,
        }
    }

    /// Bytes of the decompressed tar stream consumed so far.
    pub fn position(&self) -> u64 {
        self.stream.pos
    }

    /// The next entry, or `None` at a well-formed end of the bundle (all end checks done).
    /// Unread content of the previous entry is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_, R>>, ReadError> {
        if self.poisoned {
            return Err(ReadError::BadHeader {
                offset: self.stream.pos,
                reason: "reader used after an error",
            });
        }
        if self.done {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some(((path, kind, mode, size), owner))) => Ok(Some(Entry {
                path,
                kind,
                mode,
                size,
                owner,
                stream: &mut self.stream,
            })),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Reads headers up to the next file or directory; `None` at the end marker.
    fn advance(&mut self) -> Result<Option<(Accepted, Option<Owner>)>, ReadError> {
        let rest = self.stream.entry_left + self.stream.entry_pad;
        if rest > 0 {
            let name = std::mem::take(&mut self.stream.entry_name);
            self.stream.skip(rest, Some(&name))?;
        }
        self.stream.entry_left = 0;
        self.stream.entry_pad = 0;

        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut extended = false;
        loop {
            let offset = self.stream.pos;
            let mut block = [0u8; BLOCK];
            self.stream.read_exact(&mut block, None)?;
            let parsed = header::parse(&block).map_err(|p| match p {
                HeaderProblem::Checksum => ReadError::Checksum { offset },
                other => ReadError::BadHeader {
                    offset,
                    reason: other.reason(),
                },
            })?;
            let h = match parsed {
                Parsed::Zero => {
                    if extended {
                        return Err(ReadError::BadHeader {
                            offset,
                            reason: "end of archive right after an extended header",
                        });
                    }
                    self.stream.read_exact(&mut block, None)?;
                    if block.iter().any(|&b| b != 0) {
                        return Err(ReadError::BadHeader {
                            offset,
                            reason: "a single zero block before more headers",
                        });
                    }
                    self.check_end()?;
                    return Ok(None);
                }
                Parsed::Header(h) => h,
            };
            self.headers += 1;
            if self.headers > self.limits.max_entries {
                return Err(ReadError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            match h.typeflag {
                header::TYPE_GNU_LONGNAME => {
                    if long_name.is_some() {
                        return Err(ReadError::BadHeader {
                            offset,
                            reason: "two long-name records for one entry",
                        });
                    }
                    if h.size > MAX_PATH_LEN as u64 + 1 {
                        return Err(ReadError::UnsafePath {
                            path: lossy(&h.name),
                            problem: PathProblem::TooLong,
                        });
                    }
                    let mut data = vec![0u8; h.size as usize];
                    self.stream.read_exact(&mut data, None)?;
                    self.stream.skip(header::padding(h.size), None)?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    long_name = Some(data);
                    extended = true;
                    continue;
                }
                b'x' => {
                    if h.size > MAX_PAX {
                        return Err(ReadError::BadHeader {
                            offset,
                            reason: "pax extended header larger than 64 KiB",
                        });
                    }
                    let mut data = vec![0u8; h.size as usize];
                    self.stream.read_exact(&mut data, None)?;
                    self.stream.skip(header::padding(h.size), None)?;
                    let pax = parse_pax(&data, offset)?;
                    if let Some(p) = pax.path {
                        if long_name.is_some() {
                            return Err(ReadError::BadHeader {
                                offset,
                                reason: "two long names for one entry",
                            });
                        }
                        long_name = Some(p);
                    }
                    if pax.size.is_some() {
                        pax_size = pax.size;
                    }
                    extended = true;
                    continue;
                }
                _ => {}
            }
            let raw_name = long_name.take().unwrap_or(h.name);
            let size = pax_size.take().unwrap_or(h.size);
            let owner = match (h.uid, h.gid) {
                (Some(uid), Some(gid)) => match (u32::try_from(uid), u32::try_from(gid)) {
                    (Ok(uid), Ok(gid)) => Some(Owner { uid, gid }),
                    _ => None,
                },
                _ => None,
            };
            return Ok(self
                .accept(raw_name, h.typeflag, &h.linkname, h.mode, size, offset)?
                .map(|accepted| (accepted, owner)));
        }
    }

    /// Checks one file or directory header; see the module doc for the rules.
    fn accept(
        &mut self,
        raw_name: Vec<u8>,
        typeflag: u8,
        linkname: &[u8],
        mode: u64,
        size: u64,
        offset: u64,
    ) -> Result<Option<Accepted>, ReadError> {
        let shown = lossy(&raw_name);
        let kind = match typeflag {
            b'0' | 0 => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'1' | b'2' | b'K' => {
                return Err(ReadError::Link {
                    path: shown,
                    target: lossy(linkname),
                    hard: typeflag == b'1',
                });
            }
            b'3' | b'4' => return Err(ReadError::Device { path: shown }),
            b'6' => return Err(ReadError::Fifo { path: shown }),
            other => {
                return Err(ReadError::UnsupportedType {
                    path: shown,
                    typeflag: other,
                });
            }
        };
        let mut name = String::from_utf8(raw_name).map_err(|_| ReadError::UnsafePath {
            path: shown.clone(),
            problem: PathProblem::NotUtf8,
        })?;
        if kind == EntryKind::Directory && name.ends_with('/') {
            name.pop();
        }
        path::check(&name).map_err(|problem| ReadError::UnsafePath {
            path: shown.clone(),
            problem,
        })?;
        if mode & !0o777 != 0 {
            return Err(ReadError::UnsafeMode { path: name, mode });
        }
        let mode = mode as u32;
        if kind == EntryKind::Directory && size != 0 {
            return Err(ReadError::BadHeader {
                offset,
                reason: "directory entry with data",
            });
        }
        for ancestor in path::ancestors(&name) {
            if self.seen.get(ancestor) == Some(&Seen::File) {
                return Err(ReadError::PathConflict {
                    path: name.clone(),
                    other: ancestor.to_owned(),
                });
            }
        }
        match (kind, self.seen.get(name.as_str())) {
            (_, None) => {}
            (EntryKind::Directory, Some(Seen::Dir { explicit: false })) => {}
            (EntryKind::File, Some(Seen::Dir { explicit: false })) => {
                return Err(ReadError::PathConflict {
                    path: name.clone(),
                    other: name,
                });
            }
            (_, Some(_)) => return Err(ReadError::Duplicate { path: name }),
        }
        if kind == EntryKind::File {
            match (self.declared)(&name) {
                None => return Err(ReadError::Undeclared { path: name }),
                Some(declared) if size > declared => {
                    return Err(ReadError::SizeExceedsDeclared {
                        path: name,
                        size,
                        declared,
                    });
                }
                Some(_) => {}
            }
        }
        for ancestor in path::ancestors(&name) {
            self.seen
                .entry(ancestor.to_owned())
                .or_insert(Seen::Dir { explicit: false });
        }
        let seen = match kind {
            EntryKind::File => Seen::File,
            EntryKind::Directory => Seen::Dir { explicit: true },
        };
        self.seen.insert(name.clone(), seen);
        self.stream.entry_left = size;
        self.stream.entry_pad = header::padding(size);
        self.stream.entry_name.clone_from(&name);
        Ok(Some((name, kind, mode, size)))
    }

    /// After the end marker: only zeros may follow (GNU tar pads to a 10 KiB record), up
    /// to the end of the gzip member, and nothing may follow the member.
    fn check_end(&mut self) -> Result<(), ReadError> {
        let mut buf = [0u8; 8192];
        loop {
            let start = self.stream.pos;
            let n = self.stream.read_some(&mut buf, None)?;
            if n == 0 {
                break;
            }
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(ReadError::TrailingData {
                    offset: start + i as u64,
                });
            }
        }
        let after = self
            .stream
            .gz
            .get_mut()
            .fill_buf()
            .map_err(|e| ReadError::from_io(e, self.stream.pos, None))?;
        if !after.is_empty() {
            return Err(ReadError::TrailingData {
                offset: self.stream.pos,
            });
        }
        Ok(())
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

/// Parses pax records `"<len> <key>=<value>\n"`; see the module doc for the keys allowed.
fn parse_pax(mut data: &[u8], offset: u64) -> Result<Pax, ReadError> {
    let bad = |reason| ReadError::BadHeader { offset, reason };
    let mut pax = Pax {
        path: None,
        size: None,
    };
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(bad("pax record without length"))?;
        let len = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(bad("bad pax record length"))?;
        if len <= space + 1 || len > data.len() {
            return Err(bad("bad pax record length"));
        }
        let record = &data[space + 1..len];
        data = &data[len..];
        let record = record
            .strip_suffix(b"\n")
            .ok_or(bad("pax record without newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(bad("pax record without '='"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(bad("bad pax size"))?;
                pax.size = Some(size);
            }
            b"mtime" | b"atime" | b"ctime" => {}
            other => {
                return Err(ReadError::PaxKey {
                    offset,
                    key: lossy(other),
                });
            }
        }
    }
    Ok(pax)
}
