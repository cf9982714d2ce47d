//! Windowed stream deltas: one stored stream (a bundle's tar or see-through stream) kept as
//! the difference from another, for the mirror's delta storage ([`super::deltastore`]).
//!
//! The byte codec is the delta engine's own zstd patch (`ouk_delta::patch::zstd_encode`
//! with the reference as a raw-content prefix, long-distance matching). Streams are larger
//! than one patch should hold in memory, so the target is cut into windows of [`WINDOW`]
//! bytes and each window is coded against a reference range of the base of at most
//! [`MAX_REF`] bytes. Where that range lies comes from content anchors: both streams are
//! chunked with the store's FastCDC chunker, and a target window's reference is centred on
//! the median shift of its chunks that also occur in the base (the proportional position
//! when none does). Roll-ups grow and shift by whole files, which moves the anchors with
//! them.
//!
//! Layout (all little endian): `header_len` u32 | `OKMD` envelope (version 1, postcard
//! [`PatchHeader`]) | the windows' zstd payloads, in order.
//!
//! Invariants:
//! - Decoding is bounded and total: the header is at most [`MAX_HEADER`] bytes, every
//!   window's target and reference lengths are capped ([`WINDOW`], [`MAX_REF`]), every
//!   reference range lies inside the base, the windows' lengths add up to the declared
//!   target length and the payloads fill the patch exactly; each zstd payload is decoded
//!   to exactly its window's length (`ouk_delta::patch::zstd_decode`). A hostile or
//!   damaged patch is an error, never a panic nor an unbounded allocation.
//! - Memory per window is bounded by one reference range, one window and its payload.
//! - A patch only says how to rebuild bytes; the caller checks the rebuilt stream's SHA-256
//!   against the catalog record before using it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ouk_delta::patch::{Encoding, PatchError, ZstdTuning, zstd_encode};
use ouk_store::envelope::{self, EnvelopeError};
use ouk_store::{ChunkId, Chunker, FileDigest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Target bytes per window.
pub const WINDOW: u64 = 32 << 20;
/// Largest reference range of one window.
pub const MAX_REF: u64 = 2 * WINDOW;
/// Largest patch header.
pub const MAX_HEADER: u32 = 16 << 20;
/// zstd level of the windows' payloads. Measured on two weekly 64 MiB testdata tars
/// (`zstd --long=27 --patch-from`): level 3 gives 638 KB in 1.1 s, level 12 622 KB in
/// 10.5 s; the matches that matter are long, so a higher level buys ~2 % for 9x the time.
pub const LEVEL: i32 = 3;

/// Counters a test reads to see how much work a rebuild did (not timing): windows decoded
/// and scratch files created, per thread. Compiled into test builds only.
#[cfg(test)]
pub(crate) mod probe {
    use std::cell::Cell;

    thread_local! {
        static WHOLE_RECOMPRESSIONS: Cell<u64> = const { Cell::new(0) };
        static WINDOW_DECODES: Cell<u64> = const { Cell::new(0) };
        static SCRATCH_FILES: Cell<u64> = const { Cell::new(0) };
        static SNAPSHOT_CHUNKS: Cell<u64> = const { Cell::new(0) };
    }

    /// Count `n` chunks of a chain's snapshot read from the store.
    pub(crate) fn snapshot_chunks_read(n: u64) {
        SNAPSHOT_CHUNKS.with(|c| c.set(c.get() + n));
    }

    /// Snapshot chunks read since the last call, on this thread.
    pub(crate) fn take_snapshot_chunks() -> u64 {
        SNAPSHOT_CHUNKS.with(|c| c.replace(0))
    }

    /// Count one bundle re-compressed whole (every byte matched the original).
    pub(crate) fn bundle_recompressed() {
        WHOLE_RECOMPRESSIONS.with(|c| c.set(c.get() + 1));
    }

    /// Whole re-compressions since the last call, on this thread.
    pub(crate) fn take_recompressions() -> u64 {
        WHOLE_RECOMPRESSIONS.with(|c| c.replace(0))
    }

    /// Count one window decoded.
    pub(crate) fn window_decoded() {
        WINDOW_DECODES.with(|c| c.set(c.get() + 1));
    }

    /// Count one scratch file created.
    pub(crate) fn scratch_created() {
        SCRATCH_FILES.with(|c| c.set(c.get() + 1));
    }

    /// (windows decoded, scratch files created) since the last call, on this thread.
    pub(crate) fn take() -> (u64, u64) {
        (
            WINDOW_DECODES.with(|c| c.replace(0)),
            SCRATCH_FILES.with(|c| c.replace(0)),
        )
    }
}

const PATCH_KIND: [u8; 4] = *b"OKMD";
const PATCH_VERSION: u16 = 1;

/// Why a stream delta did not encode or decode.
#[derive(Debug, thiserror::Error)]
pub enum StreamDeltaError {
    /// Reading or writing a scratch file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// The patch breaks the rules in the module doc.
    #[error("mirror stream delta is damaged: {0}")]
    Corrupt(String),
    /// The header did not decode.
    #[error("mirror stream delta header: {0}")]
    Header(#[from] EnvelopeError),
    /// A window's payload did not decode.
    #[error("mirror stream delta window: {0}")]
    Payload(#[from] PatchError),
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> StreamDeltaError + '_ {
    move |source| StreamDeltaError::Io {
        context: context.to_string(),
        source,
    }
}

/// What the payloads of a patch are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchHeader {
    /// Length of the base stream the patch was made against.
    pub base_len: u64,
    /// Length of the stream it rebuilds.
    pub target_len: u64,
    /// The windows, in target order.
    pub windows: Vec<PatchWindow>,
}

/// One window: `target_len` bytes rebuilt from a payload and a base range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchWindow {
    /// Bytes of the target this window rebuilds.
    pub target_len: u64,
    /// Start of its reference range in the base.
    pub ref_offset: u64,
    /// Length of the reference range.
    pub ref_len: u64,
    /// Bytes of its zstd payload.
    pub payload_len: u64,
}

impl PatchHeader {
    /// Check the header against the rules in the module doc, given the patch's length
    /// after the header.
    pub fn validate(&self, payload_bytes: u64) -> Result<(), StreamDeltaError> {
        let bad = |m: String| Err(StreamDeltaError::Corrupt(m));
        let mut target = 0u64;
        let mut payload = 0u64;
        for (i, w) in self.windows.iter().enumerate() {
            if w.target_len == 0 || w.target_len > WINDOW {
                return bad(format!("window {i}: {} target bytes", w.target_len));
            }
            if w.ref_len > MAX_REF
                || w.ref_offset
                    .checked_add(w.ref_len)
                    .is_none_or(|e| e > self.base_len)
            {
                return bad(format!("window {i}: reference range outside the base"));
            }
            target = target.saturating_add(w.target_len);
            payload = payload.saturating_add(w.payload_len);
        }
        if target != self.target_len {
            return bad(format!(
                "windows rebuild {target} bytes, the header says {}",
                self.target_len
            ));
        }
        if payload != payload_bytes {
            return bad(format!(
                "payloads take {payload} bytes, the patch has {payload_bytes} after its header"
            ));
        }
        Ok(())
    }
}

/// A stream spooled to a scratch file, with its digest and content anchors.
#[derive(Debug)]
pub struct ChunkedStream {
    /// The stream's bytes.
    pub file: File,
    /// Its length.
    pub len: u64,
    /// Its SHA-256.
    pub sha256: FileDigest,
    /// Its chunks (the store's chunker): offset, length, id.
    pub chunks: Vec<(u64, u32, ChunkId)>,
}

/// Spool `source` into `file` (a fresh scratch file), hashing and chunking it on the way.
pub fn spool(
    chunker: &Chunker,
    source: impl Read,
    file: File,
) -> Result<ChunkedStream, StreamDeltaError> {
    // Fed by the chunker's own read loop (its `observe` hook, as the store's writer does),
    // not a second loop: no hashing reader needed.
    let mut sha = Sha256::new();
    let mut chunks = Vec::new();
    let mut pos = 0u64;
    let mut out = io::BufWriter::with_capacity(1 << 20, &file);
    let mut stream = ouk_store::chunker::StreamChunker::new(chunker.clone(), source);
    let mut failed = None;
    while let Some(chunk) = stream
        .next_chunk(&mut |bytes| sha.update(bytes))
        .map_err(io_err("read the stream"))?
    {
        if let Err(e) = out.write_all(chunk) {
            failed = Some(e);
            break;
        }
        chunks.push((pos, chunk.len() as u32, ChunkId::of(chunk)));
        pos += chunk.len() as u64;
    }
    if let Some(e) = failed {
        return Err(io_err("write a scratch file")(e));
    }
    out.flush().map_err(io_err("write a scratch file"))?;
    drop(out);
    Ok(ChunkedStream {
        file,
        len: pos,
        sha256: FileDigest(sha.finalize().into()),
        chunks,
    })
}

/// Index `file` (a stream already in a scratch file, read from its start) as [`spool`]
/// would, without writing it again: its digest and content anchors.
pub fn index(chunker: &Chunker, file: File) -> Result<ChunkedStream, StreamDeltaError> {
    // Fed by the chunker's read loop, as in `spool`.
    let mut sha = Sha256::new();
    let mut chunks = Vec::new();
    let mut pos = 0u64;
    let reader = io::BufReader::with_capacity(1 << 20, &file);
    let mut stream = ouk_store::chunker::StreamChunker::new(chunker.clone(), reader);
    while let Some(chunk) = stream
        .next_chunk(&mut |bytes| sha.update(bytes))
        .map_err(io_err("read the stream"))?
    {
        chunks.push((pos, chunk.len() as u32, ChunkId::of(chunk)));
        pos += chunk.len() as u64;
    }
    drop(stream);
    Ok(ChunkedStream {
        file,
        len: pos,
        sha256: FileDigest(sha.finalize().into()),
        chunks,
    })
}

/// Read `len` bytes at `offset` of `file`.
fn read_range(file: &File, offset: u64, len: u64) -> Result<Vec<u8>, StreamDeltaError> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(io_err("read a stream range"))?;
    Ok(buf)
}

