//! End-to-end: `ouk store` and `ouk gen` on synthetic release trees.

mod common;

use std::fs;

use common::*;

#[test]
fn ingest_is_idempotent_and_stats_fsck_report_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let day0 = small_tree(tmp.path(), 0);
    let (rc, first) = run_json(&root, &["store", "ingest", day0.to_str().unwrap()]);
    assert_eq!(rc, 0, "{first}");
    assert_eq!(first["status"], "activated");
    let (rc, again) = run_json(&root, &["store", "ingest", day0.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(again["status"], "already current");
    assert_eq!(again["generation"], first["generation"]);
    assert_eq!(again["new_chunks"], 0);
    let id = check_current_complete(&root).unwrap();
    assert_eq!(serde_json::Value::String(id), first["generation"]);

    let (rc, stats) = run_json(&root, &["store", "stats"]);
    assert_eq!(rc, 0);
    assert!(stats["chunks"].as_u64().unwrap() > 10);
    assert!(stats["storedBytes"].as_u64().unwrap() < stats["uniqueBytes"].as_u64().unwrap());
    let (rc, fsck) = run_json(&root, &["store", "fsck"]);
    assert_eq!(rc, 0);
    assert_eq!(fsck["clean"], true);

    // Human output names what happened.
    let out = run(&root, &["store", "ingest", day0.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already current"));
}

#[test]
fn next_day_shares_most_data_and_rollback_flips_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (_, g0) = run_json(
        &root,
        &[
            "store",
            "ingest",
            small_tree(tmp.path(), 0).to_str().unwrap(),
        ],
    );
    let (_, s0) = run_json(&root, &["store", "stats"]);
    let (_, g1) = run_json(
        &root,
        &[
            "store",
            "ingest",
            small_tree(tmp.path(), 1).to_str().unwrap(),
        ],
    );
    assert_ne!(g0["generation"], g1["generation"]);
    let (_, s1) = run_json(&root, &["store", "stats"]);
    let grew = s1["storedBytes"].as_u64().unwrap() - s0["storedBytes"].as_u64().unwrap();
    assert!(
        grew * 2 < s0["storedBytes"].as_u64().unwrap(),
        "day 1 should add much less than day 0 stored: +{grew} vs {s0}"
    );
    let (rc, list) = run_json(&root, &["gen", "list"]);
    assert_eq!(rc, 0);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["current"], true);
    let (rc, rb) = run_json(&root, &["gen", "rollback"]);
    assert_eq!(rc, 0, "{rb}");
    assert_eq!(rb["generation"], g0["generation"]);
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(g0["generation"].clone())
    );
    let (rc, gc) = run_json(&root, &["gen", "gc", "--keep", "1"]);
    assert_eq!(rc, 0);
    assert_eq!(gc["removed"].as_array().unwrap().len(), 1);
    let (rc, _) = run_json(&root, &["store", "fsck"]);
    assert_eq!(rc, 0);
    check_current_complete(&root).unwrap();
}

#[test]
fn fsck_names_damaged_chunks_files_and_generations_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (rc, _) = run_json(
        &root,
        &[
            "store",
            "ingest",
            small_tree(tmp.path(), 0).to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0);
    let pack = fs::read_dir(root.join("store/packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(&pack, bytes).unwrap();
    let (rc, report) = run_json(&root, &["store", "fsck"]);
    assert_eq!(rc, 2, "{report}");
    assert_eq!(report["clean"], false);
    assert!(!report["report"]["damaged"].as_array().unwrap().is_empty());
    let gens = report["damagedGenerations"].as_array().unwrap();
    assert_eq!(gens.len(), 1);
    assert!(!gens[0]["files"].as_array().unwrap().is_empty());
    let human = run(&root, &["store", "fsck"]);
    assert_eq!(human.status.code(), Some(2));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("DAMAGED chunk") && text.contains("DAMAGED generation"),
        "{text}"
    );
}

#[test]
fn a_locked_root_exits_13_and_missing_input_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let held = ouk_root::Root::open(
        &root,
        ouk_root::LockWait::Fail,
        ouk_store::StoreOptions::default(),
    )
    .unwrap();
    // A command that writes the root is locked out at once.
    let out = run(&root, &["gen", "gc", "--keep", "1"]);
    assert_eq!(code(&out), 13);
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    // A read-only one is not (issue 21): it answers while the lock is held (9: nothing is
    // active in this new root).
    assert_eq!(code(&run(&root, &["status"])), 9);
    drop(held);
    assert_eq!(code(&run(&root, &["gen", "gc", "--keep", "1"])), 0);
    let out = run(
        &root,
        &["store", "ingest", tmp.path().join("nope").to_str().unwrap()],
    );
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn rollback_without_history_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let out = run(&root, &["gen", "rollback"]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier generation"));
}
