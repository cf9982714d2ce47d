//! End-to-end tests of `ouk serve`, `ouk kit pull` and `ouk kit index`: publishing,
//! resuming after a killed client, refusing a file that changed mid-resume, the same
//! client against nginx, path traversal, the import API, and kits holding secrets (handed
//! out only with the pull token).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::hostile::fixture;
use common::{
    Server, WAIT_DEADLINE, build_signed_kit, code, ouk, run_with_planted_temp_links, sha256_file,
    small_tree, start_serve, wait_until,
};

const TOKEN: &str = "test-token-0123456789abcdef";
/// The pull token the servers of these tests are started with (the test kits hold
/// secrets: the small tree has the Policy Gateway's DPoP key), and their clients give.
const PULL_TOKEN: &str = "pull-token-0123456789abcdef";

/// `ouk serve` with the pull token [`PULL_TOKEN`] (in `OUK_PULL_TOKEN`).
fn serve(root: &Path, kits: &Path, extra: &[&str]) -> Server {
    serve_with(root, kits, extra, Some(PULL_TOKEN))
}

/// `ouk serve` with `pull_token` in `OUK_PULL_TOKEN`, or none.
fn serve_with(root: &Path, kits: &Path, extra: &[&str], pull_token: Option<&str>) -> Server {
    let log = root.with_extension("serve.log");
    let mut cmd = Command::new(ouk());
    match pull_token {
        Some(t) => cmd.env("OUK_PULL_TOKEN", t),
        None => cmd.env_remove("OUK_PULL_TOKEN"),
    };
    cmd.arg("--root")
        .arg(root)
        .args(["serve", "--listen", "127.0.0.1:0", "--kits"])
        .arg(kits)
        .args(extra)
        .env_remove("OUK_IMPORT_TOKEN");
    start_serve(cmd, log)
}

/// `ouk kit pull` with the pull token [`PULL_TOKEN`] (in `OUK_PULL_TOKEN`).
fn pull(dest: &Path, from: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    pull_with(dest, from, extra, Some(PULL_TOKEN))
}

