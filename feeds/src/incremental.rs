//! A feed's index rows computed from its predecessor's: the rows of the rows that stayed,
//! minus those of the rows that left, plus those of the rows that came.
//!
//! A feed that changes daily keeps nearly every row byte for byte, and parsing a row (its
//! canonical JSON and SHA-256, [`crate::indexer::parse_row`]) costs far more than
//! recognising it. So when the predecessor's index is at hand (a delta's baseline
//! generation holds it, verified), [`RowDiff::of`] cuts both feeds into rows with the
//! indexer's own splitter, recognises rows by a 128-bit hash of their raw bytes, and parses
//! only the rows that differ: the predecessor's rows that left (to take their index rows
//! out) and the successor's rows that came (to put theirs in).
//!
//! Invariants:
//! - the result is the index rows [`crate::indexer::index_feeds`] writes for the successor
//!   feed with the same options, or `None` ("decline"): a row of either side that does not
//!   parse, a splitter-level bad row, a predecessor index that skipped rows or lacks a row
//!   its feed has, or options that skip bad rows all decline, and the caller scans the feed
//!   in full;
//! - the predecessor index is taken as given: it is the caller's job to pass a verified one
//!   (and to check what it derives against a signed digest where one exists). A wrong
//!   predecessor index gives a wrong result, never a panic or an unbounded allocation
//!   beyond the two feeds' row counts.

use std::collections::HashMap;
use std::io::BufRead;

use xxhash_rust::xxh3::xxh3_128;

use crate::index::{FeedHeader, FeedIndexReader, FeedRow, IndexError, IndexItem};
use crate::indexer::{BATCH_BYTES, IndexOptions, RowScratch, parse_row};
use crate::scan::{Batch, RowSplitter};

/// One feed's index as an index file holds it: its header and its rows, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRows {
    /// The feed's header line.
    pub header: FeedHeader,
    /// Its rows in [`FeedRow::cmp_key`] order.
    pub rows: Vec<FeedRow>,
}

/// A predecessor's index read feed by feed, in the index's (sorted) feed order, so only one
/// feed's rows are held at a time: ask for feeds in ascending kit-path order.
pub struct PredecessorIndex<R: BufRead> {
    reader: FeedIndexReader<R>,
    /// A header read past while looking for an earlier feed.
    pending: Option<FeedHeader>,
}

impl<R: BufRead> PredecessorIndex<R> {
    /// Open the index (its format line is checked).
    pub fn new(input: R) -> Result<Self, IndexError> {
        Ok(PredecessorIndex {
            reader: FeedIndexReader::new(input)?,
            pending: None,
        })
    }

    /// The rows of feed `rel`, or `None` when the index has no such feed (or it was asked
    /// for out of order). A malformed index is an error.
    pub fn rows_of(&mut self, rel: &str) -> Result<Option<FeedRows>, IndexError> {
        loop {
            let header = match self.pending.take() {
                Some(h) => h,
                None => match self.reader.next_item()? {
                    Some(IndexItem::Feed(h)) => h,
                    // Rows of a feed skipped over.
                    Some(IndexItem::Row(_)) => continue,
                    None => return Ok(None),
                },
            };
            match header.feed.as_str().cmp(rel) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Greater => {
                    self.pending = Some(header);
                    return Ok(None);
                }
                std::cmp::Ordering::Equal => {}
            }
            return self.rows_under(header);
        }
    }

    /// The rows that follow `header`, just read; `None` when they do not match it.
    fn rows_under(&mut self, header: FeedHeader) -> Result<Option<FeedRows>, IndexError> {
        let mut rows = Vec::with_capacity(usize::try_from(header.rows).unwrap_or(0).min(1 << 20));
        for _ in 0..header.rows {
            match self.reader.next_item()? {
                Some(IndexItem::Row(r)) => rows.push(r),
                // The reader checks row counts; anything else is a malformed index.
                _ => return Ok(None),
            }
        }
        Ok(Some(FeedRows { header, rows }))
    }

    /// Every feed of the index not read yet, with its rows, in the index's order; `None`
    /// when a feed's rows do not match its header (a malformed index is an error).
    pub fn every_feed(mut self) -> Result<Option<Vec<FeedRows>>, IndexError> {
        let mut out = Vec::new();
        loop {
            let header = match self.pending.take() {
                Some(h) => h,
                None => match self.reader.next_item()? {
                    Some(IndexItem::Feed(h)) => h,
                    Some(IndexItem::Row(_)) => return Ok(None),
                    None => return Ok(Some(out)),
                },
            };
            match self.rows_under(header)? {
                Some(feed) => out.push(feed),
                None => return Ok(None),
            }
        }
    }
}

