//! `GET /metrics` of `ouk serve`: the Prometheus text exposition format (0.0.4).
//!
//! Two sources: gauges of the root, read for each scrape through the binary's hook from the
//! published state (no lock: a scrape never waits for an import, nor makes one fail), and
//! counters this server keeps since it started (imports through its API by outcome, the
//! last one's result and time, bytes of response bodies sent).
//!
//! Names follow the Prometheus conventions: the `ouk_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters, timestamps as `_timestamp_seconds`, and an
//! `_info` gauge of value 1 carrying the active generation's identity as labels (so a
//! version change is a new series, and the numbers stay label-free).
//!
//! Invariants: label values are escaped as the format requires (backslash, double quote,
//! line feed), so a label from a kit cannot forge a line; every family but the quota's
//! (present once the root has a quota ledger) is announced with `# HELP` and `# TYPE` even
//! when it has no sample (nothing active, or the root unreadable), so dashboards and alerts
//! see the name; the known import outcomes start at 0, so `increase()` sees the first
//! import of each kind.
//!
//! The format is a dozen lines of text rules; writing it here keeps `ouk serve` free of a
//! metrics registry it would use only to print, and `cli/tests/monitoring.rs` checks the
//! output with the Prometheus project's own parser.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The import outcomes every scrape reports (0 until one happens): what `ouk kit import`
/// reports (`activated`, `already-active`, `dry-run`, with `_` for `-`) and `failed`.
pub const OUTCOMES: [&str; 4] = ["activated", "already_active", "dry_run", "failed"];

/// What the binary reports about the root for one scrape.
#[derive(Debug, Clone, Default)]
pub struct RootGauges {
    /// The active generation, if any.
    pub active: Option<ActiveGeneration>,
    /// Recorded generations.
    pub generations: u64,
    /// The active kit is older than the staleness window.
    pub stale: bool,
    /// Today's quota ledger counts, when the root has a ledger.
    pub quota: Option<QuotaGauges>,
}

/// The active generation.
#[derive(Debug, Clone, Default)]
pub struct ActiveGeneration {
    /// Its id (hex).
    pub generation: String,
    /// Its `version` label.
    pub version: String,
    /// Its `channel` label.
    pub channel: String,
    /// When it was last activated (seconds since the epoch), if known.
    pub activated_at: Option<i64>,
    /// When its kit was created (seconds since the epoch), if known.
    pub kit_created_at: Option<i64>,
}

/// Today's (UTC) counts of the quota ledger.
#[derive(Debug, Clone, Default)]
pub struct QuotaGauges {
    /// Scans counted today.
    pub scans: u64,
    /// Subjects with a scan today, anonymous.
    pub anonymous_subjects: u64,
    /// Subjects with a scan today, with a token.
    pub token_subjects: u64,
    /// Subjects past their limit.
    pub throttled_subjects: u64,
    /// Subjects at or past the reminder threshold.
    pub reminded_subjects: u64,
}

/// The counters a server keeps since it started.
#[derive(Debug, Default)]
pub struct ServeCounters {
    served_bytes: AtomicU64,
    imports: Mutex<ImportStats>,
}

#[derive(Debug, Default)]
struct ImportStats {
    by_outcome: BTreeMap<String, u64>,
    /// (time, exit code) of the last import.
    last: Option<(i64, u8)>,
}

