//! Pack frames: one chunk, stored as a self-describing, independently verifiable record.
//!
//! Layout (little endian), [`HEADER_LEN`] bytes of header then the payload:
//!
//! ```text
//! 0   4  magic "OUKf"
//! 4   1  codec: 0 = raw, 1 = zstd frame
//! 5   3  reserved, zero
//! 8   4  raw length
//! 12  4  stored (payload) length
//! 16 32  chunk id (BLAKE3-256 of the raw bytes)
//! 48  4  header check: first 4 bytes of BLAKE3 over bytes 0..48
//! 52  .. payload
//! ```
//!
//! Invariants: a frame decodes only if its header check holds, its lengths fit the bounds
//! and the buffer, its payload decompresses to exactly `raw length` bytes, and those bytes
//! hash to the chunk id. So any single frame can be verified with nothing but its bytes,
//! and a scan can find frame boundaries in a damaged pack.

use crate::id::ChunkId;

/// Frame header length in bytes.
pub const HEADER_LEN: usize = 52;
/// Largest raw chunk a frame may carry (bounds decompression: no bombs).
pub const MAX_RAW_LEN: u32 = 16 << 20;
/// The longest frame a valid header can describe (header plus zstd's bound on
/// [`MAX_RAW_LEN`]); a reader refuses to allocate for a longer one.
pub const MAX_FRAME_LEN: u64 =
    HEADER_LEN as u64 + MAX_RAW_LEN as u64 + (MAX_RAW_LEN as u64 >> 8) + (128 << 10);
const MAGIC: &[u8; 4] = b"OUKf";

/// How the payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Payload is the raw chunk (used when zstd does not make it smaller).
    Raw,
    /// Payload is one zstd frame.
    Zstd,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload codec.
    pub codec: Codec,
    /// Raw chunk length.
    pub raw_len: u32,
    /// Payload length.
    pub stored_len: u32,
    /// Chunk id.
    pub id: ChunkId,
}

impl FrameHeader {
    /// Whole frame length, header included.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// Why a frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header or payload needs.
    #[error("frame truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// Magic, reserved bytes, codec or header check wrong.
    #[error("frame header damaged")]
    BadHeader,
    /// Lengths out of bounds.
    #[error("frame lengths out of bounds (raw {raw}, stored {stored})")]
    BadLength {
        /// Raw length field.
        raw: u32,
        /// Stored length field.
        stored: u32,
    },
    /// zstd refused the payload or it decoded to the wrong length.
    #[error("frame payload does not decompress to its declared length")]
    BadPayload,
    /// The bytes hash to another id.
    #[error("chunk hash mismatch: frame says {expected}, bytes hash to {actual}")]
    HashMismatch {
        /// Id in the header.
        expected: ChunkId,
        /// Id of the decoded bytes.
        actual: ChunkId,
    },
}

impl FrameError {
    /// Always [`crate::ErrorClass::Digest`]: a frame that does not decode is damaged data.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Digest
    }
}

fn header_check(h: &[u8]) -> [u8; 4] {
    let d = blake3::hash(&h[..48]);
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_bytes()[..4]);
    out
}

/// Encode the header of a frame whose payload is `payload_len` bytes.
pub fn encode_header(
    codec: Codec,
    raw_len: u32,
    stored_len: u32,
    id: &ChunkId,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = match codec {
        Codec::Raw => 0,
        Codec::Zstd => 1,
    };
    h[8..12].copy_from_slice(&raw_len.to_le_bytes());
    h[12..16].copy_from_slice(&stored_len.to_le_bytes());
    h[16..48].copy_from_slice(id.as_bytes());
    let check = header_check(&h);
    h[48..52].copy_from_slice(&check);
    h
}

/// Parse and check a frame header at the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<FrameHeader, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Truncated {
            need: HEADER_LEN as u64,
            have: buf.len() as u64,
        });
    }
    let h = &buf[..HEADER_LEN];
    if &h[..4] != MAGIC || h[5..8] != [0, 0, 0] || h[48..52] != header_check(h) {
        return Err(FrameError::BadHeader);
    }
    let codec = match h[4] {
        0 => Codec::Raw,
        1 => Codec::Zstd,
        _ => return Err(FrameError::BadHeader),
    };
    let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let raw_len = u32_at(8);
    let stored_len = u32_at(12);
    let mut id = [0u8; 32];
    id.copy_from_slice(&h[16..48]);
    let bad_len = raw_len > MAX_RAW_LEN
        || match codec {
            Codec::Raw => stored_len != raw_len,
            // zstd never needs more than raw + a small bound; refuse absurd payloads.
            Codec::Zstd => stored_len as usize > zstd::zstd_safe::compress_bound(raw_len as usize),
        };
    if bad_len {
        return Err(FrameError::BadLength {
            raw: raw_len,
            stored: stored_len,
        });
    }
    Ok(FrameHeader {
        codec,
        raw_len,
        stored_len,
        id: ChunkId(id),
    })
}

/// `raw`'s length as a frame records it, refused past [`MAX_RAW_LEN`].
fn frame_raw_len(raw: &[u8]) -> std::io::Result<u32> {
    u32::try_from(raw.len())
        .ok()
        .filter(|l| *l <= MAX_RAW_LEN)
        .ok_or_else(|| std::io::Error::other("chunk larger than a frame can hold"))
}

