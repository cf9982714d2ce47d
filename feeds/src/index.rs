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

/// A row line exactly as [`encode_row_line`] writes it when no string needs an escape:
/// `{"id":"…","hash":"<64 hex>"[,"tenant":"…"][,"modified":"…"]}`, its strings borrowed.
///
/// Invariant: whenever [`PlainRowLine::parse`] accepts a line, serde_json parses that line
/// into the same [`FeedRow`] (a proptest checks it): the strings hold no `"`, `\` or
/// control character and are valid UTF-8, so their raw bytes are their value; the hex is
/// decoded as `hex` decodes it (either case). Anything else is declined, never refused.
struct PlainRowLine<'a> {
    id: &'a str,
    hash: [u8; 32],
    tenant: Option<&'a str>,
    modified: Option<&'a str>,
}

impl<'a> PlainRowLine<'a> {
    fn parse(line: &'a [u8]) -> Option<PlainRowLine<'a>> {
        let rest = line.strip_prefix(b"{\"id\":\"")?;
        let (id, rest) = plain_str(rest)?;
        let rest = rest.strip_prefix(b",\"hash\":\"")?;
        let (digits, rest) = rest.split_first_chunk::<64>()?;
        let hash = decode_hex32(digits)?;
        let mut rest = rest.strip_prefix(b"\"")?;
        let mut tenant = None;
        if let Some(r) = rest.strip_prefix(b",\"tenant\":\"") {
            let (t, r) = plain_str(r)?;
            tenant = Some(t);
            rest = r;
        }
        let mut modified = None;
        if let Some(r) = rest.strip_prefix(b",\"modified\":\"") {
            let (m, r) = plain_str(r)?;
            modified = Some(m);
            rest = r;
        }
        (rest == b"}").then_some(PlainRowLine {
            id,
            hash,
            tenant,
            modified,
        })
    }

    /// Compare with `row` by [`FeedRow::sort_key`].
    fn cmp_key(&self, row: &FeedRow) -> Ordering {
        (self.id, self.tenant, &self.hash).cmp(&(
            row.id.as_str(),
            row.tenant.as_deref(),
            &row.hash.0,
        ))
    }

    /// Make `row` this line's row, reusing its buffers.
    fn store_in(&self, row: &mut FeedRow) {
        fn set(field: &mut Option<String>, value: Option<&str>) {
            match (field.as_mut(), value) {
                (Some(f), Some(v)) => {
                    f.clear();
                    f.push_str(v);
                }
                (None, Some(v)) => *field = Some(v.to_string()),
                (_, None) => *field = None,
            }
        }
        row.id.clear();
        row.id.push_str(self.id);
        row.hash = RowHash(self.hash);
        set(&mut row.tenant, self.tenant);
        set(&mut row.modified, self.modified);
    }
}

/// A string's contents up to its closing quote, if they need no unescaping (no `\`, no
/// control character, valid UTF-8), and what follows the quote.
fn plain_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr(b'"', bytes)?;
    let raw = &bytes[..end];
    if raw.iter().any(|&b| b < 0x20 || b == b'\\') {
        return None;
    }
    Some((std::str::from_utf8(raw).ok()?, &bytes[end + 1..]))
}

/// Value of each byte as a hex digit (either case, as `hex::decode_to_slice` takes them);
/// 0xff for a byte that is none.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut d = 0;
    while d < 10 {
        table[b'0' as usize + d] = d as u8;
        d += 1;
    }
    let mut d = 0;
    while d < 6 {
        table[b'a' as usize + d] = 10 + d as u8;
        table[b'A' as usize + d] = 10 + d as u8;
        d += 1;
    }
    table
};

/// 64 hex digits as 32 bytes. A table lookup per digit, and one check for the whole
/// digest (an invalid digit sets the high bits of the OR of all values): the per-digit
/// branches of a `match` made this the hot spot of reading an index.
fn decode_hex32(digits: &[u8; 64]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        invalid |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (invalid & 0xf0 == 0).then_some(out)
}

/// Reads an index, checking every rule of the format as it goes.
pub struct FeedIndexReader<R: BufRead> {
    input: R,
    line: u64,
    buf: Vec<u8>,
    last_feed: Option<String>,
    rows_left: u64,
    /// The last row read in this feed (its buffers are reused for the next), if any.
    row: FeedRow,
    has_row: bool,
}

