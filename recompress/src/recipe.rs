//! The recipe: what [`crate::rebuild`] needs besides the plain form, as compact versioned
//! bytes (the layout is documented in docs/formats.md, "Recompression recipes").
//!
//! ```text
//! "OUKR" version:u8 format:u8 plain_len:varint out_len:varint count:varint segment*
//! segment = 1 len:varint                                   copy plain bytes verbatim
//!         | 2 chunks:varint (plain_len:varint n:varint corrections[n])*   deflate (preflate)
//!         | 3 plain_len:varint zstd_version:varint level:zigzag flags:u8  zstd frame
//!         | 4 plain_len:varint vlen:u8 zlib_version[vlen]
//!             level:u8 mem_level:u8 window_bits:u8 strategy:u8            deflate (zlib-exact)
//!         | 5 plain_len:varint crc32:u32le n:varint deflate[n]            deflate (verbatim)
//!         | 6 plain_len:varint plen:u8 port_id[plen] level:zigzag         deflate (Go port)
//!         | 7 plain_len:varint ilen:u8 id[ilen] level:u8 feed:varint      deflate (miniz_oxide)
//!         | 8 plain_len:varint ilen:u8 id[ilen] level:u8 feed:varint      deflate (zlib-rs)
//!         | 9 plain_len:varint count:varint tag:u8 settings               zip member run
//!         | 10 plain_len:varint enc:u8 ilen:u8 id[ilen] level:u8 feed:varint
//!                                          deflate (Rust encoder `enc` 7|8, tar-shaped feed)
//! settings = the fields of segment `tag` (4, 6, 7, 8 or 10) after its plain_len
//! ```
//!
//! Segment 10 (version 5) is segment 7 or 8 fed as a tar writer feeds its encoder (each
//! header, the entry's data in pieces of at most `feed`, its padding, the end in one
//! piece: [`crate::rustflate::Cutter`]). Segment 9 (version 5) stands for `count`
//! consecutive zip members, each a local header taken from the plain form followed by one
//! deflate stream made with the one setting the run names: a member's header length and plain length are read from its local header
//! (name and extra lengths, uncompressed size), so a zip of 12,000 members written alike
//! costs one segment, not 12,000 (see [`crate::zip::rebuild_run`]).
//!
//! Versions: 2 has segments 1-5; 3 adds segment 6; 4 adds segments 7 and 8 (written only
//! when a recipe holds one, as 3 is only for segment 6; a version 3 recipe with segment 7
//! or 8 is refused); 5 adds segments 9 and 10 (written only when a recipe holds one,
//! refused under an older header). The writer writes 3 only when a recipe
//! holds a segment 6, so recipes without one still rebuild on hosts that read only version
//! 2 (as the delta format is `/3` only when it uses the recompression tier); a host that
//! predates segment 6 refuses a version 3 recipe as `Unsupported` naming the version, not
//! as a malformed one. The reader takes both and refuses segment 6 in a version 2 recipe.
//!
//! Invariants of the reader (the recipe is untrusted): every varint is at most 10 bytes and
//! fits a u64; every count and length is checked against the bytes left in the recipe or
//! against a named bound before it is used, and nothing is allocated from a recipe field;
//! the segments' plain lengths must add up to the header's `plain_len`, which must be within
//! [`crate::Limits::max_plain`]. Reading never panics: every slice is taken through
//! checked helpers.

use crate::rustflate::{Encoder, MAX_FEED};
use crate::zlib::ZlibParams;
use crate::{Format, Limits, RecompressError, Result};

pub(crate) const MAGIC: &[u8; 4] = b"OUKR";
/// The newest recipe version, written when a recipe needs it (a zip central directory
/// relative to its local headers, segment 11).
pub(crate) const VERSION: u8 = 6;
/// The version zip member runs and tar-fed Rust encoders (segments 9 and 10) need.
pub(crate) const RUN_VERSION: u8 = 5;
/// The version a Rust-encoder segment needs.
pub(crate) const RUST_VERSION: u8 = 4;
/// The version a Go-port segment needs.
pub(crate) const GO_VERSION: u8 = 3;
/// The oldest recipe version still read (and written when it suffices).
pub(crate) const MIN_VERSION: u8 = 2;

const TAG_COPY: u8 = 1;
const TAG_DEFLATE: u8 = 2;
const TAG_ZSTD: u8 = 3;
const TAG_ZLIB: u8 = 4;
const TAG_RAW: u8 = 5;
const TAG_GOFLATE: u8 = 6;
const TAG_MINIZ: u8 = 7;
const TAG_ZLIB_RS: u8 = 8;
const TAG_ZIP_RUN: u8 = 9;
const TAG_RUST_TAR: u8 = 10;
const TAG_ZIP_CENTRAL: u8 = 11;

/// The smallest zip local header (its fixed part): a run of `count` members needs at
/// least `count` times this many plain bytes, which bounds `count` by the plain length.
pub(crate) const ZIP_LOCAL_MIN: u64 = 30;

/// Longest Rust-encoder identity a recipe may carry (ours are like "miniz_oxide 0.9.1").
pub(crate) const MAX_RUST_ID: usize = 32;

/// Longest Go-port identity a recipe may carry (ours is like "go1.7-1.26").
pub(crate) const MAX_GO_PORT_ID: usize = 32;

