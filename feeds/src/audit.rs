//! The feed audit (`ouk feeds audit`, and kit build before it writes a bundle): conflicts
//! among the rows of one feed index, i.e. of one generation.
//!
//! Rows are grouped by `(vendor, upstream id, tenant)` across every feed of the vendor
//! (the default tenant, `None` in the index, is its own tenant). In a group:
//!
//! - a **duplicate** is a content hash carried by two or more rows: the rows collide on
//!   `(vendor, upstream_id, content_hash, tenant)`, the key of the advisory idempotency
//!   index (seed 2.1);
//! - a **divergent** id is two or more different hashes: the same upstream id with
//!   different content in one generation, so which one is "the" advisory is ambiguous.
//!
//! A group can be both (two conflicts). Invariants: memory is constant in the number of
//! rows (per vendor, a merge-join of its feeds' already sorted rows, one reader per feed;
//! per group only counters and the first [`MAX_EXAMPLES`] hashes and feeds); conflicts come
//! out in a fixed order (vendor, then id, tenant), so the first `limit` are the same on
//! every run; every conflict is counted even past the limit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::BufRead;

use serde::Serialize;

use super::index::{FeedIndexReader, FeedRow, IndexError, IndexItem, RowHash};

/// Hashes and feeds kept per conflict (all are counted).
pub const MAX_EXAMPLES: usize = 8;
/// The default `--limit`.
pub const DEFAULT_LIMIT: usize = 200;

/// Which rule a conflict breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictKind {
    /// Rows with the same `(vendor, upstream_id, content_hash, tenant)`.
    Duplicate,
    /// The same `(vendor, upstream_id, tenant)` with different content.
    Divergent,
}

/// One conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Which rule.
    pub kind: ConflictKind,
    /// The vendor.
    pub source: String,
    /// The upstream id.
    pub id: String,
    /// The tenant (`None`: the default tenant).
    pub tenant: Option<String>,
    /// Rows involved (for a duplicate: rows with `hashes[0]`).
    pub rows: u64,
    /// For a duplicate its hash; for a divergent id the first distinct hashes.
    pub hashes: Vec<RowHash>,
    /// Distinct hashes in the group (divergent ids).
    pub distinct_hashes: u64,
    /// The first distinct feeds the rows come from.
    pub feeds: Vec<String>,
}

impl Conflict {
    /// The tenant as printed: the name, or `default`.
    pub fn tenant_label(&self) -> &str {
        self.tenant.as_deref().unwrap_or("default")
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ConflictKind::Duplicate => write!(
                f,
                "duplicate {} {} tenant {}: {} rows with content {} ({})",
                self.source,
                self.id,
                self.tenant_label(),
                self.rows,
                self.hashes.first().map(|h| h.to_hex()).unwrap_or_default(),
                self.feeds.join(", ")
            ),
            ConflictKind::Divergent => write!(
                f,
                "divergent {} {} tenant {}: {} rows with {} different contents ({})",
                self.source,
                self.id,
                self.tenant_label(),
                self.rows,
                self.distinct_hashes,
                self.feeds.join(", ")
            ),
        }
    }
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Feeds in the index.
    pub feeds: u64,
    /// Rows in the index.
    pub rows: u64,
    /// Conflicts of both kinds.
    pub conflicts: u64,
    /// Duplicate conflicts.
    pub duplicates: u64,
    /// Divergent ids.
    pub divergent: u64,
    /// The first `limit` conflicts, in order.
    pub first: Vec<Conflict>,
}

impl AuditReport {
    /// Whether any conflict exists.
    pub fn has_conflicts(&self) -> bool {
        self.conflicts > 0
    }

    fn add(&mut self, c: Conflict, limit: usize) {
        self.conflicts += 1;
        match c.kind {
            ConflictKind::Duplicate => self.duplicates += 1,
            ConflictKind::Divergent => self.divergent += 1,
        }
        if self.first.len() < limit {
            self.first.push(c);
        }
    }
}

