//! SBOM and provenance: shape, determinism, verification, and the independent tools
//! (`pyspdxtools` from PyPI `spdx-tools`; python `securesystemslib`). A missing tool
//! FAILS the test with the install command; it never skips.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use base64ct::{Base64, Encoding};
use serde_json::{Value, json};

use super::*;
use crate::sign::{Envelope, SigningKey, dsse_sign};

const CREATED: &str = "2025-10-23T00:00:00Z";

fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` not found on PATH: this test needs it; run `.ci/run` (it installs \
             the test tools) or `pip install spdx-tools securesystemslib[crypto]`"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn require_python_module(module: &str, pip_package: &str) {
    let out = run("python3", ["-c", &format!("import {module}")]);
    assert!(
        out.status.success(),
        "python module `{module}` is missing: run `.ci/run`, or `pip install {pip_package}`\n{}",
        text(&out)
    );
}

fn file(path: &str, content: &[u8]) -> SbomFile {
    SbomFile::new(path, &digest_reader(content).expect("digest"))
}

fn kit_files() -> Vec<SbomFile> {
    vec![
        file("manifest/offline-manifest.json", b"{}"),
        file("debug/.build-id/0a/1b2c.debug", b"\x7fELF"),
        file(
            "plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/manifest.json",
            b"{\"id\":\"go\"}",
        ),
        file("secrets/policy-gateway/policy-gateway-dpop.pem", b"key"),
        file("feeds/osv/osv-all.jsonl", b"{\"id\":\"OSV-1\"}\n"),
        file("provenance/provenance.intoto.json", b"{}"),
        file("empty file with spaces", b""),
    ]
}

fn info() -> SbomInfo {
    SbomInfo::new("2025.10.0", "edge", CREATED)
}

#[test]
fn verification_code_matches_the_spdx_algorithm() {
    let a = digest_reader(&b"a"[..]).expect("digest").sha1;
    let b = digest_reader(&b"b"[..]).expect("digest").sha1;
    // python: sha1("".join(sorted([sha1(b"a").hex(), sha1(b"b").hex()])))
    let want = "5463504435e4dbf2b93a3a8a00ca78e36ea40e24";
    assert_eq!(package_verification_code([&a, &b]), want);
    assert_eq!(package_verification_code([&b, &a]), want);
}

#[test]
fn sbom_lists_every_file_with_sha1_and_sha256() {
    let files = kit_files();
    let doc = spdx_document(&info(), &files).expect("sbom");
    assert_eq!(doc.spdx_version, "SPDX-2.3");
    assert_eq!(doc.name, "stella-ops-offline-kit-2025.10.0-edge");
    assert_eq!(doc.creation_info.created, CREATED);
    assert_eq!(
        doc.creation_info.creators,
        [format!("Tool: ouk-{}", env!("CARGO_PKG_VERSION"))]
    );
    assert!(
        doc.document_namespace
            .starts_with("https://stella-ops.org/spdx/stella-ops-offline-kit/2025.10.0-edge/")
    );
    assert_eq!(doc.files.len(), files.len());
    let names: Vec<_> = doc.files.iter().map(|f| f.file_name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for f in &files {
        let e = doc
            .files
            .iter()
            .find(|x| x.file_name == format!("./{}", f.path))
            .expect("listed");
        assert_eq!(e.checksums[0].algorithm, "SHA1");
        assert_eq!(e.checksums[0].checksum_value, hex::encode(f.sha1));
        assert_eq!(e.checksums[1].algorithm, "SHA256");
        assert_eq!(e.checksums[1].checksum_value, hex::encode(f.sha256));
        assert!(e.spdx_id.starts_with("SPDXRef-File-"));
        assert!(doc.relationships.iter().any(|r| {
            r.spdx_element_id == spdx::PACKAGE_SPDXID
                && r.relationship_type == "CONTAINS"
                && r.related_spdx_element == e.spdx_id
        }));
    }
    let p = &doc.packages[0];
    assert_eq!(p.name, "stella-ops-offline-kit");
    assert_eq!(p.version_info, "2025.10.0");
    assert!(p.files_analyzed);
    assert_eq!(
        p.package_verification_code.package_verification_code_value,
        package_verification_code(files.iter().map(|f| &f.sha1))
    );
    assert_eq!(
        p.package_verification_code
            .package_verification_code_excluded_files,
        ["./provenance/sbom.spdx.json"]
    );
    assert_eq!(doc.relationships[0].relationship_type, "DESCRIBES");
    assert_eq!(doc.relationships.len(), files.len() + 1);
}

#[test]
fn sbom_is_deterministic_and_content_addressed() {
    let files = kit_files();
    let a = spdx_json(&info(), &files).expect("sbom");
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(spdx_json(&info(), &reversed).expect("sbom"), a);
    // Offset times normalize to the same instant.
    let mut i2 = info();
    i2.created = "2025-10-23T02:00:00.5+02:00".into();
    assert_eq!(spdx_json(&i2, &files).expect("sbom"), a);

    // Another file content: another namespace, same ids for unchanged files.
    let mut changed = files.clone();
    changed[0] = file("manifest/offline-manifest.json", b"{\"x\":1}");
    let da = spdx_document(&info(), &files).expect("sbom");
    let db = spdx_document(&info(), &changed).expect("sbom");
    assert_ne!(da.document_namespace, db.document_namespace);
    let ids = |d: &SpdxDocument| {
        d.files
            .iter()
            .map(|f| f.spdx_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&da), ids(&db));

    // The SBOM's own path is never listed.
    let mut with_self = files.clone();
    with_self.push(file(SBOM_PATH, b"{}"));
    assert_eq!(spdx_json(&info(), &with_self).expect("sbom"), a);
}

#[test]
fn sbom_refuses_bad_input() {
    let mut dup = kit_files();
    dup.push(dup[0].clone());
    assert!(matches!(
        spdx_document(&info(), &dup),
        Err(ProvenanceError::DuplicatePath(_))
    ));
    for bad in ["/abs", "a/../b", "", "a//b"] {
        assert!(
            matches!(
                spdx_document(&info(), &[file(bad, b"x")]),
                Err(ProvenanceError::InvalidPath(_))
            ),
            "{bad}"
        );
    }
    let mut i = info();
    i.created = "yesterday".into();
    let err = spdx_document(&i, &kit_files()).expect_err("bad time");
    assert!(err.to_string().contains("yesterday"), "{err}");
}

fn pyspdxtools_validate(path: &Path) -> Output {
    run("pyspdxtools", [OsStr::new("-i"), path.as_os_str()])
}

#[test]
fn pyspdxtools_validates_the_sbom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sbom.spdx.json");
    std::fs::write(&path, spdx_json(&info(), &kit_files()).expect("sbom")).expect("write");
    let out = pyspdxtools_validate(&path);
    assert!(
        out.status.success(),
        "pyspdxtools rejected the SBOM (install: `pip install spdx-tools`):\n{}",
        text(&out)
    );
    assert!(!text(&out).contains("issues"), "{}", text(&out));

    // The check has teeth: a file without its SHA1 is refused.
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let checksums = doc["files"][0]["checksums"]
        .as_array_mut()
        .expect("checksums");
    checksums.remove(0);
    std::fs::write(&path, serde_json::to_vec(&doc).expect("json")).expect("write");
    let out = pyspdxtools_validate(&path);
    assert!(
        !out.status.success(),
        "pyspdxtools accepted a file without SHA1:\n{}",
        text(&out)
    );
}

#[test]
fn pyspdxtools_validates_an_empty_and_a_large_sbom() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An empty kit is still a valid document (the verification code of no files).
    let path = dir.path().join("empty.spdx.json");
    std::fs::write(&path, spdx_json(&info(), &[]).expect("sbom")).expect("write");
    let out = pyspdxtools_validate(&path);
    assert!(out.status.success(), "{}", text(&out));

    let many: Vec<SbomFile> = (0..2000)
        .map(|i| {
            file(
                &format!("feeds/part-{i:05}.jsonl"),
                format!("{i}").as_bytes(),
            )
        })
        .collect();
    let path = dir.path().join("large.spdx.json");
    std::fs::write(&path, spdx_json(&info(), &many).expect("sbom")).expect("write");
    let out = pyspdxtools_validate(&path);
    assert!(out.status.success(), "{}", text(&out));
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject::sha256("stella-ops-offline-kit-2025.10.0-edge.tar.gz", &[7; 32]),
        Subject::sha256("manifest/offline-manifest.json", &[9; 32]),
    ]
}

fn input() -> ProvenanceInput {
    let mut i = ProvenanceInput::new("2025.10.0", "edge", subjects());
    i.release_dir = Some("out/release".into());
    i.started_on = Some("2025-10-23T00:00:00Z".into());
    i.finished_on = Some("2025-10-23T00:05:00+00:00".into());
    i.invocation_id = Some("build-42".into());
    i.resolved_dependencies = vec![ResourceDescriptor {
        uri: Some("file:out/release".into()),
        digest: BTreeMap::from([("sha256".into(), hex::encode([1u8; 32]))]),
        ..Default::default()
    }];
    i
}

#[test]
fn statement_has_the_in_toto_and_slsa_shape() {
    let key = SigningKey::generate().expect("key");
    let bytes = provenance_json(&key, &input()).expect("provenance");
    let env: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(env["signatures"][0]["keyid"], key.kid());
    let payload = Base64::decode_vec(env["payload"].as_str().expect("payload")).expect("b64");
    let st: Value = serde_json::from_slice(&payload).expect("statement");
    assert_eq!(
        st,
        json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {"name": "manifest/offline-manifest.json", "digest": {"sha256": hex::encode([9u8; 32])}},
                {"name": "stella-ops-offline-kit-2025.10.0-edge.tar.gz", "digest": {"sha256": hex::encode([7u8; 32])}},
            ],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": KIT_BUILD_TYPE,
                    "externalParameters": {"version": "2025.10.0", "channel": "edge", "releaseDir": "out/release"},
                    "resolvedDependencies": [{"uri": "file:out/release", "digest": {"sha256": hex::encode([1u8; 32])}}],
                },
                "runDetails": {
                    "builder": {"id": intoto::DEFAULT_BUILDER_ID, "version": {"ouk": env!("CARGO_PKG_VERSION")}},
                    "metadata": {
                        "invocationId": "build-42",
                        "startedOn": "2025-10-23T00:00:00Z",
                        "finishedOn": "2025-10-23T00:05:00Z",
                    },
                },
            },
        })
    );
    // Member order is fixed: `_type` first, as in-toto writes it.
    assert!(payload.starts_with(br#"{"_type":"https://in-toto.io/Statement/v1","subject":["#));
}

#[test]
fn provenance_round_trips_and_is_deterministic() {
    let key = SigningKey::generate().expect("key");
    let keys = [key.verifying_key()];
    let a = provenance_json(&key, &input()).expect("provenance");
    let mut shuffled = input();
    shuffled.subjects.reverse();
    assert_eq!(provenance_json(&key, &shuffled).expect("provenance"), a);

    let st = verify_provenance(&keys, &a).expect("verifies");
    assert_eq!(st, statement(&input()).expect("statement"));
    assert_eq!(st.subject[1].digest["sha256"], hex::encode([7u8; 32]));

    // Untrusted key.
    let other = [SigningKey::generate().expect("key").verifying_key()];
    assert!(matches!(
        verify_provenance(&other, &a),
        Err(ProvenanceError::Dsse(_))
    ));
    // Changed payload.
    let mut env: Envelope = serde_json::from_slice(&a).expect("env");
    let mut payload = Base64::decode_vec(&env.payload).expect("b64");
    let at = payload.len() / 2;
    payload[at] ^= 1;
    env.payload = Base64::encode_string(&payload);
    assert!(matches!(
        verify_provenance(&keys, &serde_json::to_vec(&env).expect("json")),
        Err(ProvenanceError::Dsse(_))
    ));
    // Signed, but not in-toto / not SLSA.
    let wrong_type = dsse_sign(&key, "application/json", b"{}").expect("sign");
    let err = verify_provenance(&keys, &serde_json::to_vec(&wrong_type).expect("json"))
        .expect_err("payload type");
    assert!(
        matches!(
            err,
            ProvenanceError::Unexpected {
                what: "payloadType",
                ..
            }
        ),
        "{err}"
    );
    let other_pred = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://spdx.dev/Document","predicate":{}}"#;
    let env = dsse_sign(&key, INTOTO_PAYLOAD_TYPE, other_pred).expect("sign");
    let err = verify_provenance(&keys, &serde_json::to_vec(&env).expect("json"))
        .expect_err("predicate type");
    assert!(
        matches!(
            err,
            ProvenanceError::Unexpected {
                what: "predicateType",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        verify_provenance(&keys, b"not json"),
        Err(ProvenanceError::Json(_))
    ));
}

#[test]
fn statement_refuses_bad_input() {
    let mut i = input();
    i.subjects.clear();
    assert!(matches!(statement(&i), Err(ProvenanceError::NoSubjects)));

    let mut i = input();
    i.subjects.push(i.subjects[0].clone());
    assert!(matches!(
        statement(&i),
        Err(ProvenanceError::InvalidSubject { .. })
    ));

    let mut i = input();
    i.subjects[0].digest.insert("sha256".into(), "ABC".into());
    assert!(matches!(
        statement(&i),
        Err(ProvenanceError::InvalidSubject { .. })
    ));

    let mut i = input();
    i.started_on = Some("now".into());
    assert!(matches!(
        statement(&i),
        Err(ProvenanceError::InvalidTime {
            field: "startedOn",
            ..
        })
    ));

    let mut i = input();
    i.extra_parameters.insert("version".into(), json!("x"));
    assert!(matches!(
        statement(&i),
        Err(ProvenanceError::ReservedParameter(_))
    ));
    let mut i = input();
    i.extra_parameters
        .insert("allowMissingDebug".into(), json!(true));
    let st = statement(&i).expect("extra accepted");
    let v = serde_json::to_value(&st).expect("json");
    assert_eq!(
        v["predicate"]["buildDefinition"]["externalParameters"]["allowMissingDebug"],
        true
    );
}

const SSLIB_VERIFY: &str = r#"
import sys, json
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
pem = open(sys.argv[1]).read()
env = Envelope.from_dict(json.load(open(sys.argv[2])))
key = SSlibKey(sys.argv[3], "ecdsa", "ecdsa-sha2-nistp256", {"public": pem})
try:
    env.verify([key], 1)
except Exception as e:
    print("FAILED " + repr(e))
    sys.exit(3)
st = json.loads(env.payload)
assert env.payload_type == "application/vnd.in-toto+json", env.payload_type
assert st["_type"] == "https://in-toto.io/Statement/v1", st["_type"]
assert st["predicateType"] == "https://slsa.dev/provenance/v1", st["predicateType"]
print("VERIFIED", st["subject"][0]["digest"]["sha256"])
"#;

fn sslib_verify(key: &SigningKey, envelope_json: &[u8]) -> (bool, String) {
    require_python_module("securesystemslib.signer", "securesystemslib[crypto]");
    require_python_module("cryptography", "securesystemslib[crypto]");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("verify.py");
    let pem = dir.path().join("pub.pem");
    let envf = dir.path().join("provenance.intoto.json");
    std::fs::write(&script, SSLIB_VERIFY).expect("write");
    std::fs::write(&pem, key.verifying_key().to_pem().expect("pem")).expect("write");
    std::fs::write(&envf, envelope_json).expect("write");
    let kid = key.kid();
    let out = run(
        "python3",
        [
            script.as_os_str(),
            pem.as_os_str(),
            envf.as_os_str(),
            OsStr::new(&kid),
        ],
    );
    let t = text(&out);
    (out.status.success() && t.contains("VERIFIED"), t)
}

#[test]
fn securesystemslib_verifies_the_provenance_and_rejects_a_changed_byte() {
    let key = SigningKey::generate().expect("key");
    let bytes = provenance_json(&key, &input()).expect("provenance");
    let (ok, out) = sslib_verify(&key, &bytes);
    assert!(ok, "securesystemslib did not verify the provenance: {out}");
    assert!(out.contains(&hex::encode([9u8; 32])), "{out}");

    let mut env: Envelope = serde_json::from_slice(&bytes).expect("env");
    let mut payload = Base64::decode_vec(&env.payload).expect("b64");
    payload[40] ^= 1;
    env.payload = Base64::encode_string(&payload);
    let (ok, out) = sslib_verify(&key, &serde_json::to_vec(&env).expect("json"));
    assert!(!ok, "securesystemslib verified a changed payload: {out}");
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn sbom_of_a_streamed_tree() {
    // The kit build's path: stream each file once, feed the SBOM from that pass.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for (rel, body) in [("a/x.json", &b"{}"[..]), ("b.bin", &[0u8, 1, 2][..])] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, body).expect("write");
    }
    let mut files = Vec::new();
    for rel in ["a/x.json", "b.bin"] {
        let mut r = HashingReader::new(std::fs::File::open(root.join(rel)).expect("open"));
        std::io::copy(&mut r, &mut std::io::sink()).expect("copy");
        let (d, _) = r.finish();
        files.push(SbomFile::new(rel, &d));
    }
    let doc = spdx_document(&info(), &files).expect("sbom");
    assert_eq!(doc.files[1].file_name, "./b.bin");
    assert_eq!(
        doc.files[1].checksums[0].checksum_value,
        "0c7a623fd2bbc05b06423be359e4021d36e721ad"
    );
}
