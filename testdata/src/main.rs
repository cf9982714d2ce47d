//! `ouk-testdata`: command-line front end of the synthetic release-tree generator.
//!
//! ```text
//! ouk-testdata tree --seed N --day D [--size small|64MiB|1GiB|<bytes>] [--compressed] OUT_DIR
//! ouk-testdata feed --seed N --bytes <size> OUT_FILE
//! ouk-testdata churn --seed N --day D [--row-p P] TREE_DIR
//! ```
//!
//! Arguments are parsed by clap (as `ouk`'s are): `--help` on every command, usage errors
//! exit 2 with the usage, a failed generation exits 1.

use clap::{Parser, Subcommand};
use ouk_testdata::{TreeSpec, generate, write_feed_like};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Generate synthetic release trees (and their next-day churn) and OSV-like feeds.
///
/// Sizes are plain bytes or with a suffix: K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB.
#[derive(Debug, Parser)]
#[command(name = "ouk-testdata", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the synthetic release tree of day D (OUT_DIR must be missing or empty).
    Tree {
        /// Seed of the tree: the same seed and day give the same bytes.
        #[arg(long)]
        seed: u64,
        /// Day of the tree; each day is the previous one with a daily churn.
        #[arg(long)]
        day: u32,
        /// `small` (a few MiB, for tests) or a total size such as 64MiB or 1GiB.
        #[arg(long, default_value = "small", value_parser = parse_tree_size)]
        size: TreeSize,
        /// Gzip image layers, NVD yearly .json.gz, OSV all.zip, GHSA .jsonl.zst and a wheel
        /// plug-in, with the same daily churn inside.
        #[arg(long)]
        compressed: bool,
        /// Where to write the tree.
        out_dir: PathBuf,
    },
    /// Write about SIZE bytes of OSV-like JSON lines.
    Feed {
        /// Seed of the feed.
        #[arg(long)]
        seed: u64,
        /// How many bytes to write (about).
        #[arg(long, value_parser = parse_size)]
        bytes: u64,
        /// The file to write.
        out_file: PathBuf,
    },
    /// Second generator setting: scattered row edits on the plain feeds of the day-D tree
    /// TREE_DIR made with the same seed, in place (each row edited with probability P a
    /// day, 1 to 4 letters of its string values).
    Churn {
        /// Seed the tree was made with.
        #[arg(long)]
        seed: u64,
        /// Day of the tree.
        #[arg(long)]
        day: u32,
        /// Probability that a row is edited on a day.
        #[arg(long, default_value_t = ouk_testdata::churn::DEFAULT_ROW_P, value_parser = parse_probability)]
        row_p: f64,
        /// The tree to edit.
        tree_dir: PathBuf,
    },
}

fn parse_probability(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| format!("{s:?} is not a probability (0 to 1)"))
}

/// `--size` of a tree: the small test tree or a total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TreeSize {
    Small,
    Bytes(u64),
}

fn parse_tree_size(s: &str) -> Result<TreeSize, String> {
    if s == "small" {
        Ok(TreeSize::Small)
    } else {
        parse_size(s).map(TreeSize::Bytes)
    }
}

/// A byte count (`64MiB`, `1GiB`, `500MB`, `1234`, 0 allowed) in ouk's grammar: the one
/// parser is `ouk_store::units`, so `--size` here reads as `ouk --part-size` does.
fn parse_size(s: &str) -> Result<u64, String> {
    ouk_store::units::parse_size_or_zero(s).map_err(|e| e.to_string())
}

fn rate(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs.max(1e-9))
}

/// Run one command; the error is a failed generation (exit 1). Bad arguments never get
/// here: clap reports them (exit 2, with usage).
fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Tree {
            seed,
            day,
            size,
            compressed,
            out_dir,
        } => {
            let spec = match size {
                TreeSize::Small => TreeSpec::small(seed),
                TreeSize::Bytes(n) => TreeSpec::with_total_bytes(seed, n),
            }
            .on_day(day)
            .with_compressed(compressed);
            let start = Instant::now();
            let sum =
                generate(&spec, &out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wrote {} files, {} bytes to {} in {secs:.2} s ({})",
                sum.files,
                sum.bytes,
                out_dir.display(),
                rate(sum.bytes, secs)
            );
            Ok(())
        }
        Command::Feed {
            seed,
            bytes,
            out_file,
        } => {
            let start = Instant::now();
            let io = |e: std::io::Error| format!("{}: {e}", out_file.display());
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&out_file).map_err(io)?);
            let n = write_feed_like(&mut w, seed, bytes).map_err(io)?;
            w.flush().map_err(io)?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wrote {n} bytes to {} in {secs:.2} s ({})",
                out_file.display(),
                rate(n, secs)
            );
            Ok(())
        }
        Command::Churn {
            seed,
            day,
            row_p,
            tree_dir,
        } => {
            let rows = ouk_testdata::churn::apply(&tree_dir, seed, day, row_p)
                .map_err(|e| format!("{}: {e}", tree_dir.display()))?;
            println!("edited {rows} feed rows in {}", tree_dir.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ouk-testdata: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    /// The grammar is ouk's (`ouk_store::units`): terabytes too, and the same messages.
    #[test]
    fn sizes_are_read_as_ouk_reads_them() {
        assert_eq!(parse_tree_size("2TiB"), Ok(TreeSize::Bytes(2 << 40)));
        assert_eq!(
            parse_tree_size("3tb"),
            Ok(TreeSize::Bytes(3_000_000_000_000))
        );
        assert_eq!(
            parse_tree_size("12XB"),
            Err("invalid size unit in \"12XB\" (use KiB, MiB, GiB, ...)".to_string())
        );
    }

    #[test]
    fn bad_arguments_are_reported() {
        let parse = |s: &str| {
            Cli::try_parse_from(std::iter::once("ouk-testdata").chain(s.split_whitespace()))
        };
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert!(err("tree --seed 1 out").contains("--day"));
        assert!(err("tree --seed x --day 1 out").contains("--seed"));
        assert!(err("tree --seed 1 --day 1 --bogus 2 out").contains("--bogus"));
        assert!(err("tree --seed 1 --day 1").contains("OUT_DIR"));
        assert!(err("feed --seed 1 out").contains("--bytes"));
        assert!(err("frob").contains("frob"));
        assert!(err("tree --seed 1 --day 1 --compressed=yes out").contains("--compressed"));
        assert!(err("tree --seed 1 --day 1 --size 12XB out").contains("12XB"));
        assert!(parse("").is_err());
        let Command::Tree {
            size, compressed, ..
        } = parse("tree --seed 1 --day 2 --size 64MiB --compressed out")
            .unwrap()
            .command
        else {
            panic!("tree");
        };
        assert_eq!((size, compressed), (TreeSize::Bytes(64 << 20), true));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