/// Audit the index that `open` reads (called once per vendor with more than one feed, and
/// once to list feeds: each call must give the same index from its start).
pub fn audit<R: BufRead>(
    mut open: impl FnMut() -> std::io::Result<R>,
    limit: usize,
) -> Result<AuditReport, IndexError> {
    let mut report = AuditReport::default();
    // Pass 1: the feeds and their vendors (and the whole index checked once).
    let mut by_source: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut reader = FeedIndexReader::new(open()?)?;
    let mut ordinal = 0usize;
    while let Some(item) = reader.next_item()? {
        match item {
            IndexItem::Feed(h) => {
                by_source
                    .entry(h.source)
                    .or_default()
                    .push((ordinal, h.feed));
                ordinal += 1;
                report.feeds += 1;
            }
            IndexItem::Row(_) => report.rows += 1,
        }
    }
    // Pass 2, per vendor: merge its feeds' rows.
    for (source, feeds) in &by_source {
        let mut streams = Vec::with_capacity(feeds.len());
        for (ord, _) in feeds {
            streams.push(FeedStream::open(open()?, *ord)?);
        }
        let mut heap = BinaryHeap::new();
        for (i, s) in streams.iter_mut().enumerate() {
            if let Some(r) = s.next_row()? {
                heap.push(Reverse(Keyed(r, i)));
            }
        }
        let mut group: Option<Group> = None;
        while let Some(Reverse(Keyed(row, i))) = heap.pop() {
            if let Some(next) = streams[i].next_row()? {
                heap.push(Reverse(Keyed(next, i)));
            }
            let feed = &feeds[i].1;
            match &mut group {
                Some(g) if g.id == row.id && g.tenant == row.tenant => {
                    g.add(&row, feed, source, &mut report, limit)
                }
                _ => {
                    if let Some(g) = group.take() {
                        g.finish(source, &mut report, limit);
                    }
                    group = Some(Group::new(&row, feed));
                }
            }
        }
        if let Some(g) = group.take() {
            g.finish(source, &mut report, limit);
        }
    }
    Ok(report)
}

/// The rows of one feed of an index.
struct FeedStream<R: BufRead> {
    reader: FeedIndexReader<R>,
    done: bool,
}

impl<R: BufRead> FeedStream<R> {
    /// Open at feed number `ordinal` (0-based).
    fn open(input: R, ordinal: usize) -> Result<Self, IndexError> {
        let mut reader = FeedIndexReader::new(input)?;
        let mut seen = 0usize;
        loop {
            match reader.next_item()? {
                Some(IndexItem::Feed(_)) => {
                    if seen == ordinal {
                        return Ok(FeedStream {
                            reader,
                            done: false,
                        });
                    }
                    seen += 1;
                }
                Some(IndexItem::Row(_)) => {}
                None => {
                    return Err(IndexError::Misuse(format!(
                        "feed {ordinal} vanished from the index between two reads"
                    )));
                }
            }
        }
    }

