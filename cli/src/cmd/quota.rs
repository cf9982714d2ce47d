//! `ouk quota {consume|status}`: the scanner's offline fair-use ledger (the logic is
//! `ouk_kit::ops::quota`).
//!
//! `consume` always exits 0 once the scan is counted: over the limit it throttles, it never
//! refuses. By default it sleeps the delay itself before answering, so a caller that only
//! waits for the command is throttled; with `--no-wait` it answers at once and reports
//! `delaySeconds` for the caller to sleep.
//!
//! The clock is the system's, unless `OUK_QUOTA_NOW` (RFC 3339, a test hook, hidden from
//! `--help`) sets it. Neither command takes `ROOT/lock`: scans are counted while an
//! import runs.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use ouk_kit::ops::quota::{self, Ledger, QuotaError, QuotaLimits, SubjectReport};
use serde::Serialize;

use crate::exit::ExitCode;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Count one scan of a subject; say whether to go ahead, with a reminder, or after a
    /// throttling delay (never a refusal: exit 0).
    Consume(ConsumeArgs),
    /// Today's scans of a subject (and what its next scan would get), or of every subject.
    Status(StatusArgs),
}

/// The daily limits (flags, or the environment of the scanner's service).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Scans per UTC day without a valid token.
    #[arg(long, env = "OUK_QUOTA_ANONYMOUS_LIMIT", default_value_t = 33)]
    anonymous_limit: u64,
    /// Scans per UTC day with a verified token.
    #[arg(long, env = "OUK_QUOTA_TOKEN_LIMIT", default_value_t = 333)]
    token_limit: u64,
    /// Scans in a day from which answers carry a soft reminder.
    #[arg(long, env = "OUK_QUOTA_REMINDER_AT", default_value_t = 200)]
    reminder_at: u64,
}

impl LimitArgs {
    fn limits(&self) -> QuotaLimits {
        QuotaLimits {
            anonymous_per_day: self.anonymous_limit,
            token_per_day: self.token_limit,
            reminder_at: self.reminder_at,
            ..QuotaLimits::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// `anon:<ip>`, `anon:unknown` or `token:<jwt>`; `-` reads it from stdin (keeps a
    /// token out of the process list).
    #[arg(long)]
    subject: String,
    /// The caller's IP: a token that does not verify counts against `anon:<ip>` (else
    /// `anon:unknown`). Ignored for `anon:` subjects.
    #[arg(long)]
    ip: Option<String>,
    /// Do not sleep the throttling delay; report it (`delaySeconds`) for the caller to
    /// sleep.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One subject (as for `consume`; `-` reads it from stdin); without it, every
    /// subject's total for today.
    #[arg(long)]
    subject: Option<String>,
    /// As for `consume`.
    #[arg(long)]
    ip: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What `consume` prints as JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeOutput {
    #[serde(flatten)]
    report: SubjectReport,
    /// Whether this process slept the delay (false with `--no-wait` or no delay).
    waited: bool,
}

fn quota_failure(e: QuotaError) -> Failure {
    Failure::new(crate::exit::class_code(e.class()), e.to_string())
}

/// Now, in Unix seconds: `OUK_QUOTA_NOW` when set (tests), else the system clock.
fn now() -> Result<i64, Failure> {
    match std::env::var("OUK_QUOTA_NOW") {
        Ok(text) => ouk_kit::provenance::time::parse_rfc3339(&text).ok_or_else(|| {
            Failure::new(
                ExitCode::Failure,
                format!("OUK_QUOTA_NOW={text:?} is not an RFC 3339 time"),
            )
        }),
        Err(_) => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)),
    }
}

/// Today's totals for `serve`'s `/metrics`, judged against the limits of the scanner's
/// environment (`OUK_QUOTA_*`, as `quota status` reads them), or `None` when the root has
/// no ledger: a scrape must not create one.
pub fn summary_for_metrics(root: &Path) -> Result<Option<quota::LedgerSummary>, Failure> {
    if std::fs::symlink_metadata(quota::ledger_path(root)).is_err() {
        return Ok(None);
    }
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let d = QuotaLimits::default();
    let limits = QuotaLimits {
        anonymous_per_day: env("OUK_QUOTA_ANONYMOUS_LIMIT", d.anonymous_per_day),
        token_per_day: env("OUK_QUOTA_TOKEN_LIMIT", d.token_per_day),
        reminder_at: env("OUK_QUOTA_REMINDER_AT", d.reminder_at),
        ..d
    };
    let ledger = Ledger::open(root).map_err(quota_failure)?;
    let summary = ledger.summary(now()?, &limits).map_err(quota_failure)?;
    Ok(Some(summary))
}

fn subject_text(arg: &str) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(ouk_kit::ops::quota::MAX_TOKEN_LEN as u64 + 64)
        .read_to_string(&mut text)
        .map_err(|e| {
            Failure::new(
                ExitCode::Failure,
                format!("read the subject from stdin: {e}"),
            )
        })?;
    Ok(text.trim_ascii().to_owned())
}