/// The reference range of the window `[start, start + len)` of `target` in `base`.
fn reference_range(
    base: &ChunkedStream,
    anchors: &HashMap<ChunkId, u64>,
    target: &ChunkedStream,
    start: u64,
    len: u64,
    window: u64,
) -> (u64, u64) {
    // Twice the window, as MAX_REF is for WINDOW.
    let max_ref = 2 * window;
    let mut shifts: Vec<i128> = target
        .chunks
        .iter()
        .filter(|(off, _, _)| *off >= start && *off < start + len)
        .filter_map(|(off, _, id)| anchors.get(id).map(|b| i128::from(*b) - i128::from(*off)))
        .collect();
    let shift = if shifts.is_empty() {
        // No shared chunk: the same relative position.
        let pos = u128::from(start) * u128::from(base.len) / u128::from(target.len.max(1));
        pos as i128 - i128::from(start)
    } else {
        let mid = shifts.len() / 2;
        *shifts.select_nth_unstable(mid).1
    };
    let margin = (max_ref - len.min(window)) / 2;
    let centre = i128::from(start) + shift;
    let from = (centre - i128::from(margin)).clamp(0, i128::from(base.len)) as u64;
    let to = (from + max_ref).min(base.len);
    let from = to.saturating_sub(max_ref).min(from);
    (from, to - from)
}