    fn next_row(&mut self) -> Result<Option<FeedRow>, IndexError> {
        if self.done {
            return Ok(None);
        }
        match self.reader.next_item()? {
            Some(IndexItem::Row(r)) => Ok(Some(r)),
            _ => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

struct Keyed(FeedRow, usize);

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp_key(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Rows of one `(id, tenant)`, arriving in hash order.
struct Group {
    id: String,
    tenant: Option<String>,
    rows: u64,
    distinct: u64,
    hashes: Vec<RowHash>,
    feeds: Vec<String>,
    /// The current hash, its row count and feeds.
    cur: RowHash,
    cur_rows: u64,
    cur_feeds: Vec<String>,
}

fn add_feed(feeds: &mut Vec<String>, feed: &str) {
    if feeds.len() < MAX_EXAMPLES && !feeds.iter().any(|f| f == feed) {
        feeds.push(feed.to_string());
    }
}

impl Group {
    fn new(row: &FeedRow, feed: &str) -> Self {
        Group {
            id: row.id.clone(),
            tenant: row.tenant.clone(),
            rows: 1,
            distinct: 1,
            hashes: vec![row.hash],
            feeds: vec![feed.to_string()],
            cur: row.hash,
            cur_rows: 1,
            cur_feeds: vec![feed.to_string()],
        }
    }

    fn add(
        &mut self,
        row: &FeedRow,
        feed: &str,
        source: &str,
        report: &mut AuditReport,
        limit: usize,
    ) {
        self.rows += 1;
        add_feed(&mut self.feeds, feed);
        if row.hash == self.cur {
            self.cur_rows += 1;
            add_feed(&mut self.cur_feeds, feed);
            return;
        }
        self.close_run(source, report, limit);
        self.distinct += 1;
        if self.hashes.len() < MAX_EXAMPLES {
            self.hashes.push(row.hash);
        }
        self.cur = row.hash;
        self.cur_rows = 1;
        self.cur_feeds = vec![feed.to_string()];
    }

    fn finish(mut self, source: &str, report: &mut AuditReport, limit: usize) {
        // Duplicates: report each hash carried twice or more. Hashes arrive in order, so a
        // hash's run ends when the next starts; the last run is closed here.
        self.close_run(source, report, limit);
        if self.distinct > 1 {
            report.add(
                Conflict {
                    kind: ConflictKind::Divergent,
                    source: source.to_string(),
                    id: self.id,
                    tenant: self.tenant,
                    rows: self.rows,
                    hashes: self.hashes,
                    distinct_hashes: self.distinct,
                    feeds: self.feeds,
                },
                limit,
            );
        }
    }

    fn close_run(&mut self, source: &str, report: &mut AuditReport, limit: usize) {
        if self.cur_rows > 1 {
            report.add(
                Conflict {
                    kind: ConflictKind::Duplicate,
                    source: source.to_string(),
                    id: self.id.clone(),
                    tenant: self.tenant.clone(),
                    rows: self.cur_rows,
                    hashes: vec![self.cur],
                    distinct_hashes: 1,
                    feeds: std::mem::take(&mut self.cur_feeds),
                },
                limit,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{index_bytes as index, row};

    fn run(bytes: &[u8], limit: usize) -> AuditReport {
        audit(|| Ok(bytes), limit).unwrap()
    }

    #[test]
    fn clean_index_has_no_conflicts() {
        let bytes = index(&[
            (
                "feeds/ghsa/a.jsonl",
                "ghsa",
                vec![row("A", None, 1), row("B", None, 2)],
            ),
            // Same id and content under another vendor or tenant: no conflict.
            (
                "feeds/osv/a.jsonl",
                "osv",
                vec![
                    row("A", None, 1),
                    row("A", Some("acme"), 1),
                    row("A", Some("beta"), 2),
                ],
            ),
        ]);
        let r = run(&bytes, 200);
        assert_eq!((r.feeds, r.rows, r.conflicts), (2, 5, 0));
        assert!(!r.has_conflicts());
    }

    #[test]
    fn duplicates_within_and_across_feeds_of_a_vendor() {
        let bytes = index(&[
            (
                "feeds/osv/a.jsonl",
                "osv",
                vec![row("A", None, 1), row("A", None, 1), row("B", Some("t"), 3)],
            ),
            (
                "feeds/osv/b.jsonl",
                "osv",
                vec![row("B", Some("t"), 3), row("C", None, 4)],
            ),
        ]);
        let r = run(&bytes, 200);
        assert_eq!((r.conflicts, r.duplicates, r.divergent), (2, 2, 0));
        assert_eq!(r.first[0].kind, ConflictKind::Duplicate);
        assert_eq!((r.first[0].id.as_str(), r.first[0].rows), ("A", 2));
        assert_eq!(r.first[0].feeds, ["feeds/osv/a.jsonl"]);
        assert_eq!(r.first[1].tenant_label(), "t");
        assert_eq!(r.first[1].feeds, ["feeds/osv/a.jsonl", "feeds/osv/b.jsonl"]);
        assert!(
            r.first[1]
                .to_string()
                .starts_with("duplicate osv B tenant t: 2 rows"),
            "{}",
            r.first[1]
        );
    }

    #[test]
    fn divergent_ids_and_both_kinds_and_the_limit() {
        let bytes = index(&[
            (
                "feeds/nvd/a.jsonl",
                "nvd",
                vec![
                    row("X", None, 1),
                    row("X", None, 2),
                    row("X", None, 2),
                    row("Y", None, 1),
                ],
            ),
            ("feeds/nvd/b.jsonl", "nvd", vec![row("Y", None, 9)]),
        ]);
        let r = run(&bytes, 200);
        assert_eq!((r.conflicts, r.duplicates, r.divergent), (3, 1, 2));
        let kinds: Vec<(ConflictKind, &str)> =
            r.first.iter().map(|c| (c.kind, c.id.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ConflictKind::Duplicate, "X"),
                (ConflictKind::Divergent, "X"),
                (ConflictKind::Divergent, "Y")
            ]
        );
        assert_eq!(r.first[1].distinct_hashes, 2);
        assert_eq!(r.first[1].rows, 3);
        assert_eq!(r.first[1].tenant_label(), "default");
        let limited = run(&bytes, 1);
        assert_eq!((limited.conflicts, limited.first.len()), (3, 1));
    }

    #[test]
    fn a_broken_index_is_an_error() {
        assert!(audit(|| Ok(&b"{\"format\":\"nope\"}\n"[..]), 10).is_err());
    }
}
