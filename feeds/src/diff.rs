//! Row changes between two feed indexes: a streaming merge-join in constant memory.
//!
//! **Definition.** A row's key is (source, upstream id, tenant). Between an old index and a
//! new one, a key is
//! - *added* when only the new index has it,
//! - *withdrawn* when only the old index has it,
//! - *modified* when both have it and the **set** of its content hashes differs (a key
//!   normally has one row; duplicates, which the audit reports, are compared as sets, so a
//!   duplicate row repeated in both is no change).
//!
//! Keys are joined **per source, not per feed file**: a feed renamed or split within a
//! source (`feeds/osv/all.jsonl` becoming `feeds/osv/npm.jsonl` + `feeds/osv/pypi.jsonl`)
//! shows only the rows whose content changed, not everything withdrawn and re-added. A row
//! moving from one source to another is withdrawn from the first and added to the second:
//! the source is part of the identity (it is the vendor the row came from).
//!
//! **How.** Each index is read once in full, validating every rule of the format and
//! noting the byte offset of each feed header (memory: one small record per feed). Then,
//! source by source in name order, the feeds of that source are merged (each feed is
//! sorted by (id, tenant, hash), so a k-way merge of one cursor per feed is sorted too),
//! and the old and new merged streams are joined key by key. Memory: one buffered cursor
//! per feed of the source being joined plus the hashes of one key — independent of the
//! number of rows. Changes are produced in (source, id, tenant) order, so the output is
//! deterministic.
//!
//! **Cost.** This runs after every import, so it is kept to reading: the two first passes
//! run on one core each, and sources are then joined on threads of their own (their
//! changes still reach the consumer in order); rows in the writer's form are read without serde
//! (`FeedIndexReader::advance`) into buffers reused from row to row, and only a change
//! allocates (`benches/record_import.rs` times it).
//!
//! Invariant: `diff(old, new)` depends only on the two indexes' rows, never on the order
//! or names of their feed files within a source.

use std::cell::Cell;
use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::sync_channel;

use serde::{Deserialize, Serialize};

use super::index::{
    Advanced, FEED_INDEX_FORMAT, FeedHeader, FeedIndexReader, FeedRow, IndexError, IndexItem,
    RowHash,
};
use super::sort::MergeHead;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only the new index has the key.
    Added,
    /// Both have it, with different content hashes.
    Modified,
    /// Only the old index has it.
    Withdrawn,
}

impl ChangeKind {
    /// `added`, `modified` or `withdrawn`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Withdrawn => "withdrawn",
        }
    }
}

/// One changed key. `hash` is the new content hash (absent when withdrawn), `previous` the
/// old one (absent when added). When a side has several distinct hashes (duplicates),
/// that side's field holds the smallest and `hashes` / `previousHashes` list them all;
/// otherwise those lists are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowChange {
    /// The vendor (directory under `feeds/`).
    pub source: String,
    /// The upstream id.
    pub id: String,
    /// The tenant; absent is the default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Added, modified or withdrawn.
    pub change: ChangeKind,
    /// The new content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<RowHash>,
    /// The previous content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<RowHash>,
    /// Every new hash, when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<RowHash>,
    /// Every previous hash, when there were several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_hashes: Vec<RowHash>,
}

/// Counts of one source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    /// Keys added.
    pub added: u64,
    /// Keys modified.
    pub modified: u64,
    /// Keys withdrawn.
    pub withdrawn: u64,
}

impl SourceCounts {
    /// Count `change`.
    pub fn count(&mut self, change: ChangeKind) {
        match change {
            ChangeKind::Added => self.added += 1,
            ChangeKind::Modified => self.modified += 1,
            ChangeKind::Withdrawn => self.withdrawn += 1,
        }
    }
    /// added + modified + withdrawn.
    pub fn total(&self) -> u64 {
        self.added + self.modified + self.withdrawn
    }
}

/// Per-source counts, by source name.
pub type DiffCounts = BTreeMap<String, SourceCounts>;

/// A diff that could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// An index is malformed, or could not be read.
    #[error("{path}: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        source: IndexError,
    },
    /// Two feeds of one index disagree with the first pass (the file changed while read).
    #[error("{path}: changed while it was read ({message})")]
    Changed {
        /// The index file.
        path: PathBuf,
        /// What differed.
        message: String,
    },
    /// The consumer of the changes failed.
    #[error("{0}")]
    Sink(String),
}

/// A feed of one index: its header and where its header line starts.
#[derive(Debug, Clone)]
struct FeedAt {
    header: FeedHeader,
    offset: u64,
}

/// One index, scanned: its feeds grouped by source.
#[derive(Debug, Default)]
struct Scanned {
    path: Option<PathBuf>,
    by_source: BTreeMap<String, Vec<FeedAt>>,
}

/// A [`BufRead`] that counts the bytes consumed from it.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.pos.set(self.pos.get() + amt as u64);
    }
}