/// Code `target` against `base` into `out`; `None` (and `out` left partly written) once the
/// payloads pass `budget` bytes, the point where the delta stops paying.
pub fn encode(
    base: &ChunkedStream,
    target: &ChunkedStream,
    budget: u64,
    scratch_dir: &Path,
    out: &mut File,
) -> Result<Option<u64>, StreamDeltaError> {
    encode_windows(base, target, budget, WINDOW, scratch_dir, out)
}

/// [`encode`] with windows of `window` target bytes (at most [`WINDOW`]; tests use small
/// ones to make many windows out of small streams).
pub fn encode_windows(
    base: &ChunkedStream,
    target: &ChunkedStream,
    budget: u64,
    window: u64,
    scratch_dir: &Path,
    out: &mut File,
) -> Result<Option<u64>, StreamDeltaError> {
    let window = window.clamp(1, WINDOW);
    let anchors: HashMap<ChunkId, u64> =
        base.chunks.iter().map(|(off, _, id)| (*id, *off)).collect();
    let tuning = ZstdTuning {
        level: LEVEL,
        long: true,
    };
    let mut header = PatchHeader {
        base_len: base.len,
        target_len: target.len,
        windows: Vec::new(),
    };
    // Payloads go after a header whose length is known only at the end: write them to a
    // second scratch file, then both in order.
    let mut payloads = tempfile::tempfile_in(scratch_dir)
        .map_err(io_err("create a scratch file for the payloads"))?;
    let mut total = 0u64;
    let mut start = 0u64;
    while start < target.len {
        let len = window.min(target.len - start);
        let (ref_offset, ref_len) = reference_range(base, &anchors, target, start, len, window);
        let reference = read_range(&base.file, ref_offset, ref_len)?;
        let window = read_range(&target.file, start, len)?;
        let payload =
            zstd_encode(Some(&reference), &window, tuning).map_err(io_err("zstd-code a window"))?;
        total += payload.len() as u64;
        if total > budget {
            return Ok(None);
        }
        payloads
            .write_all(&payload)
            .map_err(io_err("write the payloads"))?;
        header.windows.push(PatchWindow {
            target_len: len,
            ref_offset,
            ref_len,
            payload_len: payload.len() as u64,
        });
        start += len;
    }
    let sealed = envelope::seal(PATCH_KIND, PATCH_VERSION, &header);
    let header_len = u32::try_from(sealed.len())
        .ok()
        .filter(|&n| n <= MAX_HEADER)
        .ok_or_else(|| StreamDeltaError::Corrupt("the header is too large".into()))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, &mut *out);
    w.write_all(&header_len.to_le_bytes())
        .and_then(|()| w.write_all(&sealed))
        .map_err(io_err("write the patch"))?;
    payloads
        .seek(SeekFrom::Start(0))
        .map_err(io_err("rewind the payloads"))?;
    io::copy(&mut payloads, &mut w).map_err(io_err("write the patch"))?;
    w.flush().map_err(io_err("write the patch"))?;
    drop(w);
    let patch_len = 4 + u64::from(header_len) + total;
    Ok(Some(patch_len))
}

