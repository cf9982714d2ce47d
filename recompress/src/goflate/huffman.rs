//! Go's length-limited Huffman code construction (huffman_code.go), bit for bit.
//!
//! Invariant: for the same frequency table and bit limit, [`HuffmanEncoder::generate`]
//! assigns every symbol the same length and code as Go's `huffmanEncoder.generate`. Go
//! sorts with `sort.Sort`, which is not stable, but both of its orders are total (by
//! frequency then symbol; by symbol), so any correct sort gives Go's order.
//!
//! Like Go, a symbol whose frequency drops to zero keeps its old `code` and only has its
//! `len` cleared; that state is never written, but keeping it keeps the port literal.

/// Largest code length Go's construction supports (exclusive).
const MAX_BITS_LIMIT: usize = 16;
/// Number of literal/length symbols.
pub(super) const MAX_NUM_LIT: usize = 286;

/// A code: `code` holds the bits already reversed for LSB-first writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct HCode {
    pub code: u16,
    pub len: u16,
}

#[derive(Debug, Clone, Copy, Default)]
struct LiteralNode {
    literal: u16,
    freq: i32,
}

/// The sentinel Go places after the last leaf.
const MAX_NODE: LiteralNode = LiteralNode {
    literal: u16::MAX,
    freq: i32::MAX,
};

#[derive(Debug, Clone, Copy, Default)]
struct LevelInfo {
    last_freq: i32,
    next_char_freq: i32,
    next_pair_freq: i32,
    needed: i32,
}

/// One Huffman code table and the scratch space Go keeps with it.
#[derive(Debug, Clone)]
pub(super) struct HuffmanEncoder {
    pub codes: Vec<HCode>,
    freqcache: Vec<LiteralNode>,
    bit_count: [i32; 17],
}

impl HuffmanEncoder {
    pub fn new(size: usize) -> Self {
        HuffmanEncoder {
            codes: vec![HCode::default(); size],
            freqcache: Vec::new(),
            bit_count: [0; 17],
        }
    }

    /// RFC 1951's fixed literal/length code.
    pub fn fixed_literal() -> Self {
        let mut h = HuffmanEncoder::new(MAX_NUM_LIT);
        for (ch, c) in (0u16..).zip(h.codes.iter_mut()) {
            let (bits, size) = match ch {
                0..=143 => (ch + 48, 8),
                144..=255 => (ch + 400 - 144, 9),
                256..=279 => (ch - 256, 7),
                _ => (ch + 192 - 280, 8),
            };
            *c = HCode {
                code: reverse_bits(bits, size),
                len: u16::from(size),
            };
        }
        h
    }

    /// RFC 1951's fixed distance code.
    pub fn fixed_offset() -> Self {
        let mut h = HuffmanEncoder::new(30);
        for (ch, c) in (0u16..).zip(h.codes.iter_mut()) {
            *c = HCode {
                code: reverse_bits(ch, 5),
                len: 5,
            };
        }
        h
    }

    /// Bits needed to write symbols with these frequencies.
    pub fn bit_length(&self, freq: &[i32]) -> i64 {
        freq.iter()
            .zip(&self.codes)
            .filter(|(f, _)| **f != 0)
            .map(|(f, c)| i64::from(*f) * i64::from(c.len))
            .sum()
    }

    /// Makes this the minimum code of at most `max_bits` bits per symbol for `freq`
    /// (`freq.len()` must not exceed the table size).
    pub fn generate(&mut self, freq: &[i32], max_bits: i32) {
        let mut list = std::mem::take(&mut self.freqcache);
        if list.is_empty() {
            // Room for the longest table plus Go's sentinel.
            list = vec![LiteralNode::default(); MAX_NUM_LIT + 1];
        }
        let mut count = 0;
        for ((i, &f), code) in (0u16..).zip(freq).zip(self.codes.iter_mut()) {
            if f != 0 {
                list[count] = LiteralNode {
                    literal: i,
                    freq: f,
                };
                count += 1;
            } else {
                code.len = 0;
            }
        }
        if count <= 2 {
            // Go's special case: one or two symbols all get length 1, in symbol order.
            for (i, node) in (0u16..).zip(&list[..count]) {
                self.codes[usize::from(node.literal)] = HCode { code: i, len: 1 };
            }
            self.freqcache = list;
            return;
        }
        list[..count].sort_unstable_by_key(|n| (n.freq, n.literal));
        let max_bits = self.bit_counts(&mut list[..=count], max_bits);
        let bit_count = self.bit_count;
        self.assign_encoding_and_size(&bit_count[..=max_bits], &mut list[..count]);
        self.freqcache = list;
    }

