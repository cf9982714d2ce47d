//! zstd frames (RFC 8878): one or more frames, skippable frames, then optional trailing
//! bytes.
//!
//! Plain form: the decoded content of each zstd frame (its header is not kept: it is
//! re-created by re-encoding), skippable frames verbatim, and anything after the last frame
//! verbatim. Analysis keeps the frame's compressed bytes in a [`Spool`] (memory, then an
//! unlinked temporary file) and re-encodes the decoded content with the bundled libzstd at
//! candidate levels, comparing as it goes and stopping at the first difference; a level
//! that gives the frame byte for byte is recorded with the libzstd version, and only that
//! version rebuilds it.
//!
//! Invariants: frames are delimited by their own block headers (a block is at most
//! 128 KiB, so look-ahead stays small); frames needing a dictionary are refused; the
//! candidate search is bounded by a work budget ([`TRIAL_BUDGET`] times the plain size);
//! decoded bytes pass through the [`Sink`] bounds before being written.

use std::io::Read;

use zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd_safe::{CCtx, CParameter, DCtx, InBuffer, OutBuffer};

use crate::input::Input;
use crate::recipe::{Segment, ZstdParams};
use crate::sink::{OutMeter, Sink, read_plain};
use crate::spool::Spool;
use crate::{RecompressError, Result};

const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const MAX_BLOCK: usize = 128 << 10;
const STEP: usize = 128 << 10;

/// Levels tried, most likely first: the library and CLI default, the CLI's usual "-19",
/// then the rest.
const CANDIDATES: [i32; 26] = [
    3, 19, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, -1, -2, -3, -4, -5, -6, -7,
];

/// Candidate trials may together feed at most this many times the frame's plain size (plus
/// [`TRIAL_SLACK`]) to encoders; a wrong level usually differs in its first block, so this
/// is rarely reached.
const TRIAL_BUDGET: u64 = 8;
const TRIAL_SLACK: u64 = 64 << 20;

fn malformed(message: String) -> RecompressError {
    RecompressError::Malformed {
        what: "zstd",
        message,
    }
}

fn zerr(code: usize) -> String {
    zstd_safe::get_error_name(code).to_string()
}

