//! Crash consistency and bounded memory of `ouk store ingest`.
//!
//! The crash test kills a child `ouk` with SIGKILL at seeded random moments while it ingests
//! and activates a next-day tree over an existing generation, then checks that:
//! - the root opens, `ouk store fsck` is clean,
//! - `current` is a complete generation (the old or the new one, never a mix),
//! - re-running the same ingest succeeds and ends on the same generation id as an
//!   uninterrupted run.
//!
//! Short form: a dozen trials. `OUK_LONG_TESTS=1`: 200 trials.
//!
//! Commands that follow an in-process open of a root (`check_current_complete`) pass
//! `--wait`: a child forked meanwhile by another test thread holds a copy of that root's
//! lock descriptor until it execs, which would otherwise read as exit 13.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use rand::{Rng, SeedableRng};

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigkill_during_ingest_never_leaves_a_broken_root() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ouk_testdata::TreeSpec::with_total_bytes(11, 24 << 20);
    let day0 = tmp.path().join("day0");
    let day1 = tmp.path().join("day1");
    ouk_testdata::generate(&spec, &day0).unwrap();
    ouk_testdata::generate(&spec.on_day(1), &day1).unwrap();

    let pristine = tmp.path().join("pristine");
    let (rc, g0) = run_json(&pristine, &["store", "ingest", day0.to_str().unwrap()]);
    assert_eq!(rc, 0);
    // The uninterrupted outcome and its duration, for kill timing.
    let reference = tmp.path().join("reference");
    copy_tree(&pristine, &reference);
    let started = Instant::now();
    let (rc, g1) = run_json(&reference, &["store", "ingest", day1.to_str().unwrap()]);
    let full = started.elapsed();
    assert_eq!(rc, 0);

    let trials = if std::env::var_os("OUK_LONG_TESTS").is_some() {
        200
    } else {
        12
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let (mut killed, mut finished) = (0, 0);
    for trial in 0..trials {
        let root = tmp.path().join(format!("trial{trial}"));
        copy_tree(&pristine, &root);
        let delay = full.mul_f64(rng.random_range(0.0..1.1));
        let mut child = Command::new(ouk())
            .arg("--root")
            .arg(&root)
            .args(["-q", "store", "ingest", day1.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        if status.code() == Some(0) {
            finished += 1;
        } else {
            killed += 1;
        }
        let (rc, fsck) = run_json(&root, &["--wait", "store", "fsck"]);
        assert_eq!(rc, 0, "trial {trial} ({delay:?}): fsck after kill: {fsck}");
        let current = check_current_complete(&root).expect("a current generation survives");
        assert!(
            current == g0["generation"] || current == g1["generation"],
            "trial {trial}: current {current} is neither old nor new"
        );
        let (rc, again) = run_json(
            &root,
            &["--wait", "store", "ingest", day1.to_str().unwrap()],
        );
        assert_eq!(rc, 0, "trial {trial}: re-run failed: {again}");
        assert_eq!(again["generation"], g1["generation"]);
        assert_eq!(
            check_current_complete(&root).map(serde_json::Value::String),
            Some(g1["generation"].clone())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!(
        "crash trials: {trials}, killed mid-run: {killed}, finished before the kill: {finished}"
    );
    assert!(killed > 0, "no trial was actually interrupted");
}

/// Max resident set of waited-for children, bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

#[test]
fn ingest_memory_does_not_grow_with_file_size() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("feed.jsonl");
    let size: u64 = 640 << 20;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        ouk_testdata::write_feed_like(&mut w, 3, size).unwrap();
    }
    let root = tmp.path().join("root");
    let out = Command::new(ouk())
        .arg("--root")
        .arg(&root)
        .args(["--json", "store", "ingest", "--no-activate"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let rss = children_max_rss();
    // The documented bound (docs/architecture.md): 64 MiB, whatever the file size.
    let bound = 64 << 20;
    eprintln!(
        "peak RSS ingesting {} MiB: {:.1} MiB",
        size >> 20,
        rss as f64 / 1048576.0
    );
    assert!(
        rss < bound,
        "peak RSS {rss} bytes exceeds {bound} for a {size}-byte file"
    );
    assert!(
        size > 6 * bound,
        "the file must be far larger than the bound"
    );
}

/// SIGKILL at random moments of `ouk kit import` of a next-day kit over an active one.
#[test]
fn sigkill_during_kit_import_never_leaves_a_broken_root() {
    let tmp = tempfile::tempdir().unwrap();
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cosign");
    let spec = ouk_testdata::TreeSpec::with_total_bytes(12, 24 << 20);
    let mut bundles = Vec::new();
    for (day, version) in [(0u32, "2025.10.0"), (1, "2025.10.1")] {
        let release = tmp.path().join(format!("rel{day}"));
        ouk_testdata::generate(&spec.on_day(day), &release).unwrap();
        let out = tmp.path().join(format!("dist{day}"));
        let o = Command::new(ouk())
            .args([
                "kit",
                "build",
                "--version",
                version,
                "--channel",
                "edge",
                "--release-dir",
            ])
            .arg(&release)
            .arg("--output-dir")
            .arg(&out)
            .arg("--signing-key")
            .arg(key.join("fixture.key"))
            .env("COSIGN_PASSWORD", "hello")
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        bundles.push(out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz")));
    }
    let pub_key = key.join("fixture.pub");
    let import = |root: &Path, bundle: &Path| {
        run_json(
            root,
            &[
                "--wait",
                "kit",
                "import",
                bundle.to_str().unwrap(),
                "--trust-key",
                pub_key.to_str().unwrap(),
                "--free-margin",
                "0",
                "--max-kit-age",
                "0",
            ],
        )
    };
    let pristine = tmp.path().join("pristine");
    let (rc, g0) = import(&pristine, &bundles[0]);
    assert_eq!(rc, 0, "{g0}");
    let reference = tmp.path().join("reference");
    copy_tree(&pristine, &reference);
    let started = Instant::now();
    let (rc, g1) = import(&reference, &bundles[1]);
    let full = started.elapsed();
    assert_eq!(rc, 0, "{g1}");

    let trials = if std::env::var_os("OUK_LONG_TESTS").is_some() {
        200
    } else {
        10
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4242);
    let (mut killed, mut finished) = (0, 0);
    for trial in 0..trials {
        let root = tmp.path().join(format!("trial{trial}"));
        copy_tree(&pristine, &root);
        let delay = full.mul_f64(rng.random_range(0.0..1.1));
        let mut child = Command::new(ouk())
            .arg("--root")
            .arg(&root)
            .args(["-q", "kit", "import"])
            .arg(&bundles[1])
            .arg("--trust-key")
            .arg(&pub_key)
            .args(["--free-margin", "0", "--max-kit-age", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        if child.wait().unwrap().code() == Some(0) {
            finished += 1;
        } else {
            killed += 1;
        }
        let (rc, fsck) = run_json(&root, &["--wait", "store", "fsck"]);
        assert_eq!(rc, 0, "trial {trial} ({delay:?}): {fsck}");
        let current = check_current_complete(&root).expect("a current generation survives");
        assert!(
            current == g0["generation"] || current == g1["generation"],
            "trial {trial}: {current}"
        );
        let (rc, again) = import(&root, &bundles[1]);
        assert_eq!(rc, 0, "trial {trial}: re-run: {again}");
        assert_eq!(
            check_current_complete(&root).map(serde_json::Value::String),
            Some(g1["generation"].clone())
        );
        assert_eq!(
            std::fs::read_dir(root.join("staging")).unwrap().count(),
            0,
            "staging cleaned"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!(
        "import crash trials: {trials}, killed mid-run: {killed}, finished before the kill: {finished}"
    );
    assert!(killed > 0);
}