fn index_err(path: &Path) -> impl Fn(IndexError) -> DiffError + '_ {
    move |source| DiffError::Index {
        path: path.to_path_buf(),
        source,
    }
}

fn open_index(path: &Path) -> Result<File, DiffError> {
    File::open(path).map_err(|e| index_err(path)(IndexError::Io(e)))
}

/// Pass 1: validate the whole index and note where each feed starts. Rows are checked
/// (parsed, ordered) but not copied out: [`FeedIndexReader::advance`] reuses one row.
fn scan(path: &Path) -> Result<Scanned, DiffError> {
    let pos = Rc::new(Cell::new(0u64));
    let input = Counting {
        inner: BufReader::with_capacity(INDEX_BUF, open_index(path)?),
        pos: pos.clone(),
    };
    let mut reader = FeedIndexReader::new(input).map_err(index_err(path))?;
    let mut scanned = Scanned {
        path: Some(path.to_path_buf()),
        by_source: BTreeMap::new(),
    };
    loop {
        let offset = pos.get();
        match reader.advance().map_err(index_err(path))? {
            None => break,
            Some(Advanced::Feed(header)) => scanned
                .by_source
                .entry(header.source.clone())
                .or_default()
                .push(FeedAt { header, offset }),
            Some(Advanced::Row) => {}
        }
    }
    Ok(scanned)
}

/// Pass 1 of an index, or an empty one.
fn scan_or_empty(path: Option<&Path>) -> Result<Scanned, DiffError> {
    match path {
        Some(p) => scan(p),
        None => Ok(Scanned::default()),
    }
}

/// Read buffer of an index file: large enough that reading it is few system calls.
const INDEX_BUF: usize = 256 << 10;

type FormatThenFile = io::Chain<io::Cursor<Vec<u8>>, BufReader<File>>;

/// The rows of one feed, read from its header's offset.
struct FeedCursor {
    reader: FeedIndexReader<FormatThenFile>,
    left: u64,
    path: PathBuf,
}

impl FeedCursor {
    fn open(path: &Path, feed: &FeedAt) -> Result<FeedCursor, DiffError> {
        let mut file = open_index(path)?;
        file.seek(SeekFrom::Start(feed.offset))
            .map_err(|e| index_err(path)(IndexError::Io(e)))?;
        // The reader wants the format line first; the real one was checked by `scan`.
        let format = format!("{{\"format\":\"{FEED_INDEX_FORMAT}\"}}\n").into_bytes();
        let input = io::Cursor::new(format).chain(BufReader::with_capacity(INDEX_BUF, file));
        let mut reader = FeedIndexReader::new(input).map_err(index_err(path))?;
        match reader.next_item().map_err(index_err(path))? {
            Some(IndexItem::Feed(h)) if h == feed.header => {}
            other => {
                return Err(DiffError::Changed {
                    path: path.to_path_buf(),
                    message: format!(
                        "expected feed {} at byte {}, found {other:?}",
                        feed.header.feed, feed.offset
                    ),
                });
            }
        }
        Ok(FeedCursor {
            reader,
            left: feed.header.rows,
            path: path.to_path_buf(),
        })
    }

    /// Read the feed's next row into `row`, reusing its buffers (`modified`, which the
    /// diff does not use, is not copied); false after the feed's last row.
    fn next_row_into(&mut self, row: &mut FeedRow) -> Result<bool, DiffError> {
        if self.left == 0 {
            return Ok(false);
        }
        self.left -= 1;
        match self.reader.advance().map_err(index_err(&self.path))? {
            Some(Advanced::Row) => {
                let read = self.reader.row();
                row.id.clone_from(&read.id);
                row.tenant.clone_from(&read.tenant);
                row.hash = read.hash;
                Ok(true)
            }
            other => Err(DiffError::Changed {
                path: self.path.clone(),
                message: match other {
                    Some(Advanced::Feed(h)) => format!("expected a row, found feed {}", h.feed),
                    _ => "expected a row, found the end".into(),
                },
            }),
        }
    }
}

/// The rows of every feed of one source, merged into one sorted stream.
struct SourceRows {
    cursors: Vec<FeedCursor>,
    /// One head per cursor not yet exhausted; a head's row buffers are reused for each
    /// row of its cursor, so the merge allocates nothing per row.
    heap: BinaryHeap<Reverse<MergeHead>>,
}

impl SourceRows {
    fn open(path: Option<&Path>, feeds: &[FeedAt]) -> Result<SourceRows, DiffError> {
        let mut s = SourceRows {
            cursors: Vec::new(),
            heap: BinaryHeap::new(),
        };
        let Some(path) = path else { return Ok(s) };
        for feed in feeds.iter().filter(|f| f.header.rows > 0) {
            let mut c = FeedCursor::open(path, feed)?;
            let mut row = FeedRow {
                id: String::new(),
                hash: RowHash([0; 32]),
                tenant: None,
                modified: None,
            };
            if c.next_row_into(&mut row)? {
                s.heap.push(Reverse(MergeHead {
                    row,
                    cursor: s.cursors.len(),
                }));
            }
            s.cursors.push(c);
        }
        Ok(s)
    }

