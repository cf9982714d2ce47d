//! Streaming feed readers: split a feed file into rows, element by element, never holding
//! more than one batch of rows in memory.
//!
//! A feed is `feeds/<source>/<name>` whose name (less a `.gz` or `.zst` suffix, which
//! selects gzip or zstd decompression) ends in `.json`, `.jsonl` or `.ndjson`. Its format
//! is taken from its content, not its name: if the first byte that is not whitespace (or a
//! UTF-8 byte order mark) is `[`, the feed is one JSON array whose elements are the rows;
//! otherwise it is JSON lines, one row per non-blank line.
//!
//! Invariants:
//! - A row is reported with the 1-based line of the decompressed feed where it starts;
//!   rows come out in file order.
//! - Memory is bounded by the batch size plus one row: a JSON array is scanned byte by
//!   byte (strings, escapes and nesting tracked) and each element is cut out alone; a row
//!   longer than [`MAX_ROW_BYTES`] is not kept, only reported as bad.
//! - A row the splitter can delimit but not use (empty array element, row too long) is a
//!   bad row ([`RawRow::bad`]): the caller decides to fail or skip. A feed whose structure
//!   is broken (an array that never closes, text after the closing `]`, a decompression
//!   error) is [`ScanError::Broken`]: there is no next row to skip to.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// The longest row kept (longer ones are bad rows).
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// How a feed file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain.
    None,
    /// `.gz`.
    Gzip,
    /// `.zst`.
    Zstd,
}

/// Whether `name` is a feed file name, and how it is compressed.
pub fn feed_compression(name: &str) -> Option<Compression> {
    let (inner, c) = if let Some(n) = name.strip_suffix(".gz") {
        (n, Compression::Gzip)
    } else if let Some(n) = name.strip_suffix(".zst") {
        (n, Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    [".json", ".jsonl", ".ndjson"]
        .iter()
        .any(|ext| inner.ends_with(ext) && inner.len() > ext.len())
        .then_some(c)
}

/// A feed file's content could not be read as rows at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading the file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The feed's structure is broken at `line`.
    #[error("line {line}: {message}")]
    Broken {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// One row as cut from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// 1-based line where the row starts.
    pub line: u64,
    /// Why the splitter could not keep the row; `None` for a row to parse.
    pub bad: Option<String>,
}

/// A batch of rows: their bytes back to back in `data`, and where each one is.
#[derive(Debug, Default)]
pub struct Batch {
    /// Row bytes.
    pub data: Vec<u8>,
    /// Each row and its byte range in `data` (empty for a bad row).
    pub rows: Vec<(RawRow, std::ops::Range<usize>)>,
}

impl Batch {
    /// Empty the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.rows.clear();
    }

    /// The bytes of row `i`.
    pub fn bytes(&self, i: usize) -> &[u8] {
        &self.data[self.rows[i].1.clone()]
    }
}

/// Open a feed file for reading, decompressed by its name.
pub fn open_feed(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    open_reader(file, feed_compression(&name).unwrap_or(Compression::None))
}

/// Wrap `input` to decompress it.
pub fn open_reader<'a>(
    input: impl BufRead + Send + 'a,
    compression: Compression,
) -> io::Result<Box<dyn BufRead + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(input),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            1 << 20,
            zstd::stream::read::Decoder::with_buffer(input)?,
        )),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unknown,
    Lines,
    /// Inside the JSON array.
    Array,
    Done,
}

/// Cuts a feed into rows, batch by batch.
pub struct RowSplitter<R: BufRead> {
    input: R,
    mode: Mode,
    /// The line the reader is on (1-based).
    line: u64,
    /// Whether the feed is a JSON array.
    array: bool,
    /// Array elements cut so far.
    elements: u64,
}

impl<R: BufRead> RowSplitter<R> {
    /// A splitter over decompressed feed bytes.
    pub fn new(input: R) -> Self {
        RowSplitter {
            input,
            mode: Mode::Unknown,
            line: 1,
            array: false,
            elements: 0,
        }
    }

    /// Whether the feed turned out to be a JSON array (known after the first batch).
    pub fn is_array(&self) -> bool {
        self.array
    }

