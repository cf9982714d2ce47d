//! The record tier: a patch of a structured feed (JSON lines, a JSON array of records, a
//! large JSON object whose members are records) that ships the records that changed, not
//! the bytes around them.
//!
//! Making one: [`cut`] splits reference and target into segments at stable boundaries (the
//! end of every container value), each with a key: the `id` (or `name`) field of the
//! record it belongs to where one exists, else its member key path. Target segments are
//! matched to baseline segments by key; runs of unchanged segments become copies of the
//! baseline, and the changed and new segments go, in target order, into ONE zstd stream
//! whose prefix is the concatenation of the baseline segments they replace (so a changed
//! record costs what differs from its old self, at short, repeating offsets). The file's
//! own bytes are kept: whitespace, key order and separators travel inside the segments.
//!
//! The patch (after a version byte): `n_ops`, the byte length of the ops frame, the ops
//! frame (zstd of four varint columns: `seek`, `copy`, `skip`, `lit`), then the literal
//! frame. Applying op by op, with a cursor into the reference starting at 0: move the cursor
//! by `seek` (zigzag), copy `copy` reference bytes to the output, add the next `skip`
//! reference bytes to the dictionary, then take `lit` bytes from the literal stream (which
//! is decoded once, against the whole dictionary, before the output is assembled).
//!
//! Invariants checked on decode (the patch is untrusted until the rebuilt file's digest
//! matches the signed manifest): every op writes at least one byte, so there are at most
//! as many ops as target bytes; the cursor stays inside the reference; the dictionary is
//! at most as long as the reference; copies plus literals make exactly the declared
//! length; both frames decode to exactly their declared lengths (bounded buffers, as in
//! [`crate::patch`]); no byte follows the literal frame's declared end. The decoder never
//! panics on any input (property-tested and fuzzed, `fuzz/fuzz_targets/record_cutter.rs`).

use std::collections::{HashMap, VecDeque};

use crate::patch::{Encoding, PatchError, ZstdTuning, zstd_decode, zstd_encode};

/// The patch layout version (the first byte).
const VERSION: u8 = 1;

/// Container values shorter than this are not cut out on their own: they stay in the
/// segment of the member that follows, so a segment is rarely only a few bytes of JSON.
const MIN_SEGMENT: usize = 24;

/// One segment of a cut stream: bytes `start..end`, and its matching key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// FNV-1a of the record's id (or member key path) and the path below it.
    pub key: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(a: u64, b: u64) -> u64 {
    fnv(a, &b.to_le_bytes())
}

/// A record: an array element or a top-level value (its key is its id when it has one,
/// else its content).
struct Element {
    parent: Option<usize>,
    start: usize,
    id: Option<u64>,
    key: u64,
}

/// An open container while scanning.
struct Frame {
    is_object: bool,
    start: usize,
    /// Path hash of this container below its element.
    path: u64,
    /// The element this container belongs to (for an array: its elements get their own).
    element: Option<usize>,
    /// Last member key read (objects), and whether the next string is a key.
    key: Option<(usize, usize)>,
    expect_key: bool,
    /// The element open at this array's current position.
    open_element: Option<usize>,
}