    /// Move the smallest head to its cursor's next row (dropping it at the cursor's end).
    fn advance_smallest(&mut self) -> Result<(), DiffError> {
        let Some(mut top) = self.heap.peek_mut() else {
            return Ok(());
        };
        let head = &mut top.0;
        let more = match self.cursors.get_mut(head.cursor) {
            Some(cursor) => cursor.next_row_into(&mut head.row)?,
            None => false,
        };
        if !more {
            PeekMut::pop(top);
        }
        Ok(())
    }
}

/// A source's rows merged in (id, tenant, hash) order, read key by key.
trait KeyStream {
    /// The smallest row not read yet.
    fn peek(&self) -> Option<&FeedRow>;

    /// Move past [`KeyStream::peek`]'s row.
    fn advance(&mut self) -> Result<(), DiffError>;

    /// Read the next key and its distinct hashes (sorted) into `key`, reusing its
    /// buffers; false at the end.
    fn next_key(&mut self, key: &mut KeyHashes) -> Result<bool, DiffError> {
        let Some(first) = self.peek() else {
            return Ok(false);
        };
        key.id.clone_from(&first.id);
        key.tenant.clone_from(&first.tenant);
        key.hashes.clear();
        key.hashes.push(first.hash);
        self.advance()?;
        while let Some(next) = self.peek() {
            if next.id != key.id || next.tenant != key.tenant {
                break;
            }
            if key.hashes.last() != Some(&next.hash) {
                key.hashes.push(next.hash);
            }
            self.advance()?;
        }
        Ok(true)
    }
}

impl KeyStream for SourceRows {
    fn peek(&self) -> Option<&FeedRow> {
        self.heap.peek().map(|Reverse(head)| &head.row)
    }

    fn advance(&mut self) -> Result<(), DiffError> {
        self.advance_smallest()
    }
}

/// One key of a source's merged stream and its distinct hashes, sorted.
#[derive(Default)]
struct KeyHashes {
    id: String,
    tenant: Option<String>,
    hashes: Vec<RowHash>,
}

impl KeyHashes {
    fn cmp_key(&self, other: &KeyHashes) -> Ordering {
        (self.id.as_str(), self.tenant.as_deref())
            .cmp(&(other.id.as_str(), other.tenant.as_deref()))
    }
}

fn first_and_all(hashes: &[RowHash]) -> (Option<RowHash>, Vec<RowHash>) {
    let first = hashes.first().copied();
    if hashes.len() > 1 {
        (first, hashes.to_vec())
    } else {
        (first, Vec::new())
    }
}

fn change(
    source: &str,
    kind: ChangeKind,
    old: Option<&KeyHashes>,
    new: Option<&KeyHashes>,
) -> RowChange {
    let (id, tenant) = match (new, old) {
        (Some(k), _) | (None, Some(k)) => (k.id.clone(), k.tenant.clone()),
        (None, None) => (String::new(), None),
    };
    let (hash, hashes) = first_and_all(new.map_or(&[], |k| &k.hashes));
    let (previous, previous_hashes) = first_and_all(old.map_or(&[], |k| &k.hashes));
    RowChange {
        source: source.to_string(),
        id,
        tenant,
        change: kind,
        hash,
        previous,
        hashes,
        previous_hashes,
    }
}

/// Join one source's old and new streams, handing each change to `sink`. The two keys
/// in hand are reused from key to key: only a change allocates.
fn join_source(
    source: &str,
    mut old: impl KeyStream,
    mut new: impl KeyStream,
    sink: &mut dyn FnMut(RowChange) -> Result<(), DiffError>,
) -> Result<SourceCounts, DiffError> {
    let mut counts = SourceCounts::default();
    let (mut o, mut n) = (KeyHashes::default(), KeyHashes::default());
    let mut o_live = old.next_key(&mut o)?;
    let mut n_live = new.next_key(&mut n)?;
    loop {
        let order = match (o_live, n_live) {
            (false, false) => break,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (true, true) => o.cmp_key(&n),
        };
        let c = match order {
            Ordering::Less => {
                let c = change(source, ChangeKind::Withdrawn, Some(&o), None);
                o_live = old.next_key(&mut o)?;
                Some(c)
            }
            Ordering::Greater => {
                let c = change(source, ChangeKind::Added, None, Some(&n));
                n_live = new.next_key(&mut n)?;
                Some(c)
            }
            Ordering::Equal => {
                let c = (o.hashes != n.hashes)
                    .then(|| change(source, ChangeKind::Modified, Some(&o), Some(&n)));
                o_live = old.next_key(&mut o)?;
                n_live = new.next_key(&mut n)?;
                c
            }
        };
        if let Some(c) = c {
            counts.count(c.change);
            sink(c)?;
        }
    }
    Ok(counts)
}

