//! `ouk delta {make|show}` and `ouk inventory export`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use ouk_kit::delta::ShownFeeds;

use crate::cmd::feeds_history::FeedRows;
use crate::exit::ExitCode;
use crate::output::bytes;
use crate::shared::kit_failure;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// Make the delta that turns one kit into another (or a host's inventory into a kit).
    Make {
        /// The baseline kit bundle.
        #[arg(
            long,
            required_unless_present = "from_inventory",
            conflicts_with = "from_inventory"
        )]
        from: Option<PathBuf>,
        /// A host's inventory (`ouk inventory export`); the baseline kit is found in --kits.
        #[arg(long, requires = "kits")]
        from_inventory: Option<PathBuf>,
        /// Directory of earlier kits (bundles with their .metadata.json) for --from-inventory.
        #[arg(long)]
        kits: Option<PathBuf>,
        /// The target kit bundle.
        #[arg(long)]
        to: PathBuf,
        /// The delta to write, e.g. stella-ouk-2025-10-24.delta.tgz.
        #[arg(long)]
        output: PathBuf,
        /// Signing keys (`--signing-key`, repeatable, alias `--cosign-key`); without one the
        /// delta is unsigned.
        #[command(flatten)]
        signing: crate::cmd::trust::SigningArgs,
        /// Carry this trust chain (`ouk trust chain`) beside the delta.
        #[arg(long, value_name = "FILE")]
        trust_chain: Option<PathBuf>,
        /// Effort budget, in seconds of full-effort encoding on a reference machine: turned
        /// into work units (3 MiB of input a second), never read off a clock, so the same
        /// pair gives the same delta on a loaded and an idle machine.
        #[arg(long, default_value_t = 90)]
        time_budget: u64,
        /// --from and --to name bundles of this root's mirror (a version, file name or
        /// sha256 prefix), which may be on object storage (--store-url).
        #[arg(long, conflicts_with = "from_inventory")]
        mirror: bool,
        /// Leave out the record tier (format ouk-delta/4): the delta then applies on hosts
        /// whose ouk predates it.
        #[arg(long)]
        no_record_tier: bool,
        /// Ship every file instead of letting the host derive the feed index (format
        /// ouk-delta/5): the delta then applies on hosts whose ouk predates derivation.
        #[arg(long)]
        no_derive: bool,
    },
    /// Baseline, target, files added/changed/removed and bytes of a delta, and the feed
    /// rows it adds, modifies and withdraws (as `delta make` recorded them).
    Show {
        /// The delta.
        delta: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write what this host has (generation ids and versions) for a connected site.
    Export {
        /// Where to write the inventory JSON.
        #[arg(long)]
        output: PathBuf,
    },
}

