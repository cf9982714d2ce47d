//! The mirror end to end inside the crate: which bundles are stored as tar + recipe, which
//! as their compressed bytes, and that export gives every one back byte-identical.

use std::io::{Read, Write};
use std::path::Path;

use ouk_delta::{LockWait, Root};
use ouk_store::StoreOptions;
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
    let root = Root::open(
        &tmp.path().join("root"),
        LockWait::Fail,
        StoreOptions::default(),
    )
    .unwrap();
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
    let root = Root::open(
        &tmp.path().join("root"),
        LockWait::Fail,
        StoreOptions::default(),
    )
    .unwrap();
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
