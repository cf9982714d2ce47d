//! The feed changes a delta keeps beside it (issue 23, round 3): `delta make` declares
//! them in the signed header (rows, SHA-256, size) and keeps `<delta>.feeds-changes.jsonl`
//! only when a row changed; `delta show` and `kit inspect` refuse a kept file that is not
//! the declared one (a digest failure, not a wrong answer); `kit split` and `serve`/`pull`
//! carry it; the bundle has no `delta/` directory entry and still applies; `kit inspect`
//! counts the files the host derives.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::{Kit, import, make_delta};
use common::*;

struct Pair {
    dir: PathBuf,
    k0: PathBuf,
    k1: PathBuf,
}

fn pair(name: &str) -> Pair {
    let dir = std::env::temp_dir().join(format!("ouk-feedchg-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let k0 = build_signed_kit(&small_tree(&dir, 0), "2025.10.0", &dir.join("kits0"));
    let k1 = build_signed_kit(&small_tree(&dir, 1), "2025.10.1", &dir.join("kits1"));
    Pair { dir, k0, k1 }
}

fn header(delta: &Path) -> serde_json::Value {
    let d = Kit::load(delta);
    serde_json::from_slice(d.data(d.member("delta/delta.json").unwrap())).unwrap()
}

fn kept(delta: &Path) -> PathBuf {
    PathBuf::from(format!("{}.feeds-changes.jsonl", delta.display()))
}

fn show(dir: &Path, delta: &Path) -> (i32, serde_json::Value) {
    run_json(dir, &["delta", "show", delta.to_str().unwrap()])
}

#[test]
fn the_kept_feed_changes_are_declared_by_the_header_and_a_tampered_file_is_refused() {
    let p = pair("tamper");
    let delta = make_delta(
        &p.k0,
        &p.k1,
        &p.dir.join("d/stella-ouk-2025-10-01.delta.tgz"),
    );
    let h = header(&delta);
    let declared = &h["feedChanges"];
    let bytes = fs::read(kept(&delta)).expect("rows changed: the file is kept");
    assert_eq!(declared["size"], bytes.len() as u64, "{h}");
    assert_eq!(declared["sha256"], sha256_file(&kept(&delta)), "{h}");
    let rows = declared["rows"].as_u64().unwrap();
    assert!(rows > 0, "{h}");

    let (rc, v) = show(&p.dir, &delta);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["feeds"]["recorded"], true, "{v}");
    assert_eq!(v["feeds"]["rows"].as_array().unwrap().len() as u64, rows);

    // One byte of one row changed, the file still well-formed: refused, not shown.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let tampered = text.replacen("\"modified\"", "\"withdrawn\"", 1);
    let tampered = if tampered == text {
        // (Whatever the first row's change is, another id is another answer.)
        let at = text.rfind("\"id\":\"").unwrap() + 6;
        let mut b = bytes.clone();
        b[at] = if b[at] == b'X' { b'Y' } else { b'X' };
        String::from_utf8(b).unwrap()
    } else {
        tampered
    };
    assert_ne!(tampered.as_bytes(), &bytes[..]);
    fs::write(kept(&delta), &tampered).unwrap();
    let o = run(&p.dir, &["delta", "show", delta.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "a digest failure: {err}");
    assert!(err.contains("feeds-changes.jsonl"), "{err}");
    // kit inspect reads the same file the same way.
    let o = run(&p.dir, &["kit", "inspect", delta.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    // A file of another length (a row appended) is refused too.
    fs::write(kept(&delta), [&bytes[..], b"{}\n"].concat()).unwrap();
    let (rc, v) = show(&p.dir, &delta);
    assert_eq!(rc, 2, "{v}");

    // Gone (carried without it): shown as not here, with the declared count.
    fs::remove_file(kept(&delta)).unwrap();
    let (rc, v) = show(&p.dir, &delta);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["feeds"]["recorded"], false, "{v}");
    let note = v["feeds"]["note"].as_str().unwrap();
    assert!(note.contains(&format!("{rows} row(s)")), "{note}");
    let _ = fs::remove_dir_all(&p.dir);
}

#[test]
fn no_file_is_kept_when_no_row_changed_and_the_bundle_has_no_directory_entry() {
    let p = pair("none");
    // The same tree as another version: no feed row changes.
    let k0b = build_signed_kit(&small_tree(&p.dir, 0), "2025.10.5", &p.dir.join("kits0b"));
    let delta = make_delta(
        &p.k0,
        &k0b,
        &p.dir.join("d/stella-ouk-2025-10-05.delta.tgz"),
    );
    let h = header(&delta);
    assert_eq!(h["feedChanges"], serde_json::json!({"rows": 0}), "{h}");
    assert!(!kept(&delta).exists(), "nothing to keep");
    let (rc, v) = show(&p.dir, &delta);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["feeds"]["recorded"], true, "{v}");
    assert_eq!(v["feeds"]["rows"], serde_json::json!([]), "{v}");

    // No `delta/` entry: the header is the first entry, and the delta applies.
    let d = Kit::load(&delta);
    let names: Vec<&str> = d.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["delta/delta.json", "delta/payload.bin"],
        "{names:?}"
    );
    let root = trusted_root(&p.dir, "host");
    let (rc, r) = import(&root, &p.k0, &[]);
    assert_eq!(rc, 0, "{r}");
    let (rc, r) = import(&root, &delta, &[]);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["generation"], Kit::load(&k0b).generation.as_str(), "{r}");
    let _ = fs::remove_dir_all(&p.dir);
}