/// Diff the index at `old` (none: an empty baseline, so every row is added) against the
/// index at `new` (none: every row withdrawn), handing each change to `sink` in
/// (source, id, tenant) order. Returns the per-source counts (sources with no change are
/// listed with zero counts when either index has them).
pub fn diff_indexes(
    old: Option<&Path>,
    new: Option<&Path>,
    sink: &mut dyn FnMut(RowChange) -> Result<(), DiffError>,
) -> Result<DiffCounts, DiffError> {
    // The two first passes are independent: one core each.
    let (old, new) = rayon::join(|| scan_or_empty(old), || scan_or_empty(new));
    let (old, new) = (old?, new?);
    let mut sources: Vec<&String> = old.by_source.keys().chain(new.by_source.keys()).collect();
    sources.sort();
    sources.dedup();
    let none: Vec<FeedAt> = Vec::new();
    let mut counts = DiffCounts::new();
    // Sources are joined on threads of their own, up to `JOINS_AHEAD` at once, each into a
    // bounded lane; this thread hands the lanes' changes to `sink` source by source, so
    // the output is the sequential join's, in the same order.
    std::thread::scope(|s| -> Result<(), DiffError> {
        let lane = |i: usize| {
            let source: &String = sources[i];
            let (tx, rx) = sync_channel::<RowChange>(LANE_CHANGES);
            let (old_feeds, new_feeds) = (
                old.by_source.get(source).unwrap_or(&none),
                new.by_source.get(source).unwrap_or(&none),
            );
            let (old_path, new_path) = (old.path.as_deref(), new.path.as_deref());
            let join = s.spawn(move || {
                let old_rows = SourceRows::open(old_path, old_feeds)?;
                let new_rows = SourceRows::open(new_path, new_feeds)?;
                join_source(source, old_rows, new_rows, &mut |c| {
                    tx.send(c)
                        .map_err(|_| DiffError::Sink("the consumer of the changes stopped".into()))
                })
            });
            (source, rx, join)
        };
        let mut pending = 0..sources.len();
        let mut lanes: std::collections::VecDeque<_> =
            pending.by_ref().take(JOINS_AHEAD).map(lane).collect();
        let mut failure: Option<DiffError> = None;
        while let Some((source, rx, join)) = lanes.pop_front() {
            if failure.is_none() {
                for c in rx.iter() {
                    if let Err(e) = sink(c) {
                        failure = Some(e);
                        break;
                    }
                }
            }
            // A lane nobody reads any more stops its thread at its next change.
            drop(rx);
            match join.join() {
                Ok(Ok(c)) => {
                    counts.insert(source.clone(), c);
                }
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                // A bug, not a consumer failure: raised as the panic it is (the lanes
                // still held are dropped on the way, which releases their threads).
                Err(panic) => std::panic::resume_unwind(panic),
            }
            if failure.is_none() {
                lanes.extend(pending.next().map(lane));
            }
        }
        failure.map_or(Ok(()), Err)
    })?;
    Ok(counts)
}

/// Sources joined at once by [`diff_indexes`] (each holds one buffered cursor per feed).
const JOINS_AHEAD: usize = 4;

/// Changes a source's join may run ahead of the consumer (a few MiB at most per lane): a
/// daily diff fits, so every source is joined at once; a diff of everything (a first
/// import) waits for the consumer instead of growing.
const LANE_CHANGES: usize = 8192;

/// One feed of an index held in memory, for [`diff_rows`].
#[derive(Debug, Clone, Copy)]
pub struct FeedRowsOf<'a> {
    /// The feed's source (its header's `source`).
    pub source: &'a str,
    /// Its rows, in [`FeedRow::cmp_key`] order (as an index holds them).
    pub rows: &'a [FeedRow],
}

/// A source's rows held in memory, merged in [`FeedRow::cmp_key`] order.
struct RowsInMemory<'a> {
    rows: Vec<&'a FeedRow>,
    at: usize,
}

