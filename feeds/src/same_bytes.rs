//! A feed's [`RowDiff`] from the byte runs its successor shares with its predecessor,
//! reading only what lies outside them.
//!
//! A delta's record patch rebuilds a feed by copying runs of the baseline feed and writing
//! the changed records between them; the apply knows every run it copied
//! ([`SameBytes`]). Rows lying wholly inside such a run are the predecessor's rows at the
//! same place in the run, byte for byte, so they neither left nor came. What is left to
//! compare is the rows *outside* the runs on both sides, a few per changed record, instead
//! of every row of two feeds of hundreds of megabytes.
//!
//! Why that is the same diff: call the successor's rows inside runs `T_in` and the rest
//! `T_out`, and the predecessor rows those runs were copied from `B_in` (the rest `B_out`).
//! When no predecessor row is copied twice, `T_in` and `B_in` are the same multiset, so
//! `T - B = T_out - B_out` and `B - T = B_out - T_out` (multiset differences): exactly the
//! rows that came and went. Runs that copy one predecessor byte twice decline.
//!
//! Invariants:
//! - the rows are the scanner's ([`crate::scan::RowSplitter`], JSON lines): a line with its
//!   newline, whitespace-only lines skipped; a feed that is a JSON array, starts with
//!   whitespace or a byte-order mark, or is empty declines (the caller diffs in full);
//! - a run is only trusted where its bytes are inside both files; runs that are not sorted
//!   or overlap in the successor decline, and so do runs whose whole rows overlap in the
//!   predecessor (one predecessor row copied twice);
//! - the result's predecessor row count is unknown (counting would read every byte): the
//!   caller checks what it derives against a signed digest and rescans on a mismatch, as it
//!   does for every shortcut of [`crate::incremental`];
//! - memory: the bytes outside the runs, at most [`MAX_OUTSIDE`] for both sides (more
//!   declines before anything is read: the full diff streams instead).

use std::collections::HashMap;
use std::io;

use xxhash_rust::xxh3::xxh3_128;

use crate::incremental::RowDiff;
use crate::indexer::{IndexOptions, RowScratch, parse_row};
use crate::scan::MAX_ROW_BYTES;

/// `len` bytes at `successor` in the successor feed are the bytes at `predecessor` in the
/// predecessor feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SameBytes {
    /// Offset in the successor feed.
    pub successor: u64,
    /// Offset in the predecessor feed.
    pub predecessor: u64,
    /// Length of the run.
    pub len: u64,
}

/// A feed read by position: `read_at(offset, len)` gives up to `len` bytes at `offset`
/// (fewer only at the end).
///
/// The diff's reads near run edges are a few bytes each, thousands of them, close
/// together: reads inside one [`BLOCK`] are served from the last two blocks read (a run's
/// start and its end; the next run starts near the last one's end), so a source that
/// decodes a whole chunk per read (a baseline read from the store) is not asked once per
/// probe.
pub struct PositionedFeed<'a> {
    size: u64,
    read_at: &'a dyn Fn(u64, usize) -> io::Result<Vec<u8>>,
    /// The last two blocks read, the latest first.
    blocks: std::cell::RefCell<[Option<Block>; 2]>,
}

/// A block read: its offset and bytes.
type Block = (u64, Vec<u8>);

/// Bytes of the blocks [`PositionedFeed`] keeps for small reads. A page: a probe near a
/// run's edge needs a few bytes, and a daily delta has thousands of runs per feed (64 KiB
/// blocks read 0.77 GB to diff the 1 GiB pair's feeds; see docs/benchmarks.md, round 8).
const BLOCK: u64 = 4 << 10;

/// Most bytes outside the runs (both feeds together) read into memory; past it the diff
/// declines. A daily feed's changed rows are a few MB; a feed whose pieces were mostly
/// not record patches has gaps of hundreds of MB, which the full diff streams.
pub const MAX_OUTSIDE: u64 = 64 << 20;

/// Bytes read when looking for a line end near a run's edge; doubled while none is found.
const PROBE: usize = 4 << 10;

