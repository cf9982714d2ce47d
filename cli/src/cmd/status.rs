//! `ouk status`: what is active, since when, whether it is current, and whether anything
//! waits in quarantine. Also the root's gauges of `serve`'s `/metrics`.
//!
//! Read-only: the root is opened as a [`ouk_root::RootView`] (no lock, nothing created or
//! written), so a monitor may poll it during an import, as a user that cannot write the
//! root. The exit code is the verdict: 0 current, 9 ([`ExitCode::NotCurrent`]) when
//! nothing is active or the active kit is older than the staleness window.

use clap::Args;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::{age, bytes, rfc3339};
use crate::{Context, Failure};

/// `ouk status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The staleness window: the active kit is stale (exit 9) when it was created more than
    /// DAYS days ago (0: never stale). The default is `kit import`'s.
    #[arg(long, value_name = "DAYS", default_value_t = ouk_kit::import::DEFAULT_MAX_AGE_DAYS)]
    max_kit_age: u64,
}

/// What `gather` found, in the units the code works in (seconds since the epoch).
struct Status {
    root: String,
    current: Option<ouk_delta::GenerationId>,
    labels: ouk_root::Labels,
    files: u64,
    bytes: u64,
    activated_at: Option<i64>,
    age_seconds: Option<i64>,
    generations: usize,
    /// Entries in quarantine; `None` when this user may not list it (it is private to the
    /// root's owner).
    quarantined: Option<usize>,
    /// The active kit is older than the staleness window (no update for too long).
    stale: bool,
    /// Days since the active kit was created.
    kit_age_days: Option<i64>,
    /// When the active kit was created (seconds since the epoch).
    kit_created_at: Option<i64>,
    /// The window `stale` was judged against (days; 0: none).
    max_kit_age_days: u64,
    /// `ok`, `stale` (the active kit is older than the window) or `none` (nothing active).
    verdict: &'static str,
    /// The exit code `ouk status` gives: 0 for `ok`, 9 otherwise.
    exit_code: u8,
}

/// The status document (`ouk status --json`, `GET /api/offline-kit/status`), named as
/// every JSON document of ouk is (docs/operations.md, "JSON output"): camelCase, times in
/// RFC 3339, the active generation's id under `generation`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusDocument<'a> {
    root: &'a str,
    generation: Option<ouk_delta::GenerationId>,
    labels: &'a ouk_root::Labels,
    files: u64,
    bytes: u64,
    activated_at: Option<String>,
    age_seconds: Option<i64>,
    generations: usize,
    quarantined: Option<usize>,
    stale: bool,
    kit_age_days: Option<i64>,
    kit_created_at: Option<String>,
    max_kit_age_days: u64,
    verdict: &'static str,
    exit_code: u8,
}

impl Status {
    fn document(&self) -> StatusDocument<'_> {
        StatusDocument {
            root: &self.root,
            generation: self.current,
            labels: &self.labels,
            files: self.files,
            bytes: self.bytes,
            activated_at: self.activated_at.map(rfc3339),
            age_seconds: self.age_seconds,
            generations: self.generations,
            quarantined: self.quarantined,
            stale: self.stale,
            kit_age_days: self.kit_age_days,
            kit_created_at: self.kit_created_at.map(rfc3339),
            max_kit_age_days: self.max_kit_age_days,
            verdict: self.verdict,
            exit_code: self.exit_code,
        }
    }
}

/// The status document (`ouk status --json`), also what `GET /api/offline-kit/status`
/// answers (with the default staleness window).
pub fn status_json(ctx: &Context) -> Result<serde_json::Value, Failure> {
    let st = gather(ctx, ouk_kit::import::DEFAULT_MAX_AGE_DAYS)?;
    serde_json::to_value(st.document()).map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))
}