impl<'a> RowsInMemory<'a> {
    fn of(feeds: &[&'a [FeedRow]]) -> RowsInMemory<'a> {
        let mut rows: Vec<&FeedRow> = feeds.iter().flat_map(|f| f.iter()).collect();
        // Each feed is sorted already (the index's rule, which its reader and writer
        // enforce): the sort only merges them (it finds the runs).
        if feeds.len() > 1 {
            rows.sort_by(|a, b| a.cmp_key(b));
        }
        debug_assert!(rows.is_sorted_by(|a, b| a.cmp_key(b).is_le()));
        RowsInMemory { rows, at: 0 }
    }
}

impl KeyStream for RowsInMemory<'_> {
    fn peek(&self) -> Option<&FeedRow> {
        self.rows.get(self.at).copied()
    }

    fn advance(&mut self) -> Result<(), DiffError> {
        self.at += 1;
        Ok(())
    }
}

/// [`diff_indexes`] of two indexes whose rows are held in memory (`old` and `new`, each
/// every feed of its index): the same changes in the same order, and the same counts,
/// without reading either index again. A delta apply derives the target's index from rows
/// it holds, and diffs those (`ouk_feeds::host::changes_of_rows`).
pub fn diff_rows<'a>(
    old: &[FeedRowsOf<'a>],
    new: &[FeedRowsOf<'a>],
    sink: &mut dyn FnMut(RowChange) -> Result<(), DiffError>,
) -> Result<DiffCounts, DiffError> {
    fn by_source<'a>(feeds: &[FeedRowsOf<'a>]) -> BTreeMap<&'a str, Vec<&'a [FeedRow]>> {
        let mut m: BTreeMap<&str, Vec<&[FeedRow]>> = BTreeMap::new();
        for f in feeds {
            m.entry(f.source).or_default().push(f.rows);
        }
        m
    }
    let (old, new) = (by_source(old), by_source(new));
    let mut sources: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    sources.sort_unstable();
    sources.dedup();
    let none = Vec::new();
    let mut counts = DiffCounts::new();
    for source in sources {
        let c = join_source(
            source,
            RowsInMemory::of(old.get(source).unwrap_or(&none)),
            RowsInMemory::of(new.get(source).unwrap_or(&none)),
            sink,
        )?;
        counts.insert(source.to_string(), c);
    }
    Ok(counts)
}

