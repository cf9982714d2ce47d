//! gzip members from two different deflate producers, for the compressed tree variant.
//!
//! Real kits carry gzip written by many compressors; a delta engine that sees through
//! compression must rebuild each one's exact bytes. So the generator writes gzip with two
//! producers whose deflate streams differ for the same input:
//! - [`Producer::Zlib`]: flate2 on its zlib-rs backend (the workspace pin), the zlib
//!   algorithm that GNU gzip, pigz and Python's zlib share;
//! - [`Producer::Miniz`]: miniz_oxide's compressor (miniz's `tdefl`), another match finder
//!   and block splitter, standing in for the non-zlib producers (Go's compress/flate, ...).
//!
//! Invariants: output is a single RFC 1952 member, a pure function of (producer, level,
//! header fields, input bytes); memory is bounded (64 KiB output buffer plus the
//! compressor's state), whatever the input size.

use flate2::GzBuilder;
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
};
use std::io::{self, Write};

/// Which deflate implementation writes the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// flate2 / zlib-rs (zlib's algorithm).
    Zlib,
    /// miniz_oxide (miniz's `tdefl`).
    Miniz,
}

/// The gzip header fields the generator sets.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// MTIME (0 = none, as container tools write).
    pub mtime: u32,
    /// FNAME, the original file name (as `gzip FILE` records it), if any.
    pub name: Option<&'a str>,
    /// OS byte: 3 Unix (GNU gzip), 255 unknown (Go, flate2's default).
    pub os: u8,
}

/// RFC 1952 XFL for a deflate level (2 = slowest, 4 = fastest), as zlib sets it.
fn xfl(level: u32) -> u8 {
    match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    }
}

/// A streaming gzip writer over `W`; [`GzWriter::finish`] writes the trailer.
pub enum GzWriter<W: Write> {
    Zlib(Box<flate2::write::GzEncoder<W>>),
    Miniz(Box<MinizGz<W>>),
}

impl<W: Write> GzWriter<W> {
    /// Starts a gzip member on `inner` (the header is written by the first write or
    /// `finish`).
    pub fn new(inner: W, producer: Producer, level: u32, header: Header<'_>) -> GzWriter<W> {
        match producer {
            Producer::Zlib => {
                let mut b = GzBuilder::new()
                    .mtime(header.mtime)
                    .operating_system(header.os);
                if let Some(n) = header.name {
                    b = b.filename(n.as_bytes());
                }
                GzWriter::Zlib(Box::new(b.write(inner, flate2::Compression::new(level))))
            }
            Producer::Miniz => GzWriter::Miniz(Box::new(MinizGz::new(inner, level, header))),
        }
    }

    /// Ends the deflate stream, writes CRC-32 and ISIZE, and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            GzWriter::Zlib(e) => (*e).finish(),
            GzWriter::Miniz(m) => m.finish(),
        }
    }
}

impl<W: Write> Write for GzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            GzWriter::Zlib(e) => e.write(buf),
            GzWriter::Miniz(m) => m.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing a deflate stream mid-way would change its bytes (a sync block); only
        // the inner writer is flushed.
        match self {
            GzWriter::Zlib(e) => e.get_mut().flush(),
            GzWriter::Miniz(m) => m.inner.flush(),
        }
    }
}

/// gzip framing around miniz_oxide's raw deflate compressor.
pub struct MinizGz<W: Write> {
    inner: W,
    comp: CompressorOxide,
    crc: crc32fast::Hasher,
    isize: u32,
    out: Vec<u8>,
}

impl<W: Write> MinizGz<W> {
    fn new(inner: W, level: u32, header: Header<'_>) -> MinizGz<W> {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(&[0x1f, 0x8b, 8]);
        out.push(if header.name.is_some() { 0x08 } else { 0 });
        out.extend_from_slice(&header.mtime.to_le_bytes());
        out.push(xfl(level));
        out.push(header.os);
        if let Some(n) = header.name {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        // Negative window bits: a raw deflate stream (the gzip framing is ours).
        let flags = create_comp_flags_from_zip_params(level.min(10) as i32, -15, 0);
        MinizGz {
            inner,
            comp: CompressorOxide::new(flags),
            crc: crc32fast::Hasher::new(),
            isize: 0,
            out,
        }
    }

    /// Runs the compressor over `input` until it is consumed (or, with `Finish`, until
    /// the stream is done), moving full output buffers to the inner writer.
    fn pump(&mut self, mut input: &[u8], flush: TDEFLFlush) -> io::Result<()> {
        const OUT: usize = 64 * 1024;
        loop {
            let start = self.out.len();
            self.out.resize(OUT.max(start + 1024), 0);
            let (status, used, wrote) =
                compress(&mut self.comp, input, &mut self.out[start..], flush);
            self.out.truncate(start + wrote);
            input = &input[used..];
            if self.out.len() >= OUT / 2 {
                self.inner.write_all(&self.out)?;
                self.out.clear();
            }
            match status {
                TDEFLStatus::Done => return Ok(()),
                TDEFLStatus::Okay => {
                    if input.is_empty() && !matches!(flush, TDEFLFlush::Finish) {
                        return Ok(());
                    }
                }
                TDEFLStatus::BadParam | TDEFLStatus::PutBufFailed => {
                    return Err(io::Error::other(format!(
                        "miniz_oxide deflate failed: {status:?}"
                    )));
                }
            }
        }
    }

    fn finish(mut self) -> io::Result<W> {
        self.pump(&[], TDEFLFlush::Finish)?;
        let crc = self.crc.clone().finalize();
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&self.isize.to_le_bytes());
        self.inner.write_all(&self.out)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for MinizGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pump(buf, TDEFLFlush::None)?;
        self.crc.update(buf);
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        self.isize = self.isize.wrapping_add(buf.len() as u32);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(producer: Producer, level: u32, data: &[u8], header: Header<'_>) -> Vec<u8> {
        let mut w = GzWriter::new(Vec::new(), producer, level, header);
        // Uneven writes: the stream must not depend on how the input was cut.
        for piece in data.chunks(7919) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn both_producers_round_trip_and_differ() {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("row {} value {}\n", i % 977, i * 31 % 1013).as_bytes());
        }
        let hd = Header {
            mtime: 1_761_177_600,
            name: Some("rows.txt"),
            os: 3,
        };
        let a = gz(Producer::Zlib, 6, &data, hd);
        let b = gz(Producer::Miniz, 6, &data, hd);
        assert_ne!(a, b, "two producers wrote the same deflate stream");
        for blob in [&a, &b] {
            assert_eq!(&blob[..3], &[0x1f, 0x8b, 8]);
            let mut d = flate2::read::GzDecoder::new(&blob[..]);
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            assert_eq!(d.header().unwrap().filename(), Some(&b"rows.txt"[..]));
            assert_eq!(d.header().unwrap().mtime(), 1_761_177_600);
        }
        // The header bytes agree between producers (only the deflate stream differs).
        assert_eq!(a[..19], b[..19]);
        // Chunking does not matter.
        let mut one = GzWriter::new(Vec::new(), Producer::Miniz, 6, hd);
        one.write_all(&data).unwrap();
        assert_eq!(one.finish().unwrap(), b);
    }
}
