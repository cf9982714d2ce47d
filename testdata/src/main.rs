//! `ouk-testdata`: command-line front end of the synthetic release-tree generator.
//!
//! ```text
//! ouk-testdata tree --seed N --day D [--size small|64MiB|1GiB|<bytes>] [--compressed] OUT_DIR
//! ouk-testdata feed --seed N --bytes <size> OUT_FILE
//! ouk-testdata churn --seed N --day D [--row-p P] TREE_DIR
//! ```

use ouk_testdata::{TreeSpec, generate, write_feed_like};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage:
  ouk-testdata tree --seed N --day D [--size small|<size>] [--compressed] OUT_DIR
      write the synthetic release tree of day D (OUT_DIR must be missing or empty);
      --compressed: gzip image layers, NVD yearly .json.gz, OSV all.zip, GHSA .jsonl.zst
      and a wheel plug-in, with the same daily churn inside
  ouk-testdata feed --seed N --bytes <size> OUT_FILE
      write about <size> bytes of OSV-like JSON lines
  ouk-testdata churn --seed N --day D [--row-p P] TREE_DIR
      second setting: scattered row edits (each row edited with probability P a day,
      default 0.0125, 1 to 4 letters of its string values) on the plain feeds of the
      day-D tree TREE_DIR made with the same seed, in place

sizes: plain bytes or with a suffix: K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB";

/// Parses `64MiB`, `1GiB`, `500MB`, `1234`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

struct Args {
    flags: Vec<(String, String)>,
    positional: Vec<String>,
}

/// Parses `--name value`, `--name=value` (for `known`) and bare `--name` (for `switches`,
/// recorded with the value "true").
fn parse_args(args: &[String], known: &[&str], switches: &[&str]) -> Result<Args, String> {
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let (name, value) = match name.split_once('=') {
                Some((n, _)) if switches.contains(&n) => {
                    return Err(format!("--{n} takes no value"));
                }
                Some((n, v)) => (n.to_string(), v.to_string()),
                None if switches.contains(&name) => (name.to_string(), "true".to_string()),
                None => {
                    let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    (name.to_string(), v.clone())
                }
            };
            if !known.contains(&name.as_str()) && !switches.contains(&name.as_str()) {
                return Err(format!("unknown option --{name}"));
            }
            if flags.iter().any(|(n, _)| *n == name) {
                return Err(format!("--{name} given twice"));
            }
            flags.push((name, value));
        } else {
            positional.push(a.clone());
        }
    }
    Ok(Args { flags, positional })
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn one_path(&self, what: &str) -> Result<PathBuf, String> {
        match self.positional.as_slice() {
            [p] => Ok(PathBuf::from(p)),
            [] => Err(format!("missing {what}")),
            _ => Err(format!("expected one {what}, got {:?}", self.positional)),
        }
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("--{name}: {v:?} is not a valid number"))
}

fn rate(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs.max(1e-9))
}

/// Why a run failed: bad arguments (exit 2, with usage) or a failed generation (exit 1).
#[derive(Debug)]
enum Failure {
    Usage(String),
    Run(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Usage(s)
    }
}

impl Failure {
    #[cfg(test)]
    fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Run(m) => m,
        }
    }
}

fn run(argv: &[String]) -> Result<(), Failure> {
    let (cmd, rest) = argv
        .split_first()
        .ok_or_else(|| "missing command".to_string())?;
    match cmd.as_str() {
        "tree" => {
            let a = parse_args(rest, &["seed", "day", "size"], &["compressed"])?;
            let seed = parse_num("seed", a.required("seed")?)?;
            let day = parse_num("day", a.required("day")?)?;
            let out = a.one_path("OUT_DIR")?;
            let spec = match a.get("size").unwrap_or("small") {
                "small" => TreeSpec::small(seed),
                s => TreeSpec::with_total_bytes(seed, parse_size(s)?),
            }
            .on_day(day)
            .with_compressed(a.get("compressed").is_some());
            let start = Instant::now();
            let sum = generate(&spec, &out)
                .map_err(|e| Failure::Run(format!("{}: {e}", out.display())))?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wrote {} files, {} bytes to {} in {secs:.2} s ({})",
                sum.files,
                sum.bytes,
                out.display(),
                rate(sum.bytes, secs)
            );
            Ok(())
        }
        "feed" => {
            let a = parse_args(rest, &["seed", "bytes"], &[])?;
            let seed = parse_num("seed", a.required("seed")?)?;
            let bytes = parse_size(a.required("bytes")?)?;
            let out = a.one_path("OUT_FILE")?;
            let start = Instant::now();
            let io = |e: std::io::Error| Failure::Run(format!("{}: {e}", out.display()));
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&out).map_err(io)?);
            let n = write_feed_like(&mut w, seed, bytes).map_err(io)?;
            w.flush().map_err(io)?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wrote {n} bytes to {} in {secs:.2} s ({})",
                out.display(),
                rate(n, secs)
            );
            Ok(())
        }
        "churn" => {
            let a = parse_args(rest, &["seed", "day", "row-p"], &[])?;
            let seed = parse_num("seed", a.required("seed")?)?;
            let day = parse_num("day", a.required("day")?)?;
            let row_p = match a.get("row-p") {
                None => ouk_testdata::churn::DEFAULT_ROW_P,
                Some(p) => p
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("--row-p {p:?} is not a probability"))?,
            };
            let tree = a.one_path("TREE_DIR")?;
            let rows = ouk_testdata::churn::apply(&tree, seed, day, row_p)
                .map_err(|e| Failure::Run(format!("{}: {e}", tree.display())))?;
            println!("edited {rows} feed rows in {}", tree.display());
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}").into()),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("ouk-testdata: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
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

    #[test]
    fn bad_arguments_are_reported() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(
            run(&v("tree --seed 1 out"))
                .unwrap_err()
                .message()
                .contains("--day")
        );
        assert!(
            run(&v("tree --seed x --day 1 out"))
                .unwrap_err()
                .message()
                .contains("--seed")
        );
        assert!(
            run(&v("tree --seed 1 --day 1 --bogus 2 out"))
                .unwrap_err()
                .message()
                .contains("--bogus")
        );
        assert!(
            run(&v("tree --seed 1 --day 1"))
                .unwrap_err()
                .message()
                .contains("OUT_DIR")
        );
        assert!(
            run(&v("feed --seed 1 out"))
                .unwrap_err()
                .message()
                .contains("--bytes")
        );
        assert!(
            run(&v("frob"))
                .unwrap_err()
                .message()
                .contains("unknown command")
        );
        assert!(
            run(&v("tree --seed 1 --day 1 --compressed=yes out"))
                .unwrap_err()
                .message()
                .contains("takes no value")
        );
        assert!(run(&[]).is_err());
    }
}
