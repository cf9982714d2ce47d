//! Byte-level patch codecs: how one file's new content is shipped against a reference.
//!
//! Three encodings, chosen per file by size (see [`crate::plan`]):
//! - [`Encoding::Zstd`]: a zstd frame of the target alone;
//! - [`Encoding::ZstdRef`]: a zstd frame of the target compressed with the reference as a
//!   raw-content prefix (zstd's `--patch-from`), the window sized to cover reference and
//!   target, long-distance matching for large references;
//! - [`Encoding::Bsdiff`]: a bsdiff 4 patch (qbsdiff), best on rebuilt binaries whose
//!   addresses shifted.
//!
//! Decoding is bounded: every decoder is given the exact target length (from the signed
//! manifest) and refuses to produce a byte more, so a hostile patch cannot exhaust memory
//! or disk. Decoders never panic on any input (property-tested, fuzzed).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use zstd_safe::{CCtx, CParameter, DCtx, DParameter};

/// How a piece of content is encoded in a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// zstd frame of the target alone.
    Zstd,
    /// zstd frame with the reference as prefix.
    ZstdRef,
    /// bsdiff 4 patch against the reference.
    Bsdiff,
    /// bsdiff matches with LZMA-coded streams (see [`crate::bsdiffx`]).
    BsdiffLzma,
    /// Copies of unchanged records and one zstd stream of the changed ones against the
    /// records they replace (see [`crate::records`]; format `ouk-delta/4`).
    Records,
}

/// Why a patch did not decode.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The codec refused the data.
    #[error("{encoding:?} payload is corrupt: {message}")]
    Corrupt {
        /// Which codec.
        encoding: Encoding,
        /// What it said.
        message: String,
    },
    /// The payload decodes to a different length than declared.
    #[error("{encoding:?} payload decodes to {actual} bytes, {expected} declared")]
    Length {
        /// Which codec.
        encoding: Encoding,
        /// Declared length.
        expected: u64,
        /// Produced length (or a lower bound when it overran).
        actual: u64,
    },
    /// The declared length is past what this process will hold in memory.
    #[error("declared length {0} is past the in-memory patch limit")]
    TooLarge(u64),
}

impl PatchError {
    /// Always [`ouk_store::ErrorClass::Validation`]: a patch that does not decode makes the
    /// delta invalid, as [`crate::DeltaError::BadDelta`] is.
    pub fn class(&self) -> ouk_store::ErrorClass {
        ouk_store::ErrorClass::Validation
    }
}

/// Largest target or reference a patch codec handles in memory. Bigger files are split
/// into windows by the planner.
pub const MAX_IN_MEMORY: u64 = 1 << 30;

fn zstd_err(encoding: Encoding) -> impl Fn(usize) -> PatchError {
    move |code| PatchError::Corrupt {
        encoding,
        message: zstd_safe::get_error_name(code).to_string(),
    }
}

fn window_log(total: usize) -> u32 {
    let needed = usize::BITS - total.max(1).leading_zeros();
    needed.clamp(10, 30)
}

/// Compression settings.
#[derive(Debug, Clone, Copy)]
pub struct ZstdTuning {
    /// zstd level (1..=22).
    pub level: i32,
    /// Long-distance matching.
    pub long: bool,
}

/// zstd-compress `target`, with `reference` as prefix when given.
pub fn zstd_encode(
    reference: Option<&[u8]>,
    target: &[u8],
    tuning: ZstdTuning,
) -> io::Result<Vec<u8>> {
    let io_err = |code: usize| io::Error::other(zstd_safe::get_error_name(code));
    let mut cctx = CCtx::try_create().ok_or_else(|| io::Error::other("zstd context"))?;
    let total = target.len() + reference.map_or(0, <[u8]>::len);
    cctx.set_parameter(CParameter::CompressionLevel(tuning.level))
        .map_err(io_err)?;
    cctx.set_parameter(CParameter::WindowLog(window_log(total)))
        .map_err(io_err)?;
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(tuning.long))
        .map_err(io_err)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(io_err)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(io_err)?;
    cctx.set_parameter(CParameter::DictIdFlag(false))
        .map_err(io_err)?;
    if let Some(r) = reference {
        cctx.ref_prefix(r).map_err(io_err)?;
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(target.len()));
    cctx.compress2(&mut out, target).map_err(io_err)?;
    Ok(out)
}

