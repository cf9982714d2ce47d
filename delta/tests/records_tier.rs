//! The record tier through the planner: a JSON-lines feed and a JSON object database ship
//! as record patches (format `ouk-delta/4`), smaller than zstd's `--patch-from` of the same
//! pair, and rebuild byte-identical.

mod common;
use common::make;

use std::fs;
use std::io::Cursor;

use ouk_delta::apply::{DirSink, apply_delta};
use ouk_delta::format::{FORMAT_RECORDS, Source};
use ouk_delta::patch::{Encoding, ZstdTuning, zstd_encode};
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;
use ouk_testdata::FeedKind;

fn feed(kind: FeedKind, day: u32) -> Vec<u8> {
    let mut out = Vec::new();
    ouk_testdata::write_feed(&mut out, kind, 3, day, 6 << 20).unwrap();
    out
}

/// A compatibility database: one pretty-printed object of features keyed by name, each a
/// map of browsers; day 1 edits a few features' support entries and adds one.
fn database(day: u32) -> Vec<u8> {
    let mut features = serde_json::Map::new();
    for f in 0..3000u32 {
        let mut browsers = serde_json::Map::new();
        for (b, name) in ["chrome", "firefox", "safari", "edge"].iter().enumerate() {
            let edited = day > 0 && f % 97 == 11 && b == 1;
            let version = if edited {
                140
            } else {
                20 + (f * 7 + b as u32 * 13) % 90
            };
            browsers.insert(
                name.to_string(),
                serde_json::json!({"version_added": version.to_string(), "notes": format!("feature {f} on {name}")}),
            );
        }
        features.insert(
            format!("feature-{f:05}"),
            serde_json::json!({"status": {"standard": f % 3 == 0}, "support": browsers}),
        );
    }
    if day > 0 {
        features.insert(
            "feature-new".into(),
            serde_json::json!({"status": {"standard": true}}),
        );
    }
    let mut out = serde_json::to_vec_pretty(&serde_json::json!({"data": features})).unwrap();
    out.push(b'\n');
    out
}

#[test]
fn feeds_ship_as_record_patches_and_everything_rebuilds_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    let mut zstd_total = 0usize;
    for (day, dir) in [(0, &d0), (1, &d1)] {
        fs::create_dir_all(dir.join("feeds")).unwrap();
        fs::write(dir.join("feeds/ghsa.jsonl"), feed(FeedKind::Ghsa, day)).unwrap();
        fs::write(dir.join("feeds/nvd.jsonl"), feed(FeedKind::Nvd, day)).unwrap();
        fs::write(dir.join("data.json"), database(day)).unwrap();
    }
    for name in ["feeds/ghsa.jsonl", "feeds/nvd.jsonl", "data.json"] {
        let (a, b) = (
            fs::read(d0.join(name)).unwrap(),
            fs::read(d1.join(name)).unwrap(),
        );
        assert_ne!(a, b, "{name} changes");
        let tuning = ZstdTuning {
            level: 19,
            long: false,
        };
        zstd_total += zstd_encode(Some(&a), &b, tuning).unwrap().len();
    }
    let made = make(&d0, &d1, &MakeOptions::default());
    assert_eq!(made.header.format, FORMAT_RECORDS);
    // The feeds (past the solid block's size) ship as record patches; the small
    // database takes whichever encoding is smallest.
    for f in made
        .header
        .files
        .iter()
        .filter(|f| f.path.starts_with("feeds/"))
    {
        let Source::Pieces { pieces } = &f.source else {
            panic!("{} ships as {:?}", f.path, f.source)
        };
        assert!(
            pieces.iter().all(|p| p.encoding == Encoding::Records),
            "{}: {:?}",
            f.path,
            pieces.iter().map(|p| p.encoding).collect::<Vec<_>>()
        );
    }
    // The literals of a large feed are compressed at the full level (a small stream,
    // whatever the piece's size), not at the level-12 cap of large zstd pieces.
    let ghsa = made
        .header
        .files
        .iter()
        .find(|f| f.path == "feeds/ghsa.jsonl")
        .unwrap();
    let Source::Pieces { pieces } = &ghsa.source else {
        panic!("ghsa ships as {:?}", ghsa.source)
    };
    let (a, b) = (
        fs::read(d0.join("feeds/ghsa.jsonl")).unwrap(),
        fs::read(d1.join("feeds/ghsa.jsonl")).unwrap(),
    );
    let full = ouk_delta::records::encode(
        &a,
        &b,
        ZstdTuning {
            level: 19,
            long: true,
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].length, full.len() as u64);
    assert!(
        made.payload.len() < zstd_total,
        "payload {} vs zstd --patch-from {zstd_total}",
        made.payload.len()
    );
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let written = apply_delta(
        &made.header,
        &mut Cursor::new(&made.payload),
        &made.base_files,
        &made.base,
        tempfile::tempdir().unwrap().path(),
        &mut DirSink::new(&out),
    )
    .unwrap();
    assert_eq!(written.len(), 3);
    for name in ["feeds/ghsa.jsonl", "feeds/nvd.jsonl", "data.json"] {
        let rebuilt = fs::read(out.join(name)).unwrap();
        assert_eq!(
            FileDigest::of(&rebuilt),
            FileDigest::of(&fs::read(d1.join(name)).unwrap()),
            "{name}"
        );
    }
    // A host that predates the record tier refuses it by name.
    let mut old = made.header.clone();
    old.format = ouk_delta::format::FORMAT.into();
    assert!(old.validate(u64::MAX).is_err());
}
