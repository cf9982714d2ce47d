//! Seeing through compression.
//!
//! A delta between two compressed files is as large as the files (compressed bytes change
//! everywhere after the first edit). This crate turns a compressed file into its **plain
//! form** plus a **recipe**, and back:
//!
//! - [`analyze`] (the connected site, `delta make`) decodes a file and records what the
//!   host needs to re-create the original bytes bit for bit from the plain form. It
//!   succeeds only when that re-creation was checked to be exact.
//! - [`decode`] gives the same plain form without the recipe work (the reference side: a
//!   baseline file the host already has).
//! - [`rebuild`] (the host, `delta apply`) re-creates the original bytes from the plain form
//!   and a recipe. The recipe is untrusted input: it is bounded by [`Limits`] and fuzzed;
//!   the caller still checks the rebuilt file's SHA-256, so a wrong recipe is a refused
//!   delta, never a wrong file.
//!
//! The plain form is what a delta engine diffs: it must be stable (the same content gives
//! the same plain form whatever encoder wrote it) and it streams (memory stays bounded
//! whatever the file size).

use std::io::{Read, Write};

/// Container formats this crate sees through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One or more gzip members (`.gz`, `.tgz`, OCI `tar+gzip` layers).
    Gzip,
    /// A zip archive (`.zip`, `.whl`, `.jar`, `.nupkg`).
    Zip,
    /// One or more zstd frames.
    Zstd,
}

impl Format {
    /// How messages and `delta show` name the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zip => "zip",
            Format::Zstd => "zstd",
        }
    }
}

/// Bounds on untrusted input.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest plain form decoded or rebuilt.
    pub max_plain: u64,
    /// Largest ratio of plain form to compressed size (a decompression bomb past it is
    /// refused).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_plain: 4 << 30,
            max_ratio: 1024,
        }
    }
}

/// What [`analyze`] found.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The container format.
    pub format: Format,
    /// Bytes of plain form written.
    pub plain_size: u64,
    /// What [`rebuild`] needs besides the plain form.
    pub recipe: Vec<u8>,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum RecompressError {
    /// The input is not in a format this crate decodes.
    #[error("not a compressed format ouk sees through")]
    NotCompressed,
    /// The input or recipe is malformed.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// "gzip", "zip", "zstd" or "recipe".
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Decoding would pass a [`Limits`] bound.
    #[error("{0}")]
    TooLarge(String),
    /// The original bytes cannot be re-created exactly (make side: ship the file as is).
    #[error("cannot be re-created exactly: {0}")]
    NotExact(String),
    /// This build cannot rebuild what the recipe asks for (names what is needed).
    #[error("this ouk cannot rebuild it: {0}")]
    Unsupported(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result of this crate.
pub type Result<T, E = RecompressError> = std::result::Result<T, E>;

/// The format `head` (the first bytes of a file, at least 4) starts with.
pub fn sniff(head: &[u8]) -> Option<Format> {
    match head {
        [0x1f, 0x8b, 8, ..] => Some(Format::Gzip),
        [b'P', b'K', 3, 4, ..] => Some(Format::Zip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Format::Zstd),
        _ => None,
    }
}

/// Decode `input` (a whole file) into its plain form, written to `plain`, and return the
/// recipe that re-creates `input` exactly from it. `Ok` only when the re-creation was
/// checked to give `input` byte for byte.
pub fn analyze(input: &mut dyn Read, plain: &mut dyn Write, limits: &Limits) -> Result<Analysis> {
    let _ = (input, plain, limits);
    Err(RecompressError::Unsupported("not implemented yet".into()))
}

/// Decode `input` into the same plain form [`analyze`] gives, without a recipe. Returns the
/// format and the plain size.
pub fn decode(
    input: &mut dyn Read,
    plain: &mut dyn Write,
    limits: &Limits,
) -> Result<(Format, u64)> {
    let _ = (input, plain, limits);
    Err(RecompressError::Unsupported("not implemented yet".into()))
}

/// Re-create the original bytes from `recipe` and the plain form read from `plain`, written
/// to `out`. Returns the bytes written. `recipe` is untrusted.
pub fn rebuild(
    recipe: &[u8],
    plain: &mut dyn Read,
    out: &mut dyn Write,
    limits: &Limits,
) -> Result<u64> {
    let _ = (recipe, plain, out, limits);
    Err(RecompressError::Unsupported("not implemented yet".into()))
}
