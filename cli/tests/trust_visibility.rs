//! One trust policy, visible to the operator: `trust list` says when each key came to this
//! root and which kits it signed here; `mirror list` who signed each stored bundle;
//! `mirror verify` which stored bundles the trust of now still authorizes.

mod common;

use std::path::Path;

use common::*;

/// A signed kit of the small tree for `day`, created now (the generator's trees carry old
/// times, which an import refuses as stale).
fn kit_now(dir: &Path, day: u32, version: &str) -> std::path::PathBuf {
    kit_created(dir, day, version, &from_now(0))
}

fn kid_of_fixture(root: &Path) -> String {
    let (rc, keys) = run_json(root, &["trust", "list"]);
    assert_eq!(rc, 0, "{keys}");
    keys[0]["kid"].as_str().expect("kid").to_string()
}

#[test]
fn trust_list_says_when_each_key_came_and_which_kits_it_signed_here() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = kit_now(tmp.path(), 0, "2025.10.0");
    let root = trusted_root(tmp.path(), "host");
    let kid = kid_of_fixture(&root);
    let (_, before) = run_json(&root, &["trust", "list"]);
    assert_eq!(before[0]["kitsSigned"], serde_json::json!([]), "{before}");
    assert!(before[0]["addedAt"].as_str().is_some(), "{before}");

    let (rc, r) = run_json(&root, &["kit", "import", k0.to_str().unwrap()]);
    assert_eq!(rc, 0, "{r}");
    let (rc, keys) = run_json(&root, &["trust", "list"]);
    assert_eq!(rc, 0, "{keys}");
    let key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the fixture key is listed");
    let signed = key["kitsSigned"].as_array().expect("kitsSigned");
    assert_eq!(signed.len(), 1, "{key}");
    assert_eq!(signed[0]["version"], "2025.10.0");
    assert_eq!(signed[0]["generation"], r["generation"]);
    assert_eq!(signed[0]["current"], true);
    assert!(
        key["roles"].as_array().unwrap().iter().any(|r| r == "kits"),
        "{key}"
    );
    let text = String::from_utf8_lossy(&run(&root, &["trust", "list"]).stdout).to_string();
    assert!(text.contains("signed here: 2025.10.0"), "{text}");
}

#[test]
fn mirror_verify_rechecks_stored_bundles_under_the_trust_of_now() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = kit_now(tmp.path(), 0, "2025.10.0");
    let mirror = trusted_root(tmp.path(), "mirror");
    let kid = kid_of_fixture(&mirror);
    let (rc, added) = run_json(&mirror, &["mirror", "add", k0.to_str().unwrap()]);
    assert_eq!(rc, 0, "{added}");

    let (rc, list) = run_json(&mirror, &["mirror", "list"]);
    assert_eq!(rc, 0, "{list}");
    assert_eq!(list[0]["signedBy"], kid.as_str(), "{list}");
    let text = String::from_utf8_lossy(&run(&mirror, &["mirror", "list"]).stdout).to_string();
    assert!(
        text.contains("SIGNED BY") && text.contains(&kid[..12]),
        "{text}"
    );

    let (rc, v) = run_json(&mirror, &["mirror", "verify"]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["valid"], 1, "{v}");
    assert_eq!(v["bundles"][0]["verdict"], "valid", "{v}");
    assert_eq!(v["bundles"][0]["signedBy"][0], kid.as_str(), "{v}");

    // Another key is trusted, the signer leaves: the bundle is no longer authorized.
    let other = tmp.path().join("other");
    let o = std::process::Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(&other)
        .env("COSIGN_PASSWORD", "x")
        .output()
        .expect("key generate");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let other_pub = format!("{}.pub", other.display());
    assert_eq!(code(&run(&mirror, &["trust", "add", &other_pub])), 0);
    assert_eq!(code(&run(&mirror, &["trust", "remove", &kid])), 0);
    let (rc, v) = run_json(&mirror, &["mirror", "verify"]);
    assert_eq!(rc, 5, "{v}");
    assert_eq!(v["bundles"][0]["verdict"], "invalid", "{v}");
    assert_eq!(v["bundles"][0]["signedByWhenAdded"], kid.as_str(), "{v}");
    assert!(
        !v["bundles"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("mirror-verify-"),
        "the scratch path leaks into the reason: {v}"
    );
    // Nothing changed in the mirror: the bundle still exports byte-identical.
    let out = tmp.path().join("exported");
    let (rc, e) = run_json(
        &mirror,
        &[
            "mirror",
            "export",
            "2025.10.0",
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{e}");
    assert_eq!(
        sha256_file(&out.join(k0.file_name().unwrap())),
        sha256_file(&k0)
    );

    // No key at all: nothing can be verified, and that is a failure too.
    let other_kid = run_json(&mirror, &["trust", "list"]).1[0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code(&run(&mirror, &["trust", "remove", &other_kid])), 0);
    let (rc, v) = run_json(&mirror, &["mirror", "verify"]);
    assert_eq!(rc, 5, "{v}");
    assert_eq!(v["bundles"][0]["verdict"], "unchecked", "{v}");
}
