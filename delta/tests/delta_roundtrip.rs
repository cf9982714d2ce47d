//! make_delta + apply_delta on synthetic release trees: exact reconstruction, small size.

mod common;
use common::{gref, tree_files};

use std::fs;
use std::io::Cursor;

use ouk_delta::apply::{DirSink, apply_delta};
use ouk_delta::format::Source;
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_store::FileDigest;

#[test]
fn next_day_delta_rebuilds_every_changed_file_exactly_and_is_small() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ouk_testdata::TreeSpec::small(5);
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    ouk_testdata::generate(&spec, &d0).unwrap();
    ouk_testdata::generate(&spec.on_day(1), &d1).unwrap();
    let (base_files, base) = tree_files(&d0);
    let (target_files, target) = tree_files(&d1);
    let mut payload = Vec::new();
    let header = make_delta(
        gref(0),
        &base_files,
        &base,
        gref(1),
        &target_files,
        &target,
        &MakeOptions::default(),
        &mut payload,
    )
    .unwrap();
    header.validate(u64::MAX).unwrap();
    let json = serde_json::to_vec(&header).unwrap();
    let summary = header.summary();
    eprintln!("{summary:?}, header {} bytes", json.len());
    assert!(summary.patched + summary.solid > 0);
    assert!(
        summary.files < target_files.len() as u64 / 4,
        "unchanged files are not listed"
    );
    let target_bytes: u64 = target_files.iter().map(|f| f.size).sum();
    assert!(
        (payload.len() as u64) * 60 < target_bytes,
        "payload {} for {} target bytes",
        payload.len(),
        target_bytes
    );
    let mut expected = target_files.clone();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let written = apply_delta(
        &header,
        &mut Cursor::new(&payload),
        &base_files,
        &base,
        tempfile::tempdir().unwrap().path(),
        &mut DirSink::new(&out),
    )
    .unwrap();
    let rebuilt: std::collections::HashMap<String, FileDigest> = written.iter().cloned().collect();
    assert_eq!(
        header.target_files(&base_files, &rebuilt).unwrap(),
        expected
    );
    assert!(
        header
            .target_files(&base_files, &Default::default())
            .is_err(),
        "a rebuilt file's digest comes from the rebuild, never from nowhere"
    );

    for f in &header.files {
        match f.source {
            Source::Baseline => assert!(!out.join(&f.path).exists()),
            _ => {
                assert!(written.iter().any(|(p, _)| *p == f.path));
                assert_eq!(
                    fs::read(out.join(&f.path)).unwrap(),
                    fs::read(d1.join(&f.path)).unwrap(),
                    "{}",
                    f.path
                );
            }
        }
    }
}

#[test]
fn a_tampered_payload_is_refused_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ouk_testdata::TreeSpec::small(6);
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    ouk_testdata::generate(&spec, &d0).unwrap();
    ouk_testdata::generate(&spec.on_day(2), &d1).unwrap();
    let (base_files, base) = tree_files(&d0);
    let (target_files, target) = tree_files(&d1);
    let mut payload = Vec::new();
    let header = make_delta(
        gref(0),
        &base_files,
        &base,
        gref(1),
        &target_files,
        &target,
        &MakeOptions::default(),
        &mut payload,
    )
    .unwrap();
    for i in (0..payload.len()).step_by(payload.len() / 7 + 1) {
        let mut bad = payload.clone();
        bad[i] ^= 0x20;
        let out = tmp.path().join(format!("out{i}"));
        fs::create_dir(&out).unwrap();
        // The apply refuses the flip, or what it rebuilds hashes to something else (the
        // importer compares every rebuilt digest with the rebuilt manifest's).
        match apply_delta(
            &header,
            &mut Cursor::new(&bad),
            &base_files,
            &base,
            tempfile::tempdir().unwrap().path(),
            &mut DirSink::new(&out),
        ) {
            Err(_) => {}
            Ok(written) => {
                let rebuilt: std::collections::HashMap<String, FileDigest> =
                    written.into_iter().collect();
                let mut expected = target_files.clone();
                expected.sort_by(|a, b| a.path.cmp(&b.path));
                assert_ne!(
                    header.target_files(&base_files, &rebuilt).unwrap(),
                    expected,
                    "flip at {i} rebuilt the target"
                );
            }
        }
    }
    let mut short = header.clone();
    short.payload_size += 1;
    assert!(short.validate(u64::MAX).is_ok());
    let mut evil = header.clone();
    evil.files[0].path = "../escape".into();
    assert!(evil.validate(u64::MAX).is_err());
}

/// Inputs the fuzzers found (testdata/fuzz-regressions/): each must be refused, not panic.
#[test]
fn fuzz_regressions_are_refused_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz-regressions");
    for name in [
        "okcm-overlong-varint.bin",
        "okcm-overlong-varint-fuzzed.bin",
    ] {
        let bytes = fs::read(dir.join("pack_frames").join(name)).unwrap();
        assert!(
            ouk_delta::ChunkSetManifest::decode(&bytes).is_err(),
            "{name}"
        );
    }
    for name in [
        "bsdiff-header-overflow-fuzzed.bin",
        "bsdiff-negative-csize.bin",
    ] {
        let bytes = fs::read(dir.join("patch_decoders").join(name)).unwrap();
        for len in [0u64, 1, 1000] {
            assert!(
                ouk_delta::patch::bsdiff_decode(&[1, 2, 3], &bytes, len).is_err(),
                "{name}"
            );
        }
    }
}

/// A new empty file, when nothing else goes to the solid block, still names a block that
/// exists (the manifest of a kit goes to the trailer block, so it no longer keeps the solid
/// block non-empty).
#[test]
fn an_empty_new_file_alone_in_the_solid_block_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let big: Vec<u8> = (0..9_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut big2 = big.clone();
    big2[4_000_000..4_000_100].fill(7);
    for (dir, data) in [(&a, &big), (&b, &big2)] {
        fs::create_dir_all(dir.join("pkg")).unwrap();
        fs::write(dir.join("pkg/big.bin"), data).unwrap();
    }
    fs::write(b.join("pkg/py.typed"), b"").unwrap();
    let (base_files, base) = tree_files(&a);
    let (target_files, target) = tree_files(&b);
    let mut payload = Vec::new();
    let header = make_delta(
        gref(0),
        &base_files,
        &base,
        gref(1),
        &target_files,
        &target,
        &MakeOptions::default(),
        &mut payload,
    )
    .unwrap();
    header.validate(u64::MAX).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let written = apply_delta(
        &header,
        &mut Cursor::new(&payload),
        &base_files,
        &base,
        tempfile::tempdir().unwrap().path(),
        &mut DirSink::new(&out),
    )
    .unwrap();
    assert!(written.iter().any(|(p, _)| p == "pkg/py.typed"));
    assert_eq!(fs::read(out.join("pkg/py.typed")).unwrap(), b"");
    assert_eq!(fs::read(out.join("pkg/big.bin")).unwrap(), big2);
}
