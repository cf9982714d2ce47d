//! The row parser's fastest path: a hand-written JSON scanner that records a row as a flat
//! tape of tokens (spans into the row, no allocation per value) and writes its canonical
//! JSON from the tape.
//!
//! The tape is an optimisation with a safe exit: it handles the JSON that feeds are made
//! of and *declines* ([`Declined`]) the rest: anything malformed, keys with escapes, `\u`
//! escapes of surrogates, nesting deeper than [`MAX_DEPTH`]. A declined row goes to the
//! general path ([`super::fast`], serde_json), which gives the value or the error. So the
//! tape never has to reproduce serde_json's error messages, only its grammar for the rows
//! it accepts.
//!
//! Invariant: whenever [`Scratch::parse`] accepts a row, serde_json accepts it too, and
//! [`Parsed::write_canonical`] gives the same bytes as `serde_json::from_slice::<Value>` +
//! [`super::canonical::write_canonical`] (proptests below, and the `feed_rows` fuzz
//! target, compare the paths).

use std::borrow::Cow;

/// Deepest nesting the tape takes (serde_json refuses beyond 128); deeper rows decline.
pub const MAX_DEPTH: u32 = 100;

/// The tape cannot take this row; use the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declined;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    True,
    False,
    /// An integer whose text is its canonical form.
    Int,
    /// Any other number: written as serde_json writes it after parsing.
    Num,
    /// A string without escapes.
    Str,
    /// A string with escapes (all valid, none a surrogate).
    EscStr,
    Arr,
    Obj,
}

/// One value. `start..end` is its text in the row (a string's contents, without the
/// quotes); `next` is the index of the token after the value and everything inside it.
#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: u32,
    end: u32,
    next: u32,
}

/// Buffers reused from row to row.
#[derive(Debug, Default)]
pub struct Scratch {
    toks: Vec<Tok>,
    order: Vec<u32>,
}

/// A row on the tape.
#[derive(Debug)]
pub struct Parsed<'s> {
    bytes: &'s [u8],
    toks: &'s [Tok],
    order: &'s mut Vec<u32>,
}

/// A value as the indexer reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Field<'a> {
    /// `null`.
    Null,
    /// A string, decoded.
    Str(Cow<'a, str>),
    /// An object.
    Obj,
    /// Anything else.
    Other,
}

impl Scratch {
    /// Put `bytes` (one JSON value, surrounding whitespace allowed) on the tape.
    pub fn parse<'s>(&'s mut self, bytes: &'s [u8]) -> Result<Parsed<'s>, Declined> {
        // Spans are u32; a longer row is not a feed row the tape needs to take.
        if bytes.len() > u32::MAX as usize {
            return Err(Declined);
        }
        self.toks.clear();
        self.order.clear();
        let mut p = Scanner {
            b: bytes,
            pos: 0,
            toks: &mut self.toks,
        };
        p.value(0)?;
        p.ws();
        if p.pos != bytes.len() {
            return Err(Declined);
        }
        Ok(Parsed {
            bytes,
            toks: &self.toks,
            order: &mut self.order,
        })
    }
}

struct Scanner<'b, 't> {
    b: &'b [u8],
    pos: usize,
    toks: &'t mut Vec<Tok>,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `v` that is zero, and possibly in bytes above one that
/// is (so the lowest flagged byte is always a true zero byte).
#[inline]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

impl Scanner<'_, '_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, Declined> {
        self.b.get(self.pos).copied().ok_or(Declined)
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        let next = self.toks.len() as u32 + 1;
        self.toks.push(Tok {
            kind,
            start: start as u32,
            end: end as u32,
            next,
        });
    }

