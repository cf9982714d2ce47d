//! The gzip side of a mirrored bundle: the header of a gzip member, the recipe that
//! re-creates a member from its uncompressed stream, and the sinks that check what a
//! re-compression produces.
//!
//! A bundle is kept as its tar stream plus a [`GzipRecipe`] only when re-compressing that
//! stream, read back from the store, by the recipe gave back the original bytes at
//! `mirror add` time. That holds later too because the deflate build is pinned (see
//! `bundle::pgzip`): the same stream, recipe and build give the same bytes on every
//! machine and at every thread count.
//!
//! Invariants: a recipe read back from the index is checked ([`GzipRecipe::validate`])
//! before it is used: a complete RFC 1952 member header of at most [`MAX_HEADER_LEN`]
//! bytes, a deflate level 0..=9, and a block size in `WINDOW..=MAX_BLOCK_SIZE` (which bounds
//! the compressor's memory). Nothing here panics on any recipe bytes.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::pgzip::{GZIP_HEADER, GzOptions, ParGzWriter, WINDOW};

/// Longest gzip member header a recipe may carry (name, comment and extra field included).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Largest block size a `Pgzip` recipe may ask for.
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;

/// How ouk's own bundle writer compresses (`bundle::pgzip` defaults).
pub const OUK_PGZIP: Deflate = Deflate::Pgzip {
    level: 6,
    block_size: 1 << 20,
};

/// What re-creates a gzip member from its uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GzipRecipe {
    /// The member's header bytes, verbatim (magic through the optional header CRC).
    pub header: Vec<u8>,
    /// How the deflate stream after it was made.
    pub deflate: Deflate,
}

/// A deflate method the mirror can reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deflate {
    /// ouk's parallel writer: independent blocks of `block_size` input bytes, each primed
    /// with the 32 KiB before it (`bundle::pgzip`).
    Pgzip {
        /// Deflate level.
        level: u32,
        /// Input block size.
        block_size: u32,
    },
    /// One deflate stream at `level`, as zlib (and so Python's `gzip`) writes it.
    Zlib {
        /// Deflate level.
        level: u32,
    },
}

impl std::fmt::Display for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deflate::Pgzip { level, block_size } => {
                write!(f, "pgzip level {level}, {} KiB blocks", block_size / 1024)
            }
            Deflate::Zlib { level } => write!(f, "zlib level {level}, one stream"),
        }
    }
}

/// Why a gzip header or a recipe is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// The bytes are not a gzip member header this code understands.
    #[error("gzip header: {0}")]
    Header(&'static str),
    /// The recorded header is not exactly one complete header.
    #[error("gzip header: {found} bytes recorded, the header is {parsed}")]
    HeaderLength {
        /// Bytes recorded.
        found: usize,
        /// Length the header parses to.
        parsed: usize,
    },
    /// A deflate level outside 0..=9.
    #[error("deflate level {0} is not 0..=9")]
    Level(u32),
    /// A block size outside what the parallel writer accepts.
    #[error("block size {0} is outside 32 KiB..=16 MiB")]
    BlockSize(u32),
}

