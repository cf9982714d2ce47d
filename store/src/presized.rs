//! Writing a new file whose size is known up front.
//!
//! An import stages every new file it unpacks or rebuilds. Two rules make that cheap and
//! safe, both measured on the machines in docs/benchmarks.md ("Apply vs full import,
//! round 7"):
//! - The whole declared size is reserved with `fallocate` before the first byte is
//!   written, so a full disk is an `ENOSPC` error up front, not a file cut short
//!   halfway. Where the file system cannot reserve (`EOPNOTSUPP`), writing goes on
//!   unreserved.
//! - Bytes reach the file in positioned writes of at most [`WRITE_SLICE`]. A single
//!   `write` of 2 MiB or more lets the page cache take PMD-sized (2 MiB) folios, and on a
//!   virtual machine whose host takes back free memory (virtio free page reporting) those
//!   come from memory the host must back again on first touch: 1.4-2.7 s of system time
//!   for 800 MB, against 0.2 s in 1 MiB writes (`dd` on the benchmark machine). On other
//!   machines 1 MiB writes cost the same as larger ones. (Rounds 4-6 wrote through shared
//!   mappings instead; their page faults took the same large folios and zeroed each one
//!   before the copy: 1.2 of the apply's 5 CPU-seconds.)
//!
//! Invariants:
//! - Bytes are written front to back and never past the declared size (an error, not a
//!   longer file). [`PresizedFile::finish`] cuts the file at what was written, so a short
//!   write leaves a short file, which the caller's size and digest checks refuse.
//! - Every [`crate::writeback::WRITEBACK_STEP`] written, the device is asked to start
//!   writing those pages ([`crate::writeback`]); durability is still the caller's.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::writeback::{Handed, WRITE_SLICE};

/// A new file written front to back up to a size reserved at creation.
#[derive(Debug)]
pub struct PresizedFile {
    file: File,
    size: u64,
    at: u64,
    /// Whether the blocks are reserved (see the module doc).
    reserved: bool,
    /// How far the device was asked to write the file back.
    handed: Handed,
}

impl PresizedFile {
    /// Reserve `size` bytes for `file` (new and empty, opened for writing).
    pub fn reserve(file: File, size: u64) -> io::Result<PresizedFile> {
        let len =
            libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        let rc = if size == 0 {
            0
        } else {
            // SAFETY: fallocate on an fd this function owns; the result is checked.
            unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) }
        };
        let reserved = if rc == 0 {
            true
        } else {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => false,
                _ => return Err(e),
            }
        };
        Ok(PresizedFile {
            file,
            size,
            at: 0,
            reserved,
            handed: Handed::default(),
        })
    }

    /// Whether the file's blocks were reserved up front.
    pub fn is_reserved(&self) -> bool {
        self.reserved
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.at
    }

    /// Cut the file at what was written (the reservation past it is given back) and return
    /// it. Durability is the caller's (a later `fsync`/`syncfs`).
    pub fn finish(mut self) -> io::Result<File> {
        if self.at != self.size {
            self.file.set_len(self.at)?;
        }
        self.handed.finish(&self.file, self.at);
        Ok(self.file)
    }
}

impl Write for PresizedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let left = self.size - self.at;
        if bytes.len() as u64 > left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes would pass the declared size {} (at {})",
                    bytes.len(),
                    self.size,
                    self.at
                ),
            ));
        }
        for slice in bytes.chunks(WRITE_SLICE) {
            self.file.write_all_at(slice, self.at)?;
            self.at += slice.len() as u64;
        }
        self.handed.advance(&self.file, self.at);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::WRITEBACK_STEP;
    use std::io::Read;

    fn new_file(dir: &tempfile::TempDir, name: &str) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join(name))
            .unwrap()
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
    }

    fn read_back(mut f: File) -> Vec<u8> {
        use std::io::Seek;
        f.rewind().unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn writes_of_every_shape_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        // Unaligned small writes, one write of many slices past a writeback step, and a
        // tail: the file reads back as the bytes given, in order.
        let want = content(3 * WRITE_SLICE + 2 * WRITEBACK_STEP as usize + 12_345);
        let mut w = PresizedFile::reserve(new_file(&dir, "a"), want.len() as u64).unwrap();
        let cuts = [
            1,
            4095,
            4097,
            100_000,
            WRITEBACK_STEP as usize + WRITE_SLICE / 3,
        ];
        let mut at = 0;
        for c in cuts {
            w.write_all(&want[at..at + c]).unwrap();
            at += c;
        }
        w.write_all(&want[at..]).unwrap();
        assert_eq!(w.written(), want.len() as u64);
        let f = w.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), want.len() as u64);
        assert!(read_back(f) == want);
    }

    #[test]
    fn a_write_past_the_declared_size_is_refused_and_nothing_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PresizedFile::reserve(new_file(&dir, "a"), 10).unwrap();
        w.write_all(b"0123456").unwrap();
        let e = w.write_all(b"7890").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let f = w.finish().unwrap();
        assert_eq!(read_back(f), b"0123456");
    }

    #[test]
    fn a_short_write_leaves_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PresizedFile::reserve(new_file(&dir, "a"), 1 << 20).unwrap();
        w.write_all(b"abc").unwrap();
        let f = w.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 3);
    }

    #[test]
    fn an_empty_file_needs_no_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let w = PresizedFile::reserve(new_file(&dir, "a"), 0).unwrap();
        assert_eq!(w.finish().unwrap().metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_size_the_disk_cannot_hold_is_an_error_up_front() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than any test machine's free space (8 EiB - 1 is refused as too large
        // or as no space, never accepted).
        match PresizedFile::reserve(new_file(&dir, "a"), i64::MAX as u64) {
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EINVAL)
                ),
                "{e}"
            ),
            // A file system that cannot reserve is written with plain writes instead.
            Ok(w) => assert!(!w.is_reserved(), "8 EiB reserved?"),
        }
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().len(), 0);
    }
}
