//! The mirror end to end inside the crate: which bundles are stored as tar + recipe, which
//! as their compressed bytes, and that export gives every one back byte-identical.

use std::io::{Read, Write};
use std::path::Path;

use ouk_root::Root;
use sha2::{Digest, Sha256};

use super::*;
use crate::build::{KitMetadata, ManifestRef};
use crate::bundle::{EntrySource, EntrySpec, GzOptions, write_bundle};

fn tar_stream() -> Vec<u8> {
    let entries = (0..40)
        .map(|i| EntrySpec {
            path: format!("feeds/f{i:02}.json"),
            mode: 0o644,
            source: EntrySource::Bytes(
                format!("{{\"n\":{i},\"data\":\"{}\"}}", "abc".repeat(4000 + i * 97)).into_bytes(),
            ),
        })
        .collect();
    let (_, _, gz) = write_bundle(Vec::new(), entries, GzOptions::default()).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

/// Write `bytes` as bundle `name` in `dir` with a matching `.metadata.json`.
fn place(dir: &Path, name: &str, version: &str, bytes: &[u8]) -> std::path::PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    let meta = KitMetadata {
        name: name.into(),
        kind: "kit".into(),
        version: version.into(),
        channel: "edge".into(),
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
        manifest: ManifestRef {
            name: MANIFEST_PATH.into(),
            sha256: "0".repeat(64),
            size: 0,
        },
        created_at: "2025-10-01T00:00:00Z".into(),
        generation_id: "0".repeat(64),
        signed: false,
        kid: None,
        secrets: None,
    };
    fs::write(
        dir.join(format!("{name}.metadata.json")),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    path
}

fn gzip_with(level: flate2::Compression, name: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut b = flate2::GzBuilder::new();
    if let Some(n) = name {
        b = b.filename(n);
    }
    let mut enc = b.write(Vec::new(), level);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn every_kind_of_gzip_is_stored_the_right_way_and_exported_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::testutil::root_at(&tmp.path().join("root"));
    let tar = tar_stream();
    let cases = [
        ("ouk.tar.gz", "1", ouk_gzip(&tar), "tar", Some("pgzip")),
        (
            "zlib9.tar.gz",
            "2",
            gzip_with(flate2::Compression::best(), Some("x.tar"), &tar),
            "tar",
            Some("zlib level 9"),
        ),
        (
            "stored.tar.gz",
            "3",
            gzip_with(flate2::Compression::none(), None, &tar),
            "compressed",
            None,
        ),
    ];
    let mut added = Vec::new();
    for (name, version, bytes, stored_as, recipe) in &cases {
        let path = place(&tmp.path().join("in"), name, version, bytes);
        let r = add(&root, &path, 2, true).unwrap();
        assert_eq!(r.outcome, "added");
        assert_eq!(
            r.bundle.stored_as, *stored_as,
            "{name}: {:?}",
            r.rejected_recipes
        );
        if let Some(prefix) = recipe {
            assert!(
                r.bundle.recipe.as_deref().unwrap().starts_with(prefix),
                "{r:?}"
            );
        } else {
            assert_eq!(r.rejected_recipes.len(), 2, "{r:?}");
        }
        // Twice: nothing written.
        let again = add(&root, &path, 2, true).unwrap();
        assert_eq!(again.outcome, "already-mirrored");
        assert_eq!(again.new_stored_bytes, 0);
        added.push((name, version, bytes));
    }
    // The tar is shared: the two tar-stored bundles cost one tar.
    let s = stats(&root).unwrap();
    assert_eq!(
        (s.bundles, s.stored_as_tar, s.stored_as_compressed),
        (3, 2, 1)
    );
    assert_eq!(list(&root).unwrap().len(), 3);
    // gc with no generations keeps everything mirrored.
    root.gc_store().unwrap();
    for (name, version, bytes) in added {
        let out = tmp.path().join(format!("out-{version}"));
        let sel = Selector {
            what: version.to_string(),
            ..Default::default()
        };
        let r = export(&root, &sel, &out, 2).unwrap();
        assert_eq!(fs::read(&r.path).unwrap(), *bytes, "{name}");
        assert_eq!(
            fs::read(out.join(format!("{name}.metadata.json"))).unwrap(),
            fs::read(tmp.path().join("in").join(format!("{name}.metadata.json"))).unwrap()
        );
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }
    let none = export(
        &root,
        &Selector {
            what: "9".into(),
            ..Default::default()
        },
        tmp.path(),
        1,
    );
    assert!(matches!(none, Err(KitError::Usage(_))));
}

#[test]
fn a_bundle_that_does_not_match_its_sidecar_is_refused_before_anything_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::testutil::root_at(&tmp.path().join("root"));
    let tar = tar_stream();
    let path = place(&tmp.path().join("in"), "k.tar.gz", "1", &ouk_gzip(&tar));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, bytes).unwrap();
    assert!(matches!(
        add(&root, &path, 1, true),
        Err(KitError::DigestMismatch { .. })
    ));
    assert!(list(&root).unwrap().is_empty());
    assert_eq!(root.store().stats().unwrap().files, 0);
}