/// Longest zlib version string a recipe may carry (zlib's are like "1.3.1").
pub(crate) const MAX_ZLIB_VERSION: usize = 32;

/// Largest compressed stream a recipe carries verbatim: past it the stream is `NotExact`
/// (the file ships as is), so a recipe stays far smaller than the data it describes.
pub(crate) const MAX_RAW: u64 = 64 << 20;

/// Largest plain form of one deflate chunk. The analyzer asks preflate for chunks of
/// [`crate::deflate::CHUNK_PLAIN`]; a chunk ends on a deflate block boundary, so it may
/// pass that by one block, and this bound leaves room for that while keeping the
/// rebuild's chunk buffer bounded.
pub(crate) const MAX_CHUNK_PLAIN: u64 = 32 << 20;

/// zstd compression levels a recipe may name. Levels 20-22 ("ultra") are left out: their
/// match tables for a large input take over a GiB, more than a recipe may make a host
/// allocate.
pub(crate) const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -7..=19;

/// One deflate chunk: `plain_len` plain bytes and preflate's corrections for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk<C> {
    pub plain_len: u64,
    pub corrections: C,
}

/// How one zstd frame is re-created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZstdParams {
    pub plain_len: u64,
    /// `ZSTD_versionNumber()` of the libzstd that was checked to give the frame.
    pub version: u32,
    pub level: i32,
    pub checksum: bool,
    pub content_size: bool,
}

/// How one deflate stream is re-created by the bundled zlib.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZlibSegment<V> {
    pub plain_len: u64,
    /// `zlibVersion()` of the zlib that was checked to give the stream.
    pub version: V,
    pub params: ZlibParams,
}

/// A deflate stream carried verbatim: `plain_len` plain bytes (checked by CRC-32) stand
/// for the compressed bytes `deflate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSegment<B> {
    pub plain_len: u64,
    pub crc: u32,
    pub deflate: B,
}

/// How one deflate stream is re-created by the port of Go's `compress/flate` encoder
/// ([`crate::goflate`]): `plain_len` plain bytes written at `level` in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoFlateSegment<V> {
    pub plain_len: u64,
    /// [`crate::goflate::PORT_ID`] of the port that was checked to give the stream.
    pub port: V,
    /// Go's level: -2 (Huffman only), 0 (stored) or 1..=9 (never -1: that is 6).
    pub level: i32,
}

/// How one deflate stream is re-created by a pure-Rust encoder ([`crate::rustflate`]):
/// `plain_len` plain bytes given to it `feed` bytes per call at `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RustFlateSegment<V> {
    pub plain_len: u64,
    pub encoder: Encoder,
    /// [`Encoder::id`] of the encoder that was checked to give the stream.
    pub id: V,
    pub level: u8,
    /// 1..=[`crate::rustflate::MAX_FEED`]: the piece size, or with `tar` the largest
    /// piece of an entry's data (see [`crate::rustflate::Cutter`]).
    pub feed: u64,
    /// The pieces follow the tar entries of the plain bytes (segment 10, version 5).
    pub tar: bool,
}

/// A segment as the analyzer builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Copy(u64),
    Deflate(Vec<Chunk<Vec<u8>>>),
    Zstd(ZstdParams),
    Zlib(ZlibSegment<String>),
    Raw(RawSegment<Vec<u8>>),
    GoFlate(GoFlateSegment<&'static str>),
    RustFlate(RustFlateSegment<&'static str>),
    /// `count` zip members (local header + one deflate stream each) made with `setting`
    /// (a `Zlib`, `GoFlate` or `RustFlate` segment whose own `plain_len` is 0):
    /// `plain_len` plain bytes in all, headers included.
    ZipRun {
        plain_len: u64,
        count: u64,
        setting: Box<Segment>,
    },
    /// A zip's central directory of `count` entries, `plain_len` plain bytes, each entry's
    /// CRC-32, sizes and offset relative to its local header (see `crate::zip::central`).
    ZipCentral {
        plain_len: u64,
        count: u64,
    },
}

impl Segment {
    /// The setting this segment re-creates its stream with, apart from the stream's
    /// length: `Some` only for the segments that need nothing else (zlib, Go, Rust
    /// encoders), which are the ones a zip member run can share. A Rust encoder fed the
    /// whole stream in one piece is recorded with the largest feed, which gives the same
    /// bytes for every stream up to that size, so members of any size share it.
    pub(crate) fn setting(&self) -> Option<Segment> {
        match self {
            Segment::Zlib(z) => Some(Segment::Zlib(ZlibSegment {
                plain_len: 0,
                ..z.clone()
            })),
            Segment::GoFlate(g) => Some(Segment::GoFlate(GoFlateSegment {
                plain_len: 0,
                ..g.clone()
            })),
            Segment::RustFlate(r) => Some(Segment::RustFlate(RustFlateSegment {
                plain_len: 0,
                feed: if !r.tar && r.feed >= r.plain_len {
                    MAX_FEED
                } else {
                    r.feed
                },
                ..r.clone()
            })),
            _ => None,
        }
    }

    fn plain_len(&self) -> u64 {
        match self {
            Segment::Copy(n) => *n,
            Segment::Deflate(chunks) => chunks.iter().map(|c| c.plain_len).sum(),
            Segment::Zstd(p) => p.plain_len,
            Segment::Zlib(z) => z.plain_len,
            Segment::Raw(r) => r.plain_len,
            Segment::GoFlate(g) => g.plain_len,
            Segment::RustFlate(r) => r.plain_len,
            Segment::ZipRun { plain_len, .. } => *plain_len,
            Segment::ZipCentral { plain_len, .. } => *plain_len,
        }
    }
}

/// The analyzer's recipe under construction.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub segments: Vec<Segment>,
    /// When the last segment is a runnable zip member's stream (or a run): the member's
    /// header length, so the next member made alike can start or extend a run.
    last_member: Option<u64>,
}

