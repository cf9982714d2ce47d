//! `.ci/install-deps` (run by `.ci/run`) for a developer who is not root (issue 21): with
//! every tool present it installs nothing and never calls apt-get; with one missing it says
//! which command to run and exits 1 instead of failing at `apt-get update`; as root it
//! installs exactly what is missing.
//!
//! The machine is simulated: PATH holds only stubs (every tool the script probes, an `id`
//! that answers the uid under test, an `apt-get` that records its arguments), so the test
//! needs neither root nor network and changes nothing on the machine.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every command `.ci/install-deps` probes for with `command -v`.
const TOOLS: &[&str] = &[
    "openssl",
    "tar",
    "gzip",
    "unzip",
    "sha256sum",
    "xdelta3",
    "zstd",
    "bsdiff",
    "casync",
    "nginx",
    "curl",
    "pigz",
    "zip",
    "man",
    "groff",
    "systemd-analyze",
    "strip",
    "dpkg-deb",
    "runuser",
    "python3",
    "s3s-fs",
    "cargo-deb",
    "cargo-generate-rpm",
    "rpm",
];

fn stub(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A PATH directory with stubs for every tool but `without`, `id -u` printing `uid`, and an
/// apt-get that appends its arguments to `apt.log` next to the directory.
fn machine(tmp: &Path, uid: u32, without: &[&str]) -> PathBuf {
    let bin = tmp.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for t in TOOLS.iter().filter(|t| !without.contains(t)) {
        stub(&bin, t, "exit 0");
    }
    stub(&bin, "id", &format!("echo {uid}"));
    stub(
        &bin,
        "apt-get",
        &format!("echo \"$*\" >> '{}'", tmp.join("apt.log").display()),
    );
    bin
}

fn install_deps(tmp: &Path, bin: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/install-deps");
    Command::new("/bin/bash")
        .arg(script)
        .env_clear()
        .env("PATH", bin)
        .env("HOME", tmp)
        .env("CARGO_HOME", tmp.join("cargo"))
        .env("OUK_BASH_COMPLETION_DIR", tmp)
        .output()
        .expect("run .ci/install-deps")
}

fn apt_log(tmp: &Path) -> String {
    fs::read_to_string(tmp.join("apt.log")).unwrap_or_default()
}

#[test]
fn nothing_missing_installs_nothing_even_without_root() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = machine(tmp.path(), 1000, &[]);
    let o = install_deps(tmp.path(), &bin);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(apt_log(tmp.path()), "", "apt-get must not run");
}

#[test]
fn a_missing_tool_without_root_names_the_command_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = machine(tmp.path(), 1000, &["xdelta3", "man"]);
    let o = install_deps(tmp.path(), &bin);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends xdelta3 man-db"
        ),
        "{err}"
    );
    assert_eq!(apt_log(tmp.path()), "", "apt-get must not run without root");
}

#[test]
fn as_root_exactly_the_missing_packages_are_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = machine(tmp.path(), 0, &["xdelta3"]);
    let o = install_deps(tmp.path(), &bin);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = apt_log(tmp.path());
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0], "update -qq");
    assert!(lines[1].starts_with("install "), "{log}");
    assert!(
        lines[1].ends_with(" xdelta3"),
        "only the missing package: {log}"
    );
}
