//! End-to-end: `ouk kit import` and `ouk trust` — the verified, atomic, idempotent import.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::hostile::fixture;
use common::*;

/// Build a signed kit of the small tree for `day` as `version`; returns the bundle path.
fn kit(dir: &Path, day: u32, version: &str) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        version,
        &dir.join(format!("dist-{version}")),
    )
}

/// [`import_kit`] with `--max-kit-age 0` (the small tree's kits may be old) before `extra`.
fn import(root: &Path, bundle: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--max-kit-age", "0"];
    args.extend_from_slice(extra);
    import_kit(root, bundle, &args)
}

#[test]
fn import_verifies_activates_and_a_second_import_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let (rc, r) = import(&root, &b0, &[]);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["outcome"], "activated");
    let current = check_current_complete(&root).unwrap();
    assert_eq!(serde_json::Value::String(current), r["generation"]);
    // The release tree's files are there, byte for byte.
    let release = small_tree(tmp.path(), 0);
    for (rel, path, _) in ouk_delta::tree::list_tree(&release).unwrap() {
        assert_eq!(
            fs::read(root.join("current").join(&rel)).unwrap(),
            fs::read(path).unwrap(),
            "{rel}"
        );
    }
    // Again: exit 0, "already active", nothing written.
    // Packs, generation trees, quarantine and staging must not change at all; the index is
    // compared by content (redb rewrites its own header flags on every open).
    let snapshot = |root: &Path| -> Vec<(String, String)> {
        let mut v: Vec<(String, u64)> = walk(&root.join("store/packs"));
        v.extend(walk(&root.join("generations")));
        v.extend(walk(&root.join("quarantine")));
        v.extend(walk(&root.join("staging")));
        let r = ouk_root::Root::open(
            root,
            ouk_root::LockWait::Wait,
            ouk_store::StoreOptions::default(),
        )
        .unwrap();
        v.push(("activations".into(), r.activations().unwrap().len() as u64));
        v.push(("generations".into(), r.generations().unwrap().len() as u64));
        v.push(("chunks".into(), r.store().stats().unwrap().chunks));
        let mut v: Vec<(String, String)> = v.into_iter().map(|(k, n)| (k, n.to_string())).collect();
        // The symlink's target itself (the generation id), not its length: every
        // generation id has the same length, so only the target shows a wrong flip.
        v.push((
            "current".into(),
            fs::read_link(root.join("current"))
                .unwrap()
                .display()
                .to_string(),
        ));
        v
    };
    let before = snapshot(&root);
    let (rc, again) = import(&root, &b0, &[]);
    assert_eq!(rc, 0);
    assert_eq!(again["outcome"], "already-active");
    let after = snapshot(&root);
    let changed: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    assert!(
        changed.is_empty() && after.len() == before.len(),
        "a repeated import wrote: {changed:?}"
    );
    let out = run(
        &root,
        &[
            "kit",
            "import",
            b0.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "0",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("already active"));
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push((
                    e.path().display().to_string(),
                    m.len() ^ (m.mtime_nsec() as u64) ^ m.ino(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn newer_kits_link_unchanged_files_older_ones_need_force() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let b1 = kit(tmp.path(), 1, "2025.10.1");
    let (_, r0) = import(&root, &b0, &[]);
    let (rc, r1) = import(&root, &b1, &[]);
    assert_eq!(rc, 0, "{r1}");
    assert_eq!(r1["previous"], r0["generation"]);
    assert!(!r1["diff"]["changed"].as_array().unwrap().is_empty());
    let g = |r: &serde_json::Value| {
        root.join("generations")
            .join(r["generation"].as_str().unwrap())
    };
    let same = "certificates/russian_trusted_bundle.pem";
    assert_eq!(
        fs::metadata(g(&r0).join(same)).unwrap().ino(),
        fs::metadata(g(&r1).join(same)).unwrap().ino()
    );
    // Going back to 2025.10.0: refused with 8, then allowed when forced with a reason.
    let (rc, refused) = import(&root, &b0, &[]);
    assert_eq!(rc, 8, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("version not newer")
    );
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(r1["generation"].clone())
    );
    let (rc, forced) = import(
        &root,
        &b0,
        &["--force-activate", "--force-reason", "bad feed in 10.1"],
    );
    assert_eq!(rc, 0, "{forced}");
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(r0["generation"].clone())
    );
    let r = ouk_root::Root::open(
        &root,
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .unwrap();
    let last = r.activations().unwrap().pop().unwrap();
    assert!(last.forced && last.reason.contains("bad feed in 10.1"));
}

#[test]
fn refusals_leave_current_untouched_and_quarantine_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let b1 = kit(tmp.path(), 1, "2025.10.1");
    let (_, r0) = import(&root, &b0, &[]);
    let keep = r0["generation"].clone();
    // Untrusted: remove the key -> exit 5.
    let (rc, list) = run_json(&root, &["trust", "list"]);
    assert_eq!(rc, 0);
    let kid = list[0]["kid"].as_str().unwrap().to_string();
    assert_eq!(code(&run(&root, &["trust", "remove", &kid])), 0);
    let (rc, e) = import(&root, &b1, &[]);
    assert_eq!(rc, 5, "{e}");
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(keep.clone())
    );
    let q: Vec<_> = fs::read_dir(root.join("quarantine"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(q.len(), 1);
    let reason: serde_json::Value =
        serde_json::from_slice(&fs::read(q[0].path().join("reason.json")).unwrap()).unwrap();
    assert_eq!(reason["code"], 5);
    assert_eq!(reason["step"], "verify");
    assert_eq!(fs::read_dir(root.join("staging")).unwrap().count(), 0);
    // --trust-key for this import only works.
    // Corrupted copy: exit 2 with the seed's message.
    let bad = tmp.path().join("bad");
    fs::create_dir(&bad).unwrap();
    let copy = bad.join(b1.file_name().unwrap());
    let mut bytes = fs::read(&b1).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 4;
    fs::write(&copy, bytes).unwrap();
    fs::copy(
        format!("{}.sha256", b1.display()),
        format!("{}.sha256", copy.display()),
    )
    .unwrap();
    let (rc, e) = import(
        &root,
        &copy,
        &["--trust-key", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(rc, 2, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("could not verify bundle hash: re-copy the kit")
    );
    // Not enough space: exit 12 with how much to free.
    let (rc, e) = run_json(
        &root,
        &[
            "kit",
            "import",
            b1.to_str().unwrap(),
            "--trust-key",
            fixture("fixture.pub").to_str().unwrap(),
            "--free-margin",
            "1000000000000000",
        ],
    );
    assert_eq!(rc, 12, "{e}");
    assert!(e["error"].as_str().unwrap().contains("free >="));
    assert!(
        e["error"].as_str().unwrap().contains("before retrying"),
        "{e}"
    );
    // Dry run: reports, changes nothing.
    let (rc, d) = import(
        &root,
        &b1,
        &[
            "--trust-key",
            fixture("fixture.pub").to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(rc, 0, "{d}");
    assert_eq!(d["outcome"], "dry-run");
    assert!(!d["diff"]["changed"].as_array().unwrap().is_empty());
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(keep.clone())
    );
    let (_, gens) = run_json(&root, &["gen", "list"]);
    assert_eq!(gens.as_array().unwrap().len(), 1);
    // A locked root: exit 13 at once.
    let held = ouk_root::Root::open(
        &root,
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .unwrap();
    let (rc, _) = import(
        &root,
        &b1,
        &["--trust-key", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(rc, 13);
    drop(held);
    let (rc, ok) = import(
        &root,
        &b1,
        &["--trust-key", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{ok}");
}

#[test]
fn readers_never_see_a_missing_or_mixed_tree_while_current_flips() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let b1 = kit(tmp.path(), 1, "2025.10.1");
    let (_, r0) = import(&root, &b0, &[]);
    let (_, r1) = import(&root, &b1, &[]);
    let manifests: Vec<(String, Vec<(String, String)>)> = [&r0, &r1]
        .iter()
        .map(|r| {
            let id = r["generation"].as_str().unwrap().to_string();
            let dir = root.join("generations").join(&id);
            let files = ouk_delta::tree::list_tree(&dir)
                .unwrap()
                .into_iter()
                .filter(|(rel, _, _)| rel.starts_with("feeds/") || rel.starts_with("plugins/"))
                .map(|(rel, p, _)| (rel, sha256_file(&p)))
                .collect();
            (id, files)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let current = root.join("current");
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Resolve once, then read the whole tree through that resolution.
                let resolved = fs::canonicalize(&current).expect("current always resolves");
                let id = resolved.file_name().unwrap().to_str().unwrap().to_string();
                let (_, files) = manifests
                    .iter()
                    .find(|m| m.0 == id)
                    .expect("current is one of the two generations");
                for (rel, sha) in files {
                    assert_eq!(&sha256_file(&resolved.join(rel)), sha, "{rel} in {id}");
                    reads += 1;
                }
                // And a path opened through the symlink itself is never missing.
                fs::metadata(current.join("feeds/osv/osv-all.jsonl")).expect("never missing");
            }
            reads
        })
    };
    for i in 0..40 {
        let (rc, _) = run_json(&root, &["gen", "rollback"]);
        assert_eq!(rc, 0, "flip {i}");
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw a broken tree");
    assert!(reads > 0);
}

#[test]
fn a_stale_kit_is_refused_and_status_flags_a_stale_host() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    // The small tree's files date from 2025-10-23: its kit is far older than 7 days.
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let (rc, e) = run_json(
        &root,
        &["kit", "import", b0.to_str().unwrap(), "--free-margin", "0"],
    );
    assert_eq!(rc, 8, "{e}");
    assert!(e["error"].as_str().unwrap().contains("stale"));
    assert!(
        root.join("current").symlink_metadata().is_err(),
        "nothing was activated"
    );
    // Accepted with an explicit window, and then the host reports itself stale.
    let (rc, _) = run_json(
        &root,
        &[
            "kit",
            "import",
            b0.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "100000",
        ],
    );
    assert_eq!(rc, 0);
    let (rc, st) = run_json(&root, &["status"]);
    // A stale host is "not current" to a monitor: exit 9 (issue 21).
    assert_eq!(rc, 9, "{st}");
    assert_eq!(st["stale"], true);
    assert!(String::from_utf8_lossy(&run(&root, &["status"]).stdout).contains("STALE"));
}

/// Rollback through a pre-release: `2025.10.1-rc1` is older than `2025.10.1` (SemVer), so
/// it is refused over the release (the old comparison took the longer string as newer),
/// while the release still goes over its candidate.
#[test]
fn a_release_candidate_is_not_activated_over_its_release() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let release = kit(tmp.path(), 1, "2025.10.1");
    let rc1 = kit(tmp.path(), 2, "2025.10.1-rc1");
    let (rc, r) = import(&root, &release, &[]);
    assert_eq!(rc, 0, "{r}");
    let (rc, e) = import(&root, &rc1, &[]);
    assert_eq!(rc, 8, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("version not newer"),
        "{e}"
    );
    assert_eq!(
        check_current_complete(&root).map(serde_json::Value::String),
        Some(r["generation"].clone())
    );
    // The other way round is an upgrade.
    let other = tmp.path().join("other");
    let o = run(
        &other,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0);
    assert_eq!(import(&other, &rc1, &[]).0, 0);
    let (rc, up) = import(&other, &release, &[]);
    assert_eq!((rc, up["outcome"].as_str()), (0, Some("activated")), "{up}");
}

/// Freeze through a kit dated in the future: it would never go stale (its age is
/// negative). Refused with exit 11 whatever the age window, unless forced with a reason;
/// a small clock skew is tolerated and configurable; status never shows a negative age.
#[test]
fn a_kit_dated_in_the_future_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b2099 = kit_created(tmp.path(), 0, "2025.10.0", "2099-01-01T00:00:00Z");
    // The default 7-day window, and no age limit at all: both refuse it.
    let (rc, e) = run_json(
        &root,
        &[
            "kit",
            "import",
            b2099.to_str().unwrap(),
            "--free-margin",
            "0",
        ],
    );
    assert_eq!(rc, 11, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("in the future"),
        "{e}"
    );
    let (rc, e) = import(&root, &b2099, &[]);
    assert_eq!(rc, 11, "{e}");
    assert!(
        root.join("current").symlink_metadata().is_err(),
        "nothing was activated"
    );
    // Two hours ahead: beyond the default skew, within a configured one.
    let ahead = kit_created(tmp.path(), 1, "2025.10.1", &from_now(2 * 3600));
    let (rc, e) = import(&root, &ahead, &[]);
    assert_eq!(rc, 11, "{e}");
    let (rc, r) = import(&root, &ahead, &["--max-clock-skew", "86400"]);
    assert_eq!(rc, 0, "{r}");
    // A few minutes ahead (clocks drift): accepted by default.
    let close = kit_created(tmp.path(), 2, "2025.10.2", &from_now(300));
    let (rc, r) = run_json(
        &root,
        &[
            "kit",
            "import",
            close.to_str().unwrap(),
            "--free-margin",
            "0",
        ],
    );
    assert_eq!(rc, 0, "{r}");
    // Forced with a reason: accepted, and status does not report a negative age.
    let b2099 = kit_created(tmp.path(), 3, "2025.10.3", "2099-01-01T00:00:00Z");
    let (rc, r) = import(
        &root,
        &b2099,
        &["--force-activate", "--force-reason", "lab clock test"],
    );
    assert_eq!(rc, 0, "{r}");
    let (rc, st) = run_json(&root, &["status"]);
    assert_eq!(rc, 0, "{st}");
    assert!(st["kitAgeDays"].as_i64().unwrap() >= 0, "{st}");
    let text = String::from_utf8_lossy(&run(&root, &["status"]).stdout).to_string();
    let age = text
        .lines()
        .find(|l| l.starts_with("kit age"))
        .unwrap_or("");
    assert!(!age.contains('-'), "no negative age: {text}");
}
