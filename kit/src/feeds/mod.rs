//! Feed-aware kits: advisory feeds under `feeds/<source>/`, indexed row by row.
//!
//! A kit's feeds are JSON lines (one advisory per line) or JSON arrays, optionally zstd or
//! gzip compressed, under `feeds/<source>/` where `<source>` is the vendor (osv, ghsa, nvd,
//! ...). Kit build reads each feed once and writes the generation's feed index
//! ([`index`], at [`FEED_INDEX_PATH`]): per feed its row count, and per row its upstream
//! id, tenant, `modified` and the SHA-256 of its canonical JSON. The index is an ordinary
//! file of the kit, so it is signed, verified, delta-encoded and rehydrated like any other,
//! and the host never re-parses feeds to learn which rows changed.
//!
//! Invariant: the index is deterministic: the same feeds give the same bytes, whatever
//! the key order or whitespace of their rows and whatever their order in the file.

pub mod index;

pub use index::{
    FEED_INDEX_FORMAT, FEED_INDEX_PATH, FEEDS_DIR, FeedHeader, FeedIndexReader, FeedIndexWriter,
    FeedRow, IndexError, IndexItem, RowHash,
};
