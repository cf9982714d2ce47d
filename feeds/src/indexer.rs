//! Build the feed index of a kit: read each feed once, parse its rows in parallel, sort
//! them in bounded memory and write [`FEED_INDEX_PATH`](super::FEED_INDEX_PATH).
//!
//! Per feed: one reader thread decompresses and cuts rows into batches of about
//! [`BATCH_BYTES`] ([`super::scan`]), at most two batches wait for the parser; each batch
//! is parsed and hashed in parallel (rayon) and its rows go, in file order, to an external
//! sort ([`super::sort`]); the sorted rows are then written after the feed's header. A row
//! is parsed on the tape ([`super::tape`]) and, only if the tape declines it, by
//! serde_json ([`super::fast`]), which then gives the value or the error message; both
//! paths read fields and write canonical JSON through one `RowJson` interface, so the
//! rules below are stated once.
//!
//! A row is bad when it is not valid JSON, not an object, has no upstream id (the first
//! of the id fields that is a non-empty string), or has a `tenant` or `modified` that is
//! neither a string nor null, or fields too long for an index line. Without
//! `skip_bad_rows` the first bad row, in file order, fails the build with its file and
//! line; with it, bad rows are counted in the header's `skipped`, and listed (the first
//! [`MAX_LISTED_BAD_ROWS`] of the kit) in the report.
//!
//! Invariants: the output depends only on the feeds' paths and parsed content (not on
//! thread count, batch size or sort budget); memory is bounded by the sort budget plus
//! three batches, whatever the feed size.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;
use serde::Serialize;

use sha2::{Digest, Sha256};

use super::fast::{self, Node};
use super::index::{FeedHeader, FeedIndexWriter, FeedRow, IndexError, RowHash};
use super::scan::{self, Batch, RowSplitter, ScanError};
use super::sort::{DEFAULT_SORT_BUDGET, RowSorter};
use super::tape::{self, Field};

/// Bytes of rows read per batch.
pub const BATCH_BYTES: usize = 4 << 20;
/// Bad rows listed in a report (all are counted).
pub const MAX_LISTED_BAD_ROWS: usize = 1000;
/// Longest upstream id kept in the index.
pub const MAX_ID_BYTES: usize = 4096;
/// Longest tenant kept in the index.
pub const MAX_TENANT_BYTES: usize = 1024;
/// Longest `modified` kept in the index.
pub const MAX_MODIFIED_BYTES: usize = 256;

/// The id fields tried when none are given: OSV's `id`, GitHub's REST `ghsa_id`, and NVD
/// 2.0's `cve.id` (a dotted name is a path through nested objects).
pub const DEFAULT_ID_FIELDS: [&str; 3] = ["id", "ghsa_id", "cve.id"];

/// How to index feeds.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Fields that may hold the upstream id, in order (default [`DEFAULT_ID_FIELDS`]); a
    /// name with dots that is not itself a key is a path through nested objects.
    pub id_fields: Vec<String>,
    /// Leave bad rows out (listed) instead of failing.
    pub skip_bad_rows: bool,
    /// Memory for one feed's sorted rows before runs spill to disk.
    pub sort_budget: usize,
    /// Where spilled runs go (the system temporary directory if `None`).
    pub temp_dir: Option<PathBuf>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            id_fields: DEFAULT_ID_FIELDS.iter().map(|f| f.to_string()).collect(),
            skip_bad_rows: false,
            sort_budget: DEFAULT_SORT_BUDGET,
            temp_dir: None,
        }
    }
}

/// A row left out (or the one that failed the build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// The feed, relative to the kit root.
    pub file: String,
    /// 1-based line where the row starts.
    pub line: u64,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// One indexed feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedSummary {
    /// The feed, relative to the kit root.
    pub feed: String,
    /// Its vendor.
    pub source: String,
    /// Rows indexed.
    pub rows: u64,
    /// Rows left out.
    pub skipped: u64,
    /// Spilled sort runs (0 when the rows fit the budget).
    #[serde(skip)]
    pub sort_runs: usize,
}

/// What indexing did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// Per feed, in path order.
    pub feeds: Vec<FeedSummary>,
    /// The first [`MAX_LISTED_BAD_ROWS`] rows left out.
    pub skipped_rows: Vec<BadRow>,
    /// All rows left out.
    pub skipped_total: u64,
}

/// Indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A feed could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The feed (kit path) or temporary file involved.
        file: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A bad row, and `--skip-bad-rows` was not given.
    #[error("bad feed row {0}")]
    BadRow(BadRow),
    /// A feed whose structure is broken: no row after this point can be found.
    #[error("{file}:{line}: {message} (the feed is broken, not just one row)")]
    Broken {
        /// The feed.
        file: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A file under `feeds/` breaks the layout rule (`feeds/<source>/<file>`).
    #[error("{0}")]
    Layout(String),
    /// Writing or reading the index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// A feed file of the kit: `(kit path, file on disk)`.
pub type FeedFile = (String, PathBuf);

/// The vendor of kit path `rel` if it is a feed (`feeds/<source>/.../<name>.json[l]`).
pub fn feed_source(rel: &str) -> Option<&str> {
    let rest = rel.strip_prefix("feeds/")?;
    let (source, name) = rest.split_once('/')?;
    let file = name.rsplit('/').next().unwrap_or(name);
    (!source.is_empty() && scan::feed_compression(file).is_some()).then_some(source)
}

/// The feed files among the kit paths `listed` (`(kit path, file)`), sorted by kit path.
pub fn select_feeds<'a>(listed: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Vec<FeedFile> {
    let mut v: Vec<FeedFile> = listed
        .into_iter()
        .filter(|(rel, _)| feed_source(rel).is_some())
        .map(|(rel, p)| (rel.to_string(), p.to_path_buf()))
        .collect();
    v.sort();
    v
}

/// Index `feeds` (sorted by kit path, as [`select_feeds`] returns them) into `out`.
pub fn index_feeds<W: Write>(
    feeds: &[FeedFile],
    opts: &IndexOptions,
    out: W,
) -> Result<(IndexReport, W), FeedError> {
    index_feeds_with(feeds, opts, out, &|_, _| None)
}

/// [`index_feeds`], asking `shortcut` first for each feed's sorted rows (kit path, file):
/// a feed it answers is not scanned (see [`crate::incremental`]); `None` scans it. The rows
/// are borrowed: a caller that holds them (a delta apply) keeps them for the diff after.
pub fn index_feeds_with<'r, W: Write>(
    feeds: &[FeedFile],
    opts: &IndexOptions,
    out: W,
    shortcut: &dyn Fn(&str, &Path) -> Option<&'r [FeedRow]>,
) -> Result<(IndexReport, W), FeedError> {
    let mut writer = FeedIndexWriter::new(out)?;
    let mut report = IndexReport::default();
    let mut sorted: Vec<&FeedFile> = feeds.iter().collect();
    sorted.sort();
    sorted.dedup();
    for (rel, path) in sorted {
        let source = feed_source(rel)
            .ok_or_else(|| FeedError::Layout(format!("{rel}: not a feed under feeds/<source>/")))?;
        let io_err = |source| FeedError::Io {
            file: rel.clone(),
            source,
        };
        if let Some(rows) = shortcut(rel, path) {
            let header = FeedHeader {
                feed: rel.clone(),
                source: source.to_string(),
                rows: rows.len() as u64,
                skipped: 0,
            };
            writer.begin_feed(&header)?;
            for r in rows {
                writer.push_row(r)?;
            }
            report.feeds.push(FeedSummary {
                feed: header.feed,
                source: header.source,
                rows: header.rows,
                skipped: 0,
                sort_runs: 0,
            });
            continue;
        }
        let input = scan::open_feed(path).map_err(io_err)?;
        let mut bad = Vec::new();
        let sorter = scan_feed(rel, input, opts, &mut |b| {
            report.skipped_total += 1;
            if report.skipped_rows.len() < MAX_LISTED_BAD_ROWS {
                report.skipped_rows.push(b.clone());
            }
            bad.push(());
        })?;
        let header = FeedHeader {
            feed: rel.clone(),
            source: source.to_string(),
            rows: sorter.rows(),
            skipped: bad.len() as u64,
        };
        let sort_runs = sorter.runs();
        writer.begin_feed(&header)?;
        let rows = sorter.finish().map_err(|e| FeedError::Io {
            file: format!("{rel} (sort runs)"),
            source: e,
        })?;
        for r in rows {
            let r = r.map_err(|e| FeedError::Io {
                file: format!("{rel} (sort runs)"),
                source: e,
            })?;
            writer.push_row(&r)?;
        }
        report.feeds.push(FeedSummary {
            feed: header.feed,
            source: header.source,
            rows: header.rows,
            skipped: header.skipped,
            sort_runs,
        });
    }
    Ok((report, writer.finish()?))
}

