//! Go's block writer (huffman_bit_writer.go): block type choice and the exact bit layout.
//!
//! Invariant: given the same calls (`write_block`, `write_block_dynamic`,
//! `write_block_huff`, `write_stored_header`, `write_bytes`, `flush`) the bytes appended to
//! [`HuffmanBitWriter::out`] are the bytes Go's writer hands its `io.Writer`. Go stages
//! output in a 248-byte buffer; that only changes how the bytes are chunked, so here they
//! go straight to a `Vec` the caller drains.

use super::huffman::{HCode, HuffmanEncoder, MAX_NUM_LIT};
use super::token::{
    END_BLOCK_MARKER, MATCH_TYPE, Token, length_code, offset_code, token_length, token_offset,
};

/// Number of distance codes.
const OFFSET_CODE_COUNT: usize = 30;
/// First length symbol.
const LENGTH_CODES_START: usize = 257;
/// Number of code-length codes.
const CODEGEN_CODE_COUNT: usize = 19;
/// End marker in the codegen array.
const BAD_CODE: u8 = 255;
/// Largest stored block.
pub(super) const MAX_STORE_BLOCK_SIZE: usize = 65535;

static LENGTH_EXTRA_BITS: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
static LENGTH_BASE: [u32; 29] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255,
];
static OFFSET_EXTRA_BITS: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
static OFFSET_BASE: [u32; 30] = [
    0x000000, 0x000001, 0x000002, 0x000003, 0x000004, 0x000006, 0x000008, 0x00000c, 0x000010,
    0x000018, 0x000020, 0x000030, 0x000040, 0x000060, 0x000080, 0x0000c0, 0x000100, 0x000180,
    0x000200, 0x000300, 0x000400, 0x000600, 0x000800, 0x000c00, 0x001000, 0x001800, 0x002000,
    0x003000, 0x004000, 0x006000,
];
/// The order code-length code lengths are written in.
static CODEGEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Which literal/distance tables a block is written with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tables {
    Fixed,
    Dynamic,
}

pub(super) struct HuffmanBitWriter {
    /// Whole bytes written so far and not yet drained by the caller.
    pub out: Vec<u8>,
    bits: u64,
    nbits: u32,
    codegen_freq: [i32; CODEGEN_CODE_COUNT],
    literal_freq: Vec<i32>,
    offset_freq: Vec<i32>,
    codegen: Vec<u8>,
    literal_encoding: HuffmanEncoder,
    offset_encoding: HuffmanEncoder,
    codegen_encoding: HuffmanEncoder,
    fixed_literal: HuffmanEncoder,
    fixed_offset: HuffmanEncoder,
    /// The distance table of Huffman-only blocks (one code, never used).
    huff_offset: HuffmanEncoder,
}

impl HuffmanBitWriter {
    pub fn new() -> Self {
        let mut huff_offset = HuffmanEncoder::new(OFFSET_CODE_COUNT);
        let mut freq = [0i32; OFFSET_CODE_COUNT];
        freq[0] = 1;
        huff_offset.generate(&freq, 15);
        HuffmanBitWriter {
            out: Vec::new(),
            bits: 0,
            nbits: 0,
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            literal_freq: vec![0; MAX_NUM_LIT],
            offset_freq: vec![0; OFFSET_CODE_COUNT],
            codegen: vec![0; MAX_NUM_LIT + OFFSET_CODE_COUNT + 1],
            literal_encoding: HuffmanEncoder::new(MAX_NUM_LIT),
            offset_encoding: HuffmanEncoder::new(OFFSET_CODE_COUNT),
            codegen_encoding: HuffmanEncoder::new(CODEGEN_CODE_COUNT),
            fixed_literal: HuffmanEncoder::fixed_literal(),
            fixed_offset: HuffmanEncoder::fixed_offset(),
            huff_offset,
        }
    }