/// `ouk kit pull` with `token` in `OUK_PULL_TOKEN`, or none.
fn pull_with(
    dest: &Path,
    from: &str,
    extra: &[&str],
    token: Option<&str>,
) -> (i32, serde_json::Value, String) {
    let mut cmd = Command::new(ouk());
    match token {
        Some(t) => cmd.env("OUK_PULL_TOKEN", t),
        None => cmd.env_remove("OUK_PULL_TOKEN"),
    };
    let out = cmd
        .args(["--json", "--root"])
        .arg(dest.with_extension("noroot"))
        .args(["kit", "pull", "--from", from, "--destination"])
        .arg(dest)
        .arg("--key")
        .arg(fixture("fixture.pub"))
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        code(&out),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spawn_pull(dest: &Path, from: &str) -> Child {
    Command::new(ouk())
        .args(["-q", "--root"])
        .arg(dest.with_extension("noroot"))
        .args(["kit", "pull", "--from", from, "--destination"])
        .arg(dest)
        .arg("--key")
        .arg(fixture("fixture.pub"))
        .env("OUK_PULL_TOKEN", PULL_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until `path` has at least `n` bytes (the transfer is rate-limited, so it gets
/// there long before it ends), then kill the client.
fn kill_when_partial(mut child: Child, path: &Path, n: u64, total: u64) -> u64 {
    wait_until(&format!("{} to hold {n} bytes", path.display()), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pull ended ({status}) before {n} bytes arrived");
        }
        std::fs::metadata(path).map_or(0, |m| m.len()) >= n
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let have = std::fs::metadata(path).map_or(0, |m| m.len());
    assert!(
        have < total,
        "the transfer finished before it could be killed"
    );
    have
}

fn kits_dir(tmp: &Path, day: u32, version: &str) -> (PathBuf, PathBuf) {
    let kits = tmp.join("kits");
    let bundle = build_signed_kit(&small_tree(tmp, day), version, &kits);
    (kits, bundle)
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_pull_fetches_the_bundle_and_sidecars_and_a_second_pull_fetches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve(&tmp.path().join("root"), &kits, &[]);
    let dest = tmp.path().join("dl");
    let (rc, v, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(v["signedBy"].is_string(), "{v}");
    let got = dest.join(name(&bundle));
    assert_eq!(sha256_file(&got), sha256_file(&bundle));
    for side in [".sha256", ".sig", ".metadata.json"] {
        let n = format!("{}{side}", name(&bundle));
        assert_eq!(
            sha256_file(&dest.join(&n)),
            sha256_file(&kits.join(&n)),
            "{n}"
        );
    }
    assert!(dest.join("manifest/offline-manifest.json").is_file());
    // The pulled directory imports like the original.
    let root = tmp.path().join("host");
    let imp = Command::new(ouk())
        .arg("--root")
        .arg(&root)
        .args(["kit", "import"])
        .arg(&got)
        .args(["--trust-key"])
        .arg(fixture("fixture.pub"))
        .args(["--free-margin", "0", "--max-kit-age", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&imp), 0, "{}", String::from_utf8_lossy(&imp.stderr));

    let (rc, v, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        v["fetched"], 0,
        "a complete download is not fetched again: {v}"
    );

    // Nothing there to pull: a clear error.
    let (rc, _, err) = pull(&tmp.path().join("dl2"), &s.base(), &["--kind", "delta"]);
    assert_eq!(rc, 1);
    assert!(err.contains("no delta latest"), "{err}");
    // A delta is published and pulled the same way (digest and signature verified).
    let day1 = build_signed_kit(&small_tree(tmp.path(), 1), "2025.10.2", &kits);
    let delta = common::hostile::make_delta(
        &bundle,
        &day1,
        &kits.join("stella-ouk-2025-10-24.delta.tgz"),
    );
    let (rc, v, err) = pull(&tmp.path().join("dl2"), &s.base(), &["--kind", "delta"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(v["bundle"]["kind"], "delta");
    assert!(v["signedBy"].is_string(), "{v}");
    assert_eq!(
        sha256_file(&tmp.path().join("dl2").join(name(&delta))),
        sha256_file(&delta)
    );
    // `latest` is now the day-1 kit.
    let (rc, v, err) = pull(&tmp.path().join("dl4"), &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(v["bundle"]["version"], "2025.10.2");
    // No key: the signature cannot be checked, and the pull does not claim success.
    let out = Command::new(ouk())
        .args(["--root"])
        .arg(tmp.path().join("nokeyroot"))
        .args(["kit", "pull", "--from", &s.base(), "--destination"])
        .arg(tmp.path().join("dl3"))
        .env("OUK_PULL_TOKEN", PULL_TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_killed_pull_resumes_with_a_range_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let size = std::fs::metadata(&bundle).unwrap().len();
    // About four seconds for the whole bundle.
    let rate = (size / 4).max(64 << 10).to_string();
    let s = serve(&tmp.path().join("root"), &kits, &["--limit-rate", &rate]);
    let dest = tmp.path().join("dl");
    let part = dest.join(format!("{}.part", name(&bundle)));
    let kept = kill_when_partial(spawn_pull(&dest, &s.base()), &part, size / 5, size);
    assert!(kept > 0);

    let (rc, v, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    let f = &v["files"][0];
    assert_eq!(f["how"], "resumed", "{v}");
    let from = f["resumedFrom"].as_u64().unwrap();
    assert!(
        from >= kept.min(size / 5),
        "resumed from {from}, had {kept}"
    );
    assert_eq!(
        f["fetched"].as_u64().unwrap(),
        size - from,
        "only the rest was fetched"
    );
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
    assert!(!part.exists());
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&name(&bundle)) && l.contains(" 206 ")),
        "the server saw a range request: {log}"
    );
}

#[test]
fn a_server_killed_mid_transfer_leaves_a_partial_file_the_next_pull_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let size = std::fs::metadata(&bundle).unwrap().len();
    let rate = (size / 4).max(64 << 10).to_string();
    let root = tmp.path().join("root");
    let s = serve(&root, &kits, &["--limit-rate", &rate]);
    let dest = tmp.path().join("dl");
    let part = dest.join(format!("{}.part", name(&bundle)));
    let mut client = spawn_pull(&dest, &s.base());
    wait_until(
        &format!("{} to hold {} bytes", part.display(), size / 5),
        || {
            if let Some(status) = client.try_wait().unwrap() {
                panic!("pull ended ({status}) before {} bytes arrived", size / 5);
            }
            std::fs::metadata(&part).map_or(0, |m| m.len()) >= size / 5
        },
    );
    drop(s); // SIGKILL: the connection breaks mid-body
    let out = client.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the pull must not claim success"
    );
    let kept = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(
        kept >= size / 5 && kept < size,
        "the partial file is kept: {kept}"
    );

    let s = serve(&root, &kits, &[]);
    let (rc, v, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(v["files"][0]["how"], "resumed", "{v}");
    assert_eq!(v["files"][0]["resumedFrom"].as_u64(), Some(kept));
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
}

#[test]
fn a_file_changed_on_the_server_mid_resume_is_refused_then_fetched_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let size = std::fs::metadata(&bundle).unwrap().len();
    let rate = (size / 4).max(64 << 10).to_string();
    let s = serve(&tmp.path().join("root"), &kits, &["--limit-rate", &rate]);
    let dest = tmp.path().join("dl");
    let part = dest.join(format!("{}.part", name(&bundle)));
    kill_when_partial(spawn_pull(&dest, &s.base()), &part, size / 5, size);

    // The publisher rebuilds the same version from another tree (same names, new bytes).
    let other = tmp.path().join("other");
    let rebuilt = build_signed_kit(&small_tree(tmp.path(), 1), "2025.10.1", &other);
    for entry in std::fs::read_dir(&other).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, kits.join(p.file_name().unwrap())).unwrap();
        }
    }
    assert_ne!(sha256_file(&rebuilt), sha256_file(&part));

    let (rc, _, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("changed on the server"), "{err}");
    assert!(
        !part.exists(),
        "the partial file of the old version is gone"
    );

    let (rc, v, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(v["files"][0]["how"], "downloaded");
    assert_eq!(
        sha256_file(&dest.join(name(&bundle))),
        sha256_file(&rebuilt)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx serving `dir` on loopback (as root it runs its workers as root too, so they can
/// read the test's private temporary directory).
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(dir: &Path, work: &Path, limit_rate: Option<u64>) -> Option<Nginx> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("OUK_SKIP_NGINX").is_some(),
            "nginx is not installed (apt-get install nginx-light, as .ci/run does); set OUK_SKIP_NGINX=1 to skip"
        );
        return None;
    };
    std::fs::create_dir_all(work).unwrap();
    let port = free_port();
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let conf = format!(
        "{user}daemon off;\nmaster_process off;\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {w}/access.log;\n  client_body_temp_path {w}/body;\n  proxy_temp_path {w}/proxy;\n  fastcgi_temp_path {w}/fastcgi;\n  uwsgi_temp_path {w}/uwsgi;\n  scgi_temp_path {w}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    root {d};\n    {rate}\n    location / {{ }}\n  }}\n}}\n",
        user = if is_root { "user root;\n" } else { "" },
        w = work.display(),
        d = dir.display(),
        rate = limit_rate
            .map(|r| format!("limit_rate {r};"))
            .unwrap_or_default(),
    );
    let conf_path = work.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // Killed and reaped when the guard drops, whatever happens below. One process
    // (`master_process off`): killing a master leaves its worker running, holding the
    // test's output pipe open (a `cargo test | grep` then never ends).
    let server = Nginx {
        child: Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        port,
    };
    // Ready when it accepts connections (a generous deadline: only an nginx that never
    // starts gets there).
    let deadline = std::time::Instant::now() + WAIT_DEADLINE;
    while std::time::Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(server);
    panic!(
        "nginx did not accept connections within {WAIT_DEADLINE:?}: {}",
        std::fs::read_to_string(work.join("error.log")).unwrap_or_default()
    );
}

#[test]
fn the_same_pull_works_against_nginx_including_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let idx = Command::new(ouk())
        .args(["--json", "kit", "index"])
        .arg(&kits)
        .output()
        .unwrap();
    assert_eq!(code(&idx), 0, "{}", String::from_utf8_lossy(&idx.stderr));
    assert!(kits.join("index.json").is_file());
    let size = std::fs::metadata(&bundle).unwrap().len();
    let Some(n) = nginx(
        &kits,
        &tmp.path().join("nginx"),
        Some((size / 4).max(64 << 10)),
    ) else {
        return;
    };
    let base = format!("http://127.0.0.1:{}/", n.port);
    let dest = tmp.path().join("dl");
    let part = dest.join(format!("{}.part", name(&bundle)));
    kill_when_partial(spawn_pull(&dest, &base), &part, size / 5, size);
    let (rc, v, err) = pull(&dest, &base, &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(v["files"][0]["how"], "resumed", "{v}");
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
    let access = std::fs::read_to_string(tmp.path().join("nginx/access.log")).unwrap();
    assert!(
        access
            .lines()
            .any(|l| l.contains(&name(&bundle)) && l.contains("\" 206 ")),
        "nginx served a range: {access}"
    );
}

/// Send `path` as the request target, byte for byte, with the pull token, and return the
/// status and body.
fn raw_get(port: u16, path: &str) -> (u16, String) {
    raw_get_with(
        port,
        path,
        &format!("Authorization: Bearer {PULL_TOKEN}\r\n"),
    )
}

/// [`raw_get`] with `headers` (each ending in CRLF) instead of the pull token.
fn raw_get_with(port: u16, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn no_url_reaches_outside_the_published_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    std::fs::write(tmp.path().join("secret.txt"), "TOPSECRET").unwrap();
    std::fs::write(kits.join("unlisted.txt"), "TOPSECRET").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", kits.join("passwd")).unwrap();
    let s = serve(&tmp.path().join("root"), &kits, &[]);
    let (ok, _) = raw_get(s.port, &format!("/ouk/{}", name(&bundle)));
    assert_eq!(ok, 200);
    for path in [
        "/ouk/../secret.txt",
        "/ouk/%2e%2e/secret.txt",
        "/ouk/%2E%2E%2Fsecret.txt",
        "/ouk/..%2fsecret.txt",
        "/ouk/manifest/../../secret.txt",
        "/ouk/manifest/%2e%2e/%2e%2e/secret.txt",
        "/ouk/%252e%252e/secret.txt",
        "/ouk/..%5csecret.txt",
        "/ouk/%2fetc%2fpasswd",
        "/ouk//etc/passwd",
        "/ouk/passwd",
        "/ouk/unlisted.txt",
        "/ouk/.%2e/secret.txt",
        "/ouk/%00",
        "/ouk/%c0%ae%c0%ae/secret.txt",
        "/../secret.txt",
        "/etc/passwd",
        "//etc/passwd",
    ] {
        let (status, body) = raw_get(s.port, path);
        assert!(
            matches!(status, 400 | 404),
            "{path}: status {status}\n{body}"
        );
        assert!(
            !body.contains("TOPSECRET") && !body.contains("root:"),
            "{path}: {body}"
        );
    }
}

fn curl_import(
    port: u16,
    token: Option<&str>,
    bundle: &Path,
    query: &str,
) -> (u16, serde_json::Value) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"]);
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    c.arg("-F").arg(format!("bundle=@{}", bundle.display()));
    let sig = PathBuf::from(format!("{}.sig", bundle.display()));
    if sig.is_file() {
        c.arg("-F").arg(format!("signature=@{}", sig.display()));
    }
    c.arg(format!(
        "http://127.0.0.1:{port}/api/offline-kit/import{query}"
    ));
    let out = c.output().expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_import_api_needs_its_token_and_answers_with_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let root = tmp.path().join("root");
    let t = Command::new(ouk())
        .arg("--root")
        .arg(&root)
        .args(["trust", "add"])
        .arg(fixture("fixture.pub"))
        .output()
        .unwrap();
    assert_eq!(code(&t), 0);

    // Without a configured token the API is off.
    let off = serve(&root, &kits, &[]);
    let (status, v) = curl_import(off.port, Some(TOKEN), &bundle, "");
    assert_eq!(status, 403, "{v}");
    drop(off);

    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // Owner-only, as `serve` requires (see `a_token_file_others_can_read_is_refused`).
    chmod(&token_file, 0o600);
    let s = serve(
        &root,
        &kits,
        &[
            "--import-token-file",
            token_file.to_str().unwrap(),
            "--max-kit-age",
            "0",
        ],
    );
    let (status, _) = curl_import(s.port, None, &bundle, "");
    assert_eq!(status, 401);
    let (status, _) = curl_import(s.port, Some("wrong-token-0123456789abcdef"), &bundle, "");
    assert_eq!(status, 401);

    // A damaged upload: refused with the importer's code, nothing activated.
    let bad = tmp.path().join("bad").join(name(&bundle));
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, &bytes).unwrap();
    std::fs::copy(
        format!("{}.sig", bundle.display()),
        format!("{}.sig", bad.display()),
    )
    .unwrap();
    let (status, v) = curl_import(s.port, Some(TOKEN), &bad, "");
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["exitCode"], 5, "the signature no longer matches: {v}");
    assert_eq!(v["step"], "verify");
    assert!(v["quarantined"].is_string(), "{v}");
    assert!(!root.join("current").exists());

    let (status, v) = curl_import(s.port, Some(TOKEN), &bundle, "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["report"]["outcome"], "activated");
    let (status, v) = curl_import(s.port, Some(TOKEN), &bundle, "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["report"]["outcome"], "already-active");

    let out = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!(
            "http://127.0.0.1:{}/api/offline-kit/status",
            s.port
        ))
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["generation"], v["report"]["generation"], "{st}");
    assert!(!s.log().contains(TOKEN), "the token is never logged");
    assert!(
        !root.join("uploads").read_dir().unwrap().any(|_| true),
        "uploads are cleaned"
    );
}

