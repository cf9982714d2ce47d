//! End-to-end delta storage in the mirror (issue 24): successive kits kept as a delta chain
//! (`mirror add`), `mirror stats` per bundle, every export byte-identical, `store fsck`
//! rebuilding every chain and finding a damaged one, `delta make --mirror` between two
//! delta-stored kits equal to the delta made from the files, and `mirror remove` re-basing
//! dependants first (local store; refused on a bucket, whose records are create-only).
//!
//! Every test runs on the local store (`NAME::local`) and on an s3s-fs bucket (`NAME::s3`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::s3::Backend;
use common::*;

on_both_backends!(kits_become_a_delta_chain_that_exports_checks_and_rebases);

fn ok(b: &Backend, root: &Path, args: &[&str]) -> serde_json::Value {
    let (rc, doc) = b.run_json(root, args);
    assert_eq!(rc, 0, "{args:?}: {doc}");
    doc
}

fn kits_become_a_delta_chain_that_exports_checks_and_rebases(b: &Backend, dir: &Path) {
    let root = trusted_root(dir, "mirror");
    let kits: Vec<PathBuf> = (0..4).map(|day| day_kit(dir, day)).collect();
    let mut how = Vec::new();
    for k in &kits {
        let doc = ok(
            b,
            &root,
            &[
                "mirror",
                "add",
                "--max-chain-depth",
                "2",
                k.to_str().unwrap(),
            ],
        );
        how.push(doc["bundle"]["storedAs"].as_str().unwrap().to_string());
    }
    assert_eq!(how, ["tar", "delta", "delta", "tar"]);
    let stats = ok(b, &root, &["mirror", "stats"]);
    let per: Vec<(String, String, u64)> = stats["perBundle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["version"].as_str().unwrap().to_string(),
                p["storedAs"].as_str().unwrap().to_string(),
                p["chainDepth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per[2], ("2025.10.2".into(), "delta".into(), 2), "{stats}");
    assert_eq!(
        stats["perBundle"][1]["deltaBase"],
        kits[0].file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(stats["storedAsDelta"], 2);
    for (day, k) in kits.iter().enumerate() {
        let out = dir.join(format!("out-{day}"));
        ok(
            b,
            &root,
            &[
                "mirror",
                "export",
                &format!("2025.10.{day}"),
                "--output-dir",
                out.to_str().unwrap(),
            ],
        );
        let name = k.file_name().unwrap();
        assert_eq!(sha256_file(&out.join(name)), sha256_file(k), "day {day}");
    }
    let fsck = ok(b, &root, &["store", "fsck"]);
    assert_eq!(fsck["mirrorChainsChecked"], 2, "{fsck}");
    assert_eq!(fsck["clean"], true);

    // Between two delta-stored kits: the delta from the mirror is the one from the files.
    let make = |args: &[&str], out: &Path| {
        let mut all = vec!["delta", "make"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", out.to_str().unwrap()]);
        let o = b.run(&root, &all);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    };
    let from_files = dir.join("d-files/stella-ouk-2025-10-03.delta.tgz");
    make(
        &[
            "--from",
            kits[1].to_str().unwrap(),
            "--to",
            kits[2].to_str().unwrap(),
        ],
        &from_files,
    );
    let from_mirror = dir.join("d-mirror/stella-ouk-2025-10-03.delta.tgz");
    make(
        &["--mirror", "--from", "2025.10.1", "--to", "2025.10.2"],
        &from_mirror,
    );
    assert_eq!(sha256_file(&from_mirror), sha256_file(&from_files));

    let (rc, doc) = b.run_json(&root, &["mirror", "remove", "2025.10.1"]);
    if b.url().is_some() {
        assert_ne!(rc, 0, "remove on a bucket: {doc}");
        return;
    }
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(
        doc["rebased"][0][0],
        kits[2].file_name().unwrap().to_str().unwrap()
    );
    let o = b.run(&root, &["store", "gc"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("out-after");
    ok(
        b,
        &root,
        &[
            "mirror",
            "export",
            "2025.10.2",
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        sha256_file(&out.join(kits[2].file_name().unwrap())),
        sha256_file(&kits[2])
    );
    let fsck = ok(b, &root, &["store", "fsck"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    let _ = fs::remove_dir_all(&out);
}