/// [`diff_indexes`] collecting every change (for tests and small indexes).
pub fn diff_to_vec(
    old: Option<&Path>,
    new: Option<&Path>,
) -> Result<(DiffCounts, Vec<RowChange>), DiffError> {
    let mut out = Vec::new();
    let counts = diff_indexes(old, new, &mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok((counts, out))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::testutil::{index_bytes, row};

    type Feed = (String, String, Vec<FeedRow>);

    /// Write an index from (path, source, rows), sorting as the format requires.
    fn write_index(dir: &Path, name: &str, feeds: &[Feed]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, index_bytes(feeds)).unwrap();
        p
    }

    type Key = (String, String, Option<String>);

    /// The definition, naively: every key's set of hashes, in memory.
    fn naive(old: &[Feed], new: &[Feed]) -> Vec<(Key, ChangeKind)> {
        fn sets(feeds: &[Feed]) -> BTreeMap<Key, BTreeSet<RowHash>> {
            let mut m: BTreeMap<Key, BTreeSet<RowHash>> = BTreeMap::new();
            let mut seen = std::collections::HashSet::new();
            for (path, source, rows) in feeds {
                if !seen.insert(path.clone()) {
                    continue; // write_index keeps the first feed of a path
                }
                for r in rows {
                    m.entry((source.clone(), r.id.clone(), r.tenant.clone()))
                        .or_default()
                        .insert(r.hash);
                }
            }
            m
        }
        let (a, b) = (sets(old), sets(new));
        let keys: BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter_map(|k| match (a.get(k), b.get(k)) {
                (None, Some(_)) => Some((k.clone(), ChangeKind::Added)),
                (Some(_), None) => Some((k.clone(), ChangeKind::Withdrawn)),
                (Some(x), Some(y)) if x != y => Some((k.clone(), ChangeKind::Modified)),
                _ => None,
            })
            .collect()
    }

    /// [`diff_rows`] of the feeds `write_index` would write (first feed of a path, rows
    /// sorted), collecting every change.
    fn rows_diff_to_vec(old: &[Feed], new: &[Feed]) -> (DiffCounts, Vec<RowChange>) {
        fn held(feeds: &[Feed]) -> Vec<(String, Vec<FeedRow>)> {
            let mut seen = std::collections::HashSet::new();
            feeds
                .iter()
                .filter(|(path, _, _)| seen.insert(path.clone()))
                .map(|(_, source, rows)| {
                    let mut rows = rows.clone();
                    rows.sort_by(FeedRow::cmp_key);
                    (source.clone(), rows)
                })
                .collect()
        }
        fn view(h: &[(String, Vec<FeedRow>)]) -> Vec<FeedRowsOf<'_>> {
            h.iter()
                .map(|(source, rows)| FeedRowsOf { source, rows })
                .collect()
        }
        let (old, new) = (held(old), held(new));
        let mut out = Vec::new();
        let counts = diff_rows(&view(&old), &view(&new), &mut |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        (counts, out)
    }

    fn feed(path: &str, source: &str, rows: Vec<FeedRow>) -> Feed {
        (path.into(), source.into(), rows)
    }

    #[test]
    fn added_modified_withdrawn_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let old = write_index(
            dir.path(),
            "old",
            &[feed(
                "feeds/osv/a.jsonl",
                "osv",
                vec![row("A", None, 1), row("B", None, 2), row("C", None, 3)],
            )],
        );
        let new = write_index(
            dir.path(),
            "new",
            &[feed(
                "feeds/osv/a.jsonl",
                "osv",
                vec![row("A", None, 1), row("B", None, 9), row("D", Some("t"), 4)],
            )],
        );
        let (counts, changes) = diff_to_vec(Some(&old), Some(&new)).unwrap();
        let got: Vec<(&str, ChangeKind)> =
            changes.iter().map(|c| (c.id.as_str(), c.change)).collect();
        assert_eq!(
            got,
            vec![
                ("B", ChangeKind::Modified),
                ("C", ChangeKind::Withdrawn),
                ("D", ChangeKind::Added)
            ]
        );
        assert_eq!(changes[0].hash, Some(RowHash([9; 32])));
        assert_eq!(changes[0].previous, Some(RowHash([2; 32])));
        assert_eq!(changes[1].hash, None);
        assert_eq!(changes[2].tenant.as_deref(), Some("t"));
        assert_eq!(
            counts["osv"],
            SourceCounts {
                added: 1,
                modified: 1,
                withdrawn: 1
            }
        );
        let line = serde_json::to_string(&changes[2]).unwrap();
        assert!(
            line.starts_with(r#"{"source":"osv","id":"D","tenant":"t","change":"added","hash":""#),
            "{line}"
        );
        assert!(!line.contains("previous"), "{line}");
    }

    #[test]
    fn a_feed_renamed_or_split_within_a_source_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let old = write_index(
            dir.path(),
            "old",
            &[feed(
                "feeds/osv/all.jsonl",
                "osv",
                vec![row("A", None, 1), row("B", None, 2), row("C", None, 3)],
            )],
        );
        let new = write_index(
            dir.path(),
            "new",
            &[
                feed(
                    "feeds/osv/npm.jsonl",
                    "osv",
                    vec![row("A", None, 1), row("C", None, 3)],
                ),
                feed("feeds/osv/pypi.jsonl", "osv", vec![row("B", None, 5)]),
            ],
        );
        let (_, changes) = diff_to_vec(Some(&old), Some(&new)).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].id.as_str(), changes[0].change),
            ("B", ChangeKind::Modified)
        );
    }

    #[test]
    fn duplicates_compare_as_sets_and_list_every_hash() {
        let dir = tempfile::tempdir().unwrap();
        let old = write_index(
            dir.path(),
            "old",
            &[feed(
                "feeds/osv/a",
                "osv",
                vec![
                    row("A", None, 1),
                    row("A", None, 1),
                    row("B", None, 1),
                    row("B", None, 2),
                ],
            )],
        );
        let new = write_index(
            dir.path(),
            "new",
            &[feed(
                "feeds/osv/a",
                "osv",
                vec![row("A", None, 1), row("B", None, 1), row("B", None, 3)],
            )],
        );
        let (_, changes) = diff_to_vec(Some(&old), Some(&new)).unwrap();
        assert_eq!(changes.len(), 1, "A's duplicate is no change");
        assert_eq!(changes[0].id, "B");
        assert_eq!(changes[0].hashes, vec![RowHash([1; 32]), RowHash([3; 32])]);
        assert_eq!(
            changes[0].previous_hashes,
            vec![RowHash([1; 32]), RowHash([2; 32])]
        );
    }

    #[test]
    fn no_baseline_lists_every_row_as_added_and_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let new = write_index(
            dir.path(),
            "new",
            &[
                feed("feeds/osv-x/a", "osv-x", vec![row("Z", None, 1)]),
                feed("feeds/osv/a", "osv", vec![row("Y", None, 1)]),
                feed("feeds/ghsa/a", "ghsa", vec![]),
            ],
        );
        let (counts, changes) = diff_to_vec(None, Some(&new)).unwrap();
        let got: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.source.as_str(), c.id.as_str()))
            .collect();
        assert_eq!(got, vec![("osv", "Y"), ("osv-x", "Z")]);
        assert!(changes.iter().all(|c| c.change == ChangeKind::Added));
        assert_eq!(counts.len(), 3, "every source is counted, ghsa with zeros");
        assert_eq!(counts["ghsa"].total(), 0);
    }

    /// Sources are joined on threads of their own: more changes than a lane holds, in
    /// more sources than run at once, still come out in order; a consumer that fails stops
    /// every join (no thread is left blocked on a full lane).
    #[test]
    fn sources_joined_apart_come_out_in_order_and_a_failing_consumer_stops_them() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |n: usize, h: u8| -> Vec<FeedRow> {
            (0..n)
                .map(|i| row(&format!("ID-{i:06}"), None, h))
                .collect()
        };
        let sources = ["a", "b", "c", "d", "e", "f"];
        let index = |name: &str, h: u8| {
            let feeds: Vec<Feed> = sources
                .iter()
                .map(|s| feed(&format!("feeds/{s}/all"), s, rows(LANE_CHANGES + 100, h)))
                .collect();
            write_index(dir.path(), name, &feeds)
        };
        let (old, new) = (index("old", 1), index("new", 2));
        let (counts, changes) = diff_to_vec(Some(&old), Some(&new)).unwrap();
        assert_eq!(changes.len(), sources.len() * (LANE_CHANGES + 100));
        assert!(
            changes
                .windows(2)
                .all(|w| (&w[0].source, &w[0].id) < (&w[1].source, &w[1].id))
        );
        assert!(
            counts
                .values()
                .all(|c| c.total() == (LANE_CHANGES + 100) as u64)
        );
        let mut seen = 0;
        let e = diff_indexes(Some(&old), Some(&new), &mut |c| {
            seen += 1;
            if c.source == "b" {
                return Err(DiffError::Sink("full disk".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(&e, DiffError::Sink(m) if m == "full disk"), "{e}");
        assert_eq!(seen, LANE_CHANGES + 101);
    }

    #[test]
    fn a_malformed_index_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "{\"format\":\"ouk-feeds-index/1\"}\n{\"feed\":\"feeds/osv/a\",\"source\":\"osv\",\"rows\":2,\"skipped\":0}\n").unwrap();
        let e = diff_to_vec(None, Some(&bad)).unwrap_err();
        assert!(matches!(e, DiffError::Index { .. }), "{e}");
        assert!(e.to_string().contains("bad"), "{e}");
    }

    fn arb_rows() -> impl Strategy<Value = Vec<FeedRow>> {
        prop::collection::vec((0u8..6, prop::option::of(0u8..2), 0u8..3), 0..12).prop_map(|v| {
            v.into_iter()
                .map(|(id, t, h)| FeedRow {
                    id: format!("ID-{id}"),
                    tenant: t.map(|t| format!("t{t}")),
                    hash: RowHash([h; 32]),
                    modified: None,
                })
                .collect()
        })
    }

    fn arb_feeds() -> impl Strategy<Value = Vec<Feed>> {
        prop::collection::vec(
            (
                0u8..3,
                prop::sample::select(vec!["osv", "ghsa", "osv-x"]),
                arb_rows(),
            ),
            0..4,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(f, s, rows)| (format!("feeds/{s}/f{f}.jsonl"), s.to_string(), rows))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn the_merge_join_matches_the_naive_diff(old in arb_feeds(), new in arb_feeds()) {
            let dir = tempfile::tempdir().unwrap();
            let o = write_index(dir.path(), "old", &old);
            let n = write_index(dir.path(), "new", &new);
            let (counts, changes) = diff_to_vec(Some(&o), Some(&n)).unwrap();
            let (in_memory_counts, in_memory) = rows_diff_to_vec(&old, &new);
            prop_assert_eq!(&in_memory, &changes);
            prop_assert_eq!(&in_memory_counts, &counts);
            let got: Vec<(Key, ChangeKind)> = changes
                .iter()
                .map(|c| ((c.source.clone(), c.id.clone(), c.tenant.clone()), c.change))
                .collect();
            prop_assert_eq!(&got, &naive(&old, &new));
            let mut by_source: HashMap<String, u64> = HashMap::new();
            for c in &changes {
                *by_source.entry(c.source.clone()).or_default() += 1;
            }
            for (s, c) in &counts {
                prop_assert_eq!(c.total(), by_source.get(s).copied().unwrap_or(0));
            }
        }
    }
}

