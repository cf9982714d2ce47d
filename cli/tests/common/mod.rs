//! Helpers shared by the CLI end-to-end tests.
#![allow(dead_code)]

pub mod bounded;
pub mod hostile;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `ouk` binary under test.
pub fn ouk() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ouk"))
}

/// The newest mtime of the regular files under `release`, in Unix seconds: what
/// `kit build` took as `createdAt` before it defaulted to the build time (issue 21). The
/// test helpers below give it as `SOURCE_DATE_EPOCH`, so their kits keep the dates (the
/// testdata trees' 2025, past any staleness window) and the bytes the tests were written
/// for, and two builds of one tree stay byte-identical.
pub fn tree_epoch(release: &Path) -> String {
    fn newest(dir: &Path, best: &mut u64) {
        for entry in std::fs::read_dir(dir).expect("read release dir") {
            let entry = entry.expect("read release dir entry");
            let meta = entry.path().symlink_metadata().expect("stat release file");
            if meta.is_dir() {
                newest(&entry.path(), best);
            } else if meta.is_file() {
                let secs = meta
                    .modified()
                    .expect("mtime")
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                *best = (*best).max(secs);
            }
        }
    }
    let mut best = 0;
    newest(release, &mut best);
    best.to_string()
}

/// An unsigned `ouk kit build` of `release` into `out` (version 2025.10.0, channel edge,
/// `SOURCE_DATE_EPOCH` the tree's [`tree_epoch`]) with extra arguments.
pub fn build_unsigned(release: &Path, out: &Path, extra: &[&str]) -> Output {
    build_unsigned_command(release, out, extra)
        .env("SOURCE_DATE_EPOCH", tree_epoch(release))
        .output()
        .expect("run ouk kit build")
}

/// The command of [`build_unsigned`] before its environment is set (a test that sets its
/// own `SOURCE_DATE_EPOCH`, or none, starts here).
pub fn build_unsigned_command(release: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(ouk());
    cmd.args([
        "kit",
        "build",
        "--version",
        "2025.10.0",
        "--channel",
        "edge",
    ])
    .arg("--release-dir")
    .arg(release)
    .arg("--output-dir")
    .arg(out)
    .args(extra);
    cmd
}

/// A root at `dir/name` that trusts the fixture key.
pub fn trusted_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    let o = run(
        &root,
        &[
            "trust",
            "add",
            hostile::fixture("fixture.pub").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    root
}

/// Run `ouk --root ROOT args...`.
pub fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(ouk())
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("OUK_ROOT")
        .output()
        .expect("run ouk")
}

/// Run and parse stdout as JSON (adds `--json`).
pub fn run_json(root: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    json_output(args, &run(root, &all))
}