impl<'a> PositionedFeed<'a> {
    /// A feed of `size` bytes read through `read_at`.
    pub fn new(
        size: u64,
        read_at: &'a dyn Fn(u64, usize) -> io::Result<Vec<u8>>,
    ) -> PositionedFeed<'a> {
        PositionedFeed {
            size,
            read_at,
            blocks: std::cell::RefCell::new([None, None]),
        }
    }

    /// Exactly the bytes in `[from, to)`, or `None` (a failed or short read).
    fn bytes(&self, from: u64, to: u64) -> Option<Vec<u8>> {
        let len = usize::try_from(to.checked_sub(from)?).ok()?;
        let start = from - from % BLOCK;
        if to > start + BLOCK {
            let got = (self.read_at)(from, len).ok()?;
            return (got.len() == len).then_some(got);
        }
        let mut cached = self.blocks.borrow_mut();
        if cached[0].as_ref().is_none_or(|(at, _)| *at != start) {
            if cached[1].as_ref().is_some_and(|(at, _)| *at == start) {
                cached.swap(0, 1);
            } else {
                let read = (self.read_at)(start, BLOCK as usize).ok()?;
                cached[1] = cached[0].replace((start, read));
            }
        }
        let (_, block) = cached[0].as_ref()?;
        let skip = usize::try_from(from - start).ok()?;
        block.get(skip..skip + len).map(<[u8]>::to_vec)
    }

    fn byte(&self, at: u64) -> Option<u8> {
        self.bytes(at, at + 1).map(|b| b[0])
    }

    /// Whether a row can start at `at`: the file's start, or just after a newline.
    fn line_starts_at(&self, at: u64) -> Option<bool> {
        Some(at == 0 || self.byte(at - 1)? == b'\n')
    }

    /// The first newline in `[from, to)`.
    fn first_newline(&self, from: u64, to: u64) -> Option<Option<u64>> {
        let mut at = from;
        let mut probe = PROBE as u64;
        while at < to {
            let end = to.min(at + probe);
            let window = self.bytes(at, end)?;
            if let Some(i) = memchr::memchr(b'\n', &window) {
                return Some(Some(at + i as u64));
            }
            at = end;
            probe = probe.saturating_mul(2);
        }
        Some(None)
    }

    /// The last newline in `[from, to)`.
    fn last_newline(&self, from: u64, to: u64) -> Option<Option<u64>> {
        let mut end = to;
        let mut probe = PROBE as u64;
        while end > from {
            let at = from.max(end.saturating_sub(probe));
            let window = self.bytes(at, end)?;
            if let Some(i) = memchr::memrchr(b'\n', &window) {
                return Some(Some(at + i as u64));
            }
            end = at;
            probe = probe.saturating_mul(2);
        }
        Some(None)
    }

    /// Whether the scanner reads this feed as JSON lines from its first byte.
    fn is_plain_lines(&self) -> Option<bool> {
        let first = self.byte(0)?;
        Some(!matches!(first, b' ' | b'\t' | b'\n' | b'\r' | b'[' | 0xEF))
    }
}

/// Each row of `bytes` (whole lines, the last possibly without its newline), as the
/// scanner cuts them; `None` for a row the scanner would call bad (too long).
fn rows_of(bytes: &[u8], mut each: impl FnMut(&[u8])) -> Option<()> {
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
        let row = &bytes[start..end];
        if row.len() > MAX_ROW_BYTES + 1 {
            return None;
        }
        if !row
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            each(row);
        }
        start = end;
    }
    Some(())
}