#[test]
fn a_client_that_never_reads_gives_its_connection_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, _) = kits_dir(tmp.path(), 0, "2025.10.1");
    // A big file, so the response cannot sit in the socket buffers.
    let big = kits.join("big.bin");
    std::fs::write(&big, vec![7u8; 64 << 20]).unwrap();
    let meta = serde_json::json!({
        "name": "big.bin", "kind": "kit", "version": "0", "channel": "edge",
        "sha256": sha256_file(&big), "size": 64u64 << 20,
        "manifest": {"name": "none", "sha256": "00", "size": 0},
        "createdAt": "2025-10-23T00:00:00Z", "generationId": "00", "signed": false
    });
    std::fs::write(kits.join("big.bin.metadata.json"), meta.to_string()).unwrap();
    let s = serve(
        &tmp.path().join("root"),
        &kits,
        &["--max-connections", "1", "--send-timeout", "1"],
    );
    let mut hog = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    // (With the pull token: big.bin is no bundle the server can read, so it counts as one
    // holding secrets.)
    write!(
        hog,
        "GET /ouk/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PULL_TOKEN}\r\n\r\n"
    )
    .unwrap();
    // The only slot is taken until the send timeout closes the hog's connection; then the
    // next client is served (no timing assumption beyond "eventually").
    let (status, _) = raw_get(s.port, "/ouk/index.json");
    assert_eq!(status, 200);
    assert!(s.log().contains("big.bin 200"), "{}", s.log());
    drop(hog);
}

