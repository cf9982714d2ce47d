//! Pack-index objects: what an object-storage store keeps next to each immutable pack so
//! the local redb index can be rebuilt from the bucket listing alone (`Store::reindex`).
//!
//! Naming (all under the store's prefix):
//! - `packs/<hex>.pack`: a pack, named by the BLAKE3-256 of its bytes ([`PackName`]);
//! - `index/<hex>.okpi`: a pack-index object, named by the BLAKE3-256 of its own bytes;
//!   it lists the chunks of one pack (offset, frame and raw length) and the file records
//!   committed with it;
//! - `records/<holder>/<hex>.rec`: an opaque record of a layer above the store (the
//!   mirror's catalog), keyed by a 32-byte digest.
//!
//! Encoding: postcard inside the `OKPI` v1 envelope ([`crate::envelope`]).
//!
//! Invariants checked by [`PackIndex::decode`], so nothing read from a bucket can make a
//! reader index outside a pack or allocate for an impossible frame: every chunk lies past
//! the pack header and inside `pack_len`, no frame is longer than
//! [`crate::frame::MAX_FRAME_LEN`] nor shorter than a frame header, chunk ids are
//! distinct, an index without a pack lists no chunks, and the chunker parameters are the
//! ones this build cuts with. Names parse only as 64 lowercase hex digits plus the suffix.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::envelope::{self, EnvelopeError};
use crate::frame::{HEADER_LEN, MAX_FRAME_LEN};
use crate::id::{ChunkId, FileDigest};
use crate::index::FileRecord;
use crate::pack::PACK_HEADER_LEN;

const KIND: [u8; 4] = *b"OKPI";
const VERSION: u16 = 1;

/// Largest pack-index object a reader accepts (a 32 MiB pack holds about 500 chunks; this
/// leaves room for packs of several GiB and many file records).
pub const MAX_INDEX_OBJECT_LEN: u64 = 64 << 20;

/// The BLAKE3-256 of an object's bytes: the name of a pack or of a pack-index object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackName(
    #[serde(
        serialize_with = "crate::id::serialize_digest",
        deserialize_with = "crate::id::deserialize_digest"
    )]
    pub [u8; 32],
);

impl PackName {
    /// The name of `bytes`.
    pub fn of(bytes: &[u8]) -> PackName {
        PackName(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Object key of the pack with this name, relative to the store prefix.
    pub fn pack_key(&self) -> String {
        format!("packs/{}.pack", self.to_hex())
    }

    /// Object key of the pack-index object with this name, relative to the store prefix.
    pub fn index_key(&self) -> String {
        format!("index/{}.okpi", self.to_hex())
    }
}

impl std::fmt::Display for PackName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn parse_hex_name(name: &str, dir: &str, suffix: &str) -> Option<PackName> {
    let hexpart = name.strip_prefix(dir)?.strip_suffix(suffix)?;
    if hexpart.len() != 64
        || !hexpart
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hexpart, &mut out).ok()?;
    Some(PackName(out))
}

/// The pack name in a key made by [`PackName::pack_key`].
pub fn parse_pack_key(key: &str) -> Option<PackName> {
    parse_hex_name(key, "packs/", ".pack")
}

/// The index-object name in a key made by [`PackName::index_key`].
pub fn parse_index_key(key: &str) -> Option<PackName> {
    parse_hex_name(key, "index/", ".okpi")
}

/// Object key of `holder`'s record `key`, relative to the store prefix.
pub fn record_key(holder: &str, key: &[u8; 32]) -> String {
    format!("records/{holder}/{}.rec", hex::encode(key))
}

/// The digest in a key made by [`record_key`] for `holder`.
pub fn parse_record_key(holder: &str, key: &str) -> Option<[u8; 32]> {
    parse_hex_name(key, &format!("records/{holder}/"), ".rec").map(|n| n.0)
}

/// One chunk of a pack, as listed in its index object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedChunk {
    /// The chunk.
    pub id: ChunkId,
    /// Offset of its frame in the pack.
    pub offset: u64,
    /// Frame length, header included.
    pub frame_len: u32,
    /// Raw chunk length.
    pub raw_len: u32,
}