/// The length of the complete gzip member header at the start of `bytes` (RFC 1952:
/// 10 fixed bytes, then the optional extra field, name, comment and header CRC).
pub fn header_len(bytes: &[u8]) -> Result<usize, RecipeError> {
    let truncated = RecipeError::Header("truncated");
    let fixed = bytes.get(..10).ok_or(truncated.clone())?;
    if fixed[0] != 0x1f || fixed[1] != 0x8b {
        return Err(RecipeError::Header("not a gzip member"));
    }
    if fixed[2] != 8 {
        return Err(RecipeError::Header("compression method is not deflate"));
    }
    let flags = fixed[3];
    if flags & 0xe0 != 0 {
        return Err(RecipeError::Header("reserved flag bits set"));
    }
    let mut pos = 10usize;
    if flags & 0x04 != 0 {
        let xlen = bytes.get(pos..pos + 2).ok_or(truncated.clone())?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [0x08u8, 0x10] {
        if flags & flag != 0 {
            let rest = bytes.get(pos..).ok_or(truncated.clone())?;
            let nul = rest
                .iter()
                .take(MAX_HEADER_LEN)
                .position(|&b| b == 0)
                .ok_or(RecipeError::Header("name or comment not terminated"))?;
            pos += nul + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2;
    }
    if pos > MAX_HEADER_LEN {
        return Err(RecipeError::Header("longer than 64 KiB"));
    }
    if pos > bytes.len() {
        return Err(truncated);
    }
    Ok(pos)
}

impl GzipRecipe {
    /// Check a recipe (from the index) before using it; see the module invariants.
    pub fn validate(&self) -> Result<(), RecipeError> {
        let parsed = header_len(&self.header)?;
        if parsed != self.header.len() {
            return Err(RecipeError::HeaderLength {
                found: self.header.len(),
                parsed,
            });
        }
        match self.deflate {
            Deflate::Pgzip { level, block_size } => {
                if level > 9 {
                    return Err(RecipeError::Level(level));
                }
                if (block_size as usize) < WINDOW || block_size > MAX_BLOCK_SIZE {
                    return Err(RecipeError::BlockSize(block_size));
                }
            }
            Deflate::Zlib { level } if level > 9 => return Err(RecipeError::Level(level)),
            Deflate::Zlib { .. } => {}
        }
        Ok(())
    }

    /// The recipes worth trying for a member with `header`, likeliest first: ouk's writer
    /// for ouk's fixed header, else one zlib stream at the level the XFL byte suggests
    /// (2: best, 4: fastest, else the default 6), then ouk's writer.
    pub fn candidates(header: &[u8]) -> Vec<GzipRecipe> {
        let zlib_level = match header.get(8) {
            Some(2) => 9,
            Some(4) => 1,
            _ => 6,
        };
        let zlib = Deflate::Zlib { level: zlib_level };
        let order = if header == GZIP_HEADER {
            [OUK_PGZIP, zlib]
        } else {
            [zlib, OUK_PGZIP]
        };
        order
            .into_iter()
            .map(|deflate| GzipRecipe {
                header: header.to_vec(),
                deflate,
            })
            .collect()
    }

    /// Start a member on `out` by this recipe; write the uncompressed bytes into the result
    /// and call [`Compressor::finish`]. `threads` does not change the output.
    pub fn compressor<W: Write>(&self, out: W, threads: usize) -> io::Result<Compressor<W>> {
        match self.deflate {
            Deflate::Pgzip { level, block_size } => {
                let opts = GzOptions {
                    level,
                    block_size: block_size as usize,
                    threads: threads.max(1),
                };
                Ok(Compressor::Parallel(ParGzWriter::with_header(
                    out,
                    opts,
                    &self.header,
                )?))
            }
            Deflate::Zlib { level } => {
                let mut out = out;
                out.write_all(&self.header)?;
                Ok(Compressor::Stream {
                    deflate: flate2::write::DeflateEncoder::new(
                        out,
                        flate2::Compression::new(level),
                    ),
                    crc: crc32fast::Hasher::new(),
                    consumed: 0,
                })
            }
        }
    }
}

/// A gzip member being written by a [`GzipRecipe`].
pub enum Compressor<W: Write> {
    /// ouk's parallel writer.
    Parallel(ParGzWriter<W>),
    /// One deflate stream; the trailer is added by `finish`.
    Stream {
        /// The deflate stream.
        deflate: flate2::write::DeflateEncoder<W>,
        /// CRC-32 of the input.
        crc: crc32fast::Hasher,
        /// Input bytes.
        consumed: u64,
    },
}

impl<W: Write> Compressor<W> {
    /// End the member (deflate end, CRC-32, ISIZE) and return the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Parallel(gz) => gz.finish().map(|(out, _)| out),
            Compressor::Stream {
                deflate,
                crc,
                consumed,
            } => {
                let mut out = deflate.finish()?;
                out.write_all(&crc.finalize().to_le_bytes())?;
                // ISIZE is the input length modulo 2^32 (RFC 1952).
                out.write_all(&(consumed as u32).to_le_bytes())?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Parallel(gz) => gz.write(buf),
            Compressor::Stream {
                deflate,
                crc,
                consumed,
            } => {
                let n = deflate.write(buf)?;
                crc.update(&buf[..n]);
                *consumed += n as u64;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            // Flushing a deflate stream mid-way would change its bytes: flush nothing.
            Compressor::Parallel(gz) => gz.flush(),
            Compressor::Stream { .. } => Ok(()),
        }
    }
}

/// A `Write` sink that compares what it is given with `original`, byte for byte, and fails
/// at the first difference (so a wrong recipe costs one block, not a whole bundle).
pub struct MatchingSink<R: Read> {
    original: R,
    scratch: Vec<u8>,
    /// Not a hashing writer: it hashes the bytes that matched, as they are compared.
    hasher: Sha256,
    matched: u64,
    diverged_at: Option<u64>,
}

impl<R: Read> MatchingSink<R> {
    /// Compare against `original`.
    pub fn new(original: R) -> Self {
        MatchingSink {
            original,
            scratch: Vec::new(),
            hasher: Sha256::new(),
            matched: 0,
            diverged_at: None,
        }
    }

    /// The offset of the first byte that differed (or where one side ended early), if any.
    pub fn diverged_at(&self) -> Option<u64> {
        self.diverged_at
    }

    /// After the last write: `Ok(Some(at))` when the output differed or the original is
    /// longer, else `Ok(None)` with the digest and length of the matched bytes in `digest`.
    pub fn finish(mut self) -> io::Result<Result<([u8; 32], u64), u64>> {
        if let Some(at) = self.diverged_at {
            return Ok(Err(at));
        }
        let mut probe = [0u8; 1];
        loop {
            match self.original.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => return Ok(Err(self.matched)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Ok((self.hasher.finalize().into(), self.matched)))
    }
}

impl<R: Read> Write for MatchingSink<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.diverged_at.is_some() {
            return Err(io::Error::other("output already differs from the original"));
        }
        self.scratch.resize(buf.len(), 0);
        let mut have = 0;
        while have < buf.len() {
            match self.original.read(&mut self.scratch[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let same = buf[..have]
            .iter()
            .zip(&self.scratch[..have])
            .position(|(a, b)| a != b);
        match same {
            Some(i) => {
                self.diverged_at = Some(self.matched + i as u64);
            }
            None if have < buf.len() => {
                self.diverged_at = Some(self.matched + have as u64);
            }
            None => {
                self.hasher.update(buf);
                self.matched += buf.len() as u64;
                return Ok(buf.len());
            }
        }
        Err(io::Error::other(format!(
            "output differs from the original at byte {}",
            self.diverged_at.unwrap_or(self.matched)
        )))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(recipe: &GzipRecipe, data: &[u8], threads: usize) -> Vec<u8> {
        let mut c = recipe.compressor(Vec::new(), threads).unwrap();
        c.write_all(data).unwrap();
        c.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 & 0x0f)
            .collect()
    }

    #[test]
    fn header_lengths_follow_rfc_1952() {
        assert_eq!(header_len(&GZIP_HEADER), Ok(10));
        let mut named = vec![0x1f, 0x8b, 8, 0x08, 1, 2, 3, 4, 0, 3];
        named.extend_from_slice(b"kit.tar\0");
        assert_eq!(header_len(&named), Ok(18));
        let mut all = vec![
            0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 2, 3, 3, 0, b'a', b'b', b'c',
        ];
        all.extend_from_slice(b"n\0c\0\x12\x34");
        assert_eq!(header_len(&all), Ok(all.len()));
        assert!(header_len(&all[..all.len() - 1]).is_err());
        assert!(header_len(&named[..12]).is_err(), "unterminated name");
        assert!(header_len(&[0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(header_len(&[0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(header_len(b"PK\x03\x04").is_err());
        assert!(header_len(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
    }

    #[test]
    fn recipes_are_validated() {
        let ok = GzipRecipe {
            header: GZIP_HEADER.to_vec(),
            deflate: OUK_PGZIP,
        };
        assert_eq!(ok.validate(), Ok(()));
        let mut long = ok.clone();
        long.header.push(0);
        assert!(long.validate().is_err(), "trailing header byte");
        let level = GzipRecipe {
            deflate: Deflate::Zlib { level: 10 },
            ..ok.clone()
        };
        assert_eq!(level.validate(), Err(RecipeError::Level(10)));
        let block = GzipRecipe {
            deflate: Deflate::Pgzip {
                level: 6,
                block_size: 1024,
            },
            ..ok.clone()
        };
        assert_eq!(block.validate(), Err(RecipeError::BlockSize(1024)));
        let huge = GzipRecipe {
            deflate: Deflate::Pgzip {
                level: 6,
                block_size: u32::MAX,
            },
            ..ok
        };
        assert!(huge.validate().is_err());
    }

    #[test]
    fn the_ouk_recipe_reproduces_the_bundle_writer_at_any_thread_count() {
        let data = sample();
        let mut gz = ParGzWriter::new(Vec::new(), GzOptions::default()).unwrap();
        gz.write_all(&data).unwrap();
        let (original, _) = gz.finish().unwrap();
        let recipe = &GzipRecipe::candidates(&original[..10])[0];
        assert_eq!(recipe.deflate, OUK_PGZIP);
        for threads in [1, 3] {
            assert_eq!(compress(recipe, &data, threads), original);
        }
    }

    #[test]
    fn a_zlib_stream_with_a_named_header_is_reproduced() {
        let data = sample();
        let mut enc = flate2::GzBuilder::new()
            .filename("kit.tar")
            .mtime(1_700_000_000)
            .write(Vec::new(), flate2::Compression::best());
        enc.write_all(&data).unwrap();
        let original = enc.finish().unwrap();
        let header = &original[..header_len(&original).unwrap()];
        let candidates = GzipRecipe::candidates(header);
        assert_eq!(candidates[0].deflate, Deflate::Zlib { level: 9 });
        assert_eq!(compress(&candidates[0], &data, 2), original);
        // The other candidate differs, and the sink says where.
        let mut sink = MatchingSink::new(&original[..]);
        let failed = {
            let mut c = candidates[1].compressor(&mut sink, 2).unwrap();
            match c.write_all(&data) {
                Err(_) => true,
                Ok(()) => c.finish().is_err(),
            }
        };
        assert!(failed || sink.diverged_at().is_some());
        assert!(sink.finish().unwrap().is_err());
    }

    #[test]
    fn the_matching_sink_reports_differences_and_length() {
        let original = b"abcdef".to_vec();
        let mut same = MatchingSink::new(&original[..]);
        same.write_all(b"abc").unwrap();
        same.write_all(b"def").unwrap();
        let (digest, len) = same.finish().unwrap().unwrap();
        assert_eq!(len, 6);
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&original)));
        let mut differs = MatchingSink::new(&original[..]);
        differs.write_all(b"ab").unwrap();
        assert!(differs.write_all(b"cX").is_err());
        assert_eq!(differs.finish().unwrap(), Err(3));
        let mut short = MatchingSink::new(&original[..]);
        short.write_all(b"abc").unwrap();
        assert_eq!(short.finish().unwrap(), Err(3));
        let mut long = MatchingSink::new(&original[..]);
        assert!(long.write_all(b"abcdefg").is_err());
        assert_eq!(long.finish().unwrap(), Err(6));
    }
}
