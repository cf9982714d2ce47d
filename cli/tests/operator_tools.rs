//! End-to-end: the operator's tools `ouk kit inspect` and `ouk doctor`, and usage errors
//! (exit 64, a JSON error under `--json`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

fn kit(dir: &Path, day: u32, version: &str) -> PathBuf {
    let out = dir.join(format!("dist-{version}"));
    build_signed_kit(&small_tree(dir, day), version, &out)
}

fn make_delta(from: &Path, to: &Path, out: &Path) {
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .arg("--output")
        .arg(out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .expect("run delta make");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
}

fn inspect(root: &Path, path: &Path) -> (i32, serde_json::Value) {
    run_json(
        root,
        &["kit", "inspect", path.to_str().expect("utf-8 path")],
    )
}

#[test]
fn inspect_says_what_a_kit_a_delta_a_split_kit_and_a_manifest_are_and_whether_trusted_here() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = kit(tmp.path(), 0, "2025.10.0");
    let k1 = kit(tmp.path(), 1, "2025.10.1");
    let trusted = trusted_root(tmp.path(), "trusted");
    let untrusting = tmp.path().join("untrusting");

    // A kit, on a root that trusts its key.
    let (rc, v) = inspect(&trusted, &k0);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["kind"], "kit");
    assert_eq!(v["version"], "2025.10.0");
    assert_eq!(v["channel"], "edge");
    assert_eq!(v["sha256"], sha256_file(&k0));
    assert_eq!(v["size"], std::fs::metadata(&k0).expect("kit").len());
    assert_eq!(v["signature"]["trustedHere"], true, "{v}");
    assert!(
        v["signature"]["signedBy"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert!(v["fileCount"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        v["files"].as_array().map(Vec::len),
        v["fileCount"].as_u64().map(|n| n as usize)
    );
    // The same kit where nothing is trusted (no root: none is created).
    let (rc, v) = inspect(&untrusting, &k0);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["signature"]["trustedHere"], false, "{v}");
    assert!(v["signature"]["signedBy"].is_null());
    assert!(!untrusting.exists(), "inspect created a root");

    // A byte changed after signing: the signature no longer covers these bytes.
    let tampered_dir = tmp.path().join("tampered");
    std::fs::create_dir_all(&tampered_dir).expect("mkdir");
    let tampered = tampered_dir.join(k1.file_name().expect("name"));
    let mut bytes = std::fs::read(&k1).expect("read kit");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&tampered, &bytes).expect("write");
    let sig = PathBuf::from(format!("{}.sig", k1.display()));
    std::fs::copy(&sig, format!("{}.sig", tampered.display())).expect("copy sig");
    let (_, v) = inspect(&trusted, &tampered);
    assert_eq!(v["signature"]["trustedHere"], false, "{v}");

    // A delta: its baseline and target, and the files it changes.
    let delta = tmp.path().join("d.delta.tgz");
    make_delta(&k0, &k1, &delta);
    let (rc, v) = inspect(&trusted, &delta);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["kind"], "delta", "{v}");
    assert_eq!(v["delta"]["baseline"]["version"], "2025.10.0");
    assert_eq!(v["delta"]["target"]["version"], "2025.10.1");
    assert_eq!(v["version"], "2025.10.1");
    assert_eq!(v["signature"]["trustedHere"], true, "{v}");
    assert!(v["delta"]["summary"]["payloadBytes"].as_u64().is_some());

    // A split kit, named by one of its parts.
    let usb = tmp.path().join("usb");
    let size = std::fs::metadata(&k0).expect("kit").len();
    let o = run(
        tmp.path(),
        &[
            "kit",
            "split",
            k0.to_str().expect("utf-8"),
            "--max-size",
            &(size / 3 + 1).to_string(),
            "--output-dir",
            usb.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let part = usb.join(format!(
        "{}.part002",
        k0.file_name().and_then(|n| n.to_str()).expect("name")
    ));
    let (rc, v) = inspect(&trusted, &part);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["kind"], "split-kit", "{v}");
    assert_eq!(v["parts"]["count"], 3, "{v}");
    assert_eq!(v["version"], "2025.10.0");
    assert_eq!(v["sha256"], sha256_file(&k0), "the parts put together");

    // A manifest on its own.
    let manifest = k0
        .parent()
        .expect("dist")
        .join("manifest/offline-manifest.json");
    let (rc, v) = inspect(&trusted, &manifest);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["kind"], "manifest");
    assert_eq!(v["version"], "2025.10.0");

    // People's output names the kind and the verdict.
    let o = run(&trusted, &["kit", "inspect", k0.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("kit "), "{text}");
    assert!(text.contains("trusted here"), "{text}");
    // Nothing there: exit 1.
    let (rc, _) = inspect(&trusted, &tmp.path().join("missing.tar.gz"));
    assert_eq!(rc, 1);
}

