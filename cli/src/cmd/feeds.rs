//! `ouk feeds {audit|history}`: the feed index of a generation or a kit directory, and the
//! supersedes chain of an upstream id (`history`, in [`super::feeds_history`]).
//!
//! One variant per subcommand of [`FeedsCommand`], each with its own args struct and run
//! function, so new subcommands (`feeds history`) slot in beside `audit`. Exit codes:
//! `audit` exits 11 when a conflict exists (after printing it), 0 when none does, 1 when
//! there is no index to audit.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ouk_kit::feeds::{AuditReport, FEED_INDEX_PATH};
use serde::Serialize;

use crate::exit::ExitCode;
use crate::shared::feed_failure;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Find feed rows that collide on (vendor, upstream id, content hash, tenant), and upstream
    /// ids with different content, in one generation (the active one by default) or a kit
    /// directory; prints the first --limit conflicts and exits 11 when any exists.
    Audit(AuditArgs),
    /// The supersedes chain of an upstream id: its content hashes in generation order
    /// (generation id, version, import sequence); exit 1 when the host has none.
    History(super::feeds_history::HistoryArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Generation id or unique prefix (default: the active generation).
    #[arg(long, conflicts_with = "kit_dir")]
    pub generation: Option<String>,
    /// Conflicts to print (all are counted).
    #[arg(long, default_value_t = ouk_kit::feeds::audit::DEFAULT_LIMIT)]
    pub limit: usize,
    /// Audit a directory instead of a generation: its metadata/feeds-index.jsonl if it has
    /// one (a staging directory, an unpacked kit), else its feeds/ indexed now (a release
    /// tree, before `kit build`).
    #[arg(long, value_name = "DIR")]
    pub kit_dir: Option<PathBuf>,
    /// With --kit-dir on a release tree: a field holding the upstream id (repeatable;
    /// default: id, ghsa_id, cve.id), as for `kit build`.
    #[arg(long, value_name = "FIELD", requires = "kit_dir")]
    pub feed_id_field: Vec<String>,
    /// With --kit-dir on a release tree: leave bad rows out instead of failing.
    #[arg(long, requires = "kit_dir")]
    pub skip_bad_rows: bool,
}

pub fn run(ctx: &Context, cmd: FeedsCommand) -> Result<ExitCode, Failure> {
    match cmd {
        FeedsCommand::Audit(args) => run_audit(ctx, args),
        FeedsCommand::History(args) => super::feeds_history::run(ctx, args),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditDoc {
    /// What was audited: `generation <id>`, or the index file.
    audited: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<String>,
    /// Rows left out while indexing a release tree (--kit-dir with --skip-bad-rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_rows: Option<u64>,
    limit: usize,
    #[serde(flatten)]
    report: AuditReport,
}

fn audit_file(path: &Path, limit: usize) -> Result<AuditReport, Failure> {
    ouk_kit::feeds::audit(
        || std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(1 << 20, f)),
        limit,
    )
    .map_err(|e| feed_failure(e.into()))
}

fn run_audit(ctx: &Context, args: AuditArgs) -> Result<ExitCode, Failure> {
    let doc = match &args.kit_dir {
        Some(dir) => audit_dir(dir, &args)?,
        None => {
            let root = ctx.open_root()?;
            let id = match &args.generation {
                Some(prefix) => root.resolve(prefix)?,
                None => root.current()?.ok_or_else(|| {
                    Failure::new(
                        ExitCode::Failure,
                        "no active generation (import a kit, or give --generation or --kit-dir)",
                    )
                })?,
            };
            let path = root.generation_dir(&id).join(FEED_INDEX_PATH);
            if !path.is_file() {
                return Err(Failure::new(
                    ExitCode::Failure,
                    format!(
                        "generation {} has no {FEED_INDEX_PATH} (its kit was built before ouk indexed feeds)",
                        id.short()
                    ),
                ));
            }
            AuditDoc {
                audited: format!("generation {}", id.short()),
                generation: Some(id.to_hex()),
                skipped_rows: None,
                limit: args.limit,
                report: audit_file(&path, args.limit)?,
            }
        }
    };
    let conflicts = doc.report.has_conflicts();
    ctx.out.emit(&doc, || audit_text(&doc));
    Ok(if conflicts {
        ExitCode::Validation
    } else {
        ExitCode::Ok
    })
}

fn audit_dir(dir: &Path, args: &AuditArgs) -> Result<AuditDoc, Failure> {
    if !dir.is_dir() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", dir.display()),
        ));
    }
    let index = dir.join(FEED_INDEX_PATH);
    if index.is_file() {
        return Ok(AuditDoc {
            audited: index.display().to_string(),
            generation: None,
            skipped_rows: None,
            limit: args.limit,
            report: audit_file(&index, args.limit)?,
        });
    }
    // A release tree: index its feeds now, into a temporary file.
    let listed = ouk_delta::tree::list_tree(dir)?;
    let feeds = ouk_kit::feeds::indexer::select_feeds(
        listed.iter().map(|(rel, p, _)| (rel.as_str(), p.as_path())),
    );
    let opts = ouk_kit::feeds::IndexOptions {
        id_fields: if args.feed_id_field.is_empty() {
            ouk_kit::feeds::IndexOptions::default().id_fields
        } else {
            args.feed_id_field.clone()
        },
        skip_bad_rows: args.skip_bad_rows,
        ..Default::default()
    };
    let (indexed, report) =
        ouk_kit::feeds::index_and_audit(&feeds, &opts, args.limit).map_err(feed_failure)?;
    for b in &indexed.skipped_rows {
        eprintln!("ouk: skipped {b}");
    }
    Ok(AuditDoc {
        audited: format!("{} ({} feeds indexed now)", dir.display(), feeds.len()),
        generation: None,
        skipped_rows: Some(indexed.skipped_total),
        limit: args.limit,
        report,
    })
}

fn audit_text(doc: &AuditDoc) -> String {
    let r = &doc.report;
    let mut s = format!(
        "{}: {} feeds, {} rows: {} conflicts ({} duplicate, {} divergent)",
        doc.audited, r.feeds, r.rows, r.conflicts, r.duplicates, r.divergent
    );
    for c in &r.first {
        s.push_str(&format!("\n  {c}"));
    }
    if r.conflicts > r.first.len() as u64 {
        s.push_str(&format!(
            "\n  ... and {} more (--limit {})",
            r.conflicts - r.first.len() as u64,
            doc.limit
        ));
    }
    s
}

/// What `kit build` adds to its human output about feeds: rows and skipped rows per feed,
/// the rows `--skip-bad-rows` left out, and conflicts let through.
pub fn build_text(report: &ouk_kit::build::BuildReport) -> String {
    let mut s = String::new();
    for f in &report.feeds {
        s.push_str(&format!(
            "\n  feed {}: {} rows, {} skipped",
            f.feed, f.rows, f.skipped
        ));
    }
    if report.skipped_total > 0 {
        s.push_str(&format!(
            "\n  skipped {} bad feed rows (--skip-bad-rows):",
            report.skipped_total
        ));
        for b in &report.skipped_rows {
            s.push_str(&format!("\n    {b}"));
        }
        let listed = report.skipped_rows.len() as u64;
        if report.skipped_total > listed {
            s.push_str(&format!(
                "\n    ... and {} more",
                report.skipped_total - listed
            ));
        }
    }
    if report.feed_audit.has_conflicts() {
        s.push_str(&format!(
            "\n  feed conflicts: {} (built with --allow-feed-conflicts)",
            report.feed_audit.conflicts
        ));
    }
    s
}