/// Peak memory of a diff of two large indexes and of recording a large history, each
/// measured in a process of its own: VmHWM is per process, and the other tests of this
/// binary run on other threads of it. Short form: up to 1,200,000 rows per index (about
/// 170 MiB) and 1,000,000 history rows; `OUK_LONG_TESTS=1`: 3,000,000 of each (a 424 MiB
/// index). `cargo test -p ouk-kit --lib memory:: -- --nocapture` prints the figures.
#[cfg(test)]
mod memory {
    use super::*;
    use crate::index::FeedIndexWriter;

    /// Set in the process a test re-runs itself in.
    const CHILD: &str = "OUK_MEMORY_TEST_CHILD";

    /// Whether the caller is the isolated run that measures. In the parent, re-runs the
    /// test `name` (of this module) alone in a fresh process of this test binary, checks it
    /// ran and passed, and returns false.
    fn measuring_alone(name: &str) -> bool {
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        // module_path!() starts with the crate name, which test filters leave out.
        let path = module_path!().split_once("::").map_or("", |(_, p)| p);
        let full = format!("{path}::{name}");
        // current_exe reads /proc/self/exe; argv[0] still names the binary without /proc.
        let exe = std::env::current_exe()
            .ok()
            .or_else(|| std::env::args_os().next().map(std::path::PathBuf::from))
            .expect("path of the test binary");
        let out = std::process::Command::new(exe)
            .args([full.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("re-run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{full} in its own process: {}\n{stdout}",
            out.status
        );
        false
    }

    fn long() -> bool {
        std::env::var_os("OUK_LONG_TESTS").is_some()
    }

    /// Peak resident set of this process, KiB. Without /proc the bound cannot be checked,
    /// and a memory test that checks nothing must not pass.
    fn vm_hwm_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_else(|e| panic!("cannot read /proc/self/status to measure memory: {e}"));
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM line in /proc/self/status:\n{status}"))
    }

    /// Reset the peak to the current resident set (Linux: clear_refs 5), so the setup
    /// (writing the inputs) does not count. When the kernel refuses, the peak still covers
    /// the setup: a stricter measure, never a looser one.
    fn reset_peak() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    fn write(path: &Path, rows: u64, day: u64) {
        let f = std::io::BufWriter::new(File::create(path).unwrap());
        let mut w = FeedIndexWriter::new(f).unwrap();
        for (feed, source) in [
            ("feeds/ghsa/a.jsonl", "ghsa"),
            ("feeds/osv/a.jsonl", "osv"),
            ("feeds/osv/b.jsonl", "osv"),
        ] {
            w.begin_feed(&FeedHeader {
                feed: feed.into(),
                source: source.into(),
                rows,
                skipped: 0,
            })
            .unwrap();
            for i in 0..rows {
                // 1 % of rows change per day.
                let v = if i % 100 == 0 { day } else { 0 };
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&i.to_be_bytes());
                h[8] = v as u8;
                w.push_row(&FeedRow {
                    id: format!("{feed}-{i:012}"),
                    hash: RowHash(h),
                    tenant: None,
                    modified: Some("2025-10-01T00:00:00Z".into()),
                })
                .unwrap();
            }
        }
        w.finish().unwrap();
    }

