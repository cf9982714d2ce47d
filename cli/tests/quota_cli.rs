//! End-to-end: `ouk quota consume` and `ouk quota status` — the scanner's offline
//! fair-use ledger. The clock is injected (`OUK_QUOTA_NOW`) and throttling is reported
//! (`--no-wait`), so nothing here sleeps or depends on timing.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::hostile::fixture;
use common::*;
use ouk_kit::quota::{LIMIT_REACHED, sign_token};
use ouk_kit::sign::SigningKey;

const DAY1: &str = "2025-10-24T23:59:50Z";
const DAY2: &str = "2025-10-25T00:00:00Z";
/// DAY1 in Unix seconds.
const DAY1_UNIX: i64 = 1_761_350_390;

fn ouk_at(root: &Path, now: &str, args: &[&str]) -> Command {
    let mut c = Command::new(ouk());
    c.arg("--root")
        .arg(root)
        .args(args)
        .env_remove("OUK_ROOT")
        .env_remove("OUK_QUOTA_ANONYMOUS_LIMIT")
        .env_remove("OUK_QUOTA_TOKEN_LIMIT")
        .env_remove("OUK_QUOTA_REMINDER_AT")
        .env("OUK_QUOTA_NOW", now);
    c
}

/// `ouk --json quota ARGS` at `now`: (exit code, JSON).
fn quota(root: &Path, now: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--json", "quota"];
    all.extend_from_slice(args);
    let out = ouk_at(root, now, &all).output().expect("run ouk");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ouk {all:?}: stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code(&out), v)
}

fn consume(root: &Path, now: &str, subject: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["consume", "--no-wait", "--subject", subject];
    args.extend_from_slice(extra);
    let (rc, v) = quota(root, now, &args);
    assert_eq!(rc, 0, "consume never refuses: {v}");
    v
}

fn fixture_signing_key() -> SigningKey {
    SigningKey::from_pem_file(&fixture("fixture.key"), Some(b"hello")).expect("fixture key")
}

fn jwt(claims: &str) -> String {
    let key = fixture_signing_key();
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid());
    sign_token(&key, &header, claims).expect("sign")
}

fn trusted_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    let o = run(
        &root,
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    root
}

