//! `--progress json`: long work reports itself as one JSON event per line on stderr, for a
//! script or a UI that drives ouk; `--progress none` and a pipe print nothing of it. (The
//! bar on a terminal is tested through a pty in `transport_cli.rs`.)

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The JSON events among stderr's lines (other lines are notes).
fn events(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// The phases the events name, in order.
fn phases(ev: &[serde_json::Value]) -> Vec<&str> {
    ev.iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["phase"].as_str().unwrap_or(""))
        .collect()
}

/// The total a phase's `phase` event announced.
fn total_of(ev: &[serde_json::Value], phase: &str) -> Option<u64> {
    ev.iter()
        .find(|e| e["phase"] == phase && e["event"] == "phase")
        .and_then(|e| e["total"].as_u64())
}

/// The most a phase's progress events counted.
fn most_done(ev: &[serde_json::Value], phase: &str) -> Option<u64> {
    ev.iter()
        .filter(|e| e["phase"] == phase && e["event"] == "progress")
        .filter_map(|e| e["done"].as_u64())
        .max()
}

fn import(root: &Path, kit: &Path, progress: &[&str]) -> std::process::Output {
    Command::new(ouk())
        .arg("--root")
        .arg(root)
        .args(progress)
        .args(["kit", "import", "--max-kit-age", "0"])
        .arg(kit)
        .env_remove("OUK_PROGRESS")
        .output()
        .expect("run ouk kit import")
}

#[test]
fn an_import_reports_json_progress_events_that_add_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let kit = build_signed_kit(
        &small_tree(tmp.path(), 0),
        "2025.10.0",
        &tmp.path().join("dist"),
    );
    let size = std::fs::metadata(&kit).expect("kit").len();

    let root = trusted_root(tmp.path(), "json");
    let o = import(&root, &kit, &["--progress", "json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let ev = events(&o.stderr);
    assert!(
        !ev.is_empty(),
        "no events: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for e in &ev {
        assert_eq!(e["operation"], "import", "{e}");
        assert!(
            ["phase", "progress"].contains(&e["event"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(
            ["bytes", "files"].contains(&e["unit"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(e["phase"].as_str().is_some_and(|p| !p.is_empty()), "{e}");
        let done = e["done"].as_u64().expect("done");
        if let Some(total) = e["total"].as_u64() {
            assert!(done <= total, "more done than its total: {e}");
        }
    }
    // Within each phase the count only grows; some phase counts at least the bundle's bytes
    // (it is read once, whole).
    let mut last: Option<(String, u64)> = None;
    let mut most = 0;
    for e in &ev {
        let phase = e["phase"].as_str().unwrap().to_string();
        let done = e["done"].as_u64().unwrap();
        if let Some((p, d)) = &last
            && *p == phase
            && e["event"] == "progress"
        {
            assert!(done >= *d, "the count went back in {phase}: {ev:?}");
        }
        if e["unit"] == "bytes" {
            most = most.max(done);
        }
        last = Some((phase, done));
    }
    assert!(
        most >= size,
        "no phase counted the bundle's {size} bytes: {ev:?}"
    );

    // The same import elsewhere with `--progress none`, and with the default on a pipe:
    // no events, no bar.
    for (name, flags) in [("none", &["--progress", "none"][..]), ("pipe", &[][..])] {
        let root = trusted_root(tmp.path(), name);
        let o = import(&root, &kit, flags);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        assert!(events(&o.stderr).is_empty(), "{name}: events printed");
        assert!(
            !o.stderr.contains(&b'\r') && !o.stderr.contains(&0x1b),
            "{name}: a bar was drawn on a pipe: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_build_reports_its_phases_with_their_totals_known() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = small_tree(tmp.path(), 0);
    let o = Command::new(ouk())
        .args([
            "--progress",
            "json",
            "kit",
            "build",
            "--version",
            "2025.10.0",
        ])
        .args(["--channel", "edge", "--release-dir"])
        .arg(&tree)
        .arg("--output-dir")
        .arg(tmp.path().join("dist"))
        .env_remove("OUK_PROGRESS")
        .output()
        .expect("run ouk kit build");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let ev = events(&o.stderr);
    assert_eq!(phases(&ev), ["hash", "feeds", "write"], "{ev:?}");
    let hash_total = ev[0]["total"].as_u64().expect("the hash phase has a total");
    assert_eq!(most_done(&ev, "hash"), Some(hash_total), "{ev:?}");
    // The write phase counts the content going into the bundle against its total (so the
    // bar has a percent and an ETA), and ends at it.
    let write_total = total_of(&ev, "write").expect("the write phase has a total");
    assert!(write_total >= hash_total, "{ev:?}");
    assert_eq!(most_done(&ev, "write"), Some(write_total), "{ev:?}");
}

#[test]
fn a_delta_make_reports_its_phases() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = build_signed_kit(
        &small_tree(tmp.path(), 0),
        "2025.10.0",
        &tmp.path().join("d0"),
    );
    let k1 = build_signed_kit(
        &small_tree(tmp.path(), 1),
        "2025.10.1",
        &tmp.path().join("d1"),
    );
    let o = Command::new(ouk())
        .args(["--progress", "json", "delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(tmp.path().join("d.delta.tgz"))
        .env_remove("OUK_PROGRESS")
        .output()
        .expect("run ouk delta make");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let ev = events(&o.stderr);
    assert_eq!(phases(&ev), ["baseline", "target", "encode"], "{ev:?}");
    for (phase, kit) in [("baseline", &k0), ("target", &k1)] {
        let size = std::fs::metadata(kit).expect("kit").len();
        assert_eq!(most_done(&ev, phase), Some(size), "{phase}: {ev:?}");
    }
    // The planner counts the changed files' bytes against the encode phase's total.
    let encode_total = total_of(&ev, "encode").expect("the encode phase has a total");
    assert!(encode_total > 0, "{ev:?}");
    assert_eq!(most_done(&ev, "encode"), Some(encode_total), "{ev:?}");
    assert!(ev.iter().all(|e| e["operation"] == "delta make"), "{ev:?}");
}
