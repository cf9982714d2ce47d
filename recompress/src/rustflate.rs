//! The two pure-Rust deflate encoders Rust tools write with, re-run exactly: `miniz_oxide`
//! (flate2's default backend: cargo's `.crate` files, many Rust CLIs) and `zlib-rs`
//! (flate2's `zlib-rs` backend, also our bundle format's).
//!
//! Both are pinned to one version in the workspace (`=0.9.1`, `=0.6.8`): a recipe naming
//! [`MINIZ_ID`] or [`ZLIB_RS_ID`] is exact only for that version's output, so a recipe
//! from another version is refused as `Unsupported` (see [`crate::recipe`]).
//!
//! What is re-run is what flate2 1.1 does with `Compression::new(level)` for a raw deflate
//! stream (gzip and zip members): for miniz, a default `CompressorOxide` set to
//! `DataFormat::Raw` at `level` (0-10; levels 1-3 parse greedily, 0 writes stored blocks,
//! default strategy), which gives the same flags as `miniz_oxide::deflate::compress_to_vec`
//! (unit-tested below, so one recipe stands for both); for zlib-rs, `Deflate::new(level,
//! false, 15)`: raw deflate, window 15, memLevel 8, default strategy, level 0-9.
//!
//! Invariants: the level is range-checked before an encoder is made ([`check_level`]), so
//! a hostile recipe never reaches either crate out of its contract; input is handed over
//! in pieces of at most [`MAX_FEED`] bytes and output taken [`STEP`] bytes at a time, so
//! memory is the encoder's own bounded state (miniz ~300 KiB, zlib-rs ~400 KiB) plus one
//! piece and one output buffer, never the stream; output is only ever produced with no-flush then finish, the way flate2's
//! encoders write a member (a stream with sync flushes is not theirs and is not matched).

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress as miniz_compress,
};
use miniz_oxide::{DataFormat, deflate::CompressionLevel};
use zlib_rs::{DeflateFlush, Status};

/// Output buffer size per encoder call: flate2's writers' 32 KiB, since zlib-rs's medium
/// levels decide block ends by the room left in the caller's output buffer.
const STEP: usize = 32 << 10;

/// Largest input piece a recipe may ask the encoder to take per call: the rebuild holds
/// one such piece. A producer that wrote a whole stream in one call (e.g. `write_all` of a
/// buffer) is matched up to this size.
pub(crate) const MAX_FEED: u64 = 8 << 20;

/// Piece sizes tried after "the whole stream in one call": 8 KiB (`std::io::copy`'s and
/// `BufReader`'s buffers), 32 KiB (flate2's read encoders), then 64 and 128 KiB.
const COMMON_FEEDS: [u64; 4] = [8 << 10, 32 << 10, 64 << 10, 128 << 10];

