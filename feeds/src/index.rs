//! The feed index file (`metadata/feeds-index.jsonl`, format `ouk-feeds-index/1`).
//!
//! JSON lines, so a changed row changes one line and a delta of the index stays small:
//!
//! ```text
//! {"format":"ouk-feeds-index/1"}
//! {"feed":"feeds/osv/all.jsonl","source":"osv","rows":2,"skipped":0}
//! {"id":"GHSA-aaaa","hash":"<64 hex>","modified":"2025-10-01T00:00:00Z"}
//! {"id":"GHSA-bbbb","hash":"<64 hex>","tenant":"acme"}
//! {"feed":"feeds/nvd/nvd.json.zst","source":"nvd","rows":0,"skipped":0}
//! ```
//!
//! - The first line names the format; anything else is refused.
//! - Each feed is a header line followed by exactly `rows` row lines. Feeds are in strictly
//!   increasing path order; rows within a feed in non-decreasing [`FeedRow::sort_key`]
//!   order (upstream id, then tenant — absent sorts first — then hash). Equal keys are
//!   allowed: they are duplicates the audit reports, and the index keeps them.
//! - `hash` is the SHA-256 of the row's canonical JSON (keys sorted, no whitespace), so
//!   reformatting a feed changes nothing here. `skipped` counts rows a `--skip-bad-rows`
//!   build left out.
//!
//! Both [`FeedIndexWriter`] and [`FeedIndexReader`] enforce these rules, so two readers can
//! be merge-joined feed by feed and row by row in constant memory.

use std::cmp::Ordering;
use std::fmt;
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// The directory feeds live under, one subdirectory per source.
pub const FEEDS_DIR: &str = "feeds";
/// Where kit build writes the index, relative to the kit root.
pub const FEED_INDEX_PATH: &str = "metadata/feeds-index.jsonl";
/// The format name on the index's first line.
pub const FEED_INDEX_FORMAT: &str = "ouk-feeds-index/1";

/// Longest index line accepted (a row line is an id, a tenant, a time and a hash).
const MAX_LINE: usize = 64 * 1024;

/// SHA-256 of a row's canonical JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowHash(pub [u8; 32]);

impl RowHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for RowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowHash({})", self.to_hex())
    }
}

impl fmt::Display for RowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for RowHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ouk_store::serialize_digest(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for RowHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ouk_store::deserialize_digest(d).map(RowHash)
    }
}

/// One feed's header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedHeader {
    /// The feed file, relative to the kit root (`feeds/<source>/<name>`).
    pub feed: String,
    /// The vendor: the directory under `feeds/`.
    pub source: String,
    /// Row lines that follow.
    pub rows: u64,
    /// Rows left out by `--skip-bad-rows`.
    pub skipped: u64,
}

/// One row line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRow {
    /// The upstream id (`id`, or the first configured id field present).
    pub id: String,
    /// SHA-256 of the row's canonical JSON.
    pub hash: RowHash,
    /// The row's tenant; `None` is the default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The row's `modified` field, as written upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

impl FeedRow {
    /// The order rows are kept in: upstream id, tenant (default first), hash.
    pub fn sort_key(&self) -> (&str, Option<&str>, &RowHash) {
        (&self.id, self.tenant.as_deref(), &self.hash)
    }

    /// Compare by [`FeedRow::sort_key`].
    pub fn cmp_key(&self, other: &FeedRow) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// What the reader yields, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexItem {
    /// A feed starts; its rows follow.
    Feed(FeedHeader),
    /// A row of the last feed.
    Row(FeedRow),
}