/// Read and check the header of the patch in `patch` (`patch_len` bytes).
pub fn read_header(patch: &File, patch_len: u64) -> Result<(PatchHeader, u64), StreamDeltaError> {
    header_from(&mut |offset, len| read_range(patch, offset, len), patch_len)
}

/// Read and check the header of a patch of `patch_len` bytes whose ranges `read` gives
/// (offset, length): the header and where the payloads start. `read` is asked only for
/// ranges inside the patch, and at most [`MAX_HEADER`] bytes.
pub fn header_from(
    read: &mut dyn FnMut(u64, u64) -> Result<Vec<u8>, StreamDeltaError>,
    patch_len: u64,
) -> Result<(PatchHeader, u64), StreamDeltaError> {
    if patch_len < 4 {
        return Err(StreamDeltaError::Corrupt("shorter than its header".into()));
    }
    let len: [u8; 4] = read(0, 4)?
        .try_into()
        .map_err(|_| StreamDeltaError::Corrupt("shorter than its header".into()))?;
    let header_len = u32::from_le_bytes(len);
    if header_len > MAX_HEADER || 4 + u64::from(header_len) > patch_len {
        return Err(StreamDeltaError::Corrupt(format!(
            "header of {header_len} bytes in a patch of {patch_len}"
        )));
    }
    let bytes = read(4, u64::from(header_len))?;
    if bytes.len() as u64 != u64::from(header_len) {
        return Err(StreamDeltaError::Corrupt("shorter than its header".into()));
    }
    let (_, header): (u16, PatchHeader) = envelope::open(PATCH_KIND, PATCH_VERSION, &bytes)?;
    let payload_start = 4 + u64::from(header_len);
    header.validate(patch_len - payload_start)?;
    Ok((header, payload_start))
}

