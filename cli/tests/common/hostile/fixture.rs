//! The signing fixture and the `ouk` runs that make real inputs: the cosign test key, kits
//! built and deltas made with the binary under test, an import with its JSON answer, and
//! gzip both ways (the system `gzip` to read, so the reader under test never prepares its
//! own inputs).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::ouk;

/// A file of the cosign test fixture (`fixture.key`, password `hello`, and `fixture.pub`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/cosign")
        .join(name)
}

/// The fixture signing key.
pub fn signing_key() -> ouk_kit::sign::SigningKey {
    ouk_kit::sign::SigningKey::from_pem_file(&fixture("fixture.key"), Some(b"hello"))
        .expect("fixture key")
}

/// SHA-256, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The cosign signature of `bytes` under the fixture key.
pub fn sign(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
    ouk_kit::sign::sign_blob_sha256(&signing_key(), &digest)
        .expect("sign")
        .into_bytes()
}

/// Build a kit of `release` as `version` into `out`, created at the tree's
/// [`tree_epoch`](super::super::tree_epoch); signed with the fixture key when `signed`.
/// Returns the bundle path.
pub fn build_kit(release: &Path, out: &Path, version: &str, signed: bool) -> PathBuf {
    let mut cmd = Command::new(ouk());
    cmd.args([
        "kit",
        "build",
        "--version",
        version,
        "--channel",
        "edge",
        "--release-dir",
    ])
    .arg(release)
    .arg("--output-dir")
    .arg(out)
    .env("COSIGN_PASSWORD", "hello")
    .env("SOURCE_DATE_EPOCH", super::super::tree_epoch(release));
    if signed {
        cmd.arg("--signing-key").arg(fixture("fixture.key"));
    }
    let o = cmd.output().expect("run ouk kit build");
    assert_eq!(
        o.status.code(),
        Some(0),
        "kit build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz"))
}

/// Make a delta `from` -> `to` at `out` (signed with the fixture key).
pub fn make_delta(from: &Path, to: &Path, out: &Path) -> PathBuf {
    make_delta_with(from, to, out, &[])
}

/// [`make_delta`] with extra `delta make` arguments.
pub fn make_delta_with(from: &Path, to: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .arg("--output")
        .arg(out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        // The planner tries bsdiff only while half its time budget is left: a day's budget
        // makes the encodings a test delta ships independent of how loaded the machine is
        // (tests that attack bsdiff pieces need them there).
        .args(["--time-budget", "86400"])
        .args(extra)
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .expect("run ouk delta make");
    assert_eq!(
        o.status.code(),
        Some(0),
        "delta make: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

/// `ouk --root ROOT --json --wait kit import BUNDLE --free-margin 0 [--max-kit-age 0]
/// extra...`.
///
/// `--wait`: tests run in parallel threads of one process, and a child forked by one
/// thread holds copies of the other threads' open descriptors until it execs, including
/// the lock of a root another thread just opened and closed in-process (snapshots,
/// `check_current_complete`). Without `--wait` that rare overlap reads as exit 13.
pub fn import(root: &Path, bundle: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "--wait",
        "kit",
        "import",
        bundle.to_str().unwrap(),
        "--free-margin",
        "0",
    ];
    if !extra.contains(&"--max-kit-age") {
        args.extend(["--max-kit-age", "0"]);
    }
    args.extend_from_slice(extra);
    super::super::run_json(root, &args)
}

/// Decompress a gzip file with the system `gzip` (the reader under test is not used to
/// prepare its own inputs).
pub fn gunzip(path: &Path) -> Vec<u8> {
    let o = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run gzip -dc (install gzip)");
    assert!(o.status.success(), "gzip -dc {}", path.display());
    o.stdout
}

/// A gzip writer (one member, level 1) over `out`.
pub fn gz_writer<W: Write>(out: W) -> ouk_kit::bundle::ParGzWriter<W> {
    ouk_kit::bundle::ParGzWriter::new(
        out,
        ouk_kit::bundle::GzOptions {
            level: 1,
            block_size: 1 << 20,
            threads: 1,
        },
    )
    .expect("gzip writer")
}

/// Compress `raw` into one gzip member.
pub fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut w = gz_writer(Vec::with_capacity(raw.len() / 2));
    w.write_all(raw).unwrap();
    w.finish().unwrap().0
}
