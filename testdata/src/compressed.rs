//! The compressed variant's feeds: the same rows as the plain variant's three JSON-lines
//! feeds, published the way upstreams ship them compressed.
//!
//! - NVD: yearly `feeds/nvd/nvdcve-2.0-<year>.json.gz` (split on the CVE id's year, like
//!   NVD's yearly files), each a JSON array with one row per line, gzip level 9 with the
//!   file name and the day's cut time in the header (what `gzip -9 FILE` writes). An array,
//!   not NVD's wrapper object, because that is what the kit's feed indexer reads.
//! - OSV: `feeds/osv/all.zip`, one deflated member `<id>.json` per row (like OSV's
//!   per-ecosystem `all.zip`), written by the `zip` crate with fixed timestamps.
//! - GHSA: `feeds/ghsa/ghsa-all.jsonl.zst`, zstd level 3 with a content checksum (the
//!   `zstd` command's defaults).
//!
//! Every file gets a `sha256sum` sidecar, as the plain feeds do.
//!
//! Invariants: a pure function of `(seed, day, target bytes)`; row `u` has the same bytes
//! as in the plain variant's feed of the same day and target, so the churn inside these
//! files is exactly the plain variant's; memory is bounded (one encoder per NVD year, the
//! zip's central directory).

use crate::feeds::{FeedKind, base_rows, for_each_row};
use crate::fsutil::{self, HashWriter, create_hashed, finish_hashed, write_sidecar};
use crate::gz::{GzWriter, Header, Producer};
use crate::text::day_start;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;

/// The OSV archive inside a tree.
pub const OSV_ZIP: &str = "feeds/osv/all.zip";
/// The GHSA feed inside a tree.
pub const GHSA_ZST: &str = "feeds/ghsa/ghsa-all.jsonl.zst";
/// Directory of NVD's yearly files.
pub const NVD_DIR: &str = "feeds/nvd";

/// zstd level of the GHSA feed (the `zstd` command's default).
const GHSA_ZSTD_LEVEL: i32 = 3;
/// Deflate level of the zip members (Python's and Go's default, zlib's 6).
pub(crate) const ZIP_LEVEL: i64 = 6;

/// The name of NVD's file for CVE year `year`.
pub fn nvd_year_file(year: u64) -> String {
    format!("nvdcve-2.0-{year}.json.gz")
}

fn zip_err(e: zip::result::ZipError) -> io::Error {
    io::Error::other(e)
}

/// The fixed member time of generated zip archives: the calendar's day 0 (zip stores
/// local time to 2 s; a fixed time keeps archives of different days comparable).
pub(crate) fn zip_time() -> io::Result<zip::DateTime> {
    zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0)
        .map_err(|e| io::Error::other(format!("zip timestamp: {e}")))
}

/// Options of a deflated zip member.
pub(crate) fn zip_member() -> io::Result<SimpleFileOptions> {
    Ok(SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(ZIP_LEVEL))
        .last_modified_time(zip_time()?)
        .unix_permissions(0o644))
}

/// Writes NVD's yearly gzip files.
pub fn write_nvd_yearly(root: &Path, seed: u64, day: u32, target: u64) -> io::Result<()> {
    type Enc = GzWriter<HashWriter<BufWriter<File>>>;
    let n = base_rows(seed, FeedKind::Nvd, target);
    let dir = root.join(NVD_DIR);
    // BTreeMap: files are finished in year order, whatever order rows came in.
    let mut open: BTreeMap<u64, Enc> = BTreeMap::new();
    let mtime = u32::try_from(day_start(day)).unwrap_or(u32::MAX);
    for_each_row(seed, FeedKind::Nvd, n, day, |key, row| {
        let enc = match open.entry(key.cve_year) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let enc = e.into_mut();
                enc.write_all(b",\n")?;
                enc
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                let name = nvd_year_file(key.cve_year);
                let file = create_hashed(&dir.join(&name))?;
                let header = Header {
                    mtime,
                    name: name.strip_suffix(".gz"),
                    os: 3,
                };
                let enc = v.insert(GzWriter::new(file, Producer::Zlib, 9, header));
                enc.write_all(b"[\n")?;
                enc
            }
        };
        enc.write_all(row.strip_suffix(b"\n").unwrap_or(row))
    })?;
    for (year, mut enc) in open {
        enc.write_all(b"\n]\n")?;
        let (digest, _) = finish_hashed(enc.finish()?)?;
        write_sidecar(&dir.join(nvd_year_file(year)), &digest)?;
    }
    Ok(())
}

/// Writes OSV's `all.zip`: one member per row.
pub fn write_osv_zip(root: &Path, seed: u64, day: u32, target: u64) -> io::Result<()> {
    let n = base_rows(seed, FeedKind::Osv, target);
    let path = root.join(OSV_ZIP);
    let file = fsutil::create(&path, 0o644)?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
    let opts = zip_member()?;
    let mut names: HashSet<String> = HashSet::new();
    for_each_row(seed, FeedKind::Osv, n, day, |key, row| {
        // Ids are unique in practice (random GHSA ids may collide once in 2^60); a
        // duplicate member name would make the archive ambiguous, so it gets a suffix.
        let mut name = format!("{}.json", key.id);
        let mut k = 1;
        while names.contains(&name) {
            name = format!("{}-{k}.json", key.id);
            k += 1;
        }
        zip.start_file(name.as_str(), opts).map_err(zip_err)?;
        names.insert(name);
        zip.write_all(row)
    })?;
    let out = zip.finish().map_err(zip_err)?;
    out.into_inner().map_err(|e| e.into_error())?;
    write_sidecar(&path, &fsutil::sha256_file(&path)?)
}

/// Writes the GHSA feed as zstd-compressed JSON lines.
pub fn write_ghsa_zst(root: &Path, seed: u64, day: u32, target: u64) -> io::Result<()> {
    let n = base_rows(seed, FeedKind::Ghsa, target);
    let path = root.join(GHSA_ZST);
    let mut enc = zstd::stream::write::Encoder::new(create_hashed(&path)?, GHSA_ZSTD_LEVEL)?;
    enc.include_checksum(true)?;
    crate::feeds::write_feed_rows(&mut enc, seed, FeedKind::Ghsa, n, day)?;
    let (digest, _) = finish_hashed(enc.finish()?)?;
    write_sidecar(&path, &digest)
}
