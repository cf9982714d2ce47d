//! Import policy: version ordering, the window of `createdAt` dates a host accepts, and
//! the gates the pipeline applies with them (free space, newer version, freshness), each
//! refusing with its own step name.
//!
//! **Versions.** When both versions are valid SemVer 2.0 (`2025.10.1`, `2025.10.1-rc1`,
//! `1.0.0+build.7`) they compare by SemVer precedence: a pre-release sorts before its
//! release (`2025.10.1-rc1` < `2025.10.1`), pre-release identifiers compare as SemVer says
//! (numeric ones numerically, and below alphanumeric ones), and build metadata is ignored
//! (`1.0.0+b2` and `1.0.0+b1` are equal, so neither is newer than the other). Any other
//! pair (either side not SemVer: `2025.10`, `v1.2.3`, `2025.10.01`) compares as ouk always
//! did: component by component, splitting on `.`, `-` and `+`, numeric components
//! numerically (`2025.10.10` > `2025.10.9`), others as text, and a version that is a prefix
//! of another is older (`2025.10` < `2025.10.1`). Both orders are reflexive and
//! antisymmetric (the fuzz target checks that for arbitrary strings); a kit line should
//! stay with one kind of version, since the two orders are not transitive together.
//!
//! **Dates.** A kit is accepted when its `createdAt` lies in
//! `[now - max age, now + clock skew]`: an old kit is stale (a freeze: replaying old,
//! validly signed kits holds a host back), and a kit dated ahead of the host's clock by
//! more than the skew is refused too, since a kit dated far ahead would never go stale.
//! The skew exists because an air-gapped host has no time server and its clock drifts from
//! the build site's.

use std::cmp::Ordering;
use std::io;
use std::path::{Path, PathBuf};

use ouk_delta::GenerationId;
use ouk_root::Root;

use super::{ImportOptions, StepResult, step};
use crate::error::{KitError, Result};
use ouk_store::ErrorClass;

/// Why the import policy refuses a kit: the refusals of this module's gates. Each keeps
/// the message and class it had as a [`KitError`] variant (it reaches one through
/// [`KitError::Policy`], transparently).
#[derive(Debug, thiserror::Error)]
pub enum PolicyRefusal {
    /// The kit is not newer than the active generation.
    #[error("version not newer: kit {kit} is not newer than the active {active}")]
    NotNewer {
        /// The kit's version.
        kit: String,
        /// The active version.
        active: String,
    },
    /// The kit is older than the staleness window (a freeze attack, or a kit left too long).
    #[error("kit is stale: created {created_at}, more than {max_days} days ago")]
    Stale {
        /// The kit's createdAt.
        created_at: String,
        /// The window.
        max_days: u64,
    },
    /// The kit is dated further ahead of this host's clock than the skew allows (it would
    /// never go stale: a freeze that lasts).
    #[error(
        "kit is dated in the future: created {created_at}, more than {max_skew_secs} s ahead of this host's clock ({now})"
    )]
    FutureDated {
        /// The kit's createdAt.
        created_at: String,
        /// This host's time.
        now: String,
        /// The allowance, seconds.
        max_skew_secs: u64,
    },
    /// Not enough free space.
    #[error(
        "not enough disk space: free >= {} GiB in {} before retrying (have {} GiB)",
        gib_text(*needed_gib),
        path.display(),
        gib_text(*free_gib)
    )]
    NoSpace {
        /// Directory checked.
        path: PathBuf,
        /// GiB needed.
        needed_gib: f64,
        /// GiB free.
        free_gib: f64,
    },
}

impl PolicyRefusal {
    /// Not newer and stale are "not newer" (a freeze looks like either), a kit dated
    /// ahead is invalid, too little space is "no space".
    pub fn class(&self) -> ErrorClass {
        match self {
            PolicyRefusal::NotNewer { .. } | PolicyRefusal::Stale { .. } => ErrorClass::NotNewer,
            PolicyRefusal::FutureDated { .. } => ErrorClass::Validation,
            PolicyRefusal::NoSpace { .. } => ErrorClass::NoSpace,
        }
    }
}

