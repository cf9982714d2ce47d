//! Applying a delta of a zip of many members (issue 19, OSV's `all.zip`): the members that
//! did not change are copied from the baseline zip, not re-compressed, and a mark whose
//! rule gives other bytes is caught by the file's digest. In a process of its own: the
//! member counters are process-wide.

mod common;
use common::osv::{members, zip_of};
use common::{Made, make};

use std::collections::HashMap;
use std::fs;
use std::io::Cursor;
use std::path::Path;

use ouk_delta::apply::{DirSink, apply_delta};
use ouk_delta::format::Source;
use ouk_delta::members::member_counts;
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;

const MEMBERS: usize = 4_000;

fn write_tree(dir: &Path, day: u32) {
    fs::create_dir_all(dir.join("feeds/osv")).unwrap();
    let m = members(MEMBERS, day);
    fs::write(dir.join("feeds/osv/all.zip"), zip_of(&m)).unwrap();
    if day == 0 {
        // A copy of the archive with one member's compressed bytes damaged: same CRC-32
        // and sizes in every header, other bytes for that member.
        let mut other = zip_of(&m);
        let data = 30 + "GHSA-00000.json".len();
        other[data + 3] ^= 0x40;
        fs::write(dir.join("feeds/osv/other.zip"), other).unwrap();
    }
    fs::write(dir.join("README"), format!("day {day}\n")).unwrap();
}

fn apply(m: &Made) -> ouk_delta::Result<HashMap<String, FileDigest>> {
    let out = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let written = apply_delta(
        &m.header,
        &mut Cursor::new(&m.payload),
        &m.base_files,
        &m.base,
        scratch.path(),
        &mut DirSink::new(out.path()),
    )?;
    Ok(written.into_iter().collect())
}

fn reuse_of(m: &mut Made) -> &mut Option<String> {
    let f = m
        .header
        .files
        .iter_mut()
        .find(|f| f.path.ends_with("all.zip"))
        .unwrap();
    match &mut f.source {
        Source::Recompressed {
            reuse_members_of, ..
        } => reuse_members_of,
        s => panic!("all.zip travels as {s:?}"),
    }
}

/// About 40 of 4,000 members change: the host copies the other ~3,960 from the baseline
/// zip and re-compresses the ~40, and the zip comes out exact. Before, it re-compressed
/// all 4,000 (and the delta had no mark).
#[test]
fn unchanged_members_are_copied_from_the_baseline_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    write_tree(&d0, 0);
    write_tree(&d1, 1);
    let mut m = make(&d0, &d1, &MakeOptions::default());
    assert_eq!(
        reuse_of(&mut m).as_deref(),
        Some("feeds/osv/all.zip"),
        "the make side checked the rule and marked the file"
    );
    let target = |m: &Made| {
        m.target_files
            .iter()
            .find(|f| f.path.ends_with("all.zip"))
            .unwrap()
            .sha256
    };
    let (d_before, c_before) = member_counts();
    let rebuilt = apply(&m).unwrap();
    let (d_after, c_after) = member_counts();
    let (deflated, copied) = (d_after - d_before, c_after - c_before);
    eprintln!("{MEMBERS} members: {deflated} re-compressed, {copied} copied");
    assert_eq!(rebuilt["feeds/osv/all.zip"], target(&m), "exact bytes");
    assert_eq!(deflated + copied, MEMBERS as u64);
    assert!(deflated < 100, "{deflated} members re-compressed");

    // Without the mark (a delta from before, or a host told nothing): all re-compressed,
    // the same bytes.
    *reuse_of(&mut m) = None;
    let (d_before, c_before) = member_counts();
    let rebuilt = apply(&m).unwrap();
    let (d_after, c_after) = member_counts();
    assert_eq!(
        (d_after - d_before, c_after - c_before),
        (MEMBERS as u64, 0)
    );
    assert_eq!(rebuilt["feeds/osv/all.zip"], target(&m));

    // A mark whose rule gives other bytes (a baseline zip whose member has the same CRC-32
    // and sizes but other compressed bytes): the rebuilt file's digest is not the
    // target's, which the importer refuses (exit 2), never a wrong file accepted.
    *reuse_of(&mut m) = Some("feeds/osv/other.zip".into());
    let rebuilt = apply(&m).unwrap();
    assert_ne!(rebuilt["feeds/osv/all.zip"], target(&m));
    assert!(
        m.header
            .target_files(&m.base_files, &rebuilt)
            .map(|t| t
                .iter()
                .any(|f| f.sha256 != target(&m) && f.path.ends_with("all.zip")))
            .unwrap_or(true),
        "the digest the importer checks is not the manifest's"
    );

    // A mark naming no baseline file: refused.
    *reuse_of(&mut m) = Some("feeds/osv/missing.zip".into());
    assert!(matches!(apply(&m), Err(ouk_delta::DeltaError::BadDelta(_))));
    // A mark that is not a safe path: refused by validate.
    *reuse_of(&mut m) = Some("../etc/passwd".into());
    assert!(m.header.validate(u64::MAX).is_err());
}
