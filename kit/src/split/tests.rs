//! Split and reassembly on plain files (the end-to-end tests with real kits are in
//! `cli/tests/split_cli.rs`).

use std::fs;

use ouk_testdata::snapshot::changed;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;
use sha2::{Digest, Sha256};

const NAME: &str = "stella-ops-offline-kit-1.0.0-edge.tar.gz";

fn bytes(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A "bundle" of `n` bytes with a matching `.sha256` sidecar, in `dir/src`.
fn bundle(dir: &Path, n: usize) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    let data = bytes(n);
    let p = src.join(NAME);
    fs::write(&p, &data).unwrap();
    let digest: [u8; 32] = Sha256::digest(&data).into();
    fs::write(
        src.join(format!("{NAME}.sha256")),
        format!("{}  {NAME}\n", hex::encode(digest)),
    )
    .unwrap();
    (p, data)
}

fn split(b: &Path, out: &Path, max: u64) -> Result<SplitReport> {
    split_bundle(
        &SplitOptions {
            bundle: b.to_path_buf(),
            output_dir: out.to_path_buf(),
            max_part_size: max,
        },
        &mut |_| {},
    )
}

fn read_all(set: &PartSet) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    set.reader().read_to_end(&mut v)?;
    Ok(v)
}

fn part_err(r: Result<([u8; 32], u64), PartError>) -> PartError {
    r.expect_err("must be refused")
}

#[test]
fn parts_reassemble_to_the_bundle_and_the_output_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, data) = bundle(tmp.path(), 2500);
    let out = tmp.path().join("usb");
    let mut seen = 0;
    let r = split_bundle(
        &SplitOptions {
            bundle: b.clone(),
            output_dir: out.clone(),
            max_part_size: 1000,
        },
        &mut |n| seen += n,
    )
    .unwrap();
    assert_eq!(seen, 2500);
    assert_eq!(
        r.parts.iter().map(|p| p.size).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert_eq!(r.sha256, hex::encode(Sha256::digest(&data)));
    // Part sidecars are sha256sum lines; the bundle's sidecar is copied.
    let side = fs::read_to_string(out.join(format!("{NAME}.part002.sha256"))).unwrap();
    assert_eq!(side, format!("{}  {NAME}.part002\n", r.parts[1].sha256));
    assert_eq!(
        fs::read(out.join(format!("{NAME}.sha256"))).unwrap(),
        fs::read(b.with_file_name(format!("{NAME}.sha256"))).unwrap()
    );
    for name in [part_name(NAME, 1), part_name(NAME, 3), index_name(NAME)] {
        let set = PartSet::open(&out.join(name)).unwrap();
        assert_eq!(read_all(&set).unwrap(), data);
        assert_eq!(set.verify().unwrap().1, 2500);
        assert_eq!(set.bundle_path(), out.join(NAME));
    }
    // No temporaries left.
    assert!(
        fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );
    // Same input, same bytes.
    let out2 = tmp.path().join("usb2");
    split(&b, &out2, 1000).unwrap();
    for e in fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            fs::read(e.path()).unwrap(),
            fs::read(out2.join(e.file_name())).unwrap()
        );
    }
}

#[test]
fn a_bundle_that_fits_makes_one_part_and_exact_multiples_have_no_empty_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _) = bundle(tmp.path(), 2000);
    let r = split(&b, &tmp.path().join("a"), 5000).unwrap();
    assert_eq!(r.parts.len(), 1);
    let r = split(&b, &tmp.path().join("b"), 1000).unwrap();
    assert_eq!(
        r.parts.iter().map(|p| p.size).collect::<Vec<_>>(),
        [1000, 1000]
    );
}

/// Every file under `dir` (bytes, inode, mtime): see [`ouk_testdata::snapshot`].
fn files(dir: &Path) -> ouk_testdata::snapshot::DirSnapshot {
    ouk_testdata::snapshot::snapshot(dir).unwrap()
}

