//! Go's level 1 (BestSpeed) match finder (deflatefast.go), a Snappy-style encoder over
//! 64 KiB blocks that may match into the previous block.
//!
//! Invariant: for the same sequence of blocks, [`DeflateFast::encode`] appends the tokens
//! Go's `deflateFast.encode` appends. Go's `int32` arithmetic is kept as `i32`; the
//! offset rebase (`shift_offsets`) happens at the same points, so even after 2 GiB of input
//! the table state matches Go's.

use super::bit_writer::MAX_STORE_BLOCK_SIZE;
use super::token::{Token, literal_token, match_token};
use super::{MAX_MATCH_LENGTH, MAX_MATCH_OFFSET, common_prefix};

const TABLE_BITS: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
const TABLE_MASK: u32 = (TABLE_SIZE - 1) as u32;
const TABLE_SHIFT: u32 = 32 - TABLE_BITS;
/// Rebase offsets before `cur` could overflow an `i32`.
const BUFFER_RESET: i32 = i32::MAX - (MAX_STORE_BLOCK_SIZE as i32) * 2;
const INPUT_MARGIN: i32 = 16 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;

#[derive(Debug, Clone, Copy, Default)]
struct TableEntry {
    /// The four bytes at `offset`, so a candidate is checked without reading history.
    val: u32,
    offset: i32,
}

pub(super) struct DeflateFast {
    table: Box<[TableEntry]>,
    /// The previous block (empty when unknown).
    prev: Vec<u8>,
    /// Stream offset of the current block, as Go counts it.
    cur: i32,
}

fn load32(b: &[u8], i: i32) -> u32 {
    let i = i as usize;
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn load64(b: &[u8], i: i32) -> u64 {
    let i = i as usize;
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

fn hash(u: u32) -> u32 {
    u.wrapping_mul(0x1e35a7bd) >> TABLE_SHIFT
}

fn emit_literal(dst: &mut Vec<Token>, lit: &[u8]) {
    dst.extend(lit.iter().map(|&b| literal_token(b)));
}

impl DeflateFast {
    pub fn new() -> Self {
        DeflateFast {
            table: vec![TableEntry::default(); TABLE_SIZE].into_boxed_slice(),
            prev: Vec::with_capacity(MAX_STORE_BLOCK_SIZE),
            cur: MAX_STORE_BLOCK_SIZE as i32,
        }
    }

    /// Appends the tokens of `src` (at most [`MAX_STORE_BLOCK_SIZE`] bytes) to `dst`.
    pub fn encode(&mut self, dst: &mut Vec<Token>, src: &[u8]) {
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
        if src.len() < MIN_NON_LITERAL_BLOCK_SIZE {
            self.cur += MAX_STORE_BLOCK_SIZE as i32;
            self.prev.clear();
            emit_literal(dst, src);
            return;
        }
        let max_offset = MAX_MATCH_OFFSET as i32;
        // Matching stops this far from the end, so the 8-byte loads stay inside `src`.
        let s_limit = src.len() as i32 - INPUT_MARGIN;
        let mut next_emit: i32 = 0;
        let mut s: i32 = 0;
        let mut cv = load32(src, s);
        let mut next_hash = hash(cv);

        'outer: loop {
            // Snappy's skipping: after 32 misses look at every other byte, then every
            // third, and so on.
            let mut skip: i32 = 32;
            let mut next_s = s;
            let mut candidate;
            loop {
                s = next_s;
                let bytes_between_hash_lookups = skip >> 5;
                next_s = s + bytes_between_hash_lookups;
                skip += bytes_between_hash_lookups;
                if next_s > s_limit {
                    break 'outer;
                }
                let slot = (next_hash & TABLE_MASK) as usize;
                candidate = self.table[slot];
                let now = load32(src, next_s);
                self.table[slot] = TableEntry {
                    offset: s + self.cur,
                    val: cv,
                };
                next_hash = hash(now);
                let offset = s - (candidate.offset - self.cur);
                if offset > max_offset || cv != candidate.val {
                    cv = now;
                    continue;
                }
                break;
            }
            // A 4-byte match at s: what lies before it is literal.
            emit_literal(dst, &src[next_emit as usize..s as usize]);
            loop {
                s += 4;
                let t = candidate.offset - self.cur + 4;
                let l = self.match_len(s, t, src);
                dst.push(match_token((l + 4 - 3) as u32, (s - t - 1) as u32));
                s += l;
                next_emit = s;
                if s >= s_limit {
                    break 'outer;
                }
                // Hash s-1 and s from one 8-byte load, as Go does; if s does not start
                // another match, go on from s+1.
                let mut x = load64(src, s - 1);
                let prev_hash = hash(x as u32);
                self.table[(prev_hash & TABLE_MASK) as usize] = TableEntry {
                    offset: self.cur + s - 1,
                    val: x as u32,
                };
                x >>= 8;
                let curr_hash = hash(x as u32);
                let slot = (curr_hash & TABLE_MASK) as usize;
                candidate = self.table[slot];
                self.table[slot] = TableEntry {
                    offset: self.cur + s,
                    val: x as u32,
                };
                let offset = s - (candidate.offset - self.cur);
                if offset > max_offset || x as u32 != candidate.val {
                    cv = (x >> 8) as u32;
                    next_hash = hash(cv);
                    s += 1;
                    break;
                }
            }
        }
        if (next_emit as usize) < src.len() {
            emit_literal(dst, &src[next_emit as usize..]);
        }
        self.cur += src.len() as i32;
        self.prev.clear();
        self.prev.extend_from_slice(src);
    }

    /// Length of the match between `src[s..]` and position `t`, which is negative when
    /// the match starts in the previous block. The 4 bytes before both already match.
    fn match_len(&self, s: i32, t: i32, src: &[u8]) -> i32 {
        let s = s as usize;
        let s1 = (s + MAX_MATCH_LENGTH - 4).min(src.len());
        let a = &src[s..s1];
        if t >= 0 {
            let t = t as usize;
            return common_prefix(a, &src[t..t + a.len()]) as i32;
        }
        let tp = self.prev.len() as i32 + t;
        if tp < 0 {
            return 0;
        }
        let b = &self.prev[tp as usize..];
        let b = &b[..b.len().min(a.len())];
        let n = common_prefix(&a[..b.len()], b);
        if n < b.len() {
            return n as i32;
        }
        // Matched to the end of the previous block: continue at the start of this one.
        if s + n == s1 {
            return n as i32;
        }
        let a = &src[s + n..s1];
        (common_prefix(a, &src[..a.len()]) + n) as i32
    }

    /// Forgets the history so no match reaches into earlier data.
    pub fn reset(&mut self) {
        self.prev.clear();
        // Every stored offset is now out of reach.
        self.cur += MAX_MATCH_OFFSET as i32;
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
    }

    /// Rebases table offsets so `cur` restarts at `MAX_MATCH_OFFSET + 1`.
    fn shift_offsets(&mut self) {
        let base = MAX_MATCH_OFFSET as i32 + 1;
        if self.prev.is_empty() {
            self.table.fill(TableEntry::default());
            self.cur = base;
            return;
        }
        for e in self.table.iter_mut() {
            // Offsets already out of reach clamp to 0, as in Go.
            e.offset = (e.offset - self.cur + base).max(0);
        }
        self.cur = base;
    }
}
