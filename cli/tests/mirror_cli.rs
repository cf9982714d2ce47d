//! End-to-end: `ouk mirror add|list|export|stats` on successive signed kits and a delta:
//! every export is byte-identical to the original, the store grows by much less than the
//! bundles, adding twice is a no-op, gc keeps mirrored content, and a damaged chunk makes
//! export fail with exit 2 without writing a file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

const SIDECARS: [&str; 3] = ["sha256", "sig", "metadata.json"];

/// A signed kit of day `day`, alone in its own output directory (so its manifest sidecar
/// is its own).
fn kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join(format!("kits-{day}")),
    )
}

fn mirror_root(dir: &Path) -> PathBuf {
    let root = dir.join("mirror");
    let o = run(
        &root,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    root
}

fn add(root: &Path, bundle: &Path) -> serde_json::Value {
    let (rc, doc) = run_json(root, &["mirror", "add", bundle.to_str().unwrap()]);
    assert_eq!(rc, 0, "mirror add {}: {doc}", bundle.display());
    doc
}

fn export(root: &Path, version: &str, out: &Path) -> (i32, serde_json::Value) {
    run_json(
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

fn stats(root: &Path) -> serde_json::Value {
    let (rc, doc) = run_json(root, &["mirror", "stats"]);
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

#[test]
fn successive_kits_are_deduplicated_and_exported_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = mirror_root(dir);
    let kits: Vec<PathBuf> = (0..3).map(|day| kit(dir, day)).collect();
    let mut stored_after = Vec::new();
    for k in &kits {
        let doc = add(&root, k);
        assert_eq!(doc["outcome"], "added", "{doc}");
        assert_eq!(doc["bundle"]["storedAs"], "tar", "{doc}");
        assert_eq!(doc["bundle"]["kind"], "kit");
        assert!(
            doc["bundle"]["signedBy"].is_string(),
            "signature checked: {doc}"
        );
        assert!(doc["filesChecked"].as_u64().unwrap() > 10, "{doc}");
        stored_after.push(stats(&root)["storedBytes"].as_u64().unwrap());
    }
    let s = stats(&root);
    let sizes: Vec<u64> = kits
        .iter()
        .map(|k| fs::metadata(k).unwrap().len())
        .collect();
    let bundle_bytes: u64 = sizes.iter().sum();
    assert_eq!(s["bundles"], 3);
    assert_eq!(s["storedAsTar"], 3);
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
    let before = stats(&root);
    let again = add(&root, &kits[1]);
    assert_eq!(again["outcome"], "already-mirrored", "{again}");
    assert_eq!(again["newStoredBytes"], 0);
    assert_eq!(stats(&root), before);

    let (rc, listing) = run_json(&root, &["mirror", "list"]);
    assert_eq!(rc, 0);
    let versions: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2025.10.0", "2025.10.1", "2025.10.2"]);
    let table = run(&root, &["mirror", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("STORED AS"));

    for (day, k) in kits.iter().enumerate() {
        let out = dir.join(format!("export-{day}"));
        let (rc, doc) = export(&root, &format!("2025.10.{day}"), &out);
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

#[test]
fn gc_keeps_mirrored_content_and_a_damaged_chunk_fails_export_with_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = mirror_root(dir);
    let k0 = kit(dir, 0);
    let doc = add(&root, &k0);
    // No generation holds anything: gc must still keep every mirrored file.
    let (rc, gc) = run_json(&root, &["store", "gc"]);
    assert_eq!(rc, 0, "{gc}");
    assert_eq!(gc["files_removed"], 0, "{gc}");
    let (rc, _) = export(&root, "2025.10.0", &dir.join("after-gc"));
    assert_eq!(rc, 0);
    assert_exported_identically(&k0, &dir.join("after-gc"));

    // Damage the header of one chunk of the tar stream.
    let tar: ouk_store::FileDigest = doc["bundle"]["tarSha256"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    {
        let r =
            ouk_delta::Root::open(&root, ouk_delta::LockWait::Wait, Default::default()).unwrap();
        let rec = r.store().file_record(&tar).unwrap().unwrap();
        let id = rec.chunks[rec.chunks.len() / 2];
        let loc = r.store().locate(&id).unwrap().unwrap();
        let pack = root
            .join("store/packs")
            .join(ouk_store::pack::pack_file_name(loc.pack));
        let mut bytes = fs::read(&pack).unwrap();
        bytes[loc.offset as usize + 20] ^= 0x40;
        fs::write(&pack, bytes).unwrap();
    }
    let out = dir.join("damaged");
    let (rc, doc) = export(&root, "2025.10.0", &out);
    assert_eq!(rc, 2, "store damage is exit 2: {doc}");
    assert!(doc["error"].as_str().unwrap().contains("damaged"), "{doc}");
    let left: Vec<_> = fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "export of damaged content writes nothing: {left:?}"
    );
}

#[test]
fn a_delta_is_mirrored_too_and_bad_bundles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = mirror_root(dir);
    let (k0, k1) = (kit(dir, 0), kit(dir, 1));
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
    let doc = add(&root, &delta);
    assert_eq!(doc["bundle"]["kind"], "delta", "{doc}");
    assert_eq!(doc["bundle"]["storedAs"], "tar", "{doc}");
    let out = dir.join("export-delta");
    let (rc, e) = run_json(
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
    let (rc, doc) = run_json(
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
    let (rc, doc) = run_json(&root, &["mirror", "add", unsigned.to_str().unwrap()]);
    assert_eq!(rc, 5, "{doc}");
    assert_eq!(stats(&root)["bundles"], 1);
}