    /// The module's claim: a streaming merge-join in constant memory. The bound is the
    /// store's (64 MiB, docs/architecture.md); the largest index is checked to be far
    /// larger than it.
    #[test]
    fn diff_memory() {
        if !measuring_alone("diff_memory") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        let mut largest = 0;
        let sizes: &[u64] = if long() {
            &[100_000, 1_000_000]
        } else {
            &[100_000, 400_000]
        };
        for &rows in sizes {
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            write(&a, rows, 0);
            write(&b, rows, 1);
            // Reset the peak (Linux: clear_refs 5), then diff.
            reset_peak();
            let before = vm_hwm_kib();
            let started = std::time::Instant::now();
            let mut n = 0u64;
            let counts = diff_indexes(Some(&a), Some(&b), &mut |_| {
                n += 1;
                Ok(())
            })
            .unwrap();
            let took = started.elapsed();
            let peak = vm_hwm_kib();
            eprintln!(
                "rows per index {} ({} MiB): {n} changes {counts:?} in {took:?}; peak RSS {} KiB (at start {before} KiB)",
                rows * 3,
                std::fs::metadata(&b).unwrap().len() >> 20,
                peak
            );
            last = peak;
            largest = std::fs::metadata(&b).unwrap().len();
        }
        assert!(last < 64 * 1024, "peak {last} KiB");
        assert!(
            largest > 2 * (64 << 20),
            "the index ({largest} bytes) must be far larger than the bound"
        );
    }

    /// Recording a generation's rows holds no more than the store's bound (64 MiB with its
    /// 32 MiB redb cache, docs/architecture.md), however many rows: they stream into one
    /// redb transaction, whose dirty pages redb spills to the file past its cache.
    #[test]
    fn history_memory() {
        if !measuring_alone("history_memory") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Opened as the store opens its index (the history lives in that database).
        let db = redb::Builder::new()
            .set_cache_size(ouk_store::StoreOptions::default().index_cache_bytes)
            .create(dir.path().join("h.redb"))
            .unwrap();
        let rows = if long() { 3_000_000u64 } else { 1_000_000 };
        reset_peak();
        let started = std::time::Instant::now();
        crate::history::record(
            &db,
            &ouk_delta::GenerationId([1; 32]),
            "1",
            None,
            &mut |rec| {
                (0..rows).all(|i| {
                    let mut h = [0u8; 32];
                    h[..8].copy_from_slice(&i.to_be_bytes());
                    rec(&RowChange {
                        source: "osv".into(),
                        id: format!("GHSA-{i:012}"),
                        tenant: None,
                        change: ChangeKind::Added,
                        hash: Some(RowHash(h)),
                        previous: None,
                        hashes: Vec::new(),
                        previous_hashes: Vec::new(),
                    })
                    .is_ok()
                })
            },
        )
        .unwrap();
        let peak = vm_hwm_kib();
        let db_bytes = std::fs::metadata(dir.path().join("h.redb")).unwrap().len();
        eprintln!(
            "history: {rows} rows recorded in {:?}; peak RSS {peak} KiB; db {} MiB",
            started.elapsed(),
            db_bytes >> 20
        );
        assert!(peak < 64 * 1024, "peak {peak} KiB recording {rows} rows");
        assert!(
            db_bytes > 2 * (64 << 20),
            "the history ({db_bytes} bytes) must be far larger than the bound"
        );
    }
}