/// Scan one feed into a sorter: a reader thread cuts batches, this thread parses them.
/// `on_bad` sees each bad row (only called when `skip_bad_rows`).
pub fn scan_feed(
    rel: &str,
    input: Box<dyn BufRead + Send>,
    opts: &IndexOptions,
    on_bad: &mut dyn FnMut(&BadRow),
) -> Result<RowSorter, FeedError> {
    let mut sorter = RowSorter::new(opts.sort_budget, opts.temp_dir.clone());
    let (tx, rx) = mpsc::sync_channel::<Result<Batch, ScanError>>(1);
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    std::thread::scope(|scope| -> Result<(), FeedError> {
        scope.spawn(move || {
            let mut splitter = RowSplitter::new(input);
            loop {
                let mut batch = back_rx.try_recv().unwrap_or_default();
                match splitter.next_batch(&mut batch, BATCH_BYTES) {
                    Ok(more) => {
                        if tx.send(Ok(batch)).is_err() || !more {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        // On an early return `rx` drops, the reader's next send fails and it stops.
        for batch in rx {
            let batch = batch.map_err(|e| match e {
                ScanError::Io(source) => FeedError::Io {
                    file: rel.to_string(),
                    source,
                },
                ScanError::Broken { line, message } => FeedError::Broken {
                    file: rel.to_string(),
                    line,
                    message,
                },
            })?;
            let parsed: Vec<Result<FeedRow, String>> = (0..batch.rows.len())
                .into_par_iter()
                .with_min_len(256)
                .map_init(RowScratch::default, |scratch, i| {
                    let (raw, _) = &batch.rows[i];
                    match &raw.bad {
                        Some(reason) => Err(reason.clone()),
                        None => parse_row(batch.bytes(i), &opts.id_fields, scratch),
                    }
                })
                .collect();
            for (i, p) in parsed.into_iter().enumerate() {
                match p {
                    Ok(row) => sorter.push(row).map_err(|e| FeedError::Io {
                        file: format!("{rel} (sort runs)"),
                        source: e,
                    })?,
                    Err(reason) => {
                        let b = BadRow {
                            file: rel.to_string(),
                            line: batch.rows[i].0.line,
                            reason,
                        };
                        if !opts.skip_bad_rows {
                            return Err(FeedError::BadRow(b));
                        }
                        on_bad(&b);
                    }
                }
            }
            let _ = back_tx.send(batch);
        }
        Ok(())
    })?;
    Ok(sorter)
}

/// Buffers one parsing thread reuses from row to row.
#[derive(Debug, Default)]
pub struct RowScratch {
    tape: tape::Scratch,
    canonical: Vec<u8>,
}

/// A parsed row as [`row_from`] reads it: on the tape, or the general path's tree when
/// the tape declined the row.
trait RowJson {
    /// A value inside the row.
    type At<'r>: Copy
    where
        Self: 'r;
    fn root(&self) -> Self::At<'_>;
    /// Member `key` of the object at `at` (`None` if `at` is no object).
    fn member<'r>(&'r self, at: Self::At<'r>, key: &str) -> Option<Self::At<'r>>;
    fn field<'r>(&'r self, at: Self::At<'r>) -> Field<'r>;
    fn write_canonical(&mut self, out: &mut Vec<u8>);
}

impl RowJson for tape::Parsed<'_> {
    type At<'r>
        = u32
    where
        Self: 'r;
    fn root(&self) -> u32 {
        tape::Parsed::root(self)
    }
    fn member(&self, at: u32, key: &str) -> Option<u32> {
        tape::Parsed::member(self, at, key)
    }
    fn field(&self, at: u32) -> Field<'_> {
        tape::Parsed::field(self, at)
    }
    fn write_canonical(&mut self, out: &mut Vec<u8>) {
        tape::Parsed::write_canonical(self, out)
    }
}

impl<'a> RowJson for Node<'a> {
    type At<'r>
        = &'r Node<'a>
    where
        Self: 'r;
    fn root(&self) -> &Node<'a> {
        self
    }
    fn member<'r>(&'r self, at: &'r Node<'a>, key: &str) -> Option<&'r Node<'a>> {
        at.get(key)
    }
    fn field<'r>(&'r self, at: &'r Node<'a>) -> Field<'r> {
        match at {
            Node::Null => Field::Null,
            Node::Str(s) => Field::Str(Cow::Borrowed(s)),
            Node::Obj(_) => Field::Obj,
            _ => Field::Other,
        }
    }
    fn write_canonical(&mut self, out: &mut Vec<u8>) {
        fast::write(self, out)
    }
}

/// Member `field` of the row's top level, or, if `field` is no key and has dots, the
/// value at that path.
fn lookup<'r, J: RowJson>(row: &'r J, field: &str) -> Option<J::At<'r>> {
    let root = row.root();
    if let Some(v) = row.member(root, field) {
        return Some(v);
    }
    let mut parts = field.split('.');
    let mut v = row.member(root, parts.next()?)?;
    let mut nested = false;
    for p in parts {
        v = row.member(v, p)?;
        nested = true;
    }
    nested.then_some(v)
}

