//! Go's levels 2-9 (deflate.go `fillDeflate`, `deflate`, `findMatch`): hash chains over a
//! 64 KiB sliding window, greedy matching with skipped hashing for levels 2-3, lazy
//! matching for 4-9.
//!
//! Invariant: for the same input and the same points where the stream is synced (flush or
//! close), the tokens and block boundaries equal Go's, so the blocks written are Go's.
//! Processing stops while fewer than `MIN_MATCH_LENGTH + MAX_MATCH_LENGTH` bytes are ahead
//! and the stream is not synced, and the window slides by a fixed 32 KiB: this is why how
//! the input is split across writes does not change the output (in Go or here).

use super::bit_writer::HuffmanBitWriter;
use super::token::{Token, literal_token, match_token};
use super::{MAX_MATCH_LENGTH, MAX_MATCH_OFFSET, MIN_MATCH_LENGTH, common_prefix};

const WINDOW_SIZE: usize = 1 << 15;
const WINDOW_MASK: usize = WINDOW_SIZE - 1;
const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
/// Past this the hash offsets are rebased (Go's `maxHashOffset`).
const MAX_HASH_OFFSET: i64 = 1 << 24;
/// Tokens per block before Go writes one.
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 14;
/// `fast_skip_hashing` of the lazy levels.
pub(super) const SKIP_NEVER: i64 = i32::MAX as i64;
/// Go's "no block start in the window" marker.
const NO_BLOCK_START: usize = i32::MAX as usize;
const BASE_MATCH_LENGTH: i64 = 3;
const BASE_MATCH_OFFSET: i64 = 1;

/// A row of Go's `levels` table.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelParams {
    pub good: i64,
    pub lazy: i64,
    pub nice: i64,
    pub chain: i64,
    pub fast_skip_hashing: i64,
}

/// Go's table for levels 2-9.
pub(super) fn params(level: i32) -> Option<LevelParams> {
    let (good, lazy, nice, chain, fast_skip_hashing) = match level {
        2 => (4, 0, 16, 8, 5),
        3 => (4, 0, 32, 32, 6),
        4 => (4, 4, 16, 16, SKIP_NEVER),
        5 => (8, 16, 32, 32, SKIP_NEVER),
        6 => (8, 16, 128, 128, SKIP_NEVER),
        7 => (8, 32, 128, 256, SKIP_NEVER),
        8 => (32, 128, 258, 1024, SKIP_NEVER),
        9 => (32, 258, 258, 4096, SKIP_NEVER),
        _ => return None,
    };
    Some(LevelParams {
        good,
        lazy,
        nice,
        chain,
        fast_skip_hashing,
    })
}

fn hash4(b: &[u8]) -> u32 {
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    v.wrapping_mul(0x1e35a7bd) >> (32 - HASH_BITS)
}

pub(super) struct Lazy {
    p: LevelParams,
    window: Box<[u8]>,
    window_end: usize,
    /// Next position to process.
    index: usize,
    /// Where the tokens of the current block start (`NO_BLOCK_START` once slid out).
    block_start: usize,
    /// Lazy levels: `window[index - 1]` still awaits a token.
    byte_available: bool,
    tokens: Vec<Token>,
    /// Stream position + `hash_offset` of the newest string per hash (0 = none).
    hash_head: Box<[u32]>,
    /// Per window position, the previous string with the same hash.
    hash_prev: Box<[u32]>,
    hash_offset: i64,
    chain_head: i64,
    /// The match found at the previous position (lazy levels).
    length: i64,
    offset: i64,
    max_insert_index: i64,
}

impl Lazy {
    pub fn new(p: LevelParams) -> Self {
        Lazy {
            p,
            window: vec![0; 2 * WINDOW_SIZE].into_boxed_slice(),
            window_end: 0,
            index: 0,
            block_start: 0,
            byte_available: false,
            tokens: Vec::with_capacity(MAX_FLATE_BLOCK_TOKENS + 1),
            hash_head: vec![0; HASH_SIZE].into_boxed_slice(),
            hash_prev: vec![0; WINDOW_SIZE].into_boxed_slice(),
            hash_offset: 1,
            chain_head: -1,
            length: MIN_MATCH_LENGTH as i64 - 1,
            offset: 0,
            max_insert_index: 0,
        }
    }