    /// Fill `batch` (cleared first) with rows until it holds about `max_bytes`; returns
    /// `false` when the feed has no more rows (the batch may still hold some).
    pub fn next_batch(&mut self, batch: &mut Batch, max_bytes: usize) -> Result<bool, ScanError> {
        batch.clear();
        if self.mode == Mode::Unknown {
            self.detect()?;
        }
        while batch.data.len() < max_bytes {
            let more = match self.mode {
                Mode::Lines => self.next_line(batch)?,
                Mode::Array => self.next_element(batch)?,
                Mode::Done | Mode::Unknown => false,
            };
            if !more {
                self.mode = Mode::Done;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn broken(&self, message: impl Into<String>) -> ScanError {
        ScanError::Broken {
            line: self.line,
            message: message.into(),
        }
    }

    /// Skip leading whitespace and a BOM; decide lines or array.
    fn detect(&mut self) -> Result<(), ScanError> {
        let mut at_start = true;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                self.mode = Mode::Done;
                return Ok(());
            }
            if at_start && buf.starts_with(b"\xEF\xBB\xBF") {
                self.input.consume(3);
                at_start = false;
                continue;
            }
            at_start = false;
            let n = buf.iter().take_while(|b| is_ws(**b)).count();
            if n < buf.len() {
                let first = buf[n];
                self.line += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                if first == b'[' {
                    self.input.consume(n + 1);
                    self.mode = Mode::Array;
                    self.array = true;
                } else {
                    self.input.consume(n);
                    self.mode = Mode::Lines;
                }
                return Ok(());
            }
            self.line += buf.iter().filter(|b| **b == b'\n').count() as u64;
            self.input.consume(n);
        }
    }

    /// One JSON line (blank lines skipped); `false` at the end.
    fn next_line(&mut self, batch: &mut Batch) -> Result<bool, ScanError> {
        loop {
            let start = batch.data.len();
            let line = self.line;
            let mut too_long = false;
            let mut read_any = false;
            loop {
                let buf = self.input.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                read_any = true;
                let (take, done) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if !too_long {
                    if batch.data.len() - start + take > MAX_ROW_BYTES + 1 {
                        too_long = true;
                        batch.data.truncate(start);
                    } else {
                        batch.data.extend_from_slice(&buf[..take]);
                    }
                }
                self.input.consume(take);
                if done {
                    self.line += 1;
                    break;
                }
            }
            if !read_any {
                return Ok(false);
            }
            if too_long {
                batch.rows.push((
                    RawRow {
                        line,
                        bad: Some(format!("row longer than {MAX_ROW_BYTES} bytes")),
                    },
                    start..start,
                ));
                return Ok(true);
            }
            if batch.data[start..].iter().all(|b| is_ws(*b)) {
                batch.data.truncate(start);
                continue;
            }
            let end = batch.data.len();
            batch.rows.push((RawRow { line, bad: None }, start..end));
            return Ok(true);
        }
    }

    /// One array element; `false` after the closing `]` (and only whitespace after it).
    fn next_element(&mut self, batch: &mut Batch) -> Result<bool, ScanError> {
        let start = batch.data.len();
        let mut depth: u32 = 0;
        let mut in_string = false;
        let mut escape = false;
        let mut first_line: Option<u64> = None;
        let mut too_long = false;
        let mut elem_len = 0usize;
        let mut append = |data: &mut Vec<u8>, part: &[u8]| {
            elem_len += part.len();
            if too_long {
                return;
            }
            if elem_len > MAX_ROW_BYTES {
                too_long = true;
                data.truncate(start);
            } else {
                data.extend_from_slice(part);
            }
        };
        let closing;
        'outer: loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Err(self.broken("the JSON array does not end (no closing ']')"));
            }
            let mut i = 0;
            while i < buf.len() {
                let b = buf[i];
                if in_string {
                    if escape {
                        escape = false;
                        i += 1;
                        continue;
                    }
                    // Jump to the next quote, backslash or newline.
                    match memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]) {
                        Some(j) => {
                            i += j;
                            match buf[i] {
                                b'"' => in_string = false,
                                b'\\' => escape = true,
                                _ => self.line += 1,
                            }
                            i += 1;
                        }
                        None => i = buf.len(),
                    }
                    continue;
                }
                match b {
                    b'\n' => self.line += 1,
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => {
                        closing = b;
                        append(&mut batch.data, &buf[..i]);
                        self.input.consume(i + 1);
                        break 'outer;
                    }
                    _ => {}
                }
                if first_line.is_none() && !is_ws(b) {
                    first_line = Some(self.line);
                }
                i += 1;
            }
            let take = buf.len();
            append(&mut batch.data, buf);
            self.input.consume(take);
        }
        let line = first_line.unwrap_or(self.line);
        let empty = !too_long && batch.data[start..].iter().all(|b| is_ws(*b));
        if closing == b']' {
            self.expect_end()?;
            if empty && self.elements == 0 {
                batch.data.truncate(start);
                return Ok(false); // `[]`
            }
        }
        self.elements += 1;
        let bad = if too_long {
            Some(format!("row longer than {MAX_ROW_BYTES} bytes"))
        } else if empty {
            Some(if closing == b']' {
                "empty array element (a trailing comma?)".to_string()
            } else {
                "empty array element".to_string()
            })
        } else {
            None
        };
        if bad.is_some() {
            batch.data.truncate(start);
        }
        let end = batch.data.len();
        batch.rows.push((RawRow { line, bad }, start..end));
        Ok(closing == b',')
    }

    /// After the closing `]`: only whitespace may follow.
    fn expect_end(&mut self) -> Result<(), ScanError> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf.iter().take_while(|b| is_ws(**b)).count();
            self.line += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            if n < buf.len() {
                return Err(self.broken("text after the JSON array's closing ']'"));
            }
            self.input.consume(n);
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row: (line, bytes as text or the bad reason), read with tiny batches and a
    /// tiny buffer so rows straddle reads.
    fn rows(text: &[u8]) -> Result<(bool, Vec<(u64, String)>), ScanError> {
        let mut s = RowSplitter::new(BufReader::with_capacity(3, text));
        let mut out = Vec::new();
        let mut batch = Batch::default();
        loop {
            let more = s.next_batch(&mut batch, 5)?;
            for (i, (raw, _)) in batch.rows.iter().enumerate() {
                let t = match &raw.bad {
                    Some(b) => format!("BAD {b}"),
                    None => String::from_utf8_lossy(batch.bytes(i)).trim().to_string(),
                };
                out.push((raw.line, t));
            }
            if !more {
                return Ok((s.is_array(), out));
            }
        }
    }

    #[test]
    fn json_lines_with_blank_lines_and_line_numbers() {
        let (array, r) =
            rows(b"{\"id\":\"A\"}\n\n  \r\n{\"id\":\"B\"}\r\n{bad\n{\"id\":\"C\"}").unwrap();
        assert!(!array);
        assert_eq!(
            r,
            vec![
                (1, "{\"id\":\"A\"}".into()),
                (4, "{\"id\":\"B\"}".into()),
                (5, "{bad".into()),
                (6, "{\"id\":\"C\"}".into())
            ]
        );
        assert_eq!(rows(b"").unwrap().1, vec![]);
        assert_eq!(rows(b"\n\n").unwrap().1, vec![]);
    }

    #[test]
    fn json_arrays_stream_element_by_element() {
        let text = b"\xEF\xBB\xBF\n [ {\"id\":\"A\",\"s\":\"a,]}\\\"\\\\\"},\n  {\"id\":\"B\",\n \"x\":[1,{\"y\":\"\n\"}]}\n, 7 ,\"s\" ]\n\n";
        let (array, r) = rows(text).unwrap();
        assert!(array);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], (2, "{\"id\":\"A\",\"s\":\"a,]}\\\"\\\\\"}".into()));
        assert_eq!(r[1].0, 3);
        assert!(r[1].1.starts_with("{\"id\":\"B\""));
        assert_eq!(r[2], (6, "7".into()));
        assert_eq!(r[3], (6, "\"s\"".into()));
        assert_eq!(rows(b"[]").unwrap().1, vec![]);
        assert_eq!(rows(b" [ \n ] \n").unwrap().1, vec![]);
        let (_, r) = rows(b"[{\"id\":1},,{\"id\":2},]").unwrap();
        assert_eq!(r.len(), 4);
        assert!(r[1].1.starts_with("BAD empty"), "{r:?}");
        assert!(r[3].1.starts_with("BAD empty"), "{r:?}");
    }

    #[test]
    fn broken_arrays_are_errors_with_lines() {
        for (text, line) in [
            (&b"[{\"id\":\"A\"},\n{\"id\":\"B\""[..], 2),
            (b"[{\"id\":\"A\"}]\n x", 2),
            (b"[\"unterminated\n\n", 3),
        ] {
            match rows(text) {
                Err(ScanError::Broken { line: l, .. }) => {
                    assert_eq!(l, line, "{:?}", String::from_utf8_lossy(text))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
            }
        }
    }

    #[test]
    fn compressed_feeds_by_name() {
        assert_eq!(feed_compression("all.jsonl"), Some(Compression::None));
        assert_eq!(feed_compression("all.json.gz"), Some(Compression::Gzip));
        assert_eq!(feed_compression("nvd.ndjson.zst"), Some(Compression::Zstd));
        assert_eq!(feed_compression("README.md"), None);
        assert_eq!(feed_compression(".json"), None);
        assert_eq!(feed_compression("x.json.sha256"), None);
        let text = b"{\"id\":\"A\"}\n{\"id\":\"B\"}\n".repeat(1000);
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        std::io::Write::write_all(&mut enc, &text).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("a.json.zst");
        std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        for p in [gz, zst] {
            let mut s = RowSplitter::new(open_feed(&p).unwrap());
            let mut batch = Batch::default();
            let mut n = 0;
            while s.next_batch(&mut batch, 1 << 16).unwrap() {
                n += batch.rows.len();
            }
            n += batch.rows.len();
            assert_eq!(n, 2000, "{}", p.display());
        }
        let bad = dir.path().join("b.jsonl.gz");
        std::fs::write(&bad, b"not gzip at all").unwrap();
        let mut s = RowSplitter::new(open_feed(&bad).unwrap());
        assert!(matches!(
            s.next_batch(&mut Batch::default(), 10),
            Err(ScanError::Io(_))
        ));
    }
}
