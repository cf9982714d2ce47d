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
//! ```
//!
//! Versions: 2 has segments 1-5; 3 adds segment 6; 4 adds segments 7 and 8 (written only
//! when a recipe holds one, as 3 is only for segment 6; a version 3 recipe with segment 7
//! or 8 is refused). The writer writes 3 only when a recipe
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
/// The newest recipe version, written when a recipe needs it (a Rust-encoder segment).
pub(crate) const VERSION: u8 = 4;
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
    /// 1..=[`crate::rustflate::MAX_FEED`].
    pub feed: u64,
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
}

impl Segment {
    fn plain_len(&self) -> u64 {
        match self {
            Segment::Copy(n) => *n,
            Segment::Deflate(chunks) => chunks.iter().map(|c| c.plain_len).sum(),
            Segment::Zstd(p) => p.plain_len,
            Segment::Zlib(z) => z.plain_len,
            Segment::Raw(r) => r.plain_len,
            Segment::GoFlate(g) => g.plain_len,
            Segment::RustFlate(r) => r.plain_len,
        }
    }
}

/// The analyzer's recipe under construction.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub segments: Vec<Segment>,
}

impl Builder {
    /// Record `n` verbatim bytes, merged with a copy just before (fewer, larger segments).
    pub(crate) fn copy(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(Segment::Copy(m)) = self.segments.last_mut() {
            *m += n;
        } else {
            self.segments.push(Segment::Copy(n));
        }
    }

    pub(crate) fn encode(&self, format: Format, out_len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        // The oldest version that has every segment used, so older hosts still read it.
        let version = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::RustFlate(_) => VERSION,
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
                Segment::Zlib(z) => {
                    out.push(TAG_ZLIB);
                    put_varint(&mut out, z.plain_len);
                    // The analyzer only records the linked zlib's version, which is short.
                    let v = &z.version.as_bytes()[..z.version.len().min(MAX_ZLIB_VERSION)];
                    out.push(v.len() as u8);
                    out.extend_from_slice(v);
                    let p = &z.params;
                    out.extend_from_slice(&[p.level, p.mem_level, p.window_bits, p.strategy]);
                }
                Segment::Raw(r) => {
                    out.push(TAG_RAW);
                    put_varint(&mut out, r.plain_len);
                    out.extend_from_slice(&r.crc.to_le_bytes());
                    put_varint(&mut out, r.deflate.len() as u64);
                    out.extend_from_slice(&r.deflate);
                }
                Segment::GoFlate(g) => {
                    out.push(TAG_GOFLATE);
                    put_varint(&mut out, g.plain_len);
                    // The analyzer only records our own port's identity, which is short.
                    let id = &g.port.as_bytes()[..g.port.len().min(MAX_GO_PORT_ID)];
                    out.push(id.len() as u8);
                    out.extend_from_slice(id);
                    put_varint(&mut out, zigzag(g.level));
                }
                Segment::RustFlate(r) => {
                    out.push(match r.encoder {
                        Encoder::Miniz => TAG_MINIZ,
                        Encoder::ZlibRs => TAG_ZLIB_RS,
                    });
                    put_varint(&mut out, r.plain_len);
                    // The analyzer only records our own encoders' identities, which are short.
                    let id = &r.id.as_bytes()[..r.id.len().min(MAX_RUST_ID)];
                    out.push(id.len() as u8);
                    out.extend_from_slice(id);
                    out.push(r.level);
                    put_varint(&mut out, r.feed);
                }
            }
        }
        out
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
            TAG_ZLIB => {
                let plain_len = self.varint()?;
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
            tag @ (TAG_MINIZ | TAG_ZLIB_RS) if self.version >= 4 => {
                let encoder = if tag == TAG_MINIZ {
                    Encoder::Miniz
                } else {
                    Encoder::ZlibRs
                };
                let plain_len = self.varint()?;
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
                }))
            }
            tag @ (TAG_MINIZ | TAG_ZLIB_RS) => Err(malformed(format!(
                "segment tag {tag} in a version {} recipe (it needs version 4)",
                self.version
            ))),
            TAG_GOFLATE if self.version >= GO_VERSION => {
                let plain_len = self.varint()?;
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
            t => Err(malformed(format!("unknown segment tag {t}"))),
        }
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
        }));
        b.encode(Format::Gzip, 400)
    }

    #[test]
    fn version_4_only_when_a_rust_segment_needs_it_and_hostile_fields_are_refused() {
        for enc in [Encoder::Miniz, Encoder::ZlibRs] {
            let v4 = rust_recipe(enc, 6, 300);
            assert_eq!(v4[4], VERSION);
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
}
