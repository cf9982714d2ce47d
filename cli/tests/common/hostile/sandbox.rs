//! The [`Sandbox`]: a root with an active generation, snapshotted before every case. Each
//! import runs under a generous CPU bound and wall deadline ([`super::super::bounded`]):
//! overrunning either fails the case, named. Afterwards it checks the exit code, that
//! nothing changed outside `staging/` and `quarantine/`, that staging is empty, that a
//! refusal was quarantined with a `reason.json` carrying the same code, and that an
//! accepted input produced exactly the genuine target generation.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::super::bounded::Bounded;
use super::super::ouk;
use super::corpus::Kit;
use super::mutants::{Mutant, Payload};
use super::{import, sha256_hex};

/// What a root looks like, for before/after comparison: every path under the sandbox
/// (except `ROOT/staging/**`, `ROOT/quarantine/**`, the redb file, which redb rewrites on
/// open, and the lock) with its type, size, mode, inode and mtime; plus what the index
/// says (generations, activations, chunks, files, current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Path -> description.
    pub paths: BTreeMap<String, String>,
    /// Index facts.
    pub facts: String,
}

fn walk(base: &Path, dir: &Path, skip: &dyn Fn(&str) -> bool, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        if skip(&rel) {
            continue;
        }
        let m = fs::symlink_metadata(&p).unwrap();
        let desc = if rel.starts_with("root/store/packs/") && m.is_file() {
            // Packs by content: a refused import appends frames while it streams and
            // truncates them away when it refuses (the mtime moves, the bytes do not).
            format!(
                "pack {:o} {} ino {} sha256 {}",
                m.mode(),
                m.len(),
                m.ino(),
                sha256_hex(&fs::read(&p).unwrap())
            )
        } else if m.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            format!("dir {:o}", m.mode())
        } else {
            format!(
                "file {:o} {} ino {} mtime {}.{}",
                m.mode(),
                m.len(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec()
            )
        };
        out.insert(rel, desc);
        if m.is_dir() {
            walk(base, &p, skip, out);
        }
    }
}