/// The input piece sizes a trial feeds, most likely first. Both encoders' output can
/// depend on how they were fed (zlib-rs's quick and medium levels 1, 5, 6; miniz's fast
/// level 1), so the whole stream in one call and the common writers' sizes are each tried.
pub(crate) fn feeds(plain_len: u64) -> Vec<u64> {
    let whole = plain_len.clamp(1, MAX_FEED);
    let mut out = Vec::with_capacity(5);
    if plain_len <= MAX_FEED {
        out.push(whole);
    }
    for f in COMMON_FEEDS {
        // A piece as large as the stream is the whole stream, already listed.
        if f < plain_len && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Body piece sizes a tar-shaped feed tries: each entry's data in one write (tar writers
/// that `write_all` a buffer, like our testdata generator), or in 8 KiB writes (tar-rs's
/// `append`, which copies the data with `std::io::copy`).
pub(crate) const TAR_BODY_FEEDS: [u64; 2] = [MAX_FEED, 8 << 10];

/// Whether `head` (the first plain bytes of a stream) is a ustar/GNU tar header: then the
/// producer most likely wrote it entry by entry, and tar-shaped feeds are tried.
pub(crate) fn looks_like_tar(head: &[u8]) -> bool {
    head.len() >= 512 && &head[257..262] == b"ustar" && tar_size(&head[..512]).is_some()
}

/// The data size a tar header announces: octal digits (space/NUL padded) or GNU's base-256
/// form (first byte 0x80, the size in the last 8 bytes). `None` when it is neither.
fn tar_size(header: &[u8]) -> Option<u64> {
    let field = header.get(124..136)?;
    if field[0] == 0x80 {
        if field[1..4].iter().any(|&b| b != 0) {
            return None;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&field[4..12]);
        return Some(u64::from_be_bytes(b));
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ');
    let mut v: u64 = 0;
    let mut any = false;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(v)
}

/// Where a tar-shaped feed is.
#[derive(Debug, Clone, Copy)]
enum TarState {
    /// The next piece is a 512-byte header.
    Header,
    /// `left` bytes of entry data remain, then `pad` bytes of padding.
    Body { left: u64, pad: u64 },
    /// `pad` bytes of padding, one write.
    Pad(u64),
    /// After the end-of-archive blocks (or something that is no header): the rest in
    /// pieces of at most [`MAX_FEED`], the first holding the end-of-archive blocks (tar
    /// writers end with one 1024-byte write of zeros).
    End,
}

/// Cuts plain bytes into the pieces a producer handed its encoder: uniform pieces of
/// `feed` bytes, or tar-shaped: each 512-byte header, the entry's data in pieces of at
/// most `feed`, its padding, then the end as one piece, as a tar writer feeding a
/// compressor writes them. The analyzer's trials and the rebuild cut alike, so a recipe
/// that names the shape is exact. Holds at most one piece ([`MAX_FEED`] bytes).
pub(crate) struct Cutter {
    feed: u64,
    tar: Option<TarState>,
    piece: Vec<u8>,
}

impl Cutter {
    /// `feed` in 1..=[`MAX_FEED`] (checked by the callers: the recipe reader, the search).
    pub(crate) fn new(feed: u64, tar: bool) -> Self {
        Cutter {
            feed: feed.clamp(1, MAX_FEED),
            tar: tar.then_some(TarState::Header),
            piece: Vec::new(),
        }
    }

    /// Length of the piece being collected.
    fn want(&self) -> u64 {
        match self.tar {
            None => self.feed,
            Some(TarState::Header) => 512,
            Some(TarState::Body { left, .. }) => left.min(self.feed),
            Some(TarState::Pad(n)) => n,
            Some(TarState::End) => MAX_FEED,
        }
    }

    /// A piece is complete: whether to hand it over now, and what comes next.
    fn complete(&mut self) -> bool {
        let len = self.piece.len() as u64;
        let (next, emit) = match self.tar {
            None => (None, true),
            Some(TarState::Header) => {
                if self.piece.iter().all(|&b| b == 0) {
                    // End-of-archive: it and what follows go in one piece.
                    (Some(TarState::End), false)
                } else {
                    match tar_size(&self.piece) {
                        Some(size) => {
                            let pad = (512 - size % 512) % 512;
                            let next = if size > 0 {
                                TarState::Body { left: size, pad }
                            } else {
                                TarState::Header
                            };
                            (Some(next), true)
                        }
                        None => (Some(TarState::End), false),
                    }
                }
            }
            Some(TarState::Body { left, pad }) => {
                let left = left - len;
                let next = if left > 0 {
                    TarState::Body { left, pad }
                } else if pad > 0 {
                    TarState::Pad(pad)
                } else {
                    TarState::Header
                };
                (Some(next), true)
            }
            Some(TarState::Pad(_)) => (Some(TarState::Header), true),
            Some(TarState::End) => (Some(TarState::End), true),
        };
        self.tar = next;
        emit
    }

    /// Take `plain` bytes; every complete piece goes to `emit` (which returns false to
    /// stop). Returns false when `emit` stopped.
    pub(crate) fn push(
        &mut self,
        mut plain: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> crate::Result<bool>,
    ) -> crate::Result<bool> {
        while !plain.is_empty() {
            let room = self.want().saturating_sub(self.piece.len() as u64);
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(plain.len());
            self.piece.extend_from_slice(&plain[..n]);
            plain = &plain[n..];
            if self.piece.len() as u64 >= self.want() && self.complete() {
                let go = emit(&self.piece)?;
                self.piece.clear();
                if !go {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The last, partial piece (if any) to `emit`.
    pub(crate) fn finish(
        &mut self,
        emit: &mut dyn FnMut(&[u8]) -> crate::Result<bool>,
    ) -> crate::Result<bool> {
        if self.piece.is_empty() {
            return Ok(true);
        }
        let go = emit(&self.piece)?;
        self.piece.clear();
        Ok(go)
    }
}

/// The identity a miniz recipe records: the crate and its exact (pinned) version.
pub(crate) const MINIZ_ID: &str = "miniz_oxide 0.9.1";

/// The identity a zlib-rs recipe records: the crate and its exact (pinned) version.
pub(crate) const ZLIB_RS_ID: &str = "zlib-rs 0.6.8";

/// Which encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoder {
    Miniz,
    ZlibRs,
}

impl Encoder {
    /// The identity recorded in (and required of) a recipe.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Encoder::Miniz => MINIZ_ID,
            Encoder::ZlibRs => ZLIB_RS_ID,
        }
    }

    /// The highest level: miniz has an "uber" level 10 (flate2 passes it through), zlib-rs
    /// stops at 9.
    pub(crate) fn max_level(self) -> u8 {
        match self {
            Encoder::Miniz => CompressionLevel::UberCompression as u8,
            Encoder::ZlibRs => 9,
        }
    }

    /// Levels in the order the analyzer tries them: the container's hint, then the most
    /// used (6 is flate2's default; 9 and 1 are `best`/`fast`), then the rest.
    pub(crate) fn levels(self, hint: Option<u8>) -> Vec<u8> {
        let mut out = Vec::with_capacity(11);
        // gzip's XFL says "best" for flate2 level 9 and up: miniz's 10 is as likely.
        let hinted: &[u8] = match hint {
            Some(9) => &[9, 10],
            Some(l) => &[l],
            None => &[],
        };
        for &l in hinted.iter().chain(&[6, 9, 1, 10, 2, 3, 4, 5, 7, 8, 0]) {
            if l <= self.max_level() && !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }
}

/// Whether `level` is one `enc` takes.
pub(crate) fn check_level(enc: Encoder, level: u8) -> Result<(), String> {
    if level > enc.max_level() {
        return Err(format!(
            "{} level {level} out of range (0 to {})",
            enc.id(),
            enc.max_level()
        ));
    }
    Ok(())
}

enum Inner {
    Miniz(Box<CompressorOxide>),
    ZlibRs(Box<zlib_rs::Deflate>),
}

/// One raw deflate compression in progress with one of the Rust encoders.
pub(crate) struct RustDeflater {
    inner: Inner,
    out: Vec<u8>,
    finished: bool,
}

impl RustDeflater {
    /// Start a raw deflate stream with `enc` at `level` (checked first).
    pub(crate) fn new(enc: Encoder, level: u8) -> Result<Self, String> {
        check_level(enc, level)?;
        let inner = match enc {
            Encoder::Miniz => {
                // Exactly flate2's miniz backend: a default compressor (zlib format, level
                // 4) switched to raw deflate at `level`.
                let mut c: Box<CompressorOxide> = Box::default();
                c.set_format_and_level(DataFormat::Raw, level);
                Inner::Miniz(c)
            }
            Encoder::ZlibRs => {
                Inner::ZlibRs(Box::new(zlib_rs::Deflate::new(i32::from(level), false, 15)))
            }
        };
        Ok(RustDeflater {
            inner,
            out: vec![0u8; STEP],
            finished: false,
        })
    }

    /// Compress `input` (`finish`: it is the last piece) and hand every piece of output to
    /// `emit`, which returns false to stop early. Returns false when `emit` stopped it.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        finish: bool,
        emit: &mut dyn FnMut(&[u8]) -> crate::Result<bool>,
    ) -> crate::Result<bool> {
        if self.finished {
            return Err(err("deflate fed after its end".into()));
        }
        // The whole piece goes to the encoder in one call (then what it left, as flate2's
        // writer does): zlib-rs's levels 1, 5 and 6 decide matches by what input each call
        // has, so splitting a piece would change the stream. Callers bound the piece size.
        let mut rest = input;
        loop {
            let fin = finish;
            let (used, made, done) = match &mut self.inner {
                Inner::Miniz(c) => {
                    let flush = if fin {
                        TDEFLFlush::Finish
                    } else {
                        TDEFLFlush::None
                    };
                    let (status, used, made) = miniz_compress(c, rest, &mut self.out, flush);
                    match status {
                        TDEFLStatus::Okay => (used, made, false),
                        TDEFLStatus::Done => (used, made, true),
                        s => return Err(err(format!("miniz_oxide deflate failed ({s:?})"))),
                    }
                }
                Inner::ZlibRs(d) => {
                    let flush = if fin {
                        DeflateFlush::Finish
                    } else {
                        DeflateFlush::NoFlush
                    };
                    let (in0, out0) = (d.total_in(), d.total_out());
                    let status = d
                        .compress(rest, &mut self.out, flush)
                        .map_err(|e| err(format!("zlib-rs deflate failed ({})", e.as_str())))?;
                    // Both totals grow by at most the slices' lengths.
                    let used = (d.total_in() - in0) as usize;
                    let made = (d.total_out() - out0) as usize;
                    (used, made, status == Status::StreamEnd)
                }
            };
            if made > 0 && !emit(&self.out[..made])? {
                return Ok(false);
            }
            rest = &rest[used..];
            if done {
                self.finished = true;
                return Ok(true);
            }
            // Done with this piece when all input is in and the encoder had room to spare
            // (it holds nothing more it could write without more input).
            if rest.is_empty() && !finish && made < self.out.len() {
                return Ok(true);
            }
            if made == 0 && used == 0 {
                return Err(err("deflate made no progress".into()));
            }
        }
    }
}

fn err(message: String) -> crate::RecompressError {
    crate::RecompressError::Malformed {
        what: "deflate stream",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        for i in 0..40_000u32 {
            s.extend_from_slice(
                format!("{{\"id\":{i},\"v\":\"{}\"}}\n", i * 7919 % 1013).as_bytes(),
            );
        }
        s
    }

    fn run(enc: Encoder, level: u8, data: &[u8], piece: usize) -> Vec<u8> {
        let mut d = RustDeflater::new(enc, level).unwrap();
        let mut out = Vec::new();
        let mut emit = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(true)
        };
        for p in data.chunks(piece) {
            d.feed(p, false, &mut emit).unwrap();
        }
        d.feed(&[], true, &mut emit).unwrap();
        out
    }

    #[test]
    fn miniz_is_flate2s_and_compress_to_vec() {
        let data = sample();
        // Level 1 is left out: miniz's fast path cuts blocks by the room in the caller's
        // output buffer, half the input for compress_to_vec, 32 KiB for flate2's writers
        // (which is what the tier re-runs).
        for level in (0..=10u8).filter(|&l| l != 1) {
            // compress_to_vec hands the whole input over in one call.
            let ours = run(Encoder::Miniz, level, &data, data.len());
            assert!(
                ours == miniz_oxide::deflate::compress_to_vec(&data, level),
                "level {level}"
            );
        }
    }

    #[test]
    fn zlib_rs_is_flate2s() {
        let data = sample();
        // Level 0 is left out: zlib-rs sizes stored blocks by the room in the caller's
        // output buffer, so its level-0 stream depends on how the writer fed it (a trial
        // still matches one fed like ours; others go to the next tier).
        for level in 1..=9u8 {
            let mut e = flate2::write::DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::new(u32::from(level)),
            );
            e.write_all(&data).unwrap();
            let theirs = e.finish().unwrap();
            assert!(
                run(Encoder::ZlibRs, level, &data, data.len()) == theirs,
                "level {level}"
            );
        }
    }

    #[test]
    fn identities_name_the_pinned_versions() {
        // A recipe's identity promises the exact encoder: the workspace must pin exactly
        // the versions MINIZ_ID and ZLIB_RS_ID name (bump them together).
        let root = include_str!("../../Cargo.toml");
        assert!(root.contains("miniz_oxide = \"=0.9.1\""), "{MINIZ_ID}");
        assert!(
            root.contains("zlib-rs = { version = \"=0.6.8\""),
            "{ZLIB_RS_ID}"
        );
        assert!(MINIZ_ID.ends_with("0.9.1") && ZLIB_RS_ID.ends_with("0.6.8"));
    }

    #[test]
    fn levels_out_of_range_are_refused() {
        assert!(RustDeflater::new(Encoder::Miniz, 11).is_err());
        assert!(RustDeflater::new(Encoder::ZlibRs, 10).is_err());
        assert!(RustDeflater::new(Encoder::ZlibRs, 255).is_err());
    }

    fn cut(data: &[u8], feed: u64, tar: bool, step: usize) -> Vec<usize> {
        let mut c = Cutter::new(feed, tar);
        let mut lens = Vec::new();
        let mut emit = |p: &[u8]| {
            lens.push(p.len());
            Ok(true)
        };
        for s in data.chunks(step) {
            c.push(s, &mut emit).unwrap();
        }
        c.finish(&mut emit).unwrap();
        lens
    }

    fn header(size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0] = b'f';
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[257..262].copy_from_slice(b"ustar");
        h
    }

    #[test]
    fn tar_shaped_pieces_follow_the_entries_whatever_the_input_steps() {
        let mut tar = header(20_000);
        tar.extend(std::iter::repeat_n(7u8, 20_000));
        tar.extend(std::iter::repeat_n(0u8, 480)); // 20_000 + 480 = 40 blocks
        tar.extend(header(0));
        tar.extend(header(512));
        tar.extend(std::iter::repeat_n(9u8, 512));
        tar.extend(std::iter::repeat_n(0u8, 1024)); // end of archive
        assert!(looks_like_tar(&tar));
        for step in [1, 7, 512, 4096, 1 << 20] {
            assert_eq!(
                cut(&tar, 8192, true, step),
                [512, 8192, 8192, 3616, 480, 512, 512, 512, 1024],
                "step {step}"
            );
            assert_eq!(
                cut(&tar, MAX_FEED, true, step),
                [512, 20_000, 480, 512, 512, 512, 1024]
            );
            // Uniform pieces ignore the entries.
            assert_eq!(cut(&tar, 10_000, false, step), [10_000, 10_000, 3552]);
        }
        // Something that is no header ends the shape: the rest in one piece.
        let mut odd = header(100);
        odd[124] = b'9';
        odd.extend(std::iter::repeat_n(1u8, 700));
        assert!(!looks_like_tar(&odd));
        assert_eq!(cut(&odd, 8192, true, 64), [1212]);
    }
}