impl ServeCounters {
    /// Count `n` bytes of response body sent.
    pub fn add_served(&self, n: u64) {
        self.served_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Count one import through the API: `outcome` as the import reported it (or
    /// `failed`), its exit code, and when it ended.
    pub fn record_import(&self, outcome: &str, code: u8, at: i64) {
        let outcome = outcome.replace('-', "_");
        let mut s = self.imports.lock().unwrap_or_else(|p| p.into_inner());
        *s.by_outcome.entry(outcome).or_default() += 1;
        s.last = Some((at, code));
    }

    /// The exposition text: the root's gauges (or, when they could not be read, only
    /// `ouk_root_readable 0`) and this server's counters, at `now` (seconds since the epoch).
    pub fn render(&self, root: Option<&RootGauges>, now: i64) -> String {
        let mut out = String::new();
        write_root_gauges(&mut out, root, now);
        self.write_import_counters(&mut out);
        self.write_served_bytes(&mut out);
        if let Some(q) = root.and_then(|r| r.quota.as_ref()) {
            write_quota_gauges(&mut out, q);
        }
        out
    }

    /// The API import counters: by outcome (known outcomes from 0), then the last
    /// import's time, success and exit code (families always, samples once one happened).
    fn write_import_counters(&self, out: &mut String) {
        let imports = self.imports.lock().unwrap_or_else(|p| p.into_inner());
        family(
            out,
            "ouk_imports_total",
            "counter",
            "Imports through this server's API since it started, by outcome.",
        );
        let mut by_outcome: BTreeMap<&str, u64> = OUTCOMES.iter().map(|o| (*o, 0)).collect();
        for (k, v) in &imports.by_outcome {
            by_outcome.insert(k, *v);
        }
        for (outcome, n) in by_outcome {
            sample(out, "ouk_imports_total", &[("outcome", outcome)], n);
        }
        family(
            out,
            "ouk_last_import_timestamp_seconds",
            "gauge",
            "When the last import through this server's API ended (Unix time).",
        );
        family(
            out,
            "ouk_last_import_success",
            "gauge",
            "1 when the last import through this server's API succeeded.",
        );
        family(
            out,
            "ouk_last_import_exit_code",
            "gauge",
            "The exit code of the last import through this server's API (as `ouk kit import`).",
        );
        if let Some((at, code)) = imports.last {
            sample(out, "ouk_last_import_timestamp_seconds", &[], at);
            sample(out, "ouk_last_import_success", &[], (code == 0) as u8);
            sample(out, "ouk_last_import_exit_code", &[], code);
        }
        drop(imports);
    }

    /// Bytes of response bodies sent since start.
    fn write_served_bytes(&self, out: &mut String) {
        family(
            out,
            "ouk_served_bytes_total",
            "counter",
            "Bytes of response bodies (files and the index) this server sent since it started.",
        );
        sample(
            out,
            "ouk_served_bytes_total",
            &[],
            self.served_bytes.load(Ordering::Relaxed),
        );
    }
}

/// The root's gauges: readability, the active generation (info, activation time, kit age),
/// staleness and the generation count. Each family is announced even without a sample.
fn write_root_gauges(out: &mut String, root: Option<&RootGauges>, now: i64) {
    family(
        out,
        "ouk_root_readable",
        "gauge",
        "1 when this scrape could read the root's published state.",
    );
    sample(out, "ouk_root_readable", &[], root.is_some() as u8);
    let active = root.and_then(|r| r.active.as_ref());
    family(
        out,
        "ouk_active_generation_info",
        "gauge",
        "The active generation (value 1), its id, version and channel as labels.",
    );
    if let Some(a) = active {
        sample(
            out,
            "ouk_active_generation_info",
            &[
                ("generation", &a.generation),
                ("version", &a.version),
                ("channel", &a.channel),
            ],
            1,
        );
    }
    family(
        out,
        "ouk_active_generation_activated_timestamp_seconds",
        "gauge",
        "When the active generation was last activated (Unix time).",
    );
    if let Some(t) = active.and_then(|a| a.activated_at) {
        sample(
            out,
            "ouk_active_generation_activated_timestamp_seconds",
            &[],
            t,
        );
    }
    family(
        out,
        "ouk_kit_age_seconds",
        "gauge",
        "Seconds since the active kit was created.",
    );
    if let Some(t) = active.and_then(|a| a.kit_created_at) {
        sample(
            out,
            "ouk_kit_age_seconds",
            &[],
            now.saturating_sub(t).max(0),
        );
    }
    family(
        out,
        "ouk_kit_stale",
        "gauge",
        "1 when nothing is active or the active kit is older than the staleness window (what makes `ouk status` exit 9).",
    );
    if let Some(r) = root {
        sample(
            out,
            "ouk_kit_stale",
            &[],
            (r.stale || r.active.is_none()) as u8,
        );
    }
    family(
        out,
        "ouk_generations",
        "gauge",
        "Generations recorded in the root.",
    );
    if let Some(r) = root {
        sample(out, "ouk_generations", &[], r.generations);
    }
}

/// Today's quota ledger counts (only called when the root has a ledger).
fn write_quota_gauges(out: &mut String, q: &QuotaGauges) {
    family(
        out,
        "ouk_quota_scans",
        "gauge",
        "Scans counted in the quota ledger today (UTC; resets at 00:00 UTC).",
    );
    sample(out, "ouk_quota_scans", &[], q.scans);
    family(
        out,
        "ouk_quota_subjects",
        "gauge",
        "Subjects with at least one scan today (UTC), by class.",
    );
    sample(
        out,
        "ouk_quota_subjects",
        &[("class", "anonymous")],
        q.anonymous_subjects,
    );
    sample(
        out,
        "ouk_quota_subjects",
        &[("class", "token")],
        q.token_subjects,
    );
    family(
        out,
        "ouk_quota_throttled_subjects",
        "gauge",
        "Subjects past their daily limit (being throttled) today (UTC).",
    );
    sample(
        out,
        "ouk_quota_throttled_subjects",
        &[],
        q.throttled_subjects,
    );
    family(
        out,
        "ouk_quota_reminded_subjects",
        "gauge",
        "Subjects at or past the reminder threshold today (UTC).",
    );
    sample(out, "ouk_quota_reminded_subjects", &[], q.reminded_subjects);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text escapes backslash and line feed (the format's rule for it).
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the format writes it: `\` `"` and line feed escaped.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_cannot_forge_a_line() {
        let c = ServeCounters::default();
        let root = RootGauges {
            active: Some(ActiveGeneration {
                generation: "ab".into(),
                version: "1\"} 9\nouk_forged 1 \\".into(),
                channel: "edge".into(),
                activated_at: None,
                kit_created_at: None,
            }),
            ..Default::default()
        };
        let text = c.render(Some(&root), 0);
        assert!(!text.lines().any(|l| l.starts_with("ouk_forged")), "{text}");
        assert!(
            text.contains(r#"version="1\"} 9\nouk_forged 1 \\""#),
            "{text}"
        );
    }

    #[test]
    fn every_outcome_starts_at_zero_and_counts() {
        let c = ServeCounters::default();
        c.record_import("already-active", 0, 5);
        let text = c.render(None, 10);
        for o in OUTCOMES {
            let want = if o == "already_active" { 1 } else { 0 };
            assert!(
                text.contains(&format!("ouk_imports_total{{outcome=\"{o}\"}} {want}\n")),
                "{text}"
            );
        }
        assert!(text.contains("ouk_root_readable 0\n"));
        assert!(text.contains("ouk_last_import_exit_code 0\n"));
    }
}