/// The parts of `[0, size)` that `covered` (sorted, disjoint) leaves out.
fn gaps(covered: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(s, e) in covered {
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < size {
        out.push((at, size));
    }
    out
}

impl RowDiff {
    /// The diff of `successor` against `predecessor` given `runs` of bytes they share,
    /// sorted by successor offset (see the module docs). `None` declines: the caller then
    /// uses [`RowDiff::of`].
    pub fn of_same_bytes(
        predecessor: &PositionedFeed<'_>,
        successor: &PositionedFeed<'_>,
        runs: &[SameBytes],
        opts: &IndexOptions,
    ) -> Option<RowDiff> {
        Self::of_same_bytes_within(predecessor, successor, runs, opts, MAX_OUTSIDE)
    }

    /// [`RowDiff::of_same_bytes`] reading at most `max_outside` bytes outside the runs.
    fn of_same_bytes_within(
        predecessor: &PositionedFeed<'_>,
        successor: &PositionedFeed<'_>,
        runs: &[SameBytes],
        opts: &IndexOptions,
        max_outside: u64,
    ) -> Option<RowDiff> {
        if opts.skip_bad_rows || !predecessor.is_plain_lines()? || !successor.is_plain_lines()? {
            return None;
        }
        // Whole rows inside each run: (successor start, successor end, predecessor start).
        let mut inside: Vec<(u64, u64, u64)> = Vec::new();
        let mut previous_end = 0u64;
        for r in runs.iter().filter(|r| r.len > 0) {
            let s_end = r.successor.checked_add(r.len)?;
            let p_end = r.predecessor.checked_add(r.len)?;
            if r.successor < previous_end || s_end > successor.size || p_end > predecessor.size {
                return None;
            }
            previous_end = s_end;
            let start = if successor.line_starts_at(r.successor)?
                && predecessor.line_starts_at(r.predecessor)?
            {
                r.successor
            } else {
                match successor.first_newline(r.successor, s_end)? {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            let end = match successor.last_newline(start, s_end)? {
                Some(i) => i + 1,
                None => continue,
            };
            if end > start {
                inside.push((start, end, r.predecessor + (start - r.successor)));
            }
        }
        let successor_covered: Vec<(u64, u64)> = inside.iter().map(|&(s, e, _)| (s, e)).collect();
        let mut predecessor_covered: Vec<(u64, u64)> =
            inside.iter().map(|&(s, e, p)| (p, p + (e - s))).collect();
        predecessor_covered.sort_unstable();
        if predecessor_covered.windows(2).any(|w| w[0].1 > w[1].0) {
            return None;
        }
        // The rows outside the runs: the predecessor's counted by raw hash, the
        // successor's matched against them.
        let (before_gaps, after_gaps) = (
            gaps(&predecessor_covered, predecessor.size),
            gaps(&successor_covered, successor.size),
        );
        let outside: u64 = before_gaps
            .iter()
            .chain(&after_gaps)
            .map(|(s, e)| e - s)
            .sum();
        if outside > max_outside {
            return None;
        }
        let read = |feed: &PositionedFeed<'_>, gaps: Vec<(u64, u64)>| {
            gaps.into_iter()
                .map(|(s, e)| feed.bytes(s, e))
                .collect::<Option<Vec<Vec<u8>>>>()
        };
        let (before, after) = (
            read(predecessor, before_gaps)?,
            read(successor, after_gaps)?,
        );
        let mut left: HashMap<u128, u32> = HashMap::new();
        for gap in &before {
            rows_of(gap, |row| *left.entry(xxh3_128(row)).or_default() += 1)?;
        }
        let mut scratch = RowScratch::default();
        let mut failed = false;
        let mut parse =
            |row: &[u8], into: &mut Vec<_>| match parse_row(row, &opts.id_fields, &mut scratch) {
                Ok(r) => into.push(r),
                Err(_) => failed = true,
            };
        let mut came = Vec::new();
        for gap in &after {
            rows_of(gap, |row| match left.get_mut(&xxh3_128(row)) {
                Some(n) if *n > 0 => *n -= 1,
                _ => parse(row, &mut came),
            })?;
        }
        let mut went = Vec::new();
        for gap in &before {
            rows_of(gap, |row| {
                if let Some(n) = left.get_mut(&xxh3_128(row))
                    && *n > 0
                {
                    *n -= 1;
                    parse(row, &mut went);
                }
            })?;
        }
        (!failed).then(|| RowDiff::from_parts(None, went, came))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Cursor};

    use proptest::prelude::*;

    use super::*;

    fn positioned(bytes: &[u8]) -> impl Fn(u64, usize) -> io::Result<Vec<u8>> + Sync + '_ {
        move |at, len| {
            let at = (at as usize).min(bytes.len());
            Ok(bytes[at..bytes.len().min(at + len)].to_vec())
        }
    }

    fn full(before: &[u8], after: &[u8]) -> Option<RowDiff> {
        let b = before.to_vec();
        let open =
            move || -> io::Result<Box<dyn BufRead + Send>> { Ok(Box::new(Cursor::new(b.clone()))) };
        RowDiff::of(
            &open,
            Box::new(Cursor::new(after.to_vec())),
            &IndexOptions::default(),
        )
    }

    fn by_runs(before: &[u8], after: &[u8], runs: &[SameBytes]) -> Option<RowDiff> {
        by_runs_within(before, after, runs, MAX_OUTSIDE)
    }

    fn by_runs_within(
        before: &[u8],
        after: &[u8],
        runs: &[SameBytes],
        max_outside: u64,
    ) -> Option<RowDiff> {
        let (b, a) = (positioned(before), positioned(after));
        RowDiff::of_same_bytes_within(
            &PositionedFeed::new(before.len() as u64, &b),
            &PositionedFeed::new(after.len() as u64, &a),
            runs,
            &IndexOptions::default(),
            max_outside,
        )
    }

    /// Went and came as sorted lists (their order depends on where rows were read).
    fn sorted(d: RowDiff) -> (Vec<crate::index::FeedRow>, Vec<crate::index::FeedRow>) {
        let (_, mut went, mut came) = d.into_parts();
        went.sort_unstable_by(crate::index::FeedRow::cmp_key);
        came.sort_unstable_by(crate::index::FeedRow::cmp_key);
        (went, came)
    }

    fn row(id: u8, v: u8) -> String {
        format!("{{\"id\":\"R-{id}\",\"v\":{v}}}\n")
    }

    /// Runs a copying encoder could find: every maximal stretch of `after` that is a
    /// stretch of `before`, greedily, left to right (at least `min` bytes).
    fn greedy_runs(before: &[u8], after: &[u8], min: usize) -> Vec<SameBytes> {
        let mut runs = Vec::new();
        let mut t = 0;
        while t < after.len() {
            let mut best = (0, 0);
            for b in 0..before.len() {
                let n = before[b..]
                    .iter()
                    .zip(&after[t..])
                    .take_while(|(x, y)| x == y)
                    .count();
                if n > best.1 {
                    best = (b, n);
                }
            }
            if best.1 >= min {
                runs.push(SameBytes {
                    successor: t as u64,
                    predecessor: best.0 as u64,
                    len: best.1 as u64,
                });
                t += best.1;
            } else {
                t += 1;
            }
        }
        runs
    }

    #[test]
    fn rows_inside_runs_are_not_read_and_the_diff_is_the_full_one() {
        let before: String = (0..50).map(|i| row(i, 1)).collect();
        let mut after: String = (0..50).filter(|i| *i != 7).map(|i| row(i, 1)).collect();
        after = after.replace(&row(20, 1), &row(20, 2));
        after.push_str(&row(60, 1));
        let runs = greedy_runs(before.as_bytes(), after.as_bytes(), 8);
        let got = by_runs(before.as_bytes(), after.as_bytes(), &runs).unwrap();
        let want = full(before.as_bytes(), after.as_bytes()).unwrap();
        assert_eq!(sorted(got), sorted(want));
    }

    #[test]
    fn declines_arrays_overlapping_runs_and_runs_past_the_end() {
        let before = format!("{}{}", row(1, 1), row(2, 1));
        let after = before.clone();
        let whole = SameBytes {
            successor: 0,
            predecessor: 0,
            len: before.len() as u64,
        };
        assert!(by_runs(before.as_bytes(), after.as_bytes(), &[whole]).is_some());
        let array = format!("[{}]", before.trim_end());
        assert!(by_runs(array.as_bytes(), array.as_bytes(), &[]).is_none());
        let past = SameBytes {
            len: whole.len + 1,
            ..whole
        };
        assert!(by_runs(before.as_bytes(), after.as_bytes(), &[past]).is_none());
        // One predecessor row copied twice: the multisets differ, so it declines.
        let one = row(1, 1);
        let twice = format!("{one}{one}");
        let run = |successor| SameBytes {
            successor,
            predecessor: 0,
            len: one.len() as u64,
        };
        assert!(
            by_runs(
                one.as_bytes(),
                twice.as_bytes(),
                &[run(0), run(one.len() as u64)]
            )
            .is_none()
        );
        // Not sorted by successor offset.
        assert!(
            by_runs(
                twice.as_bytes(),
                twice.as_bytes(),
                &[run(one.len() as u64), run(0)]
            )
            .is_none()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// With any true runs (rows cut anywhere, blank lines, duplicates, a last row
        /// without its newline), the diff is the full one, or it declines.
        #[test]
        fn agrees_with_the_full_diff(
            before in proptest::collection::vec((0u8..12, 0u8..3), 1..24),
            after in proptest::collection::vec((0u8..12, 0u8..3), 1..24),
            blank in any::<bool>(),
            cut_last in any::<bool>(),
            min in 1usize..40,
        ) {
            let text = |rows: &[(u8, u8)]| {
                let mut s: String = rows.iter().map(|(i, v)| row(*i, *v)).collect();
                if blank { s.insert_str(s.find('\n').map_or(0, |i| i + 1), "  \n"); }
                s
            };
            let b = text(&before);
            let mut a = text(&after);
            if cut_last { a.pop(); }
            let runs = greedy_runs(b.as_bytes(), a.as_bytes(), min);
            let want = full(b.as_bytes(), a.as_bytes()).map(sorted);
            if let Some(got) = by_runs(b.as_bytes(), a.as_bytes(), &runs) {
                prop_assert_eq!(Some(sorted(got)), want);
            }
        }
    }

    #[test]
    fn more_bytes_outside_the_runs_than_the_bound_declines_before_reading_them() {
        let before: String = (0..40).map(|i| row(i, 1)).collect();
        let after: String = (0..40)
            .map(|i| if i % 9 == 4 { row(i, 2) } else { row(i, 1) })
            .collect();
        let runs = greedy_runs(before.as_bytes(), after.as_bytes(), 64);
        let outside = |limit| by_runs_within(before.as_bytes(), after.as_bytes(), &runs, limit);
        // Four rows changed: about four rows' bytes outside the runs on each side.
        let ten_rows = 10 * row(0, 1).len() as u64 + 10;
        assert!(outside(ten_rows).is_some());
        assert!(outside(ten_rows / 4).is_none());
        // No runs at all: the whole of both feeds is outside.
        assert!(by_runs_within(before.as_bytes(), after.as_bytes(), &[], 1024).is_none());
    }

    #[test]
    fn probes_inside_one_block_read_the_source_once() {
        let before: String = (0..40).map(|i| row(i, 1)).collect();
        let after: String = (0..40)
            .map(|i| if i % 9 == 4 { row(i, 2) } else { row(i, 1) })
            .collect();
        let runs = greedy_runs(before.as_bytes(), after.as_bytes(), 64);
        let reads = std::cell::Cell::new(0);
        let counted = |at: u64, len: usize| {
            reads.set(reads.get() + 1);
            positioned(before.as_bytes())(at, len)
        };
        let a = positioned(after.as_bytes());
        let got = RowDiff::of_same_bytes(
            &PositionedFeed::new(before.len() as u64, &counted),
            &PositionedFeed::new(after.len() as u64, &a),
            &runs,
            &IndexOptions::default(),
        );
        assert!(got.is_some());
        assert!(runs.len() > 3, "{} runs", runs.len());
        assert_eq!(reads.get(), 1, "one block read for every probe and gap");
    }

    #[test]
    fn exact_copies_never_decline() {
        // The case the apply meets: rows copied once each, in order.
        let before: String = (0..40).map(|i| row(i, 1)).collect();
        let after: String = (0..40)
            .map(|i| if i % 9 == 4 { row(i, 2) } else { row(i, 1) })
            .collect();
        let runs = greedy_runs(before.as_bytes(), after.as_bytes(), 64);
        let got = by_runs(before.as_bytes(), after.as_bytes(), &runs).expect("not declined");
        assert_eq!(
            sorted(got),
            sorted(full(before.as_bytes(), after.as_bytes()).unwrap())
        );
    }
}