#[test]
fn inspect_counts_the_derived_files_and_split_and_pull_carry_the_kept_changes() {
    let p = pair("carry");
    let delta = make_delta(
        &p.k0,
        &p.k1,
        &p.dir.join("d/stella-ouk-2025-10-01.delta.tgz"),
    );
    let name = delta.file_name().unwrap().to_str().unwrap().to_string();
    let (rc, v) = run_json(&p.dir, &["kit", "inspect", delta.to_str().unwrap()]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["delta"]["summary"]["derived"], 1, "the feed index: {v}");
    assert!(v["delta"]["feedRows"].as_u64().unwrap() > 0, "{v}");
    let text = String::from_utf8(run(&p.dir, &["kit", "inspect", delta.to_str().unwrap()]).stdout)
        .unwrap();
    assert!(text.contains("(1 derived on the host)"), "{text}");

    // Through a split: the kept file travels, and inspect of the parts still checks it.
    let usb = p.dir.join("usb");
    let size = fs::metadata(&delta).unwrap().len();
    let o = run(
        &p.dir,
        &[
            "kit",
            "split",
            delta.to_str().unwrap(),
            "--max-size",
            &(size / 2 + 1).to_string(),
            "--output-dir",
            usb.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read(usb.join(format!("{name}.feeds-changes.jsonl"))).unwrap(),
        fs::read(kept(&delta)).unwrap()
    );
    let part = usb.join(format!("{name}.part001"));
    let (rc, v) = run_json(&p.dir, &["kit", "inspect", part.to_str().unwrap()]);
    assert_eq!(rc, 0, "{v}");
    assert!(v["delta"]["feedRows"].as_u64().unwrap() > 0, "{v}");

    // Through serve and pull: listed apart from the bundle's files, fetched, checked.
    let mut cmd = Command::new(ouk());
    cmd.arg("--root")
        .arg(p.dir.join("server-root"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-secrets",
            "--kits",
        ])
        .arg(delta.parent().unwrap())
        .env_remove("OUK_IMPORT_TOKEN")
        .env_remove("OUK_PULL_TOKEN");
    let s = start_serve(cmd, p.dir.join("serve.log"));
    let dest = p.dir.join("pulled");
    let o = Command::new(ouk())
        .arg("--root")
        .arg(p.dir.join("puller-root"))
        .args([
            "--json",
            "kit",
            "pull",
            "--kind",
            "delta",
            "--from",
            &s.base(),
        ])
        .arg("--destination")
        .arg(&dest)
        .arg("--key")
        .arg(common::hostile::fixture("fixture.pub"))
        .env_remove("OUK_PULL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read(dest.join(format!("{name}.feeds-changes.jsonl"))).unwrap(),
        fs::read(kept(&delta)).unwrap()
    );
    let (rc, v) = show(&p.dir, &dest.join(&name));
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["feeds"]["recorded"], true, "{v}");
    drop(s);
    let _ = fs::remove_dir_all(&p.dir);
}
