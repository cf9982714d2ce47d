//! End-to-end: the kit content features of `ouk kit build` and `ouk kit import` (Policy
//! Gateway bundle and its DPoP key, trust material, cold-start caches) and
//! `ouk authority check`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hostile::{Kit, gzip, tar};
use common::*;

const BUNDLE: &str = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";
const DPOP: &str = "secrets/policy-gateway/policy-gateway-dpop.pem";
const CONFIG: &str = "config/policy-gateway/policy-gateway.yaml";
const CERTS: &str = "certificates/russian_trusted_bundle.pem";
const AUTHORITY: &str = "etc/authority.yaml.sample";

/// An unsigned build of `release` into `out` with extra arguments.
fn build(release: &Path, out: &Path, extra: &[&str]) -> Output {
    build_unsigned(release, out, extra)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh copy of the small tree (tests change it).
fn tree(tmp: &Path) -> PathBuf {
    let release = small_tree(tmp, 0);
    let sha = |p: &str| {
        let d = sha256_file(&release.join(p));
        let name = Path::new(p)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        format!("{d}  {name}\n")
    };
    // The generator's bundle is valid as it stands; its sidecar matches.
    assert_eq!(
        fs::read_to_string(release.join(format!("{CERTS}.sha256"))).unwrap(),
        sha(CERTS)
    );
    release
}

/// Extract the bundle with GNU tar into a new directory.
fn untar(bundle: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let o = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(into)
        .output()
        .expect("GNU tar is needed for this test");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Rewrite a certificate file's sidecar so only the content check can object.
fn write_with_sidecar(release: &Path, rel: &str, bytes: &[u8]) {
    fs::write(release.join(rel), bytes).unwrap();
    let sc = release.join(format!("{rel}.sha256"));
    if sc.exists() {
        let name = Path::new(rel)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        fs::write(
            &sc,
            format!("{}  {name}\n", sha256_file(&release.join(rel))),
        )
        .unwrap();
    }
}

#[test]
fn policy_gateway_files_land_where_the_seed_says_with_modes_and_a_manifest_note() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let out = tmp.path().join("dist");
    let staging = tmp.path().join("staging");
    let o = build(
        &release,
        &out,
        &["--staging-dir", staging.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let x = tmp.path().join("x");
    untar(&out.join(BUNDLE), &x);
    // The configuration is copied from etc/ to config/policy-gateway/, mode 0644.
    assert_eq!(
        fs::read(x.join(CONFIG)).unwrap(),
        fs::read(release.join("etc/policy-gateway.yaml")).unwrap()
    );
    assert_eq!(mode(&x.join(CONFIG)), 0o644);
    assert_eq!(
        fs::read(staging.join(CONFIG)).unwrap(),
        fs::read(release.join("etc/policy-gateway.yaml")).unwrap()
    );
    // The key is carried at 0600, the guide is bundled.
    assert_eq!(mode(&x.join(DPOP)), 0o600);
    assert_eq!(
        fs::read(x.join(DPOP)).unwrap(),
        fs::read(release.join(DPOP)).unwrap()
    );
    assert!(x.join("docs/policy/gateway.md").is_file());
    // The manifest lists the copy and names the key in its notes.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest/offline-manifest.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&CONFIG));
    let notes = m["notes"].as_array().expect("manifest notes");
    let key_note = notes
        .iter()
        .find(|n| n["path"] == DPOP)
        .expect("a note naming the DPoP key");
    assert_eq!(key_note["topic"], "policy-gateway");
    assert!(key_note["text"].as_str().unwrap().contains("0600"));
    // The in-bundle manifest is the same one, and it imports.
    assert_eq!(
        fs::read(x.join("manifest/offline-manifest.json")).unwrap(),
        fs::read(out.join("manifest/offline-manifest.json")).unwrap()
    );
    let root = tmp.path().join("root");
    let (rc, r) = run_json(
        &root,
        &[
            "kit",
            "import",
            out.join(BUNDLE).to_str().unwrap(),
            "--allow-unsigned",
            "--max-kit-age",
            "0",
        ],
    );
    assert_eq!(rc, 0, "{r}");
    assert_eq!(mode(&root.join("current").join(DPOP)) & 0o077, 0);
    assert!(root.join("current").join(CONFIG).is_file());

    // Without etc/policy-gateway.yaml, the .sample template is used.
    fs::remove_file(release.join("etc/policy-gateway.yaml")).unwrap();
    fs::write(
        release.join("etc/policy-gateway.yaml.sample"),
        "policyGateway: {}\n",
    )
    .unwrap();
    let out2 = tmp.path().join("dist2");
    let o = build(&release, &out2, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let y = tmp.path().join("y");
    untar(&out2.join(BUNDLE), &y);
    assert_eq!(
        fs::read_to_string(y.join(CONFIG)).unwrap(),
        "policyGateway: {}\n"
    );
}

#[test]
fn a_dpop_key_at_0644_is_refused_at_build_naming_file_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    fs::set_permissions(release.join(DPOP), fs::Permissions::from_mode(0o644)).unwrap();
    let o = build(&release, &tmp.path().join("dist"), &[]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(DPOP) && e.contains("0644"), "{e}");
    assert!(!tmp.path().join("dist").join(BUNDLE).exists());
}

#[test]
fn a_kit_whose_key_mode_was_tampered_is_refused_at_import_naming_file_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let out = tmp.path().join("dist");
    let o = build(&release, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let kit = Kit::load(&out.join(BUNDLE));
    let i = kit
        .members
        .iter()
        .position(|m| m.name == DPOP)
        .expect("the key is in the bundle");
    let mut parts = kit.parts();
    parts[i] = tar::file(DPOP, 0o644, kit.data(&kit.members[i]));
    let hostile = tmp.path().join("hostile");
    fs::create_dir(&hostile).unwrap();
    let bundle = hostile.join(BUNDLE);
    fs::write(&bundle, gzip(&Kit::assemble(&parts))).unwrap();
    let root = tmp.path().join("root");
    let (rc, r) = run_json(
        &root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--allow-unsigned",
            "--max-kit-age",
            "0",
        ],
    );
    assert_eq!(rc, 11, "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(e.contains(DPOP) && e.contains("0644"), "{e}");
    assert!(!root.join("current").exists());
}

#[test]
fn a_broken_certificate_bundle_fails_the_build_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let good = fs::read_to_string(release.join(CERTS)).unwrap();
    // Truncate: drop the last END line. The second block's BEGIN line is named.
    let begin2 = good
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("-----BEGIN"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    let cut: String = good
        .lines()
        .take(good.lines().count() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    write_with_sidecar(&release, CERTS, cut.as_bytes());
    let o = build(&release, &tmp.path().join("dist"), &[]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("{CERTS}: line {begin2}")), "{e}");
    assert!(e.contains("truncated"), "{e}");
    // A private key in the trust bundle.
    let with_key = format!(
        "{good}-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    );
    write_with_sidecar(&release, CERTS, with_key.as_bytes());
    let o = build(&release, &tmp.path().join("dist"), &[]);
    assert_eq!(code(&o), 11);
    let line = good.lines().count() + 1;
    assert!(
        stderr(&o).contains(&format!("{CERTS}: line {line}: a PRIVATE KEY block")),
        "{}",
        stderr(&o)
    );
    // Another certificate file is checked too.
    write_with_sidecar(&release, CERTS, good.as_bytes());
    fs::write(
        release.join("certificates/extra.crt"),
        "not a certificate\n",
    )
    .unwrap();
    let o = build(&release, &tmp.path().join("dist"), &[]);
    assert_eq!(code(&o), 11);
    assert!(stderr(&o).contains("certificates/extra.crt: line 1: no certificate"));
}

/// A stored (uncompressed) zip archive of `(name, data)` entries.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let crc = |d: &[u8]| {
        let mut c = 0xffff_ffffu32;
        for &b in d {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let (mut out, mut cd) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let local = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend([0u8; 4]); // time, date
            v.extend(crc(data).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes()); // extra
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(10u16.to_le_bytes());
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(*data);
        cd.extend(0x0201_4b50u32.to_le_bytes());
        cd.extend(10u16.to_le_bytes());
        cd.extend(10u16.to_le_bytes());
        common(&mut cd);
        cd.extend([0u8; 10]); // comment len, disk, attributes
        cd.extend(local.to_le_bytes());
        cd.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&cd);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((cd.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn a_cold_start_cache_is_carried_under_caches_and_must_be_a_valid_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let zip = tmp.path().join("vulxml.zip");
    fs::write(&zip, stored_zip(&[("export.xml", b"<vulnerabilities/>\n")])).unwrap();
    if require_tool("unzip", &["-v"]) {
        let o = Command::new("unzip").arg("-t").arg(&zip).output().unwrap();
        assert!(
            o.status.success(),
            "unzip -t: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let out = tmp.path().join("dist");
    let o = build(
        &release,
        &out,
        &["--cold-start-cache", zip.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let x = tmp.path().join("x");
    untar(&out.join(BUNDLE), &x);
    assert_eq!(
        fs::read(x.join("caches/vulxml.zip")).unwrap(),
        fs::read(&zip).unwrap()
    );
    // A truncated zip is refused, naming the cache.
    let bytes = fs::read(&zip).unwrap();
    fs::write(&zip, &bytes[..bytes.len() - 7]).unwrap();
    let o = build(
        &release,
        &tmp.path().join("dist2"),
        &["--cold-start-cache", zip.to_str().unwrap()],
    );
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("caches/vulxml.zip: not a valid zip archive"),
        "{}",
        stderr(&o)
    );
    // The same in the release tree's caches/.
    fs::create_dir_all(release.join("caches")).unwrap();
    fs::write(release.join("caches/vulxml.zip"), b"PK\x03\x04garbage").unwrap();
    let o = build(&release, &tmp.path().join("dist3"), &[]);
    assert_eq!(code(&o), 11);
    assert!(stderr(&o).contains("caches/vulxml.zip: not a valid zip archive"));
    // A missing file is not found (1).
    fs::remove_file(release.join("caches/vulxml.zip")).unwrap();
    let o = build(
        &release,
        &tmp.path().join("dist4"),
        &["--cold-start-cache", "/nonexistent/vulxml.zip"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

fn authority_check(file: &Path) -> (i32, serde_json::Value, String) {
    let o = Command::new(ouk())
        .args(["--json", "authority", "check"])
        .arg(file)
        .output()
        .expect("run ouk authority check");
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (code(&o), v, stderr(&o))
}

#[test]
fn authority_check_passes_the_sample_and_names_client_and_scope_of_violations() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let sample = release.join(AUTHORITY);
    let (rc, v, _) = authority_check(&sample);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["clients"], 6);
    let text = fs::read_to_string(&sample).unwrap();

    let bad = tmp.path().join("no-aoc.yaml");
    fs::write(
        &bad,
        text.replace(
            "[\"signals:write\", \"signals:read\", \"aoc:verify\"]",
            "[\"signals:write\", \"signals:read\"]",
        ),
    )
    .unwrap();
    let (rc, v, e) = authority_check(&bad);
    assert_eq!(rc, 11, "{v} {e}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["violations"][0]["rule"], "missing-aoc-verify");
    assert_eq!(v["violations"][0]["client"], "signals-uploader");
    assert_eq!(v["violations"][0]["scope"], "signals:write");
    assert!(
        e.contains("\"signals-uploader\"") && e.contains("\"signals:read\""),
        "{e}"
    );

    let no_tenant = tmp.path().join("no-tenant.yaml");
    fs::write(
        &no_tenant,
        text.replacen(
            "  - clientId: airgap-operator\n    tenant: default\n",
            "  - clientId: airgap-operator\n",
            1,
        ),
    )
    .unwrap();
    let o = Command::new(ouk())
        .args(["authority", "check"])
        .arg(&no_tenant)
        .output()
        .unwrap();
    assert_eq!(code(&o), 11);
    let e = stderr(&o);
    assert!(
        e.contains("\"airgap-operator\" requests \"airgap:import\" without an explicit tenant"),
        "{e}"
    );

    let yaml = tmp.path().join("broken.yaml");
    fs::write(&yaml, "clients:\n  - clientId: a\n   tenant: b\n").unwrap();
    let (rc, v, e) = authority_check(&yaml);
    assert_eq!(rc, 11, "{e}");
    assert!(
        v["error"].as_str().unwrap().contains("broken.yaml:3:"),
        "{v}"
    );

    let (rc, _, e) = authority_check(&tmp.path().join("missing.yaml"));
    assert_eq!(rc, 1, "{e}");

    // kit build runs the same check on the tree's sample.
    fs::copy(&bad, &sample).unwrap();
    let o = build(&release, &tmp.path().join("dist"), &[]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(stderr(&o).contains("signals-uploader"), "{}", stderr(&o));
}
