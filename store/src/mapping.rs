//! A mapping of a byte range of a file: the one place ouk calls `mmap` and `munmap`.
//!
//! The delta apply reads reference windows of baseline files through read-only private
//! mappings (`ouk_delta::content::Mapping`). Why our own and not a crate such as
//! `memmap2`: it needs only a range at an unaligned offset and its drop, which is a few
//! lines around two system calls. (Rebuilt files were once written through shared
//! mappings too; [`crate::presized`] says why they no longer are.)
//!
//! Invariants:
//! - a mapping covers the page-aligned range holding the requested bytes and is unmapped
//!   exactly once, on drop;
//! - every access is range-checked against the mapping ([`FileMapping::slice`]), and a
//!   mapping is never written;
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
}

// SAFETY: the mapping is owned by this value alone, read-only, and gives only shared
// slices.
unsafe impl Send for FileMapping {}
// SAFETY: as above.
unsafe impl Sync for FileMapping {}

impl FileMapping {
    /// A read-only private mapping of `len` bytes of `file` at `offset`, which the caller
    /// has checked lie inside the file. `len` 0 maps nothing.
    pub fn read_only(file: &File, offset: u64, len: usize) -> io::Result<FileMapping> {
        let start = offset & !(page_size() - 1);
        let empty = FileMapping {
            base: std::ptr::null_mut(),
            map_len: 0,
            start: offset,
        };
        if len == 0 {
            return Ok(empty);
        }
        let skip = usize::try_from(offset - start).map_err(io::Error::other)?;
        let map_len = skip
            .checked_add(len)
            .ok_or_else(|| io::Error::other("mapping length overflows"))?;
        let file_offset = libc::off_t::try_from(start).map_err(io::Error::other)?;
        // SAFETY: a fresh mapping of an open file; the kernel picks the address and the
        // result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
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
        assert_eq!(
            FileMapping::read_only(&f, 7, 0).unwrap().slice(7, 0),
            Some(&[][..])
        );
    }
}