    /// Go's `fillDeflate`: slides the window once processing has passed its end zone, then
    /// copies as much of `b` as fits. Returns the bytes taken.
    pub fn fill(&mut self, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW_SIZE - (MIN_MATCH_LENGTH + MAX_MATCH_LENGTH) {
            self.window.copy_within(WINDOW_SIZE..2 * WINDOW_SIZE, 0);
            self.index -= WINDOW_SIZE;
            self.window_end -= WINDOW_SIZE;
            if self.block_start >= WINDOW_SIZE {
                self.block_start -= WINDOW_SIZE;
            } else {
                self.block_start = NO_BLOCK_START;
            }
            self.hash_offset += WINDOW_SIZE as i64;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.hash_prev.iter_mut().chain(self.hash_head.iter_mut()) {
                    *v = if i64::from(*v) > delta {
                        (i64::from(*v) - delta) as u32
                    } else {
                        0
                    };
                }
            }
        }
        let n = b.len().min(self.window.len() - self.window_end);
        self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    fn insert_hash(&mut self, index: usize) {
        let hash = hash4(&self.window[index..index + MIN_MATCH_LENGTH]);
        let hh = &mut self.hash_head[(hash & HASH_MASK) as usize];
        self.hash_prev[index & WINDOW_MASK] = *hh;
        *hh = (index as i64 + self.hash_offset) as u32;
    }

    /// Writes the pending tokens as a block ending at window position `index`.
    fn write_block(&mut self, w: &mut HuffmanBitWriter, index: usize) {
        if index > 0 {
            // Go passes the block's bytes only while they are still in the window, so
            // a block that began before the last slide cannot be stored.
            let window = (self.block_start <= index).then(|| &self.window[self.block_start..index]);
            self.block_start = index;
            w.write_block(&self.tokens, false, window);
        }
        self.tokens.clear();
    }