/// Whether `bytes` look like JSON text or JSON lines: after leading whitespace an object
/// or array opens, either at the start or on the next line. The second case is a piece of
/// a large JSON-lines feed: pieces are cut by size, so all but a feed's first start in
/// the middle of a row ([`cut`] takes that partial row as a segment of its own).
pub fn looks_structured(bytes: &[u8]) -> bool {
    let opens = |bytes: &[u8]| {
        bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[')
    };
    opens(bytes)
        || bytes[..bytes.len().min(PARTIAL_ROW)]
            .iter()
            .position(|b| *b == b'\n')
            .is_some_and(|i| opens(&bytes[i + 1..]))
}

/// How far into a piece [`looks_structured`] looks for the end of a partial first row.
const PARTIAL_ROW: usize = 1 << 20;

/// Cut `bytes` into segments that tile it: a cut after every container value of at least
/// [`MIN_SEGMENT`] bytes and after every top-level value. Tolerant: any input (a piece cut
/// mid-record, text that is not JSON) is cut somewhere, and the segments always tile it.
pub fn cut(bytes: &[u8]) -> Vec<Segment> {
    let mut elements: Vec<Element> = Vec::new();
    // (end, element, path below the element)
    let mut cuts: Vec<(usize, Option<usize>, u64)> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0usize;
    // The top level is a sequence of values (JSON lines): each is an element.
    let mut top_element: Option<usize> = None;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                string_closed(&mut stack, &mut elements, bytes, string_start, i);
            } else if b == b'\n' {
                // JSON strings hold no raw newline: a stream cut mid-string recovers here.
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'{' | b'[' => {
                let (element, path) = match stack.last_mut() {
                    Some(parent) if !parent.is_object => {
                        let parent_element = parent.element;
                        let e = open_element(&mut elements, parent_element, i);
                        parent.open_element = Some(e);
                        (Some(e), 0)
                    }
                    Some(parent) => {
                        let key = parent.key.map_or(0, |(s, e)| fnv(FNV_OFFSET, &bytes[s..e]));
                        (parent.element, mix(parent.path, key))
                    }
                    None => {
                        let e = open_element(&mut elements, None, i);
                        top_element = Some(e);
                        (Some(e), 0)
                    }
                };
                stack.push(Frame {
                    is_object: b == b'{',
                    start: i,
                    path,
                    element,
                    key: None,
                    expect_key: b == b'{',
                    open_element: None,
                });
            }
            b'}' | b']' => {
                if let Some(frame) = stack.pop() {
                    let end = i + 1;
                    if let Some(e) = frame.open_element {
                        close_element(&mut elements, bytes, e, end);
                    }
                    match stack.last_mut() {
                        Some(parent) if !parent.is_object => {
                            if let Some(e) = parent.open_element.take() {
                                close_element(&mut elements, bytes, e, end);
                            }
                        }
                        Some(_) => {}
                        None => {
                            if let Some(e) = top_element.take() {
                                close_element(&mut elements, bytes, e, end);
                            }
                        }
                    }
                    if end - frame.start >= MIN_SEGMENT || stack.is_empty() {
                        cuts.push((end, frame.element, frame.path));
                    }
                }
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.expect_key = frame.is_object;
                    if !frame.is_object
                        && let Some(e) = frame.open_element.take()
                    {
                        close_element(&mut elements, bytes, e, i);
                    }
                }
            }
            b'\n' if stack.is_empty() => {}
            _ => {
                // A scalar array element opens (and at its separator closes) an element.
                if let Some(frame) = stack.last_mut()
                    && !frame.is_object
                    && frame.open_element.is_none()
                    && !b.is_ascii_whitespace()
                {
                    let parent_element = frame.element;
                    let e = open_element(&mut elements, parent_element, i);
                    frame.open_element = Some(e);
                }
            }
        }
        i += 1;
    }
    segments(bytes.len(), &cuts, &elements)
}

fn open_element(elements: &mut Vec<Element>, parent: Option<usize>, start: usize) -> usize {
    elements.push(Element {
        parent,
        start,
        id: None,
        key: 0,
    });
    elements.len() - 1
}

/// Elements without an id longer than this are keyed by position, not content: their
/// members' keys derive from theirs, and a whole database in one top-level object must not
/// change every member's key when one member changes.
const CONTENT_KEYED: usize = 4096;

