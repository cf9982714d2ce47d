//! `ouk-feeds`: feed-aware kits: advisory feeds under `feeds/<source>/`, indexed row by row.
//!
//! A kit's feeds are JSON lines (one advisory per line) or JSON arrays, optionally zstd or
//! gzip compressed, under `feeds/<source>/` where `<source>` is the vendor (osv, ghsa, nvd,
//! ...). Kit build reads each feed once and writes the generation's feed index
//! ([`index`], at [`FEED_INDEX_PATH`]): per feed its row count, and per row its upstream
//! id, tenant, `modified` and the SHA-256 of its canonical JSON ([`canonical`]). The index
//! is an ordinary file of the kit, so it is signed, verified, delta-encoded and rehydrated
//! like any other, and the host never re-parses feeds to learn which rows changed.
//!
//! - [`scan`] cuts feed files into rows (streaming, JSON lines or arrays, gzip/zstd);
//! - [`tape`] scans a row into a flat tape of spans and writes its canonical JSON from
//!   there (the fast path), declining what it does not take to [`fast`];
//! - [`fast`] parses a row into a borrowed tree and writes the same canonical JSON as
//!   [`canonical`] without building a `serde_json::Value`;
//! - [`indexer`] parses rows in parallel and writes the index, sorting each feed's rows in
//!   bounded memory ([`sort`]);
//! - [`incremental`] computes a feed's index rows from its predecessor's, parsing only the
//!   rows that differ (a delta's apply derives the target's index this way), and
//!   [`same_bytes`] does it reading only the rows outside the byte runs the delta copied;
//! - [`audit`] finds duplicate and divergent rows in an index.
//!
//! On the host, [`diff`] joins two indexes row by row, [`changes`] is the per-generation
//! file of changed rows an import writes, [`history`] the supersedes chains, and [`host`]
//! ties them into the import pipeline and `ouk gen diff`.
//!
//! Invariant: the index is deterministic: the same feeds give the same bytes, whatever
//! the key order or whitespace of their rows and whatever their order in the file.

pub mod audit;
pub mod canonical;
pub mod changes;
mod class;
pub mod diff;
pub mod fast;
pub mod history;
pub mod host;
pub mod incremental;
pub mod index;
pub mod indexer;
pub mod same_bytes;
pub mod scan;
pub mod sort;
pub mod tape;
#[cfg(test)]
mod testutil;

pub use audit::{AuditReport, Conflict, ConflictKind, audit};
pub use index::{
    FEED_INDEX_FORMAT, FEED_INDEX_PATH, FEEDS_DIR, FeedHeader, FeedIndexReader, FeedIndexWriter,
    FeedRow, IndexError, IndexItem, RowHash,
};
pub use indexer::{BadRow, FeedError, FeedSummary, IndexOptions, IndexReport, index_feeds};

/// Index `feeds` into a temporary file (spilled runs in `opts.temp_dir`) and audit it: what
/// `ouk feeds audit --kit-dir` does on a release tree before any kit is built.
pub fn index_and_audit(
    feeds: &[indexer::FeedFile],
    opts: &IndexOptions,
    limit: usize,
) -> Result<(IndexReport, AuditReport), FeedError> {
    let io = |source| FeedError::Io {
        file: "temporary feed index".into(),
        source,
    };
    let tmp = match &opts.temp_dir {
        Some(d) => tempfile::NamedTempFile::new_in(d),
        None => tempfile::NamedTempFile::new(),
    }
    .map_err(io)?;
    let out = std::io::BufWriter::with_capacity(1 << 20, tmp.reopen().map_err(io)?);
    let (indexed, out) = index_feeds(feeds, opts, out)?;
    out.into_inner().map_err(|e| io(e.into_error()))?;
    let report = audit(
        || std::fs::File::open(tmp.path()).map(|f| std::io::BufReader::with_capacity(1 << 20, f)),
        limit,
    )?;
    Ok((indexed, report))
}
