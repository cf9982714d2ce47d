//! End-to-end: the quarantine of refused imports — what it keeps, its cap, and
//! `ouk quarantine list|show|clean`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn kit(dir: &Path, day: u32, version: &str) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        version,
        &dir.join(format!("dist-{version}")),
    )
}

/// `ouk --json kit import BUNDLE` with `extra` global flags and `env`.
fn import_with(
    root: &Path,
    bundle: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, serde_json::Value) {
    let mut args = vec![
        "--json",
        "kit",
        "import",
        bundle.to_str().unwrap(),
        "--free-margin",
        "0",
        "--max-kit-age",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(ouk())
        .arg("--root")
        .arg(root)
        .args(&args)
        .env_remove("OUK_ROOT")
        .env_remove("OUK_QUARANTINE_MAX_ENTRIES")
        .env_remove("OUK_QUARANTINE_MAX_SIZE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    json_output(&args, &out)
}

/// Entry directories, by name.
fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn files_of(root: &Path, entry: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("quarantine").join(entry))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn reason(root: &Path, entry: &str) -> serde_json::Value {
    serde_json::from_slice(
        &fs::read(root.join("quarantine").join(entry).join("reason.json")).unwrap(),
    )
    .unwrap()
}

/// Anyone who can hand the importer a file (a token holder of the import API, say) could
/// fill the disk with junk: every refused input used to be kept whole, even one refused at
/// the signature step. Such an input is unauthenticated; only the reason is kept now, and
/// it says why the input was not.
#[test]
fn junk_refused_before_its_signature_was_checked_keeps_only_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let junk_dir = tmp.path().join("junk");
    fs::create_dir(&junk_dir).unwrap();
    let junk: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();

    // No signature that verifies: exit 5 at step verify.
    let unsigned = junk_dir.join("junk.tar.gz");
    fs::write(&unsigned, &junk).unwrap();
    let (rc, e) = import_with(&root, &unsigned, &[], &[]);
    assert_eq!(rc, 5, "{e}");
    // A recorded digest that does not match: exit 2 at step verify.
    let damaged = junk_dir.join("damaged.tar.gz");
    fs::write(&damaged, &junk).unwrap();
    fs::write(
        junk_dir.join("damaged.tar.gz.sha256"),
        format!("{}  damaged.tar.gz\n", "ab".repeat(32)),
    )
    .unwrap();
    let (rc, e) = import_with(&root, &damaged, &[], &[]);
    assert_eq!(rc, 2, "{e}");

    let q = entries(&root);
    assert_eq!(q.len(), 2, "{q:?}");
    for (entry, code) in [("junk.tar.gz", 5), ("damaged.tar.gz", 2)] {
        let name = q.iter().find(|n| n.ends_with(entry)).unwrap();
        assert_eq!(files_of(&root, name), ["reason.json"], "{name}");
        let r = reason(&root, name);
        assert_eq!(
            (r["step"].as_str(), r["code"].as_u64()),
            (Some("verify"), Some(code))
        );
        assert_eq!(r["kept"], serde_json::json!([]), "{r}");
        let why = r["notKept"].as_str().unwrap_or_default();
        assert!(why.contains("authenticated"), "{r}");
    }
    // The inputs themselves are untouched.
    assert_eq!(fs::read(&unsigned).unwrap(), junk);
}

/// The quarantine holds at most N entries and SIZE bytes (flags or environment), the
/// oldest dropped first; a refused input larger than the cap keeps only its reason. A
/// signed input refused after its signature was checked is still kept within the cap.
/// Then list, show and clean.
#[test]
fn the_quarantine_is_capped_oldest_first_and_listed_shown_and_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, "2025.10.0");
    let b1 = kit(tmp.path(), 1, "2025.10.1");
    let (rc, r) = import_with(&root, &b1, &[], &[]);
    assert_eq!(rc, 0, "{r}");
    let bundle_name = b0.file_name().unwrap().to_str().unwrap().to_string();
    let size = fs::metadata(&b0).unwrap().len();

    // Signed, verified, refused by policy (not newer): kept, up to 3 entries; each new
    // refusal past that drops the oldest.
    let mut before: Vec<String> = Vec::new();
    for i in 0..5 {
        let (rc, e) = import_with(&root, &b0, &["--quarantine-max-entries", "3"], &[]);
        assert_eq!(rc, 8, "{e}");
        let now = listed_names(&root);
        assert_eq!(now.len(), (i + 1).min(3), "{now:?}");
        let kept_from_before = if i < 3 { &before[..] } else { &before[1..] };
        assert_eq!(
            &now[..now.len() - 1],
            kept_from_before,
            "{before:?} -> {now:?}"
        );
        before = now;
    }
    let (rc, list) = run_json(&root, &["quarantine", "list"]);
    assert_eq!(rc, 0, "{list}");
    assert_eq!(list["count"], 3, "{list}");
    assert_eq!(list["limits"]["maxEntries"], 32, "{list}");
    for e in list["entries"].as_array().unwrap() {
        assert_eq!(e["step"], "policy");
        assert_eq!(e["exitCode"], 8);
        assert_eq!(e["files"][0]["name"], bundle_name.as_str(), "{e}");
        assert!(e["notKept"].is_null(), "{e}");
    }

    // Bytes: room for one bundle and a half -> the older bundles go.
    let cap = (size + size / 2).to_string();
    let (rc, _) = import_with(&root, &b0, &[], &[("OUK_QUARANTINE_MAX_SIZE", &cap)]);
    assert_eq!(rc, 8);
    let q = entries(&root);
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(files_of(&root, &q[0]).contains(&bundle_name));
    // Smaller than the bundle: only the reason, saying why.
    let cap = (size / 2).to_string();
    let (rc, _) = import_with(&root, &b0, &["--quarantine-max-size", &cap], &[]);
    assert_eq!(rc, 8);
    let q = entries(&root);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(files_of(&root, &q[0]), ["reason.json"]);
    let r = reason(&root, &q[0]);
    assert!(
        r["notKept"]
            .as_str()
            .unwrap_or_default()
            .contains("more than the quarantine may hold"),
        "{r}"
    );
    // The count from the environment.
    for _ in 0..3 {
        let (rc, _) = import_with(&root, &b0, &[], &[("OUK_QUARANTINE_MAX_ENTRIES", "2")]);
        assert_eq!(rc, 8);
    }
    assert_eq!(entries(&root).len(), 2);

    // show: the whole reason and what was kept.
    let newest = listed_names(&root).pop().unwrap();
    let (rc, shown) = run_json(&root, &["quarantine", "show", &newest]);
    assert_eq!(rc, 0, "{shown}");
    assert_eq!(shown["entry"]["name"], newest.as_str());
    assert_eq!(shown["reason"]["step"], "policy");
    assert!(
        shown["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("2025.10.0")
    );
    let text = run(&root, &["quarantine", "show", &newest]);
    assert_eq!(code(&text), 0);
    assert!(String::from_utf8_lossy(&text.stdout).contains("policy"));
    // Names are entry names, never paths; unknown ones are a clear error.
    for (bad, says) in [
        ("../trust", "not a quarantine entry name"),
        ("a/b", "not a quarantine entry name"),
        ("nope", "no quarantine entry"),
    ] {
        let (rc, e) = run_json(&root, &["quarantine", "show", bad]);
        assert_eq!(rc, 1, "{bad}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{bad}: {e}");
        let (rc, e) = run_json(&root, &["quarantine", "clean", bad]);
        assert_eq!(rc, 1, "{bad}: {e}");
    }
    assert!(
        root.join("trust").is_dir(),
        "nothing outside the quarantine was touched"
    );

    // clean NAME removes that entry; clean applies the cap; clean --all empties it.
    let (rc, c) = run_json(&root, &["quarantine", "clean", &newest]);
    assert_eq!(rc, 0, "{c}");
    assert_eq!(c["removed"], serde_json::json!([newest]));
    assert_eq!(c["remaining"], 1);
    for _ in 0..2 {
        assert_eq!(import_with(&root, &b0, &[], &[]).0, 8);
    }
    assert_eq!(entries(&root).len(), 3);
    let oldest = listed_names(&root).remove(0);
    let (rc, c) = run_json(
        &root,
        &["quarantine", "clean", "--quarantine-max-entries", "2"],
    );
    assert_eq!(rc, 0, "{c}");
    assert_eq!(c["removed"], serde_json::json!([oldest]), "{c}");
    assert_eq!(c["remaining"], 2);
    let (rc, c) = run_json(&root, &["quarantine", "clean", "--all"]);
    assert_eq!(rc, 0, "{c}");
    assert_eq!(c["remaining"], 0);
    assert!(entries(&root).is_empty());
    let (rc, list) = run_json(&root, &["quarantine", "list"]);
    assert_eq!((rc, list["count"].as_u64()), (0, Some(0)), "{list}");
    // Nothing else was disturbed.
    assert!(check_current_complete(&root).is_some());
}

fn listed_names(root: &Path) -> Vec<String> {
    let (rc, list) = run_json(root, &["quarantine", "list"]);
    assert_eq!(rc, 0, "{list}");
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}