/// Every row of a feed, one callback per batch of rows: `None` when the splitter found a
/// row it could not keep (the caller declines).
fn for_each_row(input: Box<dyn BufRead + Send + '_>, mut each: impl FnMut(&[u8])) -> Option<()> {
    let mut splitter = RowSplitter::new(input);
    let mut batch = Batch::default();
    loop {
        let more = splitter.next_batch(&mut batch, BATCH_BYTES).ok()?;
        for i in 0..batch.rows.len() {
            if batch.rows[i].0.bad.is_some() {
                return None;
            }
            each(batch.bytes(i));
        }
        if !more {
            return Some(());
        }
    }
}

/// What changed between two versions of a feed, row by row: the index rows of the rows
/// that left and of the rows that came ([`RowDiff::of`]); applied to the predecessor's
/// index rows it gives the successor's ([`RowDiff::apply_to`]). Computing it needs only
/// the two feeds, so it can run while the predecessor's index is still being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDiff {
    /// Rows the predecessor feed holds, when counted ([`RowDiff::of_same_bytes`] does not
    /// read every row, so it cannot count them).
    predecessor_rows: Option<u64>,
    went: Vec<FeedRow>,
    came: Vec<FeedRow>,
}

impl RowDiff {
    /// The diff of the successor feed (read from `successor`) against the predecessor
    /// (`predecessor` opens it, once or twice). `None` when a row does not parse or the
    /// splitter finds a bad row (the caller then scans in full).
    pub fn of<'p>(
        predecessor: &dyn Fn() -> std::io::Result<Box<dyn BufRead + Send + 'p>>,
        successor: Box<dyn BufRead + Send + '_>,
        opts: &IndexOptions,
    ) -> Option<RowDiff> {
        if opts.skip_bad_rows {
            return None;
        }
        // How many times each raw row occurs in the predecessor.
        let mut left: HashMap<u128, u32> = HashMap::new();
        let mut predecessor_rows = 0u64;
        for_each_row(predecessor().ok()?, |row| {
            *left.entry(xxh3_128(row)).or_default() += 1;
            predecessor_rows += 1;
        })?;
        // The successor's rows: the ones the predecessor also has use up one occurrence
        // there; the others are parsed.
        let mut scratch = RowScratch::default();
        let mut came = Vec::new();
        let mut failed = false;
        for_each_row(successor, |row| {
            if failed {
                return;
            }
            match left.get_mut(&xxh3_128(row)) {
                Some(n) if *n > 0 => *n -= 1,
                _ => match parse_row(row, &opts.id_fields, &mut scratch) {
                    Ok(r) => came.push(r),
                    Err(_) => failed = true,
                },
            }
        })?;
        // The predecessor's rows not used up left the feed: parse them to take theirs out.
        let mut went = Vec::new();
        if !failed && left.values().any(|n| *n > 0) {
            for_each_row(predecessor().ok()?, |row| {
                if failed {
                    return;
                }
                if let Some(n) = left.get_mut(&xxh3_128(row))
                    && *n > 0
                {
                    *n -= 1;
                    match parse_row(row, &opts.id_fields, &mut scratch) {
                        Ok(r) => went.push(r),
                        Err(_) => failed = true,
                    }
                }
            })?;
        }
        (!failed).then_some(RowDiff {
            predecessor_rows: Some(predecessor_rows),
            went,
            came,
        })
    }

    /// A diff from its parts: the rows that left and came, and the predecessor's row count
    /// when it is known.
    pub(crate) fn from_parts(
        predecessor_rows: Option<u64>,
        went: Vec<FeedRow>,
        came: Vec<FeedRow>,
    ) -> RowDiff {
        RowDiff {
            predecessor_rows,
            went,
            came,
        }
    }

    /// The parts [`RowDiff::from_parts`] takes.
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> (Option<u64>, Vec<FeedRow>, Vec<FeedRow>) {
        (self.predecessor_rows, self.went, self.came)
    }

    /// The successor's index rows, given the predecessor's `before`; `None` when `before`
    /// does not describe the predecessor feed (another row count where it was counted,
    /// skipped rows, a row that left and is not in it).
    pub fn apply_to(self, before: &FeedRows) -> Option<Vec<FeedRow>> {
        if before.header.skipped != 0
            || self
                .predecessor_rows
                .is_some_and(|n| n != before.header.rows)
        {
            return None;
        }
        merge(&before.rows, self.went, self.came)
    }
}

