//! zip archives, walked front to back through their local headers.
//!
//! Plain form: every local header, stored (or otherwise not deflated) member data, data
//! descriptor, the central directory and the end record verbatim; the data of each
//! deflated member decoded. The walk never needs the central directory (it streams), and
//! whenever it meets something it does not understand (another signature, an encrypted
//! member of unknown size, a stored member whose end cannot be found) the rest of the file
//! is verbatim: that is always exact, it only sees through less.
//!
//! A deflated member whose local header holds its real sizes is recorded through
//! [`crate::recipe::Builder::zip_member`], so consecutive members made with one setting
//! share one recipe segment (a run); [`rebuild_run`] reads each member's header back from
//! the plain form to know its lengths.
//!
//! Invariants: a header is parsed only after its fixed and variable parts are buffered
//! (bounded: names and extras are at most 64 KiB each); sizes from headers are used only
//! to copy that many bytes verbatim or to count plain bytes, never to allocate.

use std::io::Read;

use crate::input::Input;
use crate::recipe::{RunSetting, ZIP_LOCAL_MIN};
use crate::sink::{OutMeter, Sink, read_plain};
use crate::{RecompressError, Result, deflate};

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const DESCRIPTOR: &[u8; 4] = b"PK\x07\x08";

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64le(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// What the walk needs from a local header.
struct Local {
    header_len: usize,
    flags: u16,
    method: u16,
    csize: u64,
    zip64: bool,
    /// The 32-bit size fields as written (0xffffffff: in the zip64 extra field).
    csize32: u32,
    usize32: u32,
}

/// Parse the local header at the input's position (which starts with [`LOCAL`]); `None`
/// when it is truncated (the rest is then verbatim).
fn local(input: &mut Input<'_>) -> Result<Option<Local>> {
    if input.fill(30)? < 30 {
        return Ok(None);
    }
    let p = input.peek();
    let flags = u16le(p, 6);
    let method = u16le(p, 8);
    let csize32 = u32le(p, 18);
    let usize32 = u32le(p, 22);
    let name_len = usize::from(u16le(p, 26));
    let extra_len = usize::from(u16le(p, 28));
    let header_len = 30 + name_len + extra_len;
    if input.fill(header_len)? < header_len {
        return Ok(None);
    }
    let extra = &input.peek()[30 + name_len..header_len];
    let mut csize = u64::from(csize32);
    let mut zip64 = false;
    // The zip64 extended information field: in a local header it holds the 8-byte
    // uncompressed then compressed sizes when the 32-bit fields are 0xffffffff.
    let mut at = 0;
    while at + 4 <= extra.len() {
        let tag = u16le(extra, at);
        let len = usize::from(u16le(extra, at + 2));
        let body = extra.get(at + 4..at + 4 + len).unwrap_or_default();
        if tag == 1 {
            zip64 = true;
            let mut off = 0;
            if usize32 == u32::MAX && body.len() >= off + 8 {
                off += 8;
            }
            if csize32 == u32::MAX && body.len() >= off + 8 {
                csize = u64le(body, off);
            }
        }
        at += 4 + len;
    }
    Ok(Some(Local {
        header_len,
        flags,
        method,
        csize,
        zip64,
        csize32,
        usize32,
    }))
}

pub(crate) fn walk(input: &mut Input<'_>, sink: &mut Sink<'_>) -> Result<()> {
    loop {
        input.fill(4)?;
        if !input.peek().starts_with(LOCAL) {
            return sink.copy_rest(input);
        }
        let Some(h) = local(input)? else {
            return sink.copy_rest(input);
        };
        let encrypted = h.flags & 1 != 0;
        let descriptor = h.flags & 8 != 0;
        let header_len = h.header_len as u64;
        if h.method == 8 && !encrypted {
            // The stream delimits itself; its data descriptor (if any) follows.
            // General-purpose bits 1-2 name the deflate option: normal, maximum, fast,
            // super fast (Info-ZIP maps them to levels 6, 9, 2, 1).
            let level_hint = [6, 9, 2, 1][usize::from((h.flags >> 1) & 3)];
            if sink.recipe().is_some() {
                sink.copy_unrecorded(input, header_len, "zip")?;
                let prefer = sink.recipe().and_then(|b| b.last_setting());
                let (s, seg, csize) =
                    deflate::analyze_stream(input, sink, "zip", Some(level_hint), prefer.as_ref())?;
                // A rebuild can take the member's lengths from its header only when the
                // header holds the real sizes (not in a descriptor or a zip64 field).
                let runnable = !descriptor
                    && h.usize32 != u32::MAX
                    && u64::from(h.usize32) == s.plain_len
                    && u64::from(h.csize32) == csize;
                if let Some(b) = sink.recipe() {
                    b.zip_member(header_len, seg, runnable);
                }
            } else {
                sink.copy(input, header_len, "zip")?;
                deflate::stream(input, sink, "zip", Some(level_hint))?;
            }
        } else if !descriptor || h.csize != 0 {
            sink.copy(input, header_len, "zip")?;
            sink.copy(input, h.csize, "zip")?;
        } else if h.method == 0 {
            sink.copy(input, header_len, "zip")?;
            if !stored_until_descriptor(input, sink, h.zip64)? {
                return Ok(());
            }
        } else {
            return sink.copy_rest(input);
        }
        if descriptor {
            let sizes = if h.zip64 { 16 } else { 8 };
            input.fill(4)?;
            let len = if input.peek().starts_with(DESCRIPTOR) {
                4
            } else {
                0
            } + 4
                + sizes;
            if input.fill(len)? < len {
                return sink.copy_rest(input);
            }
            sink.copy(input, len as u64, "zip")?;
        }
    }
}

/// A stored member whose size is only in the data descriptor after it (a zip written to
/// an unseekable stream): copy verbatim up to the first descriptor signature whose CRC-32
/// and size fields match the bytes before it. Returns false when none does (everything
/// was then copied verbatim).
fn stored_until_descriptor(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    zip64: bool,
) -> Result<bool> {
    let tail = 4 + 4 + if zip64 { 16 } else { 8 };
    let mut crc = crc32fast::Hasher::new();
    let mut seen = 0u64;
    loop {
        let have = input.fill(64 << 10)?;
        if have < tail {
            sink.copy_rest(input)?;
            return Ok(false);
        }
        let p = input.peek();
        let mut hit = None;
        // Candidates at 0..=have-tail, where a whole descriptor is buffered.
        for i in sig_offsets(&p[..have - tail + 4]) {
            let d = &p[i..i + tail];
            let want_crc = u32le(d, 4);
            let want_size = if zip64 {
                u64le(d, 8)
            } else {
                u64::from(u32le(d, 8))
            };
            if want_size == seen + i as u64 {
                let mut c = crc.clone();
                c.update(&p[..i]);
                if c.finalize() == want_crc {
                    hit = Some(i);
                    break;
                }
            }
        }
        let take = hit.unwrap_or(have - tail + 1);
        crc.update(&p[..take]);
        seen += take as u64;
        sink.copy(input, take as u64, "zip")?;
        if hit.is_some() {
            return Ok(true);
        }
    }
}

/// Offsets of the data descriptor signature in `hay`.
fn sig_offsets(hay: &[u8]) -> impl Iterator<Item = usize> + '_ {
    hay.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == DESCRIPTOR)
        .map(|(i, _)| i)
}