/// An element's own key: its id when it has one, else a hash of its bytes when it is short,
/// else nothing (combined with its parents' in [`segments`], once every element is closed).
fn close_element(elements: &mut [Element], bytes: &[u8], e: usize, end: usize) {
    let Some(el) = elements.get_mut(e) else {
        return;
    };
    el.key = match el.id {
        Some(id) => id,
        None if end.saturating_sub(el.start) <= CONTENT_KEYED => {
            fnv(FNV_OFFSET, bytes.get(el.start..end).unwrap_or_default())
        }
        None => 0,
    };
}

/// A string ended at `end` (its bytes are `start..end`): it is a member key, or the value
/// of an `id`/`name` member directly inside a record.
fn string_closed(
    stack: &mut [Frame],
    elements: &mut [Element],
    bytes: &[u8],
    start: usize,
    end: usize,
) {
    let Some(frame) = stack.last_mut() else {
        return;
    };
    if !frame.is_object {
        return;
    }
    let text = bytes.get(start..end).unwrap_or_default();
    if frame.expect_key {
        frame.key = Some((start, end));
        frame.expect_key = false;
        return;
    }
    // A value: an id names the element whose object this is (its top-level frame).
    let is_id = frame
        .key
        .and_then(|(s, e)| bytes.get(s..e))
        .is_some_and(|k| k == b"id" || k == b"name");
    if is_id
        && frame.path == 0
        && let Some(el) = frame.element.and_then(|e| elements.get_mut(e))
        && el.id.is_none()
    {
        el.id = Some(fnv(FNV_OFFSET ^ 1, text));
    }
}

fn segments(
    len: usize,
    cuts: &[(usize, Option<usize>, u64)],
    elements: &[Element],
) -> Vec<Segment> {
    // Full keys: a parent opens before its children, so it comes first.
    let mut full: Vec<u64> = Vec::with_capacity(elements.len());
    for el in elements {
        let parent = el.parent.and_then(|p| full.get(p)).copied().unwrap_or(0);
        full.push(mix(parent, el.key));
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0usize;
    for &(end, element, path) in cuts {
        if end <= start || end > len {
            continue;
        }
        let owner = element.and_then(|e| full.get(e)).copied().unwrap_or(0);
        out.push(Segment {
            start,
            end,
            key: mix(owner, path),
        });
        start = end;
    }
    if start < len || out.is_empty() {
        out.push(Segment {
            start,
            end: len,
            key: 0,
        });
    }
    out
}

/// One step of the patch (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Op {
    seek: i64,
    copy: u64,
    skip: u64,
    lit: u64,
}

/// Baseline segments a gap smaller than this is skipped over (into the dictionary, where
/// it costs nothing) rather than seeked past.
const SKIP_GAP: usize = 64 << 10;

/// The ops and the two streams (dictionary, literals) of a patch.
struct Plan {
    ops: Vec<Op>,
    dict: Vec<u8>,
    lits: Vec<u8>,
}

