//! A real S3 implementation for the tests: `s3s-fs` (installed by `.ci/run`), started on
//! a free loopback port with a temporary data directory and SigV4 keys, and the backend
//! choice the mirror tests run under (the local store, or a bucket on that server).
//!
//! When `s3s-fs` is not installed the tests fail loudly, unless `OUK_SKIP_S3=1`: then each
//! test that needs it prints a notice and returns.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "ouk-test-access";
pub const SECRET_KEY: &str = "ouk-test-secret-key-0123456789";
pub const BUCKET: &str = "ouk-mirror";

fn s3s_fs_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OUK_S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// An `s3s-fs` process serving `data` (each top-level directory is a bucket).
pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    binary: PathBuf,
}

impl S3Server {
    /// Start a server with bucket [`BUCKET`] under `data`. `None` (after a notice) when
    /// s3s-fs is missing and `OUK_SKIP_S3=1`; a panic when it is missing otherwise.
    pub fn start(data: &Path) -> Option<S3Server> {
        let Some(binary) = s3s_fs_binary() else {
            if std::env::var("OUK_SKIP_S3").as_deref() == Ok("1") {
                eprintln!(
                    "NOTICE: s3s-fs is not installed and OUK_SKIP_S3=1: skipping this S3 test"
                );
                return None;
            }
            panic!(
                "s3s-fs is not installed (cargo install s3s-fs@0.14.1 --features binary --locked, as .ci/run does); set OUK_SKIP_S3=1 to skip the S3 tests"
            );
        };
        std::fs::create_dir_all(data.join(BUCKET)).expect("create the bucket directory");
        let mut s = S3Server {
            child: None,
            port: 0,
            data: data.to_path_buf(),
            binary,
        };
        s.restart();
        Some(s)
    }

    /// (Re)start the server on a new free port (same data).
    pub fn restart(&mut self) {
        self.stop();
        // A free port: bind port 0, read it, release it for the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        self.port = port;
        // Ready when it accepts connections (a deadline only against a server that never
        // comes up; nothing depends on how long it takes).
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("s3s-fs exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the server (killed: an upload in flight is cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `AWS_*` environment for this server, with `secret` as the secret key.
    pub fn env_with_secret(&self, cmd: &mut Command, secret: &str) {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            // A dead server fails fast instead of after minutes of retries.
            .env("OUK_S3_MAX_RETRIES", "1")
            .env("OUK_S3_RETRY_TIMEOUT", "10");
    }

    /// The `AWS_*` environment for this server.
    pub fn env(&self, cmd: &mut Command) {
        self.env_with_secret(cmd, SECRET_KEY);
    }

    /// Where s3s-fs keeps object `key` of [`BUCKET`].
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data.join(BUCKET).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a test's store lives.
pub enum Backend {
    /// The local store in the root (the default).
    Local,
    /// A bucket on an s3s-fs server, under `prefix`.
    S3 { server: S3Server, prefix: String },
}

impl Backend {
    /// The S3 backend on a fresh server under `dir`, or `None` when skipped.
    pub fn s3(dir: &Path) -> Option<Backend> {
        S3Server::start(&dir.join("s3-data")).map(|server| Backend::S3 {
            server,
            prefix: "site".into(),
        })
    }

    /// `s3://BUCKET/prefix`, for the S3 backend.
    pub fn url(&self) -> Option<String> {
        match self {
            Backend::Local => None,
            Backend::S3 { prefix, .. } => Some(format!("s3://{BUCKET}/{prefix}")),
        }
    }

    /// `ouk --root ROOT [--store-url URL] args...` with the backend's environment.
    pub fn command(&self, root: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(super::ouk());
        cmd.arg("--root").arg(root).env_remove("OUK_ROOT");
        cmd.env_remove("OUK_STORE_URL");
        if let Backend::S3 { server, .. } = self {
            cmd.arg("--store-url").arg(self.url().unwrap_or_default());
            server.env(&mut cmd);
        }
        cmd.args(args);
        cmd
    }

    /// Run [`Backend::command`].
    pub fn run(&self, root: &Path, args: &[&str]) -> Output {
        self.command(root, args).output().expect("run ouk")
    }

    /// Run with `--json` and parse stdout.
    pub fn run_json(&self, root: &Path, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        super::json_output(args, &self.run(root, &all))
    }
}

/// `#[test]` functions `NAME::local` and `NAME::s3` running `NAME(&backend, dir)` (the
/// caller has `Backend` in scope). The s3 one returns early when `s3s-fs` is missing and
/// `OUK_SKIP_S3=1` (see [`Backend::s3`]).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn local() {
                let tmp = tempfile::tempdir().unwrap();
                super::$name(&super::Backend::Local, tmp.path());
            }
            #[test]
            fn s3() {
                let tmp = tempfile::tempdir().unwrap();
                if let Some(b) = super::Backend::s3(tmp.path()) {
                    super::$name(&b, tmp.path());
                }
            }
        }
    )*};
}
