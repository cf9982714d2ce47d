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
        match outcome(&status) {
            Outcome::Finished => finished += 1,
            Outcome::Killed => killed += 1,
            Outcome::FailedByItself => {
                panic!("trial {trial} ({delay:?}): the ingest failed by itself: {status}")
            }
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

/// How a child the crash loop sent SIGKILL to ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Exit 0: it finished before the kill arrived.
    Finished,
    /// Ended by the SIGKILL.
    Killed,
    /// Any other end: a non-zero exit (or another signal) of its own. No exit code is an
    /// expected outcome of these runs: the root is a private copy nobody else locks, the
    /// input is valid and the disk is roomy. Counting it as "killed" would hide a crash
    /// that the fsck after it might not notice.
    FailedByItself,
}

fn outcome(status: &std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Finished,
        (None, Some(libc::SIGKILL)) => Outcome::Killed,
        _ => Outcome::FailedByItself,
    }
}

/// Run `cmd` (its stdout and stderr to files in `dir`), wait for exactly that child with
/// wait4(2), and return its exit code, its stderr and its own peak resident set in bytes.
/// RUSAGE_CHILDREN would be the maximum over every child the whole test binary ever
/// waited for (other tests' included), not this run's.
fn run_measured(mut cmd: Command, dir: &Path) -> (i32, String, u64) {
    let err_path = dir.join("measured.stderr");
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: both out-parameters are ours; rusage is plain data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let got = loop {
        // SAFETY: wait4 on our own child's pid (std's `Child` is never waited for, so the
        // pid is not reaped twice).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    assert!(
        libc::WIFEXITED(status),
        "the measured run did not exit (wait status {status:#x})"
    );
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    // ru_maxrss is in KiB on Linux.
    (
        libc::WEXITSTATUS(status),
        stderr,
        ru.ru_maxrss as u64 * 1024,
    )
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
    let mut cmd = Command::new(ouk());
    cmd.arg("--root")
        .arg(&root)
        .args(["--json", "store", "ingest", "--no-activate"])
        .arg(&file);
    let (rc, stderr, rss) = run_measured(cmd, tmp.path());
    assert_eq!(rc, 0, "{stderr}");
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
        let status = child.wait().unwrap();
        match outcome(&status) {
            Outcome::Finished => finished += 1,
            Outcome::Killed => killed += 1,
            Outcome::FailedByItself => {
                panic!("trial {trial} ({delay:?}): the import failed by itself: {status}")
            }
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
