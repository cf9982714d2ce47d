//! An exact port of the encoder of Go's `compress/flate` (and the framing of
//! `compress/gzip`), so deflate streams written by Go programs (OCI image layers, most
//! registry tooling) can be re-created from their plain content with a recipe of a few
//! bytes ("go flate, level L") instead of a per-stream correction list.
//!
//! Invariant: for the same input, level and sequence of write / flush / finish calls,
//! [`GoDeflater`] writes the same bytes as Go's `flate.Writer` (`NewWriter`, `Write`,
//! `Flush`, `Close`), and [`deflate`] the same bytes as one `Write` of everything followed
//! by `Close`. Without flushes the output does not depend on how the input is split across
//! writes (Go's neither: both only act on full windows or at a sync point).
//!
//! Followed sources: Go 1.19.8 `src/compress/flate` (`deflate.go`, `deflatefast.go`,
//! `huffman_bit_writer.go`, `huffman_code.go`, `token.go`) and `src/compress/gzip/gzip.go`.
//! This is the encoder Go shipped from 1.7 through 1.26. Go 1.27 replaced it with a port
//! of klauspost/compress's encoder (golang/go#75532, commit 388145c51b; `level1.go` ..
//! `level6.go`), whose output differs: streams written by Go 1.27 and later are not
//! re-created by this module.
//!
//! Memory is bounded whatever the input size: a 64 KiB window, Go's hash tables (about
//! 640 KiB for levels 2-9, 128 KiB for level 1) and at most one block of pending output.

mod bit_writer;
mod fast;
mod huffman;
mod lazy;
mod token;

use std::io::Write;

use bit_writer::{HuffmanBitWriter, MAX_STORE_BLOCK_SIZE};
use token::Token;

/// Shortest match Go emits (RFC 1951 allows 3).
const MIN_MATCH_LENGTH: usize = 4;
/// Longest match.
const MAX_MATCH_LENGTH: usize = 258;
/// Farthest match distance.
const MAX_MATCH_OFFSET: usize = 1 << 15;

/// Go's `flate.HuffmanOnly`.
pub const HUFFMAN_ONLY: i32 = -2;
/// Go's `flate.DefaultCompression` (level 6).
pub const DEFAULT_COMPRESSION: i32 = -1;