pub fn run(ctx: &Context, cmd: DeltaCommand) -> Result<ExitCode, Failure> {
    match cmd {
        DeltaCommand::Make {
            from,
            from_inventory,
            kits,
            to,
            output,
            signing,
            trust_chain,
            time_budget,
            mirror,
            no_record_tier,
            no_derive,
        } => {
            let keys = signing.load()?;
            let key = keys.first().cloned();
            if key.is_none() {
                eprintln!("ouk: WARNING: no --signing-key: making an UNSIGNED delta");
            }
            let options = ouk_delta::plan::MakeOptions {
                time_budget: Duration::from_secs(time_budget),
                record_tier: !no_record_tier,
                derive: !no_derive,
                ..Default::default()
            };
            let report = match (from, from_inventory, kits) {
                (Some(from), _, _) if mirror => {
                    make_from_mirror(ctx, &from, &to, &output, key.as_ref(), &options)?
                }
                (Some(from), _, _) => {
                    let mut progress = ctx.out.progress("delta make", 0);
                    ouk_kit::delta::make_from_bundles_reporting(
                        &from,
                        &to,
                        &output,
                        key.as_ref(),
                        &options,
                        &mut |s| progress.step(s),
                    )
                }
                (None, Some(inv), Some(kits)) => {
                    let bytes = std::fs::read(&inv).map_err(|e| {
                        Failure::new(ExitCode::Failure, format!("{}: {e}", inv.display()))
                    })?;
                    let inventory: ouk_kit::delta::Inventory = serde_json::from_slice(&bytes)
                        .map_err(|e| {
                            Failure::new(ExitCode::Validation, format!("{}: {e}", inv.display()))
                        })?;
                    ouk_kit::delta::make_from_inventory(
                        &inventory,
                        &kits,
                        &to,
                        &output,
                        key.as_ref(),
                        &options,
                    )
                }
                _ => {
                    return Err(Failure::new(
                        ExitCode::Failure,
                        "give --from, or --from-inventory with --kits",
                    ));
                }
            }
            .map_err(kit_failure)?;
            crate::cmd::trust::finish_signing(
                ctx,
                &report.delta,
                &report.sha256,
                &keys,
                trust_chain.as_deref(),
            )?;
            ctx.out.emit(&report, || {
                format!(
                    "wrote {} ({})\n  baseline {} {}\n  target   {} {}\n  {} files listed ({} patched, {} literal, {} reused), {} removed",
                    report.delta.display(),
                    bytes(report.size),
                    report.baseline.version.as_deref().unwrap_or("?"),
                    report.baseline.generation.short(),
                    report.target.version.as_deref().unwrap_or("?"),
                    report.target.generation.short(),
                    report.summary.files,
                    report.summary.patched,
                    report.summary.literal,
                    report.summary.reused,
                    report.summary.removed
                )
            });
            Ok(ExitCode::Ok)
        }
        DeltaCommand::Show { delta } => {
            let (header, summary, feeds) = ouk_kit::delta::show(&delta).map_err(kit_failure)?;
            let feeds = match feeds {
                ShownFeeds::Rows(f) => FeedRows {
                    recorded: true,
                    note: None,
                    sources: f.counts,
                    rows: f.rows,
                },
                ShownFeeds::Unrecorded(why) => FeedRows::unrecorded(&why),
            };
            let doc = serde_json::json!({
                "baseline": header.baseline,
                "target": header.target,
                "summary": summary,
                "added": header.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                "files": header.tiers(),
                "removed": header.removed,
                "feeds": feeds,
            });
            ctx.out.emit(&doc, || {
                let mut s = format!(
                    "baseline {} ({})\ntarget   {} ({})\n{} files new or changed ({}), {} removed, payload {}\n",
                    header.baseline.version.as_deref().unwrap_or("?"),
                    header.baseline.generation,
                    header.target.version.as_deref().unwrap_or("?"),
                    header.target.generation,
                    summary.files,
                    bytes(summary.listed_bytes),
                    summary.removed,
                    bytes(summary.payload_bytes)
                );
                for t in header.tiers() {
                    let how = match (t.tier, t.format, t.decoded_size) {
                        ("recompressed", Some(format), Some(plain)) => format!(
                            "recompressed {} {} (decoded {}, recipe {})",
                            format.name(),
                            bytes(t.shipped),
                            bytes(plain),
                            bytes(t.recipe_bytes.unwrap_or(0))
                        ),
                        ("patch" | "literal", _, _) => match (t.encoding, &t.encodings[..]) {
                            (_, [_, _, ..]) => format!(
                                "{} {}",
                                t.encodings
                                    .iter()
                                    .map(|s| format!("{:?}:{}", s.encoding, s.pieces))
                                    .collect::<Vec<_>>()
                                    .join("+"),
                                bytes(t.shipped)
                            ),
                            (Some(e), _) => format!("{e:?} {}", bytes(t.shipped)),
                            (None, _) => "empty".to_string(),
                        },
                        (tier, _, _) => tier.to_string(),
                    };
                    s.push_str(&format!("  {:<22} {}\n", how, t.path));
                }
                for r in &header.removed {
                    s.push_str(&format!("  {:<22} {}\n", "removed", r));
                }
                s.push_str(&feeds.text());
                s
            });
            Ok(ExitCode::Ok)
        }
    }
}

/// `delta make --mirror`: export both kits from the root's mirror into a scratch
/// directory under the root (each export verified against its recorded SHA-256), make
/// the delta from them, and remove the scratch directory.
fn make_from_mirror(
    ctx: &Context,
    from: &std::path::Path,
    to: &std::path::Path,
    output: &std::path::Path,
    key: Option<&ouk_kit::sign::SigningKey>,
    options: &ouk_delta::plan::MakeOptions,
) -> Result<Result<ouk_kit::delta::DeltaMakeReport, ouk_kit::KitError>, Failure> {
    let root = ctx.open_root()?;
    let scratch = root
        .staging_dir()
        .join(format!("delta-make-{}", std::process::id()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut result = Ok(Vec::new());
    for (side, what) in [("from", from), ("to", to)] {
        let selector = ouk_kit::mirror::Selector {
            what: what.to_string_lossy().into_owned(),
            channel: None,
            kind: Some("kit".into()),
        };
        match ouk_kit::mirror::export(&root, &selector, &scratch.join(side), threads) {
            Ok(r) => {
                if let Ok(paths) = result.as_mut() {
                    paths.push(r.path);
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let result = match result {
        Ok(paths) => match paths.as_slice() {
            [old, new] => ouk_kit::delta::make_from_bundles(old, new, output, key, options),
            _ => unreachable!("both exports pushed their path"),
        },
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(result)
}

pub fn run_inventory(ctx: &Context, cmd: InventoryCommand) -> Result<ExitCode, Failure> {
    let InventoryCommand::Export { output } = cmd;
    let root = ctx.open_root()?;
    let inv = ouk_kit::delta::inventory(&root).map_err(kit_failure)?;
    let mut bytes_out = serde_json::to_vec_pretty(&inv)
        .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
    bytes_out.push(b'\n');
    ouk_kit::build::write_atomic(&output, &bytes_out).map_err(kit_failure)?;
    ctx.out.emit(&inv, || {
        format!(
            "wrote {} ({} generations, {} bytes)",
            output.display(),
            inv.generations.len(),
            bytes_out.len()
        )
    });
    Ok(ExitCode::Ok)
}