/// Decode a zstd payload of exactly `expected` bytes, with `reference` as prefix when given.
pub fn zstd_decode(
    reference: Option<&[u8]>,
    payload: &[u8],
    expected: u64,
) -> Result<Vec<u8>, PatchError> {
    let mut out = Vec::new();
    zstd_decode_into(reference, payload, expected, &mut out)?;
    Ok(out)
}

/// [`zstd_decode`] into `out` (cleared first), reusing its allocation: an apply decodes
/// dozens of 32 MiB pieces, and a buffer already faulted in costs neither the zeroing
/// of `vec![0; n]` nor the kernel's zeroing of fresh pages.
pub fn zstd_decode_into(
    reference: Option<&[u8]>,
    payload: &[u8],
    expected: u64,
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let encoding = if reference.is_some() {
        Encoding::ZstdRef
    } else {
        Encoding::Zstd
    };
    if expected > MAX_IN_MEMORY {
        return Err(PatchError::TooLarge(expected));
    }
    let mut dctx = DCtx::try_create().ok_or_else(|| PatchError::Corrupt {
        encoding,
        message: "no zstd context".into(),
    })?;
    let total = expected as usize + reference.map_or(0, <[u8]>::len);
    dctx.set_parameter(DParameter::WindowLogMax(window_log(total).max(27)))
        .map_err(zstd_err(encoding))?;
    if let Some(r) = reference {
        dctx.ref_prefix(r).map_err(zstd_err(encoding))?;
    }
    // At least one spare byte: a payload that fills it decodes to more than declared.
    // zstd writes into the spare capacity (never past it), so nothing is zeroed first.
    out.clear();
    out.reserve_exact(expected as usize + 1);
    let n = dctx.decompress(out, payload).map_err(zstd_err(encoding))?;
    if n as u64 != expected {
        out.clear();
        return Err(PatchError::Length {
            encoding,
            expected,
            actual: n as u64,
        });
    }
    Ok(())
}

/// A bsdiff 4 patch turning `reference` into `target`.
pub fn bsdiff_encode(reference: &[u8], target: &[u8]) -> io::Result<Vec<u8>> {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(reference, target)
        .compression_level(9)
        .compare(io::Cursor::new(&mut patch))?;
    Ok(patch)
}