/// GiB with one decimal, without a trailing `.0` ("2", "2.5"), as the seed writes
/// "Free >= 2 GiB".
fn gib_text(gib: f64) -> String {
    let text = format!("{gib:.1}");
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => text,
    }
}

/// Default allowance for a kit dated ahead of this host's clock, seconds (one hour).
///
/// An air-gapped host's clock drifts (no NTP): a few seconds a day on ordinary hardware,
/// minutes over months, plus a clock set by hand. One hour covers that with room to spare,
/// and it is small next to the 7-day staleness window, so it barely stretches how long a
/// kit can be replayed. Operators with worse clocks widen it (`--max-clock-skew`).
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u64 = 3600;

/// Compare two kit versions (see the module doc).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp_precedence(&y),
        _ => compare_components(a, b),
    }
}

/// The order for versions that are not SemVer (the order ouk used for every version
/// before SemVer).
fn compare_components(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> { s.split(['.', '-', '+']).map(str::to_string).collect() };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(n), Ok(m)) => n.cmp(&m),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Where a kit's `createdAt` falls relative to the accepted window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Inside the window.
    Fresh,
    /// Older than the staleness window, or undated (`createdAt` does not parse) while a
    /// window is set: an undated kit cannot show it is fresh.
    Stale,
    /// Dated more than the clock skew ahead of this host's clock.
    Future,
}

/// Judge `created_at` (Unix seconds, `None` when it does not parse) at `now` against a
/// staleness window of `max_age_days` (0: no window) and a skew allowance of
/// `max_skew_secs`. The future bound holds whatever the window: turning the staleness
/// check off (`--max-kit-age 0`) must not make a kit dated in 2099 acceptable. An undated
/// kit passes when there is no window, as before: there is no date to judge.
pub fn freshness(
    created_at: Option<i64>,
    now: i64,
    max_age_days: u64,
    max_skew_secs: u64,
) -> Freshness {
    let Some(created) = created_at else {
        return if max_age_days == 0 {
            Freshness::Fresh
        } else {
            Freshness::Stale
        };
    };
    let age_secs = now.saturating_sub(created);
    // Negative age: dated ahead of this clock.
    if age_secs < 0 && age_secs.unsigned_abs() > max_skew_secs {
        return Freshness::Future;
    }
    // Whole days, as the window is given (a kit 7 days and 23 hours old is 7 days old).
    if max_age_days != 0 && age_secs / 86_400 > i64::try_from(max_age_days).unwrap_or(i64::MAX) {
        return Freshness::Stale;
    }
    Freshness::Fresh
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| KitError::Usage(format!("{}: path contains NUL", dir.display())))?;
    // SAFETY: statvfs writes into the struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(KitError::Io {
            context: format!("statvfs {}", dir.display()),
            source: io::Error::last_os_error(),
        });
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

fn gib(n: u64) -> f64 {
    n as f64 / (1u64 << 30) as f64
}

/// Bytes an import of `bytes` of new content needs free: the staged files, the store's
/// packs of them (compressed: at most half as much again), plus the kept `margin`.
pub fn space_needed(bytes: u64, margin: u64) -> u64 {
    bytes.saturating_add(bytes / 2).saturating_add(margin)
}

/// [`space_needed`] for a delta apply: its new chunks stay raw in their packs until
/// `store gc`/`compact` (`ouk_store::compact::LAZY_LEVEL`), so the packs may take as
/// many bytes again as the files rebuilt.
pub fn space_needed_for_apply(bytes: u64, margin: u64) -> u64 {
    let packs = if ouk_store::compact::LAZY_LEVEL.is_none() {
        bytes
    } else {
        bytes / 2
    };
    bytes.saturating_add(packs).saturating_add(margin)
}

