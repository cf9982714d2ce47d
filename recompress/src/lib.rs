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

mod deflate;
pub mod goflate;
pub use zip::{ZipMember, deflated_members};
mod gzip;
mod input;
mod recipe;
mod rustflate;
mod sink;
mod spool;
mod zip;
mod zlib;
mod zstd;

use input::Input;
use sink::{OutMeter, Sink};

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
        // An empty archive is only its end record; seeing through it changes nothing, but
        // the delta engine then treats every zip alike.
        [b'P', b'K', 5, 6, ..] => Some(Format::Zip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Format::Zstd),
        _ => None,
    }
}

/// Decode `input` (a whole file) into its plain form, written to `plain`, and return the
/// recipe that re-creates `input` exactly from it. `Ok` only when the re-creation was
/// checked to give `input` byte for byte.
pub fn analyze(input: &mut dyn Read, plain: &mut dyn Write, limits: &Limits) -> Result<Analysis> {
    let (format, sink, consumed) = walk(input, plain, limits, true, true)?;
    let plain_size = sink.written();
    let builder = sink.into_recipe().unwrap_or_default();
    let recipe = builder.encode(format, consumed);
    // The segments were each checked by rebuilding them; this checks that their encoding
    // reads back as what was checked (a recipe that does not parse is no recipe).
    let header = recipe::validate(&recipe, limits)?;
    if header.plain_len != plain_size || header.out_len != consumed {
        return Err(RecompressError::NotExact(format!(
            "the recipe reads back as {} plain / {} output bytes, not {plain_size} / {consumed}",
            header.plain_len, header.out_len
        )));
    }
    Ok(Analysis {
        format,
        plain_size,
        recipe,
    })
}

/// Decode `input` into the same plain form [`analyze`] gives, without a recipe. Returns the
/// format and the plain size.
pub fn decode(
    input: &mut dyn Read,
    plain: &mut dyn Write,
    limits: &Limits,
) -> Result<(Format, u64)> {
    decode_as(input, plain, limits, PLAIN_VERSION)
}

/// The plain form [`analyze`] and [`decode`] give: 2 since a zip's central directory is
/// carried relative to its local headers (recipe segment 11).
pub const PLAIN_VERSION: u32 = 2;

/// [`decode`] as plain form `version` had it: 1 keeps a zip's central directory verbatim
/// (what `analyze` gave before [`PLAIN_VERSION`] 2), so the references of a delta made
/// then still read the bytes it was made against; any other version is 2's.
pub fn decode_as(
    input: &mut dyn Read,
    plain: &mut dyn Write,
    limits: &Limits,
    version: u32,
) -> Result<(Format, u64)> {
    let (format, sink, _) = walk(input, plain, limits, false, version >= 2)?;
    Ok((format, sink.written()))
}

/// The shared walk of [`analyze`] and [`decode`]: the same code decides what is verbatim
/// and what is decoded, so both give the same plain form.
fn walk<'a>(
    input: &mut dyn Read,
    plain: &'a mut dyn Write,
    limits: &'a Limits,
    with_recipe: bool,
    zip_central: bool,
) -> Result<(Format, Sink<'a>, u64)> {
    let mut input = Input::new(input);
    input.fill(4)?;
    let format = sniff(input.peek()).ok_or(RecompressError::NotCompressed)?;
    let mut sink = Sink::new(plain, limits, with_recipe);
    if format == Format::Zip {
        input.track_zip();
    }
    match format {
        Format::Gzip => gzip::walk(&mut input, &mut sink)?,
        Format::Zip => zip::walk(&mut input, &mut sink, zip_central)?,
        Format::Zstd => zstd::walk(&mut input, &mut sink)?,
    }
    sink.flush()?;
    Ok((format, sink, input.consumed()))
}

/// The container format a recipe rebuilds (for `delta show`), after checking the whole
/// recipe against `limits`.
pub fn recipe_format(recipe: &[u8], limits: &Limits) -> Result<Format> {
    Ok(recipe::validate(recipe, limits)?.format)
}

/// Compressed bytes of deflated zip members the host already has (a reference zip, e.g.
/// the baseline file a delta was planned against), by CRC-32, compressed size and
/// uncompressed size. [`rebuild_reusing`] copies a member of a zip member run from here
/// instead of re-compressing it when its local header names the same three values.
pub trait MemberSource {
    /// The `csize` compressed bytes of a deflated member with these values, when the
    /// source has one (anything else is ignored and the member is re-compressed).
    fn member(&mut self, crc: u32, csize: u64, usize: u64) -> std::io::Result<Option<Vec<u8>>>;
}