/// Snapshot `sandbox` (which holds the root at `sandbox/root`).
pub fn snapshot(sandbox: &Path) -> Snapshot {
    let mut paths = BTreeMap::new();
    let skip = |rel: &str| {
        rel.starts_with("root/staging/")
            || rel.starts_with("root/quarantine/")
            || rel == "root/store/index.redb"
            || rel == "root/lock"
    };
    walk(sandbox, sandbox, &skip, &mut paths);
    let r = ouk_root::Root::open(
        &sandbox.join("root"),
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .expect("open root for a snapshot");
    let stats = r.store().stats().unwrap();
    let facts = format!(
        "current {:?} generations {} activations {} chunks {} files {} packs {}",
        r.current().unwrap(),
        r.generations().unwrap().len(),
        r.activations().unwrap().len(),
        stats.chunks,
        stats.files,
        stats.pack_bytes
    );
    Snapshot { paths, facts }
}

/// Copy a directory tree with `cp -a`.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// A root with one active generation that hostile inputs are thrown at.
pub struct Sandbox {
    /// Work directory: `sandbox/` (checked) and `cases/` (inputs).
    pub work: PathBuf,
    /// `work/sandbox`.
    pub dir: PathBuf,
    /// `work/sandbox/root`.
    pub root: PathBuf,
    pristine: PathBuf,
    before: Snapshot,
    /// Generations an accepted input may have activated.
    pub accepted: Vec<String>,
    cases: u64,
    /// The case that used the most CPU, and how much.
    pub slowest: (Duration, String),
    /// CPU time of the last case.
    pub last_cpu: Duration,
    /// CPU seconds one case may use (see [`Bounded`]): generous, to catch a blowup.
    pub cpu_secs: u64,
    /// Wall time one case may take: only a hang gets there.
    pub wall: Duration,
    /// The error message of the last refused case.
    pub last_message: String,
}

/// Outcome of one case: the exit code, or why the case failed.
pub type CaseResult = Result<i32, String>;

impl Sandbox {
    /// A sandbox under `work` whose root has `baseline` active (imported unsigned-allowed).
    pub fn new(work: &Path, baseline: &Kit, accepted: &[&str]) -> Sandbox {
        let dir = work.join("sandbox");
        let root = dir.join("root");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("canary"), b"must not change").unwrap();
        fs::create_dir_all(dir.join("canary-dir")).unwrap();
        let (rc, r) = import(&root, &baseline.bundle, &["--allow-unsigned"]);
        assert_eq!(rc, 0, "baseline import: {r}");
        let pristine = work.join("pristine");
        copy_tree(&dir, &pristine);
        let before = snapshot(&dir);
        Sandbox {
            work: work.to_path_buf(),
            dir,
            root,
            pristine,
            before,
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            cases: 0,
            slowest: (Duration::ZERO, String::new()),
            last_cpu: Duration::ZERO,
            cpu_secs: super::super::bounded::default_cpu_secs(),
            wall: super::super::bounded::DEFAULT_WALL,
            last_message: String::new(),
        }
    }

    fn reset(&mut self) {
        ouk_root::remove_tree(&self.dir).unwrap();
        copy_tree(&self.pristine, &self.dir);
        self.before = snapshot(&self.dir);
    }

    /// Import `m` into the root and check every invariant; see the module doc.
    pub fn run(&mut self, m: &Mutant) -> CaseResult {
        self.cases += 1;
        self.last_cpu = Duration::ZERO;
        self.last_message.clear();
        let case = self.work.join("cases").join(format!("{}", self.cases));
        fs::create_dir_all(&case).unwrap();
        let bundle = case.join(&m.name);
        match &m.bundle {
            Payload::Bytes(b) => fs::write(&bundle, b).unwrap(),
            Payload::File(p) => {
                fs::rename(p, &bundle).unwrap();
            }
        }
        for (name, bytes) in &m.sidecars {
            let path = if name.starts_with('.') {
                case.join(format!("{}{name}", m.name))
            } else {
                case.join(name)
            };
            fs::write(path, bytes).unwrap();
        }
        let dir = case.display().to_string();
        // --wait: see `import`.
        let mut args: Vec<String> = vec![
            "--json".into(),
            "--wait".into(),
            "kit".into(),
            "import".into(),
            bundle.display().to_string(),
            "--free-margin".into(),
            "0".into(),
        ];
        if !m.args.iter().any(|a| a == "--max-kit-age") {
            args.extend(["--max-kit-age".into(), "0".into()]);
        }
        args.extend(m.args.iter().map(|a| a.replace("{dir}", &dir)));
        let quarantine_before = fs::read_dir(self.root.join("quarantine")).unwrap().count();
        let mut cmd = Command::new(ouk());
        cmd.arg("--root")
            .arg(&self.root)
            .args(&args)
            .env_remove("OUK_ROOT");
        // Bounded: a case that spins past its CPU bound (a decoder expanding a bomb, a
        // busy loop) or hangs past the wall deadline fails here, named, instead of
        // stalling the run.
        let child = Bounded::spawn_with(
            &mut cmd,
            format!("[{}] {}", m.family, m.detail),
            self.cpu_secs,
            self.wall,
        );
        let out = match child.wait() {
            Ok(out) => out,
            Err(overrun) => {
                let _ = fs::remove_dir_all(&case);
                self.reset();
                return Err(overrun);
            }
        };
        self.last_cpu = out.cpu;
        if out.cpu > self.slowest.0 {
            self.slowest = (out.cpu, m.detail.clone());
        }
        let status = out.status;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let result = self.check(m, status.code(), &stdout, &stderr, quarantine_before);
        let _ = fs::remove_dir_all(&case);
        if result.is_err() || result == Ok(0) {
            self.reset();
        }
        result
    }

    fn check(
        &mut self,
        m: &Mutant,
        code: Option<i32>,
        stdout: &str,
        stderr: &str,
        quarantine_before: usize,
    ) -> CaseResult {
        let ctx = || {
            format!(
                "[{}] {}\nstdout: {stdout}\nstderr: {stderr}",
                m.family, m.detail
            )
        };
        let Some(code) = code else {
            return Err(format!("killed by a signal: {}", ctx()));
        };
        if code == 101 {
            return Err(format!("PANIC (exit 101): {}", ctx()));
        }
        if !m.expect.contains(&code) {
            return Err(format!(
                "exit {code}, expected one of {:?}: {}",
                m.expect,
                ctx()
            ));
        }
        let doc: serde_json::Value = serde_json::from_str(stdout.trim())
            .map_err(|e| format!("stdout is not one JSON document ({e}): {}", ctx()))?;
        // Staging is empty whatever happened.
        let staging = fs::read_dir(self.root.join("staging")).unwrap().count();
        if staging != 0 {
            return Err(format!(
                "staging holds {staging} entries afterwards: {}",
                ctx()
            ));
        }
        if code == 0 {
            // Accepted: it must be the genuine target, complete.
            let current = super::super::check_current_complete(&self.root);
            let Some(current) = current else {
                return Err(format!("accepted but nothing current: {}", ctx()));
            };
            if !self.accepted.contains(&current) {
                return Err(format!(
                    "accepted and activated an unknown generation {current}: {}",
                    ctx()
                ));
            }
            return Ok(0);
        }
        let message = doc["error"].as_str().unwrap_or_default();
        self.last_message = message.to_string();
        if message.is_empty() || doc["exitCode"] != code {
            return Err(format!(
                "no error message / exitCode in the JSON: {}",
                ctx()
            ));
        }
        if let Some(want) = m.message
            && !want.split('|').any(|w| message.contains(w))
        {
            return Err(format!("message lacks {want:?}: {}", ctx()));
        }
        let after = snapshot(&self.dir);
        if after != self.before {
            let mut diff = Vec::new();
            for (k, v) in &after.paths {
                if self.before.paths.get(k) != Some(v) {
                    diff.push(format!("+ {k}: {v}"));
                }
            }
            for (k, v) in &self.before.paths {
                if !after.paths.contains_key(k) {
                    diff.push(format!("- {k}: {v}"));
                }
            }
            return Err(format!(
                "the root changed outside staging/quarantine: {diff:?}\nfacts {} -> {}\n{}",
                self.before.facts,
                after.facts,
                ctx()
            ));
        }
        // Quarantined with the same code.
        let q = self.root.join("quarantine");
        let entries: Vec<PathBuf> = fs::read_dir(&q)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if code != 12 {
            if entries.len() != quarantine_before + 1 {
                return Err(format!(
                    "not quarantined ({} entries): {}",
                    entries.len(),
                    ctx()
                ));
            }
            let newest = entries
                .iter()
                .find(|p| p.join("reason.json").is_file())
                .ok_or_else(|| format!("no reason.json: {}", ctx()))?;
            let reason: serde_json::Value =
                serde_json::from_slice(&fs::read(newest.join("reason.json")).unwrap())
                    .map_err(|e| format!("reason.json: {e}"))?;
            if reason["code"] != code || reason["step"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "reason.json {reason} does not match exit {code}: {}",
                    ctx()
                ));
            }
        }
        for e in entries {
            ouk_root::remove_tree(&e).unwrap();
        }
        Ok(code)
    }
}
