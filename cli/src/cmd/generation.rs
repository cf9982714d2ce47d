//! `ouk gen {list|rollback|gc|diff}`.

use clap::Subcommand;
use ouk_root::ActivateOutcome;

use crate::cmd::feeds_history::FeedRows;
use crate::exit::ExitCode;
use crate::output::{bytes, rfc3339};
use crate::shared::kit_failure;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Recorded generations, most recently activated first.
    List,
    /// Make the previous generation (or GEN: a kit version, an id or a unique prefix)
    /// current again.
    Rollback {
        /// Kit version (as `gen list` shows it), or generation id or prefix (at least 4 hex
        /// digits).
        generation: Option<String>,
    },
    /// Keep the N most recently activated generations, drop the rest and their data.
    Gc {
        /// How many generations to keep (the current one always stays).
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
    /// Files and feed rows that differ from GEN_A to GEN_B (kit versions, ids or unique
    /// prefixes).
    Diff {
        /// The older generation.
        gen_a: String,
        /// The newer generation.
        gen_b: String,
    },
}

pub fn run(ctx: &Context, cmd: GenCommand) -> Result<ExitCode, Failure> {
    if let GenCommand::List = cmd {
        // Read-only: no lock, nothing written (it answers during an import, for a user
        // that cannot write the root).
        let gens = ctx.open_view()?.generations()?;
        list(ctx, &gens);
        return Ok(ExitCode::Ok);
    }
    let root = ctx.open_root()?;
    match cmd {
        // Answered above, without the lock.
        GenCommand::List => {}
        GenCommand::Rollback { generation } => {
            let (id, outcome) = root.rollback(generation.as_deref())?;
            // Stable strings, the import's words (not the Rust enum's shape).
            let (status, word, previous) = match &outcome {
                ActivateOutcome::AlreadyCurrent => ("already current", "already-active", None),
                ActivateOutcome::Activated { previous } => ("activated", "activated", *previous),
            };
            let doc = serde_json::json!({
                "generation": id,
                "version": root.generation_record(&id)?.and_then(|r| r.labels.get("version").cloned()),
                "outcome": word,
                "previous": previous,
            });
            ctx.out
                .emit(&doc, || format!("generation {} {status}", id.short()));
        }
        GenCommand::Diff { gen_a, gen_b } => {
            let a = root.resolve(&gen_a)?;
            let b = root.resolve(&gen_b)?;
            let files = ouk_kit::import::diff(Some(&root.manifest(&a)?), &root.manifest(&b)?);
            let mut rows = Vec::new();
            let (sources, has_a, has_b) =
                ouk_kit::feeds::host::diff_generations(&root, &a, &b, &mut |c| rows.push(c))
                    .map_err(|e| kit_failure(ouk_kit::KitError::from(e)))?;
            let feeds = if !has_a && !has_b {
                FeedRows::unrecorded("neither generation has a feed index")
            } else {
                FeedRows {
                    recorded: true,
                    note: (!has_a || !has_b).then(|| {
                        format!(
                            "{} has no feed index (counted as empty)",
                            if has_a { b.short() } else { a.short() }
                        )
                    }),
                    sources,
                    rows,
                }
            };
            let doc = serde_json::json!({"from": a, "to": b, "files": files, "feeds": feeds});
            ctx.out.emit(&doc, || {
                let mut s = format!(
                    "{} -> {}: {} files added, {} changed, {} removed ({})\n",
                    a.short(),
                    b.short(),
                    files.added.len(),
                    files.changed.len(),
                    files.removed.len(),
                    bytes(files.bytes)
                );
                for (mark, list) in [
                    ("+", &files.added),
                    ("~", &files.changed),
                    ("-", &files.removed),
                ] {
                    for p in list {
                        s.push_str(&format!("  {mark} {p}\n"));
                    }
                }
                if let Some(n) = &feeds.note {
                    s.push_str(&format!("note: {n}\n"));
                }
                s.push_str(&feeds.text());
                s
            });
        }
        GenCommand::Gc { keep } => {
            let r = root.gc_generations(keep)?;
            ctx.out.emit(&r, || {
                format!(
                    "kept {} generation(s), removed {}; store: removed {} chunks, packs {} -> {}",
                    r.kept.len(),
                    r.removed.len(),
                    r.store.chunks_removed,
                    bytes(r.store.bytes_before),
                    bytes(r.store.bytes_after)
                )
            });
        }
    }
    Ok(ExitCode::Ok)
}

/// One generation in `gen list --json` (named as every JSON document of ouk is:
/// docs/operations.md, "JSON output").
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationEntry<'a> {
    generation: ouk_delta::GenerationId,
    current: bool,
    materialized: bool,
    files: u64,
    bytes: u64,
    /// When this root first recorded it.
    recorded_at: String,
    last_activated_at: Option<String>,
    labels: &'a ouk_root::Labels,
}

/// Print the generation list (`gen list`).
fn list(ctx: &Context, gens: &[ouk_root::GenerationSummary]) {
    let doc: Vec<GenerationEntry<'_>> = gens
        .iter()
        .map(|g| GenerationEntry {
            generation: g.id,
            current: g.current,
            materialized: g.materialized,
            files: g.record.files,
            bytes: g.record.bytes,
            recorded_at: rfc3339(g.record.created_at),
            last_activated_at: g.last_activated.map(rfc3339),
            labels: &g.record.labels,
        })
        .collect();
    ctx.out.emit(&doc, || {
        if gens.is_empty() {
            return "no generations".into();
        }
        let mut s = String::new();
        for g in gens {
            let label = |k: &str| {
                g.record
                    .labels
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| "-".into())
            };
            s.push_str(&format!(
                "{} {} {:<12} {:<8} {:>6} files {:>10}  {}\n",
                if g.current { "*" } else { " " },
                g.id.short(),
                label("version"),
                label("channel"),
                g.record.files,
                bytes(g.record.bytes),
                g.last_activated.map_or_else(
                    || "never activated".into(),
                    |t| format!("activated {}", rfc3339(t))
                )
            ));
        }
        s
    });
}
