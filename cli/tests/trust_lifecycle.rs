//! Trust that outlives a key (issue 25): a host's signed trust document, rotated, revoked,
//! renewed and countersigned through kits, end to end through the `ouk` binary.
//!
//! A "connected" root makes the trust documents (`ouk trust init/add/remove/revoke/renew`,
//! `ouk trust chain`) and kits carry them (`kit build --trust-chain`); hosts install the
//! first document (`trust init --from`) and catch up on import. Each attack of TUF's list
//! is refused with exit 5 and leaves the active generation and staging as they were.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::{fixture, import};
use common::*;

const PW: &str = "lifecycle";

/// A generated key pair: `<prefix>.key` / `.pub` and its kid.
struct Key {
    prefix: PathBuf,
    kid: String,
}

impl Key {
    fn private(&self) -> String {
        format!("{}.key", self.prefix.display())
    }
    fn public(&self) -> String {
        format!("{}.pub", self.prefix.display())
    }
}

fn keygen(dir: &Path, name: &str) -> Key {
    let prefix = dir.join("keys").join(name);
    let o = Command::new(ouk())
        .args(["--json", "key", "generate", "--output-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", PW)
        .output()
        .unwrap();
    let (rc, doc) = json_output(&["key", "generate"], &o);
    assert_eq!(rc, 0, "{doc}");
    Key {
        prefix,
        kid: doc["kid"].as_str().unwrap().to_string(),
    }
}

/// `ouk --root ROOT args... --signing-password PW` for a trust command, expecting `want`.
fn trust(root: &Path, args: &[&str], want: i32) -> String {
    let mut all = vec!["trust"];
    all.extend_from_slice(args);
    if args.contains(&"--signing-key") {
        all.extend(["--signing-password", PW]);
    }
    let o = run(root, &all);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), want, "ouk trust {args:?}: {err}");
    err
}

/// `ouk trust add NEW --role kits --role trust`, signed by each of `signers` (the current
/// trust threshold's keys), expected to succeed: the rotation most tests here start with.
fn rotate_in(root: &Path, new: &Key, signers: &[&Key]) {
    let public = new.public();
    let private: Vec<String> = signers.iter().map(|k| k.private()).collect();
    let mut args = vec!["add", &public, "--role", "kits", "--role", "trust"];
    for key in &private {
        args.extend(["--signing-key", key]);
    }
    trust(root, &args, 0);
}

/// A kit of a small tree for `day`, as `version`, signed by `keys` (the first with the
/// seed's `--cosign-key`/`--cosign-password` spelling), carrying `chain`.
fn kit(dir: &Path, day: u32, version: &str, keys: &[&Key], chain: Option<&Path>) -> PathBuf {
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let release = small_tree(dir, day);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("dist-{version}-{n}"));
    let mut cmd = Command::new(ouk());
    cmd.args(["kit", "build", "--version", version, "--channel", "edge"])
        .arg("--release-dir")
        .arg(&release)
        .arg("--output-dir")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", tree_epoch(&release));
    for (i, k) in keys.iter().enumerate() {
        cmd.arg(if i == 0 {
            "--cosign-key"
        } else {
            "--signing-key"
        })
        .arg(k.private());
    }
    cmd.args(["--cosign-password", PW]);
    if let Some(c) = chain {
        cmd.arg("--trust-chain").arg(c);
    }
    let o = cmd.output().unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz"))
}

