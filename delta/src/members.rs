//! Zip members the host already has: the deflated members of a baseline zip, served to
//! [`ouk_recompress::rebuild_reusing`] so a `recompressed` zip marked `reuse_members_of`
//! copies its unchanged members instead of re-compressing them (issue 19: OSV's
//! `all.zip`, 193,087 members of which ~1% change a day).
//!
//! Invariants:
//! - the baseline file is host content (verified by its digest when read), but it is still
//!   parsed defensively: [`ouk_recompress::deflated_members`] streams it, one header at a
//!   time, and keeps at most [`MAX_MEMBERS`] entries;
//! - a member is served only when its whole range is in the file and at most
//!   [`MAX_MEMBER`] bytes; reads go through a window of [`WINDOW`] bytes, so memory stays
//!   bounded whatever the zip (the index: ~40 bytes per member);
//! - serving a member never decides the result: the rebuilt file's SHA-256 is checked as
//!   for every file, and the make side only marks a file after checking that the rule
//!   gives its exact bytes.

use std::collections::HashMap;
use std::io;

use ouk_recompress::MemberSource;
use ouk_store::FileDigest;

use crate::content::ContentReader;

/// Most members indexed (past it the rest are re-compressed).
pub const MAX_MEMBERS: usize = 1 << 21;
/// Largest member served (a larger one is re-compressed).
pub const MAX_MEMBER: u64 = 16 << 20;
/// Bytes read from the baseline file at a time.
const WINDOW: u64 = 4 << 20;

/// The deflated members of one baseline zip, by (CRC-32, compressed size, uncompressed
/// size).
pub struct BaselineMembers<'c> {
    content: &'c dyn ContentReader,
    digest: FileDigest,
    index: HashMap<(u32, u64, u64), u64>,
    window_start: u64,
    window: Vec<u8>,
}

impl<'c> BaselineMembers<'c> {
    /// Index the members of `digest` (read from `content`).
    pub fn index(content: &'c dyn ContentReader, digest: &FileDigest) -> io::Result<Self> {
        let mut input = content.open(digest)?;
        let list =
            ouk_recompress::deflated_members(&mut input, MAX_MEMBERS).map_err(|e| match e {
                ouk_recompress::RecompressError::Io(e) => e,
                e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            })?;
        let mut index = HashMap::with_capacity(list.len());
        for m in list {
            // The first of two identical members wins: either has the same bytes' values.
            index
                .entry((m.crc, m.csize, m.usize))
                .or_insert(m.data_offset);
        }
        Ok(BaselineMembers {
            content,
            digest: *digest,
            index,
            window_start: 0,
            window: Vec::new(),
        })
    }

    /// How many members were indexed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no member was indexed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl MemberSource for BaselineMembers<'_> {
    fn member(&mut self, crc: u32, csize: u64, usize: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(&at) = self.index.get(&(crc, csize, usize)) else {
            return Ok(None);
        };
        if csize > MAX_MEMBER {
            return Ok(None);
        }
        let end = at.saturating_add(csize);
        let have = self.window_start + self.window.len() as u64;
        if at < self.window_start || end > have {
            // Members usually come in file order: read ahead a window from this one.
            self.window = self
                .content
                .read_range(&self.digest, at, csize.max(WINDOW))?;
            self.window_start = at;
        }
        let from = usize::try_from(at - self.window_start).map_err(io::Error::other)?;
        let to = usize::try_from(end - self.window_start).map_err(io::Error::other)?;
        // Short at the end of the file: not there, so not served.
        Ok(self.window.get(from..to).map(<[u8]>::to_vec))
    }
}

static DEFLATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Add a rebuild's member counts to this process's totals.
pub(crate) fn count(stats: &ouk_recompress::RebuildStats) {
    use std::sync::atomic::Ordering::Relaxed;
    DEFLATED.fetch_add(stats.members_deflated, Relaxed);
    COPIED.fetch_add(stats.members_copied, Relaxed);
}

/// Zip run members this process has re-compressed and copied while applying deltas, in
/// all (what tests and benchmarks check the copying by).
pub fn member_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (DEFLATED.load(Relaxed), COPIED.load(Relaxed))
}