#[test]
fn rollback_takes_a_version_and_a_low_disk_refusal_names_the_margin_option() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = kit(tmp.path(), 0, "2025.10.0");
    let k1 = kit(tmp.path(), 1, "2025.10.1");
    let root = trusted_root(tmp.path(), "root");
    let import = |k: &Path, extra: &[&str]| {
        let mut args = vec![
            "kit",
            "import",
            k.to_str().expect("utf-8"),
            "--max-kit-age",
            "0",
        ];
        args.extend_from_slice(extra);
        run_json(&root, &args)
    };
    let (rc, g0) = import(&k0, &[]);
    assert_eq!(rc, 0, "{g0}");

    // A margin no disk has: refused before writing (exit 12), naming the option and units.
    let (rc, v) = import(&k1, &["--free-margin", "1000000TiB"]);
    assert_eq!(rc, 12, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("--free-margin"), "{error}");
    let (rc, _) = run_json(&root, &["status", "--max-kit-age", "0"]);
    assert_eq!(rc, 0);

    let (rc, g1) = import(&k1, &[]);
    assert_eq!(rc, 0, "{g1}");
    // Back to 2025.10.0 by its version, as `gen list` shows it.
    let (rc, rb) = run_json(&root, &["gen", "rollback", "2025.10.0"]);
    assert_eq!(rc, 0, "{rb}");
    assert_eq!(rb["generation"], g0["generation"], "{rb}");
    assert_eq!(rb["version"], "2025.10.0");
    assert_eq!(rb["outcome"], "activated", "a stable string: {rb}");
    assert_eq!(rb["previous"], g1["generation"]);
    let (rc, again) = run_json(&root, &["gen", "rollback", "2025.10.0"]);
    assert_eq!((rc, again["outcome"].as_str()), (0, Some("already-active")));
    // A version nobody has: exit 1, nothing changed.
    let (rc, _) = run_json(&root, &["gen", "rollback", "2099.1.1"]);
    assert_eq!(rc, 1);
    assert_eq!(
        check_current_complete(&root),
        g0["generation"].as_str().map(String::from)
    );
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

