//! Test helpers: the cosign fixture, and running the independent verifiers (openssl,
//! python jwcrypto / securesystemslib).
//!
//! Invariant: a missing external tool or python package FAILS the test with a message
//! saying what to install (CI installs them through `.ci/run`); it never skips.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

const INSTALL_HINT: &str = "run `.ci/run` (it installs the test tools), or install them by \
     hand: `apt-get install openssl python3 python3-pip` and `pip install jwcrypto securesystemslib[crypto] pynacl`";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/cosign")
}

/// The real cosign encrypted key (password `hello`).
pub(crate) fn fixture_key() -> String {
    let p = fixture_dir().join("fixture.key");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The cosign fixture's public key (PKIX PEM).
pub(crate) fn fixture_pub() -> String {
    let p = fixture_dir().join("fixture.pub");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `program args..` and returns its output; panics (fails the test) when the program
/// cannot be found or started.
pub(crate) fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` not found on PATH: this test needs it; {INSTALL_HINT}")
        }
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

/// Like [`run`], and asserts the exit status is success.
pub(crate) fn run_ok<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program}` failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Fails the test unless `program` can be started (`program version` / `--version`).
pub(crate) fn require_tool(program: &str) {
    let arg = if program == "openssl" {
        "version"
    } else {
        "--version"
    };
    run_ok(program, [arg]);
}

/// Fails the test unless python3 can import `module` (from PyPI package `pip_package`).
pub(crate) fn require_python_module(module: &str, pip_package: &str) {
    let out = run("python3", ["-c", &format!("import {module}")]);
    assert!(
        out.status.success(),
        "python module `{module}` is missing: run `.ci/run`, or `pip install {pip_package}`\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
