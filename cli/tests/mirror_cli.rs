//! End-to-end: `ouk mirror add|list|export|stats` on successive signed kits and a delta:
//! every export is byte-identical to the original, the store grows by much less than the
//! bundles, adding twice is a no-op, gc keeps mirrored content, and a damaged chunk makes
//! export fail with exit 2 without writing a file; `delta make --mirror` and `serve
//! --mirror` work from the mirror.
//!
//! Every test runs twice: on the local store (`NAME::local`) and on a bucket of a real S3
//! server, s3s-fs on loopback (`NAME::s3`, `--store-url`; see `common::s3`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::hostile::fixture;
use common::s3::Backend;
use common::*;

on_both_backends!(
    successive_kits_are_deduplicated_and_exported_byte_identical,
    gc_keeps_mirrored_content_and_a_damaged_chunk_fails_export_with_2,
    a_delta_is_mirrored_too_and_bad_bundles_are_refused,
    delta_make_and_serve_work_from_the_mirror,
);

const SIDECARS: [&str; 3] = ["sha256", "sig", "metadata.json"];

fn add(b: &Backend, root: &Path, bundle: &Path) -> serde_json::Value {
    let (rc, doc) = b.run_json(root, &["mirror", "add", bundle.to_str().unwrap()]);
    assert_eq!(rc, 0, "mirror add {}: {doc}", bundle.display());
    doc
}

fn export(b: &Backend, root: &Path, version: &str, out: &Path) -> (i32, serde_json::Value) {
    b.run_json(
        root,
        &[
            "mirror",
            "export",
            version,
            "--output-dir",
            out.to_str().unwrap(),
        ],
    )
}

fn stats(b: &Backend, root: &Path) -> serde_json::Value {
    let (rc, doc) = b.run_json(root, &["mirror", "stats"]);
    assert_eq!(rc, 0, "{doc}");
    doc
}

/// Every file the export wrote equals the original next to `bundle`.
fn assert_exported_identically(bundle: &Path, out: &Path) {
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let src = bundle.parent().unwrap();
    assert_eq!(sha256_file(&out.join(name)), sha256_file(bundle), "{name}");
    for ext in SIDECARS {
        let f = format!("{name}.{ext}");
        assert_eq!(
            fs::read(out.join(&f)).unwrap(),
            fs::read(src.join(&f)).unwrap(),
            "{f}"
        );
    }
    for m in [
        "manifest/offline-manifest.json",
        "manifest/offline-manifest.json.jws",
    ] {
        if src.join(m).exists() {
            assert_eq!(
                fs::read(out.join(m)).unwrap(),
                fs::read(src.join(m)).unwrap(),
                "{m}"
            );
        }
    }
    assert!(
        !fs::read_dir(out).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp")),
        "no temporary left in {}",
        out.display()
    );
}