/// `ouk trust chain --after AFTER` of the connected root, to a file.
fn chain(conn: &Path, after: u64, out: &Path) -> PathBuf {
    let o = run(
        conn,
        &[
            "trust",
            "chain",
            "--after",
            &after.to_string(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out.to_path_buf()
}

/// A host that installed `conn`'s version-1 document.
fn host(dir: &Path, name: &str, conn: &Path) -> PathBuf {
    let root = dir.join(name);
    let v1 = conn.join("trust/history/1.json");
    trust(&root, &["init", "--from", v1.to_str().unwrap()], 0);
    root
}

fn status(root: &Path) -> (i32, serde_json::Value) {
    run_json(root, &["trust", "status"])
}

/// Refused with exit 5, the message containing `msg`, `current` still `keep`, staging empty.
fn refused(root: &Path, r: (i32, serde_json::Value), msg: &str, keep: Option<&str>) {
    let (rc, doc) = r;
    assert_eq!(rc, 5, "{doc}");
    let m = doc["error"].as_str().unwrap_or_default();
    assert!(m.contains(msg), "message {m:?} lacks {msg:?}");
    assert_eq!(check_current_complete(root).as_deref(), keep);
    assert_eq!(fs::read_dir(root.join("staging")).unwrap().count(), 0);
}

fn imported(root: &Path, bundle: &Path) -> serde_json::Value {
    let (rc, doc) = import(root, bundle, &[]);
    assert_eq!(rc, 0, "{doc}");
    doc
}

/// A signed trust document made with the library (what an attacker holding some keys
/// can make, which `ouk trust` itself would refuse to write): `edit` applied to `host`'s
/// active document, version + 1, signed by `signers`. Returns a chain file with it.
fn forged(
    host: &Path,
    out: &Path,
    signers: &[&Key],
    edit: impl FnOnce(&mut ouk_trust::TrustDocument),
) -> PathBuf {
    let bytes = fs::read(host.join("trust/root.json")).unwrap();
    let env = ouk_trust::SignedDocument::parse(&bytes).unwrap();
    let mut doc =
        ouk_trust::TrustDocument::from_canonical_bytes(&env.payload_bytes().unwrap()).unwrap();
    doc.version += 1;
    edit(&mut doc);
    let keys: Vec<ouk_kit::sign::SigningKey> = signers
        .iter()
        .map(|k| {
            ouk_kit::sign::SigningKey::from_pem_file(Path::new(&k.private()), Some(PW.as_bytes()))
                .unwrap()
        })
        .collect();
    let p256: Vec<_> = keys.iter().map(|k| k.as_p256()).collect();
    let env = ouk_trust::SignedDocument::signed(&doc, &p256).unwrap();
    fs::write(out, serde_json::to_vec(&vec![env]).unwrap()).unwrap();
    out.to_path_buf()
}

fn public(k: &Key) -> ouk_trust::PublicKey {
    let v = ouk_kit::sign::VerifyingKey::from_pem_file(Path::new(&k.public())).unwrap();
    ouk_trust::PublicKey::from_p256(*v.as_p256())
}

#[test]
fn a_host_three_rotations_behind_catches_up_from_one_kit_and_revoked_keys_stay_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b, c) = (keygen(dir, "a"), keygen(dir, "b"), keygen(dir, "c"));
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    let host = host(dir, "host", &conn);
    let k0 = kit(dir, 0, "2025.10.0", &[&a], None);
    let r0 = imported(&host, &k0);
    let gen0 = r0["generation"].as_str().unwrap().to_string();
    // A kit signed by `a` before the rotation, imported only after it.
    let old_by_a = kit(dir, 2, "2025.10.5", &[&a], None);

    // Three rotations on the connected side: add b, revoke a, add c.
    let kb = b.private();
    rotate_in(&conn, &b, &[&a, &b]);
    trust(
        &conn,
        &["remove", &a.kid, "--revoke", "--signing-key", &kb],
        0,
    );
    rotate_in(&conn, &c, &[&b, &c]);
    let (_, s) = status(&conn);
    assert_eq!(s["version"], 4, "{s}");
    assert_eq!(s["revoked"]["keys"][0], a.kid.as_str());

    // One kit, signed by c only, carrying the whole chain.
    let full = chain(&conn, 0, &dir.join("chain.json"));
    let k1 = kit(dir, 1, "2025.10.1", &[&c], Some(&full));
    assert!(PathBuf::from(format!("{}.trust.json", k1.display())).is_file());
    let r1 = imported(&host, &k1);
    assert_eq!(r1["trustApplied"], serde_json::json!([2, 3, 4]), "{r1}");
    assert_eq!(r1["signedBy"], c.kid.as_str());
    let gen1 = r1["generation"].as_str().unwrap().to_string();
    assert_ne!(gen0, gen1);
    let (rc, s) = status(&host);
    assert_eq!(rc, 0);
    assert_eq!(
        (s["kind"].as_str(), s["version"].as_u64()),
        (Some("signed"), Some(4))
    );
    assert_eq!(s["revoked"]["keys"][0], a.kid.as_str());

    // The revoked key: neither the kit it signed before the revocation...
    refused(
        &host,
        import(&host, &old_by_a, &[]),
        "not valid",
        Some(&gen1),
    );
    // ...nor a new one, nor with the old chain replayed beside it.
    let replay = chain(&conn, 0, &dir.join("replay.json"));
    let text = fs::read_to_string(&replay).unwrap();
    let mut links: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    links.truncate(1); // version 2 only: `a` still trusted there
    fs::write(&replay, serde_json::to_vec(&links).unwrap()).unwrap();
    let new_by_a = kit(dir, 3, "2025.10.6", &[&a], Some(&replay));
    refused(
        &host,
        import(&host, &new_by_a, &[]),
        "not valid",
        Some(&gen1),
    );
    // Even when the operator names it with --trust-key.
    refused(
        &host,
        import(&host, &new_by_a, &["--trust-key", &a.public()]),
        "not valid",
        Some(&gen1),
    );
    assert_eq!(
        status(&host).1["version"],
        4,
        "a replayed document changes nothing"
    );
}

#[test]
fn chain_attacks_are_refused_with_exit_5() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b, x) = (keygen(dir, "a"), keygen(dir, "b"), keygen(dir, "x"));
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    let host = host(dir, "host", &conn);
    let gen0 = imported(&host, &kit(dir, 0, "2025.10.0", &[&a], None))["generation"]
        .as_str()
        .unwrap()
        .to_string();
    let kb = b.private();
    rotate_in(&conn, &b, &[&a, &b]);
    trust(&conn, &["remove", &a.kid, "--signing-key", &kb], 0);
    trust(&conn, &["renew", "--signing-key", &kb], 0);

    // Missing link: versions 3 and 4 without 2.
    let skip = chain(&conn, 2, &dir.join("skip.json"));
    let k = kit(dir, 1, "2025.10.1", &[&b], Some(&skip));
    refused(&host, import(&host, &k, &[]), "missing a link", Some(&gen0));

    // Old key only: version 2 rotating to x, signed by a alone (x did not sign it).
    let px = public(&x);
    let old_only = forged(&host, &dir.join("old-only.json"), &[&a], |d| {
        d.set_role(ouk_trust::Role::Kits, std::slice::from_ref(&px), 1);
        d.set_role(ouk_trust::Role::Trust, std::slice::from_ref(&px), 1);
    });
    let k = kit(dir, 1, "2025.10.1", &[&x], Some(&old_only));
    refused(&host, import(&host, &k, &[]), "required", Some(&gen0));
    // New key only: x signs its own promotion; the host's keys never agreed.
    let new_only = forged(&host, &dir.join("new-only.json"), &[&x], |d| {
        d.set_role(ouk_trust::Role::Kits, std::slice::from_ref(&px), 1);
        d.set_role(ouk_trust::Role::Trust, std::slice::from_ref(&px), 1);
    });
    let k = kit(dir, 1, "2025.10.1", &[&x], Some(&new_only));
    refused(&host, import(&host, &k, &[]), "required", Some(&gen0));
    // Nothing of it stuck.
    assert_eq!(status(&host).1["version"], 1);

    // The honest chain still works afterwards.
    let full = chain(&conn, 0, &dir.join("full.json"));
    let k = kit(dir, 1, "2025.10.1", &[&b], Some(&full));
    assert_eq!(
        imported(&host, &k)["trustApplied"],
        serde_json::json!([2, 3, 4])
    );
}