#[test]
fn existing_parts_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _) = bundle(tmp.path(), 2500);
    let out = tmp.path().join("usb");
    split(&b, &out, 1000).unwrap();
    let before = files(&out);
    assert!(
        before.contains_key(&part_name(NAME, 3)),
        "{:?}",
        before.keys()
    );
    let e = split(&b, &out, 700).unwrap_err();
    assert!(
        matches!(e, KitError::Part(PartError::PartsInTheWay { .. })),
        "{e}"
    );
    // Every part, sidecar and the index: same bytes, and the same file (not rewritten
    // with equal bytes, not replaced by a rename), and nothing added or removed.
    let after = files(&out);
    assert!(after == before, "rewritten: {:?}", changed(&before, &after));
    // A leftover part alone is enough to refuse.
    let out2 = tmp.path().join("usb2");
    fs::create_dir_all(&out2).unwrap();
    fs::write(out2.join(part_name(NAME, 7)), b"old").unwrap();
    let before = files(&out2);
    assert!(split(&b, &out2, 1000).is_err());
    assert_eq!(
        files(&out2),
        before,
        "nothing written, the leftover untouched"
    );
    // A different sidecar in the way refuses too, before any part is written.
    let out3 = tmp.path().join("usb3");
    fs::create_dir_all(&out3).unwrap();
    fs::write(out3.join(format!("{NAME}.sha256")), b"other\n").unwrap();
    assert!(split(&b, &out3, 1000).is_err());
    assert_eq!(fs::read_dir(&out3).unwrap().count(), 1, "nothing written");
}

#[test]
fn splitting_into_the_bundles_own_directory_works() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, data) = bundle(tmp.path(), 2500);
    let dir = b.parent().unwrap().to_path_buf();
    split(&b, &dir, 1000).unwrap();
    let set = PartSet::open(&dir.join(part_name(NAME, 2))).unwrap();
    assert_eq!(read_all(&set).unwrap(), data);
}

#[test]
fn a_bundle_that_does_not_match_its_sidecar_is_not_split() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, mut data) = bundle(tmp.path(), 2500);
    data[1500] ^= 1;
    fs::write(&b, &data).unwrap();
    let out = tmp.path().join("usb");
    let e = split(&b, &out, 1000).unwrap_err();
    assert!(matches!(e, KitError::DigestMismatch { .. }), "{e}");
    assert_eq!(
        fs::read_dir(&out).map(|d| d.count()).unwrap_or(0),
        0,
        "what was written is removed"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _) = bundle(tmp.path(), 2500);
    assert!(matches!(
        split(&b, &tmp.path().join("o"), 0),
        Err(KitError::Usage(_))
    ));
    let (big, _) = bundle(&tmp.path().join("big"), MAX_PARTS + 1);
    assert!(matches!(
        split(&big, &tmp.path().join("o"), 1),
        Err(KitError::Part(PartError::TooManyParts { count, .. })) if count == MAX_PARTS as u64 + 1
    ));
    assert!(matches!(
        split(&tmp.path().join("nope"), &tmp.path().join("o"), 10),
        Err(KitError::NotFound(_))
    ));
}

/// A split set in `dir/usb` of a 2500-byte bundle in 1000-byte parts.
fn set(dir: &Path) -> (PathBuf, Vec<u8>) {
    let (b, data) = bundle(dir, 2500);
    let out = dir.join("usb");
    split(&b, &out, 1000).unwrap();
    (out, data)
}

#[test]
fn a_missing_part_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = set(tmp.path());
    fs::remove_file(out.join(part_name(NAME, 2))).unwrap();
    let s = PartSet::open(&out.join(part_name(NAME, 1))).unwrap();
    let e = part_err(s.verify());
    assert!(
        matches!(
            e,
            PartError::Missing {
                number: 2,
                count: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_missing());
    assert!(e.to_string().contains(".part002"), "{e}");
}

#[test]
fn a_corrupted_part_is_named_with_both_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = set(tmp.path());
    let p = out.join(part_name(NAME, 3));
    let mut b = fs::read(&p).unwrap();
    b[10] ^= 0x40;
    fs::write(&p, &b).unwrap();
    let s = PartSet::open(&p).unwrap();
    let e = part_err(s.verify());
    let PartError::Digest {
        number,
        expected,
        actual,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*number, 3);
    assert_ne!(expected, actual);
    let msg = e.to_string();
    assert!(msg.contains(expected) && msg.contains(actual) && msg.contains(".part003"));
    // The chained reader reports the same error through io.
    let io = read_all(&s).unwrap_err();
    assert!(io.to_string().contains(".part003"), "{io}");
}