    fn value(&mut self, depth: u32) -> Result<(), Declined> {
        self.ws();
        match self.peek()? {
            b'{' => self.container(Kind::Obj, b'}', depth),
            b'[' => self.container(Kind::Arr, b']', depth),
            b'"' => {
                let (kind, start, end) = self.string()?;
                self.push(kind, start, end);
                Ok(())
            }
            b'n' => self.literal(b"null", Kind::Null),
            b't' => self.literal(b"true", Kind::True),
            b'f' => self.literal(b"false", Kind::False),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Declined),
        }
    }

    fn literal(&mut self, text: &[u8], kind: Kind) -> Result<(), Declined> {
        if !self.b[self.pos..].starts_with(text) {
            return Err(Declined);
        }
        let start = self.pos;
        self.pos += text.len();
        self.push(kind, start, self.pos);
        Ok(())
    }

    fn open(&mut self, kind: Kind, depth: u32) -> Result<usize, Declined> {
        if depth >= MAX_DEPTH {
            return Err(Declined);
        }
        let at = self.toks.len();
        self.push(kind, self.pos, self.pos);
        self.pos += 1;
        Ok(at)
    }

    fn close(&mut self, at: usize) {
        self.pos += 1;
        let next = self.toks.len() as u32;
        let tok = &mut self.toks[at];
        tok.end = self.pos as u32;
        tok.next = next;
    }

    /// An object or array at `pos`: members (`"key": value` in an object) separated by
    /// commas up to `close`.
    fn container(&mut self, kind: Kind, close: u8, depth: u32) -> Result<(), Declined> {
        let at = self.open(kind, depth)?;
        self.ws();
        if self.peek()? != close {
            loop {
                if kind == Kind::Obj {
                    self.key()?;
                }
                self.value(depth + 1)?;
                self.ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    c if c == close => break,
                    _ => return Err(Declined),
                }
            }
        }
        self.close(at);
        Ok(())
    }

    /// An object key (without escapes, or the row is declined) and its colon.
    fn key(&mut self) -> Result<(), Declined> {
        self.ws();
        if self.peek()? != b'"' {
            return Err(Declined);
        }
        let (kind, start, end) = self.string()?;
        if kind != Kind::Str {
            return Err(Declined);
        }
        self.push(kind, start, end);
        self.ws();
        if self.peek()? != b':' {
            return Err(Declined);
        }
        self.pos += 1;
        Ok(())
    }

    /// A string at `pos` (its opening quote): its kind and the span of its contents.
    fn string(&mut self) -> Result<(Kind, usize, usize), Declined> {
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            // Eight bytes at a time up to the next `"`, `\` or control character.
            while let Some(chunk) = b[i..].first_chunk::<8>() {
                let v = u64::from_le_bytes(*chunk);
                non_ascii |= v & HI != 0;
                let special = zero_bytes(v ^ (LO * u64::from(b'"')))
                    | zero_bytes(v ^ (LO * u64::from(b'\\')))
                    | (v.wrapping_sub(LO * 0x20) & !v & HI);
                if special != 0 {
                    i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match *b.get(i).ok_or(Declined)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i = escape_end(b, i)?;
                }
                0..=0x1f => return Err(Declined),
                c => {
                    non_ascii |= c >= 0x80;
                    i += 1;
                }
            }
        }
        // Escapes are ASCII, so the raw text is valid UTF-8 exactly when every run of
        // it between escapes is, which is what serde_json checks.
        if non_ascii && std::str::from_utf8(&b[start..i]).is_err() {
            return Err(Declined);
        }
        self.pos = i + 1;
        let kind = if escaped { Kind::EscStr } else { Kind::Str };
        Ok((kind, start, i))
    }

    fn number(&mut self) -> Result<(), Declined> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let negative = b[i] == b'-';
        if negative {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => return Err(Declined),
        }
        let digits = i - start - usize::from(negative);
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i = digits_end(b, i + 1)?;
            integer = false;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            i = digits_end(b, i)?;
            integer = false;
        }
        self.pos = i;
        let text = &b[start..i];
        // Up to 19 digits always fit u64 and up to 18 fit i64; `-0` parses as a float.
        let plain = integer
            && if negative {
                digits <= 18 && text != b"-0"
            } else {
                digits <= 19
            };
        if plain {
            self.push(Kind::Int, start, i);
        } else {
            // Refuse what serde_json refuses (out of range) here, not when writing.
            serde_json::from_slice::<serde_json::Number>(text).map_err(|_| Declined)?;
            self.push(Kind::Num, start, i);
        }
        Ok(())
    }
}

