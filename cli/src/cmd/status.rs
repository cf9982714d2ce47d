//! `ouk status`: what is active, since when, and whether anything waits in quarantine.

use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::{age, bytes, rfc3339};
use crate::{Context, Failure};

#[derive(Serialize)]
struct Status {
    root: String,
    current: Option<ouk_delta::GenerationId>,
    labels: ouk_delta::Labels,
    files: u64,
    bytes: u64,
    activated_at: Option<i64>,
    age_seconds: Option<i64>,
    generations: usize,
    quarantined: usize,
    /// The active kit is older than the staleness window (no update for too long).
    stale: bool,
    /// Days since the active kit was created.
    kit_age_days: Option<i64>,
}

/// The status document (`ouk status --json`), also what `GET /api/offline-kit/status`
/// answers.
pub fn status_json(ctx: &Context) -> Result<serde_json::Value, Failure> {
    let st = gather(ctx)?;
    serde_json::to_value(&st).map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))
}

fn gather(ctx: &Context) -> Result<Status, Failure> {
    let root = ctx.open_root()?;
    let current = root.current()?;
    let gens = root.generations()?;
    let cur = gens.iter().find(|g| g.current);
    let activated_at = cur.and_then(|g| g.last_activated);
    let quarantined = std::fs::read_dir(root.quarantine_dir()).map_or(0, |d| d.count());
    let kit_age_days = cur
        .and_then(|g| g.record.labels.get("createdAt"))
        .and_then(|t| ouk_kit::import::age_days(t));
    let stale = kit_age_days.is_some_and(|d| d > ouk_kit::import::DEFAULT_MAX_AGE_DAYS as i64);
    let st = Status {
        root: root.dir().display().to_string(),
        current,
        labels: cur.map(|g| g.record.labels.clone()).unwrap_or_default(),
        files: cur.map_or(0, |g| g.record.files),
        bytes: cur.map_or(0, |g| g.record.bytes),
        activated_at,
        age_seconds: activated_at.map(|t| ouk_delta::now_unix() - t),
        generations: gens.len(),
        quarantined,
        stale,
        kit_age_days,
    };
    Ok(st)
}

pub fn run(ctx: &Context) -> Result<ExitCode, Failure> {
    let st = gather(ctx)?;
    let activated_at = st.activated_at;
    ctx.out.emit(&st, || {
        let Some(id) = st.current else {
            return format!("root {}: no active generation ({} quarantined)", st.root, st.quarantined);
        };
        let label = |k: &str| st.labels.get(k).cloned().unwrap_or_else(|| "-".into());
        let freshness = match (st.kit_age_days, st.stale) {
            (Some(d), true) => format!("\nSTALE       the active kit was created {d} days ago (window {} days): import a newer kit", ouk_kit::import::DEFAULT_MAX_AGE_DAYS),
            (Some(d), false) => format!("\nkit age     {d} days"),
            (None, _) => String::new(),
        };
        format!(
            "root        {}\nactive      {}\nversion     {}\nchannel     {}\ncontent     {} files, {}\nactivated   {} ({} ago)\ngenerations {}\nquarantine  {}{freshness}",
            st.root,
            id,
            label("version"),
            label("channel"),
            st.files,
            bytes(st.bytes),
            activated_at.map_or_else(|| "-".into(), rfc3339),
            st.age_seconds.map_or_else(|| "-".into(), age),
            st.generations,
            st.quarantined
        )
    });
    Ok(ExitCode::Ok)
}