impl Builder {
    /// Record `n` verbatim bytes, merged with a copy just before (fewer, larger segments).
    pub(crate) fn copy(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.last_member = None;
        if let Some(Segment::Copy(m)) = self.segments.last_mut() {
            *m += n;
        } else {
            self.segments.push(Segment::Copy(n));
        }
    }

    /// The setting of the last zip member recorded, when it could start or extend a run
    /// (what the next member tries first).
    pub(crate) fn last_setting(&self) -> Option<Segment> {
        self.last_member?;
        match self.segments.last()? {
            Segment::ZipRun { setting, .. } => Some((**setting).clone()),
            s => s.setting(),
        }
    }

    /// Record one zip member: its local header of `header_len` bytes (already in the plain
    /// form, not yet in the recipe) and its stream's segment. `runnable`: the header's
    /// sizes are the stream's (so a rebuild can read them there). Members made with the
    /// same setting as the member before join one run; a run is only written for two or
    /// more members (one member is cheaper, and older hosts read it), so the first
    /// runnable member is recorded as usual and remembered.
    pub(crate) fn zip_member(&mut self, header_len: u64, seg: Segment, runnable: bool) {
        let setting = if runnable { seg.setting() } else { None };
        let Some(setting) = setting else {
            self.copy(header_len);
            self.segments.push(seg);
            self.last_member = None;
            return;
        };
        let member_plain = header_len + seg.plain_len();
        if let Some(Segment::ZipRun {
            plain_len,
            count,
            setting: run,
        }) = self.segments.last_mut()
            && **run == setting
            && self.last_member.is_some()
        {
            *plain_len += member_plain;
            *count += 1;
            return;
        }
        // The member before, if it was runnable with this setting, becomes the run's first:
        // its header is the tail of the copy before its segment.
        if let Some(prev_header) = self.last_member.take()
            && let Some(prev) = self.segments.last()
            && prev.setting().as_ref() == Some(&setting)
            && let [.., Segment::Copy(before), _] = self.segments.as_slice()
            && *before >= prev_header
        {
            let prev_plain = prev_header + prev.plain_len();
            self.segments.pop();
            if let Some(Segment::Copy(before)) = self.segments.last_mut() {
                *before -= prev_header;
                if *before == 0 {
                    self.segments.pop();
                }
            }
            self.segments.push(Segment::ZipRun {
                plain_len: prev_plain + member_plain,
                count: 2,
                setting: Box::new(setting),
            });
            self.last_member = Some(header_len);
            return;
        }
        self.copy(header_len);
        self.segments.push(seg);
        self.last_member = Some(header_len);
    }

    /// Record a zip's central directory, `count` entries in `plain_len` plain bytes (already
    /// in the plain form, relative to their local headers).
    pub(crate) fn zip_central(&mut self, plain_len: u64, count: u64) {
        self.last_member = None;
        self.segments.push(Segment::ZipCentral { plain_len, count });
    }

    pub(crate) fn encode(&self, format: Format, out_len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        // The oldest version that has every segment used, so older hosts still read it.
        let version = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::ZipCentral { .. } => VERSION,
                Segment::ZipRun { .. } => RUN_VERSION,
                Segment::RustFlate(r) if r.tar => RUN_VERSION,
                Segment::RustFlate(_) => RUST_VERSION,
                Segment::GoFlate(_) => GO_VERSION,
                _ => MIN_VERSION,
            })
            .max()
            .unwrap_or(MIN_VERSION);
        out.push(version);
        out.push(format_byte(format));
        let plain: u64 = self.segments.iter().map(Segment::plain_len).sum();
        put_varint(&mut out, plain);
        put_varint(&mut out, out_len);
        put_varint(&mut out, self.segments.len() as u64);
        for seg in &self.segments {
            match seg {
                Segment::Copy(n) => {
                    out.push(TAG_COPY);
                    put_varint(&mut out, *n);
                }
                Segment::Deflate(chunks) => {
                    out.push(TAG_DEFLATE);
                    put_varint(&mut out, chunks.len() as u64);
                    for c in chunks {
                        put_varint(&mut out, c.plain_len);
                        put_varint(&mut out, c.corrections.len() as u64);
                        out.extend_from_slice(&c.corrections);
                    }
                }
                Segment::Zstd(p) => {
                    out.push(TAG_ZSTD);
                    put_varint(&mut out, p.plain_len);
                    put_varint(&mut out, u64::from(p.version));
                    put_varint(&mut out, zigzag(p.level));
                    out.push(u8::from(p.checksum) | (u8::from(p.content_size) << 1));
                }
                Segment::Raw(r) => {
                    out.push(TAG_RAW);
                    put_varint(&mut out, r.plain_len);
                    out.extend_from_slice(&r.crc.to_le_bytes());
                    put_varint(&mut out, r.deflate.len() as u64);
                    out.extend_from_slice(&r.deflate);
                }
                Segment::Zlib(_) | Segment::GoFlate(_) | Segment::RustFlate(_) => {
                    put_setting(&mut out, seg, Some(seg.plain_len()));
                }
                Segment::ZipRun {
                    plain_len,
                    count,
                    setting,
                } => {
                    out.push(TAG_ZIP_RUN);
                    put_varint(&mut out, *plain_len);
                    put_varint(&mut out, *count);
                    put_setting(&mut out, setting, None);
                }
                Segment::ZipCentral { plain_len, count } => {
                    out.push(TAG_ZIP_CENTRAL);
                    put_varint(&mut out, *plain_len);
                    put_varint(&mut out, *count);
                }
            }
        }
        out
    }
}

