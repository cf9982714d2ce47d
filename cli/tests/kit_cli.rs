//! End-to-end: `ouk kit build|verify|manifest`, `ouk key generate`, interop with GNU tar,
//! sha256sum, openssl and pyspdxtools.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::hostile::fixture;
use common::*;

const BUNDLE: &str = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";

fn build(release: &Path, out: &Path, key: Option<&Path>) -> std::process::Output {
    let mut cmd = build_unsigned_command(release, out, &[]);
    cmd.env("COSIGN_PASSWORD", "hello")
        .env("SOURCE_DATE_EPOCH", tree_epoch(release));
    if let Some(k) = key {
        cmd.arg("--signing-key").arg(k);
    }
    cmd.output().expect("run ouk")
}

fn tool(cmd: &mut Command, what: &str) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("{what} is needed for this test (run .ci/run to install it): {e}")
    })
}

#[test]
fn two_builds_are_byte_identical_and_verify_with_standard_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for out in [&a, &b] {
        let o = build(&release, out, Some(&fixture("fixture.key")));
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in [
        BUNDLE.to_string(),
        format!("{BUNDLE}.sha256"),
        format!("{BUNDLE}.sig"),
        format!("{BUNDLE}.metadata.json"),
        "manifest/offline-manifest.json".into(),
        "manifest/offline-manifest.json.jws".into(),
        "manifest/offline-manifest.json.sig".into(),
    ] {
        assert_eq!(
            fs::read(a.join(&f)).unwrap(),
            fs::read(b.join(&f)).unwrap(),
            "{f} differs between builds"
        );
    }
    // sha256sum -c
    let o = tool(
        Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{BUNDLE}.sha256"))
            .current_dir(&a),
        "sha256sum",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // openssl verifies the cosign-style signatures of bundle and manifest.
    for (file, sig) in [
        (BUNDLE.to_string(), format!("{BUNDLE}.sig")),
        (
            "manifest/offline-manifest.json".into(),
            "manifest/offline-manifest.json.sig".into(),
        ),
    ] {
        let der = tmp.path().join("sig.der");
        let b64 = fs::read_to_string(a.join(&sig)).unwrap();
        let o = tool(Command::new("base64").arg("-d").arg(a.join(&sig)), "base64");
        assert!(o.status.success(), "{b64}");
        fs::write(&der, o.stdout).unwrap();
        let o = tool(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(fixture("fixture.pub"))
                .arg("-signature")
                .arg(&der)
                .arg(a.join(&file)),
            "openssl",
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Verified OK"),
            "{file}: {o:?}"
        );
    }
    // GNU tar lists the Go analyzer (the seed's smoke test) and extracts identical bytes.
    let o = tool(
        Command::new("tar")
            .args(["--wildcards", "-tzf"])
            .arg(a.join(BUNDLE))
            .arg("plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/*"),
        "tar",
    );
    let listing = String::from_utf8_lossy(&o.stdout);
    for f in ["Lang.Go.dll", "Lang.Go.pdb", "Lang.Go/manifest.json"] {
        assert!(
            listing.lines().any(|l| l.ends_with(f)),
            "{f} not listed:\n{listing}"
        );
    }
    assert!(!listing.contains("./"));
    let x = tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    assert!(
        tool(
            Command::new("tar")
                .arg("-xzf")
                .arg(a.join(BUNDLE))
                .arg("-C")
                .arg(&x),
            "tar"
        )
        .status
        .success()
    );
    let secret = x.join("secrets/policy-gateway/policy-gateway-dpop.pem");
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::read(&secret).unwrap(),
        fs::read(release.join("secrets/policy-gateway/policy-gateway-dpop.pem")).unwrap()
    );
    // The SBOM is valid SPDX 2.3 for the reference tool.
    let o = tool(
        Command::new("pyspdxtools")
            .arg("-i")
            .arg(x.join("provenance/sbom.spdx.json")),
        "pyspdxtools (pip install spdx-tools)",
    );
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // ouk's own verify, and the manifest listing.
    let (rc, v) = run_json(
        tmp.path(),
        &[
            "kit",
            "verify",
            a.join(BUNDLE).to_str().unwrap(),
            "--key",
            fixture("fixture.pub").to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{v}");
    assert!(v["filesChecked"].as_u64().unwrap() > 50);
    let (rc, m) = run_json(
        tmp.path(),
        &["kit", "manifest", a.join(BUNDLE).to_str().unwrap()],
    );
    assert_eq!(rc, 0);
    let go_dll = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"].as_str().unwrap().ends_with("Lang.Go.dll"))
        .unwrap()
        .clone();
    assert!(go_dll["sha256"].as_str().unwrap().len() == 64 && go_dll["capturedAt"].is_string());
}

#[test]
fn tampering_is_named_with_exit_2_and_a_wrong_key_with_exit_5() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let out = tmp.path().join("dist");
    assert_eq!(
        code(&build(&release, &out, Some(&fixture("fixture.key")))),
        0
    );
    let bundle = out.join(BUNDLE);
    // A different key: exit 5.
    let keys = tmp.path().join("other");
    let o = Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(&keys)
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        tmp.path(),
        &[
            "kit",
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            keys.with_extension("pub").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 5, "{}", String::from_utf8_lossy(&o.stderr));
    // A flipped byte: exit 2 from the digest sidecar.
    let mut bytes = fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&bundle, &bytes).unwrap();
    let o = run(tmp.path(), &["kit", "verify", bundle.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("re-copy the kit"));
}

#[test]
fn a_generated_key_signs_kits_that_openssl_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("cosign");
    let o = Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(
        fs::read_to_string(prefix.with_extension("key"))
            .unwrap()
            .contains("ENCRYPTED SIGSTORE PRIVATE KEY")
    );
    let release = small_tree(tmp.path(), 0);
    let out = tmp.path().join("dist");
    let o = Command::new(ouk())
        .args([
            "kit",
            "build",
            "--version",
            "1.0.0",
            "--channel",
            "stable",
            "--release-dir",
        ])
        .arg(&release)
        .arg("--output-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(prefix.with_extension("key"))
        .env("COSIGN_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        tmp.path(),
        &[
            "kit",
            "verify",
            out.join("stella-ops-offline-kit-1.0.0-stable.tar.gz")
                .to_str()
                .unwrap(),
            "--key",
            prefix.with_extension("pub").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    // The name's claim: openssl itself, knowing nothing of ouk, accepts the bundle's
    // signature (base64 DER ECDSA over SHA-256) under the generated public key.
    let bundle = out.join("stella-ops-offline-kit-1.0.0-stable.tar.gz");
    let sig = out.join("stella-ops-offline-kit-1.0.0-stable.tar.gz.sig");
    let o = tool(Command::new("base64").arg("-d").arg(&sig), "base64");
    assert!(o.status.success(), "{o:?}");
    let der = tmp.path().join("sig.der");
    fs::write(&der, o.stdout).unwrap();
    let o = tool(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(prefix.with_extension("pub"))
            .arg("-signature")
            .arg(&der)
            .arg(&bundle),
        "openssl",
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Verified OK"),
        "openssl refused the generated key's signature: {o:?}"
    );
    // Wrong password: a clear signature-class failure, nothing written.
    let o = Command::new(ouk())
        .args([
            "kit",
            "build",
            "--version",
            "1.0.1",
            "--channel",
            "stable",
            "--release-dir",
        ])
        .arg(&release)
        .arg("--output-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(prefix.with_extension("key"))
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(code(&o), 5);
    assert!(
        !out.join("stella-ops-offline-kit-1.0.1-stable.tar.gz")
            .exists()
    );
}

#[test]
fn release_tree_rule_violations_are_refused_with_exit_11_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let secret = release.join("secrets/policy-gateway/policy-gateway-dpop.pem");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let o = build(&release, &tmp.path().join("dist"), None);
    assert_eq!(code(&o), 11);
    assert!(String::from_utf8_lossy(&o.stderr).contains("policy-gateway-dpop.pem"));
    assert!(!tmp.path().join("dist").join(BUNDLE).exists());
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    // A sidecar that lies.
    let feed = release.join("feeds/osv/osv-all.jsonl.sha256");
    fs::write(&feed, format!("{}  osv-all.jsonl\n", "0".repeat(64))).unwrap();
    let o = build(&release, &tmp.path().join("dist"), None);
    assert_eq!(code(&o), 11);
    assert!(String::from_utf8_lossy(&o.stderr).contains("osv-all.jsonl"));
}

#[test]
fn an_unsigned_build_says_so_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let o = build(&release, &tmp.path().join("dist"), None);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("UNSIGNED"));
    assert!(
        !tmp.path()
            .join("dist")
            .join(format!("{BUNDLE}.sig"))
            .exists()
    );
}

#[test]
fn kit_build_writes_nothing_through_links_planted_at_its_temporary_names() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let out = tmp.path().join("out");
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let planted = [
        BUNDLE.to_string(),
        format!("{BUNDLE}.sha256"),
        format!("{BUNDLE}.metadata.json"),
        "manifest/offline-manifest.json".into(),
        "manifest/offline-manifest.json.sha256".into(),
    ];
    let planted: Vec<&str> = planted.iter().map(String::as_str).collect();
    let (rc, err) = run_with_planted_temp_links(
        &out,
        &planted,
        &victim,
        &[
            "kit",
            "build",
            "--version",
            "2025.10.0",
            "--channel",
            "edge",
            "--release-dir",
            release.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    for f in &planted {
        let m = fs::symlink_metadata(out.join(f)).unwrap();
        assert!(m.is_file(), "{f} is a regular file");
    }
    // An unsigned build: the bundle's bytes and digests are what is checked here.
    let v = Command::new(ouk())
        .args(["kit", "verify", "--allow-unsigned"])
        .arg(out.join(BUNDLE))
        .output()
        .unwrap();
    assert_eq!(code(&v), 0, "{}", String::from_utf8_lossy(&v.stderr));
}

/// `kit verify` without `--key` answered "OK (signature not checked)" with exit 0, even on
/// a root that trusts keys: a forged or unsigned kit looked verified. It now checks against
/// the root's trust store and fails closed when nothing is trusted, unless
/// `--allow-unsigned` says the caller knows.
#[test]
fn verify_without_a_key_uses_the_trust_store_and_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let signed = tmp.path().join("signed");
    let unsigned = tmp.path().join("unsigned");
    assert_eq!(
        code(&build(&release, &signed, Some(&fixture("fixture.key")))),
        0
    );
    assert_eq!(code(&build(&release, &unsigned, None)), 0);
    let (signed, unsigned) = (signed.join(BUNDLE), unsigned.join(BUNDLE));
    let verify = |root: &Path, bundle: &Path, extra: &[&str]| {
        let mut args = vec!["kit", "verify", bundle.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_json(root, &args)
    };

    // A root that trusts the fixture key: the signed kit verifies under it, the unsigned
    // one is refused (even with --allow-unsigned: a trusted key is there to check with).
    let trusting = trusted_root(tmp.path(), "trusting");
    let (rc, v) = verify(&trusting, &signed, &[]);
    assert_eq!(rc, 0, "{v}");
    assert!(v["signedBy"].is_string(), "{v}");
    let (rc, v) = verify(&trusting, &unsigned, &[]);
    assert_eq!(rc, 5, "{v}");
    let (rc, v) = verify(&trusting, &unsigned, &["--allow-unsigned"]);
    assert_eq!(rc, 5, "{v}");

    // A root that trusts nothing: refused (exit 5), for signed and unsigned kits alike.
    let empty = tmp.path().join("empty");
    for bundle in [&signed, &unsigned] {
        let (rc, v) = verify(&empty, bundle, &[]);
        assert_eq!(rc, 5, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or_default()
                .contains("no trusted keys"),
            "{v}"
        );
        // Opting out, explicitly: digest and content still checked, the output says the
        // signature was not.
        let (rc, v) = verify(&empty, bundle, &["--allow-unsigned"]);
        assert_eq!(rc, 0, "{v}");
        assert!(v["signedBy"].is_null(), "{v}");
        let o = run(
            &empty,
            &[
                "kit",
                "verify",
                bundle.to_str().unwrap(),
                "--allow-unsigned",
            ],
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("signature not checked"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // `--key` still names the keys to check with.
    let (rc, v) = verify(
        &empty,
        &signed,
        &["--key", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{v}");
}

/// `key generate` with an empty COSIGN_PASSWORD wrote a private key "encrypted" under the
/// empty password: anyone who copies the file can sign. Refused, and nothing is written.
#[test]
fn key_generate_refuses_an_empty_password() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("cosign");
    let o = Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("empty"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!prefix.with_extension("key").exists());
    assert!(!prefix.with_extension("pub").exists());
}