#[test]
fn truncated_and_swapped_parts_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = set(tmp.path());
    let p2 = out.join(part_name(NAME, 2));
    let full = fs::read(&p2).unwrap();
    fs::write(&p2, &full[..999]).unwrap();
    let s = PartSet::open(&p2).unwrap();
    let e = part_err(s.verify());
    assert!(
        matches!(
            e,
            PartError::Size {
                number: 2,
                expected: 1000,
                actual: 999,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("truncated"), "{e}");
    fs::write(&p2, &full).unwrap();
    // Parts 1 and 2 swapped by renaming: same sizes, each holds the other's bytes.
    let p1 = out.join(part_name(NAME, 1));
    let tmpname = out.join("swap");
    fs::rename(&p1, &tmpname).unwrap();
    fs::rename(&p2, &p1).unwrap();
    fs::rename(&tmpname, &p2).unwrap();
    let e = part_err(s.verify());
    assert!(matches!(e, PartError::Digest { number: 1, .. }), "{e}");
    assert!(e.to_string().contains("bytes of part 2"), "{e}");
}

#[test]
fn the_index_must_be_there_and_describe_these_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = set(tmp.path());
    let idx = out.join(index_name(NAME));
    let saved = fs::read(&idx).unwrap();
    fs::remove_file(&idx).unwrap();
    let e = PartSet::open(&out.join(part_name(NAME, 1))).unwrap_err();
    assert!(matches!(e, PartError::MissingIndex { .. }), "{e}");
    fs::write(&idx, b"{not json").unwrap();
    let e = PartSet::open(&out.join(part_name(NAME, 1))).unwrap_err();
    assert!(matches!(e, PartError::BadIndex { .. }), "{e}");
    fs::write(&idx, &saved).unwrap();
    // A part number the index does not list.
    fs::write(out.join(part_name(NAME, 4)), b"x").unwrap();
    let e = PartSet::open(&out.join(part_name(NAME, 4))).unwrap_err();
    assert!(matches!(e, PartError::NotAPart { .. }), "{e}");
    // An index whose whole-bundle digest lies (consistent parts, forged total).
    let mut forged = PartsIndex::parse(&saved).unwrap();
    forged.bundle.sha256 = "0".repeat(64);
    fs::write(&idx, forged.to_bytes()).unwrap();
    let s = PartSet::open(&idx).unwrap();
    assert!(matches!(part_err(s.verify()), PartError::Whole { .. }));
}

#[test]
fn bundle_input_tells_bundles_from_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, data) = set(tmp.path());
    let whole = tmp.path().join("src").join(NAME);
    assert!(matches!(
        BundleInput::open(&whole),
        Ok(BundleInput::File(_))
    ));
    let input = BundleInput::open(&out.join(part_name(NAME, 2))).unwrap();
    assert!(input.parts().is_some());
    assert_eq!(input.path(), out.join(NAME));
    let (d, n) = input.digest().unwrap();
    assert_eq!((d, n), BundleInput::File(whole).digest().unwrap());
    let mut v = Vec::new();
    input.reader().unwrap().read_to_end(&mut v).unwrap();
    assert_eq!(v, data);
    assert!(matches!(
        BundleInput::open(&out.join(part_name(NAME, 9))),
        Err(KitError::NotFound(_))
    ));
    let ev = evidence_files(&out.join(part_name(NAME, 2)));
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(evidence_files(&out.join(NAME)), vec![out.join(NAME)]);
}