/// Compress `raw` into a complete frame appended to `out`; returns the header.
/// `compressor` is reused across calls (zstd contexts are expensive to create).
pub fn encode_frame(
    compressor: &mut zstd::bulk::Compressor<'_>,
    id: &ChunkId,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> std::io::Result<FrameHeader> {
    let raw_len = frame_raw_len(raw)?;
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    let payload_start = out.len();
    out.resize(
        payload_start + zstd::zstd_safe::compress_bound(raw.len()),
        0,
    );
    let compressed = compressor.compress_to_buffer(raw, &mut out[payload_start..])?;
    if compressed >= raw.len() {
        out.truncate(start);
        return encode_raw_frame(id, raw, out);
    }
    out.truncate(payload_start + compressed);
    let stored_len = compressed as u32;
    let h = encode_header(Codec::Zstd, raw_len, stored_len, id);
    out[start..payload_start].copy_from_slice(&h);
    Ok(FrameHeader {
        codec: Codec::Zstd,
        raw_len,
        stored_len,
        id: *id,
    })
}

/// `raw` stored uncompressed as a complete frame appended to `out`; returns the header.
pub fn encode_raw_frame(
    id: &ChunkId,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> std::io::Result<FrameHeader> {
    let raw_len = frame_raw_len(raw)?;
    out.extend_from_slice(&encode_header(Codec::Raw, raw_len, raw_len, id));
    out.extend_from_slice(raw);
    Ok(FrameHeader {
        codec: Codec::Raw,
        raw_len,
        stored_len: raw_len,
        id: *id,
    })
}

thread_local! {
    // zstd contexts are costly to create; one per thread is reused for every frame.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decode and verify the frame at the start of `buf`, appending the raw chunk to `out`.
pub fn decode_frame(buf: &[u8], out: &mut Vec<u8>) -> Result<FrameHeader, FrameError> {
    let h = decode_header(buf)?;
    let end = h.frame_len();
    if (buf.len() as u64) < end {
        return Err(FrameError::Truncated {
            need: end,
            have: buf.len() as u64,
        });
    }
    let payload = &buf[HEADER_LEN..end as usize];
    let start = out.len();
    match h.codec {
        Codec::Raw => out.extend_from_slice(payload),
        Codec::Zstd => {
            out.resize(start + h.raw_len as usize, 0);
            let n = DECOMPRESSOR
                .with(|cell| {
                    let mut slot = cell.borrow_mut();
                    if slot.is_none() {
                        *slot = Some(zstd::bulk::Decompressor::new()?);
                    }
                    match slot.as_mut() {
                        Some(d) => d.decompress_to_buffer(payload, &mut out[start..]),
                        None => Err(std::io::Error::other("no decompressor")),
                    }
                })
                .map_err(|_| FrameError::BadPayload);
            if n != Ok(h.raw_len as usize) {
                out.truncate(start);
                return Err(FrameError::BadPayload);
            }
        }
    }
    if out.len() - start != h.raw_len as usize {
        out.truncate(start);
        return Err(FrameError::BadPayload);
    }
    let actual = ChunkId::of(&out[start..]);
    if actual != h.id {
        out.truncate(start);
        return Err(FrameError::HashMismatch {
            expected: h.id,
            actual,
        });
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_of(raw: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let mut out = Vec::new();
        encode_frame(&mut c, &ChunkId::of(raw), raw, &mut out).unwrap();
        out
    }

    #[test]
    fn incompressible_chunks_are_stored_raw() {
        let raw = *blake3::hash(b"seed").as_bytes();
        let raw: Vec<u8> = (0..200u8)
            .flat_map(|i| *blake3::hash(&[raw[0], i]).as_bytes())
            .collect();
        let f = frame_of(&raw);
        let h = decode_header(&f).unwrap();
        assert_eq!(h.codec, Codec::Raw);
        let compressible = vec![b'a'; 5000];
        assert_eq!(
            decode_header(&frame_of(&compressible)).unwrap().codec,
            Codec::Zstd
        );
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..20_000), rep in 1usize..4) {
            let raw: Vec<u8> = raw.iter().cycle().take(raw.len() * rep).copied().collect();
            let f = frame_of(&raw);
            let mut out = vec![9u8];
            let h = decode_frame(&f, &mut out).unwrap();
            prop_assert_eq!(&out[1..], &raw[..]);
            prop_assert_eq!(h.frame_len() as usize, f.len());
        }

        #[test]
        fn any_single_bit_flip_is_detected(raw in proptest::collection::vec(any::<u8>(), 1..4000), pos: prop::sample::Index, bit in 0u8..8) {
            let mut f = frame_of(&raw);
            let i = pos.index(f.len());
            f[i] ^= 1 << bit;
            let mut out = Vec::new();
            prop_assert!(decode_frame(&f, &mut out).is_err());
            prop_assert!(out.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(&buf, &mut Vec::new());
        }

        #[test]
        fn truncation_is_detected(raw in proptest::collection::vec(any::<u8>(), 1..4000), cut: prop::sample::Index) {
            let f = frame_of(&raw);
            let n = cut.index(f.len());
            prop_assert!(decode_frame(&f[..n], &mut Vec::new()).is_err());
        }
    }
}