    /// How many symbols get each code length (Go's `bitCounts`, a package-merge variant).
    /// `list` holds the `n >= 3` leaves by increasing frequency plus one slot for the
    /// sentinel. Fills `self.bit_count[1..=max]` and returns `max`.
    fn bit_counts(&mut self, list: &mut [LiteralNode], max_bits: i32) -> usize {
        let n = list.len() - 1;
        list[n] = MAX_NODE;
        let n = n as i32;
        // A tree over n leaves is at most n - 1 deep.
        let max_bits = max_bits.min(n - 1).clamp(1, MAX_BITS_LIMIT as i32 - 1) as usize;

        // Level 0 is a bogus level whose `needed` stays 0, so level 1 never takes a pair.
        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT];
        // leaf_counts[i][j]: leaves left of the level-j ancestor of level i's rightmost node.
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT]; MAX_BITS_LIMIT];
        for level in 1..=max_bits {
            levels[level] = LevelInfo {
                last_freq: list[1].freq,
                next_char_freq: list[2].freq,
                next_pair_freq: list[0].freq.wrapping_add(list[1].freq),
                needed: 0,
            };
            leaf_counts[level][level] = 2;
            if level == 1 {
                levels[level].next_pair_freq = i32::MAX;
            }
        }
        // 2n - 2 items are needed at the top level; two are already there.
        levels[max_bits].needed = 2 * n - 4;

        let mut level = max_bits;
        loop {
            let l = levels[level];
            if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
                // Out of leaves and pairs: finish this level for good.
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }
            let prev_freq = l.last_freq;
            if l.next_char_freq < l.next_pair_freq {
                // The next item on this row is a leaf.
                let next = leaf_counts[level][level] + 1;
                levels[level].last_freq = l.next_char_freq;
                leaf_counts[level][level] = next;
                levels[level].next_char_freq = list[next as usize].freq;
            } else {
                // The next item is a pair from the row below, which must make two more.
                levels[level].last_freq = l.next_pair_freq;
                let (below, here) = leaf_counts.split_at_mut(level);
                here[0][..level].copy_from_slice(&below[level - 1][..level]);
                levels[level - 1].needed = 2;
            }
            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                if level == max_bits {
                    break;
                }
                levels[level + 1].next_pair_freq = prev_freq.wrapping_add(levels[level].last_freq);
                level += 1;
            } else {
                // Replenish the rows below that a pair was taken from.
                while levels[level - 1].needed > 0 {
                    level -= 1;
                }
            }
        }
        debug_assert_eq!(leaf_counts[max_bits][max_bits], n);

        let counts = &leaf_counts[max_bits];
        for (bits, level) in (1..=max_bits).zip((1..=max_bits).rev()) {
            self.bit_count[bits] = counts[level] - counts[level - 1];
        }
        max_bits
    }

    /// Canonical codes (RFC 1951 3.2.2): the `bit_count[len]` least frequent remaining
    /// leaves get length `len`, codes assigned in symbol order.
    fn assign_encoding_and_size(&mut self, bit_count: &[i32], list: &mut [LiteralNode]) {
        let mut code: u16 = 0;
        let mut end = list.len();
        for (n, &bits) in bit_count.iter().enumerate() {
            code <<= 1;
            if n == 0 || bits == 0 {
                continue;
            }
            let start = end.saturating_sub(bits as usize);
            let chunk = &mut list[start..end];
            chunk.sort_unstable_by_key(|node| node.literal);
            for node in chunk.iter() {
                self.codes[usize::from(node.literal)] = HCode {
                    code: reverse_bits(code, n as u8),
                    len: n as u16,
                };
                code = code.wrapping_add(1);
            }
            end = start;
        }
    }
}

/// The low `bit_length` bits of `number`, reversed.
pub(super) fn reverse_bits(number: u16, bit_length: u8) -> u16 {
    number
        .wrapping_shl(16 - u32::from(bit_length))
        .reverse_bits()
}
