//! End-to-end on a real S3 implementation (s3s-fs on loopback, see `common::s3`): wrong
//! keys and a missing bucket are exit 11 naming bucket and endpoint; two `mirror add`
//! processes on one bucket lose nothing (the lost create-only race is detected); a server
//! stopped mid-upload leaves nothing the index references, and a re-run completes; `store
//! reindex` rebuilds a root's cache from the bucket alone; host-side commands refuse
//! `--store-url`.
//!
//! Interleavings are forced with the backend's pause hook (`OUK_TEST_S3_PAUSE_BEFORE_PUT`:
//! the process waits before a given PUT until the test lets it go), never with sleeps.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::s3::{BUCKET, Backend, S3Server};
use common::*;

fn kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join(format!("kits-{day}")),
    )
}

fn server(b: &Backend) -> &S3Server {
    match b {
        Backend::S3 { server, .. } => server,
        Backend::Local => unreachable!("an S3 backend"),
    }
}

fn server_mut(b: &mut Backend) -> &mut S3Server {
    match b {
        Backend::S3 { server, .. } => server,
        Backend::Local => unreachable!("an S3 backend"),
    }
}

/// `mirror add` in the background, held before PUT number `put` until [`resume`].
fn spawn_paused_add(b: &Backend, root: &Path, bundle: &Path, put: u64, hook: &Path) -> Child {
    std::fs::create_dir_all(hook).unwrap();
    let mut cmd = b.command(root, &["--json", "mirror", "add", bundle.to_str().unwrap()]);
    cmd.env(
        "OUK_TEST_S3_PAUSE_BEFORE_PUT",
        format!("{put}:{}", hook.display()),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Wait until the paused process reached PUT `put` (or exited first).
fn wait_paused(child: &mut Child, hook: &Path, put: u64) {
    let marker = hook.join(format!("paused-{put}"));
    wait_until(
        &format!("the pause before PUT {put} ({})", marker.display()),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("exited ({status}) before reaching PUT {put}");
            }
            marker.exists()
        },
    );
}

fn resume(hook: &Path, put: u64) {
    std::fs::write(hook.join(format!("resume-{put}")), b"").unwrap();
}

