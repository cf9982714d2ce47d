//! Deterministic generator of synthetic Stella Ops release trees, for tests and benches of
//! kit build, import and delta.
//!
//! A tree is a pure function of a [`TreeSpec`]: the same `(seed, day, sizes)` always gives
//! byte-identical files, modes and mtimes. Trees of consecutive days show realistic churn
//! (about 1 % of feed rows revised, a few rows added and withdrawn, one analyzer plug-in
//! and one image app layer rebuilt, everything else byte-identical), and the tree of any
//! day is generated directly, without the days before it. Generation streams to disk with
//! bounded memory; see `README.md` for the layout.
//!
//! A compressed variant ([`TreeSpec::compressed`]) carries the same content the way real
//! kits mostly do: gzip image layers from two deflate producers, NVD's yearly `.json.gz`,
//! OSV's `all.zip`, a zstd GHSA feed and a wheel-like zip plug-in, with the same daily
//! churn inside the compressed files. The plain variant's bytes do not depend on it.

pub mod churn;
mod compressed;
mod debug_store;
mod feeds;
mod fsutil;
pub mod gz;
mod images;
mod misc;
mod plugins;
mod rng;
mod schedule;
pub mod snapshot;
mod text;
mod wheel;
mod words;

#[cfg(test)]
mod compressed_tests;
#[cfg(test)]
mod tests;

pub use compressed::{GHSA_ZST, NVD_DIR, OSV_ZIP, nvd_year_file};
pub use feeds::{DAILY_REVISION_P, FeedKind, write_feed, write_feed_like};
pub use images::{ARCHES, IMAGES};
pub use misc::{ROOT_CA_PEM, SUB_CA_PEM};
pub use plugins::{PLUGIN_ROOT, PLUGINS, plugin_id};
pub use text::{T0, day_start};
pub use wheel::{MODULES as WHEEL_MODULES, PACKAGE as WHEEL_PACKAGE, WHEEL};

use std::fs;
use std::io;
use std::path::Path;

/// Bytes of a tree that do not scale with the spec (plug-ins and small files).
pub const FIXED_BYTES: u64 = 440 * 1024;

/// The last day [`generate`] accepts (a century of daily releases); computing the state
/// of a day costs time linear in the day number.
pub const MAX_DAY: u32 = 36_500;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TreeSpec {
    /// Selects the synthetic universe (ids, packages, binary contents).
    pub seed: u64,
    /// Release day: day 0 is cut at 2025-10-23T00:00:00Z, day `d` `d` days later.
    pub day: u32,
    /// Target size of the three feeds together at day 0 (they grow slightly per day).
    pub feed_bytes: u64,
    /// Target on-disk size of the eight OCI image layouts (shared layers counted per copy).
    pub image_bytes: u64,
    /// Target size of the debug store's `.debug` files.
    pub debug_bytes: u64,
    /// The compressed variant: gzip layers (`image_bytes` then counts the uncompressed
    /// tars), NVD as yearly `.json.gz`, OSV as `all.zip`, GHSA as `.jsonl.zst`, plus a
    /// wheel plug-in. `false` (the default) is the plain variant.
    pub compressed: bool,
}

impl TreeSpec {
    /// A tree of about 5 MiB (3 MiB feeds, 1 MiB images, 256 KiB debug store) for unit
    /// and CLI tests, day 0.
    pub fn small(seed: u64) -> TreeSpec {
        TreeSpec {
            seed,
            day: 0,
            feed_bytes: 3 << 20,
            image_bytes: 1 << 20,
            debug_bytes: 256 << 10,
            compressed: false,
        }
    }