fn plan(reference: &[u8], target: &[u8]) -> Option<Plan> {
    let base = cut(reference);
    let new = cut(target);
    let mut by_key: HashMap<u64, VecDeque<usize>> = HashMap::new();
    for (i, s) in base.iter().enumerate() {
        by_key.entry(s.key).or_default().push_back(i);
    }
    let matched: Vec<Option<usize>> = new
        .iter()
        .map(|s| by_key.get_mut(&s.key).and_then(VecDeque::pop_front))
        .collect();
    let mut used = vec![false; base.len()];
    for b in matched.iter().flatten() {
        used[*b] = true;
    }
    let mut p = Plan {
        ops: Vec::new(),
        dict: Vec::new(),
        lits: Vec::new(),
    };
    let mut cur = Op::default();
    // Cursor: a byte position, and the index of the baseline segment starting there.
    let (mut cursor, mut at) = (0usize, 0usize);
    let flush = |ops: &mut Vec<Op>, cur: &mut Op| {
        if cur.copy + cur.lit > 0 || cur.skip > 0 || cur.seek != 0 {
            ops.push(std::mem::take(cur));
        }
    };
    for (t, m) in new.iter().zip(&matched) {
        let t_bytes = &target[t.start..t.end];
        match m {
            Some(b) => {
                let bs = base[*b];
                let b_bytes = &reference[bs.start..bs.end];
                let same = b_bytes == t_bytes;
                if bs.start != cursor {
                    if !same && bs.start > cursor && bs.start - cursor <= SKIP_GAP {
                        // A short gap before a changed segment joins the dictionary.
                        p.dict.extend_from_slice(&reference[cursor..bs.start]);
                        cur.skip += (bs.start - cursor) as u64;
                    } else {
                        flush(&mut p.ops, &mut cur);
                        cur.seek = bs.start as i64 - cursor as i64;
                    }
                }
                if same {
                    // A copy opens an op unless the op is still copying.
                    if cur.skip > 0 || cur.lit > 0 {
                        flush(&mut p.ops, &mut cur);
                    }
                    cur.copy += t_bytes.len() as u64;
                } else {
                    p.dict.extend_from_slice(b_bytes);
                    cur.skip += b_bytes.len() as u64;
                    cur.lit += t_bytes.len() as u64;
                    p.lits.extend_from_slice(t_bytes);
                }
                cursor = bs.end;
                at = *b + 1;
            }
            None => {
                // A new or re-keyed segment: the unmatched baseline segments at the cursor
                // are what it most likely replaces, up to about its own size (or a short
                // gap's). Unbounded, the partial row that opens a piece cut mid-row would
                // take every baseline row before the piece's own (its reference window
                // starts earlier) into the dictionary: megabytes zstd must index.
                let mut taken = 0usize;
                while at < base.len()
                    && base[at].start == cursor
                    && !used[at]
                    && taken < t_bytes.len().max(SKIP_GAP)
                {
                    let s = base[at];
                    taken += s.end - s.start;
                    p.dict.extend_from_slice(&reference[s.start..s.end]);
                    cur.skip += (s.end - s.start) as u64;
                    cursor = s.end;
                    used[at] = true;
                    at += 1;
                }
                cur.lit += t_bytes.len() as u64;
                p.lits.extend_from_slice(t_bytes);
            }
        }
    }
    flush(&mut p.ops, &mut cur);
    // An op that writes nothing (a trailing skip or seek) is dropped: the decoder refuses
    // those, and nothing after it needs its dictionary bytes.
    while p.ops.last().is_some_and(|o| o.copy + o.lit == 0) {
        if let Some(o) = p.ops.pop() {
            p.dict.truncate(p.dict.len() - o.skip as usize);
        }
    }
    if p.ops.iter().any(|o| o.copy + o.lit == 0)
        || p.dict.len() > reference.len()
        || p.ops.len() as u64 > max_ops(target.len() as u64)
    {
        // Not expressible within the decoder's bounds: this tier is not a candidate.
        return None;
    }
    Some(p)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The record patch turning `reference` into `target`, or `None` when the record tier
/// does not apply (the target does not look structured).
pub fn encode(
    reference: &[u8],
    target: &[u8],
    tuning: ZstdTuning,
) -> std::io::Result<Option<Vec<u8>>> {
    if !looks_structured(target) || !looks_structured(reference) {
        return Ok(None);
    }
    let Some(p) = plan(reference, target) else {
        return Ok(None);
    };
    let mut columns = Vec::with_capacity(p.ops.len() * 8);
    for o in &p.ops {
        put_varint(&mut columns, zigzag(o.seek));
    }
    for o in &p.ops {
        put_varint(&mut columns, o.copy);
    }
    for o in &p.ops {
        put_varint(&mut columns, o.skip);
    }
    for o in &p.ops {
        put_varint(&mut columns, o.lit);
    }
    let ops_frame = zstd_encode(
        None,
        &columns,
        ZstdTuning {
            level: 19,
            long: false,
        },
    )?;
    let dict = (!p.dict.is_empty()).then_some(&p.dict[..]);
    let lit_frame = zstd_encode(dict, &p.lits, tuning)?;
    let mut out = vec![VERSION];
    put_varint(&mut out, p.ops.len() as u64);
    put_varint(&mut out, columns.len() as u64);
    put_varint(&mut out, ops_frame.len() as u64);
    out.extend_from_slice(&ops_frame);
    out.extend_from_slice(&lit_frame);
    Ok(Some(out))
}

fn corrupt(message: &str) -> PatchError {
    PatchError::Corrupt {
        encoding: Encoding::Records,
        message: message.to_string(),
    }
}

/// Most ops a patch of an `expected`-byte target may hold: one per 64 bytes (a feed's
/// changed records are far fewer; a file changed everywhere ships better another way), so
/// the ops of a 32 MiB piece take at most 16 MiB on the host.
fn max_ops(expected: u64) -> u64 {
    expected / 64 + 16
}

/// Most bytes one op takes in the columns (four varints of at most ten bytes).
const MAX_OP_BYTES: u64 = 40;

/// Rebuild exactly `expected` bytes from `reference` and a record patch.
pub fn decode(reference: &[u8], patch: &[u8], expected: u64) -> Result<Vec<u8>, PatchError> {
    decode_noting_copies(reference, patch, expected, Vec::new(), &mut |_| {})
}

/// A run of a decoded record patch's output copied from its reference: `len` bytes at
/// `output` are the bytes at `reference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopiedRun {
    /// Offset in the decoded output.
    pub output: u64,
    /// Offset in the reference.
    pub reference: u64,
    /// Length.
    pub len: u64,
}