#[test]
fn anonymous_scans_are_throttled_never_refused_and_reset_only_at_utc_midnight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = trusted_root(dir.path());
    let ip = "anon:198.51.100.7";
    for n in 1..=33 {
        let v = consume(&root, DAY1, ip, &[]);
        assert_eq!(v["scansToday"], n);
        assert_eq!(v["class"], "anonymous");
        assert_eq!(v["delaySeconds"], 0, "{v}");
        assert_eq!(v["overLimit"], false);
    }
    let v = consume(&root, DAY1, ip, &[]);
    assert_eq!(v["scansToday"], 34);
    assert_eq!(v["overLimit"], true);
    assert_eq!(v["delaySeconds"], 5);
    assert_eq!(v["waited"], false);
    assert_eq!(v["resetsAt"], "2025-10-25T00:00:00Z");
    assert!(
        v["message"].as_str().unwrap().contains(LIMIT_REACHED),
        "{v}"
    );

    // The human answer says it too, and still exits 0.
    let out = ouk_at(
        &root,
        DAY1,
        &["quota", "consume", "--no-wait", "--subject", ip],
    )
    .output()
    .expect("run");
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("limit reached; counters reset at 00:00 UTC"),
        "{text}"
    );

    // A real import between consumes does not reset the counters.
    let bundle = build_signed_kit(
        &small_tree(dir.path(), 0),
        "2025.10.0",
        &dir.path().join("dist"),
    );
    let (rc, imported) = run_json(
        &root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "0",
        ],
    );
    assert_eq!(rc, 0, "{imported}");
    assert!(check_current_complete(&root).is_some());
    let v = consume(&root, DAY1, ip, &[]);
    assert_eq!(v["scansToday"], 36, "import reset the counters: {v}");
    assert_eq!(v["delaySeconds"], 5);

    // The 31st scan over the limit waits 60 s.
    for _ in 37..=63 {
        consume(&root, DAY1, ip, &[]);
    }
    let v = consume(&root, DAY1, ip, &[]);
    assert_eq!(
        (v["scansToday"].as_u64(), v["overLimitScans"].as_u64()),
        (Some(64), Some(31))
    );
    assert_eq!(v["delaySeconds"], 60);

    // 00:00:00 UTC: a new day from zero.
    let v = consume(&root, DAY2, ip, &[]);
    assert_eq!(v["scansToday"], 1);
    assert_eq!(v["day"], "2025-10-25");
    assert_eq!(v["delaySeconds"], 0);

    // status: one subject, and the day's totals.
    let (rc, s) = quota(&root, DAY1, &["status", "--subject", ip]);
    assert_eq!(rc, 0);
    assert_eq!(s["scansToday"], 64);
    assert_eq!(s["delaySeconds"], 60, "the next scan's verdict: {s}");
    let (rc, s) = quota(&root, DAY2, &["status"]);
    assert_eq!(rc, 0);
    assert_eq!(
        (s["subjects"].as_u64(), s["scans"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["limits"]["anonymousPerDay"], 33);
}

#[test]
fn tokens_verify_offline_and_bad_ones_count_as_anonymous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = trusted_root(dir.path());
    let good = jwt(&format!(
        r#"{{"sub":"scanner-7","exp":{}}}"#,
        DAY1_UNIX + 3600
    ));
    let subject = format!("token:{good}");
    let limits = ["--token-limit", "5", "--reminder-at", "3"];
    for n in 1..=5 {
        let v = consume(&root, DAY1, &subject, &limits);
        assert_eq!(v["class"], "token", "{v}");
        assert_eq!(v["scansToday"], n);
        assert_eq!(v["limit"], 5);
        assert_eq!(v["kid"], fixture_signing_key().kid());
        assert_eq!(v["reminder"], n >= 3, "{v}");
        assert_eq!(v["delaySeconds"], 0);
    }
    let v = consume(&root, DAY1, &subject, &limits);
    assert_eq!(v["delaySeconds"], 5);
    assert!(v["message"].as_str().unwrap().contains(LIMIT_REACHED));
    assert!(v["message"].as_str().unwrap().contains("reminder"));

    // Defaults: 333 for a token.
    let v = consume(&root, DAY1, &subject, &[]);
    assert_eq!(
        (v["limit"].as_u64(), v["delaySeconds"].as_u64()),
        (Some(333), Some(0))
    );

    // Expired (with the injected clock), wrong key, garbage: anonymous, against the IP
    // given, else anon:unknown.
    let expired = jwt(&format!(r#"{{"sub":"scanner-7","exp":{}}}"#, DAY1_UNIX));
    let stranger = SigningKey::generate().expect("key");
    let foreign = sign_token(&stranger, r#"{"alg":"ES256"}"#, r#"{"sub":"x"}"#).expect("sign");
    for (token, why) in [
        (expired.as_str(), "expired"),
        (foreign.as_str(), "does not verify"),
        ("garbage", "malformed"),
    ] {
        let v = consume(
            &root,
            DAY1,
            &format!("token:{token}"),
            &["--ip", "192.0.2.44"],
        );
        assert_eq!(v["class"], "anonymous", "{v}");
        assert_eq!(v["limit"], 33);
        let reason = v["fallbackReason"].as_str().unwrap();
        assert!(reason.contains(why), "{reason}");
    }
    let (_, s) = quota(&root, DAY1, &["status", "--subject", "anon:192.0.2.44"]);
    assert_eq!(s["scansToday"], 3);
    let v = consume(&root, DAY1, "token:garbage", &[]);
    assert_eq!(v["class"], "anonymous");
    let (_, s) = quota(&root, DAY1, &["status", "--subject", "anon:unknown"]);
    assert_eq!(s["scansToday"], 1);

    // The subject can come from stdin (a token stays out of the process list).
    let mut child = ouk_at(
        &root,
        DAY1,
        &["--json", "quota", "consume", "--no-wait", "--subject", "-"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{subject}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["class"].as_str(), v["scansToday"].as_u64()),
        (Some("token"), Some(8))
    );

    // A malformed subject is a usage error (exit 1), and its text is not echoed.
    let (rc, v) = quota(&root, DAY1, &["consume", "--subject", "bearer:eyJsecret"]);
    assert_eq!(rc, 1, "{v}");
    assert!(!v.to_string().contains("eyJsecret"));
    let (rc, _) = quota(&root, DAY1, &["consume", "--subject", "anon:300.1.1.1"]);
    assert_eq!(rc, 1);
}

#[test]
fn the_ledger_never_holds_an_ip_or_a_token_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = trusted_root(dir.path());
    let token = jwt(r#"{"sub":"clear-text-holder"}"#);
    consume(&root, DAY1, "anon:203.0.113.250", &[]);
    consume(&root, DAY1, &format!("token:{token}"), &[]);
    consume(
        &root,
        DAY1,
        &format!("token:{}", jwt(r#"{"exp":1}"#)),
        &["--ip", "203.0.113.251"],
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("list root") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("quota") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        for needle in [
            "203.0.113.250".as_bytes(),
            "203.0.113.251".as_bytes(),
            &[203, 0, 113, 250],
            token.as_bytes(),
            token.split('.').nth(1).unwrap().as_bytes(),
            b"clear-text-holder",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds a subject in clear"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "quota.redb and quota.salt were checked");
}

#[test]
fn parallel_consumers_lose_no_count() {
    const PROCESSES: usize = 4;
    const EACH: usize = 15;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::thread::scope(|s| {
        for _ in 0..PROCESSES {
            s.spawn(|| {
                for _ in 0..EACH {
                    consume(&root, DAY1, "anon:10.9.8.7", &[]);
                }
            });
        }
    });
    let (rc, v) = quota(&root, DAY1, &["status", "--subject", "anon:10.9.8.7"]);
    assert_eq!(rc, 0);
    assert_eq!(v["scansToday"], (PROCESSES * EACH) as u64, "{v}");
    let (_, s) = quota(&root, DAY1, &["status"]);
    assert_eq!(s["scans"], (PROCESSES * EACH) as u64);
}

#[test]
fn consume_runs_while_an_import_holds_the_root_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    // Hold ROOT/lock as an import does.
    let held = ouk_root::Root::open(
        &root,
        ouk_root::LockWait::Fail,
        ouk_store::StoreOptions::default(),
    )
    .expect("open root");
    let v = consume(&root, DAY1, "anon:10.1.1.1", &[]);
    assert_eq!(v["scansToday"], 1);
    drop(held);
}