#[test]
fn doctor_finds_what_is_wrong_and_says_what_to_fix_without_touching_the_root() {
    let tmp = tempfile::tempdir().expect("tempdir");

    // No root: exit 1, and none is created.
    let missing = tmp.path().join("missing");
    let (rc, _) = run_json(&missing, &["doctor"]);
    assert_eq!(rc, 1);
    assert!(!missing.exists(), "doctor created a root");

    // A root that trusts nothing: the trust check fails (every import would be refused).
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).expect("mkdir");
    assert_eq!(code(&run(&bare, &["gen", "gc"])), 0, "make an empty root");
    let (rc, v) = run_json(&bare, &["doctor"]);
    assert_eq!(rc, 1, "{v}");
    assert_eq!(check(&v, "trust")["status"], "fail", "{v}");
    assert!(
        check(&v, "trust")["fix"]
            .as_str()
            .is_some_and(|f| f.contains("trust add"))
    );
    assert_eq!(
        check(&v, "freshness")["status"],
        "warn",
        "nothing active: {v}"
    );
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exitCode"], 1);

    // A healthy root with a current kit: every check passes, exit 0.
    let root = trusted_root(tmp.path(), "root");
    let k0 = build_signed_kit(
        &small_tree(tmp.path(), 0),
        "2025.10.0",
        &tmp.path().join("dist"),
    );
    let o = run(
        &root,
        &[
            "kit",
            "import",
            k0.to_str().expect("utf-8"),
            "--max-kit-age",
            "0",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let (rc, v) = run_json(&root, &["doctor", "--max-kit-age", "0", "--fsck"]);
    assert_eq!(rc, 0, "{v}");
    for name in [
        "root",
        "lock",
        "space",
        "trust",
        "clock",
        "freshness",
        "store",
    ] {
        assert_eq!(check(&v, name)["status"], "ok", "{name}: {v}");
    }

    // The lock is held by an import: doctor says so, and neither waits for it nor fails.
    let held = ouk_root::Root::open(
        &root,
        ouk_root::LockWait::Fail,
        ouk_store::StoreOptions::default(),
    )
    .expect("take the lock");
    let (rc, v) = run_json(&root, &["doctor"]);
    assert_eq!(rc, 0, "{v}");
    let lock = check(&v, "lock");
    assert_eq!(lock["status"], "warn", "{v}");
    assert!(
        lock["message"]
            .as_str()
            .is_some_and(|m| m.contains(&std::process::id().to_string())),
        "names the holder: {v}"
    );
    drop(held);

    // A refused import waits in quarantine: a warning naming the command to read it.
    let bad = tmp.path().join("bad.tar.gz");
    std::fs::write(&bad, b"not a kit").expect("write");
    let o = run(&root, &["kit", "import", bad.to_str().expect("utf-8")]);
    assert_ne!(code(&o), 0);
    let (rc, v) = run_json(&root, &["doctor", "--max-kit-age", "0"]);
    assert_eq!(rc, 0, "{v}");
    assert_eq!(check(&v, "quarantine")["status"], "warn", "{v}");
}

#[test]
fn usage_errors_exit_64_with_a_json_error_under_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run(tmp.path(), &["kit", "import"]);
    assert_eq!(code(&o), 64, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Usage"));
    let o = run(tmp.path(), &["--no-such-flag", "status"]);
    assert_eq!(code(&o), 64);
    let (rc, v) = run_json(tmp.path(), &["kit", "import"]);
    assert_eq!(rc, 64, "{v}");
    assert_eq!(v["exitCode"], 64);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("<BUNDLE>")),
        "{v}"
    );
    // Help and version are not errors.
    assert_eq!(code(&run(tmp.path(), &["--help"])), 0);
    assert_eq!(code(&run(tmp.path(), &["--version"])), 0);
    // The exit codes are documented in --help.
    let help = String::from_utf8_lossy(&run(tmp.path(), &["--help"]).stdout).into_owned();
    assert!(help.contains("64 usage error"), "{help}");
}