/// [`decode`] into `out` (emptied first: a recycled buffer keeps its capacity), telling
/// `copied` each non-empty run of the output copied from the reference, in output order
/// (what the host's feed-index derivation need not read again).
pub fn decode_noting_copies(
    reference: &[u8],
    patch: &[u8],
    expected: u64,
    mut out: Vec<u8>,
    copied: &mut dyn FnMut(CopiedRun),
) -> Result<Vec<u8>, PatchError> {
    if expected > crate::patch::MAX_IN_MEMORY {
        return Err(PatchError::TooLarge(expected));
    }
    if patch.first() != Some(&VERSION) {
        return Err(corrupt("not a record patch of a known version"));
    }
    let mut at = 1usize;
    let mut field = || get_varint(patch, &mut at).ok_or_else(|| corrupt("truncated header"));
    let (n_ops, columns_len, frame_len) = (field()?, field()?, field()?);
    if n_ops > max_ops(expected) || columns_len > n_ops.saturating_mul(MAX_OP_BYTES) {
        return Err(corrupt("more ops than the target allows"));
    }
    let frame_end = (at as u64)
        .checked_add(frame_len)
        .filter(|e| *e <= patch.len() as u64)
        .ok_or_else(|| corrupt("ops frame past the patch"))? as usize;
    let columns = zstd_decode(None, &patch[at..frame_end], columns_len).map_err(|e| match e {
        PatchError::Corrupt { message, .. } => corrupt(&format!("ops frame: {message}")),
        other => other,
    })?;
    let ops = parse_ops(&columns, n_ops)?;
    let (dict_len, lit_len) = check_ops(&ops, reference.len() as u64, expected)?;
    let mut dict = Vec::with_capacity(dict_len as usize);
    let mut cursor = 0u64;
    for o in &ops {
        cursor = cursor.wrapping_add_signed(o.seek) + o.copy;
        dict.extend_from_slice(&reference[cursor as usize..(cursor + o.skip) as usize]);
        cursor += o.skip;
    }
    let dict = (!dict.is_empty()).then_some(&dict[..]);
    let lits = zstd_decode(dict, &patch[frame_end..], lit_len).map_err(|e| match e {
        PatchError::Corrupt { message, .. } => corrupt(&format!("literal frame: {message}")),
        PatchError::Length {
            expected, actual, ..
        } => PatchError::Length {
            encoding: Encoding::Records,
            expected,
            actual,
        },
        other => other,
    })?;
    out.clear();
    out.reserve(expected as usize);
    let (mut cursor, mut lit_at) = (0u64, 0usize);
    for o in &ops {
        cursor = cursor.wrapping_add_signed(o.seek);
        if o.copy > 0 {
            copied(CopiedRun {
                output: out.len() as u64,
                reference: cursor,
                len: o.copy,
            });
        }
        out.extend_from_slice(&reference[cursor as usize..(cursor + o.copy) as usize]);
        cursor += o.copy + o.skip;
        out.extend_from_slice(&lits[lit_at..lit_at + o.lit as usize]);
        lit_at += o.lit as usize;
    }
    Ok(out)
}

