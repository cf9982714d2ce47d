//! Layout rules on small trees in temporary directories: a valid tree passes, and each
//! broken rule is reported naming the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;

const GO: &str = "StellaOps.Scanner.Analyzers.Lang.Go";
const DPOP: &str = "secrets/policy-gateway/policy-gateway-dpop.pem";
const BID_A: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const BID_B: &str = "ff00112233445566778899aabbccddeeff001122";

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, bytes).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn put_with_sidecar(root: &Path, rel: &str, bytes: &[u8]) {
    put(root, rel, bytes);
    let body = sha256_sidecar_body(&sha(bytes), base_name(rel));
    put(root, &format!("{rel}.sha256"), body.as_bytes());
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).expect("chmod");
}

fn debug_path(bid: &str) -> String {
    format!("debug/.build-id/{}/{}.debug", &bid[..2], &bid[2..])
}

/// Writes the debug manifest for `artefacts` (as JSON values) and its sidecar.
fn write_debug_manifest(root: &Path, artefacts: serde_json::Value) {
    let m = json!({
        "generatedAt": "2025-10-23T00:00:00Z",
        "version": "2025.10.0",
        "channel": "edge",
        "artifacts": artefacts,
    });
    let mut bytes = serde_json::to_vec_pretty(&m).expect("json");
    bytes.push(b'\n');
    put_with_sidecar(root, DEBUG_MANIFEST, &bytes);
}

/// A small valid release tree.
fn valid_tree(root: &Path) {
    let a = b"\x7fELF debug symbols A".repeat(50);
    let b = b"\x7fELF debug symbols B".repeat(70);
    put(root, &debug_path(BID_A), &a);
    put(root, &debug_path(BID_B), &b);
    write_debug_manifest(
        root,
        json!([
            {
                "buildId": BID_A, "platform": "linux/amd64", "path": debug_path(BID_A),
                "binary": "/usr/bin/a", "sha256": hex::encode(sha(&a)), "size": a.len(),
                "image": "registry.example/stella-ops:2025.10.0",
            },
            {
                // Path relative to debug/, no image: both accepted.
                "buildId": BID_B, "platform": "linux/arm64",
                "path": debug_path(BID_B).trim_start_matches("debug/"),
                "sha256": hex::encode(sha(&b)), "size": b.len(),
            },
        ]),
    );

    let dll = b"MZ fake go analyzer".to_vec();
    let pdir = format!("{PLUGIN_ROOT}/{GO}");
    put(root, &format!("{pdir}/{GO}.dll"), &dll);
    put(root, &format!("{pdir}/{GO}.pdb"), b"MSF pdb");
    let manifest = json!({
        "id": "stellaops.analyzer.lang.golang",
        "entryPoint": {"type": "dotnet", "assembly": format!("{GO}.dll")},
        "sha256": hex::encode(sha(&dll)),
    });
    put(
        root,
        &format!("{pdir}/manifest.json"),
        &serde_json::to_vec(&manifest).expect("json"),
    );

    put(root, DPOP, b"-----BEGIN EC PRIVATE KEY-----\n...\n");
    chmod(root, DPOP, 0o600);
    put_with_sidecar(root, "feeds/osv/osv-all.jsonl", b"{\"id\":\"OSV-1\"}\n");
    put(root, "etc/authority.yaml.sample", b"issuer: x\n");
}

fn check(root: &Path) -> LayoutReport {
    check_tree(root, &LayoutOptions::default()).expect("check runs")
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    valid_tree(dir.path());
    dir
}

/// The only violation of a tree, asserting it names `path`.
fn only_violation(root: &Path, path: &str) -> Violation {
    let r = check(root);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    let v = r.violations.into_iter().next().expect("one");
    assert_eq!(v.path(), path, "{v}");
    assert!(v.to_string().contains(path), "{v}");
    v
}

