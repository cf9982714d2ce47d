//! `ouk kit split`: cut a bundle into FAT32-sized parts (the parts are imported with
//! `ouk kit import PART`). Parses the arguments, including sizes like `4GiB`, calls
//! [`ouk_kit::split::split_bundle`], prints the report.

use std::path::PathBuf;

use clap::Args;

use crate::cmd::kit::kit_failure;
use crate::exit::ExitCode;
use crate::output::bytes;
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

/// Parses `4GiB`, `700MiB`, `500MB`, `1000000` (the grammar of `ouk-testdata --size`, plus
/// terabytes). At least 1 byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    match parse_size_or_zero(s)? {
        0 => Err("the size must be at least 1 byte".into()),
        v => Ok(v),
    }
}

/// [`parse_size`], where 0 is a valid answer (a margin, not a part size).
pub fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 4GiB, 700MiB, 1000000)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?} (use KiB, MiB, GiB, ...)"
            ));
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    Ok(v)
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

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("700MiB"), Ok(700 << 20));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2tib"), Ok(2 << 40));
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
    }
}
