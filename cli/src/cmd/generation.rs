//! `ouk gen {list|rollback|gc}`.

use clap::Subcommand;
use ouk_delta::ActivateOutcome;

use crate::exit::ExitCode;
use crate::output::{bytes, rfc3339};
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Recorded generations, most recently activated first.
    List,
    /// Make the previous generation (or GEN, an id or unique prefix) current again.
    Rollback {
        /// Generation id or prefix (at least 4 hex digits).
        generation: Option<String>,
    },
    /// Keep the N most recently activated generations, drop the rest and their data.
    Gc {
        /// How many generations to keep (the current one always stays).
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
}

pub fn run(ctx: &Context, cmd: GenCommand) -> Result<ExitCode, Failure> {
    let root = ctx.open_root()?;
    match cmd {
        GenCommand::List => {
            let gens = root.generations()?;
            ctx.out.emit(&gens, || {
                if gens.is_empty() {
                    return "no generations".into();
                }
                let mut s = String::new();
                for g in &gens {
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
        GenCommand::Rollback { generation } => {
            let (id, outcome) = root.rollback(generation.as_deref())?;
            let status = match &outcome {
                ActivateOutcome::AlreadyCurrent => "already current",
                ActivateOutcome::Activated { .. } => "activated",
            };
            let doc = serde_json::json!({"generation": id, "status": status, "outcome": outcome});
            ctx.out
                .emit(&doc, || format!("generation {} {status}", id.short()));
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