/// One pack-index object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackIndex {
    /// Chunking parameters of every chunk the files below name.
    pub chunker: ChunkerParams,
    /// The pack this object describes (`None`: a commit that stored no new chunk, only
    /// file records).
    pub pack: Option<PackName>,
    /// The pack's length in bytes.
    pub pack_len: u64,
    /// Its chunks.
    pub chunks: Vec<IndexedChunk>,
    /// File records committed with it (their chunks are in this pack or in packs
    /// committed earlier).
    pub files: Vec<(FileDigest, FileRecord)>,
}

/// Why a pack-index object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackIndexError {
    /// The envelope or its payload did not decode.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The content breaks an invariant of the module doc.
    #[error("{0}")]
    Invalid(String),
}

impl PackIndexError {
    /// Always [`crate::ErrorClass::Digest`]: a pack index that is refused is damaged data.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Digest
    }
}

impl PackIndex {
    /// The `OKPI` envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        envelope::seal(KIND, VERSION, self)
    }

    /// Decode and validate an index object.
    pub fn decode(bytes: &[u8]) -> Result<PackIndex, PackIndexError> {
        if bytes.len() as u64 > MAX_INDEX_OBJECT_LEN {
            return Err(PackIndexError::Invalid(format!(
                "{} bytes: larger than {MAX_INDEX_OBJECT_LEN}",
                bytes.len()
            )));
        }
        let (_, index): (u16, PackIndex) = envelope::open(KIND, VERSION, bytes)?;
        index.validate()?;
        Ok(index)
    }

    /// Check the invariants of the module doc.
    pub fn validate(&self) -> Result<(), PackIndexError> {
        let bad = |m: String| Err(PackIndexError::Invalid(m));
        if self.chunker != ChunkerParams::V1 {
            return bad(format!(
                "chunked with {:?}; this ouk chunks with {:?}",
                self.chunker,
                ChunkerParams::V1
            ));
        }
        if self.pack.is_none() && (!self.chunks.is_empty() || self.pack_len != 0) {
            return bad("chunks listed without a pack".into());
        }
        let mut seen = std::collections::HashSet::with_capacity(self.chunks.len());
        for c in &self.chunks {
            let end = c.offset.checked_add(u64::from(c.frame_len));
            if c.offset < PACK_HEADER_LEN
                || u64::from(c.frame_len) > MAX_FRAME_LEN
                || (c.frame_len as usize) < HEADER_LEN
                || end.is_none_or(|e| e > self.pack_len)
            {
                return bad(format!(
                    "chunk {} at {}+{} is outside the pack ({} bytes)",
                    c.id, c.offset, c.frame_len, self.pack_len
                ));
            }
            if !seen.insert(c.id) {
                return bad(format!("chunk {} is listed twice", c.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_index() -> impl Strategy<Value = PackIndex> {
        (
            any::<Option<[u8; 32]>>(),
            proptest::collection::vec((any::<[u8; 32]>(), 52u32..300_000, 1u32..300_000), 0..40),
            proptest::collection::vec(
                (
                    any::<[u8; 32]>(),
                    any::<u64>(),
                    proptest::collection::vec(any::<[u8; 32]>(), 0..8),
                ),
                0..6,
            ),
        )
            .prop_map(|(pack, frames, files)| {
                let mut chunks = Vec::new();
                let mut offset = PACK_HEADER_LEN;
                let mut ids = std::collections::HashSet::new();
                if pack.is_some() {
                    for (id, frame_len, raw_len) in frames {
                        if ids.insert(id) {
                            chunks.push(IndexedChunk {
                                id: ChunkId(id),
                                offset,
                                frame_len,
                                raw_len,
                            });
                            offset += u64::from(frame_len);
                        }
                    }
                }
                PackIndex {
                    chunker: ChunkerParams::V1,
                    pack: pack.map(PackName),
                    pack_len: if pack.is_some() { offset } else { 0 },
                    chunks,
                    files: files
                        .into_iter()
                        .map(|(d, size, c)| {
                            (
                                FileDigest(d),
                                FileRecord {
                                    size,
                                    chunks: c.into_iter().map(ChunkId).collect(),
                                },
                            )
                        })
                        .collect(),
                }
            })
    }

    proptest! {
        #[test]
        fn index_objects_round_trip(index in arb_index()) {
            let bytes = index.encode();
            prop_assert_eq!(&bytes[..4], b"OKPI");
            prop_assert_eq!(PackIndex::decode(&bytes).unwrap(), index);
        }

        #[test]
        fn truncated_or_flipped_objects_never_panic(index in arb_index(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let bytes = index.encode();
            let _ = PackIndex::decode(&bytes[..cut.index(bytes.len())]);
            let mut flipped = bytes.clone();
            let at = flip.index(flipped.len());
            flipped[at] ^= 0x5a;
            // Either refused or a valid index: never a panic, never an out-of-pack chunk.
            if let Ok(i) = PackIndex::decode(&flipped) {
                prop_assert!(i.validate().is_ok());
            }
        }
    }

    #[test]
    fn names_round_trip_and_refuse_lookalikes() {
        let n = PackName::of(b"pack bytes");
        assert_eq!(parse_pack_key(&n.pack_key()), Some(n));
        assert_eq!(parse_index_key(&n.index_key()), Some(n));
        assert_eq!(parse_pack_key(&n.index_key()), None);
        let upper = n
            .pack_key()
            .to_uppercase()
            .replace("PACKS/", "packs/")
            .replace(".PACK", ".pack");
        assert_eq!(
            parse_pack_key(&upper),
            None,
            "uppercase hex is not a name we write"
        );
        assert_eq!(parse_pack_key("packs/abc.pack"), None);
        assert_eq!(parse_pack_key(&format!("packs/{}0.pack", n.to_hex())), None);
        let k = [7u8; 32];
        assert_eq!(
            parse_record_key("mirror", &record_key("mirror", &k)),
            Some(k)
        );
        assert_eq!(parse_record_key("other", &record_key("mirror", &k)), None);
        // The name is the BLAKE3 of the bytes: same bytes, same name; other bytes, other.
        assert_eq!(PackName::of(b"pack bytes"), n);
        assert_ne!(PackName::of(b"pack bytes!"), n);
    }

    #[test]
    fn out_of_pack_chunks_and_foreign_chunkers_are_refused() {
        let good = PackIndex {
            chunker: ChunkerParams::V1,
            pack: Some(PackName([1; 32])),
            pack_len: 16 + 100,
            chunks: vec![IndexedChunk {
                id: ChunkId([2; 32]),
                offset: 16,
                frame_len: 100,
                raw_len: 10,
            }],
            files: vec![],
        };
        assert!(PackIndex::decode(&good.encode()).is_ok());
        let mut past_end = good.clone();
        past_end.pack_len = 100;
        assert!(PackIndex::decode(&past_end.encode()).is_err());
        let mut in_header = good.clone();
        in_header.chunks[0].offset = 0;
        assert!(PackIndex::decode(&in_header.encode()).is_err());
        let mut overflow = good.clone();
        overflow.chunks[0].offset = u64::MAX - 10;
        assert!(PackIndex::decode(&overflow.encode()).is_err());
        let mut twice = good.clone();
        twice.pack_len += 100;
        twice.chunks.push(IndexedChunk {
            offset: 116,
            ..twice.chunks[0]
        });
        assert!(PackIndex::decode(&twice.encode()).is_err());
        let mut no_pack = good.clone();
        no_pack.pack = None;
        assert!(PackIndex::decode(&no_pack.encode()).is_err());
        let mut chunker = good;
        chunker.chunker.avg_size *= 2;
        assert!(PackIndex::decode(&chunker.encode()).is_err());
    }
}
