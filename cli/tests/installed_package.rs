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
//! The .rpm (`OUK_RPM`, also set by `.ci/run`) where `rpm` is present (Debian's `rpm`
//! package on a Debian machine): its header, file list and scriptlets are read back; as
//! root it is installed with `--nodeps` into a scratch `--root` (no scriptlets: the files,
//! their modes, `rpm -V`, the binary runs from there, `rpm -e` removes them), then onto this
//! machine with a private `--dbpath` so the scriptlets run as on a RHEL host (the user, the
//! packaged root, the README's main job, `rpm -e`), leaving the machine as it was. Without
//! rpm or `OUK_RPM` it is skipped with the reason printed.
//!
//! `OUK_LONG_TESTS=1`: also builds the packages twice from scratch, from two clones of the
//! commit at different paths with different target directories, and compares their SHA-256:
//! the same commit gives the same bytes wherever it is checked out.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

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

/// The deb and the rpm test both install `/usr/bin/ouk` and the `ouk` user on this machine:
/// one at a time.
static MACHINE: Mutex<()> = Mutex::new(());

fn machine() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one still needs it, and its own cleanup ran.
    MACHINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    // Before the skip check: the rpm test's install must not look like an operator's.
    let _machine = machine();
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

/// Why the .rpm cannot be read back here, if it cannot.
fn rpm_skip_reason() -> Option<String> {
    if Command::new("rpm").arg("--version").output().is_err() {
        return Some("rpm is not installed (Debian: apt-get install rpm)".into());
    }
    let Some(rpm) = std::env::var_os("OUK_RPM") else {
        return Some(
            "OUK_RPM is not set (packaging/build.sh makes the .rpm; .ci/run sets it)".into(),
        );
    };
    if !Path::new(&rpm).is_file() {
        return Some(format!(
            "OUK_RPM={} is not a file",
            Path::new(&rpm).display()
        ));
    }
    None
}

/// `rpm ARGS`, with a database of its own (a Debian machine has no system one worth using).
fn rpm(dbpath: &Path, args: &[&str]) -> Output {
    Command::new("rpm")
        .arg("--dbpath")
        .arg(dbpath)
        .args(args)
        .output()
        .expect("run rpm")
}

/// What the .rpm installs: the binary, the man pages, the completions, the unit and the
/// RHEL-side defaults file.
const RPM_FILES: [&str; 6] = [
    "/usr/bin/ouk",
    "/usr/share/bash-completion/completions/ouk",
    "/usr/share/zsh/site-functions/_ouk",
    "/usr/share/fish/vendor_completions.d/ouk.fish",
    "/usr/lib/systemd/system/ouk-serve.service",
    "/etc/sysconfig/ouk",
];

#[test]
fn the_rpm_reads_back_installs_into_a_scratch_root_and_runs_its_scriptlets() {
    let _machine = machine();
    if let Some(why) = rpm_skip_reason() {
        eprintln!("rpm test skipped: {why}");
        return;
    }
    let pkg = PathBuf::from(std::env::var_os("OUK_RPM").unwrap());
    let pkg = pkg.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("rpmdb");

    // The header: name, version, the dependency the scriptlets need, the scriptlets as
    // written in packaging/scripts/rpm/.
    let info = ok(&rpm(&db, &["-qip", pkg]), "rpm -qip");
    for field in [
        "Name        : ouk",
        "Version     : ",
        "Architecture: x86_64",
    ] {
        assert!(info.contains(field), "rpm -qip lacks {field:?}:\n{info}");
    }
    let requires = ok(&rpm(&db, &["-qp", "--requires", pkg]), "rpm -qp --requires");
    assert!(requires.contains("shadow-utils"), "{requires}");
    let list = ok(&rpm(&db, &["-qlp", pkg]), "rpm -qlp");
    let listed: Vec<&str> = list.lines().collect();
    for f in RPM_FILES.iter().chain(&["/usr/share/man/man1/ouk.1"]) {
        assert!(listed.contains(f), "rpm -qlp lacks {f}:\n{list}");
    }
    let scripts = ok(&rpm(&db, &["-qp", "--scripts", pkg]), "rpm -qp --scripts");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/scripts/rpm");
    for (name, header) in [
        ("post", "postinstall scriptlet"),
        ("preun", "preuninstall scriptlet"),
        ("postun", "postuninstall scriptlet"),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(scripts.contains(header), "no {header}:\n{scripts}");
        assert!(scripts.contains(text.trim()), "{name} differs:\n{scripts}");
        ok(&sh("sh", &["-n", dir.join(name).to_str().unwrap()]), name);
    }

    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("rpm install skipped: not root (rpm --root and the scriptlets need root)");
        return;
    }
    scratch_root_install(tmp.path(), pkg);
    if sh("dpkg", &["-s", "ouk"]).status.success()
        || Path::new("/usr/bin/ouk").exists()
        || Path::new("/var/lib/ouk").exists()
    {
        eprintln!("rpm scriptlet run skipped: ouk is installed here (or /var/lib/ouk exists)");
        return;
    }
    scriptlets_on_this_machine(tmp.path(), &db, pkg);
}