/// `data` compressed as ouk's bundle writer does.
fn ouk_gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = crate::bundle::ParGzWriter::new(Vec::new(), GzOptions::default()).unwrap();
    gz.write_all(data).unwrap();
    gz.finish().unwrap().0
}

/// Deterministic JSON lines that compress about 3:1 (what feeds and layers look like to a
/// compressor), `n` bytes or a little more.
fn feed_like(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 128);
    let mut i = 0u64;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!(
                "{{\"id\":\"CVE-2025-{i:05}\",\"score\":{}.{},\"hash\":\"{:016x}\",\"vendor\":\"v{}\"}}\n",
                x % 10,
                (x >> 8) % 10,
                x,
                (x >> 20) % 50
            )
            .as_bytes(),
        );
        i += 1;
    }
    out
}

/// A roll-up: a tar of compressed members (an OCI-style layer, a `.json.gz` feed, a zstd
/// file) plus a plain file, each member's content fixed, its compressed bytes written by
/// `producer` at `level`; the bundle itself is gzip-ed the way ouk writes bundles.
fn rollup(producer: ouk_testdata::gz::Producer, level: u32, mtime: u32) -> Vec<u8> {
    use ouk_testdata::gz::{GzWriter, Header};
    let gz = |data: &[u8], name: Option<&str>| {
        let mut w = GzWriter::new(Vec::new(), producer, level, Header { mtime, name, os: 3 });
        w.write_all(data).unwrap();
        w.finish().unwrap()
    };
    let entries = vec![
        EntrySpec {
            path: "images/layer.tar.gz".into(),
            mode: 0o644,
            source: EntrySource::Bytes(gz(&feed_like(1, 3 << 20), None)),
        },
        EntrySpec {
            path: "feeds/nvd-2025.json.gz".into(),
            mode: 0o644,
            source: EntrySource::Bytes(gz(&feed_like(2, 2 << 20), Some("nvd-2025.json"))),
        },
        EntrySpec {
            path: "feeds/ghsa.jsonl.zst".into(),
            mode: 0o644,
            source: EntrySource::Bytes(
                // The same zstd bytes both weeks: seen through or not, it dedups.
                zstd::encode_all(&feed_like(3, 1 << 20)[..], 3).unwrap(),
            ),
        },
        EntrySpec {
            path: "README".into(),
            mode: 0o644,
            source: EntrySource::Bytes(b"a roll-up\n".to_vec()),
        },
    ];
    let (_, _, bytes) = write_bundle(Vec::new(), entries, GzOptions::default()).unwrap();
    bytes
}

