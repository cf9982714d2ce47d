//! End-to-end: `ouk kit split` and `ouk kit import` / `ouk kit verify` of a split kit.
//!
//! A split kit imports through the same pipeline as the whole bundle (same generation id,
//! signature check, idempotency); a missing, corrupted, reordered or truncated part is
//! refused with an error naming it, a non-zero exit, and `current` untouched.

mod common;

use std::fs;

use ouk_testdata::snapshot::changed;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

const V0: &str = "2025.10.0";
const V1: &str = "2025.10.1";

fn kit(dir: &Path, day: u32, version: &str) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        version,
        &dir.join(format!("dist-{version}")),
    )
}

fn import(root: &Path, bundle: &Path) -> (i32, serde_json::Value) {
    run_json(
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

/// `ouk --json kit split BUNDLE --max-size MAX --output-dir OUT`.
fn split(bundle: &Path, max: &str, out: &Path) -> (i32, serde_json::Value) {
    run_json(
        out,
        &[
            "kit",
            "split",
            bundle.to_str().unwrap(),
            "--max-size",
            max,
            "--output-dir",
            out.to_str().unwrap(),
        ],
    )
}

/// A max-size that cuts `bundle` into `n` parts.
fn max_for(bundle: &Path, n: u64) -> String {
    let size = fs::metadata(bundle).unwrap().len();
    size.div_ceil(n).to_string()
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn part(out: &Path, bundle: &Path, n: usize) -> PathBuf {
    out.join(format!("{}.part{n:03}", name_of(bundle)))
}

/// Copy a directory tree (a split set with its `manifest/` sidecar).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir` (bytes, inode, mtime): see [`ouk_testdata::snapshot`].
fn files(dir: &Path) -> ouk_testdata::snapshot::DirSnapshot {
    ouk_testdata::snapshot::snapshot(dir).unwrap()
}

fn error_of(v: &serde_json::Value) -> String {
    v["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_split_kit_imports_from_any_part_to_the_same_generation_as_the_whole_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let b0 = kit(tmp.path(), 0, V0);
    let usb = tmp.path().join("usb");
    let (rc, r) = split(&b0, &max_for(&b0, 4), &usb);
    assert_eq!(rc, 0, "{r}");
    let parts = r["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{r}");
    assert_eq!(r["sha256"], sha256_file(&b0));
    // The parts are the bundle, in order; each has a sha256sum sidecar; the bundle's
    // sidecars and manifest are next to them.
    let mut joined = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let path = part(&usb, &b0, i + 1);
        assert_eq!(p["path"], path.to_str().unwrap());
        joined.extend(fs::read(&path).unwrap());
        assert_eq!(
            fs::read_to_string(format!("{}.sha256", path.display())).unwrap(),
            format!("{}  {}\n", sha256_file(&path), name_of(&path))
        );
    }
    assert_eq!(joined, fs::read(&b0).unwrap());
    let name = name_of(&b0);
    for side in ["sha256", "sig", "metadata.json"] {
        assert_eq!(
            fs::read(usb.join(format!("{name}.{side}"))).unwrap(),
            fs::read(format!("{}.{side}", b0.display())).unwrap(),
            "{side}"
        );
    }
    assert!(usb.join("manifest/offline-manifest.json.jws").is_file());
    assert!(!usb.join(&name).exists(), "no reassembled bundle");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(usb.join(format!("{name}.parts.json"))).unwrap()).unwrap();
    assert_eq!(index["format"], "ouk-parts/1");
    assert_eq!(index["bundle"]["sha256"], sha256_file(&b0));

    // The whole kit on one host, the parts on others: one generation.
    let whole = trusted_root(tmp.path(), "whole");
    let (rc, w) = import(&whole, &b0);
    assert_eq!(rc, 0, "{w}");
    let from_first = trusted_root(tmp.path(), "first");
    let (rc, a) = import(&from_first, &part(&usb, &b0, 1));
    assert_eq!(rc, 0, "{a}");
    assert_eq!(a["outcome"], "activated");
    assert_eq!(a["generation"], w["generation"]);
    assert_eq!(a["bundleSha256"], w["bundleSha256"]);
    assert!(a["signedBy"].is_string(), "the signature was checked: {a}");
    assert_eq!(
        check_current_complete(&from_first).map(serde_json::Value::String),
        Some(w["generation"].clone())
    );
    assert_eq!(fs::read_dir(from_first.join("staging")).unwrap().count(), 0);
    let from_middle = trusted_root(tmp.path(), "middle");
    let (rc, m) = import(&from_middle, &part(&usb, &b0, 3));
    assert_eq!(rc, 0, "{m}");
    assert_eq!(m["generation"], w["generation"]);
    // Idempotent: again from another part, from the index, and the whole kit after parts.
    let (rc, again) = import(&from_first, &part(&usb, &b0, 2));
    assert_eq!((rc, again["outcome"].as_str()), (0, Some("already-active")));
    let (rc, again) = import(&from_first, &usb.join(format!("{name}.parts.json")));
    assert_eq!((rc, again["outcome"].as_str()), (0, Some("already-active")));
    let (rc, again) = import(&from_middle, &b0);
    assert_eq!((rc, again["outcome"].as_str()), (0, Some("already-active")));

    // `kit verify` reads the parts too.
    let o = run(
        tmp.path(),
        &[
            "kit",
            "verify",
            part(&usb, &b0, 4).to_str().unwrap(),
            "--key",
            fixture("fixture.pub").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("OK {}", sha256_file(&b0))));

    // An untrusted root refuses the parts exactly as it refuses the bundle.
    let untrusted = tmp.path().join("untrusted");
    let (rc, e) = import(&untrusted, &part(&usb, &b0, 1));
    assert_eq!(rc, 5, "{e}");
}

#[test]
fn split_output_is_deterministic_and_never_overwrites_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let b0 = kit(tmp.path(), 0, V0);
    let max = max_for(&b0, 3);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(split(&b0, &max, &a).0, 0);
    assert_eq!(split(&b0, &max, &b).0, 0);
    let list = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| name_of(&e.unwrap().path()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(&a), list(&b));
    for n in list(&a) {
        if a.join(&n).is_file() {
            assert_eq!(
                fs::read(a.join(&n)).unwrap(),
                fs::read(b.join(&n)).unwrap(),
                "{n}"
            );
        }
    }
    // Again into the same directory (even with another size): refused, nothing changed:
    // every part, sidecar and the index keep their bytes and stay the same file (inode and
    // mtime: not rewritten in place, not replaced by a rename), nothing added or removed.
    let before = files(&a);
    assert!(
        before.contains_key(&name_of(&part(&a, &b0, 3))),
        "{:?}",
        before.keys()
    );
    let (rc, e) = split(&b0, "1MiB", &a);
    assert_eq!(rc, 1, "{e}");
    assert!(error_of(&e).contains("exists"), "{e}");
    let after = files(&a);
    assert!(after == before, "rewritten: {:?}", changed(&before, &after));
    // Sizes with units, and the default (4 GiB - 1: one part for a small kit).
    let (rc, r) = split(&b0, "64KiB", &tmp.path().join("c"));
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["maxPartSize"], 65536);
    let o = run(
        tmp.path(),
        &[
            "--json",
            "kit",
            "split",
            b0.to_str().unwrap(),
            "--output-dir",
            tmp.path().join("d").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["maxPartSize"], 4u64 * 1024 * 1024 * 1024 - 1);
    assert_eq!(r["parts"].as_array().unwrap().len(), 1);
    let o = run(
        tmp.path(),
        &[
            "kit",
            "split",
            b0.to_str().unwrap(),
            "--max-size",
            "12XB",
            "--output-dir",
            "e",
        ],
    );
    assert_ne!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid size unit"));
}

/// A split set of V1 and a root with V0 active, for refusals.
struct Refusals {
    tmp: PathBuf,
    root: PathBuf,
    set: PathBuf,
    name: String,
}

impl Refusals {
    fn part(&self, dir: &Path, n: usize) -> PathBuf {
        dir.join(format!("{}.part{n:03}", self.name))
    }

    /// Damage a fresh copy of the set with `damage`, import it from part `import_part` and
    /// check the refusal: exit `want`, the error naming every one of `names`, `current`
    /// and staging unchanged.
    fn refused(
        &self,
        case: &str,
        import_part: usize,
        want: i32,
        names: &[&str],
        damage: impl FnOnce(&Path),
    ) -> serde_json::Value {
        let keep = check_current_complete(&self.root);
        assert!(keep.is_some());
        let dir = self.tmp.join(case);
        copy_dir(&self.set, &dir);
        damage(&dir);
        let (rc, e) = import(&self.root, &self.part(&dir, import_part));
        assert_eq!(rc, want, "{case}: {e}");
        let msg = error_of(&e);
        for n in names {
            assert!(msg.contains(n), "{case}: the error names {n:?}: {msg}");
        }
        assert_eq!(
            check_current_complete(&self.root),
            keep,
            "{case}: current unchanged"
        );
        assert_eq!(fs::read_dir(self.root.join("staging")).unwrap().count(), 0);
        e
    }
}

#[test]
fn missing_corrupted_reordered_and_truncated_parts_are_named_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let b0 = kit(tmp.path(), 0, V0);
    let (rc, r) = import(&root, &b0);
    assert_eq!(rc, 0, "{r}");
    let b1 = kit(tmp.path(), 1, V1);
    let set = tmp.path().join("set");
    let (rc, s) = split(&b1, &max_for(&b1, 4), &set);
    assert_eq!(rc, 0, "{s}");
    let name = name_of(&b1);
    let p = |dir: &Path, n: usize| dir.join(format!("{name}.part{n:03}"));
    let digest = |n: usize| s["parts"][n - 1]["sha256"].as_str().unwrap().to_string();
    let cases = Refusals {
        tmp: tmp.path().to_path_buf(),
        root: root.clone(),
        set: set.clone(),
        name: name.clone(),
    };

    // Missing: part 2 of 4 (imported from part 1), exit 11, named with what it should be.
    cases.refused(
        "missing",
        1,
        11,
        &[
            &format!("{name}.part002"),
            "part 2 of 4 is missing",
            &digest(2),
        ],
        |d| fs::remove_file(p(d, 2)).unwrap(),
    );

    // Corrupted: one bit in part 3, imported from part 4 -> exit 2, both digests.
    let e = cases.refused(
        "corrupted",
        4,
        2,
        &[&format!("{name}.part003"), "digest mismatch", &digest(3)],
        |d| {
            let mut b = fs::read(p(d, 3)).unwrap();
            b[1234] ^= 0x10;
            fs::write(p(d, 3), b).unwrap();
        },
    );
    assert!(error_of(&e).contains("re-copy it"), "{e}");
    // The refusal is quarantined, but a set whose digest does not match was never
    // authenticated (its signature is over the whole bundle): only the reason is kept,
    // saying why, not the index and parts (docs/security.md, "Quarantine fills the disk").
    let q: Vec<PathBuf> = fs::read_dir(root.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|q| name_of(q).contains("part004"))
        .collect();
    assert_eq!(q.len(), 1, "{q:?}");
    let kept: Vec<String> = fs::read_dir(&q[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ["reason.json"], "{q:?}");
    let reason: serde_json::Value =
        serde_json::from_slice(&fs::read(q[0].join("reason.json")).unwrap()).unwrap();
    assert_eq!(
        (reason["step"].as_str(), reason["code"].as_u64()),
        (Some("verify"), Some(2))
    );
    assert!(
        reason["notKept"]
            .as_str()
            .is_some_and(|w| w.contains("authenticated")),
        "{reason}"
    );

    // Reordered: parts 1 and 2 swapped by renaming (same size) -> exit 2, the hint says so.
    cases.refused(
        "reordered",
        2,
        2,
        &[
            &format!("{name}.part001"),
            "bytes of part 2",
            "out of order",
        ],
        |d| {
            let t = d.join("swap");
            fs::rename(p(d, 1), &t).unwrap();
            fs::rename(p(d, 2), p(d, 1)).unwrap();
            fs::rename(&t, p(d, 2)).unwrap();
        },
    );

    // Renamed: the last part under part 2's name and vice versa (other sizes) -> exit 2.
    cases.refused(
        "renamed",
        3,
        2,
        &[&format!("{name}.part002"), "bytes, expected"],
        |d| {
            let t = d.join("swap");
            fs::rename(p(d, 4), &t).unwrap();
            fs::rename(p(d, 2), p(d, 4)).unwrap();
            fs::rename(&t, p(d, 2)).unwrap();
        },
    );

    // Truncated: the last part cut short (an interrupted copy) -> exit 2, both sizes.
    let last_size = s["parts"][3]["size"].as_u64().unwrap();
    cases.refused(
        "truncated",
        2,
        2,
        &[
            &format!("{name}.part004"),
            &format!("has {} bytes, expected {last_size}", last_size - 100),
            "truncated",
        ],
        |d| {
            let b = fs::read(p(d, 4)).unwrap();
            fs::write(p(d, 4), &b[..b.len() - 100]).unwrap();
        },
    );

    // The index missing -> exit 11, named.
    cases.refused(
        "no-index",
        1,
        11,
        &[&format!("{name}.parts.json"), "missing"],
        |d| fs::remove_file(d.join(format!("{name}.parts.json"))).unwrap(),
    );

    // A forged index (a part's digest changed to match a corrupted part): the bundle's
    // signed digest still refuses it -> exit 2.
    cases.refused(
        "forged-index",
        1,
        2,
        &["could not verify bundle hash"],
        |d| {
            let ip = d.join(format!("{name}.parts.json"));
            let mut index: serde_json::Value =
                serde_json::from_slice(&fs::read(&ip).unwrap()).unwrap();
            let mut b = fs::read(p(d, 2)).unwrap();
            b[10] ^= 1;
            fs::write(p(d, 2), &b).unwrap();
            let new = sha256_file(&p(d, 2));
            index["parts"][1]["sha256"] = serde_json::Value::String(new);
            let mut whole = Vec::new();
            for n in 1..=4 {
                whole.extend(fs::read(p(d, n)).unwrap());
            }
            use sha2::Digest;
            index["bundle"]["sha256"] =
                serde_json::Value::String(hex::encode(sha2::Sha256::digest(&whole)));
            fs::write(&ip, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
        },
    );

    // And the intact set still imports.
    let (rc, ok) = import(&root, &p(&set, 1));
    assert_eq!(rc, 0, "{ok}");
    assert_eq!(ok["previous"], r["generation"]);
}

#[test]
fn a_split_delta_imports_like_the_whole_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let kits = tmp.path().join("kits");
    let k0 = build_signed_kit(&small_tree(tmp.path(), 0), V0, &kits);
    let k1 = build_signed_kit(&small_tree(tmp.path(), 1), V1, &kits);
    let d = tmp
        .path()
        .join("deltas")
        .join("stella-ouk-2025-10-24.delta.tgz");
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(&k0)
        .arg("--to")
        .arg(&k1)
        .arg("--output")
        .arg(&d)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let usb = tmp.path().join("usb");
    let (rc, s) = split(&d, &max_for(&d, 3), &usb);
    assert_eq!(rc, 0, "{s}");
    assert_eq!(s["parts"].as_array().unwrap().len(), 3);

    let full = trusted_root(tmp.path(), "full");
    assert_eq!(import(&full, &k1).0, 0);
    let host = trusted_root(tmp.path(), "host");
    assert_eq!(import(&host, &k0).0, 0);
    let (rc, r) = import(&host, &part(&usb, &d, 2));
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["outcome"], "activated");
    assert_eq!(
        check_current_complete(&host),
        check_current_complete(&full),
        "the split delta lands on the full kit's generation"
    );
    let (rc, again) = import(&host, &part(&usb, &d, 3));
    assert_eq!((rc, again["outcome"].as_str()), (0, Some("already-active")));

    // A corrupted delta part is refused like a corrupted kit part.
    let host2 = trusted_root(tmp.path(), "host2");
    assert_eq!(import(&host2, &k0).0, 0);
    let bad = tmp.path().join("bad");
    copy_dir(&usb, &bad);
    let p1 = part(&bad, &d, 1);
    let mut b = fs::read(&p1).unwrap();
    b[100] ^= 1;
    fs::write(&p1, b).unwrap();
    let keep = check_current_complete(&host2);
    let (rc, e) = import(&host2, &part(&bad, &d, 3));
    assert_eq!(rc, 2, "{e}");
    assert!(error_of(&e).contains(".delta.tgz.part001"), "{e}");
    assert_eq!(check_current_complete(&host2), keep);
}
