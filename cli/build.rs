//! Build facts for `ouk --version`: the commit the binary was built from and the build date.
//!
//! Invariants:
//! - Reproducible: nothing here reads the clock. The date is `SOURCE_DATE_EPOCH` when set
//!   (what reproducible-builds tooling and the package build pass), else the commit's own
//!   committer time, so the same commit gives the same bytes whenever it is built.
//! - The commit is `OUK_BUILD_COMMIT` when set (a source tarball has no `.git`), else
//!   `git rev-parse HEAD`; "unknown" when neither is available, never a failed build.
//! - Cargo re-runs this script when either variable changes or HEAD moves (the worktree's
//!   HEAD file and the branch's ref), and not on every build.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=OUK_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    watch_git_head();

    let commit = std::env::var("OUK_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| git(&["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok()));
    let date = epoch.map_or_else(|| "unknown".to_string(), utc_date);
    println!("cargo:rustc-env=OUK_BUILD_COMMIT={}", commit.trim());
    println!("cargo:rustc-env=OUK_BUILD_DATE={date}");
}

/// Output of `git ARGS` run in this crate's directory, trimmed; `None` when git is missing,
/// fails, or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Ask cargo to re-run when HEAD moves: the HEAD file of this worktree, the ref it names
/// (loose), and packed-refs. Only files that exist are named: cargo treats a missing one as
/// always changed, which would relink `ouk` on every build.
fn watch_git_head() {
    let mut files = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        files.push(head);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(loose) = git(&["rev-parse", "--git-path", &branch])
    {
        files.push(loose);
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        files.push(packed);
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    for f in files {
        let path = Path::new(&dir).join(&f);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SSZ`) of a Unix time. Howard Hinnant's days-to-civil algorithm, written out
/// because a date crate as a build dependency would be compiled a second time (for the
/// build-script profile) only for these few lines.
fn utc_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let secs = epoch.rem_euclid(86_400);
    let (hour, minute, second) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}