    /// Writes the pending bits, padded with zeros to a whole byte.
    pub fn flush(&mut self) {
        while self.nbits != 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    /// Go keeps up to 48 bits pending and writes six bytes at a time; the bytes are the
    /// same as writing each byte as soon as it is full.
    fn put_bits(&mut self) {
        if self.nbits >= 48 {
            let bits = self.bits;
            self.bits >>= 48;
            self.nbits -= 48;
            self.out.extend_from_slice(&bits.to_le_bytes()[..6]);
        }
    }

    fn write_bits(&mut self, b: u32, nb: u32) {
        self.bits |= u64::from(b) << self.nbits;
        self.nbits += nb;
        self.put_bits();
    }

    fn write_code(&mut self, c: HCode) {
        self.bits |= u64::from(c.code) << self.nbits;
        self.nbits += u32::from(c.len);
        self.put_bits();
    }

    /// Raw bytes; only after a stored header, which leaves the bit position byte-aligned.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.nbits & 7, 0, "write_bytes with unfinished bits");
        self.flush();
        self.out.extend_from_slice(bytes);
    }

    pub fn write_stored_header(&mut self, length: usize, is_eof: bool) {
        self.write_bits(u32::from(is_eof), 3);
        self.flush();
        let length = length as u16;
        self.write_bits(u32::from(length), 16);
        self.write_bits(u32::from(!length), 16);
    }

    fn write_fixed_header(&mut self, is_eof: bool) {
        self.write_bits(if is_eof { 3 } else { 2 }, 3);
    }