#[test]
fn rebuilt_compressed_members_share_chunks_and_export_identically() {
    use ouk_testdata::gz::Producer;
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::testutil::root_at(&tmp.path().join("root"));
    // The same content twice, every compressed member written anew: another producer,
    // another level, another mtime (what a weekly rebuild of layers and feeds does).
    let week1 = rollup(Producer::Zlib, 6, 1_760_000_000);
    let week2 = rollup(Producer::Miniz, 9, 1_760_600_000);
    assert_ne!(week1, week2);
    let p1 = place(&tmp.path().join("w1"), "w1.tar.gz", "1", &week1);
    let p2 = place(&tmp.path().join("w2"), "w2.tar.gz", "2", &week2);
    // Chunks only: this test is about what seeing through does to chunk sharing (with
    // delta storage the second would be a delta: tests_delta).
    let chunks_only = AddPolicy { max_chain_depth: 0 };
    let first = add_with(&root, &p1, 2, true, &chunks_only).unwrap();
    let second = add_with(&root, &p2, 2, true, &chunks_only).unwrap();
    assert_eq!(first.bundle.stored_as, "tar", "{first:?}");
    assert_eq!(second.bundle.stored_as, "tar", "{second:?}");
    // Without seeing through the members, the second roll-up's compressed bytes are all new
    // (about as many as the first add stored); seen through, only tar headers and chunk
    // boundaries around the members are.
    assert!(
        second.new_stored_bytes * 8 < first.new_stored_bytes,
        "second add stored {} new bytes, first {} ({:?} / {:?})",
        second.new_stored_bytes,
        first.new_stored_bytes,
        first.bundle.see_through,
        second.bundle.see_through
    );
    for (version, bytes) in [("1", &week1), ("2", &week2)] {
        let out = tmp.path().join(format!("out-{version}"));
        let sel = Selector {
            what: version.to_string(),
            ..Default::default()
        };
        let r = export(&root, &sel, &out, 2).unwrap();
        assert_eq!(fs::read(&r.path).unwrap(), **bytes, "week {version}");
    }
}

/// Overwrite the catalog record of `record.sha256` with `record` as it is (no validation:
/// what a damaged or tampered index holds).
fn put_raw_record(root: &Root, record: &MirroredBundle) {
    let txn = root.store().database().begin_write().unwrap();
    {
        let mut table = txn.open_table(catalog::BUNDLES).unwrap();
        table
            .insert(record.sha256.as_bytes(), record.encode().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_damaged_member_recipe_is_refused_on_export_and_nothing_is_written() {
    use ouk_testdata::gz::Producer;
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::testutil::root_at(&tmp.path().join("root"));
    let week = rollup(Producer::Zlib, 6, 1_760_000_000);
    let p = place(&tmp.path().join("in"), "w.tar.gz", "1", &week);
    let r = add(&root, &p, 2, true).unwrap();
    let st = r.bundle.see_through.expect("members seen through");
    assert_eq!(
        st.members, 3,
        "the gzip layer, the .json.gz feed, the zstd file: {r:?}"
    );
    let s = stats(&root).unwrap();
    assert_eq!((s.stored_see_through, s.see_through_members), (1, 3));
    assert!(s.member_plain_bytes > s.member_original_bytes);
    let good = list(&root).unwrap().remove(0);
    let damaged = |f: &dyn Fn(&mut Vec<MemberRecipe>)| {
        let mut r = good.clone();
        match &mut r.content {
            StoredContent::SeeThrough { members, .. } => f(members),
            other => panic!("stored as {other:?}"),
        }
        r
    };
    let variants = [
        // A recipe byte flipped in the middle (its header and lengths still read).
        damaged(&|m| {
            let mid = m[0].recipe.len() / 2;
            m[0].recipe[mid] ^= 0x55;
        }),
        // The right recipe over the wrong plain range (passes every structural check).
        damaged(&|m| m[0].offset += 1),
        // Two members' recipes swapped.
        damaged(&|m| {
            let (a, b) = (m[0].recipe.clone(), m[1].recipe.clone());
            m[0].recipe = b;
            m[1].recipe = a;
        }),
    ];
    for (i, bad) in variants.iter().enumerate() {
        put_raw_record(&root, bad);
        let out = tmp.path().join(format!("out-{i}"));
        let sel = Selector {
            what: "1".into(),
            ..Default::default()
        };
        assert!(
            export(&root, &sel, &out, 2).is_err(),
            "variant {i} exported"
        );
        let left: Vec<_> = fs::read_dir(&out)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "variant {i} left {left:?}");
    }
    // The good record exports again.
    put_raw_record(&root, &good);
    let out = tmp.path().join("out-good");
    let sel = Selector {
        what: "1".into(),
        ..Default::default()
    };
    let r = export(&root, &sel, &out, 2).unwrap();
    assert_eq!(fs::read(&r.path).unwrap(), week);
}