/// A malformed index, or a writer used against the rules.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing failed.
    #[error("feed index: {0}")]
    Io(#[from] std::io::Error),
    /// A line breaks the format (1-based line number).
    #[error("feed index line {line}: {message}")]
    Malformed { line: u64, message: String },
    /// The writer was given rows out of order, too many or too few.
    #[error("feed index writer: {0}")]
    Misuse(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatLine {
    format: String,
}

/// Writes an index; refuses anything the reader would refuse.
pub struct FeedIndexWriter<W: Write> {
    out: W,
    last_feed: Option<String>,
    rows_left: u64,
    /// The last row written in this feed (its buffers are reused for the next).
    last_row: Option<FeedRow>,
    line: Vec<u8>,
}

impl<W: Write> FeedIndexWriter<W> {
    /// Start an index (writes the format line).
    pub fn new(mut out: W) -> Result<Self, IndexError> {
        write_line(
            &mut out,
            &FormatLine {
                format: FEED_INDEX_FORMAT.into(),
            },
        )?;
        Ok(FeedIndexWriter {
            out,
            last_feed: None,
            rows_left: 0,
            last_row: None,
            line: Vec::with_capacity(256),
        })
    }

    /// Start a feed: its path must sort after the previous feed's, and the previous
    /// feed's rows must all have been written.
    pub fn begin_feed(&mut self, header: &FeedHeader) -> Result<(), IndexError> {
        if self.rows_left != 0 {
            return Err(IndexError::Misuse(format!(
                "{} rows of {} missing",
                self.rows_left,
                self.last_feed.as_deref().unwrap_or("")
            )));
        }
        if let Some(last) = &self.last_feed
            && header.feed.as_str() <= last.as_str()
        {
            return Err(IndexError::Misuse(format!(
                "feed {} after {last}: feeds must be in increasing path order",
                header.feed
            )));
        }
        write_line(&mut self.out, header)?;
        self.last_feed = Some(header.feed.clone());
        self.rows_left = header.rows;
        self.last_row = None;
        Ok(())
    }

    /// Write the current feed's next row.
    pub fn push_row(&mut self, row: &FeedRow) -> Result<(), IndexError> {
        if self.rows_left == 0 {
            return Err(IndexError::Misuse(format!(
                "row {} beyond the feed's row count",
                row.id
            )));
        }
        if let Some(last) = &self.last_row
            && row.cmp_key(last) == Ordering::Less
        {
            return Err(IndexError::Misuse(format!(
                "row {} after {}: rows must be sorted",
                row.id, last.id
            )));
        }
        self.line.clear();
        encode_row_line(row, &mut self.line);
        self.out.write_all(&self.line)?;
        self.rows_left -= 1;
        match &mut self.last_row {
            Some(last) => last.clone_from(row),
            None => self.last_row = Some(row.clone()),
        }
        Ok(())
    }

    /// Finish: every announced row must have been written. Returns the output.
    pub fn finish(mut self) -> Result<W, IndexError> {
        if self.rows_left != 0 {
            return Err(IndexError::Misuse(format!(
                "{} rows missing at the end",
                self.rows_left
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Append `row`'s index line (with its newline) to `out`: the bytes serde_json writes for
/// it, without going through serde for the common case of strings that need no escape.
fn encode_row_line(row: &FeedRow, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    json_str(&row.id, out);
    out.extend_from_slice(b",\"hash\":\"");
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(row.hash.0, &mut hex);
    out.extend_from_slice(&hex);
    out.push(b'"');
    if let Some(t) = &row.tenant {
        out.extend_from_slice(b",\"tenant\":");
        json_str(t, out);
    }
    if let Some(m) = &row.modified {
        out.extend_from_slice(b",\"modified\":");
        json_str(m, out);
    }
    out.extend_from_slice(b"}\n");
}

/// A JSON string as serde_json writes it.
fn json_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_line<W: Write, T: Serialize>(out: &mut W, value: &T) -> Result<(), IndexError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Reads an index, checking every rule of the format as it goes.
pub struct FeedIndexReader<R: BufRead> {
    input: R,
    line: u64,
    buf: Vec<u8>,
    last_feed: Option<String>,
    rows_left: u64,
    last_row: Option<FeedRow>,
}

impl<R: BufRead> FeedIndexReader<R> {
    /// Open an index: reads and checks the format line.
    pub fn new(input: R) -> Result<Self, IndexError> {
        let mut reader = FeedIndexReader {
            input,
            line: 0,
            buf: Vec::new(),
            last_feed: None,
            rows_left: 0,
            last_row: None,
        };
        let first: FormatLine = match reader.read_line()? {
            Some(()) => reader.parse()?,
            None => return Err(reader.malformed("empty index")),
        };
        if first.format != FEED_INDEX_FORMAT {
            return Err(reader.malformed(format!(
                "format {:?}, this ouk reads {FEED_INDEX_FORMAT}",
                first.format
            )));
        }
        Ok(reader)
    }

    /// The next feed header or row; `None` at a well-formed end.
    pub fn next_item(&mut self) -> Result<Option<IndexItem>, IndexError> {
        if self.read_line()?.is_none() {
            if self.rows_left != 0 {
                return Err(self.malformed(format!(
                    "index ends {} rows short of {}",
                    self.rows_left,
                    self.last_feed.as_deref().unwrap_or("")
                )));
            }
            return Ok(None);
        }
        if self.rows_left > 0 {
            let row: FeedRow = self.parse()?;
            if let Some(last) = &self.last_row
                && row.cmp_key(last) == Ordering::Less
            {
                return Err(
                    self.malformed(format!("row {} out of order after {}", row.id, last.id))
                );
            }
            self.rows_left -= 1;
            self.last_row = Some(row.clone());
            return Ok(Some(IndexItem::Row(row)));
        }
        let header: FeedHeader = self.parse()?;
        if let Some(last) = &self.last_feed
            && header.feed.as_str() <= last.as_str()
        {
            return Err(self.malformed(format!("feed {} out of order after {last}", header.feed)));
        }
        self.last_feed = Some(header.feed.clone());
        self.rows_left = header.rows;
        self.last_row = None;
        Ok(Some(IndexItem::Feed(header)))
    }

    fn read_line(&mut self) -> Result<Option<()>, IndexError> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            let message = if self.buf.len() > MAX_LINE {
                format!("line longer than {MAX_LINE} bytes")
            } else {
                "last line has no newline (truncated index?)".into()
            };
            return Err(self.malformed(message));
        }
        self.buf.pop();
        Ok(Some(()))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, IndexError> {
        serde_json::from_slice(&self.buf).map_err(|e| self.malformed(e.to_string()))
    }

    fn malformed(&self, message: impl Into<String>) -> IndexError {
        IndexError::Malformed {
            line: self.line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::row;

    fn header(feed: &str, rows: u64) -> FeedHeader {
        FeedHeader {
            feed: feed.into(),
            source: "osv".into(),
            rows,
            skipped: 0,
        }
    }

    fn write(feeds: &[(FeedHeader, Vec<FeedRow>)]) -> Vec<u8> {
        let mut w = FeedIndexWriter::new(Vec::new()).unwrap();
        for (h, rows) in feeds {
            w.begin_feed(h).unwrap();
            for r in rows {
                w.push_row(r).unwrap();
            }
        }
        w.finish().unwrap()
    }

    proptest::proptest! {
        #[test]
        fn row_lines_are_what_serde_json_writes(
            id in "[a-zA-Z0-9\"\\\\\u{0}-\u{1f}\u{7f}é/ -]{0,12}",
            hash in proptest::prelude::any::<[u8; 32]>(),
            tenant in proptest::option::of("[a-z\"\\n\u{1}]{0,4}"),
            modified in proptest::option::of("[0-9TZ:\t-]{0,8}"),
        ) {
            let r = FeedRow { id, hash: RowHash(hash), tenant, modified };
            let mut fast = Vec::new();
            encode_row_line(&r, &mut fast);
            let mut slow = serde_json::to_vec(&r).unwrap();
            slow.push(b'\n');
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<IndexItem>, IndexError> {
        let mut r = FeedIndexReader::new(bytes)?;
        let mut items = Vec::new();
        while let Some(item) = r.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    #[test]
    fn round_trip_keeps_feeds_rows_and_duplicates() {
        let feeds = vec![
            (
                header("feeds/ghsa/a.jsonl", 3),
                vec![row("A", None, 1), row("A", None, 1), row("B", Some("t"), 0)],
            ),
            (header("feeds/osv/b.json", 0), vec![]),
        ];
        let bytes = write(&feeds);
        let items = read_all(&bytes).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0], IndexItem::Feed(feeds[0].0.clone()));
        assert_eq!(items[2], IndexItem::Row(row("A", None, 1)));
        assert_eq!(items[4], IndexItem::Feed(feeds[1].0.clone()));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\"format\":\"ouk-feeds-index/1\"}\n"));
        assert!(!text.contains("tenant\":null"), "absent fields are omitted");
    }

    #[test]
    fn writer_refuses_unsorted_rows_feeds_and_wrong_counts() {
        let mut w = FeedIndexWriter::new(Vec::new()).unwrap();
        w.begin_feed(&header("feeds/osv/b", 2)).unwrap();
        w.push_row(&row("B", None, 0)).unwrap();
        assert!(w.push_row(&row("A", None, 0)).is_err());
        assert!(
            w.begin_feed(&header("feeds/osv/c", 0)).is_err(),
            "a row is missing"
        );
        w.push_row(&row("C", None, 0)).unwrap();
        assert!(w.push_row(&row("D", None, 0)).is_err(), "beyond the count");
        assert!(
            w.begin_feed(&header("feeds/osv/a", 0)).is_err(),
            "feed order"
        );
        let mut w = FeedIndexWriter::new(Vec::new()).unwrap();
        w.begin_feed(&header("feeds/osv/a", 1)).unwrap();
        assert!(w.finish().is_err());
    }

    #[test]
    fn reader_refuses_broken_indexes_with_line_numbers() {
        let good = String::from_utf8(write(&[(
            header("feeds/osv/a", 2),
            vec![row("A", None, 1), row("B", None, 2)],
        )]))
        .unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let cases: Vec<(String, u64)> = vec![
            (String::new(), 0),
            ("{\"format\":\"ouk-feeds-index/9\"}\n".into(), 1),
            (format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]), 3),
            (
                format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[3], lines[2]),
                4,
            ),
            (good.trim_end().to_string(), 4),
            (good.replace("\"rows\":2", "\"rows\":2,\"x\":1"), 2),
            (good.replace("\"hash\":\"01", "\"hash\":\"zz"), 3),
        ];
        for (text, line) in cases {
            match read_all(text.as_bytes()) {
                Err(IndexError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        assert_eq!(read_all(good.as_bytes()).unwrap().len(), 3);
    }
}