#[test]
fn sigterm_lets_a_download_in_flight_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let size = std::fs::metadata(&bundle).unwrap().len();
    let rate = (size / 3).max(64 << 10).to_string();
    let mut s = serve(&tmp.path().join("root"), &kits, &["--limit-rate", &rate]);
    let dest = tmp.path().join("dl");
    let mut child = spawn_pull(&dest, &s.base());
    let part = dest.join(format!("{}.part", name(&bundle)));
    wait_until(
        &format!("{} to hold its first bytes", part.display()),
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("pull ended ({status}) before its first bytes arrived");
            }
            std::fs::metadata(&part).map_or(0, |m| m.len()) > 0
        },
    );
    let kill = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The bundle's transfer was in flight: it completes and reaches its name. (The
    // sidecars after it find the server gone; a re-run fetches them.)
    let _ = child.wait_with_output().unwrap();
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "serve exits cleanly: {}", s.log());
}

#[test]
fn symbolic_links_planted_in_the_destination_redirect_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve(&tmp.path().join("root"), &kits, &[]);
    let dest = tmp.path().join("dl");
    std::fs::create_dir_all(&dest).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    let etag_victim = outside.join("etag-victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::write(&etag_victim, b"\"some-etag\"").unwrap();
    let n = name(&bundle);
    // A partial file and its ETag that point elsewhere, and a final name that does too.
    std::os::unix::fs::symlink(&victim, dest.join(format!("{n}.part"))).unwrap();
    std::os::unix::fs::symlink(&etag_victim, dest.join(format!("{n}.part.etag"))).unwrap();
    std::os::unix::fs::symlink(&victim, dest.join(format!("{n}.sha256"))).unwrap();

    let (rc, _, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read(&etag_victim).unwrap(), b"\"some-etag\"");
    for f in [n.clone(), format!("{n}.sha256")] {
        let p = dest.join(&f);
        assert!(
            std::fs::symlink_metadata(&p).unwrap().file_type().is_file(),
            "{f} is a regular file now"
        );
        assert_eq!(sha256_file(&p), sha256_file(&kits.join(&f)), "{f}");
    }
    assert!(!dest.join(format!("{n}.part")).exists());
    assert!(std::fs::symlink_metadata(dest.join(format!("{n}.part.etag"))).is_err());
}

