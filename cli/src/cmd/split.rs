//! `ouk kit split`: cut a bundle into FAT32-sized parts (the parts are imported with
//! `ouk kit import PART`). Parses the arguments, including sizes like `4GiB`, calls
//! [`ouk_kit::split::split_bundle`], prints the report.

use std::path::PathBuf;

use clap::Args;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::shared::kit_failure;
/// The size grammar of `--max-size` (and the global size flags), from [`crate::shared`].
pub use crate::shared::parse_size;
use crate::{Context, Failure};

/// Arguments of `ouk kit split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The bundle (a kit `.tar.gz` or a delta `.delta.tgz`).
    pub bundle: PathBuf,
    /// Largest part: bytes, or with a unit: K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB,
    /// T/TB, TiB. The default, 4 GiB - 1 byte, is the largest file FAT32 holds.
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          default_value_t = ouk_kit::split::DEFAULT_MAX_PART_SIZE)]
    pub max_size: u64,
    /// Where the parts, their index and the bundle's sidecars go.
    #[arg(long)]
    pub output_dir: PathBuf,
}

/// Run `ouk kit split`.
pub fn run(ctx: &Context, args: SplitArgs) -> Result<ExitCode, Failure> {
    let total = std::fs::metadata(&args.bundle).map_or(0, |m| m.len());
    let opts = ouk_kit::split::SplitOptions {
        bundle: args.bundle,
        output_dir: args.output_dir,
        max_part_size: args.max_size,
    };
    let mut progress = ctx.out.progress("split", total);
    let report =
        ouk_kit::split::split_bundle(&opts, &mut |n| progress.inc(n)).map_err(kit_failure)?;
    drop(progress);
    for w in &report.warnings {
        ctx.out.note(&format!("warning: {w}"));
    }
    ctx.out.emit(&report, || {
        let mut s = format!(
            "split {} ({}, sha256 {}) into {} part(s) of at most {}\n",
            report.bundle,
            bytes(report.size),
            report.sha256,
            report.parts.len(),
            bytes(report.max_part_size)
        );
        for p in &report.parts {
            s.push_str(&format!(
                "  {}  {:>12}  {}\n",
                p.sha256,
                p.size,
                p.path.display()
            ));
        }
        s.push_str(&format!("  index {}\n", report.index.display()));
        if report.sidecars.is_empty() {
            s.push_str("  no sidecars found next to the bundle (unsigned, unverifiable)\n");
        } else {
            s.push_str(&format!("  sidecars: {} copied\n", report.sidecars.len()));
        }
        s.push_str(&format!(
            "import with: ouk kit import {}",
            report.parts.first().map_or_else(
                || report.index.display().to_string(),
                |p| p.path.display().to_string()
            )
        ));
        s
    });
    Ok(ExitCode::Ok)
}