    /// A tree of about `total` bytes, day 0: after [`FIXED_BYTES`], 70 % feeds, 25 %
    /// images, 5 % debug store.
    pub fn with_total_bytes(seed: u64, total: u64) -> TreeSpec {
        let rest = total.saturating_sub(FIXED_BYTES);
        let feed_bytes = rest / 100 * 70 + rest % 100 * 70 / 100;
        let image_bytes = rest / 100 * 25 + rest % 100 * 25 / 100;
        TreeSpec {
            seed,
            day: 0,
            feed_bytes,
            image_bytes,
            debug_bytes: rest - feed_bytes - image_bytes,
            compressed: false,
        }
    }

    /// The same tree on another day.
    pub fn on_day(self, day: u32) -> TreeSpec {
        TreeSpec { day, ..self }
    }

    /// The same tree in the compressed (`true`) or plain (`false`) variant.
    pub fn with_compressed(self, compressed: bool) -> TreeSpec {
        TreeSpec { compressed, ..self }
    }

    /// The mtime (Unix seconds) given to every file and directory of the tree.
    pub fn mtime(&self) -> i64 {
        day_start(self.day)
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Regular files written.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The file mode of a tree-relative path: 0600 under `secrets/`, 0755 for the executable
/// scripts, 0644 otherwise (directories are 0755).
pub fn file_mode(rel: &str) -> u32 {
    if rel.starts_with("secrets/") {
        0o600
    } else if misc::EXECUTABLES.contains(&rel) {
        0o755
    } else {
        0o644
    }
}

/// Writes the release tree of `spec` into `out`, which must be missing or empty, and
/// `spec.day` at most [`MAX_DAY`].
///
/// Feeds and the two architectures' images are generated on parallel threads; the output
/// does not depend on scheduling. Every file and directory gets mtime [`TreeSpec::mtime`].
pub fn generate(spec: &TreeSpec, out: &Path) -> io::Result<TreeSummary> {
    if spec.day > MAX_DAY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("day {} is past the last supported day {MAX_DAY}", spec.day),
        ));
    }
    fs::create_dir_all(out)?;
    if fs::read_dir(out)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("output directory {} is not empty", out.display()),
        ));
    }
    let seed = spec.seed;
    let day = spec.day;
    let compressed = spec.compressed;
    std::thread::scope(|s| -> io::Result<()> {
        let mut jobs = Vec::new();
        for kind in FeedKind::ALL {
            let target = spec.feed_bytes / 100 * kind.share_percent();
            jobs.push(s.spawn(move || {
                if !compressed {
                    return write_tree_feed(out, seed, kind, day, target);
                }
                match kind {
                    FeedKind::Osv => compressed::write_osv_zip(out, seed, day, target),
                    FeedKind::Ghsa => compressed::write_ghsa_zst(out, seed, day, target),
                    FeedKind::Nvd => compressed::write_nvd_yearly(out, seed, day, target),
                }
            }));
        }
        for arch in 0..ARCHES.len() {
            let arch_bytes = spec.image_bytes / ARCHES.len() as u64;
            jobs.push(
                s.spawn(move || images::write_arch(out, seed, day, arch, arch_bytes, compressed)),
            );
        }
        let mut result = plugins::write_plugins(out, seed, day)
            .and_then(|()| debug_store::write_debug_store(out, seed, spec.debug_bytes))
            .and_then(|()| misc::write_misc(out, seed));
        if compressed {
            result = result.and_then(|()| wheel::write_wheel(out, seed, day));
        }
        for job in jobs {
            let r = job
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("generator thread panicked")));
            result = result.and(r);
        }
        result
    })?;
    let walked = fsutil::finalize(out, spec.mtime(), &file_mode)?;
    Ok(TreeSummary {
        files: walked.files,
        bytes: walked.bytes,
    })
}

fn write_tree_feed(
    root: &Path,
    seed: u64,
    kind: FeedKind,
    day: u32,
    target: u64,
) -> io::Result<()> {
    let path = root.join(kind.rel_path());
    let mut w = fsutil::create_hashed(&path)?;
    write_feed(&mut w, kind, seed, day, target)?;
    let (digest, _) = fsutil::finish_hashed(w)?;
    fsutil::write_sidecar(&path, &digest)
}
