//! The offline quota ledger: the scanner's fair-use limits, enforced on an air-gapped host.
//!
//! The scanner calls `ouk quota consume --subject anon:<ip>|token:<jwt>` once per scan. A
//! scan is counted against its subject ([`subject`]) for the current UTC day, and the
//! answer says what the caller must do; it is never a refusal:
//!
//! - under the limit (anonymous 33, token 333 per UTC day by default, [`QuotaLimits`]):
//!   go ahead;
//! - from the 200th scan of the day on: go ahead, with a soft reminder;
//! - over the limit: throttle, 5 s for each of the first 30 scans over the limit in the
//!   day, 60 s for every later one. The message says "limit reached; counters reset at
//!   00:00 UTC".
//!
//! Where the counts live, and why there: `ROOT/quota.redb`, a redb database of its own,
//! next to (not inside) the store's `index.redb`. Both are redb, but a scan must be
//! counted while `ouk kit import` holds `ROOT/lock` and the store index for minutes, and
//! redb lets one process at a time open a database: a table in `index.redb` would make
//! every scan wait for (or fail during) an import. A file of its own is also why an import,
//! a `gen rollback` or a store gc can never reset a counter: none of them opens it.
//!
//! Invariants:
//! - Counters reset at 00:00 UTC only: a count is keyed by (UTC day number, subject hash),
//!   so a new day starts at zero and nothing else ever lowers a count. Days older than
//!   [`RETAINED_DAYS`] are pruned once per day.
//! - No lost counts: every consume is one redb write transaction (durable at commit) taken
//!   under the flock of `ROOT/quota.lock`, so concurrent `ouk quota consume` processes
//!   serialise, and each sees the count the previous one committed.
//! - Subjects are stored only as keyed hashes (HMAC-SHA256 under the per-root random salt
//!   `ROOT/quota.salt`, mode 0600); an IP or a token never reaches the ledger file.
//! - Nothing here reads the clock: every call takes `now` (Unix seconds), so tests cross
//!   midnight without waiting, and nothing here sleeps: the delay is returned, and the
//!   binary waits it out (or reports it, `--no-wait`).

mod error;
mod ledger;
pub mod subject;
pub mod token;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use error::QuotaError;
pub use ledger::{Ledger, LedgerSummary, RETAINED_DAYS, ledger_path, lock_path, salt_path};
pub use subject::{
    ResolvedSubject, SubjectArg, SubjectClass, parse_ip, parse_subject, resolve, subject_hash,
};
pub use token::{MAX_TOKEN_LEN, TokenError, VerifiedToken, sign_token, verify_token};

/// Seconds in a UTC day (UTC days have no leap seconds in Unix time).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// The message part every over-limit answer contains (the seed's troubleshooting text).
pub const LIMIT_REACHED: &str = "limit reached; counters reset at 00:00 UTC";

/// Limits and throttling, per subject and UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaLimits {
    /// Scans per UTC day for a subject without a valid token.
    pub anonymous_per_day: u64,
    /// Scans per UTC day for a verified token.
    pub token_per_day: u64,
    /// From this many scans in a day on, answers carry a soft reminder.
    pub reminder_at: u64,
    /// How many over-limit scans in a day get the short delay.
    pub short_delay_scans: u64,
    /// Delay of the first `short_delay_scans` over-limit scans, seconds.
    pub short_delay_seconds: u64,
    /// Delay of every later over-limit scan, seconds.
    pub long_delay_seconds: u64,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            anonymous_per_day: 33,
            token_per_day: 333,
            reminder_at: 200,
            short_delay_scans: 30,
            short_delay_seconds: 5,
            long_delay_seconds: 60,
        }
    }
}

impl QuotaLimits {
    /// The daily limit of `class`.
    pub fn limit(&self, class: SubjectClass) -> u64 {
        match class {
            SubjectClass::Anonymous => self.anonymous_per_day,
            SubjectClass::Token => self.token_per_day,
        }
    }

    /// What the `scans`-th scan of the day (1-based) of a `class` subject gets.
    pub fn assess(&self, class: SubjectClass, scans: u64) -> Assessment {
        let limit = self.limit(class);
        let over_limit_scans = scans.saturating_sub(limit);
        let delay_seconds = match over_limit_scans {
            0 => 0,
            n if n <= self.short_delay_scans => self.short_delay_seconds,
            _ => self.long_delay_seconds,
        };
        let reminder = scans >= self.reminder_at;
        let mut message = if over_limit_scans > 0 {
            let mut m = format!(
                "{} {LIMIT_REACHED}; scan {scans} of {limit} allowed today is throttled by {delay_seconds} s",
                class.name()
            );
            if class == SubjectClass::Anonymous {
                m.push_str(&format!(
                    "; wait until the next UTC day or load a JWT ({} scans per day)",
                    self.token_per_day
                ));
            }
            m
        } else {
            format!("scan {scans} of {limit} allowed today ({})", class.name())
        };
        if reminder {
            message.push_str(&format!(
                "; reminder: {scans} scans today (a reminder starts at {})",
                self.reminder_at
            ));
        }
        Assessment {
            limit,
            remaining: limit.saturating_sub(scans),
            over_limit: over_limit_scans > 0,
            over_limit_scans,
            reminder,
            delay_seconds,
            message,
        }
    }
}

/// The verdict on one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// The daily limit that applies.
    pub limit: u64,
    /// Scans left today before throttling.
    pub remaining: u64,
    /// Past the limit (throttled, never refused).
    pub over_limit: bool,
    /// How far past the limit, counting this scan.
    pub over_limit_scans: u64,
    /// At or past the reminder threshold.
    pub reminder: bool,
    /// How long the caller must wait before scanning, seconds (0: no throttle).
    pub delay_seconds: u64,
    /// For people.
    pub message: String,
}

/// What `consume` (or `status` of one subject) reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectReport {
    /// Which limit applied.
    pub class: SubjectClass,
    /// The ledger key (hex of the keyed hash): lets an operator correlate answers without
    /// seeing the subject.
    pub subject_id: String,
    /// Thumbprint of the key that verified the token.
    pub kid: Option<String>,
    /// Why a token was counted as anonymous.
    pub fallback_reason: Option<String>,
    /// The UTC day counted in, `YYYY-MM-DD`.
    pub day: String,
    /// When this day's counters reset, RFC 3339.
    pub resets_at: String,
    /// Scans counted today (including this one for `consume`).
    pub scans_today: u64,
    /// The verdict (for `status`: on the next scan).
    #[serde(flatten)]
    pub assessment: Assessment,
}

/// The UTC day number (days since 1970-01-01) of `now`.
pub fn utc_day(now: i64) -> i64 {
    now.div_euclid(SECONDS_PER_DAY)
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn day_label(day: i64) -> String {
    crate::provenance::time::format_utc(day.saturating_mul(SECONDS_PER_DAY))
        .and_then(|t| t.get(..10).map(str::to_owned))
        .unwrap_or_else(|| format!("day {day}"))
}

/// RFC 3339 of the next 00:00 UTC after `now`.
pub fn resets_at(now: i64) -> String {
    let next = utc_day(now)
        .saturating_add(1)
        .saturating_mul(SECONDS_PER_DAY);
    crate::provenance::time::format_utc(next).unwrap_or_else(|| next.to_string())
}
