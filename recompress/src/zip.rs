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
const CENTRAL: &[u8; 4] = b"PK\x01\x02";

/// The fixed part of a central-directory entry (its name, extra field and comment follow).
pub(crate) const CENTRAL_MIN: u64 = 46;

/// Most local headers the [`Chain`] remembers (16 bytes each: 16 MiB). Entries past it
/// stay verbatim in the plain form; both sides stop at the same count, so it is exact.
const MAX_REFS: usize = 1 << 20;

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
    crc32: u32,
}

/// Parse the local header at the input's position (which starts with [`LOCAL`]); `None`
/// when it is truncated (the rest is then verbatim).
fn local(input: &mut Input<'_>) -> Result<Option<Local>> {
    if input.fill(30)? < 30 {
        return Ok(None);
    }
    let header_len = local_len(input.peek());
    if input.fill(header_len)? < header_len {
        return Ok(None);
    }
    Ok(Some(parse_local(&input.peek()[..header_len])))
}

/// The length of the local header whose fixed part (30 bytes) starts `p`.
fn local_len(p: &[u8]) -> usize {
    30 + usize::from(u16le(p, 26)) + usize::from(u16le(p, 28))
}

/// Parse a whole local header `p` (its length is [`local_len`]).
fn parse_local(p: &[u8]) -> Local {
    let flags = u16le(p, 6);
    let method = u16le(p, 8);
    let crc32 = u32le(p, 14);
    let csize32 = u32le(p, 18);
    let usize32 = u32le(p, 22);
    let name_len = usize::from(u16le(p, 26));
    let header_len = p.len();
    let extra = p.get(30 + name_len..).unwrap_or_default();
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
    Local {
        header_len,
        flags,
        method,
        csize,
        zip64,
        csize32,
        usize32,
        crc32,
    }
}

/// What a central-directory entry repeats of one local header: its offset in the file
/// and its CRC-32, compressed and uncompressed sizes (the data descriptor's when it has
/// one), all as their low 32 bits (the width of the entry's fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LocalRef {
    offset: u32,
    crc: u32,
    csize: u32,
    usize: u32,
}

/// Turn a central-directory entry into its plain form, or back (the same XOR both ways):
/// its CRC-32, sizes and local-header offset XOR the values of the local header `r`
/// it should describe. In a consistent archive those are all zeros, so a member that
/// changes (new CRC and size) or moves (every later offset) changes only its local
/// header in the plain form, not the central directory as well. Exact for every
/// archive: XOR is reversible whatever the entry says.
fn xor_entry(entry: &mut [u8], r: &LocalRef) {
    for (at, v) in [(16, r.crc), (20, r.csize), (24, r.usize), (42, r.offset)] {
        if let Some(f) = entry.get_mut(at..at + 4) {
            let x = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) ^ v;
            f.copy_from_slice(&x.to_le_bytes());
        }
    }
}

/// Where the chain is in the byte stream.
#[derive(Debug)]
enum ChainState {
    /// Buffering a local header.
    Header,
    /// Skipping a member's compressed bytes; then its data descriptor if it has one.
    Data { left: u64, descriptor: bool },
    /// Buffering a data descriptor (zip64: 8-byte sizes).
    Descriptor { zip64: bool },
    /// The chain ended (the central directory, or something it does not follow).
    Done,
}

/// The local headers of a zip, found by following their chain through a byte stream:
/// each header says how many compressed bytes follow it (and whether a data descriptor
/// does). It sees every byte of the file in order: [`crate::input::Input`] feeds it what
/// the walk consumes (decode, analyze), [`crate::sink::OutMeter`] what a rebuild writes.
///
/// Invariant: its table is a pure function of the bytes fed so far. Both sides feed the
/// same bytes (the original file = the rebuilt file) and take the table at the same
/// point (the central directory's start), so they XOR each central-directory entry with
/// the same values; the table never has to be right about the archive, only the same.
/// Memory: one header buffered (at most 30 + 2 x 64 KiB) and [`MAX_REFS`] entries.
#[derive(Debug)]
pub(crate) struct Chain {
    pos: u64,
    state: ChainState,
    buf: Vec<u8>,
    refs: Vec<LocalRef>,
}

impl Chain {
    pub(crate) fn new() -> Self {
        Chain {
            pos: 0,
            state: ChainState::Header,
            buf: Vec::new(),
            refs: Vec::new(),
        }
    }

    /// The local headers seen so far, in order.
    pub(crate) fn into_refs(self) -> Vec<LocalRef> {
        self.refs
    }