/// Write a zlib, Go or Rust-encoder segment: its tag, its plain length (`None` inside a
/// zip member run, where each member's comes from its header), then its setting.
fn put_setting(out: &mut Vec<u8>, seg: &Segment, plain_len: Option<u64>) {
    let tag = match seg {
        Segment::Zlib(_) => TAG_ZLIB,
        Segment::GoFlate(_) => TAG_GOFLATE,
        Segment::RustFlate(r) if r.tar => TAG_RUST_TAR,
        Segment::RustFlate(r) => encoder_tag(r.encoder),
        // Only the three kinds above have a setting (see `Segment::setting`).
        _ => return,
    };
    out.push(tag);
    if let Some(n) = plain_len {
        put_varint(out, n);
    }
    if let Segment::RustFlate(r) = seg
        && r.tar
    {
        out.push(encoder_tag(r.encoder));
    }
    match seg {
        Segment::Zlib(z) => {
            // The analyzer only records the linked zlib's version, which is short.
            let v = &z.version.as_bytes()[..z.version.len().min(MAX_ZLIB_VERSION)];
            out.push(v.len() as u8);
            out.extend_from_slice(v);
            let p = &z.params;
            out.extend_from_slice(&[p.level, p.mem_level, p.window_bits, p.strategy]);
        }
        Segment::GoFlate(g) => {
            // The analyzer only records our own port's identity, which is short.
            let id = &g.port.as_bytes()[..g.port.len().min(MAX_GO_PORT_ID)];
            out.push(id.len() as u8);
            out.extend_from_slice(id);
            put_varint(out, zigzag(g.level));
        }
        Segment::RustFlate(r) => {
            // The analyzer only records our own encoders' identities, which are short.
            let id = &r.id.as_bytes()[..r.id.len().min(MAX_RUST_ID)];
            out.push(id.len() as u8);
            out.extend_from_slice(id);
            out.push(r.level);
            put_varint(out, r.feed);
        }
        _ => {}
    }
}

fn encoder_tag(e: Encoder) -> u8 {
    match e {
        Encoder::Miniz => TAG_MINIZ,
        Encoder::ZlibRs => TAG_ZLIB_RS,
    }
}