#[test]
fn kit_index_writes_nothing_through_a_link_planted_at_its_temporary_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, _) = kits_dir(tmp.path(), 0, "2025.10.1");
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let (rc, err) = run_with_planted_temp_links(
        &kits,
        &["index.json"],
        &victim,
        &["kit", "index", kits.to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let index = kits.join("index.json");
    assert!(std::fs::symlink_metadata(&index).unwrap().is_file());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    assert_eq!(v["bundles"].as_array().map(Vec::len), Some(1), "{v}");
}

/// A static web server for a hostile mirror: answers every GET with the file at that path
/// under `dir` (no ranges, no ETag), 404 when there is none. Runs until the test ends.
fn static_server(dir: &Path) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = std::fs::read(dir.join(path.trim_start_matches('/')));
            let _ = match body {
                Ok(b) => write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .and_then(|()| conn.write_all(&b)),
                Err(_) => write!(
                    conn,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
        }
    });
    port
}

fn listed(path: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"path": path, "size": bytes.len(), "sha256": common::hostile::sha256_hex(bytes)})
}

#[test]
fn a_hostile_index_cannot_make_pull_write_files_that_are_not_the_bundle_s() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, old) = kits_dir(tmp.path(), 0, "2025.10.1");
    let new = build_signed_kit(&small_tree(tmp.path(), 1), "2025.10.2", &kits);
    let idx = Command::new(ouk())
        .args(["kit", "index"])
        .arg(&kits)
        .output()
        .unwrap();
    assert_eq!(code(&idx), 0, "{}", String::from_utf8_lossy(&idx.stderr));
    // An honest pull of the old kit first.
    let honest = static_server(&kits);
    let dest = tmp.path().join("dl");
    let (rc, _, err) = pull(
        &dest,
        &format!("http://127.0.0.1:{honest}/"),
        &["2025.10.1"],
    );
    assert_eq!(rc, 0, "{err}");
    let old_sha = sha256_file(&dest.join(name(&old)));

    // The mirror lists, for the new kit, a replacement for the old bundle and a script.
    let mirror = tmp.path().join("mirror");
    common::hostile::copy_tree(&kits, &mirror);
    let evil = b"#!/bin/sh\necho owned\n";
    let garbage = b"not the old kit";
    std::fs::write(mirror.join("evil.sh"), evil).unwrap();
    std::fs::write(mirror.join(name(&old)), garbage).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kits.join("index.json")).unwrap()).unwrap();
    let entry = index["bundles"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|b| b["name"] == name(&new).as_str())
        .unwrap();
    let files = entry["files"].as_array_mut().unwrap();
    files.push(listed("evil.sh", evil));
    files.push(listed(&name(&old), garbage));
    std::fs::write(mirror.join("index.json"), index.to_string()).unwrap();
    let port = static_server(&mirror);
    let (rc, _, err) = pull(&dest, &format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("evil.sh"), "{err}");
    assert!(!dest.join("evil.sh").exists());
    assert_eq!(sha256_file(&dest.join(name(&old))), old_sha);
    assert!(!dest.join(name(&new)).exists(), "nothing was fetched");

    // A bundle that the index names after the old one is not this version's bundle.
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kits.join("index.json")).unwrap()).unwrap();
    let entry = index["bundles"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|b| b["name"] == name(&new).as_str())
        .unwrap();
    std::fs::copy(&new, mirror.join(name(&old))).unwrap();
    entry["name"] = name(&old).into();
    entry["files"] = serde_json::json!([{
        "path": name(&old), "size": entry["size"], "sha256": entry["sha256"]
    }]);
    std::fs::write(mirror.join("index.json"), index.to_string()).unwrap();
    let (rc, _, err) = pull(&dest, &format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(rc, 11, "{err}");
    assert_eq!(sha256_file(&dest.join(name(&old))), old_sha);
}

