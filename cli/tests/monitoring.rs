//! Monitoring (issue 21): what a monitoring account and a Prometheus server see.
//!
//! - The read-only commands (`status`, `gen list`, `trust list`) work for a user that
//!   cannot write the root (`nobody`, through `setpriv`), change nothing under it, and never
//!   create a root: `--root /missing status` is exit 1 and leaves no directory behind.
//! - `status` exits 9 when nothing is active or the active kit is stale, so cron and
//!   Nagios-style checks see it; `--json status` carries the same verdict.
//! - `serve` answers `GET /healthz` and `GET /metrics` without the import token (or with a
//!   read-only metrics token), and the metrics parse with the Prometheus project's own
//!   Python parser (`prometheus_client`).
//!
//! (That status and an import never lock each other out is in `concurrency.rs`, which has
//! the tools to pause an importer holding the lock.)

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `ouk status`'s exit code when the host is not current (nothing active, or stale).
const NOT_CURRENT: i32 = 9;

/// Every path under `dir` with its size, mode and modification time: what "changed
/// nothing" is checked against.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), (m.len(), m.mode(), m.mtime(), m.mtime_nsec()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Run `ouk --root ROOT args...` as `nobody` (uid/gid 65534, no groups), with `setpriv`.
fn run_as_nobody(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(ouk())
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("OUK_ROOT")
        .output()
        .expect("setpriv (util-linux)")
}

/// A monitoring account that cannot write the root: `status`, `--json status`, `gen list`
/// and `trust list` answer with what is active, and nothing under the root changes (no lock
/// file, no directory, no index write). Before the fix each of them opened `ROOT/lock` for
/// writing and failed with "Permission denied".
#[test]
fn a_user_that_cannot_write_the_root_can_read_status_gen_list_and_trust_list() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("OUK_SKIP_PRIVILEGED").is_some(),
            "this test switches to another user and must run as root (CI does); set OUK_SKIP_PRIVILEGED=1 to skip it"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The temp dir must be traversable for the other user.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = trusted_root(tmp.path(), "root");
    let fresh = kit_created(tmp.path(), 0, "2025.10.0", &from_now(-3600));
    let (rc, r) = import_kit(&root, &fresh, &[]);
    assert_eq!(rc, 0, "{r}");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = listing(&root);

    let o = run_as_nobody(&root, &["--json", "status"]);
    let (rc, st) = json_output(&["status"], &o);
    assert_eq!(rc, 0, "{st} {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(st["generation"], r["generation"], "{st}");
    assert_eq!(st["labels"]["version"], "2025.10.0", "{st}");
    assert_eq!(st["verdict"], "ok", "{st}");

    let o = run_as_nobody(&root, &["status"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2025.10.0"));

    let o = run_as_nobody(&root, &["--json", "gen", "list"]);
    let (rc, gens) = json_output(&["gen", "list"], &o);
    assert_eq!(rc, 0, "{gens} {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(gens[0]["generation"], r["generation"], "{gens}");
    assert_eq!(gens[0]["current"], true, "{gens}");

    let o = run_as_nobody(&root, &["--json", "trust", "list"]);
    let (rc, keys) = json_output(&["trust", "list"], &o);
    assert_eq!(rc, 0, "{keys} {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");

    assert_eq!(
        listing(&root),
        before,
        "a read-only command changed the root"
    );
}

/// `--root` naming nothing: exit 1 with a clear message, and no directory is made. Before
/// the fix `status` created the whole tree and said "no active generation", exit 0.
#[test]
fn a_missing_root_is_exit_1_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["gen", "list"],
        &["trust", "list"],
    ] {
        let o = run(&missing, args);
        assert_eq!(code(&o), 1, "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("no ouk root") && err.contains(&missing.display().to_string()),
            "{args:?}: the message names the missing root: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    let (_, doc) = run_json(&missing, &["status"]);
    assert_eq!(doc["exitCode"], 1, "{doc}");
}

/// `status` is a check: 0 only when a kit is active and within the staleness window; 9
/// when nothing is active or the active kit is stale, with the verdict in `--json`.
#[test]
fn status_exits_9_when_nothing_is_active_or_the_kit_is_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");

    // A root with nothing active.
    let (rc, st) = run_json(&root, &["status"]);
    assert_eq!(rc, NOT_CURRENT, "{st}");
    assert_eq!(st["verdict"], "none", "{st}");
    assert_eq!(st["exitCode"], NOT_CURRENT, "{st}");
    let o = run(&root, &["status"]);
    assert_eq!(code(&o), NOT_CURRENT);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no active generation"));

    // A fresh kit: ok.
    let fresh = kit_created(tmp.path(), 0, "2025.10.0", &from_now(-3600));
    let (rc, r) = import_kit(&root, &fresh, &[]);
    assert_eq!(rc, 0, "{r}");
    let (rc, st) = run_json(&root, &["status"]);
    assert_eq!(rc, 0, "{st}");
    assert_eq!(st["verdict"], "ok", "{st}");
    assert_eq!(st["exitCode"], 0, "{st}");
    assert_eq!(st["stale"], false, "{st}");

    // A kit created 40 days ago, past the default window of 7 days: stale.
    let old = kit_created(tmp.path(), 0, "2025.10.1", &from_now(-40 * 86400));
    let (rc, r) = import_kit(&root, &old, &["--max-kit-age", "0"]);
    assert_eq!(rc, 0, "{r}");
    let (rc, st) = run_json(&root, &["status"]);
    assert_eq!(rc, NOT_CURRENT, "{st}");
    assert_eq!(st["verdict"], "stale", "{st}");
    assert_eq!(st["stale"], true, "{st}");
    let o = run(&root, &["status"]);
    assert_eq!(code(&o), NOT_CURRENT);
    assert!(String::from_utf8_lossy(&o.stdout).contains("STALE"));
    // The window is the check's to set, as the importer's: 50 days makes it current.
    let (rc, st) = run_json(&root, &["status", "--max-kit-age", "50"]);
    assert_eq!(rc, 0, "{st}");
    assert_eq!(st["verdict"], "ok", "{st}");

    // The exit code is documented where operators look.
    let help = String::from_utf8_lossy(&run(&root, &["status", "--help"]).stdout).into_owned();
    assert!(help.contains(" 9"), "status --help names exit 9: {help}");
}

const IMPORT_TOKEN: &str = "import-token-0123456789abcdef";
const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

fn serve(root: &Path, kits: &Path, extra: &[&str]) -> Server {
    let log = root.with_extension("serve.log");
    let mut cmd = Command::new(ouk());
    cmd.arg("--root")
        .arg(root)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-kit-age",
            "0",
            "--kits",
        ])
        .arg(kits)
        .args(extra)
        .env("OUK_IMPORT_TOKEN", IMPORT_TOKEN)
        .env_remove("OUK_PULL_TOKEN")
        .env_remove("OUK_METRICS_TOKEN");
    start_serve(cmd, log)
}