    /// Follow the chain through the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.state {
                ChainState::Done => bytes.len(),
                ChainState::Data { left, descriptor } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - n as u64;
                    self.state = match (left, descriptor) {
                        (0, false) => ChainState::Header,
                        (0, true) => ChainState::Descriptor {
                            zip64: self.buf.first() == Some(&1),
                        },
                        _ => ChainState::Data { left, descriptor },
                    };
                    if left == 0 {
                        self.buf.clear();
                    }
                    n
                }
                ChainState::Header => self.header(bytes),
                ChainState::Descriptor { zip64 } => self.descriptor(bytes, zip64),
            };
            self.pos += used as u64;
            bytes = &bytes[used..];
        }
    }

    /// Buffer `want` bytes in all from `bytes`; returns how many it took.
    fn gather(&mut self, bytes: &[u8], want: usize) -> usize {
        let n = want.saturating_sub(self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..n]);
        n
    }

    fn header(&mut self, bytes: &[u8]) -> usize {
        let mut used = self.gather(bytes, 30);
        if self.buf.len() < 30 {
            return used;
        }
        if !self.buf.starts_with(LOCAL) {
            self.done();
            return used;
        }
        let want = local_len(&self.buf);
        used += self.gather(&bytes[used..], want);
        if self.buf.len() < want {
            return used;
        }
        let h = parse_local(&self.buf);
        let descriptor = h.flags & 8 != 0;
        if descriptor && h.csize == 0 {
            // Its length is only in the descriptor after the data: the chain is lost.
            self.done();
            return used;
        }
        // The header started `buf.len() - used` bytes before this call's bytes.
        let start = self.pos + used as u64 - self.buf.len() as u64;
        if self.refs.len() < MAX_REFS {
            self.refs.push(LocalRef {
                offset: start as u32,
                crc: h.crc32,
                csize: h.csize32,
                usize: h.usize32,
            });
        }
        // One byte of state for the descriptor: whether its sizes are 8 bytes wide.
        self.buf.clear();
        self.buf.push(u8::from(h.zip64));
        self.state = ChainState::Data {
            left: h.csize,
            descriptor,
        };
        if h.csize == 0 {
            self.buf.clear();
            self.state = if descriptor {
                ChainState::Descriptor { zip64: h.zip64 }
            } else {
                ChainState::Header
            };
        }
        used
    }

    fn descriptor(&mut self, bytes: &[u8], zip64: bool) -> usize {
        let mut used = self.gather(bytes, 4);
        if self.buf.len() < 4 {
            return used;
        }
        let sig = if self.buf.starts_with(DESCRIPTOR) {
            4
        } else {
            0
        };
        let sizes = if zip64 { 16 } else { 8 };
        let want = sig + 4 + sizes;
        used += self.gather(&bytes[used..], want);
        if self.buf.len() < want {
            return used;
        }
        let d = &self.buf[sig..];
        let r = LocalRef {
            offset: 0,
            crc: u32le(d, 0),
            csize: u32le(d, 4),
            usize: u32le(d, if zip64 { 12 } else { 8 }),
        };
        // The descriptor holds the member's real values (its header may hold zeros).
        if let Some(last) = self.refs.last_mut() {
            *last = LocalRef {
                offset: last.offset,
                ..r
            };
        }
        self.buf.clear();
        self.state = ChainState::Header;
        used
    }

    fn done(&mut self) {
        self.buf = Vec::new();
        self.state = ChainState::Done;
    }
}