#[test]
fn a_link_planted_at_dest_manifest_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve(&tmp.path().join("root"), &kits, &[]);
    let dest = tmp.path().join("dl");
    std::fs::create_dir_all(&dest).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("manifest")).unwrap();
    let (rc, _, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("manifest"), "{err}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing was written through the link"
    );
    // With the link gone the same pull completes.
    std::fs::remove_file(dest.join("manifest")).unwrap();
    let (rc, _, err) = pull(&dest, &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
    assert!(dest.join("manifest/offline-manifest.json").is_file());
}

/// The import token is the key to activating kits on the host: a token file that group or
/// others can read (0644, what `echo TOKEN > file` makes under the usual umask) was
/// accepted. `serve` now refuses to start on it (exit 11, naming file and mode) and starts
/// on 0600 and 0400.
#[test]
fn a_token_file_others_can_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let root = tmp.path().join("root");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        chmod(&token_file, mode);
        // Before the fix this served forever: wait a bounded time, then kill it.
        let mut child = Command::new(ouk())
            .arg("--root")
            .arg(&root)
            .args(["serve", "--listen", "127.0.0.1:0", "--kits"])
            .arg(&kits)
            .arg("--import-token-file")
            .arg(&token_file)
            .env_remove("OUK_IMPORT_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let status = status.unwrap_or_else(|| panic!("serve started on a {mode:o} token file"));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(11), "{mode:o}: {err}");
        assert!(
            err.contains(&format!("{mode:o}")) && err.contains("token"),
            "{mode:o}: {err}"
        );
        assert!(!err.contains(TOKEN), "the token is never printed: {err}");
    }
    for mode in [0o600, 0o400] {
        chmod(&token_file, mode);
        let s = serve(
            &root,
            &kits,
            &["--import-token-file", token_file.to_str().unwrap()],
        );
        let (status, _) = curl_import(s.port, None, &bundle, "");
        assert_eq!(status, 401, "{mode:o}: the API is on and wants the token");
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The status and body of `GET /ouk/<path>` with `headers`.
fn get_as(s: &Server, path: &str, headers: &str) -> (u16, String) {
    raw_get_with(s.port, &format!("/ouk/{path}"), headers)
}

/// A file holding `token` with `mode`.
fn token_file(dir: &Path, name: &str, token: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn descriptor(kits: &Path, bundle: &str) -> serde_json::Value {
    let p = kits.join(format!("{bundle}.metadata.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_kit_holding_secrets_is_not_handed_out_without_the_pull_token() {
    // The attack: anyone who can reach `ouk serve` downloads the kit and unpacks the
    // Policy Gateway's DPoP private key from it.
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let n = name(&bundle);
    assert_eq!(
        descriptor(&kits, &n)["secrets"],
        true,
        "kit build records it"
    );
    let s = serve_with(&tmp.path().join("root"), &kits, &[], None);
    for headers in ["", "Range: bytes=0-99\r\n", "Authorization: Bearer x\r\n"] {
        let (status, body) = get_as(&s, &n, headers);
        assert_eq!(status, 403, "{headers:?}: {body}");
        // The refusal says what is refused and why (no flag: an HTTP client has none),
        // and gives the stable reason a client keys its advice on.
        let refusal: serde_json::Value =
            serde_json::from_str(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        assert_eq!(
            refusal["error"],
            "this bundle holds secrets (files under secrets/, such as the Policy Gateway's DPoP key) and this server has no pull token configured: it hands them to nobody",
            "{body}"
        );
        assert_eq!(refusal["reason"], "secrets-not-served", "{body}");
        assert_eq!(refusal["secrets"], true, "{body}");
    }
    // The sidecars stay public, and the index says the kit needs the token.
    for side in [
        format!("{n}.sha256"),
        format!("{n}.sig"),
        format!("{n}.metadata.json"),
        "manifest/offline-manifest.json".into(),
    ] {
        assert_eq!(get_as(&s, &side, "").0, 200, "{side}");
    }
    let (status, body) = get_as(&s, "index.json", "");
    assert_eq!(status, 200);
    let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
    let index: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(index["bundles"][0]["secrets"], true, "{index}");
    // A pull without the token fails clearly, and leaves no bundle behind.
    let dest = tmp.path().join("dl");
    let (rc, _, err) = pull_with(&dest, &s.base(), &[], None);
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("--token-file"), "{err}");
    assert!(!dest.join(&n).exists());

    // A descriptor from an older build (no `secrets`) or one that says `false` is not
    // taken at its word: the server reads the bundle.
    let meta_path = kits.join(format!("{n}.metadata.json"));
    let mut meta = descriptor(&kits, &n);
    meta.as_object_mut().unwrap().remove("secrets");
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    assert_eq!(get_as(&s, "index.json", "").0, 200);
    assert_eq!(get_as(&s, &n, "").0, 403, "older descriptor");
    meta["secrets"] = false.into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    assert_eq!(get_as(&s, "index.json", "").0, 200);
    assert_eq!(get_as(&s, &n, "").0, 403, "descriptor saying false");

    // A delta whose target holds secrets is refused the same way.
    let day1 = build_signed_kit(&small_tree(tmp.path(), 1), "2025.10.2", &kits);
    let delta = common::hostile::make_delta(
        &bundle,
        &day1,
        &kits.join("stella-ouk-2025-10-24.delta.tgz"),
    );
    assert_eq!(descriptor(&kits, &name(&delta))["secrets"], true);
    assert_eq!(get_as(&s, "index.json", "").0, 200);
    let (status, body) = get_as(&s, &name(&delta), "");
    assert_eq!(status, 403, "{body}");
}

#[test]
fn the_pull_token_opens_a_kit_holding_secrets_to_kit_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let n = name(&bundle);
    let server_token = token_file(tmp.path(), "server-token", PULL_TOKEN, 0o600);
    let s = serve_with(
        &tmp.path().join("root"),
        &kits,
        &["--pull-token-file", server_token.to_str().unwrap()],
        None,
    );
    let (status, body) = get_as(&s, &n, "");
    assert_eq!(status, 401, "{body}");
    let refusal: serde_json::Value =
        serde_json::from_str(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(refusal["reason"], "secrets-need-token", "{body}");
    assert_eq!(
        get_as(&s, &n, "Authorization: Bearer wrong-token-0123456789\r\n").0,
        401
    );
    let (status, _) = get_as(&s, &n, &format!("Authorization: Bearer {PULL_TOKEN}\r\n"));
    assert_eq!(status, 200);

    // `kit pull --token-file`, private.
    let good = token_file(tmp.path(), "pull-token", PULL_TOKEN, 0o600);
    let dest = tmp.path().join("dl");
    let (rc, _, err) = pull_with(
        &dest,
        &s.base(),
        &["--token-file", good.to_str().unwrap()],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(sha256_file(&dest.join(&n)), sha256_file(&bundle));
    // Readable by others: refused before anything is sent.
    let open = token_file(tmp.path(), "open-token", PULL_TOKEN, 0o644);
    let dest2 = tmp.path().join("dl2");
    let (rc, _, err) = pull_with(
        &dest2,
        &s.base(),
        &["--token-file", open.to_str().unwrap()],
        None,
    );
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!dest2.join(&n).exists());
    // A wrong token: refused by the server, clearly.
    let (rc, _, err) = pull_with(&dest2, &s.base(), &[], Some("wrong-token-0123456789"));
    assert_eq!(rc, 11, "{err}");
    assert!(err.contains("401"), "{err}");
    // OUK_PULL_TOKEN.
    let (rc, _, err) = pull_with(&dest2, &s.base(), &[], Some(PULL_TOKEN));
    assert_eq!(rc, 0, "{err}");
    assert_eq!(sha256_file(&dest2.join(&n)), sha256_file(&bundle));
    assert!(!s.log().contains(PULL_TOKEN), "the token is never logged");
}

#[test]
fn public_secrets_hands_a_kit_holding_secrets_to_anyone() {
    let help = Command::new(ouk())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--public-secrets") && help.contains("--pull-token-file"),
        "{help}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve_with(&tmp.path().join("root"), &kits, &["--public-secrets"], None);
    assert_eq!(get_as(&s, &name(&bundle), "").0, 200);
    let dest = tmp.path().join("dl");
    let (rc, _, err) = pull_with(&dest, &s.base(), &[], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
}

#[test]
fn a_kit_without_secrets_is_served_to_anyone() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    std::fs::remove_dir_all(release.join("secrets")).unwrap();
    let kits = tmp.path().join("kits");
    let bundle = build_signed_kit(&release, "2025.10.1", &kits);
    assert_eq!(descriptor(&kits, &name(&bundle))["secrets"], false);
    let s = serve_with(&tmp.path().join("root"), &kits, &[], None);
    assert_eq!(get_as(&s, &name(&bundle), "").0, 200);
    let dest = tmp.path().join("dl");
    let (rc, _, err) = pull_with(&dest, &s.base(), &[], None);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(sha256_file(&dest.join(name(&bundle))), sha256_file(&bundle));
}

/// Slowloris: a client that opens a connection and never finishes its request head holds a
/// connection slot until `--header-timeout`, then is cut off (docs/security.md). The
/// deadline here is 30 s, far past the 1 s timeout: a server without the timeout keeps the
/// connection open and the read fails with "timed out" instead of ending.
#[test]
fn a_request_head_that_never_ends_is_cut_at_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, _) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve(
        &tmp.path().join("root"),
        &kits,
        &["--header-timeout", "1", "--max-connections", "2"],
    );
    // Two slow clients take both connection slots.
    let mut slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"GET /ouk/index.json HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c
        })
        .collect();
    for c in &mut slow {
        let mut rest = Vec::new();
        let ended = c.read_to_end(&mut rest);
        assert!(
            ended.is_ok(),
            "the server kept a half-sent request open: {ended:?}"
        );
        let text = String::from_utf8_lossy(&rest);
        assert!(
            rest.is_empty() || text.starts_with("HTTP/1.1 408"),
            "cut off, not answered: {text}"
        );
    }
    // And the slots are free again: a normal request is served.
    let (status, _) = raw_get_with(s.port, "/ouk/index.json", "");
    assert_eq!(status, 200);
}

