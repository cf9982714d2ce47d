//! Crash safety of the mirror's delta storage (issue 24), with the crash harness of
//! `delta_crash.rs`: a child `ouk mirror remove` (re-basing a delta chain) or `ouk mirror
//! add` (storing a delta) is SIGKILLed at a seeded random moment. After each kill:
//! - `ouk store fsck` is clean (chains rebuilt end to end included);
//! - every bundle the catalog lists exports byte-identical to its original;
//! - re-running the command succeeds and ends where an uninterrupted run does.
//!
//! Short form: 8 trials per command. `OUK_LONG_TESTS=1`: 100.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::hostile::*;
use common::*;
use rand::{Rng, SeedableRng};

fn kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join(format!("kits-{day}")),
    )
}

fn ok(root: &Path, args: &[&str]) -> serde_json::Value {
    let (rc, doc) = run_json(root, args);
    assert_eq!(rc, 0, "{args:?}: {doc}");
    doc
}

/// Every listed bundle exports byte-identical to the kit of its version.
fn every_listed_bundle_exports(root: &Path, kits: &[PathBuf], scratch: &Path, what: &str) {
    let listed = ok(root, &["mirror", "list"]);
    for b in listed.as_array().unwrap() {
        let version = b["version"].as_str().unwrap();
        let k = kits
            .iter()
            .find(|k| k.to_string_lossy().contains(&format!("-{version}-")))
            .unwrap();
        let out = scratch.join(format!("export-{version}"));
        let _ = std::fs::remove_dir_all(&out);
        ok(
            root,
            &[
                "mirror",
                "export",
                version,
                "--output-dir",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(
            sha256_file(&out.join(k.file_name().unwrap())),
            sha256_file(k),
            "{what}: {version}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

fn trials() -> usize {
    if std::env::var_os("OUK_LONG_TESTS").is_some() {
        100
    } else {
        8
    }
}

/// Run `args` in copies of `pristine`, killing each at a seeded moment; `check` runs
/// after the kill, then the command again.
fn crash_loop(tmp: &Path, pristine: &Path, args: &[&str], seed: u64, check: &dyn Fn(&Path, &str)) {
    let mut times = Vec::new();
    for i in 0..3 {
        let r = tmp.join(format!("timing-{seed}-{i}"));
        copy_tree(pristine, &r);
        let started = Instant::now();
        ok(&r, args);
        times.push(started.elapsed());
        check(&r, "uninterrupted");
    }
    times.sort();
    let full = times[1];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed = 0;
    for trial in 0..trials() {
        let root = tmp.join(format!("trial-{seed}-{trial}"));
        copy_tree(pristine, &root);
        let delay = full.mul_f64(rng.random_range(0.0..1.2));
        let mut child = Command::new(ouk())
            .arg("--root")
            .arg(&root)
            .arg("-q")
            .args(args)
            .env_remove("OUK_ROOT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed += 1;
        } else {
            assert_eq!(status.code(), Some(0), "trial {trial}: failed by itself");
        }
        let (rc, fsck) = run_json(&root, &["--wait", "store", "fsck"]);
        assert_eq!(
            rc, 0,
            "trial {trial} ({delay:?}): fsck after the kill: {fsck}"
        );
        check(&root, &format!("trial {trial} after the kill"));
        // The command again: done, or "nothing to remove" after a remove that finished.
        let o = run(&root, args);
        let again = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(0) || again.contains("no mirrored bundle matches"),
            "trial {trial}: re-run: {again}"
        );
        check(&root, &format!("trial {trial} after the re-run"));
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!("{args:?}: {} trials, {killed} killed mid-run", trials());
}

#[test]
fn sigkill_during_a_rebase_or_a_delta_add_leaves_every_bundle_exportable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kits: Vec<PathBuf> = (0..3).map(|day| kit(dir, day)).collect();
    let pristine = dir.join("pristine");
    let o = run(
        &pristine,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0);
    for k in &kits[..2] {
        ok(&pristine, &["mirror", "add", k.to_str().unwrap()]);
    }
    // Adding the third: a delta at depth 2.
    let add_args = ["mirror", "add", kits[2].to_str().unwrap()];
    crash_loop(dir, &pristine, &add_args, 71, &|root, what| {
        every_listed_bundle_exports(root, &kits, dir, what)
    });
    ok(&pristine, &add_args);
    let stats = ok(&pristine, &["mirror", "stats"]);
    assert_eq!(stats["maxChainDepth"], 2, "{stats}");
    // Removing the middle one re-bases the third onto the first.
    let remove_args = ["mirror", "remove", "2025.10.1"];
    crash_loop(dir, &pristine, &remove_args, 72, &|root, what| {
        every_listed_bundle_exports(root, &kits, dir, what)
    });
}
