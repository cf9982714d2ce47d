//! Writing a new file whose size is known up front, through shared mappings.
//!
//! Why not `write(2)`: an import stages every new file it unpacks or rebuilds, and on the
//! machines measured (docs/benchmarks.md, "Apply vs full import, round 4") each page that
//! enters the page cache costs a few microseconds to fault in, on one core, because a
//! buffered `write` holds the inode lock for the whole copy. Copying through a shared
//! mapping of a file whose blocks are reserved first takes no inode lock, so two threads
//! fault pages in at once: 768 MB in 0.29-0.34 s against 0.47-2.0 s for `write`
//! (`benches/scripts/staging_write_paths.c`).
//!
//! Invariants:
//! - The whole declared size is reserved with `fallocate` before the first byte is
//!   copied, so a full disk is an `ENOSPC` error here and never a `SIGBUS` in a page fault.
//!   Where the file system cannot reserve (`EOPNOTSUPP`), the file is written with plain
//!   positioned writes instead: never through a mapping of unreserved blocks. A file system
//!   that accepts `fallocate` without truly reserving (some copy-on-write or network file
//!   systems when full) can still fault: the process dies with `SIGBUS` mid-import, which
//!   is a crash like any other (nothing activated; the next run clears staging).
//! - Bytes are written front to back and never past the declared size (an error, not a
//!   longer file). [`PresizedFile::finish`] cuts the file at what was written, so a short
//!   write leaves a short file, which the caller's size and digest checks refuse.
//! - At most [`WINDOW`] bytes per copying thread are mapped at once, unmapped before the
//!   next window: the resident memory this adds is bounded whatever the file's size.
//! - The file must stay private to the writer while it is written (a truncation by someone
//!   else would fault the process): callers write only into their own staging directory.
//! - Every [`WRITEBACK_STEP`] of whole windows written, the device is asked to start
//!   writing those pages ([`crate::writeback`]); durability is still the caller's.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::mapping::FileMapping;
use crate::writeback::{WRITEBACK_STEP, start_writeback};

/// Bytes one thread maps at once.
pub const WINDOW: usize = 4 << 20;

/// A write at least this long is copied by two threads (when the machine has two cores):
/// below it, starting a thread costs more than it saves.
const PARALLEL_MIN: usize = 2 * WINDOW;

/// A new file written front to back up to a size reserved at creation.
#[derive(Debug)]
pub struct PresizedFile {
    file: File,
    size: u64,
    at: u64,
    /// Whether the blocks are reserved (else positioned writes, see the module doc).
    mapped: bool,
    parallel: bool,
    /// The window small writes go through, kept while writes stay inside it.
    window: Option<FileMapping>,
    /// Bytes before this offset were handed to the device's writeback already.
    written_back: u64,
}

impl PresizedFile {
    /// Reserve `size` bytes for `file` (new and empty, opened for reading and writing: a
    /// shared writable mapping needs both).
    pub fn reserve(file: File, size: u64) -> io::Result<PresizedFile> {
        let len =
            libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        let rc = if size == 0 {
            0
        } else {
            // SAFETY: fallocate on an fd this function owns; the result is checked.
            unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) }
        };
        let mapped = if rc == 0 {
            true
        } else {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => false,
                _ => return Err(e),
            }
        };
        let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        Ok(PresizedFile {
            file,
            size,
            at: 0,
            mapped,
            parallel,
            window: None,
            written_back: 0,
        })
    }

    /// Whether the file is written through mappings (its blocks were reserved).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.at
    }

    /// Cut the file at what was written (the reservation past it is given back) and return
    /// it. Durability is the caller's (a later `fsync`/`syncfs`).
    pub fn finish(mut self) -> io::Result<File> {
        self.window = None;
        if self.at != self.size {
            self.file.set_len(self.at)?;
        }
        start_writeback(&self.file, self.written_back, self.at);
        Ok(self.file)
    }

    /// Copy `bytes` to `self.at` through the window, moving it on as it fills.
    fn copy_through_window(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let mut at = self.at;
        while !bytes.is_empty() {
            let mut window = match self.window.take() {
                Some(w) if w.holds(at) => w,
                // Dropping the old window first unmaps it: one window at a time.
                old => {
                    drop(old);
                    let len = (self.size - at).min(WINDOW as u64) as usize;
                    FileMapping::writable(&self.file, at, len)?
                }
            };
            let n = window.room_after(at).min(bytes.len());
            window.copy_at(at, &bytes[..n])?;
            self.window = Some(window);
            at += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Copy a long `bytes` to `self.at` in windows, alternate windows on two threads.
    fn copy_in_parallel(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.window = None;
        let (file, offset) = (&self.file, self.at);
        std::thread::scope(|s| {
            let other = s.spawn(move || copy_windows(file, offset, bytes, 1));
            let mine = copy_windows(file, offset, bytes, 0);
            let theirs = other
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a copying thread panicked")));
            mine.and(theirs)
        })
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
        if !self.mapped {
            self.file.write_all_at(bytes, self.at)?;
        } else if self.parallel && bytes.len() >= PARALLEL_MIN {
            self.copy_in_parallel(bytes)?;
        } else {
            self.copy_through_window(bytes)?;
        }
        self.at += bytes.len() as u64;
        // Up to a `WINDOW` multiple: every page below it is complete and, writes being
        // sequential, never written again (a small-write window may still map some).
        let done = self.at - self.at % WINDOW as u64;
        if done >= self.written_back + WRITEBACK_STEP {
            start_writeback(&self.file, self.written_back, done);
            self.written_back = done;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copy every other [`WINDOW`] of `bytes` (the `first`-th, then every second after it) to
/// `offset` of `file`, one shared mapping per window, unmapped at once.
fn copy_windows(file: &File, offset: u64, bytes: &[u8], first: usize) -> io::Result<()> {
    for (i, window) in bytes.chunks(WINDOW).enumerate().skip(first).step_by(2) {
        let at = offset + (i * WINDOW) as u64;
        FileMapping::writable(file, at, window.len())?.copy_at(at, window)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        // Unaligned small writes, one write across many windows (copied by two threads),
        // and a tail: the file reads back as the bytes given, in order.
        let want = content(3 * WINDOW + 2 * PARALLEL_MIN + 12_345);
        let mut w = PresizedFile::reserve(new_file(&dir, "a"), want.len() as u64).unwrap();
        let cuts = [1, 4095, 4097, 100_000, 2 * PARALLEL_MIN + WINDOW / 3];
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
            Ok(w) => assert!(!w.is_mapped(), "8 EiB reserved?"),
        }
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().len(), 0);
    }
}