fn format_byte(f: Format) -> u8 {
    match f {
        Format::Gzip => 0,
        Format::Zip => 1,
        Format::Zstd => 2,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn malformed(message: impl Into<String>) -> RecompressError {
    RecompressError::Malformed {
        what: "recipe",
        message: message.into(),
    }
}

/// The recipe's fixed header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub format: Format,
    pub plain_len: u64,
    pub out_len: u64,
    pub segments: u64,
}

/// A segment as the reader sees it (borrowing the recipe).
#[derive(Debug)]
pub(crate) enum SegmentRef<'a> {
    Copy(u64),
    /// A deflate stream of `chunks` chunks; read them with [`Reader::chunk`].
    Deflate {
        chunks: u64,
    },
    Zstd(ZstdParams),
    Zlib(ZlibSegment<&'a [u8]>),
    Raw(RawSegment<&'a [u8]>),
    GoFlate(GoFlateSegment<&'a [u8]>),
    RustFlate(RustFlateSegment<&'a [u8]>),
    /// `count` zip members of `plain_len` plain bytes in all, each stream made with
    /// `setting` (whose `plain_len` is 0: each member's is in its local header).
    ZipRun {
        plain_len: u64,
        count: u64,
        setting: RunSetting<'a>,
    },
    /// A zip's central directory: `count` entries, `plain_len` plain bytes.
    ZipCentral {
        plain_len: u64,
        count: u64,
    },
}

/// The deflate setting a zip member run shares (its `plain_len` is 0).
#[derive(Debug, Clone)]
pub(crate) enum RunSetting<'a> {
    Zlib(ZlibSegment<&'a [u8]>),
    GoFlate(GoFlateSegment<&'a [u8]>),
    RustFlate(RustFlateSegment<&'a [u8]>),
}

/// A checked cursor over untrusted recipe bytes.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The header's version once read (segment 6 needs version 3, 7 and 8 version 4).
    version: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            version: 0,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| malformed(format!("truncated at byte {}", self.pos)))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| malformed("length past the address space"))?;
        if n > self.remaining() {
            return Err(malformed(format!(
                "a field of {n} bytes at byte {} runs past the end ({} left)",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(malformed("varint past 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    pub(crate) fn header(&mut self, limits: &Limits) -> Result<Header> {
        if self.bytes(4)? != MAGIC {
            return Err(malformed("not an ouk recompression recipe (bad magic)"));
        }
        let version = self.byte()?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(RecompressError::Unsupported(format!(
                "recipe version {version} (this ouk reads versions {MIN_VERSION} to {VERSION})"
            )));
        }
        self.version = version;
        let format = match self.byte()? {
            0 => Format::Gzip,
            1 => Format::Zip,
            2 => Format::Zstd,
            b => return Err(malformed(format!("unknown format {b}"))),
        };
        let plain_len = self.varint()?;
        let out_len = self.varint()?;
        let segments = self.varint()?;
        if plain_len > limits.max_plain {
            return Err(RecompressError::TooLarge(format!(
                "recipe asks for a plain form of {plain_len} bytes, past the {}-byte limit",
                limits.max_plain
            )));
        }
        let max_out = max_output(limits);
        if out_len > max_out {
            return Err(RecompressError::TooLarge(format!(
                "recipe asks for {out_len} bytes of output, past the {max_out}-byte limit"
            )));
        }
        crate::sink::check_bounds(limits, plain_len, out_len)?;
        // Every segment takes at least two bytes, so a count past that is a lie (and is
        // refused before anything loops over it).
        if segments > (self.remaining() / 2) as u64 {
            return Err(malformed(format!(
                "{segments} segments cannot fit in {} bytes",
                self.remaining()
            )));
        }
        Ok(Header {
            format,
            plain_len,
            out_len,
            segments,
        })
    }

    pub(crate) fn segment(&mut self) -> Result<SegmentRef<'a>> {
        match self.byte()? {
            TAG_COPY => {
                let n = self.varint()?;
                if n == 0 {
                    return Err(malformed("empty copy segment"));
                }
                Ok(SegmentRef::Copy(n))
            }
            TAG_DEFLATE => {
                let chunks = self.varint()?;
                if chunks == 0 || chunks > (self.remaining() / 2) as u64 {
                    return Err(malformed(format!("{chunks} deflate chunks")));
                }
                Ok(SegmentRef::Deflate { chunks })
            }
            TAG_ZSTD => {
                let plain_len = self.varint()?;
                let version = u32::try_from(self.varint()?)
                    .map_err(|_| malformed("zstd version past 32 bits"))?;
                let level = unzigzag(self.varint()?)
                    .filter(|l| ZSTD_LEVELS.contains(l))
                    .ok_or_else(|| malformed("zstd level out of range"))?;
                let flags = self.byte()?;
                if flags & !3 != 0 {
                    return Err(malformed(format!("unknown zstd flags {flags:#x}")));
                }
                Ok(SegmentRef::Zstd(ZstdParams {
                    plain_len,
                    version,
                    level,
                    checksum: flags & 1 != 0,
                    content_size: flags & 2 != 0,
                }))
            }
            TAG_RAW => {
                let plain_len = self.varint()?;
                let c = self.bytes(4)?;
                let crc = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let n = self.varint()?;
                if n == 0 || n > MAX_RAW {
                    return Err(malformed(format!(
                        "verbatim deflate stream of {n} bytes (1 to {MAX_RAW})"
                    )));
                }
                let deflate = self.bytes(n)?;
                Ok(SegmentRef::Raw(RawSegment {
                    plain_len,
                    crc,
                    deflate,
                }))
            }
            tag @ (TAG_ZLIB | TAG_GOFLATE | TAG_MINIZ | TAG_ZLIB_RS | TAG_RUST_TAR) => {
                let plain_len = self.varint()?;
                self.setting(tag, plain_len)
            }
            TAG_ZIP_RUN if self.version >= RUN_VERSION => {
                let plain_len = self.varint()?;
                let count = self.varint()?;
                // Every member has at least a fixed-size local header in the plain form,
                // so the count is bounded by the run's plain length (checked against the
                // header's by `validate`).
                if count == 0 || count > plain_len / ZIP_LOCAL_MIN {
                    return Err(malformed(format!(
                        "a zip member run of {count} members in {plain_len} plain bytes"
                    )));
                }
                let tag = self.byte()?;
                let setting = match self.setting(tag, 0)? {
                    SegmentRef::Zlib(z) => RunSetting::Zlib(z),
                    SegmentRef::GoFlate(g) => RunSetting::GoFlate(g),
                    SegmentRef::RustFlate(r) => RunSetting::RustFlate(r),
                    _ => {
                        return Err(malformed(format!(
                            "a zip member run with segment tag {tag} (4, 6, 7 or 8)"
                        )));
                    }
                };
                Ok(SegmentRef::ZipRun {
                    plain_len,
                    count,
                    setting,
                })
            }
            TAG_ZIP_CENTRAL if self.version >= VERSION => {
                let plain_len = self.varint()?;
                let count = self.varint()?;
                // Every entry has at least its fixed part in the plain form, so the count
                // is bounded by the segment's plain length (checked against the header's
                // by `validate`).
                if count == 0 || count > plain_len / crate::zip::CENTRAL_MIN {
                    return Err(malformed(format!(
                        "a zip central directory of {count} entries in {plain_len} plain bytes"
                    )));
                }
                Ok(SegmentRef::ZipCentral { plain_len, count })
            }
            TAG_ZIP_CENTRAL => Err(malformed(format!(
                "segment tag {TAG_ZIP_CENTRAL} in a version {} recipe (it needs version {VERSION})",
                self.version
            ))),
            TAG_ZIP_RUN => Err(malformed(format!(
                "segment tag {TAG_ZIP_RUN} in a version {} recipe (it needs version {RUN_VERSION})",
                self.version
            ))),
            t => Err(malformed(format!("unknown segment tag {t}"))),
        }
    }

    /// The setting of a zlib, Go or Rust-encoder segment `tag` (its fields after the plain
    /// length), for a stream of `plain_len` plain bytes; every field is range-checked here.
    fn setting(&mut self, tag: u8, plain_len: u64) -> Result<SegmentRef<'a>> {
        match tag {
            TAG_ZLIB => {
                let vlen = self.byte()?;
                if usize::from(vlen) > MAX_ZLIB_VERSION {
                    return Err(malformed(format!("zlib version of {vlen} bytes")));
                }
                let version = self.bytes(u64::from(vlen))?;
                let b = self.bytes(4)?;
                let params = ZlibParams {
                    level: b[0],
                    mem_level: b[1],
                    window_bits: b[2],
                    strategy: b[3],
                };
                // Absurd parameters are refused here, before zlib ever sees them.
                params.check().map_err(malformed)?;
                Ok(SegmentRef::Zlib(ZlibSegment {
                    plain_len,
                    version,
                    params,
                }))
            }
            TAG_RUST_TAR if self.version >= RUN_VERSION => {
                let tag = self.byte()?;
                if tag != TAG_MINIZ && tag != TAG_ZLIB_RS {
                    return Err(malformed(format!(
                        "a tar-fed Rust encoder segment naming tag {tag} (7 or 8)"
                    )));
                }
                self.rust_setting(tag, plain_len, true)
            }
            TAG_RUST_TAR => Err(malformed(format!(
                "segment tag {TAG_RUST_TAR} in a version {} recipe (it needs version {RUN_VERSION})",
                self.version
            ))),
            tag @ (TAG_MINIZ | TAG_ZLIB_RS) if self.version >= RUST_VERSION => {
                self.rust_setting(tag, plain_len, false)
            }
            tag @ (TAG_MINIZ | TAG_ZLIB_RS) => Err(malformed(format!(
                "segment tag {tag} in a version {} recipe (it needs version 4)",
                self.version
            ))),
            TAG_GOFLATE if self.version >= GO_VERSION => {
                let plen = self.byte()?;
                if usize::from(plen) > MAX_GO_PORT_ID {
                    return Err(malformed(format!("Go port identity of {plen} bytes")));
                }
                let port = self.bytes(u64::from(plen))?;
                // The level picks the port's code path and table sizes: anything but Go's
                // own levels is refused here, before a deflater is made. -1 is Go's alias
                // of 6, which the analyzer never writes: one stream, one recipe.
                let level = unzigzag(self.varint()?)
                    .filter(|l| crate::goflate::LEVELS_BY_LIKELIHOOD.contains(l))
                    .ok_or_else(|| malformed("Go deflate level out of range (-2, 0 to 9)"))?;
                // Checked here, not at rebuild time, so a recipe from another port is
                // refused by `validate` before anything is written.
                if port != crate::goflate::PORT_ID.as_bytes() {
                    return Err(RecompressError::Unsupported(format!(
                        "a deflate stream made with the Go deflate port {:?} (this ouk has {:?})",
                        String::from_utf8_lossy(port),
                        crate::goflate::PORT_ID
                    )));
                }
                Ok(SegmentRef::GoFlate(GoFlateSegment {
                    plain_len,
                    port,
                    level,
                }))
            }
            TAG_GOFLATE => Err(malformed(format!(
                "segment tag {TAG_GOFLATE} in a version {} recipe (it needs version 3)",
                self.version
            ))),
            t => Err(malformed(format!("unknown deflate setting tag {t}"))),
        }
    }

    /// A Rust-encoder setting (segment tag 7 or 8; `tar`: fed as segment 10 says).
    fn rust_setting(&mut self, tag: u8, plain_len: u64, tar: bool) -> Result<SegmentRef<'a>> {
        let encoder = if tag == TAG_MINIZ {
            Encoder::Miniz
        } else {
            Encoder::ZlibRs
        };

        let ilen = self.byte()?;
        if usize::from(ilen) > MAX_RUST_ID {
            return Err(malformed(format!("encoder identity of {ilen} bytes")));
        }
        let id = self.bytes(u64::from(ilen))?;
        // The level picks the encoder's tables and code path: out of its range is
        // refused here, before an encoder is made.
        let level = self.byte()?;
        crate::rustflate::check_level(encoder, level).map_err(malformed)?;
        // The rebuild holds one piece of `feed` plain bytes.
        let feed = self.varint()?;
        if feed == 0 || feed > MAX_FEED {
            return Err(malformed(format!(
                "encoder feed of {feed} bytes (1 to {MAX_FEED})"
            )));
        }
        // Checked here, not at rebuild time, so a recipe from another version is
        // refused by `validate` before anything is written.
        if id != encoder.id().as_bytes() {
            return Err(RecompressError::Unsupported(format!(
                "a deflate stream made with {:?} (this ouk has {:?})",
                String::from_utf8_lossy(id),
                encoder.id()
            )));
        }
        Ok(SegmentRef::RustFlate(RustFlateSegment {
            plain_len,
            encoder,
            id,
            level,
            feed,
            tar,
        }))
    }

    /// One chunk of the current deflate segment.
    pub(crate) fn chunk(&mut self) -> Result<Chunk<&'a [u8]>> {
        let plain_len = self.varint()?;
        if plain_len > MAX_CHUNK_PLAIN {
            return Err(malformed(format!(
                "deflate chunk of {plain_len} plain bytes (at most {MAX_CHUNK_PLAIN})"
            )));
        }
        let n = self.varint()?;
        let corrections = self.bytes(n)?;
        Ok(Chunk {
            plain_len,
            corrections,
        })
    }

    /// After the last segment: nothing may follow.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(malformed(format!(
                "{} bytes after the last segment",
                self.remaining()
            )));
        }
        Ok(())
    }
}