/// `before` minus `went` plus `came`, in [`FeedRow::cmp_key`] order; `None` when a row of
/// `went` is not in `before` (the predecessor index does not describe its feed).
fn merge(
    before: &[FeedRow],
    mut went: Vec<FeedRow>,
    mut came: Vec<FeedRow>,
) -> Option<Vec<FeedRow>> {
    went.sort_unstable_by(FeedRow::cmp_key);
    came.sort_unstable_by(FeedRow::cmp_key);
    let mut out = Vec::with_capacity(before.len() + came.len() - went.len().min(before.len()));
    let mut went = went.into_iter().peekable();
    let mut came = came.into_iter().peekable();
    for row in before {
        if went.peek() == Some(row) {
            went.next();
            continue;
        }
        while came
            .peek()
            .is_some_and(|c| c.cmp_key(row) == std::cmp::Ordering::Less)
        {
            out.extend(came.next());
        }
        out.push(row.clone());
    }
    if went.next().is_some() {
        return None;
    }
    out.extend(came);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexer::{index_feeds, select_feeds};
    use proptest::prelude::*;
    use std::io::Cursor;

    /// The index rows of the successor feed: [`RowDiff::of`] applied to `before`.
    fn index_feed_from<'p>(
        before: &FeedRows,
        predecessor: &dyn Fn() -> std::io::Result<Box<dyn BufRead + Send + 'p>>,
        successor: Box<dyn BufRead + Send + '_>,
        opts: &IndexOptions,
    ) -> Option<Vec<FeedRow>> {
        RowDiff::of(predecessor, successor, opts)?.apply_to(before)
    }

    /// The full indexer's rows for one feed of `bytes`.
    fn full_rows(bytes: &[u8]) -> Result<FeedRows, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feeds/osv/all.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let feeds = select_feeds([("feeds/osv/all.jsonl", path.as_path())]);
        let (_, out) =
            index_feeds(&feeds, &IndexOptions::default(), Vec::new()).map_err(|e| e.to_string())?;
        let mut reader = FeedIndexReader::new(Cursor::new(out)).unwrap();
        let mut header = None;
        let mut rows = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            match item {
                IndexItem::Feed(h) => header = Some(h),
                IndexItem::Row(r) => rows.push(r),
            }
        }
        Ok(FeedRows {
            header: header.unwrap(),
            rows,
        })
    }

    fn incremental(before: &[u8], after: &[u8]) -> Option<Vec<FeedRow>> {
        let index = full_rows(before).unwrap();
        let before = before.to_vec();
        let open = move || -> std::io::Result<Box<dyn BufRead + Send>> {
            Ok(Box::new(Cursor::new(before.clone())))
        };
        index_feed_from(
            &index,
            &open,
            Box::new(Cursor::new(after.to_vec())),
            &IndexOptions::default(),
        )
    }

    fn feed(rows: &[(u8, u8)]) -> Vec<u8> {
        rows.iter()
            .map(|(id, v)| {
                format!(
                    "{{\"id\":\"R-{id}\",\"modified\":\"2025-10-0{}\",\"v\":{v}}}\n",
                    v % 10
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn edits_removals_additions_and_duplicates_match_the_full_indexer() {
        let before = feed(&[(1, 1), (2, 1), (3, 1), (3, 1), (4, 1)]);
        let after = feed(&[(2, 1), (3, 2), (3, 1), (5, 1), (1, 1), (1, 1)]);
        assert_eq!(
            incremental(&before, &after).unwrap(),
            full_rows(&after).unwrap().rows
        );
    }

    #[test]
    fn declines_a_row_that_does_not_parse_and_an_index_of_another_feed() {
        let before = feed(&[(1, 1), (2, 1)]);
        let mut after = feed(&[(1, 1)]);
        after.extend_from_slice(b"{\"no_id\":1}\n");
        assert_eq!(incremental(&before, &after), None);
        // The index of other rows than the feed's: a row that left is not in it.
        let index = full_rows(&feed(&[(7, 1), (8, 1)])).unwrap();
        let open = move || -> std::io::Result<Box<dyn BufRead + Send>> {
            Ok(Box::new(Cursor::new(feed(&[(1, 1), (2, 1)]))))
        };
        let got = index_feed_from(
            &index,
            &open,
            Box::new(Cursor::new(feed(&[(1, 1)]))),
            &IndexOptions::default(),
        );
        assert_eq!(got, None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the edit, the shortcut gives the full indexer's rows or declines; on
        /// valid rows it never declines.
        #[test]
        fn agrees_with_the_full_indexer(
            before in proptest::collection::vec((0u8..20, 0u8..4), 0..30),
            after in proptest::collection::vec((0u8..20, 0u8..4), 0..30),
        ) {
            let (b, a) = (feed(&before), feed(&after));
            prop_assert_eq!(incremental(&b, &a), Some(full_rows(&a).unwrap().rows));
        }
    }
}