/// The root's gauges for `serve`'s `/metrics`: the status (default window) and today's
/// quota counts.
pub fn gauges(ctx: &Context) -> Result<ouk_transport::metrics::RootGauges, Failure> {
    let st = gather(ctx, ouk_kit::import::DEFAULT_MAX_AGE_DAYS)?;
    let label = |k: &str| st.labels.get(k).cloned().unwrap_or_default();
    let quota = crate::cmd::quota::summary_for_metrics(&ctx.root)?.map(|s| {
        ouk_transport::metrics::QuotaGauges {
            scans: s.scans,
            anonymous_subjects: s.anonymous_subjects,
            token_subjects: s.token_subjects,
            throttled_subjects: s.throttled_subjects,
            reminded_subjects: s.reminded_subjects,
        }
    });
    Ok(ouk_transport::metrics::RootGauges {
        active: st
            .current
            .map(|id| ouk_transport::metrics::ActiveGeneration {
                generation: id.to_hex(),
                version: label("version"),
                channel: label("channel"),
                activated_at: st.activated_at,
                kit_created_at: st.kit_created_at,
            }),
        generations: st.generations as u64,
        stale: st.stale,
        quota,
    })
}

fn gather(ctx: &Context, max_kit_age: u64) -> Result<Status, Failure> {
    let root = ctx.open_view()?;
    let gens = root.generations()?;
    let cur = gens.iter().find(|g| g.current);
    // `current` itself, not only the listing: a generation `current` points at is current
    // even in the instant before its record is listed.
    let current = cur.map(|g| g.id).or(root.current()?);
    let activated_at = cur.and_then(|g| g.last_activated);
    let quarantined = std::fs::read_dir(root.quarantine_dir())
        .ok()
        .map(|d| d.count());
    let created = cur.and_then(|g| g.record.labels.get("createdAt"));
    let kit_age_days = created.and_then(|t| ouk_kit::import::age_days(t));
    let kit_created_at = created.and_then(|t| ouk_kit::provenance::time::parse_rfc3339(t));
    let stale = max_kit_age > 0 && kit_age_days.is_some_and(|d| d > max_kit_age as i64);
    let (verdict, code) = match (current, stale) {
        (None, _) => ("none", ExitCode::NotCurrent),
        (Some(_), true) => ("stale", ExitCode::NotCurrent),
        (Some(_), false) => ("ok", ExitCode::Ok),
    };
    let st = Status {
        root: root.dir().display().to_string(),
        current,
        labels: cur.map(|g| g.record.labels.clone()).unwrap_or_default(),
        files: cur.map_or(0, |g| g.record.files),
        bytes: cur.map_or(0, |g| g.record.bytes),
        activated_at,
        age_seconds: activated_at.map(|t| ouk_root::now_unix() - t),
        generations: gens.len(),
        quarantined,
        stale,
        kit_age_days,
        kit_created_at,
        max_kit_age_days: max_kit_age,
        verdict,
        exit_code: code as u8,
    };
    Ok(st)
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<ExitCode, Failure> {
    let st = gather(ctx, args.max_kit_age)?;
    let activated_at = st.activated_at;
    let quarantine = st
        .quarantined
        .map_or_else(|| "- (not readable by this user)".into(), |n| n.to_string());
    ctx.out.emit(&st.document(), || {
        let Some(id) = st.current else {
            return format!(
                "root {}: no active generation ({quarantine} quarantined)",
                st.root
            );
        };
        let label = |k: &str| st.labels.get(k).cloned().unwrap_or_else(|| "-".into());
        let freshness = match (st.kit_age_days, st.stale) {
            (Some(d), true) => format!(
                "\nSTALE       the active kit was created {d} days ago (window {} days): import a newer kit",
                st.max_kit_age_days
            ),
            (Some(d), false) => format!("\nkit age     {d} days"),
            (None, _) => String::new(),
        };
        format!(
            "root        {}\nactive      {}\nversion     {}\nchannel     {}\ncontent     {} files, {}\nactivated   {} ({} ago)\ngenerations {}\nquarantine  {quarantine}{freshness}",
            st.root,
            id,
            label("version"),
            label("channel"),
            st.files,
            bytes(st.bytes),
            activated_at.map_or_else(|| "-".into(), rfc3339),
            st.age_seconds.map_or_else(|| "-".into(), age),
            st.generations,
        )
    });
    Ok(if st.exit_code == 0 {
        ExitCode::Ok
    } else {
        ExitCode::NotCurrent
    })
}
