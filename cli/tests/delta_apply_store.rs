//! Issue 23: an apply stores the chunks it creates uncompressed, and `ouk store compact`
//! or `ouk store gc` brings the store to what a full import of the same kit gives: the
//! same chunks, the same stored bytes (zstd is deterministic at a level), the same
//! generation and files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

fn kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join("kits"),
    )
}

fn host(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    let o = run(
        &root,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0);
    root
}

fn ok(root: &Path, args: &[&str]) -> serde_json::Value {
    let (rc, doc) = run_json(root, args);
    assert_eq!(rc, 0, "{args:?}: {doc}");
    doc
}

fn import(root: &Path, bundle: &Path) -> serde_json::Value {
    ok(
        root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "0",
        ],
    )
}

fn stats(root: &Path) -> (u64, u64, u64) {
    let s = ok(root, &["store", "stats"]);
    (
        s["chunks"].as_u64().unwrap(),
        s["uniqueBytes"].as_u64().unwrap(),
        s["storedBytes"].as_u64().unwrap(),
    )
}

#[test]
fn compact_and_gc_bring_an_applied_store_to_the_full_imports_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (k0, k1) = (kit(tmp.path(), 0), kit(tmp.path(), 1));
    let d01 = tmp.path().join("d01.delta.tgz");
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(&d01)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let full = host(tmp.path(), "full");
    import(&full, &k0);
    let full_gen = import(&full, &k1)["generation"].clone();
    let applied = host(tmp.path(), "applied");
    import(&applied, &k0);
    assert_eq!(import(&applied, &d01)["generation"], full_gen);
    assert_eq!(
        check_current_complete(&full).unwrap(),
        check_current_complete(&applied).unwrap()
    );

    let (chunks, unique, stored) = stats(&full);
    let (a_chunks, a_unique, a_stored) = stats(&applied);
    assert_eq!((a_chunks, a_unique), (chunks, unique), "the same chunks");
    assert!(
        a_stored > stored,
        "the apply's chunks are stored fast: {a_stored} vs {stored}"
    );

    let gc_copy = tmp.path().join("applied-gc");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&applied)
        .arg(&gc_copy)
        .output()
        .unwrap();
    assert!(o.status.success());

    let compacted = ok(&applied, &["store", "compact"]);
    assert!(
        compacted["packs_compacted"].as_u64().unwrap() >= 1,
        "{compacted}"
    );
    assert_eq!(
        stats(&applied),
        (chunks, unique, stored),
        "compact: the full import's size"
    );
    assert_eq!(ok(&applied, &["store", "compact"])["packs_compacted"], 0);
    ok(&applied, &["store", "fsck"]);

    ok(&gc_copy, &["store", "gc"]);
    ok(&full, &["store", "gc"]);
    assert_eq!(stats(&gc_copy), stats(&full), "gc: the full import's size");
    assert_eq!(
        check_current_complete(&gc_copy).unwrap(),
        check_current_complete(&full).unwrap()
    );
}