/// The end of a run of at least one digit starting at `i`.
fn digits_end(b: &[u8], mut i: usize) -> Result<usize, Declined> {
    let first = i;
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    if i == first { Err(Declined) } else { Ok(i) }
}

/// The end of the escape at `b[i] == b'\\'`, if it is valid and not a surrogate.
fn escape_end(b: &[u8], i: usize) -> Result<usize, Declined> {
    match b.get(i + 1).ok_or(Declined)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        b'u' => match hex4(b.get(i + 2..i + 6).ok_or(Declined)?) {
            Some(0xD800..=0xDFFF) | None => Err(Declined),
            Some(_) => Ok(i + 6),
        },
        _ => Err(Declined),
    }
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

/// A piece of a decoded string.
enum Piece<'a> {
    /// Raw text between escapes.
    Text(&'a [u8]),
    /// The character an escape stands for.
    Char(char),
}

/// Visit the decoded pieces of escaped string contents `raw` (validated by the scanner).
fn unescape<'a>(raw: &'a [u8], mut on: impl FnMut(Piece<'a>)) {
    let mut i = 0;
    while i < raw.len() {
        let run = raw[i..]
            .iter()
            .position(|&c| c == b'\\')
            .map_or(raw.len(), |p| i + p);
        if run > i {
            on(Piece::Text(&raw[i..run]));
        }
        if run >= raw.len() {
            break;
        }
        let (c, len) = match raw.get(run + 1) {
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let c = raw
                    .get(run + 2..run + 6)
                    .and_then(hex4)
                    .and_then(char::from_u32)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                (c, 6)
            }
            Some(&other) => (other as char, 2),
            None => break,
        };
        on(Piece::Char(c));
        i = run + len;
    }
}

/// Write escaped string contents `raw` as serde_json writes the decoded string.
fn write_escaped(raw: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    unescape(raw, |piece| match piece {
        // Raw runs hold no `"`, `\` or control character: they need no escape.
        Piece::Text(text) => out.extend_from_slice(text),
        Piece::Char(c) => match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                let n = c as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[n >> 4]);
                out.push(HEX[n & 15]);
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        },
    });
}

