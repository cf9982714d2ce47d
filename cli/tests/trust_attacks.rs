//! Trust attacks after TUF's list (issue 6, suite 4), each a named test with its exit code:
//! wrong key (5), removed key (5), unsigned (5), a signature of another bundle (5),
//! rollback to an older version (8), replay of an old delta (8), a delta whose baseline the
//! host does not have (11), freeze: a kit older than the staleness window (8, "stale"; the
//! host reports itself stale), endless data: content past what the manifest or the delta
//! header declares (11).
//!
//! Every refusal is also checked to leave `current` where it was and staging empty.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::*;
use common::*;

/// Kits of days 0-2 (signed by the fixture key) and the deltas 0->1, 1->2, shared by the
/// tests of this file.
fn corpus(_: &Path) -> &'static Corpus {
    small_corpus()
}

/// A root that trusts the fixture key.
fn trusting(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    let o = run(
        &root,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    root
}

/// The bundle copied alone into `dir` with the given sidecars (name suffix, bytes).
fn alone(dir: &Path, kit: &Kit, sidecars: &[(&str, Vec<u8>)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join(kit.bundle.file_name().unwrap());
    fs::write(&p, &kit.gz).unwrap();
    for (ext, bytes) in sidecars {
        fs::write(format!("{}{ext}", p.display()), bytes).unwrap();
    }
    p
}

/// Refused with `want`, the message containing `msg`, `current` still `keep`, staging empty.
fn refused(root: &Path, r: (i32, serde_json::Value), want: i32, msg: &str, keep: Option<&str>) {
    let (rc, doc) = r;
    assert_eq!(rc, want, "{doc}");
    let m = doc["error"].as_str().unwrap_or_default();
    assert!(m.contains(msg), "message {m:?} lacks {msg:?}");
    assert_eq!(check_current_complete(root).as_deref(), keep);
    assert_eq!(fs::read_dir(root.join("staging")).unwrap().count(), 0);
}

#[test]
fn wrong_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let other = tmp.path().join("other");
    let o = Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(&other)
        .env("COSIGN_PASSWORD", "other")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let root = tmp.path().join("root");
    assert_eq!(
        code(&run(
            &root,
            &["trust", "add", &format!("{}.pub", other.display())]
        )),
        0
    );
    // Signed by the fixture key; the host trusts only the other one.
    refused(
        &root,
        import(&root, &c.k1.bundle, &[]),
        5,
        "not valid under any trusted key",
        None,
    );
    // The same through --trust-key of the wrong key.
    let fresh = tmp.path().join("fresh");
    refused(
        &fresh,
        import(
            &fresh,
            &c.k1.bundle,
            &["--trust-key", &format!("{}.pub", other.display())],
        ),
        5,
        "not valid",
        None,
    );
}

#[test]
fn removed_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    let (rc, r0) = import(&root, &c.k0.bundle, &[]);
    assert_eq!(rc, 0, "{r0}");
    let (_, list) = run_json(&root, &["trust", "list"]);
    let kid = list[0]["kid"].as_str().unwrap().to_string();
    assert_eq!(code(&run(&root, &["trust", "remove", &kid])), 0);
    let (_, list) = run_json(&root, &["trust", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    refused(
        &root,
        import(&root, &c.k1.bundle, &[]),
        5,
        "no trusted keys",
        Some(&c.k0.generation),
    );
}

#[test]
fn unsigned_kit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("release");
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7), &release).unwrap();
    let bundle = build_kit(&release, &tmp.path().join("dist"), "2025.10.0", false);
    assert!(!PathBuf::from(format!("{}.sig", bundle.display())).exists());
    // A host that trusts a key: no signature, refused.
    let root = trusting(tmp.path(), "root");
    refused(&root, import(&root, &bundle, &[]), 5, "unsigned", None);
    // A host that trusts nothing: refused unless --allow-unsigned is given explicitly.
    let bare = tmp.path().join("bare");
    refused(
        &bare,
        import(&bare, &bundle, &[]),
        5,
        "no trusted keys",
        None,
    );
    let (rc, r) = import(&bare, &bundle, &["--allow-unsigned"]);
    assert_eq!(rc, 0, "the explicit escape hatch works: {r}");
    assert_eq!(r["signedBy"], serde_json::Value::Null);
}