/// A directory on the way to a published file swapped for a symlink after the index was
/// made: serving re-checks the path, so nothing is read through the link
/// (docs/security.md, "publishing through a symlinked directory").
#[test]
fn a_directory_swapped_for_a_symlink_after_indexing_is_not_served_through() {
    let tmp = tempfile::tempdir().unwrap();
    let (kits, _) = kits_dir(tmp.path(), 0, "2025.10.1");
    let s = serve(&tmp.path().join("root"), &kits, &[]);
    let listed = "manifest/offline-manifest.json";
    assert_eq!(raw_get(s.port, &format!("/ouk/{listed}")).0, 200);
    // The outside directory holds a file of the same name with other bytes.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(
        outside.join("offline-manifest.json"),
        b"{\"from\":\"outside\"}",
    )
    .unwrap();
    std::fs::rename(kits.join("manifest"), tmp.path().join("manifest-moved")).unwrap();
    std::os::unix::fs::symlink(&outside, kits.join("manifest")).unwrap();
    let (status, body) = raw_get(s.port, &format!("/ouk/{listed}"));
    assert_ne!(status, 200, "served through the link: {body}");
    assert!(!body.contains("outside"), "{body}");
}

/// The progress bar: on a terminal, a pull that takes seconds (a rate-limited server: at
/// least three, however fast the machine) shows the phase, percent and ETA of the known
/// total; on a pipe, or with `-q`, nothing.
#[test]
fn a_long_pull_shows_percent_and_eta_on_a_terminal_and_nothing_on_a_pipe() {
    if !common::require_tool("script", &["--version"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (kits, bundle) = kits_dir(tmp.path(), 0, "2025.10.1");
    let size = std::fs::metadata(&bundle).unwrap().len();
    let rate = (size / 3).max(64 << 10).to_string();
    let s = serve(&tmp.path().join("root"), &kits, &["--limit-rate", &rate]);
    let pull_command = |dest: &Path, quiet: bool| {
        format!(
            "{} {}--root {} kit pull --from {} --destination {} --key {}",
            ouk().display(),
            if quiet { "-q " } else { "" },
            dest.with_extension("noroot").display(),
            s.base(),
            dest.display(),
            fixture("fixture.pub").display()
        )
    };
    // On a terminal (util-linux `script` gives the pull a pty).
    let on_tty = |dest: &Path, quiet: bool| {
        let o = Command::new("script")
            .args(["-qec", &pull_command(dest, quiet), "/dev/null"])
            .env("OUK_PULL_TOKEN", PULL_TOKEN)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let screen = on_tty(&tmp.path().join("tty"), false);
    assert!(screen.contains("pull ["), "no bar: {screen}");
    assert!(screen.contains('%') && screen.contains("eta"), "{screen}");
    let screen = on_tty(&tmp.path().join("tty-quiet"), true);
    assert!(!screen.contains("pull ["), "-q drew a bar: {screen}");
    // On a pipe: no bar, no escape sequences.
    let (rc, _, err) = pull(&tmp.path().join("pipe"), &s.base(), &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(!err.contains("pull [") && !err.contains('\u{1b}'), "{err}");
}