/// Decode one window: its zstd `payload` against `reference`, appending exactly
/// `target_len` (at most [`WINDOW`]) bytes to `out`, into its spare capacity (nothing
/// zeroed, nothing copied; `out` grows only when it lacks the room). On error `out` keeps
/// its length.
pub fn decode_window_into(
    reference: &[u8],
    payload: &[u8],
    target_len: u64,
    out: &mut Vec<u8>,
) -> Result<(), StreamDeltaError> {
    use zstd::zstd_safe::{DCtx, DParameter};
    let encoding = Encoding::ZstdRef;
    let corrupt = |code: usize| PatchError::Corrupt {
        encoding,
        message: zstd::zstd_safe::get_error_name(code).to_string(),
    };
    let len = usize::try_from(target_len)
        .ok()
        .filter(|_| target_len <= WINDOW)
        .ok_or_else(|| StreamDeltaError::Corrupt(format!("a window of {target_len} bytes")))?;
    let mut dctx = DCtx::try_create().ok_or_else(|| PatchError::Corrupt {
        encoding,
        message: "no zstd context".into(),
    })?;
    // As `ouk_delta::patch::zstd_decode`: the frame may reach back over the whole
    // reference.
    let total = len + reference.len();
    let window_log = (usize::BITS - total.max(1).leading_zeros()).clamp(27, 30);
    dctx.set_parameter(DParameter::WindowLogMax(window_log))
        .map_err(corrupt)?;
    dctx.ref_prefix(reference).map_err(corrupt)?;
    let had = out.len();
    out.reserve(len);
    // The cursor writes after `had`, into capacity zstd is told about: a payload that
    // decodes to more than `len` either fails for want of room or is caught below.
    let mut at = io::Cursor::new(&mut *out);
    at.set_position(had as u64);
    let n = dctx.decompress(&mut at, payload).map_err(corrupt)?;
    if n != len {
        out.truncate(had);
        return Err(PatchError::Length {
            encoding,
            expected: target_len,
            actual: n as u64,
        }
        .into());
    }
    Ok(())
}

