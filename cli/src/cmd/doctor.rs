//! `ouk doctor`: checks a root the way a support engineer would, and says what to fix.
//!
//! Each check answers `ok`, `warn` (works, but needs attention soon) or `fail` (an import
//! or a monitor will fail until it is fixed), with a message and, unless `ok`, the fix.
//! The exit code is 0 unless a check fails (1).
//!
//! Invariant: doctor is read-only, like `status`. It never takes the root's lock (a
//! doctor run during an import must not make the import fail, nor wait for it), never
//! creates or repairs anything, and works for a user that can only read the root. The
//! lock check therefore reads `/proc/locks` instead of trying the lock. The full store
//! check is `--fsck`, which does take the lock (it reads every chunk), and says so.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::{Context, Failure};

/// `ouk doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The staleness window in days (as `status --max-kit-age`).
    #[arg(long, value_name = "DAYS", default_value_t = ouk_kit::import::DEFAULT_MAX_AGE_DAYS)]
    max_kit_age: u64,
    /// Also read every chunk of the store (`ouk store fsck`): takes the root's lock, and
    /// as long as reading the whole store takes.
    #[arg(long)]
    fsck: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One check's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    /// What was checked: `root`, `state`, `lock`, `space`, `trust`, `clock`, `freshness`,
    /// `interrupted`, `quarantine`, `store`.
    check: &'static str,
    status: Verdict,
    message: String,
    /// What to do, when the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(check: &'static str, message: impl Into<String>) -> Check {
        Check {
            check,
            status: Verdict::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn warn(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            status: Verdict::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            status: Verdict::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    root: String,
    checks: Vec<Check>,
    /// The worst status of any check.
    verdict: Verdict,
    exit_code: u8,
}

/// Clock readings further ahead than this of the system clock are "the clock is behind".
const CLOCK_SLACK_SECS: i64 = 300;

pub fn run(ctx: &Context, args: &DoctorArgs) -> Result<ExitCode, Failure> {
    // A missing root is the one thing doctor cannot look into: the same exit 1 as `status`.
    ctx.require_root()?;
    let mut checks = vec![check_access(&ctx.root)];
    let view = match ctx.open_view() {
        Ok(v) => Some(v),
        Err(f) => {
            checks.push(Check::fail(
                "state",
                f.message,
                "run any write command as the root's owner (for example `ouk gen list` as that user), or restore the root from a backup",
            ));
            None
        }
    };
    checks.push(check_lock(&ctx.root));
    let active = view
        .as_ref()
        .and_then(|v| active_generation(v).ok().flatten());
    checks.push(check_space(&ctx.root, active.as_ref()));
    checks.push(check_trust(&ctx.root));
    checks.push(check_clock(active.as_ref()));
    checks.push(check_freshness(active.as_ref(), args.max_kit_age));
    checks.push(check_interrupted(&ctx.root));
    checks.push(check_quarantine(&ctx.root));
    if args.fsck {
        checks.push(check_store(ctx));
    }
    let verdict = checks.iter().map(|c| c.status).max().unwrap_or(Verdict::Ok);
    let code = if verdict == Verdict::Fail {
        ExitCode::Failure
    } else {
        ExitCode::Ok
    };
    let report = Report {
        root: ctx.root.display().to_string(),
        checks,
        verdict,
        exit_code: code as u8,
    };
    ctx.out.emit(&report, || human(&report));
    Ok(code)
}

fn human(report: &Report) -> String {
    let mut s = format!("root {}\n", report.root);
    for c in &report.checks {
        let mark = match c.status {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        s.push_str(&format!("{mark} {:<12} {}\n", c.check, c.message));
        if let Some(fix) = &c.fix {
            s.push_str(&format!("     {:<12} fix: {fix}\n", ""));
        }
    }
    let n = |v| report.checks.iter().filter(|c| c.status == v).count();
    s.push_str(&format!(
        "{} ok, {} warning(s), {} failure(s)",
        n(Verdict::Ok),
        n(Verdict::Warn),
        n(Verdict::Fail)
    ));
    s
}

/// What doctor needs of the active generation.
struct Active {
    bytes: u64,
    created_at: Option<i64>,
    version: String,
}

fn active_generation(view: &ouk_root::RootView) -> Result<Option<Active>, Failure> {
    let gens = view.generations()?;
    Ok(gens.iter().find(|g| g.current).map(|g| {
        let created = g.record.labels.get("createdAt");
        Active {
            bytes: g.record.bytes,
            created_at: created.and_then(|t| ouk_kit::provenance::time::parse_rfc3339(t)),
            version: g
                .record
                .labels
                .get("version")
                .cloned()
                .unwrap_or_else(|| "-".into()),
        }
    }))
}

/// Whether this user may write the root (imports need to; monitors need not).
fn check_access(root: &Path) -> Check {
    let Ok(c) = std::ffi::CString::new(root.as_os_str().as_bytes()) else {
        return Check::fail(
            "root",
            "the root's path holds a NUL byte",
            "use another --root",
        );
    };
    // SAFETY: access(2) on a valid NUL-terminated path; it only reads.
    let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    if writable {
        Check::ok(
            "root",
            format!("{} exists and this user may write it", root.display()),
        )
    } else {
        Check::warn(
            "root",
            format!(
                "{} is read-only for this user: status and monitoring work, imports do not",
                root.display()
            ),
            "run imports as the root's owner",
        )
    }
}

/// Whether another process holds the root's lock now, from `/proc/locks` (never by trying
/// it: see the module's invariant).
fn check_lock(root: &Path) -> Check {
    let lock = root.join("lock");
    let Ok(meta) = std::fs::metadata(&lock) else {
        return Check::ok("lock", "not locked (no lock file yet)");
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Check::ok("lock", "cannot read /proc/locks here: not checked");
    };
    match holder_of(&table, meta.dev(), meta.ino()) {
        Some(pid) => Check::warn(
            "lock",
            format!("held by process {pid} (an import or another write command is running)"),
            "wait for it; write commands meanwhile fail with exit 13, or wait with --wait",
        ),
        None => Check::ok("lock", "not locked"),
    }
}

/// The pid holding a lock on device `dev`, inode `ino` in a `/proc/locks` listing
/// (`1: FLOCK ADVISORY WRITE 1234 fd:01:5678 0 EOF`: the device is `major:minor` in hex).
fn holder_of(table: &str, dev: u64, ino: u64) -> Option<u32> {
    let major = libc::major(dev) as u64;
    let minor = libc::minor(dev) as u64;
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed with "->" and are not holders.
        if fields.get(1) == Some(&"->") {
            return None;
        }
        let pid = fields.get(4)?.parse::<u32>().ok()?;
        let mut id = fields.get(5)?.split(':');
        let ma = u64::from_str_radix(id.next()?, 16).ok()?;
        let mi = u64::from_str_radix(id.next()?, 16).ok()?;
        let i = id.next()?.parse::<u64>().ok()?;
        (ma == major && mi == minor && i == ino).then_some(pid)
    })
}