/// Errors of the Go deflate port.
#[derive(Debug, thiserror::Error)]
pub enum GoFlateError {
    /// Go accepts levels -2 (Huffman only), -1 (default, 6), 0 (stored) and 1 to 9.
    #[error("go flate: invalid compression level {0}: want a value in -2..=9")]
    InvalidLevel(i32),
    /// Writing the compressed stream failed.
    #[error("go flate: writing the compressed stream: {0}")]
    Io(#[from] std::io::Error),
    /// An earlier write failed; like Go's writer, this one stays failed.
    #[error("go flate: the writer failed earlier and cannot continue")]
    Failed,
}

/// The raw deflate stream Go's `flate.NewWriter(w, level)` writes for one `Write(plain)`
/// and `Close()`.
pub fn deflate(plain: &[u8], level: i32) -> Result<Vec<u8>, GoFlateError> {
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    let mut d = GoDeflater::new(level)?;
    d.write(plain, &mut out)?;
    d.finish(&mut out)?;
    Ok(out)
}

/// The gzip member Go's `gzip.NewWriterLevel(w, level)` writes with its default header
/// (no name, comment or extra field, modification time 0, OS 255) for one `Write(plain)`
/// and `Close()`.
pub fn gzip(plain: &[u8], level: i32) -> Result<Vec<u8>, GoFlateError> {
    let mut d = GoDeflater::new(level)?;
    let mut out = gzip_header(level).to_vec();
    d.write(plain, &mut out)?;
    d.finish(&mut out)?;
    out.extend_from_slice(&crc32fast::hash(plain).to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    Ok(out)
}

/// The encoder this module re-creates, as recipes name it: a recipe that uses it records
/// this, and a build whose port reproduces another encoder (a later Go's) refuses the
/// recipe naming both rather than writing different bytes.
pub const PORT_ID: &str = "go1.7-1.26";

/// Go's levels, most used first: the order [`find_level`] tries them in.
pub const LEVELS_BY_LIKELIHOOD: [i32; 11] = [6, 9, 1, 5, 4, 7, 8, 3, 2, HUFFMAN_ONLY, 0];

/// The Go level (as in [`LEVELS_BY_LIKELIHOOD`]; -1 is reported as 6) whose one-write
/// stream of `plain` is exactly `stream`, if any. Each candidate stops at its first byte
/// that differs from `stream`, so a wrong level usually costs one block of work, not a
/// whole compression.
pub fn find_level(plain: &[u8], stream: &[u8]) -> Option<i32> {
    LEVELS_BY_LIKELIHOOD.into_iter().find(|&level| {
        let mut check = PrefixCheck {
            want: stream,
            at: 0,
        };
        let Ok(mut d) = GoDeflater::new(level) else {
            return false;
        };
        d.write(plain, &mut check).is_ok()
            && d.finish(&mut check).is_ok()
            && check.at == stream.len()
    })
}

/// A writer that accepts only the bytes of `want`, in order, and fails at the first other
/// byte (or past its end).
struct PrefixCheck<'a> {
    want: &'a [u8],
    at: usize,
}

impl Write for PrefixCheck<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.at + buf.len();
        if self.want.get(self.at..end) != Some(buf) {
            return Err(std::io::Error::other("differs from the stream"));
        }
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The 10-byte header Go's gzip writer starts a member with when no header field is set.
pub fn gzip_header(level: i32) -> [u8; 10] {
    // XFL: Go marks only the two extreme levels (DefaultCompression gets 0, not a 6 mark).
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// What a level runs (Go's `compressor.step` and `fill` choices).
enum Engine {
    /// Level 0: stored blocks of up to 65535 bytes.
    Store,
    /// Level -2: each 65535-byte block as literals under its own table.
    HuffmanOnly,
    /// Level 1.
    Fast {
        fast: Box<fast::DeflateFast>,
        tokens: Vec<Token>,
    },
    /// Levels 2-9.
    Lazy(Box<lazy::Lazy>),
}

/// A streaming Go `flate.Writer`: output identical to Go's for the same calls, memory
/// bounded by the window and tables.
pub struct GoDeflater {
    engine: Engine,
    w: HuffmanBitWriter,
    /// Input buffer of levels 0, -2 and 1 (levels 2-9 keep theirs in `Lazy`).
    window: Vec<u8>,
    failed: bool,
}

impl GoDeflater {
    /// A writer at `level` (-2..=9, -1 meaning 6), like `flate.NewWriter`.
    pub fn new(level: i32) -> Result<Self, GoFlateError> {
        let level = if level == DEFAULT_COMPRESSION {
            6
        } else {
            level
        };
        let engine = match level {
            0 => Engine::Store,
            HUFFMAN_ONLY => Engine::HuffmanOnly,
            1 => Engine::Fast {
                fast: Box::new(fast::DeflateFast::new()),
                tokens: Vec::with_capacity(MAX_STORE_BLOCK_SIZE + 1),
            },
            _ => match lazy::params(level) {
                Some(p) => Engine::Lazy(Box::new(lazy::Lazy::new(p))),
                None => return Err(GoFlateError::InvalidLevel(level)),
            },
        };
        let window = match engine {
            Engine::Lazy(_) => Vec::new(),
            _ => Vec::with_capacity(MAX_STORE_BLOCK_SIZE),
        };
        Ok(GoDeflater {
            engine,
            w: HuffmanBitWriter::new(),
            window,
            failed: false,
        })
    }

    /// Compresses `data` (Go's `Write`), writing whatever blocks complete to `out`.
    pub fn write<W: Write + ?Sized>(
        &mut self,
        mut data: &[u8],
        out: &mut W,
    ) -> Result<(), GoFlateError> {
        self.check()?;
        // Go's loop: process what the buffer holds, then refill it.
        while !data.is_empty() {
            self.step(false);
            self.drain(out)?;
            let n = self.fill(data);
            data = &data[n..];
        }
        Ok(())
    }

    /// Go's `Flush`: writes everything so far and an empty stored block (a sync marker),
    /// so a reader can decode all input given so far.
    pub fn flush<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), GoFlateError> {
        self.check()?;
        self.step(true);
        self.w.write_stored_header(0, false);
        self.w.flush();
        self.drain(out)
    }

    /// Go's `Close`: writes the rest, then an empty final stored block (Go always ends a
    /// stream this way).
    pub fn finish<W: Write + ?Sized>(mut self, out: &mut W) -> Result<(), GoFlateError> {
        self.check()?;
        self.step(true);
        self.w.write_stored_header(0, true);
        self.w.flush();
        self.drain(out)
    }

    fn check(&self) -> Result<(), GoFlateError> {
        if self.failed {
            Err(GoFlateError::Failed)
        } else {
            Ok(())
        }
    }

    fn drain<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), GoFlateError> {
        if self.w.out.is_empty() {
            return Ok(());
        }
        let r = out.write_all(&self.w.out);
        self.w.out.clear();
        if r.is_err() {
            self.failed = true;
        }
        Ok(r?)
    }