/// `zip_central`: carry the central directory relative to the local headers (plain form
/// 2); off, it is verbatim (plain form 1, for references of deltas made before).
pub(crate) fn walk(input: &mut Input<'_>, sink: &mut Sink<'_>, zip_central: bool) -> Result<()> {
    loop {
        input.fill(4)?;
        if !input.peek().starts_with(LOCAL) {
            if zip_central && input.peek().starts_with(CENTRAL) {
                central(input, sink)?;
            }
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

/// The central directory, entry by entry, through [`xor_entry`] with the local headers
/// the [`Chain`] found before it (the j-th entry with the j-th header). Only when there
/// are at least two: a one-member zip keeps its verbatim plain form (and its older
/// recipe). Stops at the first thing that is not a whole entry; the rest is verbatim.
fn central(input: &mut Input<'_>, sink: &mut Sink<'_>) -> Result<()> {
    let refs = input.take_chain();
    if refs.len() < 2 {
        return Ok(());
    }
    let (mut plain_len, mut count) = (0u64, 0u64);
    let mut entry = Vec::new();
    loop {
        if input.fill(CENTRAL_MIN as usize)? < CENTRAL_MIN as usize
            || !input.peek().starts_with(CENTRAL)
        {
            break;
        }
        let p = input.peek();
        let len = CENTRAL_MIN as usize
            + usize::from(u16le(p, 28))
            + usize::from(u16le(p, 30))
            + usize::from(u16le(p, 32));
        if input.fill(len)? < len {
            break;
        }
        entry.clear();
        entry.extend_from_slice(&input.peek()[..len]);
        if let Some(r) = usize::try_from(count).ok().and_then(|j| refs.get(j)) {
            xor_entry(&mut entry, r);
        }
        input.consume(len);
        sink.decoded(&entry, input.consumed())?;
        plain_len += len as u64;
        count += 1;
    }
    if count > 0
        && let Some(b) = sink.recipe()
    {
        b.zip_central(plain_len, count);
    }
    Ok(())
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

/// A deflated member of a zip, as [`deflated_members`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipMember {
    /// CRC-32 of its plain bytes (from its local header, or its data descriptor).
    pub crc: u32,
    /// Compressed size.
    pub csize: u64,
    /// Uncompressed size.
    pub usize: u64,
    /// Where its compressed bytes start in the file.
    pub data_offset: u64,
}

/// The deflated, unencrypted members of the zip read from `input`, found by following the
/// local-header chain front to back (streaming: one header buffered at a time, the data
/// skipped) up to the first thing that is not a local header whose length is known, and at
/// most `max` of them. For the host's index of a reference zip ([`crate::MemberSource`]):
/// the file is host content, but it is still parsed defensively (sizes only ever skip
/// bytes; a member whose bytes are not all there is left out).
pub fn deflated_members(input: &mut dyn Read, max: usize) -> Result<Vec<ZipMember>> {
    let mut input = Input::new(input);
    let mut found = Vec::new();
    while found.len() < max {
        input.fill(4)?;
        if !input.peek().starts_with(LOCAL) {
            break;
        }
        let Some(h) = local(&mut input)? else { break };
        let descriptor = h.flags & 8 != 0;
        if descriptor && h.csize == 0 {
            break;
        }
        let data_offset = input.consumed() + h.header_len as u64;
        input.consume(h.header_len);
        if skip(&mut input, h.csize)? < h.csize {
            break;
        }
        let (mut crc, mut usize) = (h.crc32, u64::from(h.usize32));
        if descriptor {
            let sizes = if h.zip64 { 16 } else { 8 };
            input.fill(4)?;
            let sig = if input.peek().starts_with(DESCRIPTOR) {
                4
            } else {
                0
            };
            let len = sig + 4 + sizes;
            if input.fill(len)? < len {
                break;
            }
            let d = &input.peek()[sig..len];
            crc = u32le(d, 0);
            usize = if h.zip64 {
                u64le(d, 12)
            } else {
                u64::from(u32le(d, 8))
            };
            input.consume(len);
        }
        if h.method == 8 && h.flags & 1 == 0 {
            found.push(ZipMember {
                crc,
                csize: h.csize,
                usize,
                data_offset,
            });
        }
    }
    Ok(found)
}

/// Skip `n` input bytes; returns how many there were.
fn skip(input: &mut Input<'_>, n: u64) -> Result<u64> {
    let mut left = n;
    while left > 0 {
        let want = usize::try_from(left.min(256 << 10)).unwrap_or(256 << 10);
        let have = input.fill(want)?.min(want);
        if have == 0 {
            break;
        }
        input.consume(have);
        left -= have as u64;
    }
    Ok(n - left)
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

/// Rebuild a zip's central directory (recipe segment 11): `count` entries, `plain_len`
/// plain bytes in all, each read from the plain form and put through [`xor_entry`] with
/// the local headers the output's [`Chain`] found (the inverse of [`central`]). An entry
/// that does not start with the signature, or lengths that do not add up to
/// `plain_len`, refuse the recipe.
pub(crate) fn rebuild_central(
    plain_len: u64,
    count: u64,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let refs = out.take_chain();
    let mut left = plain_len;
    let mut entry = Vec::new();
    let mut rest = Vec::new();
    for i in 0..count {
        if left < CENTRAL_MIN {
            return Err(run_error(format!(
                "zip central directory: entry {i} starts {left} bytes before its end"
            )));
        }
        read_plain(plain, CENTRAL_MIN, &mut entry)?;
        if !entry.starts_with(CENTRAL) {
            return Err(run_error(format!(
                "zip central directory: entry {i} is not a central-directory entry"
            )));
        }
        // Name, extra field and comment: at most 192 KiB (three 16-bit lengths).
        let more = u64::from(u16le(&entry, 28))
            + u64::from(u16le(&entry, 30))
            + u64::from(u16le(&entry, 32));
        if CENTRAL_MIN + more > left {
            return Err(run_error(format!(
                "zip central directory: entry {i} ({} bytes) passes its end ({left} bytes left)",
                CENTRAL_MIN + more
            )));
        }
        read_plain(plain, more, &mut rest)?;
        entry.extend_from_slice(&rest);
        if let Some(r) = usize::try_from(i).ok().and_then(|j| refs.get(j)) {
            xor_entry(&mut entry, r);
        }
        out.put(&entry)?;
        left -= CENTRAL_MIN + more;
    }
    if left != 0 {
        return Err(run_error(format!(
            "zip central directory: its {count} entries leave {left} of its plain bytes"
        )));
    }
    Ok(())
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
    mut members: Option<&mut dyn crate::MemberSource>,
    stats: &mut crate::RebuildStats,
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
        let crc = u32le(&header, 14);
        let reused = match members.as_deref_mut() {
            Some(m) => m.member(crc, u64::from(csize32), u64::from(usize32))?,
            None => None,
        };
        if let Some(bytes) = reused.filter(|b| b.len() as u64 == u64::from(csize32)) {
            // The member's plain bytes are still in the plain form: skip them.
            let skipped = std::io::copy(&mut plain.take(u64::from(usize32)), &mut std::io::sink())?;
            if skipped != u64::from(usize32) {
                return Err(run_error(format!(
                    "zip member run: member {i}'s plain bytes end {} bytes early",
                    u64::from(usize32) - skipped
                )));
            }
            out.put(&bytes)?;
            stats.members_copied += 1;
            left -= member;
            continue;
        }
        stats.members_deflated += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A local header of a member with `data` bytes, `flags` and no extra field.
    fn member(name: &str, data: &[u8], flags: u16, crc: u32) -> Vec<u8> {
        let mut h = LOCAL.to_vec();
        h.extend_from_slice(&20u16.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&[0; 4]); // time, date
        h.extend_from_slice(&crc.to_le_bytes());
        let n = data.len() as u32;
        let sizes = if flags & 8 != 0 { [0, 0] } else { [n, n] };
        h.extend_from_slice(&sizes[0].to_le_bytes());
        h.extend_from_slice(&sizes[1].to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(data);
        h
    }

    fn refs_fed_in(bytes: &[u8], piece: usize) -> Vec<LocalRef> {
        let mut c = Chain::new();
        for p in bytes.chunks(piece) {
            c.feed(p);
        }
        c.into_refs()
    }

    /// The table depends on the bytes only, never on how they are cut into calls (the
    /// walk consumes and a rebuild writes in different pieces).
    #[test]
    fn the_chain_is_the_same_whatever_the_pieces() {
        let mut z = Vec::new();
        z.extend(member("a", b"hello", 0, 11));
        z.extend(member("bb", b"", 0, 0));
        z.extend(member("ccc", &[7; 300], 0, 33));
        z.extend_from_slice(CENTRAL);
        z.extend_from_slice(&[0; 60]);
        let whole = refs_fed_in(&z, z.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(
            whole[2],
            LocalRef {
                offset: (30 + 1 + 5 + 30 + 2) as u32,
                crc: 33,
                csize: 300,
                usize: 300
            }
        );
        for piece in [1, 2, 3, 7, 29, 30, 31, 64] {
            assert_eq!(refs_fed_in(&z, piece), whole, "pieces of {piece}");
        }
    }

    /// A member whose sizes are only in a descriptor with no size in its header ends the
    /// chain (its length is unknown); a descriptor after a sized member gives its values.
    #[test]
    fn descriptors_give_their_values_or_end_the_chain() {
        let mut z = member("a", b"xyz", 0, 1);
        let mut sized = member("b", b"data", 0, 0);
        sized[6] = 8; // flags: descriptor follows, but the header has the sizes too
        z.extend(&sized);
        z.extend_from_slice(DESCRIPTOR);
        z.extend_from_slice(&9u32.to_le_bytes());
        z.extend_from_slice(&4u32.to_le_bytes());
        z.extend_from_slice(&4u32.to_le_bytes());
        z.extend(member("c", b"", 8, 0));
        z.extend(member("d", b"after", 0, 5));
        let whole = refs_fed_in(&z, z.len());
        assert_eq!(whole.len(), 2, "{whole:?}");
        assert_eq!((whole[1].crc, whole[1].csize), (9, 4));
        for piece in [1, 5, 13] {
            assert_eq!(refs_fed_in(&z, piece), whole);
        }
    }

    #[test]
    fn xor_entry_is_its_own_inverse_and_ignores_short_entries() {
        let mut e: Vec<u8> = (0..60).collect();
        let r = LocalRef {
            offset: 0xdead_beef,
            crc: 1,
            csize: 2,
            usize: 3,
        };
        let orig = e.clone();
        xor_entry(&mut e, &r);
        assert_ne!(e, orig);
        xor_entry(&mut e, &r);
        assert_eq!(e, orig);
        let mut short = vec![0u8; 10];
        xor_entry(&mut short, &r);
        assert_eq!(short, vec![0u8; 10]);
    }
}