fn run_error(message: String) -> RecompressError {
    RecompressError::Malformed {
        what: "recipe",
        message,
    }
}

/// Rebuild a zip member run (recipe segment 9): `count` members, `plain_len` plain bytes in
/// all. Each member's local header is read from the plain form and copied out; its
/// uncompressed size is the stream's plain length, re-compressed with `setting`, and the
/// stream must come out exactly as long as the header's compressed size. A header that is
/// not a deflated member's, or lengths that do not add up to `plain_len`, refuse the
/// recipe (the plain form and recipe do not belong together).
pub(crate) fn rebuild_run(
    plain_len: u64,
    count: u64,
    setting: &RunSetting<'_>,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let mut left = plain_len;
    let mut header = Vec::new();
    let mut names = Vec::new();
    for i in 0..count {
        if left < ZIP_LOCAL_MIN {
            return Err(run_error(format!(
                "zip member run: member {i} starts {left} bytes before the run's end"
            )));
        }
        read_plain(plain, ZIP_LOCAL_MIN, &mut header)?;
        let method = u16le(&header, 8);
        let csize32 = u32le(&header, 18);
        let usize32 = u32le(&header, 22);
        if !header.starts_with(LOCAL) || method != 8 || usize32 == u32::MAX {
            return Err(run_error(format!(
                "zip member run: member {i} is not a deflated member with its sizes in its \
                 local header"
            )));
        }
        let rest = u64::from(u16le(&header, 26)) + u64::from(u16le(&header, 28));
        let member = ZIP_LOCAL_MIN + rest + u64::from(usize32);
        if member > left {
            return Err(run_error(format!(
                "zip member run: member {i} ({member} plain bytes) passes the run's end \
                 ({left} bytes left)"
            )));
        }
        // Name and extra field: at most 128 KiB together (two 16-bit lengths).
        read_plain(plain, rest, &mut names)?;
        out.put(&header)?;
        out.put(&names)?;
        let before = out.written();
        deflate::rebuild_setting(setting, u64::from(usize32), plain, out)?;
        let made = out.written() - before;
        if made != u64::from(csize32) {
            return Err(run_error(format!(
                "zip member run: member {i}'s stream came out {made} bytes, its header \
                 says {csize32}"
            )));
        }
        left -= member;
    }
    if left != 0 {
        return Err(run_error(format!(
            "zip member run: its {count} members leave {left} of its plain bytes"
        )));
    }
    Ok(())
}