fn parse_ops(columns: &[u8], n_ops: u64) -> Result<Vec<Op>, PatchError> {
    let n = n_ops as usize;
    let mut ops = vec![Op::default(); n];
    let mut at = 0usize;
    let mut next = || get_varint(columns, &mut at).ok_or_else(|| corrupt("truncated ops"));
    for o in ops.iter_mut() {
        o.seek = unzigzag(next()?);
    }
    for o in ops.iter_mut() {
        o.copy = next()?;
    }
    for o in ops.iter_mut() {
        o.skip = next()?;
    }
    for o in ops.iter_mut() {
        o.lit = next()?;
    }
    if at != columns.len() {
        return Err(corrupt("bytes after the ops"));
    }
    Ok(ops)
}

/// Walk the ops without touching bytes: the cursor stays in the reference, each op
/// writes, the dictionary is at most the reference's length and the output is exactly
/// `expected`. Returns (dictionary length, literal length).
fn check_ops(ops: &[Op], reference: u64, expected: u64) -> Result<(u64, u64), PatchError> {
    let (mut cursor, mut dict, mut lit, mut written) = (0u64, 0u64, 0u64, 0u64);
    for o in ops {
        let out_of = || corrupt("op reaches outside the reference");
        cursor = cursor
            .checked_add_signed(o.seek)
            .filter(|c| *c <= reference)
            .ok_or_else(out_of)?;
        let end = cursor
            .checked_add(o.copy)
            .and_then(|c| c.checked_add(o.skip))
            .filter(|e| *e <= reference)
            .ok_or_else(out_of)?;
        if o.copy.saturating_add(o.lit) == 0 {
            return Err(corrupt("op writes nothing"));
        }
        cursor = end;
        dict = dict.saturating_add(o.skip);
        lit = lit.saturating_add(o.lit);
        written = written.saturating_add(o.copy).saturating_add(o.lit);
    }
    if dict > reference {
        return Err(corrupt("dictionary longer than the reference"));
    }
    if written != expected {
        return Err(PatchError::Length {
            encoding: Encoding::Records,
            expected,
            actual: written,
        });
    }
    Ok((dict, lit))
}

