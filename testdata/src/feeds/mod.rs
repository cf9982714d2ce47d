//! Synthetic vulnerability feeds (OSV, GHSA, NVD 2.0 as JSON lines) and their day-to-day
//! churn.
//!
//! Every feed renders rows of one shared "universe" of vulnerabilities: row `u` has the same
//! CVE id, package and class in all three feeds. A feed of day `d` is computed directly from
//! `(seed, kind, base row count, d)`:
//! - each row's revisions form a Bernoulli(1 %) process over days, drawn with geometric
//!   gaps from a per-row stream, so finding the state at day `d` costs `O(1 + d / 100)`;
//! - each day withdraws a few rows (kept, marked withdrawn/rejected) and removes one;
//! - each day adds a few rows, inserted after pseudo-random anchor rows.
//!
//! By job: [`vuln`] draws a vulnerability, [`cvss`] scores its vector, [`timeline`] replays
//! its revisions and plans a feed's day, [`rows`] renders a row per feed format; this
//! module holds the feed kinds and the writers.

mod cvss;
mod rows;
mod timeline;
mod vuln;

use crate::rng::{Sm, h};
use crate::text::{DAY, Push, T0, civil_from_days, day_start, days_from_civil};
use crate::words::{NAME_PARTS, ORGS, VULN_CLASSES, WORDS};
use std::collections::HashMap;
use std::io::{self, Write};

use rows::render_row;
use timeline::Plan;

/// Daily probability that a given row is revised.
pub const DAILY_REVISION_P: f64 = 0.01;

const TAG_VULN: u64 = 0x7675_6c6e;
const TAG_BUMP: u64 = 0x6275_6d70;
const TAG_WITHDRAW: u64 = 0x7769_7468;
const TAG_ADD: u64 = 0x6164_6464;
/// Universe indices of rows added after day 0 start here.
const ADDED_BASE: u64 = 1 << 48;
/// Rows rendered to estimate the average row size.
const CALIBRATION_ROWS: u64 = 256;

/// Which feed format a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedKind {
    /// OSV schema 1.6 records (`feeds/osv/osv-all.jsonl`).
    Osv,
    /// GitHub Security Advisory REST records (`feeds/ghsa/ghsa-all.jsonl`).
    Ghsa,
    /// NVD CVE API 2.0 records (`feeds/nvd/nvd-2.0.jsonl`).
    Nvd,
}

impl FeedKind {
    /// All feed kinds, in tree order.
    pub const ALL: [FeedKind; 3] = [FeedKind::Osv, FeedKind::Ghsa, FeedKind::Nvd];

    /// Path of this feed inside a release tree.
    pub fn rel_path(self) -> &'static str {
        match self {
            FeedKind::Osv => "feeds/osv/osv-all.jsonl",
            FeedKind::Ghsa => "feeds/ghsa/ghsa-all.jsonl",
            FeedKind::Nvd => "feeds/nvd/nvd-2.0.jsonl",
        }
    }

    /// Share (percent) of the tree's feed bytes this feed gets.
    pub(crate) fn share_percent(self) -> u64 {
        match self {
            FeedKind::Osv => 45,
            FeedKind::Ghsa => 30,
            FeedKind::Nvd => 25,
        }
    }

    fn tag(self) -> u64 {
        match self {
            FeedKind::Osv => 1,
            FeedKind::Ghsa => 2,
            FeedKind::Nvd => 3,
        }
    }
}

/// What the compressed variant needs to know of a row besides its bytes.
pub(crate) struct RowKey {
    /// The row's id in its feed (OSV id, GHSA id, CVE id).
    pub id: String,
    /// The year of its CVE id (NVD's yearly files split on it).
    pub cve_year: u64,
}

/// Calls `f` with every row of the `kind` feed of `day` for a universe of `n_base` base
/// rows: the rows [`write_feed_rows`] writes, in the same order, each newline-terminated.
pub(crate) fn for_each_row(
    seed: u64,
    kind: FeedKind,
    n_base: u64,
    day: u32,
    f: impl FnMut(&RowKey, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    Plan::new(seed, kind, n_base, day).each_row(f)
}

/// Number of base rows a feed of `kind` needs to be about `target_bytes` long
/// (estimated from the first rows of the universe, so it depends on the seed only).
pub fn base_rows(seed: u64, kind: FeedKind, target_bytes: u64) -> u64 {
    if target_bytes == 0 {
        return 0;
    }
    let mut buf = Vec::with_capacity(512 * 1024);
    for u in 0..CALIBRATION_ROWS {
        render_row(seed, kind, u, 0, None, &mut buf);
    }
    let avg = (buf.len() as u64 / CALIBRATION_ROWS).max(1);
    (target_bytes / avg).max(1)
}

/// Writes the `kind` feed of `day` for a universe of `n_base` base rows.
pub fn write_feed_rows(
    out: &mut impl Write,
    seed: u64,
    kind: FeedKind,
    n_base: u64,
    day: u32,
) -> io::Result<u64> {
    Plan::new(seed, kind, n_base, day).write(out)
}

/// Writes the `kind` feed of `day`, sized to about `target_bytes` at day 0 (later days
/// grow by the rows added since). Returns the bytes written. Feeds of different days with
/// the same `(seed, kind, target_bytes)` show the daily churn of a release tree.
pub fn write_feed(
    out: &mut impl Write,
    kind: FeedKind,
    seed: u64,
    day: u32,
    target_bytes: u64,
) -> io::Result<u64> {
    let n = base_rows(seed, kind, target_bytes);
    write_feed_rows(out, seed, kind, n, day)
}

/// Writes about `bytes` bytes of OSV-like JSON lines (whole lines; stops at the first
/// line end at or past `bytes`). Returns the bytes written.
pub fn write_feed_like(out: &mut impl Write, seed: u64, bytes: u64) -> io::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut total = 0u64;
    let mut u = 0u64;
    while total + (buf.len() as u64) < bytes {
        render_row(seed, FeedKind::Osv, u, 0, None, &mut buf);
        u += 1;
        if buf.len() >= (1 << 20) - 16 * 1024 {
            out.write_all(&buf)?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    total += buf.len() as u64;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_valid_json() {
        for kind in FeedKind::ALL {
            let mut buf = Vec::new();
            write_feed(&mut buf, kind, 5, 4, 200_000).unwrap();
            let text = String::from_utf8(buf).unwrap();
            let mut n = 0;
            for line in text.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{kind:?}: {e}: {line}"));
                assert!(v.is_object());
                n += 1;
            }
            assert!(n > 50, "{kind:?}: {n} rows");
        }
    }

    #[test]
    fn feed_like_is_about_the_requested_size() {
        let mut buf = Vec::new();
        let n = write_feed_like(&mut buf, 1, 300_000).unwrap();
        assert_eq!(n as usize, buf.len());
        assert!((300_000..305_000).contains(&n), "{n}");
        assert!(buf.ends_with(b"\n"));
    }

    #[test]
    fn ids_are_unique() {
        let mut buf = Vec::new();
        write_feed(&mut buf, FeedKind::Nvd, 9, 30, 2_000_000).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["cve"]["id"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "duplicate {id}");
        }
    }
}