/// `GET path` with `headers` (each ending in CRLF): status, headers and body.
fn get(port: u16, path: &str, headers: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// An import through the API (curl, multipart): the HTTP status and the answer's exit code.
fn api_import(port: u16, bundle: &Path) -> (u16, i64) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {IMPORT_TOKEN}"))
        .arg("-F")
        .arg(format!("bundle=@{}", bundle.display()));
    let sig = PathBuf::from(format!("{}.sig", bundle.display()));
    if sig.is_file() {
        c.arg("-F").arg(format!("signature=@{}", sig.display()));
    }
    c.arg(format!("http://127.0.0.1:{port}/api/offline-kit/import"));
    let out = c.output().expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    (
        status.trim().parse().unwrap(),
        v["exitCode"].as_i64().unwrap_or(-1),
    )
}

/// The exposition `text` parsed by the Prometheus project's Python client
/// (`prometheus_client.parser`): each sample as (name, labels, value), and each family's
/// type. A line it cannot parse fails the test with the parser's message.
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;
fn parse_metrics(text: &str) -> (Samples, BTreeMap<String, String>) {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"samples": [], "types": {}}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out["types"][fam.name] = fam.type
    for s in fam.samples:
        out["samples"].append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "prometheus_client (pip install prometheus-client) refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                s[0].as_str().unwrap().to_string(),
                labels,
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (samples, types)
}

/// The one sample named `name` whose labels include `labels`.
fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name}{labels:?} in {samples:#?}"
    );
    found[0]
}