/// The exit code and stdout parsed as JSON of `ouk args...` (panics, showing both
/// streams, when stdout is not JSON).
pub fn json_output(args: &[&str], out: &Output) -> (i32, serde_json::Value) {
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ouk {args:?}: stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// Exit code, panicking with the output when the process was killed by a signal.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| {
        panic!(
            "killed by signal: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Run `ouk args...` through `sh`, which first plants a symbolic link to `victim` at
/// `dir/<parent>/.tmp-<name>-<pid>` for each `<parent>/<name>` of `files` (the temporary
/// names ouk used to make for them), then `exec`s ouk, which so runs with that pid.
/// Returns ouk's exit code and stderr.
pub fn run_with_planted_temp_links(
    dir: &Path,
    files: &[&str],
    victim: &Path,
    args: &[&str],
) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            r#"for f in $PLANT_FILES; do
                 d="$PLANT_DIR/$(dirname "$f")"; mkdir -p "$d"
                 ln -s "$PLANT_VICTIM" "$d/.tmp-$(basename "$f")-$$"
               done
               exec "$@""#,
        )
        .arg("sh")
        .arg(ouk())
        .args(args)
        .env("PLANT_DIR", dir)
        .env("PLANT_FILES", files.join(" "))
        .env("PLANT_VICTIM", victim)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    (
        code(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small synthetic release tree for `day`.
pub fn small_tree(dir: &Path, day: u32) -> PathBuf {
    let out = dir.join(format!("release-day{day}"));
    if !out.exists() {
        ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7).on_day(day), &out)
            .expect("generate tree");
    }
    out
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read file");
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// Check that `ROOT/current` is a complete generation: every manifest file exists with its
/// digest and nothing else is there (waiting for the root lock: a child forked by another
/// test thread may briefly hold a copy of it). Returns the generation id (None when no
/// current).
pub fn check_current_complete(root: &Path) -> Option<String> {
    let r = ouk_root::Root::open(
        root,
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .expect("open root");
    let id = r.current().expect("read current")?;
    let manifest = r.manifest(&id).expect("current generation has a manifest");
    let cur = root.join("current");
    let on_disk = ouk_delta::tree::list_tree(&cur).expect("list current");
    assert_eq!(
        on_disk.len(),
        manifest.entries().len(),
        "current has exactly the manifest's files"
    );
    for e in manifest.entries() {
        assert_eq!(
            sha256_file(&cur.join(&e.path)),
            e.sha256.to_hex(),
            "{}",
            e.path
        );
    }
    Some(id.to_hex())
}

/// Build a kit of `release` as `version` (channel `edge`) into `out`, signed with the
/// fixture key, created at the tree's [`tree_epoch`]; returns the bundle path. Panics with
/// ouk's stderr when the build fails.
pub fn build_signed_kit(release: &Path, version: &str, out: &Path) -> PathBuf {
    let o = Command::new(ouk())
        .args([
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
        .arg("--signing-key")
        .arg(hostile::fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .env("SOURCE_DATE_EPOCH", tree_epoch(release))
        .output()
        .expect("run ouk kit build");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz"))
}

/// A signed kit of the small tree of `day` as `2025.10.DAY`, alone in its own output
/// directory `dir/kits-DAY` (so its manifest sidecar is its own).
pub fn day_kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join(format!("kits-{day}")),
    )
}

/// A signed kit of the small tree for `day` as `version`, created at `created_at` (in its
/// own output directory, named by both, so kits of one version stay apart).
pub fn kit_created(dir: &Path, day: u32, version: &str, created_at: &str) -> PathBuf {
    let out = dir.join(format!("dist-{version}-{}", created_at.replace(':', "")));
    let o = Command::new(ouk())
        .args(["kit", "build", "--version", version, "--channel", "edge"])
        .args(["--created-at", created_at, "--release-dir"])
        .arg(small_tree(dir, day))
        .arg("--output-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(hostile::fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz"))
}

/// RFC 3339 (whole seconds, UTC) `secs` seconds from now.
pub fn from_now(secs: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `ouk --root ROOT --json kit import BUNDLE --free-margin 0 extra...` (no free-space
/// margin: test filesystems are small); the exit code and the JSON answer.
pub fn import_kit(root: &Path, bundle: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "kit",
        "import",
        bundle.to_str().unwrap(),
        "--free-margin",
        "0",
    ];
    args.extend_from_slice(extra);
    run_json(root, &args)
}

/// Whether a test that needs the external `tool` may run. `true` when `tool` can be spawned
/// (`probe_args` is a harmless invocation of it). When it cannot, the test fails naming the
/// tool, unless `OUK_SKIP_<TOOL>` (upper case, `-` as `_`) is set: then the caller skips,
/// after a notice. A missing tool is a broken test machine, not a passed test; `.ci/run`
/// installs every tool this is asked about.
pub fn require_tool(tool: &str, probe_args: &[&str]) -> bool {
    let spawned = Command::new(tool).args(probe_args).output();
    match spawned {
        Ok(_) => true,
        Err(e) => skip_or_fail(tool, &format!("`{tool}` cannot be run: {e}")),
    }
}

/// The skip-or-fail decision of [`require_tool`], for a missing capability that is not a
/// program (`what`, e.g. "tmpfs", names the `OUK_SKIP_<WHAT>` variable).
pub fn skip_or_fail(what: &str, why: &str) -> bool {
    let var = format!("OUK_SKIP_{}", what.to_uppercase().replace('-', "_"));
    if std::env::var_os(&var).is_some() {
        eprintln!("{why}: skipped because {var} is set");
        false
    } else {
        panic!("{why}: this test needs {what} (provide it, or set {var}=1 to skip explicitly)");
    }
}

/// How long [`wait_until`] waits: generous, so only something that never happens gets there.
pub const WAIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Poll `ready` (every 10 ms) until it holds. Past [`WAIT_DEADLINE`] the test fails naming
/// `what` was awaited, instead of spinning for ever. `ready` may itself panic (e.g. when the
/// process that should make it true has exited).
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT_DEADLINE;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {WAIT_DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A running `ouk serve`, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's `/ouk/` base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/ouk/", self.port)
    }
    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Start `cmd` (an `ouk serve --listen 127.0.0.1:0 ...` with its environment set), its
/// stderr to `log`, and read the address from its first line. The line is read on a thread
/// so a server that never prints one fails the test at [`WAIT_DEADLINE`] instead of
/// blocking it for ever.
pub fn start_serve(mut cmd: Command, log: PathBuf) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start ouk serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(WAIT_DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "ouk serve printed no address within {WAIT_DEADLINE:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "no port in {line:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Server { child, port, log }
}
