//! Starting the device on a new file's pages while the file is still being written.
//!
//! An import writes its whole staging tree (hundreds of megabytes) and then makes it
//! durable with one `syncfs` before it publishes. Left alone, the kernel starts writing
//! those pages only when a dirty-memory threshold or the 30 s expiry is reached, so that
//! `syncfs` waits for nearly every byte at once, with both cores idle. Asking for
//! writeback every [`WRITEBACK_STEP`] written (`sync_file_range(SYNC_FILE_RANGE_WRITE)`,
//! which queues the pages and does not wait for them) lets the device work while the
//! import still hashes and stores, and the final wait covers the last pages only.
//!
//! Writes go to the file in slices of at most [`WRITE_SLICE`], whatever the caller hands
//! over (a `BufWriter` passes a long buffer straight through): see [`crate::presized`]
//! for what a longer single write costs on a virtual machine.
//!
//! The requests are made on a thread of their own ([`start_writeback`]), not by the writer:
//! `sync_file_range` does not wait for the pages, but it does wait for a free slot in the
//! device's request queue, and with staging files and packs streaming at once that queue
//! is full. On the writer's thread those waits were 0.1-0.17 s of an apply of the 1 GiB
//! pair (stalls of up to 0.135 s with both cores idle; `strace -T`, docs/benchmarks.md).
//!
//! A queued request holds a duplicate descriptor of its file until it is made, so a file
//! removed meanwhile (a refused import's staging) frees its blocks a little later; at most
//! [`QUEUED_REQUESTS`] descriptors are held so.
//!
//! Invariant: this is advisory. Durability comes from the caller's `fsync`/`syncfs`
//! alone; a failed request, or one dropped because the requesting thread is behind, is
//! ignored.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::{OnceLock, mpsc};

/// Bytes written between two writeback requests.
pub const WRITEBACK_STEP: u64 = 16 << 20;

/// The longest single `write` a staging file is given: below 2 MiB, so the page cache
/// never takes a PMD-sized folio for it (see [`crate::presized`]).
pub const WRITE_SLICE: usize = 1 << 20;

/// Ask the device to start writing back `file`'s bytes in `[from, to)`, without waiting:
/// the request goes to the writeback thread with a duplicate of the descriptor (so `file`
/// may close at once). Made here instead when that thread cannot be had or is
/// [`QUEUED_REQUESTS`] requests behind (the caller then waits as it did before).
pub fn start_writeback(file: &File, from: u64, to: u64) {
    if to <= from {
        return;
    }
    let queued = writeback_thread()
        .zip(file.try_clone().ok())
        .map(|(requests, copy)| requests.try_send((copy, from, to)));
    if !matches!(queued, Some(Ok(()))) {
        request_writeback(file, from, to);
    }
}

/// Requests the writeback thread may hold before a writer makes its own.
pub const QUEUED_REQUESTS: usize = 64;

type Request = (File, u64, u64);

/// The queue of the thread that makes writeback requests, started on first use (`None`
/// when no thread could be started).
fn writeback_thread() -> Option<&'static mpsc::SyncSender<Request>> {
    static QUEUE: OnceLock<Option<mpsc::SyncSender<Request>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel::<Request>(QUEUED_REQUESTS);
            std::thread::Builder::new()
                .name("ouk-writeback".into())
                .spawn(move || {
                    for (file, from, to) in rx {
                        request_writeback(&file, from, to);
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` of `[from, to)` of `file` (may wait for the
/// device's queue, never for the pages).
fn request_writeback(file: &File, from: u64, to: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(from),
        libc::off64_t::try_from(to.saturating_sub(from)),
    ) else {
        return;
    };
    // SAFETY: a valid fd and a range of its file; the call only queues writeback, and its
    // result does not matter (see the module doc).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// How far a file written front to back was handed to the device: [`Handed::advance`]
/// asks for writeback of the bytes past it once [`WRITEBACK_STEP`] more were written.
/// Shared by every writer that appends ([`WritebackFile`], [`crate::presized`], packs).
#[derive(Debug, Default)]
pub(crate) struct Handed(u64);

impl Handed {
    /// A file whose first `at` bytes need no writeback from this writer.
    pub(crate) fn from(at: u64) -> Handed {
        Handed(at)
    }

    /// `file` now holds `written` bytes: start writeback past the last request once a
    /// whole step is there.
    pub(crate) fn advance(&mut self, file: &File, written: u64) {
        if written >= self.0 + WRITEBACK_STEP {
            self.finish(file, written);
        }
    }

    /// Start writeback of everything up to `written` (the file's end).
    pub(crate) fn finish(&mut self, file: &File, written: u64) {
        start_writeback(file, self.0, written);
        self.0 = self.0.max(written);
    }
}

/// A new file written front to back with `write`, its pages handed to the device every
/// [`WRITEBACK_STEP`] (put a `BufWriter` in front for small writes).
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    written: u64,
    handed: Handed,
}

impl WritebackFile {
    /// Wrap `file`, opened for writing at its start.
    pub fn new(file: File) -> WritebackFile {
        WritebackFile {
            file,
            written: 0,
            handed: Handed::default(),
        }
    }

    /// The file, its last bytes handed to the device too.
    pub fn into_inner(mut self) -> File {
        self.handed.finish(&self.file, self.written);
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(&buf[..buf.len().min(WRITE_SLICE)])?;
        self.written += n as u64;
        self.handed.advance(&self.file, self.written);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn bytes_written_through_are_the_file_and_writeback_is_requested_past_each_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(WRITEBACK_STEP as usize * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = WritebackFile::new(File::create(&path).unwrap());
        // Parts both shorter and longer than a slice.
        for part in data.chunks(3 * WRITE_SLICE + 7) {
            w.write_all(part).unwrap();
        }
        assert!(
            w.handed.0 >= WRITEBACK_STEP * 2
                && w.handed.0 < WRITEBACK_STEP * 2 + WRITE_SLICE as u64,
            "{}",
            w.handed.0
        );
        drop(w.into_inner());
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data);
    }
}