/// What [`FeedIndexReader::advance`] read.
pub(crate) enum Advanced {
    /// A feed header.
    Feed(FeedHeader),
    /// A row, now [`FeedIndexReader::row`].
    Row,
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
            row: FeedRow {
                id: String::new(),
                hash: RowHash([0; 32]),
                tenant: None,
                modified: None,
            },
            has_row: false,
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
        Ok(match self.advance()? {
            None => None,
            Some(Advanced::Feed(h)) => Some(IndexItem::Feed(h)),
            Some(Advanced::Row) => Some(IndexItem::Row(self.row.clone())),
        })
    }

    /// The row [`Self::advance`] last read (meaningful after it returned [`Advanced::Row`]).
    pub(crate) fn row(&self) -> &FeedRow {
        &self.row
    }

    /// [`Self::next_item`] without copying a row out: the same checks, and a row read is
    /// left in [`Self::row`], whose buffers are reused from row to row (no allocation per
    /// row once they are grown).
    pub(crate) fn advance(&mut self) -> Result<Option<Advanced>, IndexError> {
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
            self.take_row()?;
            self.rows_left -= 1;
            return Ok(Some(Advanced::Row));
        }
        let header: FeedHeader = self.parse()?;
        if let Some(last) = &self.last_feed
            && header.feed.as_str() <= last.as_str()
        {
            return Err(self.malformed(format!("feed {} out of order after {last}", header.feed)));
        }
        self.last_feed = Some(header.feed.clone());
        self.rows_left = header.rows;
        self.has_row = false;
        Ok(Some(Advanced::Feed(header)))
    }

    /// Parse the row line in `buf`, check it sorts after the previous row of the feed and
    /// make it [`Self::row`]. The line in the form the writer gives it (no escape in any
    /// string) is read without serde; any other line goes through serde_json, which
    /// accepts or refuses it as it always did.
    fn take_row(&mut self) -> Result<(), IndexError> {
        let out_of_order =
            |last: &FeedRow, id: &str| format!("row {id} out of order after {}", last.id);
        if let Some(line) = PlainRowLine::parse(&self.buf) {
            if self.has_row && line.cmp_key(&self.row) == Ordering::Less {
                let message = out_of_order(&self.row, line.id);
                return Err(self.malformed(message));
            }
            line.store_in(&mut self.row);
        } else {
            let row: FeedRow = self.parse()?;
            if self.has_row && row.cmp_key(&self.row) == Ordering::Less {
                let message = out_of_order(&self.row, &row.id);
                return Err(self.malformed(message));
            }
            self.row = row;
        }
        self.has_row = true;
        Ok(())
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

    /// A row line through the reader's plain path, if it takes it.
    fn plain(line: &[u8]) -> Option<FeedRow> {
        let parsed = PlainRowLine::parse(line)?;
        let mut row = row("stale", Some("stale"), 7);
        row.modified = Some("stale".into());
        parsed.store_in(&mut row);
        Some(row)
    }

    proptest::proptest! {
        /// The plain path's invariant: what it takes, serde_json reads the same; the
        /// writer's lines without escapes it always takes. Lines are the writer's, then
        /// maybe upper-cased hex, cut or with one byte replaced.
        #[test]
        fn the_plain_row_path_agrees_with_serde(
            id in "[a-zA-Z0-9\"\\\\\u{1}\u{7f}é/ :-]{0,12}",
            hash in proptest::prelude::any::<[u8; 32]>(),
            tenant in proptest::option::of("[a-z\"\\\\é\u{1}]{0,4}"),
            modified in proptest::option::of("[0-9TZ:\t-]{0,8}"),
            upper in proptest::prelude::any::<bool>(),
            cut in proptest::option::of(proptest::prelude::any::<usize>()),
            replace in proptest::option::of((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>())),
        ) {
            let r = FeedRow { id, hash: RowHash(hash), tenant, modified };
            let mut line = Vec::new();
            encode_row_line(&r, &mut line);
            line.pop();
            let escaped = line.contains(&b'\\');
            let mut changed = false;
            if upper {
                line = String::from_utf8(line).unwrap().replace(&r.hash.to_hex(), &r.hash.to_hex().to_uppercase()).into_bytes();
            }
            if let Some(at) = cut {
                line.truncate(at % (line.len() + 1));
                changed = true;
            }
            if let Some((at, byte)) = replace && !line.is_empty() {
                let at = at % line.len();
                changed |= line[at] != byte;
                line[at] = byte;
            }
            let slow = serde_json::from_slice::<FeedRow>(&line).ok();
            match plain(&line) {
                Some(fast) => proptest::prop_assert_eq!(Some(fast), slow.clone()),
                None => proptest::prop_assert!(escaped || changed, "declined {}", String::from_utf8_lossy(&line)),
            }
            if !changed {
                proptest::prop_assert_eq!(slow, Some(r));
            }
        }
    }

    #[test]
    fn the_plain_row_path_takes_writer_lines_and_declines_the_rest() {
        let mut r = row("GHSA-1", Some("acme"), 0xab);
        r.modified = Some("2025-10-01T00:00:00Z".into());
        let mut line = Vec::new();
        encode_row_line(&r, &mut line);
        line.pop();
        assert_eq!(plain(&line), Some(r.clone()));
        let text = String::from_utf8(line).unwrap();
        for declined in [
            text.replace("{\"id\"", "{ \"id\""),
            text.replace("acme", "ac\\u006de"),
            format!("{text} "),
            text.replace(",\"tenant\":\"acme\"", ",\"tenant\":null"),
            text.replace("abab", "abzb"),
        ] {
            assert_eq!(plain(declined.as_bytes()), None, "{declined}");
        }
        // The reader still reads what serde_json reads (here a tenant spelled with an escape).
        let escaped = text.replace("acme", "ac\\u006de");
        let bytes = format!(
            "{{\"format\":\"{FEED_INDEX_FORMAT}\"}}\n{{\"feed\":\"feeds/osv/a\",\"source\":\"osv\",\"rows\":1,\"skipped\":0}}\n{escaped}\n"
        );
        assert_eq!(read_all(bytes.as_bytes()).unwrap()[1], IndexItem::Row(r));
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