    fn fill(&mut self, data: &[u8]) -> usize {
        match &mut self.engine {
            Engine::Lazy(l) => l.fill(data),
            _ => {
                let n = data.len().min(MAX_STORE_BLOCK_SIZE - self.window.len());
                self.window.extend_from_slice(&data[..n]);
                n
            }
        }
    }

    /// Go's `step` of each level; `sync` is Go's `d.sync` (flush or close).
    fn step(&mut self, sync: bool) {
        let window_end = self.window.len();
        match &mut self.engine {
            Engine::Lazy(l) => l.step(&mut self.w, sync),
            Engine::Store => {
                if window_end > 0 && (window_end == MAX_STORE_BLOCK_SIZE || sync) {
                    self.w.write_stored_header(window_end, false);
                    self.w.write_bytes(&self.window);
                    self.window.clear();
                }
            }
            Engine::HuffmanOnly => {
                if window_end < MAX_STORE_BLOCK_SIZE && !sync || window_end == 0 {
                    return;
                }
                self.w.write_block_huff(false, &self.window);
                self.window.clear();
            }
            Engine::Fast { fast, tokens } => {
                // Go's encSpeed: encode only full 65535-byte blocks, except at a sync.
                if window_end < MAX_STORE_BLOCK_SIZE {
                    if !sync {
                        return;
                    }
                    if window_end < 128 {
                        match window_end {
                            0 => return,
                            1..=16 => {
                                self.w.write_stored_header(window_end, false);
                                self.w.write_bytes(&self.window);
                            }
                            _ => self.w.write_block_huff(false, &self.window),
                        }
                        self.window.clear();
                        fast.reset();
                        return;
                    }
                }
                tokens.clear();
                fast.encode(tokens, &self.window);
                // Matches removed less than 1/16 of the block: Huffman-code the bytes.
                if tokens.len() > window_end - (window_end >> 4) {
                    self.w.write_block_huff(false, &self.window);
                } else {
                    self.w.write_block_dynamic(tokens, false, &self.window);
                }
                self.window.clear();
            }
        }
    }
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut wa = [0u8; 8];
        let mut wb = [0u8; 8];
        wa.copy_from_slice(ca);
        wb.copy_from_slice(cb);
        let x = u64::from_le_bytes(wa) ^ u64::from_le_bytes(wb);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_one_final_empty_stored_block() {
        for level in -2..=9 {
            assert_eq!(deflate(b"", level).unwrap(), [1, 0, 0, 0xff, 0xff]);
        }
    }

    #[test]
    fn invalid_levels_are_refused() {
        for level in [-3, 10, i32::MIN, i32::MAX] {
            assert!(matches!(
                deflate(b"x", level),
                Err(GoFlateError::InvalidLevel(_))
            ));
        }
    }

    #[test]
    fn common_prefix_counts_across_words() {
        let a = b"0123456789abcdefXY";
        let mut b = *a;
        assert_eq!(common_prefix(a, &b), a.len());
        b[11] = b'!';
        assert_eq!(common_prefix(a, &b), 11);
        b[3] = b'!';
        assert_eq!(common_prefix(a, &b), 3);
        assert_eq!(common_prefix(&a[..5], a), 5);
    }
}
