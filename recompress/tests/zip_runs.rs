//! Zip member runs (recipe segment 9, version 5; issue 19): a zip of many small deflated
//! members written alike (OSV's `all.zip`: 12,000 members) costs one recipe segment, not
//! one per member, and a hostile run is refused before or while it is rebuilt.

mod common;

use std::io::Write;

use common::{feed_json, round_trip, text};
use ouk_recompress::{Limits, RecompressError, rebuild};

/// A zip of `n` deflated members (one JSON row each, like OSV's `all.zip`), written by the
/// `zip` crate (flate2 on zlib-rs, level 6) with a fixed time.
fn many_members(n: usize, seed: u64) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(time);
    for i in 0..n {
        z.start_file(format!("GHSA-{i:05}.json"), opts).unwrap();
        z.write_all(&feed_json(3 + i % 5, seed + i as u64)).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// The recipe of 400 members is a few dozen bytes: one run, whatever the member count.
/// Before runs it was one copy and one deflate segment per member (about 8 KB here).
#[test]
fn many_members_written_alike_are_one_run() {
    let z = many_members(400, 1);
    let a = round_trip(&z);
    eprintln!(
        "400-member zip: {} bytes -> recipe {}",
        z.len(),
        a.recipe.len()
    );
    // Version 5 has the run; 6 the central directory relative to the local headers.
    assert_eq!(
        a.recipe[4], 6,
        "a recipe with a run and a central directory"
    );
    assert!(
        a.recipe.len() < 80,
        "recipe of {} bytes for 400 members",
        a.recipe.len()
    );
    // And 4,000 members cost the same (the count is one varint).
    let big = many_members(4_000, 2);
    let b = round_trip(&big);
    assert!(b.recipe.len() < 80, "recipe of {} bytes", b.recipe.len());
}

/// A one-member zip keeps its version 4 recipe (no run for one member, so hosts that read
/// only version 4 still rebuild it).
#[test]
fn one_member_is_no_run() {
    let z = many_members(1, 3);
    let a = round_trip(&z);
    assert_eq!(a.recipe[4], 4);
}

/// Python's zipfile (madler zlib): members of several sizes at level 6 and a stored member
/// in the middle: two runs (the stored member's bytes are a copy between them).
#[test]
fn python_zipfile_many_members_with_a_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, zipfile, os, json
d = sys.argv[1]
with zipfile.ZipFile(os.path.join(d, "out.zip"), "w") as z:
    for i in range(300):
        row = json.dumps({"id": "PYSEC-%05d" % i, "summary": "issue %d " % i * (1 + i % 7)})
        ct = zipfile.ZIP_STORED if i == 150 else zipfile.ZIP_DEFLATED
        z.writestr("osv/%05d.json" % i, row, compress_type=ct)
"#;
    let status = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .status()
    {
        Ok(s) => s,
        Err(e) if std::env::var_os("OUK_SKIP_PYTHON3").is_some() => {
            eprintln!("python3 not run ({e})");
            return;
        }
        Err(e) => panic!("python3 is needed by this test ({e}); or set OUK_SKIP_PYTHON3=1"),
    };
    assert!(status.success());
    let z = std::fs::read(dir.path().join("out.zip")).unwrap();
    let a = round_trip(&z);
    eprintln!("python 300-member zip: recipe {}", a.recipe.len());
    assert_eq!(a.recipe[4], 6);
    assert!(a.recipe.len() < 120, "recipe of {} bytes", a.recipe.len());
}

/// The zip's plain form and its recipe.
fn analyzed(z: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut plain = Vec::new();
    let a = ouk_recompress::analyze(&mut &z[..], &mut plain, &Limits::default()).unwrap();
    (plain, a.recipe)
}

fn rebuilt(recipe: &[u8], plain: &[u8]) -> Result<Vec<u8>, RecompressError> {
    let mut out = Vec::new();
    rebuild(recipe, &mut &plain[..], &mut out, &Limits::default())?;
    Ok(out)
}

/// Position of the run segment's tag (9) in a recipe of a zip made only of runnable
/// members and its trailing copy: the header is "OUKR" v fmt plain out count.
fn run_at(recipe: &[u8]) -> usize {
    let mut at = 6;
    for _ in 0..3 {
        while recipe[at] & 0x80 != 0 {
            at += 1;
        }
        at += 1;
    }
    assert_eq!(recipe[at], 9, "expected the run first: {recipe:?}");
    at
}

#[test]
fn hostile_runs_are_refused() {
    let z = many_members(50, 4);
    let (plain, recipe) = analyzed(&z);
    assert_eq!(rebuilt(&recipe, &plain).unwrap(), z);
    let at = run_at(&recipe);
    let malformed = |r: Result<Vec<u8>, RecompressError>, what: &str| match r {
        Err(RecompressError::Malformed { .. }) => {}
        other => panic!("{what}: {other:?}"),
    };

    // The run under a version 4 header: refused by validate.
    let mut v4 = recipe.clone();
    v4[4] = 4;
    malformed(rebuilt(&v4, &plain), "version 4");

    // A count past what the run's plain bytes can hold (one member per 30 bytes).
    let mut count_at = at + 1;
    while recipe[count_at] & 0x80 != 0 {
        count_at += 1;
    }
    count_at += 1;
    assert_eq!(recipe[count_at], 50);
    let mut huge = recipe[..count_at].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    huge.extend_from_slice(&recipe[count_at + 1..]);
    malformed(rebuilt(&huge, &plain), "count past the plain length");

    // One member more or fewer than the plain form holds: the lengths do not add up.
    for count in [49u8, 51] {
        let mut r = recipe.clone();
        r[count_at] = count;
        malformed(rebuilt(&r, &plain), &format!("count {count}"));
    }

    // A setting that is not a deflate setting (a copy's tag) inside the run.
    let mut bad = recipe.clone();
    bad[count_at + 1] = 1;
    malformed(rebuilt(&bad, &plain), "tag 1 in a run");

    // A plain form whose member header was edited: another method, or a compressed size
    // that the re-created stream does not have.
    let first = plain.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    let mut stored = plain.clone();
    stored[first + 8] = 0;
    malformed(rebuilt(&recipe, &stored), "a stored member's header");
    let mut csize = plain.clone();
    csize[first + 18] ^= 1;
    malformed(rebuilt(&recipe, &csize), "a wrong compressed size");
    // An uncompressed size that moves the next header: refused, never a panic.
    let mut usize = plain.clone();
    usize[first + 22] ^= 4;
    assert!(rebuilt(&recipe, &usize).is_err());

    // Every truncation of the recipe is refused, never a panic.
    for cut in 0..recipe.len() {
        assert!(rebuilt(&recipe[..cut], &plain).is_err(), "cut at {cut}");
    }
}

/// A run's text members change from day to day like a feed: the plain forms of two days
/// differ only where the rows do, and each day's recipe stays one run.
#[test]
fn runs_survive_a_changed_member() {
    let a = many_members(200, 9);
    let mut b_rows = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(time);
    for i in 0..200usize {
        b_rows
            .start_file(format!("GHSA-{i:05}.json"), opts)
            .unwrap();
        if i == 77 {
            b_rows.write_all(&text(5_000, 77)).unwrap();
        } else {
            b_rows
                .write_all(&feed_json(3 + i % 5, 9 + i as u64))
                .unwrap();
        }
    }
    let b = b_rows.finish().unwrap().into_inner();
    let ra = round_trip(&a);
    let rb = round_trip(&b);
    assert!(ra.recipe.len() < 80 && rb.recipe.len() < 80);
}