/// `rpm -i --nodeps --noscripts` into an empty `--root`: the files land with their modes,
/// `rpm -V` finds them intact, the binary runs from there, and `rpm -e` takes them away.
fn scratch_root_install(tmp: &Path, pkg: &str) {
    let root = tmp.join("scratch-root");
    std::fs::create_dir(&root).unwrap();
    let r = root.to_str().unwrap();
    // --dbpath is inside --root.
    let rpm_in = |args: &[&str]| {
        Command::new("rpm")
            .args(["--root", r, "--dbpath", "/var/lib/rpm"])
            .args(args)
            .output()
            .expect("run rpm")
    };
    ok(
        &rpm_in(&["-i", "--nodeps", "--noscripts", pkg]),
        "rpm -i --root",
    );
    ok(&rpm_in(&["-V", "--nodeps", "ouk"]), "rpm -V");
    for f in RPM_FILES {
        assert!(root.join(&f[1..]).is_file(), "{f} not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("usr/bin/ouk"))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o7777, 0o755);
    let version = ok(
        &sh(root.join("usr/bin/ouk").to_str().unwrap(), &["--version"]),
        "ouk --version",
    );
    assert!(
        version.contains("default root: /var/lib/ouk/root"),
        "{version}"
    );
    ok(&rpm_in(&["-e", "--noscripts", "ouk"]), "rpm -e --root");
    assert!(!root.join("usr/bin/ouk").exists());
}

/// Directories the .rpm creates on a Debian machine that do not belong to any package here;
/// removed again when empty, so the machine is left as it was.
const RPM_NEW_DIRS: [&str; 3] = [
    "/etc/sysconfig",
    "/usr/share/zsh/site-functions",
    "/usr/share/zsh",
];

/// Erases the package from the private database and removes what the scriptlets made,
/// whatever happens.
struct RpmErase {
    db: PathBuf,
    user_existed: bool,
    dirs_existed: Vec<bool>,
}

impl Drop for RpmErase {
    fn drop(&mut self) {
        let _ = rpm(&self.db, &["-e", "--nodeps", "ouk"]);
        let _ = std::fs::remove_dir_all("/var/lib/ouk");
        if !self.user_existed {
            let _ = sh("userdel", &["ouk"]);
            let _ = sh("groupdel", &["ouk"]);
        }
        for (dir, existed) in RPM_NEW_DIRS.iter().zip(&self.dirs_existed) {
            if !existed {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// `rpm -i --nodeps` onto this machine with a private `--dbpath`: %post makes the user and
/// the packaged root, the README's main job runs with the installed binary, and `rpm -e`
/// (%preun, %postun) removes the files and keeps the operator's data.
fn scriptlets_on_this_machine(tmp: &Path, db: &Path, pkg: &str) {
    let _erase = RpmErase {
        db: db.to_path_buf(),
        user_existed: sh("getent", &["passwd", "ouk"]).status.success(),
        dirs_existed: RPM_NEW_DIRS.iter().map(|d| Path::new(d).exists()).collect(),
    };
    ok(&rpm(db, &["-i", "--nodeps", pkg]), "rpm -i");
    let passwd = ok(&sh("getent", &["passwd", "ouk"]), "the ouk user (%post)");
    assert!(passwd.contains(":/var/lib/ouk:"), "{passwd}");
    assert!(
        Path::new("/var/lib/ouk/root").is_dir(),
        "%post made no root"
    );
    main_job(tmp);
    ok(&rpm(db, &["-e", "ouk"]), "rpm -e");
    for f in RPM_FILES {
        assert!(!Path::new(f).exists(), "{f} left behind by rpm -e");
    }
    // %postun keeps the imported generations.
    assert!(Path::new("/var/lib/ouk/root/current").exists());
}

/// `git -C repo ARGS`, trimmed.
fn git(repo: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    ok(&o, "git").trim().to_string()
}

#[test]
fn the_same_commit_builds_the_same_packages() {
    if std::env::var_os("OUK_LONG_TESTS").is_none() {
        eprintln!("skipped: set OUK_LONG_TESTS=1 (builds the packages twice from scratch)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let tmp = tempfile::tempdir().unwrap();
    // Two checkouts of the commit at paths of different lengths: one builds into its own
    // target/ (as CI does), the other into a target directory outside it.
    let runs = [
        ("a/ouk", None),
        (
            "b/elsewhere/checkout-of-ouk",
            Some(tmp.path().join("target-b")),
        ),
    ];
    let mut digests = Vec::new();
    for (checkout, target) in runs {
        let dir = tmp.path().join(checkout);
        // A clone borrowing this repository's objects (`--shared`): nothing is written here.
        git(
            &repo,
            &[
                "clone",
                "--quiet",
                "--shared",
                "--no-checkout",
                ".",
                dir.to_str().unwrap(),
            ],
        );
        git(&dir, &["checkout", "--quiet", "--detach", &commit]);
        let out = tmp.path().join(format!("{checkout}-packages"));
        let mut build = Command::new(dir.join("packaging/build.sh"));
        build
            .env("OUK_PACKAGE_OUT", &out)
            .env_remove("OUK_PACKAGE_KEY")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("OUK_BUILD_COMMIT")
            .env_remove("RUSTFLAGS");
        match &target {
            Some(t) => build.env("CARGO_TARGET_DIR", t),
            None => build.env_remove("CARGO_TARGET_DIR"),
        };
        let o = build.output().expect("run packaging/build.sh");
        let files = ok(&o, "packaging/build.sh");
        for line in String::from_utf8_lossy(&o.stderr).lines() {
            if line.starts_with("built ouk") {
                eprintln!("{checkout}: {line}");
            }
        }
        let mut sums = Vec::new();
        for f in files.lines() {
            let bytes = std::fs::read(f).unwrap();
            let sum = common::hostile::sha256_hex(&bytes);
            eprintln!("{checkout}: {sum}  {f}");
            sums.push((Path::new(f).file_name().unwrap().to_owned(), sum));
        }
        digests.push(sums);
    }
    assert_eq!(digests[0], digests[1], "two builds of {commit} differ");
}