fn is_skippable(head: &[u8]) -> bool {
    matches!(head, [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50)
}

pub(crate) fn walk(input: &mut Input<'_>, sink: &mut Sink<'_>) -> Result<()> {
    loop {
        let have = input.fill(8)?;
        if have == 0 {
            return Ok(());
        }
        let head = input.peek();
        if head.starts_with(&MAGIC) {
            frame(input, sink)?;
        } else if have >= 8 && is_skippable(head) {
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            sink.copy(input, 8 + u64::from(size), "zstd")?;
        } else {
            return sink.copy_rest(input);
        }
    }
}

/// What a frame header says.
struct Header {
    len: usize,
    checksum: bool,
    content_size: bool,
}

fn header(input: &mut Input<'_>) -> Result<Header> {
    if input.fill(5)? < 5 {
        return Err(malformed("truncated frame header".into()));
    }
    let fhd = input.peek()[4];
    if fhd & 0x08 != 0 {
        return Err(malformed("reserved frame header bit set".into()));
    }
    let fcs_flag = fhd >> 6;
    let single = fhd & 0x20 != 0;
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = match fcs_flag {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let len = 5 + usize::from(!single) + did + fcs;
    if input.fill(len)? < len {
        return Err(malformed("truncated frame header".into()));
    }
    if did > 0
        && input.peek()[5 + usize::from(!single)..][..did]
            .iter()
            .any(|&b| b != 0)
    {
        return Err(RecompressError::Unsupported(
            "a zstd frame that needs a dictionary".into(),
        ));
    }
    Ok(Header {
        len,
        checksum: fhd & 0x04 != 0,
        content_size: fcs > 0,
    })
}

/// Decodes frame bytes as they come, writing the content through the sink.
struct Decoder {
    dctx: DCtx<'static>,
    out: Vec<u8>,
    plain_len: u64,
}

impl Decoder {
    fn new() -> Self {
        Decoder {
            dctx: DCtx::create(),
            out: vec![0u8; STEP],
            plain_len: 0,
        }
    }

    /// Feed `bytes`; `emit` gets each decoded piece. Returns libzstd's hint (0: frame done).
    fn feed(&mut self, bytes: &[u8], emit: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let mut inb = InBuffer::around(bytes);
        loop {
            let mut outb = OutBuffer::around(&mut self.out[..]);
            let hint = self
                .dctx
                .decompress_stream(&mut outb, &mut inb)
                .map_err(|c| malformed(zerr(c)))?;
            let n = outb.pos();
            self.plain_len += n as u64;
            emit(&self.out[..n])?;
            if inb.pos() == bytes.len() && n < self.out.len() {
                return Ok(hint);
            }
        }
    }
}

fn frame(input: &mut Input<'_>, sink: &mut Sink<'_>) -> Result<()> {
    let start = input.consumed();
    let h = header(input)?;
    let analyzing = sink.recipe().is_some();
    let mut spool = analyzing.then(Spool::default);
    let mut dec = Decoder::new();
    let mut piece = |input: &mut Input<'_>, sink: &mut Sink<'_>, n: usize| -> Result<usize> {
        let bytes = input.take(n, "zstd")?;
        if let Some(s) = spool.as_mut() {
            s.push(&bytes)?;
        }
        let consumed = input.consumed();
        dec.feed(&bytes, &mut |p| sink.decoded(p, consumed))
    };
    piece(input, sink, h.len)?;
    let mut hint;
    loop {
        if input.fill(3)? < 3 {
            return Err(malformed("truncated block header".into()));
        }
        let b = input.peek();
        let v = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        let last = v & 1 != 0;
        let size = (v >> 3) as usize;
        let body = match (v >> 1) & 3 {
            0 | 2 if size <= MAX_BLOCK => size,
            1 => 1,
            3 => return Err(malformed("reserved block type".into())),
            _ => return Err(malformed(format!("block of {size} bytes"))),
        };
        hint = piece(input, sink, 3 + body)?;
        if last {
            break;
        }
    }
    if h.checksum {
        hint = piece(input, sink, 4)?;
    }
    if hint != 0 {
        return Err(malformed("frame did not end where its blocks say".into()));
    }
    let plain_len = dec.plain_len;
    if let Some(spool) = spool {
        let params = search(&spool, &h, plain_len, start)?;
        if let Some(b) = sink.recipe() {
            b.segments.push(Segment::Zstd(params));
        }
    }
    Ok(())
}

/// Find a level that re-creates the spooled frame exactly.
fn search(spool: &Spool, h: &Header, plain_len: u64, at: u64) -> Result<ZstdParams> {
    let mut budget = plain_len
        .saturating_mul(TRIAL_BUDGET)
        .saturating_add(TRIAL_SLACK);
    let version = zstd_safe::version_number();
    for level in CANDIDATES {
        let p = ZstdParams {
            plain_len,
            version,
            level,
            checksum: h.checksum,
            content_size: h.content_size,
        };
        match trial(spool, &p, &mut budget)? {
            Trial::Exact => return Ok(p),
            Trial::Differs => {}
            Trial::OutOfBudget => break,
        }
    }
    Err(RecompressError::NotExact(format!(
        "no zstd level of libzstd {} re-creates the frame at offset {at}",
        version_name(version)
    )))
}

enum Trial {
    Exact,
    Differs,
    OutOfBudget,
}

fn encoder(p: &ZstdParams) -> Result<CCtx<'static>> {
    let mut c = CCtx::create();
    let fail = |code| RecompressError::Malformed {
        what: "recipe",
        message: format!("zstd parameters: {}", zerr(code)),
    };
    c.set_parameter(CParameter::CompressionLevel(p.level))
        .map_err(fail)?;
    c.set_parameter(CParameter::ChecksumFlag(p.checksum))
        .map_err(fail)?;
    c.set_parameter(CParameter::ContentSizeFlag(p.content_size))
        .map_err(fail)?;
    if p.content_size {
        c.set_pledged_src_size(Some(p.plain_len)).map_err(fail)?;
    }
    Ok(c)
}

/// Compress `plain` (`end`: the last piece) and hand the output to `emit`. A libzstd error
/// is `NotExact` while analyzing and a malformed recipe while rebuilding (`rebuilding`).
fn encode(
    c: &mut CCtx<'_>,
    plain: &[u8],
    end: bool,
    buf: &mut [u8],
    emit: &mut dyn FnMut(&[u8]) -> Result<bool>,
    rebuilding: bool,
) -> Result<bool> {
    let mut inb = InBuffer::around(plain);
    let op = if end {
        ZSTD_EndDirective::ZSTD_e_end
    } else {
        ZSTD_EndDirective::ZSTD_e_continue
    };
    loop {
        let mut outb = OutBuffer::around(&mut *buf);
        let left = c
            .compress_stream2(&mut outb, &mut inb, op)
            .map_err(|code| {
                let message = format!("libzstd: {}", zerr(code));
                if rebuilding {
                    RecompressError::Malformed {
                        what: "recipe",
                        message,
                    }
                } else {
                    RecompressError::NotExact(message)
                }
            })?;
        let n = outb.pos();
        if !emit(&buf[..n])? {
            return Ok(false);
        }
        let input_done = inb.pos() == plain.len();
        if input_done && if end { left == 0 } else { n < buf.len() } {
            return Ok(true);
        }
    }
}

fn trial(spool: &Spool, p: &ZstdParams, budget: &mut u64) -> Result<Trial> {
    let mut c = encoder(p)?;
    let mut dec = Decoder::new();
    let mut frame = vec![0u8; STEP];
    let mut outbuf = vec![0u8; STEP];
    let mut cmp = vec![0u8; STEP];
    let mut read_pos = 0u64;
    let mut cmp_pos = 0u64;
    let mut same = true;
    let mut compare = |bytes: &[u8]| -> Result<bool> {
        if cmp_pos + bytes.len() as u64 > spool.len() {
            same = false;
            return Ok(false);
        }
        let want = &mut cmp[..bytes.len()];
        spool.read_at(cmp_pos, want)?;
        cmp_pos += bytes.len() as u64;
        same = want == bytes;
        Ok(same)
    };
    while read_pos < spool.len() {
        let n = (spool.len() - read_pos).min(STEP as u64) as usize;
        spool.read_at(read_pos, &mut frame[..n])?;
        read_pos += n as u64;
        let mut ok = true;
        let mut fed = 0u64;
        dec.feed(&frame[..n], &mut |plain| {
            if ok && !plain.is_empty() {
                fed += plain.len() as u64;
                ok = encode(&mut c, plain, false, &mut outbuf, &mut compare, false)?;
            }
            Ok(())
        })?;
        if !ok {
            return Ok(Trial::Differs);
        }
        if fed > *budget {
            return Ok(Trial::OutOfBudget);
        }
        *budget -= fed;
    }
    if !encode(&mut c, &[], true, &mut outbuf, &mut compare, false)? {
        return Ok(Trial::Differs);
    }
    Ok(if same && cmp_pos == spool.len() {
        Trial::Exact
    } else {
        Trial::Differs
    })
}

fn version_name(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// Re-create one frame from `p.plain_len` plain bytes.
pub(crate) fn rebuild(p: &ZstdParams, plain: &mut dyn Read, out: &mut OutMeter<'_>) -> Result<()> {
    let have = zstd_safe::version_number();
    if p.version != have {
        return Err(RecompressError::Unsupported(format!(
            "a zstd frame made with libzstd {} (this ouk has {})",
            version_name(p.version),
            version_name(have)
        )));
    }
    let mut c = encoder(p)?;
    let mut buf = Vec::with_capacity(STEP);
    let mut outbuf = vec![0u8; STEP];
    let mut left = p.plain_len;
    let mut put = |bytes: &[u8]| -> Result<bool> {
        out.put(bytes)?;
        Ok(true)
    };
    while left > 0 {
        let n = left.min(STEP as u64);
        read_plain(plain, n, &mut buf)?;
        left -= n;
        encode(&mut c, &buf, false, &mut outbuf, &mut put, true)?;
    }
    encode(&mut c, &[], true, &mut outbuf, &mut put, true)?;
    Ok(())
}