fn resolve(
    ctx: &Context,
    subject: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<quota::ResolvedSubject, Failure> {
    let arg = quota::parse_subject(&subject_text(subject)?).map_err(quota_failure)?;
    let ip = ip.map(quota::parse_ip).transpose().map_err(quota_failure)?;
    let keys = match &arg {
        quota::SubjectArg::Token(_) => ouk_kit::import::trust::list(&ctx.root)
            .map(|keys| keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
        quota::SubjectArg::Anonymous(_) => Ok(Vec::new()),
    };
    Ok(quota::resolve(
        &arg,
        ip,
        keys.as_ref().map(Vec::as_slice).map_err(Clone::clone),
        now,
    ))
}

fn human(r: &SubjectReport) -> String {
    let mut s = r.assessment.message.clone();
    if let Some(why) = &r.fallback_reason {
        s.push_str(&format!("\n  {why}"));
    }
    s
}

pub fn run(ctx: &Context, cmd: QuotaCommand) -> Result<ExitCode, Failure> {
    let now = now()?;
    match cmd {
        QuotaCommand::Consume(a) => {
            let subject = resolve(ctx, &a.subject, a.ip.as_deref(), now)?;
            let report = {
                // The ledger (and its lock) is released before any sleep.
                let ledger = Ledger::open(&ctx.root).map_err(quota_failure)?;
                ledger
                    .consume(&subject, now, &a.limits.limits())
                    .map_err(quota_failure)?
            };
            let delay = report.assessment.delay_seconds;
            let waited = delay > 0 && !a.no_wait;
            if waited {
                ctx.out
                    .note(&format!("throttled: waiting {delay} s before the scan"));
                std::thread::sleep(Duration::from_secs(delay));
            }
            let out = ConsumeOutput { report, waited };
            ctx.out.emit(&out, || human(&out.report));
        }
        QuotaCommand::Status(a) => {
            let limits = a.limits.limits();
            match &a.subject {
                Some(subject) => {
                    let subject = resolve(ctx, subject, a.ip.as_deref(), now)?;
                    let ledger = Ledger::open(&ctx.root).map_err(quota_failure)?;
                    let r = ledger
                        .status(&subject, now, &limits)
                        .map_err(quota_failure)?;
                    ctx.out.emit(&r, || human(&r));
                }
                None => {
                    let ledger = Ledger::open(&ctx.root).map_err(quota_failure)?;
                    let s = ledger.summary(now, &limits).map_err(quota_failure)?;
                    ctx.out.emit(&s, || {
                        format!(
                            "day             {} (counters reset at {})\nsubjects        {} ({} anonymous, {} token)\nscans           {}\nthrottled       {} subject(s) past their limit\nreminded        {} subject(s) at {}+ scans\nlimits          anonymous {}, token {} per UTC day",
                            s.day,
                            s.resets_at,
                            s.subjects,
                            s.anonymous_subjects,
                            s.token_subjects,
                            s.scans,
                            s.throttled_subjects,
                            s.reminded_subjects,
                            s.limits.reminder_at,
                            s.limits.anonymous_per_day,
                            s.limits.token_per_day
                        )
                    });
                }
            }
        }
    }
    Ok(ExitCode::Ok)
}