/// The most output a rebuild may write: the plain bound plus room for what compression
/// adds to incompressible data (stored deflate blocks, zstd raw blocks, headers).
pub(crate) fn max_output(limits: &Limits) -> u64 {
    limits
        .max_plain
        .saturating_add(limits.max_plain / 16)
        .saturating_add(1 << 20)
}

/// Check a recipe's structure without rebuilding anything: the header, every segment,
/// and that the segments' plain lengths add up to the header's. Returns the header.
pub(crate) fn validate(recipe: &[u8], limits: &Limits) -> Result<Header> {
    let mut r = Reader::new(recipe);
    let header = r.header(limits)?;
    let mut plain: u64 = 0;
    let mut add = |n: u64| -> Result<()> {
        plain = plain
            .checked_add(n)
            .filter(|p| *p <= header.plain_len)
            .ok_or_else(|| malformed("segments add up to more than the header's plain length"))?;
        Ok(())
    };
    for _ in 0..header.segments {
        match r.segment()? {
            SegmentRef::Copy(n) => add(n)?,
            SegmentRef::Zstd(p) => add(p.plain_len)?,
            SegmentRef::Zlib(z) => add(z.plain_len)?,
            SegmentRef::Raw(r) => add(r.plain_len)?,
            SegmentRef::GoFlate(g) => add(g.plain_len)?,
            SegmentRef::RustFlate(r) => add(r.plain_len)?,
            SegmentRef::ZipRun { plain_len, .. } => add(plain_len)?,
            SegmentRef::ZipCentral { plain_len, .. } => add(plain_len)?,
            SegmentRef::Deflate { chunks } => {
                for _ in 0..chunks {
                    add(r.chunk()?.plain_len)?;
                }
            }
        }
    }
    r.finish()?;
    if plain != header.plain_len {
        return Err(malformed(format!(
            "segments add up to {plain} plain bytes, the header says {}",
            header.plain_len
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
        for l in [-7, -1, 0, 1, 3, 19, i32::MIN, i32::MAX] {
            assert_eq!(unzigzag(zigzag(l)), Some(l));
        }
        // 11 continuation bytes and an 10th byte past bit 63 are refused
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Reader::new(&over).varint().is_err());
    }

    #[test]
    fn builder_output_validates() {
        let mut b = Builder::default();
        b.copy(10);
        b.copy(5);
        b.segments.push(Segment::Deflate(vec![Chunk {
            plain_len: 7,
            corrections: vec![1, 2, 3],
        }]));
        b.segments.push(Segment::Zstd(ZstdParams {
            plain_len: 9,
            version: 10507,
            level: -3,
            checksum: true,
            content_size: false,
        }));
        let bytes = b.encode(Format::Gzip, 40);
        let h = validate(&bytes, &Limits::default()).unwrap();
        assert_eq!((h.plain_len, h.out_len, h.segments), (31, 40, 3));
        // a one-byte-shorter recipe is refused, never a panic
        assert!(validate(&bytes[..bytes.len() - 1], &Limits::default()).is_err());
    }

    #[test]
    fn version_3_only_when_a_go_segment_needs_it() {
        let mut b = Builder::default();
        b.copy(10);
        let v2 = b.encode(Format::Gzip, 10);
        assert_eq!(v2[4], MIN_VERSION);
        validate(&v2, &Limits::default()).unwrap();
        b.segments.push(Segment::GoFlate(GoFlateSegment {
            plain_len: 300,
            port: crate::goflate::PORT_ID,
            level: -2,
        }));
        let v3 = b.encode(Format::Gzip, 400);
        assert_eq!(v3[4], GO_VERSION);
        let h = validate(&v3, &Limits::default()).unwrap();
        assert_eq!((h.plain_len, h.segments), (310, 2));
        // the same segment under a version 2 header is refused
        let mut downgraded = v3.clone();
        downgraded[4] = MIN_VERSION;
        assert!(matches!(
            validate(&downgraded, &Limits::default()),
            Err(RecompressError::Malformed { .. })
        ));
    }

    fn rust_recipe(encoder: Encoder, level: u8, feed: u64) -> Vec<u8> {
        let mut b = Builder::default();
        b.copy(10);
        b.segments.push(Segment::RustFlate(RustFlateSegment {
            plain_len: 300,
            encoder,
            id: encoder.id(),
            level,
            feed,
            tar: false,
        }));
        b.encode(Format::Gzip, 400)
    }

    #[test]
    fn version_4_only_when_a_rust_segment_needs_it_and_hostile_fields_are_refused() {
        for enc in [Encoder::Miniz, Encoder::ZlibRs] {
            let v4 = rust_recipe(enc, 6, 300);
            assert_eq!(v4[4], RUST_VERSION);
            validate(&v4, &Limits::default()).unwrap();
            // the same segment under a version 3 header is refused
            let mut downgraded = v4.clone();
            downgraded[4] = GO_VERSION;
            assert!(matches!(
                validate(&downgraded, &Limits::default()),
                Err(RecompressError::Malformed { .. })
            ));
            // a level past the encoder's range, a zero or huge feed: Malformed
            let bad = rust_recipe(enc, enc.max_level() + 1, 300);
            assert!(matches!(
                validate(&bad, &Limits::default()),
                Err(RecompressError::Malformed { .. })
            ));
            for feed in [0, MAX_FEED + 1] {
                assert!(matches!(
                    validate(&rust_recipe(enc, 6, feed), &Limits::default()),
                    Err(RecompressError::Malformed { .. })
                ));
            }
            // another version of the encoder: Unsupported, naming it
            let id = enc.id().as_bytes();
            let at = v4.windows(id.len()).position(|w| w == id).unwrap();
            let mut other = v4.clone();
            other[at + id.len() - 1] = b'7';
            match validate(&other, &Limits::default()) {
                Err(RecompressError::Unsupported(m)) => assert!(m.contains(enc.id()), "{m}"),
                r => panic!("{r:?}"),
            }
        }
    }

    fn zlib6(plain_len: u64) -> Segment {
        Segment::Zlib(ZlibSegment {
            plain_len,
            version: "1.3.1".into(),
            params: ZlibParams {
                level: 6,
                mem_level: 8,
                window_bits: 15,
                strategy: 0,
            },
        })
    }

    #[test]
    fn zip_members_made_alike_become_one_run_of_version_5() {
        let mut b = Builder::default();
        // A stored member's bytes before: the first deflated member's header is split off
        // that copy when the second member starts the run.
        b.copy(100);
        b.zip_member(40, zlib6(1000), true);
        assert_eq!(
            b.encode(Format::Zip, 2000)[4],
            MIN_VERSION,
            "one member: no run"
        );
        b.zip_member(41, zlib6(2000), true);
        b.zip_member(42, zlib6(3000), true);
        b.copy(22);
        match &b.segments[..] {
            [
                Segment::Copy(100),
                Segment::ZipRun {
                    plain_len: 6123,
                    count: 3,
                    setting,
                },
                Segment::Copy(22),
            ] => assert_eq!(**setting, zlib6(0)),
            s => panic!("{s:?}"),
        }
        let bytes = b.encode(Format::Zip, 9000);
        assert_eq!(bytes[4], RUN_VERSION);
        let h = validate(&bytes, &Limits::default()).unwrap();
        assert_eq!((h.plain_len, h.segments), (6245, 3));
        // Under a version 4 header the run is refused.
        let mut old = bytes.clone();
        old[4] = RUST_VERSION;
        assert!(matches!(
            validate(&old, &Limits::default()),
            Err(RecompressError::Malformed { .. })
        ));
    }

    #[test]
    fn a_member_made_otherwise_or_not_runnable_ends_the_run() {
        let mut b = Builder::default();
        b.zip_member(30, zlib6(100), true);
        b.zip_member(30, zlib6(100), true);
        // Another level: a new member, not in the run.
        let other = match zlib6(100) {
            Segment::Zlib(mut z) => {
                z.params.level = 9;
                Segment::Zlib(z)
            }
            s => s,
        };
        b.zip_member(30, other.clone(), true);
        // Sizes not in its header (a data descriptor): never in a run.
        b.zip_member(30, zlib6(100), false);
        b.zip_member(30, zlib6(100), true);
        assert!(matches!(
            &b.segments[..],
            [
                Segment::ZipRun { count: 2, .. },
                Segment::Copy(30),
                Segment::Zlib(_),
                Segment::Copy(30),
                Segment::Zlib(_),
                Segment::Copy(30),
                Segment::Zlib(_),
            ]
        ));
        let bytes = b.encode(Format::Zip, 1000);
        assert_eq!(validate(&bytes, &Limits::default()).unwrap().plain_len, 650);
    }

    #[test]
    fn a_rust_encoder_fed_whole_streams_is_one_setting() {
        let seg = |plain_len, feed| {
            Segment::RustFlate(RustFlateSegment {
                plain_len,
                encoder: Encoder::ZlibRs,
                id: Encoder::ZlibRs.id(),
                level: 6,
                feed,
                tar: false,
            })
        };
        // Two members each fed whole (feed = their length) share the largest feed.
        assert_eq!(seg(100, 100).setting(), seg(5000, 5000).setting());
        // A stream fed in 8 KiB pieces keeps its feed.
        assert_ne!(seg(100_000, 8192).setting(), seg(5000, 5000).setting());
    }
}
