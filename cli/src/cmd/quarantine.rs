//! `ouk quarantine {list|show|clean}`: the refused imports kept in `ROOT/quarantine/`.
//!
//! Each refused import is one entry: a `reason.json` and, when the input got past its
//! signature check and fits the cap, the input itself (see
//! `ouk_kit::import::quarantine`). The cap is the global `--quarantine-max-entries` and
//! `--quarantine-max-size` (or `OUK_QUARANTINE_MAX_ENTRIES` / `OUK_QUARANTINE_MAX_SIZE`);
//! `clean` without names applies it now (after lowering it, say).

use clap::Subcommand;
use ouk_kit::import::quarantine::{self, Entry, Limits, QuarantineError};
use serde::Serialize;

use crate::exit::{ExitCode, class_code};
use crate::output::bytes;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Entries, oldest first: when, which step refused, the exit code, what was kept.
    List,
    /// One entry: its whole reason.json and the files kept.
    Show {
        /// The entry's name, as `list` shows it.
        entry: String,
    },
    /// Remove the named entries, or every entry (--all); with neither, drop the oldest
    /// entries until the quarantine is within its cap.
    Clean {
        /// Entries to remove, by name.
        #[arg(conflicts_with = "all")]
        entries: Vec<String>,
        /// Remove every entry.
        #[arg(long)]
        all: bool,
    },
}

fn failure(e: QuarantineError) -> Failure {
    Failure::new(class_code(e.class()), e.to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing<'a> {
    entries: &'a [Entry],
    count: usize,
    bytes: u64,
    limits: Limits,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cleaned<'a> {
    removed: Vec<&'a str>,
    freed_bytes: u64,
    remaining: usize,
    remaining_bytes: u64,
    limits: Limits,
}

/// One line for people: name, step and code, what was kept.
fn line(e: &Entry) -> String {
    let kept = match (&e.not_kept, e.files.len()) {
        (Some(_), _) | (None, 0) => "reason only".to_string(),
        (None, n) => format!("{n} file(s) kept"),
    };
    format!(
        "{}  {} exit {}  {}  {}",
        e.name,
        e.step.as_deref().unwrap_or("?"),
        e.code.map_or_else(|| "?".into(), |c| c.to_string()),
        bytes(e.bytes),
        kept
    )
}

pub fn run(ctx: &Context, cmd: QuarantineCommand) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    let limits = ctx.quarantine;
    match cmd {
        QuarantineCommand::List => {
            let entries = quarantine::list(&root).map_err(failure)?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            let doc = Listing {
                entries: &entries,
                count: entries.len(),
                bytes: total,
                limits,
            };
            ctx.out.emit(&doc, || {
                let mut s = format!(
                    "{} entr(ies), {} (cap: {} entries, {})\n",
                    entries.len(),
                    bytes(total),
                    limits.max_entries,
                    bytes(limits.max_bytes)
                );
                for e in &entries {
                    s.push_str(&format!("  {}\n", line(e)));
                }
                s
            });
        }
        QuarantineCommand::Show { entry } => {
            let e = quarantine::show(&root, &entry).map_err(failure)?;
            let doc = serde_json::json!({
                "entry": &e,
                "reason": &e.reason,
            });
            ctx.out.emit(&doc, || {
                let mut s = format!(
                    "{}\n  at       {}\n  step     {}\n  exit     {}\n  input    {}\n  error    {}\n",
                    e.name,
                    e.at.as_deref().unwrap_or("?"),
                    e.step.as_deref().unwrap_or("?"),
                    e.code.map_or_else(|| "?".into(), |c| c.to_string()),
                    e.bundle.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("(no reason.json)"),
                );
                match &e.not_kept {
                    Some(why) => s.push_str(&format!("  not kept {why}\n")),
                    None => {
                        for f in &e.files {
                            s.push_str(&format!("  kept     {} ({})\n", f.name, bytes(f.size)));
                        }
                    }
                }
                s.push_str(&format!("  path     {}\n", e.path.display()));
                s
            });
        }
        QuarantineCommand::Clean { entries, all } => {
            let removed = if all {
                quarantine::remove_all(&root)
            } else if entries.is_empty() {
                quarantine::enforce(&root, &limits)
            } else {
                quarantine::remove(&root, &entries)
            }
            .map_err(failure)?;
            let left = quarantine::list(&root).map_err(failure)?;
            let doc = Cleaned {
                removed: removed.iter().map(|e| e.name.as_str()).collect(),
                freed_bytes: removed.iter().map(|e| e.bytes).sum(),
                remaining: left.len(),
                remaining_bytes: left.iter().map(|e| e.bytes).sum(),
                limits,
            };
            ctx.out.emit(&doc, || {
                let mut s = format!(
                    "removed {} entr(ies), freed {}; {} left ({})\n",
                    doc.removed.len(),
                    bytes(doc.freed_bytes),
                    doc.remaining,
                    bytes(doc.remaining_bytes)
                );
                for name in &doc.removed {
                    s.push_str(&format!("  removed {name}\n"));
                }
                s
            });
        }
    }
    Ok(ExitCode::Ok)
}