/// What [`rebuild_reusing`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Bytes written.
    pub written: u64,
    /// Members of zip member runs re-compressed from their plain bytes.
    pub members_deflated: u64,
    /// Members of zip member runs copied from the [`MemberSource`].
    pub members_copied: u64,
}

/// Re-create the original bytes from `recipe` and the plain form read from `plain`, written
/// to `out`. Returns the bytes written. `recipe` is untrusted.
pub fn rebuild(
    recipe: &[u8],
    plain: &mut dyn Read,
    out: &mut dyn Write,
    limits: &Limits,
) -> Result<u64> {
    Ok(rebuild_reusing(recipe, plain, out, limits, None)?.written)
}

/// [`rebuild`], copying the members of zip member runs that `members` has (same CRC-32 and
/// sizes in the local header) instead of re-compressing them; their plain bytes are read
/// and skipped. The recipe alone re-creates the file; `members` only makes it cheaper,
/// and gives other bytes only when it serves bytes that are not what the recipe's member
/// compresses to (a CRC-32 collision, a wrong source): the caller's digest check refuses
/// those, and the make side checks the rule gives the exact file before asking for it.
pub fn rebuild_reusing(
    recipe: &[u8],
    plain: &mut dyn Read,
    out: &mut dyn Write,
    limits: &Limits,
    mut members: Option<&mut dyn MemberSource>,
) -> Result<RebuildStats> {
    let mut stats = RebuildStats::default();
    // The whole recipe is checked before the first byte is written, so a damaged recipe is
    // refused without side effects.
    let header = recipe::validate(recipe, limits)?;
    let mut r = recipe::Reader::new(recipe);
    r.header(limits)?;
    let mut out = OutMeter::new(out, header.out_len, limits);
    if header.format == Format::Zip {
        // Segment 11 needs the local headers written before it, as the walk saw them.
        out.track_zip();
    }
    for _ in 0..header.segments {
        match r.segment()? {
            recipe::SegmentRef::Copy(n) => sink::copy_plain(plain, &mut out, n)?,
            recipe::SegmentRef::Deflate { chunks } => {
                deflate::rebuild(&mut r, chunks, plain, &mut out)?
            }
            recipe::SegmentRef::Zstd(p) => zstd::rebuild(&p, plain, &mut out)?,
            recipe::SegmentRef::Zlib(z) => deflate::rebuild_zlib(&z, plain, &mut out)?,
            recipe::SegmentRef::Raw(r) => deflate::rebuild_raw(&r, plain, &mut out)?,
            recipe::SegmentRef::GoFlate(g) => deflate::rebuild_goflate(&g, plain, &mut out)?,
            recipe::SegmentRef::RustFlate(r) => deflate::rebuild_rustflate(&r, plain, &mut out)?,
            recipe::SegmentRef::ZipRun {
                plain_len,
                count,
                setting,
            } => zip::rebuild_run(
                plain_len,
                count,
                &setting,
                plain,
                &mut out,
                members.as_mut().map(|m| &mut **m as &mut dyn MemberSource),
                &mut stats,
            )?,
            recipe::SegmentRef::ZipCentral { plain_len, count } => {
                zip::rebuild_central(plain_len, count, plain, &mut out)?
            }
        }
    }
    let mut extra = [0u8; 1];
    if sink::read_full(plain, &mut extra)? != 0 {
        return Err(RecompressError::Malformed {
            what: "plain form",
            message: "longer than the recipe says".into(),
        });
    }
    stats.written = out.finish()?;
    Ok(stats)
}

/// What a recipe says it rebuilds, after checking the whole recipe against `limits` (a
/// caller that keeps recipes beside other records checks its own lengths against these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeSummary {
    /// The container format rebuilt.
    pub format: Format,
    /// Bytes of plain form the rebuild reads.
    pub plain_len: u64,
    /// Bytes the rebuild writes.
    pub out_len: u64,
}

/// [`recipe_format`] with the lengths: the recipe is checked whole against `limits`.
pub fn recipe_summary(recipe: &[u8], limits: &Limits) -> Result<RecipeSummary> {
    let h = recipe::validate(recipe, limits)?;
    Ok(RecipeSummary {
        format: h.format,
        plain_len: h.plain_len,
        out_len: h.out_len,
    })
}