    /// Run-length codes the literal and distance code lengths (RFC 1951 3.2.7) into
    /// `self.codegen` (terminated by `BAD_CODE`) and counts them in `self.codegen_freq`.
    /// `huff` selects the Huffman-only distance table instead of `offset_encoding`.
    fn generate_codegen(&mut self, num_literals: usize, num_offsets: usize, huff: bool) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        let off_enc = if huff {
            &self.huff_offset
        } else {
            &self.offset_encoding
        };
        let codegen = &mut self.codegen;
        for (dst, c) in codegen[..num_literals]
            .iter_mut()
            .zip(&self.literal_encoding.codes)
        {
            *dst = c.len as u8;
        }
        for (dst, c) in codegen[num_literals..num_literals + num_offsets]
            .iter_mut()
            .zip(&off_enc.codes)
        {
            *dst = c.len as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        // The output is written over the input: it never gets ahead of the reading.
        let freq = &mut self.codegen_freq;
        let mut size = codegen[0];
        let mut count: i32 = 1;
        let mut out_index = 0;
        let mut in_index = 1;
        while size != BAD_CODE {
            let next_size = codegen[in_index];
            in_index += 1;
            if next_size == size {
                count += 1;
                continue;
            }
            if size != 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
                while count >= 3 {
                    let n = count.min(6);
                    codegen[out_index] = 16;
                    codegen[out_index + 1] = (n - 3) as u8;
                    out_index += 2;
                    freq[16] += 1;
                    count -= n;
                }
            } else {
                while count >= 11 {
                    let n = count.min(138);
                    codegen[out_index] = 18;
                    codegen[out_index + 1] = (n - 11) as u8;
                    out_index += 2;
                    freq[18] += 1;
                    count -= n;
                }
                if count >= 3 {
                    codegen[out_index] = 17;
                    codegen[out_index + 1] = (count - 3) as u8;
                    out_index += 2;
                    freq[17] += 1;
                    count = 0;
                }
            }
            while count > 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
            }
            size = next_size;
            count = 1;
        }
        codegen[out_index] = BAD_CODE;
    }

    /// Size in bits of a dynamic block, and how many code-length code lengths it writes.
    fn dynamic_size(&self, huff: bool, extra_bits: i64) -> (i64, usize) {
        let mut num_codegens = CODEGEN_CODE_COUNT;
        while num_codegens > 4 && self.codegen_freq[CODEGEN_ORDER[num_codegens - 1]] == 0 {
            num_codegens -= 1;
        }
        let off_enc = if huff {
            &self.huff_offset
        } else {
            &self.offset_encoding
        };
        let header = 3
            + 5
            + 5
            + 4
            + 3 * num_codegens as i64
            + self.codegen_encoding.bit_length(&self.codegen_freq)
            + i64::from(self.codegen_freq[16]) * 2
            + i64::from(self.codegen_freq[17]) * 3
            + i64::from(self.codegen_freq[18]) * 7;
        let size = header
            + self.literal_encoding.bit_length(&self.literal_freq)
            + off_enc.bit_length(&self.offset_freq)
            + extra_bits;
        (size, num_codegens)
    }

    fn fixed_size(&self, extra_bits: i64) -> i64 {
        3 + self.fixed_literal.bit_length(&self.literal_freq)
            + self.fixed_offset.bit_length(&self.offset_freq)
            + extra_bits
    }

    /// Size in bits of `input` as one stored block, if it fits one. Go passes a nil slice
    /// when the block's bytes are no longer in its window: that is `None`.
    fn stored_size(input: Option<&[u8]>) -> Option<i64> {
        match input {
            Some(b) if b.len() <= MAX_STORE_BLOCK_SIZE => Some((b.len() as i64 + 5) * 8),
            _ => None,
        }
    }

    fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        is_eof: bool,
    ) {
        self.write_bits(if is_eof { 5 } else { 4 }, 3);
        self.write_bits((num_literals - 257) as u32, 5);
        self.write_bits((num_offsets - 1) as u32, 5);
        self.write_bits((num_codegens - 4) as u32, 4);
        for &sym in &CODEGEN_ORDER[..num_codegens] {
            let len = self.codegen_encoding.codes[sym].len;
            self.write_bits(u32::from(len), 3);
        }
        let mut i = 0;
        loop {
            let code_word = self.codegen[i];
            i += 1;
            if code_word == BAD_CODE {
                break;
            }
            let code = self.codegen_encoding.codes[usize::from(code_word)];
            self.write_code(code);
            let extra = match code_word {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => continue,
            };
            let value = self.codegen[i];
            i += 1;
            self.write_bits(u32::from(value), extra);
        }
    }

    /// Counts symbol frequencies of `tokens` plus the end-of-block marker, builds both
    /// dynamic tables, and returns how many literal and distance codes the header lists.
    fn index_tokens(&mut self, tokens: &[Token]) -> (usize, usize) {
        self.literal_freq.fill(0);
        self.offset_freq.fill(0);
        for &t in tokens {
            if t < MATCH_TYPE {
                self.literal_freq[t as usize] += 1;
                continue;
            }
            self.literal_freq[LENGTH_CODES_START + length_code(token_length(t)) as usize] += 1;
            self.offset_freq[offset_code(token_offset(t)) as usize] += 1;
        }
        self.literal_freq[END_BLOCK_MARKER] += 1;

        let mut num_literals = self.literal_freq.len();
        while self.literal_freq[num_literals - 1] == 0 {
            num_literals -= 1;
        }
        let mut num_offsets = self.offset_freq.len();
        while num_offsets > 0 && self.offset_freq[num_offsets - 1] == 0 {
            num_offsets -= 1;
        }
        if num_offsets == 0 {
            // No match: a dynamic header still needs one distance code.
            self.offset_freq[0] = 1;
            num_offsets = 1;
        }
        self.literal_encoding.generate(&self.literal_freq, 15);
        self.offset_encoding.generate(&self.offset_freq, 15);
        (num_literals, num_offsets)
    }

    /// Writes `tokens` and the end-of-block marker with the given tables.
    fn write_tokens(&mut self, tokens: &[Token], tables: Tables) {
        let (lit, off) = match tables {
            Tables::Fixed => (&self.fixed_literal.codes, &self.fixed_offset.codes),
            Tables::Dynamic => (&self.literal_encoding.codes, &self.offset_encoding.codes),
        };
        // Local copies of the accumulator keep the borrow of the tables simple.
        let mut w = BitAcc {
            out: &mut self.out,
            bits: self.bits,
            nbits: self.nbits,
        };
        for &t in tokens {
            if t < MATCH_TYPE {
                w.code(lit[t as usize]);
                continue;
            }
            let length = token_length(t);
            let lc = length_code(length) as usize;
            w.code(lit[lc + LENGTH_CODES_START]);
            let extra = u32::from(LENGTH_EXTRA_BITS[lc]);
            if extra > 0 {
                w.bits(length - LENGTH_BASE[lc], extra);
            }
            let offset = token_offset(t);
            let oc = offset_code(offset) as usize;
            w.code(off[oc]);
            let extra = u32::from(OFFSET_EXTRA_BITS[oc]);
            if extra > 0 {
                w.bits(offset - OFFSET_BASE[oc], extra);
            }
        }
        w.code(lit[END_BLOCK_MARKER]);
        let (bits, nbits) = (w.bits, w.nbits);
        self.bits = bits;
        self.nbits = nbits;
    }

    /// Go's `writeBlock` (levels 2-9): the smallest of fixed, dynamic and stored.
    pub fn write_block(&mut self, tokens: &[Token], eof: bool, input: Option<&[u8]>) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        let stored = Self::stored_size(input);
        let mut extra_bits: i64 = 0;
        if stored.is_some() {
            // Extra bits cost the same in fixed and dynamic blocks; Go only counts them
            // when a stored block competes.
            for lc in LENGTH_CODES_START + 8..num_literals {
                extra_bits += i64::from(self.literal_freq[lc])
                    * i64::from(LENGTH_EXTRA_BITS[lc - LENGTH_CODES_START]);
            }
            for (freq, extra) in self.offset_freq[..num_offsets]
                .iter()
                .zip(&OFFSET_EXTRA_BITS)
                .skip(4)
            {
                extra_bits += i64::from(*freq) * i64::from(*extra);
            }
        }
        let mut tables = Tables::Fixed;
        let mut size = self.fixed_size(extra_bits);

        self.generate_codegen(num_literals, num_offsets, false);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (dynamic_size, num_codegens) = self.dynamic_size(false, extra_bits);
        if dynamic_size < size {
            size = dynamic_size;
            tables = Tables::Dynamic;
        }
        if let (Some(stored), Some(input)) = (stored, input)
            && stored < size
        {
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }
        match tables {
            Tables::Fixed => self.write_fixed_header(eof),
            Tables::Dynamic => {
                self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof)
            }
        }
        self.write_tokens(tokens, tables);
    }

    /// Go's `writeBlockDynamic` (level 1): always dynamic, unless storing `input` is
    /// within 1/16 of it.
    pub fn write_block_dynamic(&mut self, tokens: &[Token], eof: bool, input: &[u8]) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        self.generate_codegen(num_literals, num_offsets, false);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(false, 0);
        if let Some(stored) = Self::stored_size(Some(input))
            && stored < size + (size >> 4)
        {
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }
        self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
        self.write_tokens(tokens, Tables::Dynamic);
    }

    /// Go's `writeBlockHuff`: `input` as literals under a dynamic table, or stored when
    /// that gains less than 1/16.
    pub fn write_block_huff(&mut self, eof: bool, input: &[u8]) {
        self.literal_freq.fill(0);
        for &b in input {
            self.literal_freq[usize::from(b)] += 1;
        }
        self.literal_freq[END_BLOCK_MARKER] = 1;
        const NUM_LITERALS: usize = END_BLOCK_MARKER + 1;
        // Go sets only this entry; stale counts elsewhere have zero-length codes in
        // `huff_offset`, so they never count.
        self.offset_freq[0] = 1;
        const NUM_OFFSETS: usize = 1;
        self.literal_encoding.generate(&self.literal_freq, 15);

        self.generate_codegen(NUM_LITERALS, NUM_OFFSETS, true);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(true, 0);
        if let Some(stored) = Self::stored_size(Some(input))
            && stored < size + (size >> 4)
        {
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }
        self.write_dynamic_header(NUM_LITERALS, NUM_OFFSETS, num_codegens, eof);
        let codes = &self.literal_encoding.codes;
        let mut w = BitAcc {
            out: &mut self.out,
            bits: self.bits,
            nbits: self.nbits,
        };
        for &b in input {
            w.code(codes[usize::from(b)]);
        }
        w.code(codes[END_BLOCK_MARKER]);
        let (bits, nbits) = (w.bits, w.nbits);
        self.bits = bits;
        self.nbits = nbits;
    }
}

/// The bit accumulator of the hot loops, borrowed apart from the code tables.
struct BitAcc<'a> {
    out: &'a mut Vec<u8>,
    bits: u64,
    nbits: u32,
}

impl BitAcc<'_> {
    #[inline]
    fn code(&mut self, c: HCode) {
        self.bits(u32::from(c.code), u32::from(c.len));
    }

    #[inline]
    fn bits(&mut self, b: u32, nb: u32) {
        self.bits |= u64::from(b) << self.nbits;
        self.nbits += nb;
        if self.nbits >= 48 {
            let bits = self.bits;
            self.bits >>= 48;
            self.nbits -= 48;
            self.out.extend_from_slice(&bits.to_le_bytes()[..6]);
        }
    }
}