/// (ops, dictionary bytes, literal bytes) of the record plan between two streams: what
/// `examples/record_probe.rs` prints to explain a patch's size.
#[doc(hidden)]
pub fn plan_stats(reference: &[u8], target: &[u8]) -> Option<(usize, usize, usize)> {
    plan(reference, target).map(|p| {
        if let Some(dir) = std::env::var_os("OUK_RECORDS_DUMP") {
            let dir = std::path::PathBuf::from(dir);
            let _ = std::fs::write(dir.join("dict"), &p.dict);
            let _ = std::fs::write(dir.join("lits"), &p.lits);
        }
        (p.ops.len(), p.dict.len(), p.lits.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TUNING: ZstdTuning = ZstdTuning {
        level: 19,
        long: false,
    };

    fn round_trip(reference: &[u8], target: &[u8]) -> Option<usize> {
        let patch = encode(reference, target, TUNING).unwrap()?;
        let back = decode(reference, &patch, target.len() as u64).unwrap();
        assert!(back == target, "round trip differs");
        Some(patch.len())
    }

    fn feed(rows: usize, edit: impl Fn(usize) -> Option<String>) -> Vec<u8> {
        let mut out = String::new();
        for i in 0..rows {
            let row = edit(i).unwrap_or_else(|| {
                format!(
                    "{{\"id\":\"GHSA-{i:04}\",\"modified\":\"2026-01-01T00:00:{:02}Z\",\"summary\":\"issue number {i} in package p{}\",\"affected\":[{{\"package\":{{\"name\":\"p{}\"}},\"ranges\":[\"<{}.{}\"]}}]}}\n",
                    i % 60,
                    i * 7 % 1000,
                    i * 7 % 1000,
                    i % 9,
                    i % 13
                )
            });
            out.push_str(&row);
        }
        out.into_bytes()
    }

    #[test]
    fn jsonl_rows_cut_at_their_ends_and_carry_their_ids() {
        let text = feed(3, |_| None);
        let segs = cut(&text);
        assert_eq!(segs.first().map(|s| s.start), Some(0));
        assert_eq!(segs.last().map(|s| s.end), Some(text.len()));
        let ends: Vec<usize> = segs.iter().map(|s| s.end).collect();
        let first_row_end = text.iter().position(|b| *b == b'\n').unwrap();
        assert!(ends.contains(&first_row_end), "{ends:?}");
        // The same row elsewhere in another file has the same key.
        let moved = feed(3, |i| (i == 0).then(|| "{\"id\":\"x\",\"v\":1}\n".into()));
        let a: Vec<u64> = cut(&text).iter().map(|s| s.key).collect();
        let b: Vec<u64> = cut(&moved).iter().map(|s| s.key).collect();
        assert_eq!(a.last(), b.last());
    }

    #[test]
    fn a_changed_row_ships_as_its_difference() {
        let reference = feed(2000, |_| None);
        let target = feed(2000, |i| {
            (i % 100 == 7).then(|| {
                format!("{{\"id\":\"GHSA-{i:04}\",\"modified\":\"2026-02-02T00:00:00Z\",\"summary\":\"issue number {i} in package p{}\",\"affected\":[{{\"package\":{{\"name\":\"p{}\"}},\"ranges\":[\"<{}.{}\"]}}]}}\n", i * 7 % 1000, i * 7 % 1000, i % 9, 99)
            })
        });
        let n = round_trip(&reference, &target).unwrap();
        let zstd = zstd_encode(Some(&reference), &target, TUNING)
            .unwrap()
            .len();
        assert!(n < zstd, "records {n} vs zstd --patch-from {zstd}");
    }

    #[test]
    fn pieces_cut_mid_row_are_records_too() {
        // A large feed's later pieces start inside a row, as does their reference window.
        let reference = feed(2000, |_| None);
        let target = feed(2000, |i| {
            (i % 100 == 7).then(|| format!("{{\"id\":\"GHSA-{i:04}\",\"changed\":true}}\n"))
        });
        let (reference, target) = (&reference[1234..], &target[777..]);
        assert!(looks_structured(target) && looks_structured(reference));
        let n = round_trip(reference, target).expect("a record patch");
        let zstd = zstd_encode(Some(reference), target, TUNING).unwrap().len();
        assert!(n < zstd, "records {n} vs zstd --patch-from {zstd}");
        // Text with no row opening on its first two lines is still not structured.
        assert!(!looks_structured(b"plain text\nmore text\n{\"a\":1}\n"));
    }

    #[test]
    fn objects_of_records_keep_their_own_layout() {
        let reference = b"{\n  \"data\": {\n    \"a\": {\"x\": 1, \"y\": [1, 2, 3]},\n    \"b\": {\"x\": 2, \"y\": [4, 5, 6]}\n  }\n}\n".to_vec();
        let target = b"{\n  \"data\": {\n    \"a\": {\"x\": 1, \"y\": [1, 2, 3]},\n    \"c\": {\"x\": 3},\n    \"b\": {\"x\": 2, \"y\": [4, 5, 7]}\n  }\n}\n".to_vec();
        round_trip(&reference, &target).unwrap();
        assert!(round_trip(b"not json", &target).is_none());
    }

    #[test]
    fn hostile_patches_are_refused() {
        let reference = feed(50, |_| None);
        let target = feed(50, |i| (i == 3).then(|| "{\"id\":\"new\"}\n".into()));
        let patch = encode(&reference, &target, TUNING).unwrap().unwrap();
        let n = target.len() as u64;
        assert!(decode(&reference, &patch, n - 1).is_err());
        assert!(decode(&reference, &patch, n + 1).is_err());
        assert!(decode(&reference[..10], &patch, n).is_err());
        let mut padded = patch.clone();
        padded.push(0);
        assert!(decode(&reference, &padded, n).is_err());
        assert!(decode(&reference, &patch[..patch.len() - 1], n).is_err());
        // An op that writes nothing, repeated, is refused before any work.
        let mut cols = Vec::new();
        for _ in 0..4 {
            put_varint(&mut cols, 0);
        }
        let frame = zstd_encode(None, &cols, TUNING).unwrap();
        let mut p = vec![VERSION, 1, cols.len() as u8, frame.len() as u8];
        p.extend_from_slice(&frame);
        assert!(decode(&reference, &p, 1).is_err());
    }

    /// JSON-ish text: lines of objects with ids, nested arrays and objects, scalars.
    fn jsonish() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            (0u16..50, "[a-z ]{0,12}", proptest::collection::vec(0u8..10, 0..4), any::<bool>())
                .prop_map(|(id, s, xs, nested)| {
                    if nested {
                        format!("{{\"id\":\"r{id}\",\"s\":\"{s}\",\"xs\":{xs:?},\"o\":{{\"k\":\"{s}{s}{s}\"}}}}")
                    } else {
                        format!("{{\"name\":{id},\"s\":\"{s}\",\"xs\":{xs:?}}}")
                    }
                }),
            0..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_edits_round_trip(
            rows in jsonish(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[a-z{}\\[\\]\",: ]{0,20}"), 0..8),
            as_array in any::<bool>(),
        ) {
            let render = |rows: &[String]| if as_array {
                format!("[\n{}\n]\n", rows.join(",\n")).into_bytes()
            } else {
                rows.iter().map(|r| format!("{r}\n")).collect::<String>().into_bytes()
            };
            let reference = render(&rows);
            let mut new_rows = rows.clone();
            for (at, kind, text) in edits {
                if new_rows.is_empty() { new_rows.push(text.clone()); continue; }
                let i = at.index(new_rows.len());
                match kind {
                    0 => new_rows[i].push_str(&text),
                    1 => new_rows.insert(i, text),
                    2 => { new_rows.remove(i); }
                    _ => { let r = new_rows.remove(i); new_rows.push(r); }
                }
            }
            let mut target = render(&new_rows);
            if target.is_empty() { target.push(b'['); }
            if let Some(patch) = encode(&reference, &target, TUNING).unwrap() {
                prop_assert_eq!(decode(&reference, &patch, target.len() as u64).unwrap(), target);
            }
        }

        #[test]
        fn cut_tiles_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let segs = cut(&bytes);
            let mut at = 0;
            for s in &segs {
                prop_assert_eq!(s.start, at);
                prop_assert!(s.end > s.start || bytes.is_empty());
                at = s.end;
            }
            prop_assert_eq!(at, bytes.len());
        }

        #[test]
        fn decode_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..300), len in 0u64..5000) {
            let reference = feed(20, |_| None);
            let _ = decode(&reference, &payload, len);
        }
    }
}
