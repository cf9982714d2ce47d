//! The redb index: table definitions and the encodings of their values.
//!
//! Tables owned by the store (other crates may add their own tables to the same database,
//! see [`crate::Store::database`]):
//!
//! | table          | key                  | value                                   |
//! |----------------|----------------------|-----------------------------------------|
//! | `store_meta`   | `&str`               | envelope bytes (`header`: [`StoreHeader`]) |
//! | `store_chunks` | chunk id (32 bytes)  | [`ChunkLocation`], fixed 20 bytes        |
//! | `store_packs`  | pack number (u32)    | committed length in bytes (u64)          |
//! | `store_files`  | file sha256 (32)     | envelope bytes ([`FileRecord`])          |
//! | `store_pins`   | (holder, file sha256) | nothing: a gc root ([`crate::pins`])   |
//! | `store_remote_packs` | pack number (u32) | BLAKE3 name of its object (object-storage stores) |
//!
//! `store_meta` key `backend` holds the store URL of an object-storage store; a store
//! without it keeps its packs in `packs/`. For an object-storage store this index is a
//! cache: `Store::reindex` rebuilds it from the bucket.
//!
//! Invariant: every `store_chunks` entry points inside the committed length of a pack in
//! `store_packs`, and those bytes were fsynced before the entry's transaction committed.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::envelope::{self, EnvelopeError};
use crate::id::ChunkId;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("store_meta");
pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8; 20]> =
    TableDefinition::new("store_chunks");
pub(crate) const PACKS: TableDefinition<u32, u64> = TableDefinition::new("store_packs");
pub(crate) const FILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("store_files");

/// pack number -> the BLAKE3 name of its object (object-storage stores only).
pub(crate) const REMOTE_PACKS: TableDefinition<u32, &[u8; 32]> =
    TableDefinition::new("store_remote_packs");

pub(crate) const HEADER_KEY: &str = "header";
/// `store_meta` key naming where the packs are (absent: the local pack directory).
pub(crate) const BACKEND_KEY: &str = "backend";

/// Current store format version.
pub const FORMAT_VERSION: u16 = 1;

/// The store's header: the parameters that decide its on-disk data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHeader {
    /// Chunking parameters every chunk of this store was cut with.
    pub chunker: ChunkerParams,
    /// zstd level new frames are written at (readers do not depend on it).
    pub zstd_level: i32,
}

impl StoreHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        envelope::seal(*b"OKSH", FORMAT_VERSION, self)
    }
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        envelope::open(*b"OKSH", FORMAT_VERSION, bytes).map(|(_, h)| h)
    }
}

/// Where a chunk's frame lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Pack number.
    pub pack: u32,
    /// Offset of the frame (its header) in the pack.
    pub offset: u64,
    /// Frame length, header included.
    pub frame_len: u32,
    /// Raw chunk length.
    pub raw_len: u32,
}

impl ChunkLocation {
    // Fixed width and hand-coded: this is the hottest record and never changes shape
    // without a FORMAT_VERSION bump.
    pub(crate) fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&self.pack.to_le_bytes());
        b[4..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.frame_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        b
    }
    pub(crate) fn decode(b: &[u8; 20]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[4..12]);
        ChunkLocation {
            pack: u32_at(0),
            offset: u64::from_le_bytes(off),
            frame_len: u32_at(12),
            raw_len: u32_at(16),
        }
    }
}

/// A file known to the store: its length and its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File length in bytes.
    pub size: u64,
    /// Chunk ids in file order.
    pub chunks: Vec<ChunkId>,
}

impl FileRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        envelope::seal(*b"OKFR", 1, self)
    }
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        envelope::open(*b"OKFR", 1, bytes).map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn location_round_trip(pack: u32, offset: u64, frame_len: u32, raw_len: u32) {
            let l = ChunkLocation { pack, offset, frame_len, raw_len };
            prop_assert_eq!(ChunkLocation::decode(&l.encode()), l);
        }

        #[test]
        fn file_record_round_trip(size: u64, ids in proptest::collection::vec(any::<[u8; 32]>(), 0..50)) {
            let r = FileRecord { size, chunks: ids.into_iter().map(ChunkId).collect() };
            prop_assert_eq!(FileRecord::decode(&r.encode()).unwrap(), r);
        }
    }
}
