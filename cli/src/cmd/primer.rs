//! `ouk primer extract`: lay the advisory AI volume primer onto the RWX volume.

use std::path::PathBuf;

use clap::Subcommand;
use ouk_kit::ops::primer::{self, DirAction, PrimerError};

use crate::exit::ExitCode;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum PrimerCommand {
    /// Create queue/, plans/ and outputs/ on the volume with the primer's owner and mode
    /// (owner only as root); running it again changes nothing.
    Extract {
        /// The volume's mount point (an existing directory).
        #[arg(long)]
        volume: PathBuf,
        /// A kit bundle or a volume-primer.tar.gz (default: the primer in ROOT/current).
        #[arg(long = "from", value_name = "KIT_OR_PRIMER")]
        from: Option<PathBuf>,
    },
}

pub fn primer_failure(e: PrimerError) -> Failure {
    Failure::new(crate::exit::class_code(e.class()), e.to_string())
}

/// Parses an octal mode such as `0770` or `770`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8).map_err(|_| format!("{text:?} is not an octal mode"))
}

pub fn run(ctx: &Context, cmd: PrimerCommand) -> Result<ExitCode, Failure> {
    match cmd {
        PrimerCommand::Extract { volume, from } => {
            let from = from.unwrap_or_else(|| ctx.root.join("current").join(primer::PRIMER_PATH));
            let (source, dirs) = primer::load_primer(&from).map_err(primer_failure)?;
            let report = primer::extract_primer(&dirs, &volume, primer::running_as_root())
                .map_err(primer_failure)?;
            let doc = serde_json::json!({
                "from": from,
                "source": source,
                "report": report,
            });
            ctx.out.emit(&doc, || {
                let mut s = String::new();
                for d in &report.directories {
                    let what = match d.action {
                        DirAction::Created => "created",
                        DirAction::Corrected => "corrected",
                        DirAction::Unchanged => "unchanged",
                    };
                    s.push_str(&format!(
                        "{what:9} {} (uid {} gid {} mode {})\n",
                        d.path.display(),
                        d.uid,
                        d.gid,
                        d.mode
                    ));
                }
                if !report.changed {
                    s.push_str("nothing to do: the volume is already primed\n");
                }
                if let Some(note) = &report.ownership_note {
                    s.push_str(&format!("note: {note}\n"));
                }
                s
            });
            Ok(ExitCode::Ok)
        }
    }
}