fn finish(child: Child) -> (i32, serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    (
        code(&out),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn versions(b: &Backend, root: &Path) -> Vec<String> {
    let (rc, listing) = b.run_json(root, &["mirror", "list"]);
    assert_eq!(rc, 0, "{listing}");
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_str().unwrap().to_string())
        .collect()
}

fn assert_exports(b: &Backend, root: &Path, bundle: &Path, version: &str, out: &Path) {
    let (rc, doc) = b.run_json(
        root,
        &[
            "mirror",
            "export",
            version,
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(
        sha256_file(&out.join(bundle.file_name().unwrap())),
        sha256_file(bundle)
    );
}

#[test]
fn wrong_keys_and_a_missing_bucket_are_exit_11_naming_bucket_and_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(b) = Backend::s3(tmp.path()) else {
        return;
    };
    let s = server(&b);
    let mut cmd = b.command(&tmp.path().join("r1"), &["--json", "mirror", "list"]);
    s.env_with_secret(&mut cmd, "not-the-secret");
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 11, "{err}");
    assert!(err.contains(BUCKET) && err.contains(&s.endpoint()), "{err}");
    assert!(err.contains("access denied"), "{err}");

    let mut cmd = Command::new(ouk());
    cmd.arg("--root").arg(tmp.path().join("r2")).args([
        "--store-url",
        "s3://no-such-bucket/site",
        "mirror",
        "list",
    ]);
    s.env(&mut cmd);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 11, "{err}");
    assert!(
        err.contains("no-such-bucket")
            && err.contains(&s.endpoint())
            && err.contains("does not exist"),
        "{err}"
    );

    // Host-side commands keep the local store.
    let o = b.run(&tmp.path().join("r3"), &["status"]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--store-url is for"));
}

#[test]
fn two_mirrors_adding_to_one_bucket_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(b) = Backend::s3(dir) else { return };
    let kits: Vec<PathBuf> = (0..3).map(|d| kit(dir, d)).collect();
    let (ra, rb) = (trusted_root(dir, "a"), trusted_root(dir, "b"));

    // A is held before its first upload while B adds the same kit to the end: A then
    // loses every create-only race (same frames, same pack bytes, same names) and must
    // detect it, not overwrite.
    let hook = dir.join("hook-a");
    let mut a = spawn_paused_add(&b, &ra, &kits[0], 1, &hook);
    wait_paused(&mut a, &hook, 1);
    let (rc, doc_b) = b.run_json(&rb, &["mirror", "add", kits[0].to_str().unwrap()]);
    assert_eq!(rc, 0, "{doc_b}");
    resume(&hook, 1);
    let (rc, doc_a, err) = finish(a);
    assert_eq!(rc, 0, "{doc_a} {err}");
    assert!(
        doc_a["requests"]["head"].as_u64().unwrap() >= 1,
        "the lost race was detected (HEAD of the object already there): {doc_a}"
    );

    // Then both add a kit of their own at the same time.
    let spawn = |root: &Path, k: &Path| {
        b.command(root, &["--json", "mirror", "add", k.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&ra, &kits[1]), spawn(&rb, &kits[2]));
    let (ra_rc, da, ea) = finish(ca);
    let (rb_rc, db, eb) = finish(cb);
    assert_eq!((ra_rc, rb_rc), (0, 0), "{da} {ea} {db} {eb}");

    // A third root rebuilt from the bucket alone has all three, byte-identical.
    let rc_root = dir.join("c");
    let (rc, doc) = b.run_json(&rc_root, &["store", "reindex"]);
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(doc["mirror"]["bundles"], 3, "{doc}");
    assert_eq!(
        doc["store"]["incompleteFiles"].as_array().unwrap().len(),
        0,
        "{doc}"
    );
    assert_eq!(
        versions(&b, &rc_root),
        ["2025.10.0", "2025.10.1", "2025.10.2"]
    );
    for (day, k) in kits.iter().enumerate() {
        assert_exports(
            &b,
            &rc_root,
            k,
            &format!("2025.10.{day}"),
            &dir.join(format!("out-{day}")),
        );
    }
    let (rc, doc) = b.run_json(&rc_root, &["store", "fsck"]);
    assert_eq!(rc, 0, "{doc}");
    // Each writer's own cache knows its own adds; a reindex brings in the other's.
    assert_eq!(versions(&b, &ra), ["2025.10.0", "2025.10.1"]);
    let (rc, _) = b.run_json(&ra, &["store", "reindex"]);
    assert_eq!(rc, 0);
    assert_eq!(versions(&b, &ra), ["2025.10.0", "2025.10.1", "2025.10.2"]);
}

#[test]
fn a_server_stopped_mid_upload_leaves_nothing_referenced_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(mut b) = Backend::s3(dir) else {
        return;
    };
    let k0 = kit(dir, 0);
    let root = trusted_root(dir, "mirror");
    // Small packs so the upload is several PUTs; hold it before the second one (the
    // first pack is in the bucket, its index object is not), then stop the server.
    let hook = dir.join("hook");
    std::fs::create_dir_all(&hook).unwrap();
    let mut cmd = b.command(
        &root,
        &[
            "--json",
            "--store-pack-size",
            "1MiB",
            "mirror",
            "add",
            k0.to_str().unwrap(),
        ],
    );
    let mut child = cmd
        .env(
            "OUK_TEST_S3_PAUSE_BEFORE_PUT",
            format!("2:{}", hook.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_paused(&mut child, &hook, 2);
    server_mut(&mut b).stop();
    resume(&hook, 2);
    let (rc, doc, err) = finish(child);
    assert_ne!(rc, 0, "the upload fails with the server gone: {doc} {err}");
    assert!(err.contains(BUCKET), "{err}");

    server_mut(&mut b).restart();
    // The local cache references nothing: no chunk, no file, no bundle.
    let (rc, s) = b.run_json(&root, &["store", "stats"]);
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (s["chunks"].as_u64(), s["files"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert!(versions(&b, &root).is_empty());
    // Nor does an index rebuilt from the bucket: the uploaded pack has no index object.
    let fresh = dir.join("fresh");
    let (rc, doc) = b.run_json(&fresh, &["store", "reindex"]);
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(doc["store"]["files"], 0, "{doc}");
    assert_eq!(
        doc["store"]["orphanPacks"].as_array().unwrap().len(),
        1,
        "{doc}"
    );
    assert_eq!(doc["mirror"]["bundles"], 0, "{doc}");

    // A re-run completes, and the bucket then holds the bundle.
    let (rc, doc) = b.run_json(
        &root,
        &[
            "--store-pack-size",
            "1MiB",
            "mirror",
            "add",
            k0.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{doc}");
    assert_exports(&b, &root, &k0, "2025.10.0", &dir.join("out"));
    let (rc, doc) = b.run_json(&fresh, &["store", "reindex"]);
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(doc["mirror"]["bundles"], 1, "{doc}");
    assert_exports(&b, &fresh, &k0, "2025.10.0", &dir.join("out-fresh"));
}

/// An endpoint URL with credentials in it (`http://user:password@host:port`, as some S3
/// gateways and proxies are configured) was echoed whole in every S3 error: the password
/// landed in terminals, logs and CI output. Errors now name the endpoint without them.
/// Needs no S3 server: a port nobody listens on makes the first request fail.
#[test]
fn errors_name_the_endpoint_without_its_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut cmd = Command::new(ouk());
    cmd.arg("--root")
        .arg(tmp.path().join("r"))
        .args(["--store-url", "s3://ouk-mirror/site", "mirror", "list"])
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://gateway-user:Pa55w0rd-IN-URL@127.0.0.1:{port}"),
        )
        .env("AWS_ACCESS_KEY_ID", "ouk-test-access")
        .env("AWS_SECRET_ACCESS_KEY", "ouk-test-secret-key-0123456789")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("OUK_S3_MAX_RETRIES", "0")
        .env("OUK_S3_RETRY_TIMEOUT", "5");
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(code(&o), 0, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the endpoint is still named: {err}"
    );
    assert!(!err.contains("Pa55w0rd-IN-URL"), "{err}");
    assert!(!err.contains("gateway-user"), "{err}");
}