#[test]
fn signature_of_another_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    // Day-1 bytes with day-0's valid signature (and no digest sidecars to trip first).
    let b = alone(
        &tmp.path().join("swap"),
        &c.k1,
        &[(".sig", c.k0.sidecar("sig"))],
    );
    refused(
        &root,
        import(&root, &b, &[]),
        5,
        "not valid",
        Some(&c.k0.generation),
    );
    // And a delta with another delta's signature.
    let d = alone(
        &tmp.path().join("swap-delta"),
        &c.d01,
        &[(".sig", c.d12.sidecar("sig"))],
    );
    refused(
        &root,
        import(&root, &d, &[]),
        5,
        "not valid",
        Some(&c.k0.generation),
    );
}

#[test]
fn rollback_to_an_older_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    assert_eq!(import(&root, &c.k2.bundle, &[]).0, 0);
    // Validly signed, never imported here, but older than the active version.
    refused(
        &root,
        import(&root, &c.k1.bundle, &[]),
        8,
        "version not newer",
        Some(&c.k2.generation),
    );
    // A retained older generation too: a rollback needs --force-activate.
    refused(
        &root,
        import(&root, &c.k0.bundle, &[]),
        8,
        "version not newer",
        Some(&c.k2.generation),
    );
}

#[test]
fn replay_of_an_old_delta_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    assert_eq!(import(&root, &c.d01.bundle, &[]).0, 0);
    assert_eq!(import(&root, &c.d12.bundle, &[]).0, 0);
    assert_eq!(
        check_current_complete(&root).as_deref(),
        Some(c.k2.generation.as_str())
    );
    // d01's baseline (day 0) is still retained here, but its target is older than day 2.
    refused(
        &root,
        import(&root, &c.d01.bundle, &[]),
        8,
        "version not newer",
        Some(&c.k2.generation),
    );
}

#[test]
fn delta_whose_baseline_the_host_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    // d12 needs day 1, which this host never had.
    let (rc, e) = import(&root, &c.d12.bundle, &[]);
    let msg = e["error"].as_str().unwrap_or_default().to_string();
    refused(&root, (rc, e), 11, "does not have", Some(&c.k0.generation));
    assert!(
        msg.contains("2025.10.1") && msg.contains(&c.k1.generation),
        "the message names the baseline version and id: {msg}"
    );
}

#[test]
fn freeze_a_stale_kit_is_refused_and_the_host_reports_itself_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    // The testdata trees date from 2025-10-23: far older than the default 7-day window.
    let root = trusting(tmp.path(), "root");
    refused(
        &root,
        import(&root, &c.k0.bundle, &["--max-kit-age", "7"]),
        8,
        "stale",
        None,
    );
    // The default window is the same 7 days.
    let (rc, e) = run_json(
        &root,
        &[
            "--wait",
            "kit",
            "import",
            c.k0.bundle.to_str().unwrap(),
            "--free-margin",
            "0",
        ],
    );
    assert_eq!(rc, 8, "{e}");
    assert!(e["error"].as_str().unwrap().contains("stale"));
    // Configurable: a wide window accepts it, and then the host says it is stale.
    let (rc, _) = import(&root, &c.k0.bundle, &["--max-kit-age", "100000"]);
    assert_eq!(rc, 0);
    let (rc, st) = run_json(&root, &["--wait", "status"]);
    // A stale host is "not current" to a monitor: exit 9 (issue 21).
    assert_eq!(rc, 9, "{st}");
    assert_eq!(st["stale"], true, "{st}");
    assert_eq!(st["verdict"], "stale", "{st}");
    // A stale delta is refused the same way (its target manifest's createdAt).
    refused(
        &root,
        import(&root, &c.d01.bundle, &["--max-kit-age", "7"]),
        8,
        "stale",
        Some(&c.k0.generation),
    );
    // Control: a kit created now passes the default window and the host is fresh again.
    let release = tmp.path().join("release-fresh");
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7).on_day(5), &release).unwrap();
    let now = jiff_now();
    let out = tmp.path().join("fresh");
    let o = Command::new(ouk())
        .args([
            "kit",
            "build",
            "--version",
            "2025.10.5",
            "--channel",
            "edge",
            "--created-at",
            &now,
            "--release-dir",
        ])
        .arg(&release)
        .arg("--output-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let fresh = out.join("stella-ops-offline-kit-2025.10.5-edge.tar.gz");
    let (rc, r) = run_json(
        &root,
        &[
            "--wait",
            "kit",
            "import",
            fresh.to_str().unwrap(),
            "--free-margin",
            "0",
        ],
    );
    assert_eq!(rc, 0, "{r}");
    let (_, st) = run_json(&root, &["--wait", "status"]);
    assert_eq!(st["stale"], false, "{st}");
}

