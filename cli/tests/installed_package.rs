//! The host package as an operator gets it (issue 27): `dpkg -i` the .deb that
//! `packaging/build.sh` made, run the README's main job with the installed `/usr/bin/ouk`
//! and the packaged paths (no `--root`: `/var/lib/ouk/root`, as the `ouk` user), check
//! `man ouk`, the bash completion, the unit (`systemd-analyze verify`) and that the host
//! build has no S3 store, then `dpkg -r` it and leave the machine as it was.
//!
//! Needs root, dpkg and the package: `OUK_DEB=path/to/ouk_*.deb` (`.ci/run` builds it and
//! sets it). Without any of them the test is skipped with the reason printed. It refuses to
//! touch a machine where ouk is already installed or /var/lib/ouk exists.
//!
//! `OUK_LONG_TESTS=1`: also builds the packages twice from scratch (two target directories)
//! and compares their SHA-256: the same commit gives the same bytes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::code;

/// Why this machine cannot run the installed-package test, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (dpkg -i needs root)".into());
    }
    if Command::new("dpkg").arg("--version").output().is_err() {
        return Some("dpkg is not installed (not a Debian-family machine)".into());
    }
    let Some(deb) = std::env::var_os("OUK_DEB") else {
        return Some(
            "OUK_DEB is not set (packaging/build.sh makes the .deb; .ci/run sets it)".into(),
        );
    };
    if !Path::new(&deb).is_file() {
        return Some(format!(
            "OUK_DEB={} is not a file",
            Path::new(&deb).display()
        ));
    }
    if sh("dpkg", &["-s", "ouk"]).status.success() || Path::new("/var/lib/ouk").exists() {
        return Some(
            "ouk is already installed here (or /var/lib/ouk exists): not touching it".into(),
        );
    }
    None
}

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"))
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The installed `ouk` as the `ouk` user, with a clean environment but for `env`.
fn as_ouk(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("runuser");
    cmd.args([
        "-u",
        "ouk",
        "--",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        "HOME=/var/lib/ouk",
    ]);
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg("/usr/bin/ouk").args(args);
    cmd.output().expect("runuser")
}

/// Removes the package, the state it made and the user the test made, whatever happens.
struct Uninstall {
    user_existed: bool,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = sh("dpkg", &["--purge", "ouk"]);
        let _ = std::fs::remove_dir_all("/var/lib/ouk");
        if !self.user_existed {
            let _ = sh("userdel", &["ouk"]);
            let _ = sh("groupdel", &["ouk"]);
        }
    }
}