#[test]
fn below_threshold_and_a_compromised_key_in_a_threshold_of_two_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b, c, x) = (
        keygen(dir, "a"),
        keygen(dir, "b"),
        keygen(dir, "c"),
        keygen(dir, "x"),
    );
    let conn = dir.join("connected");
    // Trust changes need 2 of a, b, c; kits need 2 of them too.
    trust(
        &conn,
        &[
            "init",
            "--signing-key",
            &a.private(),
            "--signing-key",
            &b.private(),
            "--key",
            &c.public(),
            "--threshold",
            "2",
            "--kits-threshold",
            "2",
        ],
        0,
    );
    let host = host(dir, "host", &conn);
    // A kit signed by a stolen key alone (a) is refused; countersigned by b it imports.
    let k0 = kit(dir, 0, "2025.10.0", &[&a], None);
    refused(&host, import(&host, &k0, &[]), "2 required", None);
    let o = run(
        &host,
        &[
            "kit",
            "sign",
            k0.to_str().unwrap(),
            "--signing-key",
            &b.private(),
            "--signing-password",
            PW,
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let r0 = imported(&host, &k0);
    let gen0 = r0["generation"].as_str().unwrap().to_string();
    assert_eq!(
        r0["signedBy"].as_str().unwrap().split(',').count(),
        2,
        "{r0}"
    );
    // Built with two keys at once: imports directly.
    let k1 = kit(dir, 1, "2025.10.1", &[&b, &c], None);
    let gen1 = imported(&host, &k1)["generation"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(gen0, gen1);

    // The thief cannot rotate trust alone: `ouk trust` refuses to write it...
    let err = trust(
        &conn,
        &[
            "add",
            &x.public(),
            "--role",
            "trust",
            "--role",
            "kits",
            "--signing-key",
            &a.private(),
            "--signing-key",
            &x.private(),
        ],
        5,
    );
    assert!(err.contains("2 required"), "{err}");
    // ...and a host refuses the one forged with the library.
    let px = public(&x);
    let below = forged(&host, &dir.join("below.json"), &[&a, &x], |d| {
        d.set_role(ouk_trust::Role::Kits, std::slice::from_ref(&px), 1);
        d.set_role(ouk_trust::Role::Trust, std::slice::from_ref(&px), 1);
    });
    let k = kit(dir, 2, "2025.10.2", &[&x], Some(&below));
    refused(&host, import(&host, &k, &[]), "2 required", Some(&gen1));
    assert_eq!(status(&host).1["version"], 1);
}

#[test]
fn an_expired_trust_document_fails_closed_until_a_kit_renews_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = keygen(dir, "a");
    let conn = dir.join("connected");
    trust(
        &conn,
        &[
            "init",
            "--signing-key",
            &a.private(),
            "--issued-at",
            "2020-01-01T00:00:00Z",
            "--expires-at",
            "2021-01-01T00:00:00Z",
        ],
        0,
    );
    let host = host(dir, "host", &conn);
    let (rc, s) = status(&host);
    assert_eq!(rc, 5, "status says expired: {s}");
    assert_eq!(
        (s["expired"].as_bool(), s["clock"].as_str()),
        (Some(true), Some("ahead"))
    );
    let k0 = kit(dir, 0, "2025.10.0", &[&a], None);
    let (rc, doc) = import(&host, &k0, &[]);
    assert_eq!(rc, 5, "{doc}");
    let m = doc["error"].as_str().unwrap();
    assert!(m.contains("expired") && m.contains("carry a kit"), "{m}");
    assert_eq!(check_current_complete(&host), None);
    // The connected side renews; a kit carrying the renewal imports.
    trust(
        &conn,
        &[
            "renew",
            "--signing-key",
            &a.private(),
            "--expires-days",
            "30",
        ],
        0,
    );
    let renewal = chain(&conn, 1, &dir.join("renew.json"));
    let k0 = kit(dir, 0, "2025.10.0", &[&a], Some(&renewal));
    assert_eq!(imported(&host, &k0)["trustApplied"], serde_json::json!([2]));
    let (rc, s) = status(&host);
    assert_eq!(
        (rc, s["expired"].as_bool(), s["clock"].as_str()),
        (0, Some(false), Some("ok"))
    );

    // A clock far behind (a document issued in 2100) is reported.
    let future = dir.join("future");
    trust(
        &future,
        &[
            "init",
            "--signing-key",
            &a.private(),
            "--issued-at",
            "2100-01-01T00:00:00Z",
            "--expires-at",
            "2101-01-01T00:00:00Z",
        ],
        0,
    );
    let (_, s) = status(&future);
    assert_eq!(s["clock"], "behind", "{s}");
}

#[test]
fn a_revoked_kit_is_refused_whoever_signed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = keygen(dir, "a");
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    let host = host(dir, "host", &conn);
    let bad = kit(dir, 1, "2025.10.1", &[&a], None);
    let sha = sha256_file(&bad);
    trust(
        &conn,
        &["revoke", "--kit", &sha, "--signing-key", &a.private()],
        0,
    );
    let rev = chain(&conn, 1, &dir.join("revoke.json"));
    let k0 = kit(dir, 0, "2025.10.0", &[&a], Some(&rev));
    let gen0 = imported(&host, &k0)["generation"]
        .as_str()
        .unwrap()
        .to_string();
    refused(&host, import(&host, &bad, &[]), "revoked", Some(&gen0));
    refused(
        &host,
        import(&host, &bad, &["--allow-unsigned"]),
        "revoked",
        Some(&gen0),
    );
}