#[test]
fn a_valid_tree_passes_with_summary_and_plugins() {
    let dir = tree();
    let r = check(dir.path());
    assert!(r.is_ok(), "{:#?}", r.violations);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    let s = r.debug_summary.clone().expect("summary");
    assert_eq!(s.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(s.artefact_count, 2);
    assert_eq!(s.build_id_count, 2);
    assert_eq!(s.sample_build_ids, [BID_A, BID_B]);
    assert_eq!(s.images, ["registry.example/stella-ops:2025.10.0"]);
    assert_eq!(s.total_size, Some(20 * 50 + 20 * 70));
    assert_eq!(s.generated_at, None);
    let mbytes = fs::read(dir.path().join(DEBUG_MANIFEST)).expect("read");
    assert_eq!(s.manifest_sha256, hex::encode(sha(&mbytes)));
    assert_eq!(
        DebugStoreSummary::from_manifest_bytes(&mbytes, None).expect("parse"),
        s
    );
    let json: serde_json::Value = serde_json::from_slice(&s.to_json_bytes()).expect("json");
    assert_eq!(json["artefactCount"], 2);
    assert_eq!(json["sampleBuildIds"][0], BID_A);
    assert_eq!(json["artefactsByPlatform"]["linux/arm64"], 1);
    assert!(json.get("generatedAt").is_none());

    let pdir = format!("{PLUGIN_ROOT}/{GO}");
    assert_eq!(
        r.plugins,
        [PluginInfo {
            id: GO.into(),
            dir: pdir.clone(),
            manifest: Some(format!("{pdir}/manifest.json")),
            dll: Some(format!("{pdir}/{GO}.dll")),
        }]
    );
    assert_eq!(
        plugin_sidecar_targets(&r.plugins),
        [format!("{pdir}/{GO}.dll"), format!("{pdir}/manifest.json")]
    );

    // The same result from an inventory, and the generated time is carried.
    let entries = walk_tree(dir.path()).expect("walk");
    assert!(entries.windows(2).all(|w| w[0].path < w[1].path));
    let opts = LayoutOptions {
        generated_at: Some("2025-10-23T01:02:03Z".into()),
        ..Default::default()
    };
    let r2 = check_entries(dir.path(), &entries, &opts).expect("check");
    assert_eq!(r2.violations, r.violations);
    assert_eq!(
        r2.debug_summary.expect("summary").generated_at.as_deref(),
        Some("2025-10-23T01:02:03Z")
    );
}

#[test]
fn missing_debug_store_fails_unless_allowed() {
    let dir = tree();
    fs::remove_dir_all(dir.path().join("debug")).expect("rm");
    only_violation(dir.path(), "debug/");
    let r = check_tree(
        dir.path(),
        &LayoutOptions {
            allow_missing_debug: true,
            ..Default::default()
        },
    )
    .expect("check");
    assert!(r.is_ok(), "{:?}", r.violations);
    assert_eq!(r.warnings, [Warning::DebugStoreMissingAllowed]);
    assert_eq!(
        r.warnings[0].to_string(),
        "debug/: no debug store in the release tree; symbol lookup will not work offline"
    );
    assert!(r.debug_summary.is_none());
}

#[test]
fn debug_file_outside_the_build_id_layout() {
    for bad in [
        "debug/.build-id/0a/xyz.debug",
        "debug/.build-id/0A/1b2c.debug",
        "debug/.build-id/0a1/b2c.debug",
        "debug/.build-id/0a/1b2c",
        "debug/.build-id/0a/.debug",
        "debug/.build-id/stray.debug",
        "debug/.build-id/0a/b/c.debug",
    ] {
        let dir = tree();
        put(dir.path(), bad, b"x");
        let r = check(dir.path());
        assert_eq!(r.violations.len(), 1, "{bad}: {:#?}", r.violations);
        assert_eq!(
            r.violations[0],
            Violation::DebugFileLayout { path: bad.into() }
        );
    }
}

#[test]
fn unlisted_debug_file_is_a_warning() {
    let dir = tree();
    let extra = debug_path("abcdef0123");
    put(dir.path(), &extra, b"x");
    let r = check(dir.path());
    assert!(r.is_ok(), "{:?}", r.violations);
    assert_eq!(r.warnings, [Warning::DebugUnlisted { path: extra }]);
}

#[test]
fn debug_manifest_and_sidecar_problems() {
    let dir = tree();
    fs::remove_file(dir.path().join(DEBUG_MANIFEST_SHA256)).expect("rm");
    only_violation(dir.path(), DEBUG_MANIFEST_SHA256);

    let dir = tree();
    let p = dir.path().join(DEBUG_MANIFEST);
    let mut bytes = fs::read(&p).expect("read");
    bytes.extend_from_slice(b" ");
    fs::write(&p, &bytes).expect("write");
    let v = only_violation(dir.path(), DEBUG_MANIFEST);
    assert!(matches!(v, Violation::DebugManifestDigest { .. }), "{v}");

    let dir = tree();
    fs::remove_file(dir.path().join(DEBUG_MANIFEST)).expect("rm");
    fs::remove_file(dir.path().join(DEBUG_MANIFEST_SHA256)).expect("rm");
    let r = check(dir.path());
    let paths: Vec<_> = r.violations.iter().map(Violation::path).collect();
    assert_eq!(paths, [DEBUG_MANIFEST, DEBUG_MANIFEST_SHA256]);

    let dir = tree();
    put_with_sidecar(dir.path(), DEBUG_MANIFEST, b"{not json");
    let v = only_violation(dir.path(), DEBUG_MANIFEST);
    assert!(matches!(v, Violation::DebugManifestInvalid { .. }), "{v}");
}

#[test]
fn invalid_manifest_items_are_all_reported() {
    let dir = tree();
    let a = fs::read(dir.path().join(debug_path(BID_A))).expect("read");
    let ok = json!({"buildId": BID_A, "platform": "linux/amd64", "sha256": hex::encode(sha(&a))});
    write_debug_manifest(
        dir.path(),
        json!([
            ok,
            {"buildId": "0A1B", "platform": "p", "sha256": hex::encode(sha(&a))},
            {"buildId": "abcd", "platform": "p", "sha256": "00"},
            {"buildId": "abcd", "platform": "p", "sha256": hex::encode(sha(&a)), "path": "debug/.build-id/ab/ce.debug"},
            {"buildId": "abcd", "platform": "p", "sha256": hex::encode(sha(&a)), "path": "../../etc/passwd"},
            {"buildId": "abcd", "sha256": hex::encode(sha(&a))},
            {"buildId": "abcd", "platform": "p", "sha256": hex::encode(sha(&a)), "size": -1},
            ok,
            7,
        ]),
    );
    let r = check(dir.path());
    assert_eq!(r.violations.len(), 8, "{:#?}", r.violations);
    for (i, v) in r.violations.iter().enumerate() {
        assert_eq!(v.path(), DEBUG_MANIFEST);
        assert!(
            v.to_string().contains(&format!("artifacts[{}]", i + 1)),
            "{v}"
        );
    }
    assert!(r.violations[6].to_string().contains("already listed"));
    // The warning for the now unlisted B artefact.
    assert_eq!(
        r.warnings,
        [Warning::DebugUnlisted {
            path: debug_path(BID_B)
        }]
    );

    for (doc, why) in [
        (json!([]), "not a JSON object"),
        (json!({"artifacts": {}}), "not an array"),
        (json!({"other": []}), "no `artifacts`"),
        (json!({"artifacts": [], "artefacts": []}), "both"),
    ] {
        let err = DebugManifest::parse(doc.to_string().as_bytes()).expect_err("invalid");
        assert!(err[0].to_string().contains(why), "{doc}: {:?}", err);
    }
    // `artefacts` is accepted as well.
    let m = DebugManifest::parse(json!({"artefacts": [ok]}).to_string().as_bytes()).expect("ok");
    assert_eq!(m.artefacts[0].path, debug_path(BID_A));
}

#[test]
fn debug_artefact_missing_wrong_digest_or_size() {
    let dir = tree();
    fs::remove_file(dir.path().join(debug_path(BID_B))).expect("rm");
    let v = only_violation(dir.path(), &debug_path(BID_B));
    assert!(matches!(v, Violation::DebugArtefactMissing { .. }), "{v}");
    assert!(v.to_string().contains(BID_B), "{v}");

    let dir = tree();
    let p = dir.path().join(debug_path(BID_A));
    let mut b = fs::read(&p).expect("read");
    b[5] ^= 1;
    fs::write(&p, &b).expect("write");
    let v = only_violation(dir.path(), &debug_path(BID_A));
    assert!(matches!(v, Violation::DebugArtefactDigest { .. }), "{v}");

    let dir = tree();
    let a = fs::read(dir.path().join(debug_path(BID_A))).expect("read");
    write_debug_manifest(
        dir.path(),
        json!([
            {"buildId": BID_A, "platform": "p", "sha256": hex::encode(sha(&a)), "size": 3},
        ]),
    );
    let r = check(dir.path());
    assert_eq!(
        r.violations,
        [Violation::DebugArtefactSize {
            path: debug_path(BID_A),
            expected: 3,
            actual: a.len() as u64
        }]
    );
}

#[test]
fn plugin_rules() {
    let pdir = format!("{PLUGIN_ROOT}/{GO}");
    let manifest = format!("{pdir}/manifest.json");

    let dir = tree();
    fs::remove_file(dir.path().join(&manifest)).expect("rm");
    let v = only_violation(dir.path(), &pdir);
    assert!(matches!(v, Violation::PluginManifestMissing { .. }), "{v}");

    // An empty plug-in directory is a plug-in without a manifest too.
    let dir = tree();
    let empty = format!("{PLUGIN_ROOT}/StellaOps.Scanner.Analyzers.Lang.Rust");
    fs::create_dir_all(dir.path().join(&empty)).expect("mkdir");
    only_violation(dir.path(), &empty);

    for body in [&b"{oops"[..], b"[1,2]"] {
        let dir = tree();
        put(dir.path(), &manifest, body);
        let v = only_violation(dir.path(), &manifest);
        assert!(matches!(v, Violation::PluginManifestInvalid { .. }), "{v}");
    }

    let dir = tree();
    fs::remove_file(dir.path().join(format!("{pdir}/{GO}.dll"))).expect("rm");
    let v = only_violation(dir.path(), &format!("{pdir}/{GO}.dll"));
    assert!(matches!(v, Violation::PluginAssemblyMissing { .. }), "{v}");

    let dir = tree();
    put(dir.path(), &format!("{pdir}/{GO}.dll"), b"MZ rebuilt");
    let v = only_violation(dir.path(), &format!("{pdir}/{GO}.dll"));
    assert!(matches!(v, Violation::PluginAssemblyDigest { .. }), "{v}");

    // A minimal manifest without entry point: the DLL is found by name.
    let dir = tree();
    put(dir.path(), &manifest, b"{}");
    let r = check(dir.path());
    assert!(r.is_ok(), "{:?}", r.violations);
    assert_eq!(r.plugins[0].dll, Some(format!("{pdir}/{GO}.dll")));
}

#[test]
fn secrets_must_be_0600() {
    for mode in [0o644, 0o640, 0o604, 0o700, 0o4600, 0o400] {
        let dir = tree();
        chmod(dir.path(), DPOP, mode);
        let v = only_violation(dir.path(), DPOP);
        assert_eq!(
            v,
            Violation::SecretMode {
                path: DPOP.into(),
                mode
            }
        );
        assert!(v.to_string().contains(&format!("{mode:04o}")), "{v}");
    }
    // Not under secrets/: any mode.
    let dir = tree();
    put(dir.path(), "secretsfile.pem", b"x");
    chmod(dir.path(), "secretsfile.pem", 0o666);
    assert!(check(dir.path()).is_ok());
}

#[test]
fn sidecar_rules() {
    let feed = "feeds/osv/osv-all.jsonl";
    let side = "feeds/osv/osv-all.jsonl.sha256";

    let dir = tree();
    put(dir.path(), feed, b"changed\n");
    let v = only_violation(dir.path(), side);
    assert!(matches!(v, Violation::SidecarMismatch { .. }), "{v}");
    assert!(v.to_string().contains(feed), "{v}");

    let dir = tree();
    fs::remove_file(dir.path().join(feed)).expect("rm");
    let v = only_violation(dir.path(), side);
    assert!(matches!(v, Violation::SidecarTargetMissing { .. }), "{v}");

    let dir = tree();
    let d = sha(&fs::read(dir.path().join(feed)).expect("read"));
    put(
        dir.path(),
        side,
        sha256_sidecar_body(&d, "other.jsonl").as_bytes(),
    );
    let v = only_violation(dir.path(), side);
    assert!(matches!(v, Violation::SidecarName { .. }), "{v}");

    let dir = tree();
    put(dir.path(), side, b"not a digest\n");
    let v = only_violation(dir.path(), side);
    assert!(matches!(v, Violation::SidecarMalformed { .. }), "{v}");

    // Other accepted forms.
    for body in [
        format!("{} *osv-all.jsonl\n", hex::encode(d)),
        format!("{}  {feed}\n", hex::encode(d)),
        format!("{}\n", hex::encode(d).to_uppercase()),
        format!("SHA256 (osv-all.jsonl) = {}\n", hex::encode(d)),
    ] {
        let dir = tree();
        put(dir.path(), side, body.as_bytes());
        assert!(check(dir.path()).is_ok(), "{body}");
    }
}

#[test]
fn all_violations_are_reported_together() {
    let dir = tree();
    chmod(dir.path(), DPOP, 0o644);
    put(dir.path(), "feeds/osv/osv-all.jsonl", b"changed\n");
    fs::remove_file(dir.path().join(format!("{PLUGIN_ROOT}/{GO}/manifest.json"))).expect("rm");
    fs::remove_file(dir.path().join(debug_path(BID_A))).expect("rm");
    let r = check(dir.path());
    let paths: Vec<_> = r.violations.iter().map(Violation::path).collect();
    assert_eq!(
        paths,
        [
            debug_path(BID_A).as_str(),
            &format!("{PLUGIN_ROOT}/{GO}"),
            DPOP,
            "feeds/osv/osv-all.jsonl.sha256"
        ]
    );
    let err = r.into_result().expect_err("violations");
    let msg = err.to_string();
    assert!(msg.contains("4 layout rule(s)"), "{msg}");
    assert!(msg.contains(DPOP), "{msg}");
}

#[test]
fn inventory_paths_are_validated() {
    let dir = tree();
    let mut entries = walk_tree(dir.path()).expect("walk");
    entries.push(entries[0].clone());
    assert!(matches!(
        check_entries(dir.path(), &entries, &LayoutOptions::default()),
        Err(LayoutError::DuplicatePath { .. })
    ));
    for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a/"] {
        let e = FileEntry {
            path: bad.into(),
            mode: 0o644,
            size: 0,
            sha256: [0; 32],
        };
        assert!(
            matches!(
                check_entries(dir.path(), &[e], &LayoutOptions::default()),
                Err(LayoutError::InvalidPath { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn mirror_copies_verifies_and_summarizes() {
    let release = tree();
    let kit = tempfile::tempdir().expect("tempdir");
    // A stale file from an earlier mirror goes away.
    put(kit.path(), &debug_path("abcdef"), b"stale");
    let r = mirror_debug_store(
        release.path(),
        kit.path(),
        None,
        Some("2025-10-23T00:00:00Z"),
    )
    .expect("mirror");
    assert_eq!(r.files, 4);
    assert_eq!(r.removed, [debug_path("abcdef")]);
    assert_eq!(r.summary_path, kit.path().join(DEBUG_SUMMARY));
    for rel in [
        debug_path(BID_A),
        debug_path(BID_B),
        DEBUG_MANIFEST.into(),
        DEBUG_MANIFEST_SHA256.into(),
    ] {
        assert_eq!(
            fs::read(kit.path().join(&rel)).expect("copied"),
            fs::read(release.path().join(&rel)).expect("source"),
            "{rel}"
        );
    }
    let written = fs::read(kit.path().join(DEBUG_SUMMARY)).expect("summary");
    assert_eq!(written, r.summary.to_json_bytes());
    let s: DebugStoreSummary = serde_json::from_slice(&written).expect("parse");
    assert_eq!(s.generated_at.as_deref(), Some("2025-10-23T00:00:00Z"));
    assert_eq!(s.artefact_count, 2);

    // The mirrored store passes the rule in the kit tree; a second run is identical.
    let kr = check_tree(kit.path(), &LayoutOptions::default()).expect("check");
    assert!(kr.is_ok(), "{:?}", kr.violations);
    let custom = kit.path().join("elsewhere/summary.json");
    let r2 = mirror_debug_store(
        release.path(),
        kit.path(),
        Some(&custom),
        Some("2025-10-23T00:00:00Z"),
    )
    .expect("mirror again");
    assert!(r2.removed.is_empty());
    assert_eq!(fs::read(&custom).expect("summary"), written);
}

#[test]
fn mirror_refuses_a_broken_or_missing_store_and_copies_nothing() {
    let release = tree();
    let kit = tempfile::tempdir().expect("tempdir");
    fs::remove_file(release.path().join(debug_path(BID_B))).expect("rm");
    let err = mirror_debug_store(release.path(), kit.path(), None, None).expect_err("refused");
    match &err {
        LayoutError::Violations(v) => assert_eq!(v[0].path(), debug_path(BID_B)),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&debug_path(BID_B)));
    assert!(!kit.path().join("debug").exists());
    assert!(!kit.path().join(DEBUG_SUMMARY).exists());

    let empty = tempfile::tempdir().expect("tempdir");
    let err = mirror_debug_store(empty.path(), kit.path(), None, None).expect_err("refused");
    assert!(err.to_string().contains("no debug store"), "{err}");
}