/// Free space against the next kit, guessed as the size of the active one, with the
/// import's own rule ([`ouk_kit::import::space_needed`]).
fn check_space(root: &Path, active: Option<&Active>) -> Check {
    let Ok(free) = ouk_kit::import::free_bytes(root) else {
        return Check::warn(
            "space",
            "cannot read the free space",
            "check the file system",
        );
    };
    let margin = ouk_kit::import::DEFAULT_FREE_MARGIN;
    let next = active.map_or(0, |a| a.bytes);
    let needed = ouk_kit::import::space_needed(next, margin);
    let message = format!(
        "{} free; a kit the size of the active one needs {} (1.5 x {} + the {} margin)",
        bytes(free),
        bytes(needed),
        bytes(next),
        bytes(margin)
    );
    if free >= needed {
        Check::ok("space", message)
    } else {
        Check::fail(
            "space",
            message,
            "free space (`ouk gen gc --keep 2`, `ouk store gc`) or lower the margin with `kit import --free-margin SIZE`",
        )
    }
}

fn check_trust(root: &Path) -> Check {
    match ouk_kit::import::trust::list(root) {
        Ok(keys) if keys.is_empty() => Check::fail(
            "trust",
            "no trusted keys: every signed import is refused (exit 5)",
            "ouk trust add PUBLIC-KEY.pem",
        ),
        Ok(keys) => Check::ok(
            "trust",
            format!(
                "{} trusted key(s): {}",
                keys.len(),
                keys.iter()
                    .map(|(k, _)| k.kid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => Check::fail(
            "trust",
            format!("the trust store cannot be read: {e}"),
            "check the permissions of the root's trust directory",
        ),
    }
}

/// The clock against what the root has seen: a kit created "in the future" means this
/// host's clock is behind (staleness and expiry checks then lie).
fn check_clock(active: Option<&Active>) -> Check {
    let now = ouk_root::now_unix();
    // 2020-01-01: no kit of this format is older, so an earlier clock was never set.
    if now < 1_577_836_800 {
        return Check::fail(
            "clock",
            format!(
                "the system clock reads {} (before 2020)",
                crate::output::rfc3339(now)
            ),
            "set the clock (staleness and expiry are judged by it)",
        );
    }
    match active.and_then(|a| a.created_at) {
        Some(created) if created > now + CLOCK_SLACK_SECS => Check::warn(
            "clock",
            format!(
                "the active kit was created {} ahead of this host's clock: the clock is behind",
                crate::output::age(created - now)
            ),
            "set the clock (staleness and expiry are judged by it)",
        ),
        _ => Check::ok("clock", format!("now {}", crate::output::rfc3339(now))),
    }
}

fn check_freshness(active: Option<&Active>, max_days: u64) -> Check {
    let Some(a) = active else {
        return Check::warn(
            "freshness",
            "no active generation",
            "import a kit: ouk kit import KIT.tar.gz",
        );
    };
    let now = ouk_root::now_unix();
    let Some(created) = a.created_at else {
        return Check::ok(
            "freshness",
            format!("version {} (no creation time recorded)", a.version),
        );
    };
    let days = (now - created).max(0) / 86_400;
    let message = format!(
        "version {} created {days} day(s) ago (window {max_days})",
        a.version
    );
    if max_days > 0 && days > max_days as i64 {
        Check::warn(
            "freshness",
            message,
            "carry and import a newer kit or delta",
        )
    } else {
        Check::ok("freshness", message)
    }
}

/// Leftovers of an interrupted run (the next write command repairs them).
fn check_interrupted(root: &Path) -> Check {
    let staged = std::fs::read_dir(root.join("staging")).map_or(0, |d| d.count());
    if staged == 0 {
        Check::ok("interrupted", "no leftovers of an interrupted run")
    } else {
        Check::warn(
            "interrupted",
            format!("{staged} staging entr(ies) left by an interrupted or running import"),
            "nothing, if an import is running; else the next write command (for example `ouk store gc`) cleans them",
        )
    }
}

fn check_quarantine(root: &Path) -> Check {
    match std::fs::read_dir(root.join("quarantine")) {
        Ok(d) => match d.count() {
            0 => Check::ok("quarantine", "empty"),
            n => Check::warn(
                "quarantine",
                format!("{n} refused import(s) kept"),
                "read them with `ouk quarantine list`, then `ouk quarantine clean`",
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::ok("quarantine", "empty"),
        Err(_) => Check::ok("quarantine", "not readable by this user: not checked"),
    }
}

fn check_store(ctx: &Context) -> Check {
    let root = match ctx.open_root() {
        Ok(r) => r,
        Err(f) => {
            return Check::fail(
                "store",
                f.message,
                "run again when the root is free, or with --wait",
            );
        }
    };
    match root.store().fsck(&|_| {}) {
        Ok(r) if r.is_clean() => Check::ok("store", "every chunk read back and matched its id"),
        Ok(r) => Check::fail(
            "store",
            format!(
                "{} damaged chunk(s), {} damaged file(s), {} missing pack(s)",
                r.damaged.len(),
                r.damaged_files.len(),
                r.missing_packs.len()
            ),
            "see `ouk store fsck`; re-import the affected kits",
        ),
        Err(e) => Check::fail("store", e.to_string(), "see `ouk store fsck`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_holder_is_found_by_device_and_inode_and_waiters_are_not_holders() {
        let dev = libc::makedev(0xfd, 0x01);
        let table = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:777 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 5151 fd:01:888 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 08:02:777 0 EOF\n";
        assert_eq!(holder_of(table, dev, 777), Some(4242));
        assert_eq!(holder_of(table, dev, 888), None, "a waiter is not a holder");
        assert_eq!(holder_of(table, dev, 999), None);
        assert_eq!(holder_of(table, libc::makedev(8, 2), 777), Some(99));
    }
}