/// Step 1b: `needed` bytes free ([`space_needed`], [`space_needed_for_apply`]).
pub(crate) fn check_disk(root: &Root, needed: u64) -> StepResult<()> {
    let free = step("disk", free_bytes(root.dir()))?;
    if free < needed {
        return Err((
            "disk",
            KitError::from(PolicyRefusal::NoSpace {
                path: root.dir().to_path_buf(),
                needed_gib: gib(needed),
                free_gib: gib(free),
            }),
        ));
    }
    Ok(())
}

/// Step 5a: the version must be newer than the active one unless forced.
pub(crate) fn check_version(
    root: &Root,
    previous: Option<GenerationId>,
    version: &str,
    force: bool,
) -> StepResult<()> {
    let active_version = match previous {
        Some(p) => step("policy", root.generation_record(&p).map_err(KitError::from))?
            .and_then(|r| r.labels.get("version").cloned()),
        None => None,
    };
    if let Some(active) = &active_version
        && compare_versions(version, active) != std::cmp::Ordering::Greater
        && !force
    {
        return Err((
            "policy",
            KitError::from(PolicyRefusal::NotNewer {
                kit: version.to_string(),
                active: active.clone(),
            }),
        ));
    }
    Ok(())
}

/// Whole days since `created_at` (RFC 3339), or `None` when it does not parse. Never
/// negative: a kit dated ahead of this host's clock (within the skew, or forced) is 0
/// days old.
pub fn age_days(created_at: &str) -> Option<i64> {
    crate::provenance::time::parse_rfc3339(created_at)
        .map(|t| ouk_root::now_unix().saturating_sub(t).max(0) / 86_400)
}