/// Run `ouk args...` on a pseudo-terminal (util-linux `script`), typing each of `answers`
/// once the prompt asking for it is on the screen. Returns the exit code and the screen.
fn on_a_terminal(args: &[&str], answers: &[&str]) -> (i32, String) {
    use std::io::{Read, Write};
    let command = std::iter::once(ouk().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("COSIGN_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut screen = String::new();
    for answer in answers {
        // Wait for the next prompt: one more "password" than answers given so far.
        let asked = screen.matches("password").count();
        let mut buf = [0u8; 256];
        while screen.matches("password").count() == asked {
            let n = stdout.read(&mut buf).expect("read the terminal");
            assert!(n > 0, "ouk ended before asking: {screen}");
            screen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        stdin
            .write_all(format!("{answer}\r").as_bytes())
            .expect("type");
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the rest");
    screen.push_str(&rest);
    drop(stdin);
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), screen)
}

#[test]
fn key_passwords_are_asked_on_the_terminal_and_a_public_key_is_not_taken_for_a_private_one() {
    if !require_tool("script", &["--version"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = tmp.path().join("ops");
    let prefix_s = prefix.to_str().expect("utf-8");

    // Two different answers: refused, nothing written.
    let (rc, screen) = on_a_terminal(
        &["key", "generate", "--output-prefix", prefix_s],
        &["one password", "another one"],
    );
    assert_ne!(rc, 0, "{screen}");
    assert!(screen.contains("differ"), "{screen}");
    assert!(!prefix.with_extension("key").exists());

    // The same answer twice: the key is written, encrypted under it (the build below opens
    // it with that answer only). Whether the terminal echoed is not asserted: typed-ahead
    // input can arrive before echo is turned off, so that would test timing.
    let (rc, screen) = on_a_terminal(
        &["key", "generate", "--output-prefix", prefix_s],
        &["correct horse", "correct horse"],
    );
    assert_eq!(rc, 0, "{screen}");
    let key = prefix.with_extension("key");
    assert!(key.is_file());

    // Signing asks for it on the terminal too: the right one signs, a wrong one does not.
    let release = small_tree(tmp.path(), 0);
    let build = |out: &str| {
        vec![
            "kit".to_string(),
            "build".into(),
            "--version".into(),
            "2025.10.0".into(),
            "--channel".into(),
            "edge".into(),
            "--release-dir".into(),
            release.display().to_string(),
            "--output-dir".into(),
            tmp.path().join(out).display().to_string(),
            "--signing-key".into(),
            key.display().to_string(),
        ]
    };
    let args = build("dist-ok");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (rc, screen) = on_a_terminal(&args, &["correct horse"]);
    assert_eq!(rc, 0, "{screen}");
    let args = build("dist-wrong");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (rc, screen) = on_a_terminal(&args, &["wrong horse"]);
    assert_ne!(rc, 0, "{screen}");

    // No terminal and no COSIGN_PASSWORD: a clear refusal naming COSIGN_PASSWORD.
    let o = Command::new(ouk())
        .args(["key", "generate", "--output-prefix"])
        .arg(tmp.path().join("no-tty"))
        .env_remove("COSIGN_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert_ne!(code(&o), 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("COSIGN_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The public key given to sign with: a usage error saying so, not "signature invalid".
    let public = prefix.with_extension("pub");
    let o = build_unsigned_command(
        &release,
        &tmp.path().join("dist-pub"),
        &["--signing-key", &public.to_string_lossy()],
    )
    .output()
    .expect("run");
    assert_eq!(code(&o), 64, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a public key"));
    // And the private key where a public one belongs.
    let bundle = tmp
        .path()
        .join("dist-ok/stella-ops-offline-kit-2025.10.0-edge.tar.gz");
    let o = run(
        tmp.path(),
        &[
            "kit",
            "verify",
            bundle.to_str().expect("utf-8"),
            "--key",
            key.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code(&o), 64, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a private key"));
}

#[test]
fn verbose_runs_say_what_they_did_step_by_step_on_stderr_and_keep_json_on_stdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let k0 = kit(tmp.path(), 0, "2025.10.0");
    let import = |root: &Path, global: &[&str], env: Option<&str>| {
        let mut c = Command::new(ouk());
        c.arg("--root").arg(root).args(global).args([
            "kit",
            "import",
            k0.to_str().expect("utf-8"),
            "--max-kit-age",
            "0",
        ]);
        c.env_remove("OUK_LOG");
        if let Some(f) = env {
            c.env("OUK_LOG", f);
        }
        c.output().expect("run")
    };
    // Quiet by default: nothing but the command's own words.
    let o = import(&trusted_root(tmp.path(), "quiet"), &["--json"], None);
    assert_eq!(code(&o), 0);
    assert!(
        String::from_utf8_lossy(&o.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // -vv: each step, and stdout is still one JSON document.
    let o = import(&trusted_root(tmp.path(), "vv"), &["--json", "-vv"], None);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for event in [
        "read once into staging",
        "signature checked",
        "manifest read",
        "free space checked",
        "version is newer",
        "unpacked, checked against the manifest and staged",
        "import done",
    ] {
        assert!(err.contains(event), "{event:?} missing: {err}");
    }
    serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("stdout is JSON");
    // -v: the outline, without the details.
    let o = import(&trusted_root(tmp.path(), "v"), &["-v"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("import done") && !err.contains("root locked"),
        "{err}"
    );
    // OUK_LOG chooses instead.
    let o = import(&trusted_root(tmp.path(), "env"), &[], Some("ouk_kit=debug"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("root locked"));
}

#[test]
fn a_kit_created_past_the_staleness_window_is_built_with_a_warning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let release = small_tree(tmp.path(), 0);
    let build = |created: &str, out: &str| {
        let o = build_unsigned(&release, &tmp.path().join(out), &["--created-at", created]);
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let old = build("2020-01-01T00:00:00Z", "old");
    assert!(
        old.contains("2020-01-01T00:00:00Z") && old.contains("days old"),
        "{old}"
    );
    let now = utc_now();
    let fresh = build(&now, "fresh");
    assert!(!fresh.contains("days old"), "{fresh}");
}

/// The `createdAt` a build of `release` into `out` stamped (its `.metadata.json`), and the
/// build's stderr; `epoch` is `SOURCE_DATE_EPOCH` (unset when `None`).
fn built_created_at(
    release: &Path,
    out: &Path,
    epoch: Option<&str>,
    extra: &[&str],
) -> (String, String) {
    let mut cmd = build_unsigned_command(release, out, extra);
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    let o = cmd.output().expect("run ouk kit build");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), 0, "{err}");
    let meta =
        std::fs::read(out.join("stella-ops-offline-kit-2025.10.0-edge.tar.gz.metadata.json"))
            .expect("metadata sidecar");
    let meta: serde_json::Value = serde_json::from_slice(&meta).expect("metadata is JSON");
    let created = meta["createdAt"].as_str().expect("createdAt").to_string();
    (created, err)
}

#[test]
fn a_kit_is_created_at_the_build_time_unless_a_time_is_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The small tree's files date from 2025: the old default (the newest mtime) made this
    // kit stale at birth.
    let release = small_tree(tmp.path(), 0);
    let (created, err) = built_created_at(&release, &tmp.path().join("now"), None, &[]);
    let created: jiff::Timestamp = created.parse().expect("createdAt is RFC 3339");
    let off = (jiff::Timestamp::now() - created).as_secs().abs();
    assert!(off <= 60, "createdAt {created} is {off} s from now");
    assert!(!err.contains("days old"), "{err}");

    // SOURCE_DATE_EPOCH (2025-10-23T00:00:00Z) wins over the build time, and is warned
    // about by name: it is past the 7-day window.
    let (created, err) =
        built_created_at(&release, &tmp.path().join("sde"), Some("1761177600"), &[]);
    assert_eq!(created, "2025-10-23T00:00:00Z");
    assert!(
        err.contains("days old") && err.contains("SOURCE_DATE_EPOCH"),
        "{err}"
    );
    // --created-at wins over SOURCE_DATE_EPOCH.
    let now = utc_now();
    let (created, err) = built_created_at(
        &release,
        &tmp.path().join("flag"),
        Some("1761177600"),
        &["--created-at", &now],
    );
    assert_eq!(created, now);
    assert!(!err.contains("days old"), "{err}");
    // A SOURCE_DATE_EPOCH that is not Unix seconds is refused, by name.
    let o = build_unsigned_command(&release, &tmp.path().join("bad"), &[])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .expect("run ouk kit build");
    assert_ne!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SOURCE_DATE_EPOCH"));
}

/// The current time, RFC 3339 UTC (seconds).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn kits_and_deltas_built_into_one_directory_each_keep_their_own_manifest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dist = tmp.path().join("dist");
    let k0 = build_signed_kit(&small_tree(tmp.path(), 0), "2025.10.0", &dist);
    let k1 = build_signed_kit(&small_tree(tmp.path(), 1), "2025.10.1", &dist);
    let delta = dist.join("d.delta.tgz");
    make_delta(&k0, &k1, &delta);
    let verify = |b: &Path| {
        run_json(
            tmp.path(),
            &[
                "kit",
                "verify",
                b.to_str().expect("utf-8"),
                "--key",
                fixture("fixture.pub").to_str().expect("utf-8"),
            ],
        )
    };
    // The older kit is checked against its own manifest, though manifest/ holds the newer.
    let (rc, v) = verify(&k0);
    assert_eq!(rc, 0, "{v}");
    assert!(v["filesChecked"].as_u64().is_some_and(|n| n > 0), "{v}");
    let (rc, v) = verify(&k1);
    assert_eq!(rc, 0, "{v}");
    // The delta is not checked against a kit's manifest (that was exit 11).
    let (rc, v) = verify(&delta);
    assert_eq!(rc, 0, "{v}");

    // A reproducible rebuild replaces nothing; a different bundle under the same name is
    // refused unless --force.
    let rebuilt = build_signed_kit(&small_tree(tmp.path(), 0), "2025.10.0", &dist);
    assert_eq!(sha256_file(&rebuilt), sha256_file(&k0));
    let other = |extra: &[&str]| {
        let mut c = Command::new(ouk());
        c.args([
            "kit",
            "build",
            "--version",
            "2025.10.0",
            "--channel",
            "edge",
        ])
        .arg("--release-dir")
        .arg(small_tree(tmp.path(), 1))
        .arg("--output-dir")
        .arg(&dist)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .args(extra)
        .env("COSIGN_PASSWORD", "hello");
        c.output().expect("run build")
    };
    let before = sha256_file(&k0);
    let o = other(&[]);
    assert_eq!(code(&o), 11, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(
        sha256_file(&k0),
        before,
        "the refused build replaced the bundle"
    );
    let o = other(&["--force"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(sha256_file(&k0), before);
    let (rc, v) = verify(&k0);
    assert_eq!(rc, 0, "{v}");
}
