//! `ouk feeds history UPSTREAM_ID` (registered in [`super::feeds`]), and the feed-row part
//! of `ouk gen diff` and `ouk delta show` (one rendering for both).

use clap::Args;
use ouk_kit::feeds::diff::{ChangeKind, DiffCounts, RowChange};
use ouk_kit::feeds::history;
use serde::Serialize;

use crate::exit::ExitCode;
use crate::{Context, Failure};

/// `ouk feeds history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The upstream id (GHSA-..., CVE-..., ...).
    pub upstream_id: String,
    /// Only this source (osv, ghsa, nvd, ...).
    #[arg(long)]
    pub source: Option<String>,
}

pub fn run(ctx: &Context, args: HistoryArgs) -> Result<ExitCode, Failure> {
    let HistoryArgs {
        upstream_id,
        source,
    } = args;
    let root = ctx.open_root()?;
    let chains = history::chains(root.store().database(), &upstream_id, source.as_deref())
        .map_err(|e| {
            crate::shared::kit_failure(ouk_kit::KitError::from(
                ouk_kit::feeds::host::FeedsError::from(e),
            ))
        })?;
    if chains.is_empty() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!(
                "no feed history for {upstream_id}{}",
                source
                    .as_deref()
                    .map(|s| format!(" in source {s}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let doc = serde_json::json!({"id": upstream_id, "chains": chains});
    ctx.out.emit(&doc, || {
        let mut s = String::new();
        for c in &chains {
            s.push_str(&format!(
                "{} {}{}\n",
                c.source,
                c.id,
                c.tenant
                    .as_deref()
                    .map(|t| format!(" (tenant {t})"))
                    .unwrap_or_default()
            ));
            for e in &c.entries {
                let hash = match (&e.hash, e.hashes.len()) {
                    (_, n) if n > 1 => format!("{} hashes (duplicates)", n),
                    (Some(h), _) => h.to_hex(),
                    (None, _) => "-".into(),
                };
                s.push_str(&format!(
                    "  #{:<4} {} {:<12} {:<9} {}\n",
                    e.seq,
                    e.generation.short(),
                    e.version,
                    e.change.as_str(),
                    hash
                ));
            }
        }
        s
    });
    Ok(ExitCode::Ok)
}

/// The feed rows of a diff, as `gen diff` and `delta show` print them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedRows {
    /// False when there is nothing to report rows from (no index, or a delta that records
    /// none); `note` says why.
    pub recorded: bool,
    /// Why rows are not reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Per source: rows added, modified, withdrawn.
    pub sources: DiffCounts,
    /// Every changed row, in (source, id, tenant) order.
    pub rows: Vec<RowChange>,
}

impl FeedRows {
    /// Nothing to report, because of `note`.
    pub fn unrecorded(note: &str) -> Self {
        FeedRows {
            recorded: false,
            note: Some(note.to_string()),
            sources: DiffCounts::new(),
            rows: Vec::new(),
        }
    }

    /// Human text: per source its counts, then its changed ids.
    pub fn text(&self) -> String {
        if !self.recorded {
            return format!("feed rows: {}\n", self.note.as_deref().unwrap_or("none"));
        }
        if self.sources.is_empty() {
            return "feed rows: no feeds\n".into();
        }
        let mut s = String::new();
        for (source, c) in &self.sources {
            s.push_str(&format!(
                "feed {source}: {} added, {} modified, {} withdrawn\n",
                c.added, c.modified, c.withdrawn
            ));
            for r in self.rows.iter().filter(|r| &r.source == source) {
                let kind = match r.change {
                    ChangeKind::Added => "+",
                    ChangeKind::Modified => "~",
                    ChangeKind::Withdrawn => "-",
                };
                s.push_str(&format!(
                    "  {kind} {}{}\n",
                    r.id,
                    r.tenant
                        .as_deref()
                        .map(|t| format!(" (tenant {t})"))
                        .unwrap_or_default()
                ));
            }
        }
        s
    }
}