/// Step 5c: a kit older than the staleness window, or dated further ahead of this host's
/// clock than the skew allows, is refused unless forced ([`freshness`]).
pub(crate) fn check_fresh(created_at: &str, opts: &ImportOptions) -> StepResult<()> {
    if opts.force.is_some() {
        return Ok(());
    }
    let now = ouk_root::now_unix();
    let created = crate::provenance::time::parse_rfc3339(created_at);
    match freshness(created, now, opts.max_age_days, opts.max_clock_skew_secs) {
        Freshness::Fresh => Ok(()),
        Freshness::Stale => Err((
            "policy",
            KitError::from(PolicyRefusal::Stale {
                created_at: created_at.to_string(),
                max_days: opts.max_age_days,
            }),
        )),
        Freshness::Future => Err((
            "policy",
            KitError::from(PolicyRefusal::FutureDated {
                created_at: created_at.to_string(),
                now: crate::provenance::time::format_utc(now).unwrap_or_else(|| now.to_string()),
                max_skew_secs: opts.max_clock_skew_secs,
            }),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gib_text_drops_a_trailing_zero_only() {
        assert_eq!(gib_text(2.0), "2");
        assert_eq!(gib_text(2.54), "2.5");
    }

    #[test]
    fn calendar_versions_order_numerically() {
        assert_eq!(
            compare_versions("2025.10.10", "2025.10.9"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("2025.10.0", "2025.10.0"), Ordering::Equal);
        assert_eq!(compare_versions("2025.10", "2025.10.1"), Ordering::Less);
        assert_eq!(
            compare_versions("2025.11.0", "2025.10.31"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("1.0.0-rc1", "1.0.0-rc2"), Ordering::Less);
    }

    #[test]
    fn a_pre_release_sorts_before_its_release() {
        // The rollback the review found: the longer string was taken as newer.
        assert_eq!(
            compare_versions("2025.10.1-rc1", "2025.10.1"),
            Ordering::Less
        );
        assert_eq!(
            compare_versions("2025.10.1", "2025.10.1-rc1"),
            Ordering::Greater
        );
        // ... but after the previous release.
        assert_eq!(
            compare_versions("2025.10.1-rc1", "2025.10.0"),
            Ordering::Greater
        );
        // SemVer pre-release rules: numeric identifiers numerically, below text ones;
        // more identifiers sort later.
        assert_eq!(
            compare_versions("1.0.0-rc.2", "1.0.0-rc.10"),
            Ordering::Less
        );
        assert_eq!(compare_versions("1.0.0-1", "1.0.0-alpha"), Ordering::Less);
        assert_eq!(
            compare_versions("1.0.0-alpha", "1.0.0-alpha.1"),
            Ordering::Less
        );
    }

    #[test]
    fn build_metadata_does_not_make_a_version_newer() {
        assert_eq!(compare_versions("1.0.0+b2", "1.0.0+b1"), Ordering::Equal);
        assert_eq!(compare_versions("1.0.0+b1", "1.0.0"), Ordering::Equal);
    }

    #[test]
    fn versions_that_are_not_semver_compare_as_before() {
        // Two components, a leading zero, a `v` prefix: not SemVer.
        assert_eq!(compare_versions("2025.10", "2025.10.1"), Ordering::Less);
        assert_eq!(compare_versions("2025.10.01", "2025.10.1"), Ordering::Equal);
        assert_eq!(compare_versions("v1.2.10", "v1.2.9"), Ordering::Greater);
        // A mixed pair uses the old order too (both sides, so it stays antisymmetric).
        assert_eq!(compare_versions("2025.10", "2025.10.0"), Ordering::Less);
        assert_eq!(compare_versions("2025.10.0", "2025.10"), Ordering::Greater);
    }

    const NOW: i64 = 1_761_177_600; // 2025-10-23T00:00:00Z
    const DAY: i64 = 86_400;

    #[test]
    fn a_kit_dated_ahead_by_more_than_the_skew_is_future_whatever_the_window() {
        let skew = DEFAULT_MAX_CLOCK_SKEW_SECS;
        let year_2099 = 4_070_908_800;
        assert_eq!(freshness(Some(year_2099), NOW, 7, skew), Freshness::Future);
        assert_eq!(freshness(Some(year_2099), NOW, 0, skew), Freshness::Future);
        assert_eq!(freshness(Some(NOW + 3601), NOW, 7, skew), Freshness::Future);
        // Within the skew: fresh (clocks drift).
        assert_eq!(freshness(Some(NOW + 3600), NOW, 7, skew), Freshness::Fresh);
        assert_eq!(freshness(Some(NOW + 60), NOW, 0, skew), Freshness::Fresh);
        // Configurable, including no allowance at all.
        assert_eq!(
            freshness(Some(NOW + 7200), NOW, 7, 86_400),
            Freshness::Fresh
        );
        assert_eq!(freshness(Some(NOW + 1), NOW, 7, 0), Freshness::Future);
        // Extremes do not overflow.
        assert_eq!(
            freshness(Some(i64::MAX), NOW, 7, u64::MAX),
            Freshness::Fresh
        );
        assert_eq!(freshness(Some(i64::MIN), NOW, 7, 0), Freshness::Stale);
    }

    #[test]
    fn the_staleness_window_counts_whole_days() {
        assert_eq!(freshness(Some(NOW - 7 * DAY), NOW, 7, 0), Freshness::Fresh);
        assert_eq!(
            freshness(Some(NOW - 8 * DAY + 1), NOW, 7, 0),
            Freshness::Fresh
        );
        assert_eq!(freshness(Some(NOW - 8 * DAY), NOW, 7, 0), Freshness::Stale);
        assert_eq!(freshness(Some(0), NOW, 0, 0), Freshness::Fresh);
        // Undated: stale with a window, accepted without one.
        assert_eq!(freshness(None, NOW, 7, 3600), Freshness::Stale);
        assert_eq!(freshness(None, NOW, 0, 3600), Freshness::Fresh);
    }
}