impl Parsed<'_> {
    /// The top-level value.
    pub fn root(&self) -> u32 {
        0
    }

    fn text(&self, i: u32) -> &[u8] {
        let t = self.toks[i as usize];
        &self.bytes[t.start as usize..t.end as usize]
    }

    /// The value of member `key` of the object at `at` (the last one if the key repeats,
    /// as serde_json keeps it), or `None` if `at` is no object or has no such key.
    pub fn member(&self, at: u32, key: &str) -> Option<u32> {
        let obj = self.toks[at as usize];
        if obj.kind != Kind::Obj {
            return None;
        }
        let mut found = None;
        let mut k = at + 1;
        while k < obj.next {
            let v = k + 1;
            if self.text(k) == key.as_bytes() {
                found = Some(v);
            }
            k = self.toks[v as usize].next;
        }
        found
    }

    /// The value at `at`, as the indexer reads fields.
    pub fn field(&self, at: u32) -> Field<'_> {
        match self.toks[at as usize].kind {
            Kind::Null => Field::Null,
            Kind::Obj => Field::Obj,
            Kind::Str => match std::str::from_utf8(self.text(at)) {
                Ok(s) => Field::Str(Cow::Borrowed(s)),
                Err(_) => Field::Other,
            },
            Kind::EscStr => {
                let mut s = Vec::new();
                unescape(self.text(at), |piece| match piece {
                    Piece::Text(t) => s.extend_from_slice(t),
                    Piece::Char(c) => s.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
                });
                match String::from_utf8(s) {
                    Ok(s) => Field::Str(Cow::Owned(s)),
                    Err(_) => Field::Other,
                }
            }
            _ => Field::Other,
        }
    }

    /// Append the canonical JSON of the row to `out`.
    pub fn write_canonical(&mut self, out: &mut Vec<u8>) {
        self.write(0, out);
    }

    fn write(&mut self, at: u32, out: &mut Vec<u8>) {
        let tok = self.toks[at as usize];
        match tok.kind {
            Kind::Null => out.extend_from_slice(b"null"),
            Kind::True => out.extend_from_slice(b"true"),
            Kind::False => out.extend_from_slice(b"false"),
            Kind::Int => out.extend_from_slice(self.text(at)),
            Kind::Num => {
                // Parsed once by the scanner, so this succeeds.
                if let Ok(n) = serde_json::from_slice::<serde_json::Number>(self.text(at)) {
                    let _ = serde_json::to_writer(&mut *out, &n);
                }
            }
            Kind::Str => {
                out.push(b'"');
                out.extend_from_slice(self.text(at));
                out.push(b'"');
            }
            Kind::EscStr => {
                out.push(b'"');
                write_escaped(self.text(at), out);
                out.push(b'"');
            }
            Kind::Arr => {
                out.push(b'[');
                let mut i = at + 1;
                while i < tok.next {
                    if i > at + 1 {
                        out.push(b',');
                    }
                    self.write(i, out);
                    i = self.toks[i as usize].next;
                }
                out.push(b']');
            }
            Kind::Obj => self.write_object(at, tok.next, out),
        }
    }

    fn write_object(&mut self, at: u32, next: u32, out: &mut Vec<u8>) {
        let base = self.order.len();
        let mut k = at + 1;
        let mut sorted = true;
        while k < next {
            if let Some(&prev) = self.order[base..].last() {
                sorted &= self.text(prev) < self.text(k);
            }
            self.order.push(k);
            k = self.toks[k as usize + 1].next;
        }
        let end = self.order.len();
        if !sorted {
            let (toks, bytes) = (self.toks, self.bytes);
            let key = |i: u32| {
                let t = toks[i as usize];
                &bytes[t.start as usize..t.end as usize]
            };
            // Stable, so among equal keys the last given stays last: it is the one kept.
            self.order[base..end].sort_by(|a, b| key(*a).cmp(key(*b)));
        }
        out.push(b'{');
        let mut first = true;
        for m in base..end {
            let key = self.order[m];
            if m + 1 < end && self.text(self.order[m + 1]) == self.text(key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(self.text(key));
            out.extend_from_slice(b"\":");
            self.write(key + 1, out);
        }
        out.push(b'}');
        self.order.truncate(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The general path's canonical bytes, and the tape's (`None` when declined).
    fn both(text: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let slow = serde_json::from_slice::<serde_json::Value>(text)
            .ok()
            .map(|v| super::super::canonical::canonical_bytes(&v));
        let mut scratch = Scratch::default();
        let tape = scratch.parse(text).ok().map(|mut p| {
            let mut out = Vec::new();
            p.write_canonical(&mut out);
            out
        });
        (slow, tape)
    }

    fn agrees(text: &[u8]) -> Result<(), TestCaseError> {
        let (slow, tape) = both(text);
        if let Some(tape) = tape {
            prop_assert_eq!(
                slow.as_deref(),
                Some(&tape[..]),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        Ok(())
    }

    #[test]
    fn takes_feed_json_and_agrees_with_the_value_path() {
        for text in [
            r#" {"b":1,"a":[1,-5,1.5e3,{"z":"\u00e9\n","y":null}],"a":"last","ab":true} "#,
            r#"{"s":"\/\u007f\"\\\b\f\n\r\t\u0001\u001F","n":[0,-0,18446744073709551615,-9223372036854775808,12345678901234567890123,1E2,0.1]}"#,
            "[18446744073709551616, -9223372036854775809, 1e-7, 2.50]",
            "{\"\":{}, \"x\":[], \"y\":[[]], \"é\":\"ü\"}",
            "\"just a string\"",
            "\t\r\n 7 \n",
        ] {
            let (slow, tape) = both(text.as_bytes());
            assert!(tape.is_some(), "declined {text}");
            assert_eq!(slow, tape, "{text}");
        }
    }

    #[test]
    fn declines_what_it_does_not_take() {
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        for text in [
            "",
            " ",
            "{\"a\":1} x",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            "1e",
            "-",
            "1e400",
            "\"\\ud83d\\ude00\"",
            "\"\\x\"",
            "\"\\u12\"",
            "{\"k\\n\":1}",
            "\"tab\there\"",
            "\"unterminated",
            "nul",
            "truth",
            deep.as_str(),
        ] {
            assert_eq!(
                Scratch::default().parse(text.as_bytes()).err(),
                Some(Declined),
                "{text:?}"
            );
        }
        assert!(Scratch::default().parse(b"\"\xff\"").is_err(), "bad UTF-8");
        assert!(Scratch::default().parse(b"\xef\xbb\xbf{}").is_err(), "BOM");
    }

    #[test]
    fn fields_are_read_like_serde_json_reads_them() {
        let mut s = Scratch::default();
        let p = s
            .parse(br#"{"id":"a","id":"b\u00e9\n","t":null,"o":{"id":"x"},"n":1}"#)
            .unwrap();
        let id = p.member(p.root(), "id").unwrap();
        assert_eq!(p.field(id), Field::Str(Cow::Owned("bé\n".into())));
        assert_eq!(p.field(p.member(p.root(), "t").unwrap()), Field::Null);
        let o = p.member(p.root(), "o").unwrap();
        assert_eq!(p.field(o), Field::Obj);
        assert_eq!(
            p.field(p.member(o, "id").unwrap()),
            Field::Str(Cow::Borrowed("x"))
        );
        assert_eq!(p.field(p.member(p.root(), "n").unwrap()), Field::Other);
        assert_eq!(p.member(p.root(), "missing"), None);
        assert_eq!(p.member(id, "id"), None, "a string has no members");
    }

    /// Random JSON values, written with random whitespace, escapes and key order.
    fn json_text() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", "", " ", "\n", "\t ", "\r\n"]);
        let string = prop::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9 é/.]{1,4}".prop_map(|s| s.to_string()),
                prop::sample::select(vec![
                    "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\u0001", "\\u001f", "\\b", "\\t",
                    "\\u007f", "\\u20AC",
                ])
                .prop_map(str::to_string),
            ],
            0..5,
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat()));
        let number = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO)
                .prop_map(|f| format!("{f:e}")),
            prop::sample::select(vec![
                "0",
                "-0",
                "1.0",
                "1e2",
                "0.5E-3",
                "123456789012345678901"
            ])
            .prop_map(str::to_string),
        ];
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            number,
            string,
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            let key = prop::sample::select(vec!["a", "b", "B", "id", "é", "", "ab"]);
            prop_oneof![
                (prop::collection::vec((inner.clone(), ws.clone()), 0..5)).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{}]", body.join(","))
                }),
                (prop::collection::vec((key, inner, ws.clone()), 0..6)).prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn takes_and_agrees_on_generated_json(text in json_text()) {
            let (slow, tape) = both(text.as_bytes());
            prop_assert!(slow.is_some(), "generator made invalid JSON: {}", text);
            prop_assert!(tape.is_some(), "declined {}", text);
            prop_assert_eq!(slow, tape);
        }

        #[test]
        fn agrees_on_arbitrary_text(text in r#"[\[\]{}",:a-c0-9.eE+\- \\u\n]{0,40}"#) {
            agrees(text.as_bytes())?;
        }

        #[test]
        fn agrees_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            agrees(&bytes)?;
        }
    }
}