/// Now as RFC 3339 UTC, from `date` (no time crate in the test dependencies).
fn jiff_now() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A kit whose file carries more bytes than the manifest declares, validly signed: refused
/// at that entry's header, before its data is copied.
#[test]
fn endless_data_in_a_kit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let root = trusting(tmp.path(), "root");
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    let files = c.k1.files();
    let i = files[files.len() / 2];
    let m = &c.k1.members[i];
    let mut data = c.k1.data(m).to_vec();
    data.extend(std::iter::repeat_n(b'A', 64 << 20));
    let gz = gzip(&Kit::assemble(&c.k1.with_data(i, &data)));
    let dir = tmp.path().join("endless");
    fs::create_dir_all(&dir).unwrap();
    let b = dir.join(c.k1.bundle.file_name().unwrap());
    fs::write(&b, &gz).unwrap();
    fs::write(format!("{}.sig", b.display()), sign(&gz)).unwrap();
    let (rc, e) = import(&root, &b, &[]);
    assert_eq!(e["error"].as_str().map(|_| ()), Some(()), "{e}");
    refused(&root, (rc, e), 11, "more than the", Some(&c.k0.generation));
}

/// A delta whose payload runs past the size its header declares (the header is covered by
/// the delta's valid signature): refused with 11 at its payload, within the declared size
/// (the root lives on a 64 MiB filesystem; a payload inflated to 256 MiB would fill it and
/// fail with 12 instead).
#[test]
fn endless_data_in_a_delta_is_refused_at_the_declared_size() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let fs_ = SmallFs::new(tmp.path(), 64 << 20, "");
    let root = fs_.mnt.join("root");
    assert_eq!(
        code(&run(
            &root,
            &["trust", "add", fixture("fixture.pub").to_str().unwrap()]
        )),
        0
    );
    assert_eq!(import(&root, &c.k0.bundle, &[]).0, 0);
    let dir = tmp.path().join("endless");
    fs::create_dir_all(&dir).unwrap();
    let b = dir.join(c.d01.bundle.file_name().unwrap());
    {
        let mut w = gz_writer(std::io::BufWriter::new(fs::File::create(&b).unwrap()));
        let p = c.d01.member("delta/payload.bin").unwrap();
        let extra: u64 = 256 << 20;
        for m in &c.d01.members {
            if m.name == "delta/payload.bin" {
                w.write_all(&tar::header(
                    b"delta/payload.bin",
                    b'0',
                    0o644,
                    p.size + extra,
                    b"",
                ))
                .unwrap();
                w.write_all(c.d01.data(p)).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..(extra >> 20) {
                    w.write_all(&zeros).unwrap();
                }
                w.write_all(&vec![0u8; tar::padding(p.size + extra)])
                    .unwrap();
            } else {
                w.write_all(c.d01.raw(m)).unwrap();
            }
        }
        w.write_all(&tar::end()).unwrap();
        w.finish().unwrap();
    }
    let gz = fs::read(&b).unwrap();
    fs::write(format!("{}.sig", b.display()), sign(&gz)).unwrap();
    let (rc, e) = import(&root, &b, &[]);
    refused(&root, (rc, e), 11, "payload", Some(&c.k0.generation));
}