#[test]
fn the_deb_installs_runs_the_main_job_and_removes_cleanly() {
    if let Some(why) = skip_reason() {
        eprintln!("installed-package test skipped: {why}");
        return;
    }
    let deb = PathBuf::from(std::env::var_os("OUK_DEB").unwrap());
    let user_existed = sh("getent", &["passwd", "ouk"]).status.success();
    let _cleanup = Uninstall { user_existed };
    ok(&sh("dpkg", &["-i", deb.to_str().unwrap()]), "dpkg -i");

    // The binary: version, commit, build date, the packaged root, no S3 store.
    let version = ok(&sh("/usr/bin/ouk", &["--version"]), "ouk --version");
    assert!(
        version.contains("\ndefault root: /var/lib/ouk/root\n"),
        "{version}"
    );
    assert!(version.contains("object storage: none"), "{version}");
    assert!(
        version.contains("commit: ") && version.contains("built: "),
        "{version}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let s3 = Command::new("/usr/bin/ouk")
        .arg("--root")
        .arg(tmp.path().join("s3-root"))
        .args(["--store-url", "s3://bucket/prefix", "store", "stats"])
        .output()
        .unwrap();
    // 11: the store's code for a store it cannot open as configured.
    assert_eq!(code(&s3), 11, "{s3:?}");
    let err = String::from_utf8_lossy(&s3.stderr);
    assert!(err.contains("without object-storage support"), "{err}");

    // The user and the root the postinst made.
    ok(&sh("getent", &["passwd", "ouk"]), "the ouk user");
    let meta = std::fs::metadata("/var/lib/ouk/root").expect("/var/lib/ouk/root");
    assert!(meta.is_dir());

    main_job(tmp.path());

    // man ouk renders; the bash completion loads; the unit verifies.
    let page = ok(
        &Command::new("man")
            .args(["-P", "cat", "ouk"])
            .env("MANWIDTH", "80")
            .output()
            .unwrap(),
        "man ouk",
    );
    assert!(page.contains("ouk") && page.contains("--root"), "{page}");
    let completion = ok(
        &sh(
            "bash",
            &[
                "-c",
                "source /usr/share/bash-completion/completions/ouk && complete -p ouk",
            ],
        ),
        "bash completion",
    );
    assert!(completion.contains("ouk"), "{completion}");
    let unit = "/usr/lib/systemd/system/ouk-serve.service";
    let verify = sh("systemd-analyze", &["verify", unit]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let text = std::fs::read_to_string(unit).unwrap();
    for line in [
        "User=ouk",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=ouk",
    ] {
        assert!(text.contains(line), "unit lacks {line}");
    }

    ok(&sh("dpkg", &["-r", "ouk"]), "dpkg -r");
    assert!(!Path::new("/usr/bin/ouk").exists());
    assert!(!Path::new(unit).exists());
}

/// The README's main job with the installed binary, as the ouk user, into the default root.
fn main_job(tmp: &Path) {
    let work = tmp.join("job");
    let release = work.join("release");
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(1), &release).unwrap();
    // The ouk user reads the tree and writes its key and kit here.
    ok(&sh("chmod", &["755", tmp.to_str().unwrap()]), "chmod");
    ok(
        &sh("chown", &["-R", "ouk:ouk", work.to_str().unwrap()]),
        "chown",
    );
    let now = ok(&sh("date", &["-u", "+%FT%TZ"]), "date");
    let pw = [("COSIGN_PASSWORD", "demo")];
    let w = |p: &str| work.join(p).to_str().unwrap().to_string();
    ok(
        &as_ouk(&["key", "generate", "--output-prefix", &w("demo")], &pw),
        "key generate",
    );
    ok(
        &as_ouk(
            &[
                "kit",
                "build",
                "--version",
                "2025.10.0",
                "--channel",
                "edge",
                "--release-dir",
                &w("release"),
                "--output-dir",
                &w("dist"),
                "--signing-key",
                &w("demo.key"),
                "--created-at",
                now.trim(),
            ],
            &pw,
        ),
        "kit build",
    );
    ok(&as_ouk(&["trust", "add", &w("demo.pub")], &[]), "trust add");
    ok(
        &as_ouk(
            &[
                "kit",
                "import",
                &w("dist/stella-ops-offline-kit-2025.10.0-edge.tar.gz"),
            ],
            &[],
        ),
        "kit import",
    );
    let status = ok(&as_ouk(&["--json", "status"], &[]), "status");
    let doc: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(doc["exitCode"], 0, "{doc}");
    assert!(status.contains("2025.10.0"), "{status}");
    // It went to the packaged root, owned by the ouk user.
    assert!(Path::new("/var/lib/ouk/root/current").exists());
    assert!(!work.join("ouk-root").exists());
}

#[test]
fn the_same_commit_builds_the_same_packages() {
    if std::env::var_os("OUK_LONG_TESTS").is_none() {
        eprintln!("skipped: set OUK_LONG_TESTS=1 (builds the packages twice from scratch)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for run in ["a", "b"] {
        let out = tmp.path().join(format!("out-{run}"));
        let o = Command::new(repo.join("packaging/build.sh"))
            .env("CARGO_TARGET_DIR", tmp.path().join(format!("target-{run}")))
            .env("OUK_PACKAGE_OUT", &out)
            .env_remove("OUK_PACKAGE_KEY")
            .output()
            .expect("run packaging/build.sh");
        let files = ok(&o, "packaging/build.sh");
        let mut sums = Vec::new();
        for f in files.lines() {
            let bytes = std::fs::read(f).unwrap();
            sums.push((
                Path::new(f).file_name().unwrap().to_owned(),
                common::hostile::sha256_hex(&bytes),
            ));
        }
        digests.push(sums);
    }
    assert_eq!(digests[0], digests[1], "two builds of one commit differ");
}
