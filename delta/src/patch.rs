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

use std::io::{self, Write};

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
    // One spare byte: a payload that fills it decodes to more than declared.
    let mut out = vec![0u8; expected as usize + 1];
    let n = dctx
        .decompress(&mut out[..], payload)
        .map_err(zstd_err(encoding))?;
    if n as u64 != expected {
        return Err(PatchError::Length {
            encoding,
            expected,
            actual: n as u64,
        });
    }
    out.truncate(n);
    Ok(out)
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

/// Check a bsdiff 4 header: magic, non-negative block lengths that fit the patch, and the
/// declared target length.
fn check_bsdiff_header(patch: &[u8], expected: u64) -> Result<(), PatchError> {
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
    // qbsdiff reads the last stream (the extra block) only as far as the target needs, so
    // a patch cut inside its end-of-stream marker would still apply. Every byte of a piece
    // must count: the extra block has to be one whole bzip2 stream.
    let extra = &patch[32 + (ctrl + diff) as usize..];
    let mut stream = bzip2::bufread::BzDecoder::new(extra);
    io::copy(&mut stream, &mut io::sink())
        .map_err(|e| corrupt(&format!("bsdiff extra block: {e}")))?;
    if !stream.into_inner().is_empty() {
        return Err(corrupt("bytes after the bsdiff extra block"));
    }
    Ok(())
}

/// Apply a bsdiff 4 patch to `reference`, producing exactly `expected` bytes.
pub fn bsdiff_decode(reference: &[u8], patch: &[u8], expected: u64) -> Result<Vec<u8>, PatchError> {
    if expected > MAX_IN_MEMORY {
        return Err(PatchError::TooLarge(expected));
    }
    let corrupt = |e: io::Error| PatchError::Corrupt {
        encoding: Encoding::Bsdiff,
        message: e.to_string(),
    };
    check_bsdiff_header(patch, expected)?;
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
