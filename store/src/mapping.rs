//! A mapping of a byte range of a file: the one place ouk calls `mmap` and `munmap`.
//!
//! Two uses share it: the delta apply reads reference windows of baseline files through
//! read-only private mappings (`ouk_delta::content::Mapping`), and [`crate::presized`]
//! writes rebuilt files through shared writable mappings of reserved blocks. Why our own
//! and not a crate such as `memmap2`: both need only a range at an unaligned offset and
//! its drop, which is a few lines around two system calls, and the writable use must
//! never map unreserved blocks (see [`crate::presized`]), a rule a general-purpose mapping
//! type would not keep.
//!
//! Invariants:
//! - a mapping covers the page-aligned range holding the requested bytes and is unmapped
//!   exactly once, on drop;
//! - every access is range-checked against the mapping ([`FileMapping::slice`],
//!   [`FileMapping::copy_at`]); writes need `&mut` and a writable mapping;
//! - the caller keeps the file from shrinking while the mapping lives (a touch past the
//!   file's end faults the process): see each user's own rule.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The system's page size (4096 when it cannot be read).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// A mapping of a file's byte range, unmapped on drop.
#[derive(Debug)]
pub struct FileMapping {
    base: *mut libc::c_void,
    map_len: usize,
    /// File offset of `base` (page-aligned).
    start: u64,
    writable: bool,
}

// SAFETY: the mapping is owned by this value alone; `&FileMapping` gives only shared
// slices, and writes need `&mut FileMapping`.
unsafe impl Send for FileMapping {}
// SAFETY: as above.
unsafe impl Sync for FileMapping {}

impl FileMapping {
    /// A read-only private mapping of `len` bytes of `file` at `offset`, which the caller
    /// has checked lie inside the file. `len` 0 maps nothing.
    pub fn read_only(file: &File, offset: u64, len: usize) -> io::Result<FileMapping> {
        Self::map(file, offset, len, false)
    }

    /// A shared writable mapping of `len` bytes of `file` at `offset`, whose blocks the
    /// caller has reserved. `len` 0 maps nothing.
    pub fn writable(file: &File, offset: u64, len: usize) -> io::Result<FileMapping> {
        Self::map(file, offset, len, true)
    }

    fn map(file: &File, offset: u64, len: usize, writable: bool) -> io::Result<FileMapping> {
        let start = offset & !(page_size() - 1);
        let empty = FileMapping {
            base: std::ptr::null_mut(),
            map_len: 0,
            start: offset,
            writable,
        };
        if len == 0 {
            return Ok(empty);
        }
        let skip = usize::try_from(offset - start).map_err(io::Error::other)?;
        let map_len = skip
            .checked_add(len)
            .ok_or_else(|| io::Error::other("mapping length overflows"))?;
        let file_offset = libc::off_t::try_from(start).map_err(io::Error::other)?;
        let (prot, flags) = if writable {
            (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
        } else {
            (libc::PROT_READ, libc::MAP_PRIVATE)
        };
        // SAFETY: a fresh mapping of an open file; the kernel picks the address and the
        // result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                flags,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(FileMapping {
            base,
            map_len,
            start,
            writable,
        })
    }

    /// Whether file offset `at` lies inside the mapping.
    pub fn holds(&self, at: u64) -> bool {
        at >= self.start && at - self.start < self.map_len as u64
    }

    /// Bytes mapped from file offset `at` to the mapping's end (0 outside it).
    pub fn room_after(&self, at: u64) -> usize {
        if self.holds(at) {
            self.map_len - (at - self.start) as usize
        } else {
            0
        }
    }

    /// The `len` bytes at file offset `at`, if the mapping holds them all (`len` 0: empty).
    pub fn slice(&self, at: u64, len: usize) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        if self.room_after(at) < len {
            return None;
        }
        // SAFETY: `at - start + len <= map_len` (checked above), and the range is mapped
        // readable for as long as `self` lives.
        Some(unsafe {
            std::slice::from_raw_parts(self.base.cast::<u8>().add((at - self.start) as usize), len)
        })
    }

    /// Copy `bytes` to file offset `at`; refused unless the mapping is writable and holds
    /// the whole range.
    pub fn copy_at(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.writable || self.room_after(at) < bytes.len() {
            return Err(io::Error::other("a copy outside its writable mapping"));
        }
        // SAFETY: `at - start + bytes.len() <= map_len` (checked above), the range is
        // mapped writable for as long as `self` lives, and `&mut self` excludes any other
        // reference into it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.cast::<u8>().add((at - self.start) as usize),
                bytes.len(),
            );
        }
        Ok(())
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: unmaps exactly what `map` mapped, once; no borrow of it outlives self.
            unsafe {
                libc::munmap(self.base, self.map_len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ranges_are_checked_both_ways() {
        let mut f = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        f.write_all(&bytes).unwrap();
        let m = FileMapping::read_only(&f, 5_000, 10_000).unwrap();
        assert_eq!(m.slice(5_000, 10_000), Some(&bytes[5_000..15_000]));
        assert_eq!(m.slice(6_000, 3), Some(&bytes[6_000..6_003]));
        assert_eq!(m.slice(14_999, 2), None, "past the mapping's end");
        let mut m = m;
        assert!(
            m.copy_at(6_000, b"x").is_err(),
            "a read-only mapping takes no write"
        );

        let mut w = FileMapping::writable(&f, 4_097, 3).unwrap();
        w.copy_at(4_097, b"abc").unwrap();
        assert!(w.copy_at(4_099, b"de").is_err(), "past the mapping's end");
        drop(w);
        let mut back = vec![0u8; 3];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 4_097).unwrap();
        assert_eq!(back, b"abc");
        assert_eq!(
            FileMapping::read_only(&f, 7, 0).unwrap().slice(7, 0),
            Some(&[][..])
        );
    }
}
