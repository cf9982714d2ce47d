//! A second generator setting: scattered row edits on top of a generated tree's feeds, so
//! every 64 KiB chunk of every feed changes from one weekly roll-up to the next (what a
//! mirror keeping years of roll-ups sees when feeds are re-exported with small edits).
//!
//! How it is made: for every row of the three plain feeds (`feeds/*/*.jsonl`) and every
//! day `k` in `1..=day`, the row is edited on day `k` with probability `row_p` (default
//! [`DEFAULT_ROW_P`], 1.25 % of rows a day, on top of the generator's own 1 % revisions;
//! about 15 % of rows differ after a week, ~10 in every 64 KiB chunk). An edit replaces
//! 1 to 4 lowercase letters inside the row's JSON string *values* (never a key, never the
//! row's `id`, never an escape), so every row stays valid JSON with the same fields.
//!
//! Invariants:
//! - Edits are a pure function of (seed, the row's id, day): a row carries the edits of
//!   every earlier day, so day `d + 7` differs from day `d` by the edits of seven days
//!   (plus the generator's own churn), never by re-drawn old ones.
//! - The feeds' `.sha256` sidecars are rewritten and every mtime is reset as
//!   [`crate::generate`] left it.

use std::fs;
use std::io;
use std::path::Path;

use crate::feeds::FeedKind;
use crate::fsutil;
use crate::rng::{h, hs};
use crate::text::day_start;

/// Default daily probability that a row is edited.
pub const DEFAULT_ROW_P: f64 = 0.0125;

const TAG_CHURN: u64 = 0x6368_7572;

/// Positions of lowercase letters inside JSON string values of `line` (not keys, not the
/// value of `"id"`, not escaped characters).
fn editable_letters(line: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut prev_key_is_id = false;
    while i < line.len() {
        if line[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        let mut letters = Vec::new();
        while j < line.len() && line[j] != b'"' {
            if line[j] == b'\\' {
                j += 2;
                continue;
            }
            if line[j].is_ascii_lowercase() {
                letters.push(j);
            }
            j += 1;
        }
        let end = j.min(line.len());
        let mut k = end + 1;
        while k < line.len() && line[k] == b' ' {
            k += 1;
        }
        let is_key = k < line.len() && line[k] == b':';
        if is_key {
            prev_key_is_id = &line[start..end] == b"id";
        } else {
            if !prev_key_is_id {
                out.extend(letters);
            }
            prev_key_is_id = false;
        }
        i = end + 1;
    }
    out
}

/// The row's identity: the value of its first `"id"` key, else the whole row.
fn row_key(line: &[u8]) -> u64 {
    let marker = b"\"id\":\"";
    let key = line
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|p| {
            let s = &line[p + marker.len()..];
            &s[..s.iter().position(|&b| b == b'"').unwrap_or(s.len())]
        })
        .unwrap_or(line);
    hs(&String::from_utf8_lossy(key))
}

/// Apply the edits of days `1..=day` to one row.
fn churn_row(line: &mut [u8], seed: u64, day: u32, row_p: f64) -> bool {
    let key = row_key(line);
    let threshold = (row_p.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let mut edited = false;
    let mut letters: Option<Vec<usize>> = None;
    for k in 1..=day {
        let r = h(&[seed, TAG_CHURN, key, u64::from(k)]);
        if r >= threshold {
            continue;
        }
        let letters = letters.get_or_insert_with(|| editable_letters(line));
        if letters.is_empty() {
            return false;
        }
        let n = 1 + (h(&[r, 1]) % 4) as usize;
        for e in 0..n {
            let x = h(&[r, 2, e as u64]);
            let at = letters[(x % letters.len() as u64) as usize];
            line[at] = b'a' + ((x >> 32) % 26) as u8;
        }
        edited = true;
    }
    edited
}

/// Apply the churn of `day` to the plain feeds of the tree at `tree` (generated with the
/// same seed and day); returns the rows edited.
pub fn apply(tree: &Path, seed: u64, day: u32, row_p: f64) -> io::Result<u64> {
    let mut edited = 0u64;
    for kind in FeedKind::ALL {
        let path = tree.join(kind.rel_path());
        if !path.is_file() {
            continue;
        }
        let mut bytes = fs::read(&path)?;
        for line in bytes.split_mut(|&b| b == b'\n') {
            if churn_row(line, seed, day, row_p) {
                edited += 1;
            }
        }
        let digest = fsutil::write_file(&path, &bytes)?;
        fsutil::write_sidecar(&path, &digest)?;
    }
    fsutil::finalize(tree, day_start(day), &crate::file_mode)?;
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_touch_values_only_and_accumulate_by_day() {
        let row = br#"{"id":"GHSA-abcd-efgh","summary":"heap overflow in parser","aliases":["cve"],"x":{"severity":"high"},"esc":"a\nb"}"#;
        let letters = editable_letters(row);
        let text = String::from_utf8_lossy(row);
        for &at in &letters {
            assert!(row[at].is_ascii_lowercase());
            // Never inside the id value nor a key.
            assert!(at > text.find("summary").unwrap() + 9, "{at}");
        }
        assert!(
            !letters.contains(&(text.find("a\\nb").unwrap() + 2)),
            "escape"
        );
        // Day 30 carries day 20's edits plus its own; the row stays valid JSON.
        let (mut d20, mut d30) = (row.to_vec(), row.to_vec());
        churn_row(&mut d20, 1, 20, 0.2);
        churn_row(&mut d30, 1, 30, 0.2);
        let v: serde_json::Value = serde_json::from_slice(&d30).unwrap();
        assert_eq!(v["id"], "GHSA-abcd-efgh");
        assert_ne!(d20, row.to_vec());
        let differ = |a: &[u8], b: &[u8]| a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert!(differ(&d20, &d30) <= differ(row, &d30));
    }
}
