//! The kit bundle codec: the deterministic `.tar.gz` writer and the safe streaming reader.
//!
//! Modules, one job each:
//! - [`path`]: the canonical entry-name rules shared by both sides;
//! - `header`: tar header blocks (GNU format written; ustar and GNU parsed strictly);
//! - [`pgzip`]: the parallel, deterministic gzip compressor (pinned deflate build);
//! - [`writer`]: [`BundleWriter`], sorted entries, per-entry and whole-bundle SHA-256;
//! - [`reader`]: [`BundleReader`], refusing unsafe entries before their data is copied;
//! - [`unpack`]: [`unpack_to_dir`], the import's stream-unpack into `staging/`;
//! - [`error`]: [`WriteError`] and [`ReadError`].
//!
//! Format decisions (also in the module docs): GNU tar headers with `././@LongLink` records
//! for names over 100 bytes, directory entries (0755) before their content, entries sorted
//! by the bytes of their names, mtime/uid/gid 0, empty owner names, two zero blocks at the
//! end, one gzip member with a fixed header (no name, mtime 0, XFL 0, OS 255), deflate level
//! 6 in 1 MiB blocks each primed with the previous 32 KiB. A kit contains regular files and
//! directories only: the reader refuses every link, device and FIFO.

pub mod error;
pub mod header;
pub mod path;
pub mod pgzip;
pub mod reader;
pub mod unpack;
pub mod writer;

#[cfg(test)]
mod tests;

pub use error::{ReadError, WriteError};
pub use header::{MAX_OWNER_ID, Owner};
pub use path::PathProblem;
pub use pgzip::{GzOptions, GzSummary, ParGzWriter};
pub use reader::{BundleReader, Entry, EntryKind, ReadLimits};
pub use unpack::{UnpackedFile, unpack_to_dir};
pub use writer::{
    BundleSummary, BundleWriter, DIR_MODE, EntryInfo, EntrySource, EntrySpec, WriterOptions,
    write_bundle,
};