/// Rebuild the target from `base` (`base_len` bytes) and the patch in `patch`
/// (`patch_len` bytes) into `out`; returns the bytes written.
pub fn apply(
    base: &File,
    base_len: u64,
    patch: &File,
    patch_len: u64,
    out: &mut dyn Write,
) -> Result<u64, StreamDeltaError> {
    let (header, mut at) = read_header(patch, patch_len)?;
    if header.base_len != base_len {
        return Err(StreamDeltaError::Corrupt(format!(
            "made against a base of {} bytes, given {base_len}",
            header.base_len
        )));
    }
    let mut bytes = Vec::new();
    for w in &header.windows {
        let reference = read_range(base, w.ref_offset, w.ref_len)?;
        let payload = read_range(patch, at, w.payload_len)?;
        at += w.payload_len;
        bytes.clear();
        decode_window_into(&reference, &payload, w.target_len, &mut bytes)?;
        #[cfg(test)]
        probe::window_decoded();
        out.write_all(&bytes)
            .map_err(io_err("write the rebuilt stream"))?;
    }
    Ok(header.target_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker() -> Chunker {
        Chunker::new(ouk_store::ChunkerParams::V1)
    }

    fn stream(bytes: &[u8]) -> ChunkedStream {
        spool(&chunker(), bytes, tempfile::tempfile().unwrap()).unwrap()
    }

    fn rows(n: u32, edit: impl Fn(u32) -> bool) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let tag = if edit(i) { "edited" } else { "kept" };
                format!("{{\"id\":{i},\"state\":\"{tag}\",\"score\":{}}}\n", i % 97).into_bytes()
            })
            .collect()
    }

    fn round_trip(base: &[u8], target: &[u8]) -> u64 {
        let b = stream(base);
        let t = stream(target);
        let mut patch = tempfile::tempfile().unwrap();
        let len = encode(&b, &t, u64::MAX, &std::env::temp_dir(), &mut patch)
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(apply(&b.file, b.len, &patch, len, &mut out).unwrap(), t.len);
        assert_eq!(out, target);
        len
    }

    #[test]
    fn scattered_edits_cost_little_and_rebuild_exactly() {
        let base = rows(200_000, |_| false);
        let target = rows(200_000, |i| i.is_multiple_of(13));
        let len = round_trip(&base, &target);
        assert!(len < target.len() as u64 / 20, "{len} of {}", target.len());
        // Empty target, empty base, unrelated content.
        round_trip(&base, b"");
        round_trip(b"", &target[..1000]);
        round_trip(b"abc", b"xyz");
    }

    #[test]
    fn the_budget_stops_a_delta_that_does_not_pay() {
        let b = stream(&rows(10_000, |_| false));
        let t = stream(&rows(10_000, |_| true));
        let mut patch = tempfile::tempfile().unwrap();
        assert!(
            encode(&b, &t, 10, &std::env::temp_dir(), &mut patch)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn damaged_patches_are_refused() {
        let base = rows(20_000, |_| false);
        let b = stream(&base);
        let t = stream(&rows(20_000, |i| i.is_multiple_of(7)));
        let mut patch = tempfile::tempfile().unwrap();
        let len = encode(&b, &t, u64::MAX, &std::env::temp_dir(), &mut patch)
            .unwrap()
            .unwrap();
        let mut bytes = Vec::new();
        patch.seek(SeekFrom::Start(0)).unwrap();
        patch.read_to_end(&mut bytes).unwrap();
        let try_bytes = |bytes: &[u8]| {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(bytes).unwrap();
            let mut out = Vec::new();
            apply(&b.file, b.len, &f, bytes.len() as u64, &mut out).map(|_| out)
        };
        assert!(try_bytes(&bytes).is_ok());
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(try_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(try_bytes(&longer).is_err());
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(try_bytes(&huge).is_err());
        // Another base length.
        let mut out = Vec::new();
        let short = stream(&base[..100]);
        assert!(apply(&short.file, short.len, &patch, len, &mut out).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any edit rebuilds exactly.
        #[test]
        fn edits_round_trip(
            base in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..16),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let mut target = base.clone();
            for (at, x) in edits {
                if !target.is_empty() {
                    let n = target.len();
                    target[at % n] ^= x;
                }
            }
            target.extend_from_slice(&tail);
            round_trip(&base, &target);
        }

        /// Whatever bytes a damaged store gives, applying never panics.
        #[test]
        fn damaged_patches_never_panic(
            flips in proptest::collection::vec((0usize..512, proptest::prelude::any::<u8>()), 1..8),
        ) {
            let b = stream(&rows(2_000, |_| false));
            let t = stream(&rows(2_000, |i| i.is_multiple_of(5)));
            let mut patch = tempfile::tempfile().unwrap();
            encode(&b, &t, u64::MAX, &std::env::temp_dir(), &mut patch).unwrap().unwrap();
            let mut bytes = Vec::new();
            patch.seek(SeekFrom::Start(0)).unwrap();
            patch.read_to_end(&mut bytes).unwrap();
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&bytes).unwrap();
            let _ = apply(&b.file, b.len, &f, bytes.len() as u64, &mut Vec::new());
        }
    }
}

#[cfg(test)]
mod seed_tests {
    use std::io::Write;

    /// The fuzz seed (`fuzz/corpus/mirror_stream_delta/one-window.bin`, byte 0 = base
    /// length / 16, then the base, then the patch) applies: the seed exercises the
    /// decoder past its header checks.
    #[test]
    fn the_fuzz_seed_applies() {
        let seed = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/mirror_stream_delta/one-window.bin"),
        )
        .unwrap();
        let n = usize::from(seed[0]) * 16;
        let (base, patch) = seed[1..].split_at(n);
        let file = |b: &[u8]| {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(b).unwrap();
            f
        };
        let mut out = Vec::new();
        super::apply(
            &file(base),
            base.len() as u64,
            &file(patch),
            patch.len() as u64,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"hello world\n");
    }
}