fn successive_kits_are_deduplicated_and_exported_byte_identical(b: &Backend, dir: &Path) {
    let root = trusted_root(dir, "mirror");
    let kits: Vec<PathBuf> = (0..3).map(|day| day_kit(dir, day)).collect();
    let mut stored_after = Vec::new();
    for k in &kits {
        // Chunks only: this test is about chunk dedup (delta storage: mirror_delta_cli).
        let (rc, doc) = b.run_json(
            &root,
            &[
                "mirror",
                "add",
                "--max-chain-depth",
                "0",
                k.to_str().unwrap(),
            ],
        );
        assert_eq!(rc, 0, "mirror add {}: {doc}", k.display());
        assert_eq!(doc["outcome"], "added", "{doc}");
        assert_eq!(doc["bundle"]["storedAs"], "tar", "{doc}");
        assert_eq!(doc["bundle"]["kind"], "kit");
        assert!(
            doc["bundle"]["signedBy"].is_string(),
            "signature checked: {doc}"
        );
        assert!(doc["filesChecked"].as_u64().unwrap() > 10, "{doc}");
        stored_after.push(stats(b, &root)["storedBytes"].as_u64().unwrap());
    }
    let s = stats(b, &root);
    let sizes: Vec<u64> = kits
        .iter()
        .map(|k| fs::metadata(k).unwrap().len())
        .collect();
    let bundle_bytes: u64 = sizes.iter().sum();
    assert_eq!(s["bundles"], 3);
    assert_eq!(s["storedAsTar"], 3);
    // How many members are seen through depends on the tree; the counts are always there.
    for key in [
        "storedSeeThrough",
        "seeThroughMembers",
        "memberPlainBytes",
        "memberOriginalBytes",
    ] {
        assert!(s[key].is_u64(), "{key}: {s}");
    }
    assert_eq!(s["bundleBytes"].as_u64().unwrap(), bundle_bytes);
    // The first kit costs about its own size (zstd chunks of its tar); each later one only
    // what changed since.
    let growth = stored_after[2] - stored_after[0];
    let later_bundles = sizes[1] + sizes[2];
    eprintln!(
        "bundles {sizes:?}: mirror stored bytes after each add {stored_after:?}; growth {growth} for {later_bundles} bundle bytes"
    );
    assert!(
        growth * 5 < later_bundles * 2,
        "kits 2 and 3 grow the store by much less than their size: {s}"
    );
    assert!(stored_after[2] < bundle_bytes * 2 / 3, "{s}");

    // Adding again changes nothing, down to the pack bytes.
    let before = stats(b, &root);
    let again = add(b, &root, &kits[1]);
    assert_eq!(again["outcome"], "already-mirrored", "{again}");
    assert_eq!(again["newStoredBytes"], 0);
    if b.url().is_some() {
        assert_eq!(again["requests"]["put"], 0, "nothing uploaded: {again}");
    }
    assert_eq!(stats(b, &root), before);

    let (rc, listing) = b.run_json(&root, &["mirror", "list"]);
    assert_eq!(rc, 0);
    let versions: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2025.10.0", "2025.10.1", "2025.10.2"]);
    let table = b.run(&root, &["mirror", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("STORED AS"));

    for (day, k) in kits.iter().enumerate() {
        let out = dir.join(format!("export-{day}"));
        let (rc, doc) = export(b, &root, &format!("2025.10.{day}"), &out);
        assert_eq!(rc, 0, "{doc}");
        assert_exported_identically(k, &out);
        // The exported kit verifies as the original does.
        let o = Command::new(ouk())
            .args(["kit", "verify"])
            .arg(out.join(k.file_name().unwrap()))
            .arg("--key")
            .arg(fixture("fixture.pub"))
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A test backend for reading an object-storage root's index without its bucket.
struct NoPacks;

impl ouk_store::PackBackend for NoPacks {
    fn describe(&self) -> String {
        "index only".into()
    }
    fn read_at(
        &self,
        _: u32,
        _: u64,
        _: usize,
        _: &mut Vec<u8>,
    ) -> ouk_store::Result<Result<(), u64>> {
        Err(ouk_store::StoreError::Unsupported("reads".into()))
    }
    fn sealed_pack_target(&self) -> Option<u64> {
        Some(1 << 20)
    }
    fn forget(&self, _: &[u32]) {}
    fn present_packs(&self) -> ouk_store::Result<std::collections::HashSet<u32>> {
        Ok(Default::default())
    }
}

/// The chunk ids of store file `digest` in `root`'s index.
fn chunks_of(b: &Backend, root: &Path, digest: &ouk_store::FileDigest) -> Vec<ouk_store::ChunkId> {
    let options = ouk_store::StoreOptions {
        remote: b.url().map(ouk_store::RemoteOptions::new),
        ..Default::default()
    };
    let store =
        ouk_store::Store::open_with(&root.join("store"), options, &|_| Ok(Box::new(NoPacks)))
            .unwrap();
    store.file_record(digest).unwrap().unwrap().chunks
}

/// Flip a byte inside the frame of chunk `id`, wherever its pack is (a pack file of the
/// root, or a pack object in the server's data directory).
fn damage_chunk(b: &Backend, root: &Path, id: &ouk_store::ChunkId) {
    let packs_dir = match b {
        Backend::Local => root.join("store/packs"),
        Backend::S3 { server, prefix } => server.object_path(&format!("{prefix}/packs")),
    };
    for entry in fs::read_dir(&packs_dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = fs::read(&path).unwrap();
        let hit = ouk_store::pack::scan_pack(&bytes)
            .into_iter()
            .find(|(_, h)| h.as_ref().is_ok_and(|h| h.id == *id));
        if let Some((offset, _)) = hit {
            bytes[offset as usize + 20] ^= 0x40;
            fs::write(&path, bytes).unwrap();
            return;
        }
    }
    panic!("chunk {id} is in no pack under {}", packs_dir.display());
}

/// Every object of the S3 backend's bucket (s3s-fs keeps one file per object) and its
/// bytes; empty for the local backend.
fn bucket_objects(b: &Backend) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Backend::S3 { server, .. } = b {
        walk(&server.data, &mut out);
        assert!(!out.is_empty(), "the mirror wrote to the bucket");
    }
    out
}

fn gc_keeps_mirrored_content_and_a_damaged_chunk_fails_export_with_2(b: &Backend, dir: &Path) {
    let root = trusted_root(dir, "mirror");
    let k0 = day_kit(dir, 0);
    let doc = add(b, &root, &k0);
    // No generation holds anything: gc must still keep every mirrored file.
    let bucket = bucket_objects(b);
    let (rc, gc) = b.run_json(&root, &["store", "gc"]);
    match b {
        Backend::Local => {
            assert_eq!(rc, 0, "{gc}");
            assert_eq!(gc["filesRemoved"], 0, "{gc}");
        }
        Backend::S3 { .. } => {
            // gc of an object-storage store is refused (other writers share the bucket and
            // may be deduplicating against what it would delete; docs/architecture.md):
            // with --store-url a clear failure...
            assert_eq!(rc, 1, "{gc}");
            assert!(gc["error"].as_str().is_some_and(|e| !e.is_empty()), "{gc}");
            // ...and without it, as the local backend runs it, the root's store says where
            // its packs are instead of collecting a store it does not hold.
            let (rc, gc) = run_json(&root, &["store", "gc"]);
            assert_eq!(rc, 11, "{gc}");
            assert!(
                gc["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("--store-url")),
                "{gc}"
            );
        }
    }
    // Not one object of the bucket deleted or rewritten.
    assert!(bucket_objects(b) == bucket, "gc changed the bucket");
    let (rc, _) = export(b, &root, "2025.10.0", &dir.join("after-gc"));
    assert_eq!(rc, 0);
    assert_exported_identically(&k0, &dir.join("after-gc"));

    // Damage the header of one chunk of the tar stream.
    let tar: ouk_store::FileDigest = doc["bundle"]["tarSha256"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let chunks = chunks_of(b, &root, &tar);
    damage_chunk(b, &root, &chunks[chunks.len() / 2]);
    let out = dir.join("damaged");
    let (rc, doc) = export(b, &root, "2025.10.0", &out);
    assert_eq!(rc, 2, "store damage is exit 2: {doc}");
    assert!(doc["error"].as_str().unwrap().contains("damaged"), "{doc}");
    let left: Vec<_> = fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "export of damaged content writes nothing: {left:?}"
    );
    // fsck names it too (exit 2).
    let (rc, doc) = b.run_json(&root, &["store", "fsck"]);
    assert_eq!(rc, 2, "{doc}");
}

fn a_delta_is_mirrored_too_and_bad_bundles_are_refused(b: &Backend, dir: &Path) {
    let root = trusted_root(dir, "mirror");
    let (k0, k1) = (day_kit(dir, 0), day_kit(dir, 1));
    let delta = dir.join("deltas/stella-ouk-2025-10-02.delta.tgz");
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(&delta)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let doc = add(b, &root, &delta);
    assert_eq!(doc["bundle"]["kind"], "delta", "{doc}");
    assert_eq!(doc["bundle"]["storedAs"], "tar", "{doc}");
    let out = dir.join("export-delta");
    let (rc, e) = b.run_json(
        &root,
        &[
            "mirror",
            "export",
            "2025.10.1",
            "--kind",
            "delta",
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{e}");
    assert_exported_identically(&delta, &out);

    // A damaged copy: exit 2, nothing cataloged.
    let bad_dir = dir.join("bad");
    fs::create_dir_all(&bad_dir).unwrap();
    let name = k1.file_name().unwrap().to_str().unwrap();
    let mut bytes = fs::read(&k1).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(bad_dir.join(name), bytes).unwrap();
    for ext in SIDECARS {
        fs::copy(
            k1.parent().unwrap().join(format!("{name}.{ext}")),
            bad_dir.join(format!("{name}.{ext}")),
        )
        .unwrap();
    }
    let (rc, doc) = b.run_json(
        &root,
        &["mirror", "add", bad_dir.join(name).to_str().unwrap()],
    );
    assert_eq!(rc, 2, "{doc}");
    // An unsigned kit while the root trusts a key: exit 5.
    let o = Command::new(ouk())
        .args([
            "kit",
            "build",
            "--version",
            "2025.10.9",
            "--channel",
            "edge",
            "--release-dir",
        ])
        .arg(small_tree(dir, 0))
        .arg("--output-dir")
        .arg(dir.join("unsigned"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let unsigned = dir.join("unsigned/stella-ops-offline-kit-2025.10.9-edge.tar.gz");
    let (rc, doc) = b.run_json(&root, &["mirror", "add", unsigned.to_str().unwrap()]);
    assert_eq!(rc, 5, "{doc}");
    assert_eq!(stats(b, &root)["bundles"], 1);
}

fn delta_make_and_serve_work_from_the_mirror(b: &Backend, dir: &Path) {
    let root = trusted_root(dir, "mirror");
    let (k0, k1) = (day_kit(dir, 0), day_kit(dir, 1));
    add(b, &root, &k0);
    add(b, &root, &k1);
    // The delta made from the mirror is the delta made from the files.
    let make = |args: &[&str], out: &Path| {
        let mut all = vec!["delta", "make"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", out.to_str().unwrap()]);
        let o = b.run(&root, &all);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    };
    let from_files = dir.join("deltas-files/stella-ouk-2025-10-02.delta.tgz");
    make(
        &["--from", k0.to_str().unwrap(), "--to", k1.to_str().unwrap()],
        &from_files,
    );
    let from_mirror = dir.join("deltas-mirror/stella-ouk-2025-10-02.delta.tgz");
    make(
        &["--mirror", "--from", "2025.10.0", "--to", "2025.10.1"],
        &from_mirror,
    );
    assert_eq!(sha256_file(&from_mirror), sha256_file(&from_files));

    // serve --mirror publishes every mirrored bundle; a pull of the newest is the original.
    let published = dir.join("published");
    let mut cmd = b.command(
        &root,
        &["serve", "--mirror", "--listen", "127.0.0.1:0", "--kits"],
    );
    // The mirrored kits hold secrets (the small tree has the DPoP key): served with the
    // pull token only.
    let pull_token = "pull-token-0123456789abcdef";
    let mut child = cmd
        .arg(&published)
        .env("OUK_PULL_TOKEN", pull_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: Option<u16> = line
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok());
    let pulled = port.map(|port| {
        Command::new(ouk())
            .args(["--json", "--root"])
            .arg(dir.join("puller-root"))
            .args(["kit", "pull", "--from"])
            .arg(format!("http://127.0.0.1:{port}/ouk/"))
            .arg("--destination")
            .arg(dir.join("pulled"))
            .arg("--key")
            .arg(fixture("fixture.pub"))
            .arg("2025.10.1")
            .env("OUK_PULL_TOKEN", pull_token)
            .output()
            .unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    let pulled = pulled.unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_eq!(
        code(&pulled),
        0,
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(
        sha256_file(&dir.join("pulled").join(k1.file_name().unwrap())),
        sha256_file(&k1)
    );
    assert!(published.join(k0.file_name().unwrap()).is_file());
}

/// A root that trusts no key mirrored any bundle, signed or not ("the signature against
/// the trust store when it has keys"): anything could be planted in the mirror and served
/// on from there. `mirror add` now fails closed (exit 5) unless `--allow-unsigned` says
/// so, for kits and deltas alike.
#[test]
fn a_root_that_trusts_nothing_mirrors_only_with_allow_unsigned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("untrusting");
    let (k0, k1) = (day_kit(dir, 0), day_kit(dir, 1));
    let delta = dir.join("deltas/stella-ouk-2025-10-02.delta.tgz");
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(&delta)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    for bundle in [&k0, &delta] {
        let (rc, doc) = run_json(&root, &["mirror", "add", bundle.to_str().unwrap()]);
        assert_eq!(rc, 5, "{doc}");
        assert!(
            doc["error"]
                .as_str()
                .unwrap_or_default()
                .contains("no trusted keys"),
            "{doc}"
        );
    }
    let (rc, stats) = run_json(&root, &["mirror", "stats"]);
    assert_eq!((rc, stats["bundles"].as_u64()), (0, Some(0)), "{stats}");
    // Explicitly accepted: mirrored, and recorded as not signature-checked.
    for bundle in [&k0, &delta] {
        let (rc, doc) = run_json(
            &root,
            &[
                "mirror",
                "add",
                bundle.to_str().unwrap(),
                "--allow-unsigned",
            ],
        );
        assert_eq!(rc, 0, "{doc}");
    }
    let (rc, stats) = run_json(&root, &["mirror", "stats"]);
    assert_eq!((rc, stats["bundles"].as_u64()), (0, Some(2)), "{stats}");
}