/// `serve` answers `/healthz` and `/metrics` to anyone (no import token), and the metrics
/// are valid Prometheus text: the active generation and version, the kit's age, the API's
/// imports by outcome with the last one's result and time, bytes served, quota counters.
#[test]
fn serve_exposes_healthz_and_prometheus_metrics_without_the_import_token() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let started = std::time::Instant::now();
    // The kit's output directory is the published one.
    let published = kit_created(tmp.path(), 0, "2025.10.0", &from_now(-3600));
    let kits = published.parent().unwrap().to_path_buf();
    // A scan counted in the quota ledger.
    let o = run(
        &root,
        &[
            "quota",
            "consume",
            "--subject",
            "anon:192.0.2.1",
            "--no-wait",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    // --public-secrets: the small tree holds the Policy Gateway's key, and this test
    // downloads the bundle without a pull token to count the bytes served.
    let s = serve(&root, &kits, &["--public-secrets"]);

    let (status, _, body) = get(s.port, "/healthz", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.trim(), "ok");

    // One import through the API that activates, one that is refused (not a kit).
    assert_eq!(api_import(s.port, &published), (200, 0));
    let junk = tmp.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not a kit").unwrap();
    let (status, refused_code) = api_import(s.port, &junk);
    assert_ne!(status, 200);
    assert!(refused_code > 0, "{status} {refused_code}");
    // Bytes served: the bundle, whole.
    let size = std::fs::metadata(&published).unwrap().len();
    let (status, _, _) = get(
        s.port,
        &format!("/ouk/{}", published.file_name().unwrap().to_str().unwrap()),
        "",
    );
    assert_eq!(status, 200);

    let (status, head, text) = get(s.port, "/metrics", "");
    assert_eq!(status, 200, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let (samples, types) = parse_metrics(&text);
    let (_, st) = run_json(&root, &["status"]);
    let generation = st["generation"].as_str().unwrap();
    assert_eq!(
        sample(
            &samples,
            "ouk_active_generation_info",
            &[
                ("generation", generation),
                ("version", "2025.10.0"),
                ("channel", "edge")
            ]
        ),
        1.0
    );
    let age = sample(&samples, "ouk_kit_age_seconds", &[]);
    // Created an hour before the kit was built, some seconds before `started`.
    let bound = 3600.0 + started.elapsed().as_secs_f64() + 5.0;
    assert!(
        (3600.0..bound).contains(&age),
        "kit age {age}, at most {bound}"
    );
    assert_eq!(sample(&samples, "ouk_kit_stale", &[]), 0.0);
    assert_eq!(sample(&samples, "ouk_generations", &[]), 1.0);
    assert!(
        sample(
            &samples,
            "ouk_active_generation_activated_timestamp_seconds",
            &[]
        ) > 1.7e9
    );
    assert_eq!(
        sample(&samples, "ouk_imports_total", &[("outcome", "activated")]),
        1.0
    );
    assert_eq!(
        sample(&samples, "ouk_imports_total", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(sample(&samples, "ouk_last_import_success", &[]), 0.0);
    assert!(sample(&samples, "ouk_last_import_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(
        sample(&samples, "ouk_last_import_exit_code", &[]),
        refused_code as f64
    );
    assert!(
        sample(&samples, "ouk_served_bytes_total", &[]) >= size as f64,
        "served at least the bundle"
    );
    assert_eq!(sample(&samples, "ouk_quota_scans", &[]), 1.0);
    assert_eq!(
        sample(&samples, "ouk_quota_subjects", &[("class", "anonymous")]),
        1.0
    );
    assert_eq!(sample(&samples, "ouk_quota_throttled_subjects", &[]), 0.0);
    assert_eq!(
        types.get("ouk_imports").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types.get("ouk_served_bytes").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types.get("ouk_kit_age_seconds").map(String::as_str),
        Some("gauge")
    );
    // Tokens never reach the log.
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(!log.contains(IMPORT_TOKEN));
}

/// With `--metrics-token-file`, `/metrics` needs that read-only token (the import token
/// does not open it, and it does not open the import API); `/healthz` stays open.
#[test]
fn a_metrics_token_guards_metrics_and_opens_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let root = trusted_root(tmp.path(), "root");
    let kits = tmp.path().join("kits");
    std::fs::create_dir_all(&kits).unwrap();
    let token = tmp.path().join("metrics.token");
    std::fs::write(&token, METRICS_TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = serve(
        &root,
        &kits,
        &["--metrics-token-file", token.to_str().unwrap()],
    );
    assert_eq!(get(s.port, "/healthz", "").0, 200);
    assert_eq!(get(s.port, "/metrics", "").0, 401);
    let import = format!("Authorization: Bearer {IMPORT_TOKEN}\r\n");
    assert_eq!(get(s.port, "/metrics", &import).0, 401);
    let metrics = format!("Authorization: Bearer {METRICS_TOKEN}\r\n");
    let (status, _, text) = get(s.port, "/metrics", &metrics);
    assert_eq!(status, 200, "{text}");
    let (samples, _) = parse_metrics(&text);
    // Nothing active: no info sample, and the status gauge says so.
    assert!(
        !samples.iter().any(|s| s.0 == "ouk_active_generation_info"),
        "{samples:?}"
    );
    assert_eq!(sample(&samples, "ouk_generations", &[]), 0.0);
    // The metrics token does not open the import API.
    assert_eq!(get(s.port, "/api/offline-kit/status", &metrics).0, 401);
}