/// A writer that refuses to grow past a limit.
struct Bounded {
    out: Vec<u8>,
    limit: u64,
    overran: bool,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > self.limit {
            self.overran = true;
            return Err(io::Error::other("patch output past the declared length"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that adds the bytes it hands out to a counter: the decompression work the
/// checks before qbsdiff do, which tests bound (a bomb is refused after a few bytes, not
/// after its GiB).
struct Counted<'a, R> {
    inner: R,
    count: &'a mut u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}

/// Check a bsdiff 4 header: magic, non-negative block lengths that fit the patch, and the
/// declared target length. Adds the bytes it decompresses to `work`.
fn check_bsdiff_header(patch: &[u8], expected: u64, work: &mut u64) -> Result<(), PatchError> {
    let corrupt = |m: &str| PatchError::Corrupt {
        encoding: Encoding::Bsdiff,
        message: m.to_string(),
    };
    if patch.len() < 32 || &patch[..8] != b"BSDIFF40" {
        return Err(corrupt("not a bsdiff 4 patch"));
    }
    let field = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&patch[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let (ctrl, diff, size) = (field(8), field(16), field(24));
    let negative = (ctrl | diff | size) & (1 << 63) != 0;
    let body = (patch.len() - 32) as u64;
    if negative || ctrl.checked_add(diff).is_none_or(|n| n > body) {
        return Err(corrupt("bsdiff header lengths out of bounds"));
    }
    if size != expected {
        return Err(PatchError::Length {
            encoding: Encoding::Bsdiff,
            expected,
            actual: size,
        });
    }
    check_bsdiff_controls(&patch[32..32 + ctrl as usize], expected, work)?;
    // qbsdiff reads the last stream (the extra block) only as far as the target needs, so
    // a patch cut inside its end-of-stream marker would still apply. Every byte of a piece
    // must count: the extra block has to be one whole bzip2 stream. It is read no further
    // than the target allows (the extra bytes are copied into the target, so they cannot
    // outnumber it): a few hundred bytes of bzip2 expand to a GiB, and a piece pays for no
    // more decoding than its declared length.
    let extra = &patch[32 + (ctrl + diff) as usize..];
    let mut stream = bzip2::bufread::BzDecoder::new(extra);
    let mut bounded = Counted {
        inner: (&mut stream).take(expected + 1),
        count: work,
    };
    let decoded = io::copy(&mut bounded, &mut io::sink())
        .map_err(|e| corrupt(&format!("bsdiff extra block: {e}")))?;
    if decoded > expected {
        return Err(corrupt("bsdiff extra block is longer than the target"));
    }
    if !stream.into_inner().is_empty() {
        return Err(corrupt("bytes after the bsdiff extra block"));
    }
    Ok(())
}

/// Bytes of one bsdiff 4 control step (add, copy, seek; 8 bytes each).
const CONTROL_STEP: u64 = 24;

/// Most control steps that write nothing a bsdiff 4 patch of an `expected`-byte target may
/// hold. qbsdiff ends each of its parallel chunks (256 KiB at least) with a step that only
/// seeks back, and a chunk may open with one; one per 4 KiB leaves ample room.
fn max_idle_steps(expected: u64) -> u64 {
    expected / 4096 + 4
}

/// Most control steps in all: each other step writes at least one byte.
fn max_control_steps(expected: u64) -> u64 {
    expected.saturating_add(max_idle_steps(expected))
}

/// Walk the control stream before qbsdiff applies it: qbsdiff reads control steps until the
/// stream ends, and a step that writes nothing costs it nothing to accept, so a control
/// stream of a GiB of zeros (under a KiB of bzip2) would keep it decoding for seconds per
/// piece. Here the stream is decoded at most as far as [`max_control_steps`] allows, steps
/// that write nothing are counted against [`max_idle_steps`], each step must write forward
/// (no negative lengths) within the declared target, and the steps must write exactly the
/// target. Decoded in a fixed buffer: nothing is allocated for it. Adds the bytes it
/// decompresses to `work`.
fn check_bsdiff_controls(block: &[u8], expected: u64, work: &mut u64) -> Result<(), PatchError> {
    let corrupt = |m: String| PatchError::Corrupt {
        encoding: Encoding::Bsdiff,
        message: m,
    };
    let limit = max_control_steps(expected).saturating_mul(CONTROL_STEP);
    // Same decoder as qbsdiff (one bzip2 stream), so both read the same steps.
    let mut stream = Counted {
        inner: bzip2::read::BzDecoder::new(block),
        count: work,
    }
    .take(limit.saturating_add(1));
    let mut written = 0u64;
    let mut idle = 0u64;
    let mut step = [0u8; CONTROL_STEP as usize];
    loop {
        let mut filled = 0;
        while filled < step.len() {
            match stream.read(&mut step[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(corrupt(format!("bsdiff control block: {e}"))),
            }
        }
        if filled == 0 {
            break;
        }
        if filled < step.len() {
            // Either the stream ends inside a step, or it went past the limit (the limit
            // is a whole number of steps, so the spare byte lands in a partial one).
            return Err(corrupt(if stream.limit() == 0 {
                format!(
                    "bsdiff control block holds more than {} steps for a {expected}-byte target",
                    max_control_steps(expected)
                )
            } else {
                "bsdiff control block ends inside a step".to_string()
            }));
        }
        let field = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&step[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let (add, copy) = (field(0), field(8));
        if (add | copy) & (1 << 63) != 0 {
            return Err(corrupt("bsdiff control step with a negative length".into()));
        }
        let room = expected - written;
        if add > room || copy > room - add {
            return Err(PatchError::Length {
                encoding: Encoding::Bsdiff,
                expected,
                actual: expected.saturating_add(1),
            });
        }
        if add == 0 && copy == 0 {
            idle += 1;
            if idle > max_idle_steps(expected) {
                return Err(corrupt(format!(
                    "bsdiff control block holds more than {} steps that write nothing",
                    max_idle_steps(expected)
                )));
            }
        }
        written += add + copy;
    }
    if written != expected {
        return Err(PatchError::Length {
            encoding: Encoding::Bsdiff,
            expected,
            actual: written,
        });
    }
    Ok(())
}

/// Apply a bsdiff 4 patch to `reference`, producing exactly `expected` bytes.
pub fn bsdiff_decode(reference: &[u8], patch: &[u8], expected: u64) -> Result<Vec<u8>, PatchError> {
    bsdiff_decode_counted(reference, patch, expected, &mut 0)
}

/// [`bsdiff_decode`], adding to `work` the bytes its checks decompress before qbsdiff runs
/// (what a hostile patch refused by those checks cost).
fn bsdiff_decode_counted(
    reference: &[u8],
    patch: &[u8],
    expected: u64,
    work: &mut u64,
) -> Result<Vec<u8>, PatchError> {
    if expected > MAX_IN_MEMORY {
        return Err(PatchError::TooLarge(expected));
    }
    let corrupt = |e: io::Error| PatchError::Corrupt {
        encoding: Encoding::Bsdiff,
        message: e.to_string(),
    };
    check_bsdiff_header(patch, expected, work)?;
    // qbsdiff is third-party code parsing untrusted bytes: a panic there must become an
    // error, not take the importer down (fuzzing found header values it did not check).
    let p = std::panic::catch_unwind(|| qbsdiff::Bspatch::new(patch))
        .map_err(|_| PatchError::Corrupt {
            encoding: Encoding::Bsdiff,
            message: "malformed bsdiff patch".into(),
        })?
        .map_err(corrupt)?;
    if p.hint_target_size() != expected {
        return Err(PatchError::Length {
            encoding: Encoding::Bsdiff,
            expected,
            actual: p.hint_target_size(),
        });
    }
    let mut w = Bounded {
        out: Vec::with_capacity(expected as usize),
        limit: expected,
        overran: false,
    };
    let result = p.apply(reference, &mut w);
    if w.overran {
        return Err(PatchError::Length {
            encoding: Encoding::Bsdiff,
            expected,
            actual: expected + 1,
        });
    }
    result.map_err(corrupt)?;
    if w.out.len() as u64 != expected {
        return Err(PatchError::Length {
            encoding: Encoding::Bsdiff,
            expected,
            actual: w.out.len() as u64,
        });
    }
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAST: ZstdTuning = ZstdTuning {
        level: 3,
        long: false,
    };

    #[test]
    fn decoding_into_a_reused_buffer_gives_the_same_bytes_and_the_same_bounds() {
        let reference = sample(300_000, 1);
        let target = sample(200_000, 2);
        let patch = zstd_encode(Some(&reference), &target, FAST).unwrap();
        // A buffer left over from a larger piece, holding stale bytes.
        let mut buf = vec![0xAAu8; 1 << 20];
        zstd_decode_into(Some(&reference), &patch, target.len() as u64, &mut buf).unwrap();
        assert_eq!(buf, target);
        // Its spare capacity does not let a payload decode past the declared length.
        let mut big = buf;
        big.reserve(1 << 20);
        let short = target.len() as u64 - 1;
        assert!(matches!(
            zstd_decode_into(Some(&reference), &patch, short, &mut big),
            Err(PatchError::Length { .. }) | Err(PatchError::Corrupt { .. })
        ));
        assert!(big.is_empty(), "a refused decode leaves nothing to read");
        // Nor a payload declared longer than it is.
        assert!(
            zstd_decode_into(Some(&reference), &patch, target.len() as u64 + 1, &mut big).is_err()
        );
    }

    fn sample(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 7 + usize::from(seed)) % 251) as u8 ^ (i / 97) as u8)
            .collect()
    }

    #[test]
    fn zstd_ref_ships_a_small_edit_in_few_bytes() {
        let reference = sample(400_000, 1);
        let mut target = reference.clone();
        for i in (0..target.len()).step_by(40_000) {
            target[i] ^= 0xff;
        }
        let patch = zstd_encode(
            Some(&reference),
            &target,
            ZstdTuning {
                level: 19,
                long: false,
            },
        )
        .unwrap();
        assert!(patch.len() < 400, "{} bytes", patch.len());
        assert_eq!(
            zstd_decode(Some(&reference), &patch, target.len() as u64).unwrap(),
            target
        );
        let plain = zstd_encode(None, &target, FAST).unwrap();
        assert_eq!(
            zstd_decode(None, &plain, target.len() as u64).unwrap(),
            target
        );
    }

    #[test]
    fn bsdiff_round_trip_and_wrong_lengths_are_refused() {
        let reference = sample(50_000, 2);
        let mut target = reference.clone();
        target.splice(1000..1000, b"inserted".iter().copied());
        let patch = bsdiff_encode(&reference, &target).unwrap();
        assert_eq!(
            bsdiff_decode(&reference, &patch, target.len() as u64).unwrap(),
            target
        );
        assert!(matches!(
            bsdiff_decode(&reference, &patch, target.len() as u64 - 1),
            Err(PatchError::Length { .. })
        ));
        let z = zstd_encode(Some(&reference), &target, FAST).unwrap();
        assert!(matches!(
            zstd_decode(Some(&reference), &z, target.len() as u64 - 1),
            Err(PatchError::Length { .. }) | Err(PatchError::Corrupt { .. })
        ));
        assert!(matches!(
            zstd_decode(Some(&reference), &z, target.len() as u64 + 1),
            Err(PatchError::Length { .. })
        ));
    }

    #[test]
    fn a_bsdiff_patch_cut_short_or_padded_is_refused() {
        let reference = sample(50_000, 3);
        let mut target = reference.clone();
        target[20_000] ^= 1;
        target.extend_from_slice(b"new tail bytes");
        let patch = bsdiff_encode(&reference, &target).unwrap();
        let n = target.len() as u64;
        assert!(bsdiff_decode(&reference, &patch, n).is_ok());
        for cut in 1..=4 {
            assert!(
                matches!(
                    bsdiff_decode(&reference, &patch[..patch.len() - cut], n),
                    Err(PatchError::Corrupt { .. })
                ),
                "cut by {cut}"
            );
        }
        let mut padded = patch.clone();
        padded.push(0);
        assert!(matches!(
            bsdiff_decode(&reference, &padded, n),
            Err(PatchError::Corrupt { .. })
        ));
    }

    /// bzip2 of `data` followed by `zeros` zero bytes, made without holding the zeros.
    fn bz_then_zeros(data: &[u8], zeros: u64) -> Vec<u8> {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        io::copy(&mut data.chain(io::repeat(0).take(zeros)), &mut enc).unwrap();
        enc.finish().unwrap()
    }

    /// A bsdiff 4 patch from its three (already compressed) blocks.
    fn bsdiff_patch(ctrl: &[u8], diff: &[u8], extra: &[u8], size: u64) -> Vec<u8> {
        let mut p = b"BSDIFF40".to_vec();
        for n in [ctrl.len() as u64, diff.len() as u64, size] {
            p.extend_from_slice(&n.to_le_bytes());
        }
        p.extend_from_slice(ctrl);
        p.extend_from_slice(diff);
        p.extend_from_slice(extra);
        p
    }

    fn control_step(add: u64, copy: u64, seek: u64) -> Vec<u8> {
        [add, copy, seek]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    const GIB: u64 = 1 << 30;

    /// The review's attack: a bsdiff piece of under a KiB whose extra block expands to a
    /// GiB, repeated by several pieces. Before the bound, each piece decoded the whole GiB
    /// (and then applied: qbsdiff reads the extra block only as far as it needs).
    #[test]
    fn a_bsdiff_extra_block_bomb_is_refused_at_the_declared_length() {
        let target = b"hello";
        let ctrl = bz_then_zeros(&control_step(0, 5, 0), 0);
        let diff = bz_then_zeros(b"", 0);
        let extra = bz_then_zeros(target, GIB);
        let patch = bsdiff_patch(&ctrl, &diff, &extra, 5);
        assert!(patch.len() < 2048, "{} bytes", patch.len());
        // Refused after decoding 6 bytes of the GiB, not after decoding it eight times.
        refused_after_little_work(&patch, 5, "longer than the target");
    }

    /// `patch` (for a target of `len` bytes) refused as corrupt with `needle` in the
    /// message, eight times over, each after decompressing at most a KiB: the work is
    /// counted, not timed (a decoder that expanded its GiB each time is refused by the
    /// count at once, on any machine). bzip2 decodes a block (900 KB at most) ahead of
    /// what it hands out: that, not the GiB, bounds the rest.
    fn refused_after_little_work(patch: &[u8], len: u64, needle: &str) {
        for _ in 0..8 {
            let mut work = 0;
            let r = bsdiff_decode_counted(b"", patch, len, &mut work);
            assert!(
                matches!(&r, Err(PatchError::Corrupt { message, .. }) if message.contains(needle)),
                "{r:?}"
            );
            assert!(work <= 1024, "decompressed {work} bytes before refusing");
        }
    }

    /// The same through the control block: a GiB of zero control steps (each writes
    /// nothing, so no output bound catches them) before the one real step.
    #[test]
    fn a_bsdiff_control_block_of_idle_steps_is_refused_after_little_work() {
        let target = b"hello";
        // A GiB of idle steps (a whole number of steps), then the real one.
        let idle = (GIB / 24) * 24;
        let ctrl = {
            use std::io::Read;
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
            io::copy(
                &mut io::repeat(0).take(idle).chain(&control_step(0, 5, 0)[..]),
                &mut enc,
            )
            .unwrap();
            enc.finish().unwrap()
        };
        let diff = bz_then_zeros(b"", 0);
        let extra = bz_then_zeros(target, 0);
        let patch = bsdiff_patch(&ctrl, &diff, &extra, 5);
        assert!(patch.len() < 2048, "{} bytes", patch.len());
        refused_after_little_work(&patch, 5, "steps");
        // The same steps without the idle ones apply.
        let ctrl = bz_then_zeros(&control_step(0, 5, 0), 0);
        let good = bsdiff_patch(&ctrl, &diff, &extra, 5);
        assert_eq!(bsdiff_decode(b"", &good, 5).unwrap(), target);
    }

    /// Control steps past the declared length, or with negative lengths, are refused
    /// before qbsdiff runs.
    #[test]
    fn bsdiff_control_steps_must_write_exactly_the_target() {
        let diff = bz_then_zeros(b"", 0);
        let extra = bz_then_zeros(b"hello", 0);
        for (steps, what) in [
            (control_step(0, 6, 0), "past the target"),
            (control_step(0, 4, 0), "short of the target"),
            (control_step(1 << 63 | 1, 5, 0), "negative add"),
            (control_step(0, 5, 0)[..20].to_vec(), "cut inside a step"),
        ] {
            let ctrl = bz_then_zeros(&steps, 0);
            let patch = bsdiff_patch(&ctrl, &diff, &extra, 5);
            assert!(bsdiff_decode(b"", &patch, 5).is_err(), "{what}");
        }
    }

    /// zstd decodes into a buffer of the declared length plus one byte: a frame that
    /// expands to a GiB is refused when that buffer is full (zstd's "destination buffer
    /// is too small": it never writes past it), with or without a content size in its
    /// header, and nothing of the expansion is allocated. Shown by the refusal's cause,
    /// not a stopwatch.
    #[test]
    fn a_zstd_bomb_is_refused_at_the_declared_length() {
        use std::io::Read;
        let sized = zstd_encode(None, &vec![0u8; 64 << 20], FAST).unwrap();
        let mut unsized_frame = Vec::new();
        {
            let mut enc = zstd::stream::write::Encoder::new(&mut unsized_frame, 3).unwrap();
            io::copy(&mut io::repeat(0).take(GIB), &mut enc).unwrap();
            enc.finish().unwrap();
        }
        assert!(unsized_frame.len() < 1 << 20, "{}", unsized_frame.len());
        for frame in [&sized, &unsized_frame] {
            for _ in 0..8 {
                for r in [
                    zstd_decode(None, frame, 1000),
                    zstd_decode(Some(b"reference"), frame, 1000),
                ] {
                    assert!(
                        matches!(&r, Err(PatchError::Corrupt { message, .. })
                            if message == "Destination buffer is too small"),
                        "{r:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn decoders_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..300), len in 0u64..5000) {
            let reference = sample(1000, 3);
            let _ = zstd_decode(Some(&reference), &payload, len);
            let _ = zstd_decode(None, &payload, len);
            let _ = bsdiff_decode(&reference, &payload, len);
        }

        #[test]
        fn round_trips(reference in proptest::collection::vec(any::<u8>(), 0..3000), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..10)) {
            let mut target = reference.clone();
            target.extend_from_slice(b"tail");
            for (i, b) in edits {
                let at = i.index(target.len());
                target[at] = b;
            }
            let z = zstd_encode(Some(&reference), &target, FAST).unwrap();
            prop_assert_eq!(zstd_decode(Some(&reference), &z, target.len() as u64).unwrap(), target.clone());
            let b = bsdiff_encode(&reference, &target).unwrap();
            prop_assert_eq!(bsdiff_decode(&reference, &b, target.len() as u64).unwrap(), target);
        }
    }
}
