//! The `--json` outputs keep their documented shapes: each command's document is checked
//! against its JSON Schema in `docs/schemas/` by a validator nobody here wrote (the
//! `jsonschema` Python package, Draft 2020-12), and against the naming rules every output
//! follows (docs/operations.md, "JSON output"): camelCase keys, times as RFC 3339 strings
//! under keys ending in `At`, no key of the old names (`current`, `generationId`, `kid` of a
//! signer, snake_case).
//!
//! The schemas pin the names: each object lists its properties with `additionalProperties:
//! false`, so a renamed or added field fails here until its schema (and the docs) say so.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

/// One command's document (or several samples of it), by schema name.
#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<serde_json::Value>>);

impl Samples {
    /// Run `ouk --json ARGS` on `root`, expect `want` as its exit code, keep the document.
    fn take(&mut self, schema: &'static str, root: &Path, args: &[&str], want: i32) {
        let (rc, v) = run_json(root, args);
        assert_eq!(rc, want, "ouk {args:?}: {v}");
        self.0.entry(schema).or_default().push(v);
    }
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

fn signed(args: &mut Vec<String>) -> &mut Vec<String> {
    args.push("--signing-key".into());
    args.push(fixture("fixture.key").display().to_string());
    args
}

fn build_json(tree: &Path, version: &str, out: &Path) -> serde_json::Value {
    let mut args: Vec<String> = ["--json", "kit", "build", "--version", version, "--channel"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["edge".into(), "--release-dir".into()]);
    args.push(tree.display().to_string());
    args.push("--output-dir".into());
    args.push(out.display().to_string());
    // Created now: the generator's trees carry fixed old times, which an import refuses as
    // stale.
    args.push("--created-at".into());
    args.push(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    );
    signed(&mut args);
    let o = Command::new(ouk())
        .args(&args)
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .expect("run kit build");
    let (rc, v) = json_output(&["kit", "build"], &o);
    assert_eq!(rc, 0, "{v}");
    v
}

/// Every command with a schema, on small kits: builds, imports (kit and delta), the
/// generation and store commands, the mirror, trust, quarantine, and errors.
fn collect(dir: &Path) -> Samples {
    let mut s = Samples::default();
    let dist = dir.join("dist");
    let t0 = small_tree(dir, 0);
    let t1 = small_tree(dir, 1);
    s.0.entry("kit-build")
        .or_default()
        .push(build_json(&t0, "2025.10.0", &dist));
    s.0.entry("kit-build")
        .or_default()
        .push(build_json(&t1, "2025.10.1", &dist));
    let k0 = dist.join("stella-ops-offline-kit-2025.10.0-edge.tar.gz");
    let k1 = dist.join("stella-ops-offline-kit-2025.10.1-edge.tar.gz");
    let delta = dist.join("d.delta.tgz");
    let (k0s, k1s, ds) = (
        k0.to_str().unwrap(),
        k1.to_str().unwrap(),
        delta.to_str().unwrap(),
    );
    let root = trusted_root(dir, "root");
    let r = root.as_path();
    let key = fixture("fixture.key");
    let keys = key.to_str().unwrap();

    s.take("error", r, &["kit", "import", "/nonexistent/kit.tar.gz"], 1);
    s.take("error", r, &["kit", "import", "--no-such-flag"], 64);
    s.take("trust-status", r, &["trust", "status"], 0);
    s.take("kit-verify", r, &["kit", "verify", k0s], 0);
    s.take("kit-inspect", r, &["kit", "inspect", k0s], 0);
    s.take("kit-import", r, &["kit", "import", k0s], 0);
    s.take("status", r, &["status"], 0);
    s.take("gen-list", r, &["gen", "list"], 0);
    let o = Command::new(ouk())
        .args([
            "--json", "delta", "make", "--from", k0s, "--to", k1s, "--output", ds,
        ])
        .args(["--signing-key", keys])
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .expect("delta make");
    let (rc, v) = json_output(&["delta", "make"], &o);
    assert_eq!(rc, 0, "{v}");
    s.0.entry("delta-make").or_default().push(v);
    s.take("delta-show", r, &["delta", "show", ds], 0);
    s.take("kit-import", r, &["kit", "import", ds], 0);
    s.take("gen-rollback", r, &["gen", "rollback", "2025.10.0"], 0);
    s.take("gen-list", r, &["gen", "list"], 0);
    s.take("kit-import", r, &["kit", "import", k1s], 0);
    s.take("gen-diff", r, &["gen", "diff", "2025.10.0", "2025.10.1"], 0);
    s.take("trust-list", r, &["trust", "list"], 0);
    let parts = dir.join("parts");
    s.take(
        "kit-split",
        r,
        &[
            "kit",
            "split",
            k1s,
            "--max-size",
            "4MiB",
            "--output-dir",
            parts.to_str().unwrap(),
        ],
        0,
    );
    s.take("kit-index", r, &["kit", "index", dist.to_str().unwrap()], 0);
    s.take("store-stats", r, &["store", "stats"], 0);
    s.take("store-fsck", r, &["store", "fsck"], 0);
    s.take("gen-gc", r, &["gen", "gc", "--keep", "1"], 0);
    s.take("store-gc", r, &["store", "gc"], 0);
    s.take("doctor", r, &["doctor"], 0);
    s.take("quarantine-list", r, &["quarantine", "list"], 0);

    // A refused import: the error names its step and where the input was kept.
    let untrusting = dir.join("untrusting");
    let tampered = dir.join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let bad = tampered.join(k0.file_name().unwrap());
    let mut bytes = std::fs::read(&k0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&bad, bytes).unwrap();
    for ext in ["sha256", "sig"] {
        let name = format!("{}.{ext}", k0.file_name().unwrap().to_str().unwrap());
        std::fs::copy(dist.join(&name), tampered.join(&name)).unwrap();
    }
    let _ = trusted_root(dir, "untrusting");
    s.take(
        "error",
        &untrusting,
        &["kit", "import", bad.to_str().unwrap()],
        2,
    );
    s.take("quarantine-list", &untrusting, &["quarantine", "list"], 0);

    let m = trusted_root(dir, "mirror");
    let m = m.as_path();
    s.take("mirror-add", m, &["mirror", "add", k0s], 0);
    s.take("mirror-add", m, &["mirror", "add", ds], 0);
    s.take("mirror-list", m, &["mirror", "list"], 0);
    s.take("mirror-stats", m, &["mirror", "stats"], 0);
    s.take("mirror-verify", m, &["mirror", "verify"], 0);
    let exported = dir.join("exported");
    s.take(
        "mirror-export",
        m,
        &[
            "mirror",
            "export",
            "2025.10.0",
            "--output-dir",
            exported.to_str().unwrap(),
        ],
        0,
    );
    s.take(
        "mirror-remove",
        m,
        &["mirror", "remove", "--kind", "delta", "2025.10.1"],
        0,
    );
    let key_prefix = dir.join("generated");
    let o = Command::new(ouk())
        .args(["--json", "key", "generate", "--output-prefix"])
        .arg(&key_prefix)
        .env("COSIGN_PASSWORD", "other")
        .output()
        .expect("key generate");
    let (rc, v) = json_output(&["key", "generate"], &o);
    assert_eq!(rc, 0, "{v}");
    let generated_kid = v["kid"].as_str().expect("kid").to_string();
    s.0.entry("key-generate").or_default().push(v);
    let pubkey = format!("{}.pub", key_prefix.display());
    s.take("trust-add", m, &["trust", "add", &pubkey], 0);
    // The fixture key leaves: the stored bundles are no longer authorized (exit 5).
    let listed = run_json(m, &["trust", "list"]).1;
    let fixture_kid = listed
        .as_array()
        .expect("a key list")
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .find(|k| *k != generated_kid)
        .expect("the fixture's kid");
    let o = run(m, &["trust", "remove", &fixture_kid]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    s.take("mirror-verify", m, &["mirror", "verify"], 5);
    s.take("feeds-audit", r, &["feeds", "audit"], 0);
    s
}

/// Validate with Python's `jsonschema` (Draft 2020-12): one process for every document.
/// Returns the failures, one line each.
fn validate_all(samples: &Samples) -> Vec<String> {
    let mut docs = serde_json::Map::new();
    for (name, values) in &samples.0 {
        docs.insert((*name).to_string(), serde_json::Value::from(values.clone()));
    }
    let script = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator
schemas = pathlib.Path(sys.argv[1])
docs = json.load(sys.stdin)
bad = []
for name, values in sorted(docs.items()):
    schema = json.loads((schemas / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    for i, doc in enumerate(values):
        for e in v.iter_errors(doc):
            bad.append(f"{name}[{i}] at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}")
print(json.dumps(bad))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(schemas_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::Value::Object(docs).to_string().as_bytes())
            .expect("write documents");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "the validator failed to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("validator output")
}

/// The naming rules, walked over every document: camelCase keys (maps keyed by data, such
/// as labels, feed sources or paths, are the schemas' business), RFC 3339 strings under
/// `...At`, none of the retired names.
fn naming_faults(name: &str, v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    let data_keyed = ["labels", "sources", "counts", "feeds", "roles"];
    match v {
        serde_json::Value::Object(map) => {
            let parent = path.rsplit('/').next().unwrap_or("");
            for (k, x) in map {
                let here = format!("{path}/{k}");
                if !data_keyed.contains(&parent) {
                    let camel = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && k.chars().all(|c| c.is_ascii_alphanumeric());
                    if !camel {
                        out.push(format!("{name}{here}: not camelCase"));
                    }
                    if ["current", "generationId", "signatureKid", "manifestKid"]
                        .contains(&k.as_str())
                        && !(k == "current" && x.is_boolean())
                    {
                        out.push(format!("{name}{here}: a retired name"));
                    }
                    let is_time = |t: &str| jiff::Timestamp::from_str(t).is_ok();
                    if k.ends_with("At") && !x.is_null() && x.as_str().is_none_or(|t| !is_time(t)) {
                        out.push(format!("{name}{here}: {x} is not an RFC 3339 time"));
                    }
                }
                naming_faults(name, x, &here, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                naming_faults(name, x, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

use std::str::FromStr;

#[test]
fn every_json_output_matches_its_schema_and_the_naming_rules() {
    if !require_tool("python3", &["-c", "import jsonschema"]) {
        return;
    }
    let probe = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .expect("python3");
    assert!(
        probe.status.success(),
        "this test needs the jsonschema Python package (.ci/install-deps installs it): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let samples = collect(tmp.path());
    // For whoever changes an output on purpose: the documents as they are now, to compare
    // with (or draft) the schema by hand.
    if let Some(dir) = std::env::var_os("OUK_JSON_SAMPLES_DIR") {
        let dir = PathBuf::from(dir);
        for (name, values) in &samples.0 {
            for (i, v) in values.iter().enumerate() {
                let sub = dir.join(i.to_string());
                std::fs::create_dir_all(&sub).expect("samples dir");
                std::fs::write(sub.join(format!("{name}.json")), v.to_string()).expect("sample");
            }
        }
    }

    // Every schema in docs/schemas is exercised, and every sample has a schema.
    let on_disk: Vec<String> = std::fs::read_dir(schemas_dir())
        .expect("docs/schemas")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".schema.json"))
                .map(str::to_string)
        })
        .collect();
    let mut on_disk = on_disk;
    on_disk.sort();
    let taken: Vec<String> = samples.0.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        on_disk, taken,
        "schemas without a sample, or samples without a schema"
    );

    let mut faults = validate_all(&samples);
    for (name, values) in &samples.0 {
        for v in values {
            naming_faults(name, v, "", &mut faults);
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn a_renamed_field_fails_its_schema() {
    // The check above can fail: the status document with its old field name is refused.
    if !require_tool("python3", &["-c", "import jsonschema"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = trusted_root(tmp.path(), "root");
    let (rc, mut status) = run_json(&root, &["status"]);
    assert_eq!(rc, 9, "{status}");
    let mut samples = Samples::default();
    samples.0.entry("status").or_default().push(status.clone());
    assert!(
        validate_all(&samples).is_empty(),
        "a fresh root's status is valid"
    );
    let map = status.as_object_mut().unwrap();
    let id = map.remove("generation").unwrap();
    map.insert("current".into(), id);
    let mut samples = Samples::default();
    samples.0.entry("status").or_default().push(status);
    let faults = validate_all(&samples);
    assert!(
        faults.iter().any(|f| f.contains("current")),
        "the old name passed: {faults:?}"
    );
}