#[test]
fn a_flat_key_list_is_migrated_and_catches_up_from_a_kit_signed_by_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let b = keygen(dir, "b");
    let host = trusted_root(dir, "host");
    assert!(!host.join("trust/root.json").exists());
    // The fleet's connected side starts from the key the hosts already trust (fixture).
    let conn = dir.join("connected");
    let o = run(
        &conn,
        &[
            "trust",
            "init",
            "--signing-key",
            fixture("fixture.key").to_str().unwrap(),
            "--signing-password",
            "hello",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let k0 = build_signed_kit(&small_tree(dir, 0), "2025.10.0", &dir.join("dist0"));
    // Without --json the operator is told (a second flat host, imported in text mode).
    let text_host = trusted_root(dir, "text-host");
    let o = run(
        &text_host,
        &[
            "--wait",
            "kit",
            "import",
            k0.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "0",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("migrated the flat trust store"), "{err}");
    let r0 = imported(&host, &k0);
    assert_eq!(r0["trustMigrated"], true, "{r0}");
    let (_, s) = status(&host);
    assert_eq!(
        (s["kind"].as_str(), s["version"].as_u64()),
        (Some("local"), Some(1))
    );
    // The fleet rotates to b; the migrated host follows from one kit signed by b.
    // The fixture key's password is "hello", b's is PW: one signer per command.
    let o = Command::new(ouk())
        .arg("--root")
        .arg(&conn)
        .args([
            "trust",
            "add",
            &b.public(),
            "--role",
            "kits",
            "--role",
            "trust",
            "--signing-key",
            fixture("fixture.key").to_str().unwrap(),
        ])
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &conn,
        &[
            "trust",
            "remove",
            &common::hostile::signing_key().kid(),
            "--signing-key",
            &b.private(),
            "--signing-password",
            PW,
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let full = chain(&conn, 0, &dir.join("chain.json"));
    let k1 = kit(dir, 1, "2025.10.1", &[&b], Some(&full));
    let r1 = imported(&host, &k1);
    assert_eq!(r1["trustApplied"], serde_json::json!([2, 3]), "{r1}");
    let (_, s) = status(&host);
    assert_eq!(
        (s["kind"].as_str(), s["version"].as_u64()),
        (Some("signed"), Some(3))
    );
    // The old key no longer signs for this host.
    let k2 = build_signed_kit(&small_tree(dir, 2), "2025.10.2", &dir.join("dist2"));
    refused(
        &host,
        import(&host, &k2, &[]),
        "not valid",
        r1["generation"].as_str(),
    );
}

#[test]
fn a_delta_carries_a_rotation_and_needs_its_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b, c) = (keygen(dir, "a"), keygen(dir, "b"), keygen(dir, "c"));
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    let host = host(dir, "host", &conn);
    let k0 = kit(dir, 0, "2025.10.0", &[&a], None);
    let gen0 = imported(&host, &k0)["generation"]
        .as_str()
        .unwrap()
        .to_string();
    // Rotate to b and c, kits needing both.
    let kb = b.private();
    rotate_in(&conn, &b, &[&a, &b]);
    trust(
        &conn,
        &[
            "add",
            &c.public(),
            "--role",
            "kits",
            "--threshold",
            "2",
            "--signing-key",
            &kb,
        ],
        0,
    );
    trust(
        &conn,
        &[
            "remove",
            &a.kid,
            "--revoke",
            "--threshold",
            "2",
            "--role",
            "kits",
            "--signing-key",
            &kb,
        ],
        0,
    );
    let full = chain(&conn, 0, &dir.join("chain.json"));
    let k1 = kit(dir, 1, "2025.10.1", &[&b, &c], None);
    let delta = |name: &str, keys: &[&Key]| {
        let out = dir.join(name);
        let mut cmd = Command::new(ouk());
        cmd.args(["delta", "make", "--from"])
            .arg(&k0)
            .arg("--to")
            .arg(&k1)
            .arg("--output")
            .arg(&out)
            .arg("--trust-chain")
            .arg(&full)
            .args(["--time-budget", "86400", "--signing-password", PW]);
        for k in keys {
            cmd.arg("--signing-key").arg(k.private());
        }
        let o = cmd.output().unwrap();
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    // Signed by b alone: the chain applies, the delta is one signature short.
    let one = delta("one.delta.tgz", &[&b]);
    refused(&host, import(&host, &one, &[]), "2 required", Some(&gen0));
    assert_eq!(
        status(&host).1["version"],
        4,
        "the verified chain stands on its own"
    );
    // Signed by b and c: imports.
    let two = delta("two.delta.tgz", &[&b, &c]);
    let r = imported(&host, &two);
    assert_ne!(r["generation"].as_str(), Some(gen0.as_str()), "{r}");
    assert_eq!(r["signedBy"].as_str().unwrap().split(',').count(), 2, "{r}");
}

/// The chain and the signature set travel with the kit on every path it takes to a host: a
/// split onto USB parts, and a mirror (`mirror add`, `mirror export`). A host behind a
/// rotation catches up from the part, and from the exported copy.
#[test]
fn the_chain_and_countersignatures_survive_a_split_and_a_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b) = (keygen(dir, "a"), keygen(dir, "b"));
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    // Rotate: b joins for kits and trust, a is revoked.
    rotate_in(&conn, &b, &[&a, &b]);
    trust(
        &conn,
        &["remove", &a.kid, "--revoke", "--signing-key", &b.private()],
        0,
    );
    let full = chain(&conn, 0, &dir.join("chain.json"));
    let k1 = kit(dir, 1, "2025.10.1", &[&b], Some(&full));
    let name = k1.file_name().unwrap().to_str().unwrap().to_string();

    // Through a split.
    let usb = dir.join("usb");
    let size = fs::metadata(&k1).unwrap().len();
    let o = run(
        dir,
        &[
            "kit",
            "split",
            k1.to_str().unwrap(),
            "--max-size",
            &(size / 2 + 1).to_string(),
            "--output-dir",
            usb.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(usb.join(format!("{name}.trust.json")).is_file());
    let split_host = host(dir, "split-host", &conn);
    imported(&split_host, &usb.join(format!("{name}.part001")));
    let (_, s) = status(&split_host);
    assert_eq!(s["version"], 3, "the split kit brought the rotation: {s}");

    // Through a mirror: kept, and given back with the bundle.
    let mirror = dir.join("mirror");
    let (rc, v) = run_json(
        &mirror,
        &["mirror", "add", k1.to_str().unwrap(), "--allow-unsigned"],
    );
    assert_eq!(rc, 0, "{v}");
    let out = dir.join("exported");
    let (rc, v) = run_json(
        &mirror,
        &[
            "mirror",
            "export",
            "2025.10.1",
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{v}");
    for ext in ["trust.json", "sigs.json"] {
        let original = dir.join(k1.parent().unwrap()).join(format!("{name}.{ext}"));
        if original.is_file() {
            assert_eq!(
                fs::read(out.join(format!("{name}.{ext}"))).unwrap(),
                fs::read(&original).unwrap(),
                "{ext}"
            );
        }
    }
    let mirror_host = host(dir, "mirror-host", &conn);
    imported(&mirror_host, &out.join(&name));
    let (_, s) = status(&mirror_host);
    assert_eq!(
        s["version"], 3,
        "the exported kit brought the rotation: {s}"
    );
}

/// A kid is base64url, so about one in 64 starts with `-`: `trust remove` takes it as the
/// kid, not as an unknown option (exit 64). This one names no trusted key: removing it
/// changes nothing, and succeeds.
#[test]
fn a_kid_that_starts_with_a_dash_is_a_kid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = keygen(dir, "a");
    let conn = dir.join("connected");
    trust(&conn, &["init", "--signing-key", &a.private()], 0);
    let kid = "-RknTvLy98L40EY9gbw-7juyGMtoy2ZhMDT6JHQl0E0";
    let o = run(
        &conn,
        &[
            "trust",
            "remove",
            kid,
            "--signing-key",
            &a.private(),
            "--signing-password",
            PW,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), 0, "{err}");
}