/// Parse one row: its index record, or why it is bad.
pub fn parse_row(
    bytes: &[u8],
    id_fields: &[String],
    scratch: &mut RowScratch,
) -> Result<FeedRow, String> {
    let canonical = &mut scratch.canonical;
    match scratch.tape.parse(bytes) {
        Ok(mut row) => row_from(&mut row, id_fields, canonical),
        Err(tape::Declined) => {
            let mut node = fast::parse(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
            row_from(&mut node, id_fields, canonical)
        }
    }
}

fn row_from<J: RowJson>(
    row: &mut J,
    id_fields: &[String],
    canonical: &mut Vec<u8>,
) -> Result<FeedRow, String> {
    if row.field(row.root()) != Field::Obj {
        return Err("not a JSON object".into());
    }
    let id = id_fields
        .iter()
        .find_map(|f| match lookup(row, f).map(|v| row.field(v)) {
            Some(Field::Str(s)) if !s.is_empty() => Some(s.into_owned()),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "no upstream id (none of {} is a string)",
                id_fields.join(", ")
            )
        })?;
    if id.len() > MAX_ID_BYTES {
        return Err(format!("upstream id longer than {MAX_ID_BYTES} bytes"));
    }
    let text_field = |name: &str, max: usize| -> Result<Option<String>, String> {
        match row.member(row.root(), name).map(|v| row.field(v)) {
            None | Some(Field::Null) => Ok(None),
            Some(Field::Str(s)) if s.len() <= max => Ok(Some(s.into_owned())),
            Some(Field::Str(_)) => Err(format!("{name} longer than {max} bytes")),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    let tenant = text_field("tenant", MAX_TENANT_BYTES)?;
    let modified = text_field("modified", MAX_MODIFIED_BYTES)?;
    canonical.clear();
    row.write_canonical(canonical);
    Ok(FeedRow {
        id,
        hash: RowHash(Sha256::digest(&canonical[..]).into()),
        tenant,
        modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{FeedIndexReader, IndexItem};

    fn index(
        files: &[(&str, &[u8])],
        opts: &IndexOptions,
    ) -> Result<(IndexReport, Vec<u8>), FeedError> {
        let dir = tempfile::tempdir().unwrap();
        let mut feeds = Vec::new();
        for (rel, body) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
            feeds.push((rel.to_string(), p));
        }
        let feeds = select_feeds(feeds.iter().map(|(r, p)| (r.as_str(), p.as_path())));
        index_feeds(&feeds, opts, Vec::new())
    }

    #[test]
    fn rows_are_indexed_sorted_whatever_the_format() {
        let lines = b"{\"id\":\"B\",\"modified\":\"2025-10-02T00:00:00Z\"}\n{\"id\":\"A\", \"tenant\":\"acme\"}\n";
        let array = b"[\n{\"tenant\":\"acme\",\"id\":\"A\"},\n {\"modified\":\"2025-10-02T00:00:00Z\",   \"id\":\"B\"}]";
        let (report, a) = index(&[("feeds/osv/a.jsonl", lines)], &IndexOptions::default()).unwrap();
        let (_, b) = index(&[("feeds/osv/a.jsonl", array)], &IndexOptions::default()).unwrap();
        assert_eq!(a, b, "same rows, other format and order: same index");
        assert_eq!(report.feeds[0].rows, 2);
        let text = String::from_utf8(a).unwrap();
        let l: Vec<&str> = text.lines().collect();
        assert_eq!(
            l[1],
            r#"{"feed":"feeds/osv/a.jsonl","source":"osv","rows":2,"skipped":0}"#
        );
        assert!(
            l[2].starts_with(r#"{"id":"A","hash":""#) && l[2].ends_with(r#","tenant":"acme"}"#),
            "{}",
            l[2]
        );
        assert!(
            l[3].ends_with(r#","modified":"2025-10-02T00:00:00Z"}"#),
            "{}",
            l[3]
        );
        let (_, none) = index(&[], &IndexOptions::default()).unwrap();
        assert_eq!(none, b"{\"format\":\"ouk-feeds-index/1\"}\n");
    }

    #[test]
    fn id_fields_are_tried_in_order() {
        let body = b"{\"cve\":\"CVE-1\",\"id\":5}\n{\"ghsa\":\"G-1\",\"cve\":\"CVE-2\"}\n";
        let opts = IndexOptions {
            id_fields: vec!["id".into(), "ghsa".into(), "cve".into()],
            ..Default::default()
        };
        let (_, bytes) = index(&[("feeds/nvd/x.jsonl", body)], &opts).unwrap();
        let mut r = FeedIndexReader::new(&bytes[..]).unwrap();
        let mut ids = Vec::new();
        while let Some(item) = r.next_item().unwrap() {
            if let IndexItem::Row(row) = item {
                ids.push(row.id);
            }
        }
        assert_eq!(ids, ["CVE-1", "G-1"]);
        let body = b"{\"ghsa_id\":\"GHSA-1\"}\n{\"cve\":{\"id\":\"CVE-9\"}}\n{\"id\":\"OSV-1\",\"ghsa_id\":\"x\"}\n";
        let (_, bytes) = index(&[("feeds/x/x.jsonl", body)], &IndexOptions::default()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        for id in ["CVE-9", "GHSA-1", "OSV-1"] {
            assert!(text.contains(&format!("{{\"id\":\"{id}\"")), "{text}");
        }
    }

    #[test]
    fn bad_rows_fail_with_file_and_line_or_are_skipped() {
        let body = b"{\"id\":\"A\"}\n{\"id\":\n{\"name\":\"x\"}\n[1]\n{\"id\":\"B\",\"tenant\":3}\n{\"id\":\"C\"}\n";
        match index(&[("feeds/osv/a.jsonl", body)], &IndexOptions::default()) {
            Err(FeedError::BadRow(b)) => {
                assert_eq!((b.file.as_str(), b.line), ("feeds/osv/a.jsonl", 2));
                assert!(b.reason.starts_with("invalid JSON"), "{}", b.reason);
            }
            other => panic!("{other:?}"),
        }
        let opts = IndexOptions {
            skip_bad_rows: true,
            ..Default::default()
        };
        let (report, bytes) = index(&[("feeds/osv/a.jsonl", body)], &opts).unwrap();
        assert_eq!(report.skipped_total, 4);
        let lines: Vec<String> = report
            .skipped_rows
            .iter()
            .map(|b| format!("{}:{}", b.file, b.line))
            .collect();
        assert_eq!(
            lines,
            [
                "feeds/osv/a.jsonl:2",
                "feeds/osv/a.jsonl:3",
                "feeds/osv/a.jsonl:4",
                "feeds/osv/a.jsonl:5"
            ]
        );
        assert!(report.skipped_rows[1].reason.starts_with("no upstream id"));
        assert_eq!(report.skipped_rows[2].reason, "not a JSON object");
        assert_eq!(report.skipped_rows[3].reason, "tenant is not a string");
        assert_eq!((report.feeds[0].rows, report.feeds[0].skipped), (2, 4));
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .contains("\"rows\":2,\"skipped\":4")
        );
        // A broken array fails even with --skip-bad-rows.
        match index(&[("feeds/osv/b.json", b"[{\"id\":\"A\"},\n{")], &opts) {
            Err(FeedError::Broken { file, line, .. }) => {
                assert_eq!((file.as_str(), line), ("feeds/osv/b.json", 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spilling_does_not_change_the_index() {
        let mut body = Vec::new();
        for i in 0..20_000u64 {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 5000;
            body.extend_from_slice(format!("{{\"id\":\"OSV-{x}\",\"n\":{i}}}\n").as_bytes());
        }
        let (a_report, a) =
            index(&[("feeds/osv/a.jsonl", &body)], &IndexOptions::default()).unwrap();
        let small = IndexOptions {
            sort_budget: 64 << 10,
            ..Default::default()
        };
        let (b_report, b) = index(&[("feeds/osv/a.jsonl", &body)], &small).unwrap();
        assert_eq!(a_report.feeds[0].sort_runs, 0);
        assert!(
            b_report.feeds[0].sort_runs > 5,
            "{}",
            b_report.feeds[0].sort_runs
        );
        assert_eq!(a, b);
    }

    #[test]
    fn only_feeds_under_a_source_are_selected() {
        let p = Path::new("/x");
        let got = select_feeds([
            ("feeds/osv/b.jsonl", p),
            ("feeds/osv/a.json.gz", p),
            ("feeds/top.jsonl", p),
            ("feeds/nvd/README.md", p),
            ("feeds/nvd/sub/c.ndjson.zst", p),
            ("other/osv/a.jsonl", p),
        ]);
        let names: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "feeds/nvd/sub/c.ndjson.zst",
                "feeds/osv/a.json.gz",
                "feeds/osv/b.jsonl"
            ]
        );
    }
}