    /// Go's `deflate` step: tokenizes what the lookahead allows; with `sync`, everything,
    /// writing the last partial block.
    pub fn step(&mut self, w: &mut HuffmanBitWriter, sync: bool) {
        let min_lookahead = MIN_MATCH_LENGTH + MAX_MATCH_LENGTH;
        if self.window_end - self.index < min_lookahead && !sync {
            return;
        }
        let fast = self.p.fast_skip_hashing != SKIP_NEVER;
        self.max_insert_index = self.window_end as i64 - (MIN_MATCH_LENGTH as i64 - 1);
        loop {
            let lookahead = self.window_end - self.index;
            if lookahead < min_lookahead {
                if !sync {
                    break;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        // The last byte still needs its literal.
                        self.tokens.push(literal_token(self.window[self.index - 1]));
                        self.byte_available = false;
                    }
                    if !self.tokens.is_empty() {
                        self.write_block(w, self.index);
                    }
                    break;
                }
            }
            if (self.index as i64) < self.max_insert_index {
                let hash = hash4(&self.window[self.index..self.index + MIN_MATCH_LENGTH]);
                let hh = &mut self.hash_head[(hash & HASH_MASK) as usize];
                self.chain_head = i64::from(*hh);
                self.hash_prev[self.index & WINDOW_MASK] = *hh;
                *hh = (self.index as i64 + self.hash_offset) as u32;
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            self.length = MIN_MATCH_LENGTH as i64 - 1;
            self.offset = 0;
            let min_index = (self.index as i64 - WINDOW_SIZE as i64).max(0);
            let lookahead_i = lookahead as i64;

            if self.chain_head - self.hash_offset >= min_index
                && (fast && lookahead_i > MIN_MATCH_LENGTH as i64 - 1
                    || !fast && lookahead_i > prev_length && prev_length < self.p.lazy)
                && let Some((length, offset)) = self.find_match(
                    self.index,
                    self.chain_head - self.hash_offset,
                    MIN_MATCH_LENGTH as i64 - 1,
                    lookahead,
                )
            {
                self.length = length;
                self.offset = offset;
            }
            if fast && self.length >= MIN_MATCH_LENGTH as i64
                || !fast && prev_length >= MIN_MATCH_LENGTH as i64 && self.length <= prev_length
            {
                // Greedy: take this match. Lazy: the previous match is not beaten, take it.
                let (l, o) = if fast {
                    (self.length, self.offset)
                } else {
                    (prev_length, prev_offset)
                };
                self.tokens.push(match_token(
                    (l - BASE_MATCH_LENGTH) as u32,
                    (o - BASE_MATCH_OFFSET) as u32,
                ));
                if self.length <= self.p.fast_skip_hashing {
                    // Hash every string the match covers (index, and for lazy levels
                    // index - 1, are hashed already).
                    let new_index = if fast {
                        self.index as i64 + self.length
                    } else {
                        self.index as i64 + prev_length - 1
                    };
                    let mut index = self.index + 1;
                    while (index as i64) < new_index {
                        if (index as i64) < self.max_insert_index {
                            self.insert_hash(index);
                        }
                        index += 1;
                    }
                    self.index = index;
                    if !fast {
                        self.byte_available = false;
                        self.length = MIN_MATCH_LENGTH as i64 - 1;
                    }
                } else {
                    // Long match on a greedy level: skip hashing its inside.
                    self.index += self.length as usize;
                }
                if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                    self.write_block(w, self.index);
                }
            } else {
                if fast || self.byte_available {
                    let i = if fast { self.index } else { self.index - 1 };
                    self.tokens.push(literal_token(self.window[i]));
                    if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                        self.write_block(w, i + 1);
                    }
                }
                self.index += 1;
                if !fast {
                    self.byte_available = true;
                }
            }
        }
    }

    /// Go's `findMatch`: the longest match longer than `prev_length` along the hash chain
    /// from `prev_head`, within `chain` tries.
    fn find_match(
        &self,
        pos: usize,
        prev_head: i64,
        prev_length: i64,
        lookahead: usize,
    ) -> Option<(i64, i64)> {
        let min_match_look = MAX_MATCH_LENGTH.min(lookahead);
        let win = &self.window[..pos + min_match_look];
        // A match this long ends the search.
        let nice = ((win.len() - pos) as i64).min(self.p.nice);
        let mut tries = self.p.chain;
        let mut length = prev_length;
        if length >= self.p.good {
            tries >>= 2;
        }
        let mut w_end = win[pos + length as usize];
        let w_pos = &win[pos..];
        let min_index = pos as i64 - WINDOW_SIZE as i64;
        let mut found = None;
        let mut i = prev_head;
        while tries > 0 {
            let iu = i as usize;
            if w_end == win[iu + length as usize] {
                let n = common_prefix(&win[iu..iu + min_match_look], w_pos) as i64;
                // Go drops 4-byte matches farther than 4 KiB (their code costs more
                // than the literals).
                if n > length && (n > MIN_MATCH_LENGTH as i64 || pos as i64 - i <= 4096) {
                    length = n;
                    found = Some((n, pos as i64 - i));
                    if n >= nice {
                        break;
                    }
                    w_end = win[pos + n as usize];
                }
            }
            if i == min_index {
                // hash_prev[i & WINDOW_MASK] already holds a newer position.
                break;
            }
            i = i64::from(self.hash_prev[iu & WINDOW_MASK]) - self.hash_offset;
            if i < min_index || i < 0 {
                break;
            }
            tries -= 1;
        }
        found
    }
}

const _: () = assert!(MAX_MATCH_OFFSET == WINDOW_SIZE);
