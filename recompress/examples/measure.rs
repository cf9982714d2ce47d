//! Measure analyze/rebuild on one file: `cargo run --release -p ouk-recompress --example
//! measure -- FILE`. Prints: exact or not, plain and recipe sizes, analyze and rebuild
//! times, and the process's peak resident memory (VmHWM), for docs/recompress.md. The plain
//! form goes to a temporary file, so memory is the crate's own.

use std::io::{BufReader, BufWriter, Read, Write};
use std::time::Instant;

fn peak_rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k / 1024)
        .unwrap_or(0)
}

/// A writer that hashes what it gets (the rebuilt file is compared, not kept).
struct Compare<R: Read> {
    original: R,
    same: bool,
    len: u64,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut want = vec![0u8; buf.len()];
        self.original.read_exact(&mut want)?;
        self.same &= want == buf;
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: measure FILE");
    let size = std::fs::metadata(&path).unwrap().len();
    let limits = ouk_recompress::Limits::default();
    let plain_file = tempfile::NamedTempFile::new().unwrap();
    let t = Instant::now();
    let mut input = BufReader::new(std::fs::File::open(&path).unwrap());
    let mut plain = BufWriter::new(plain_file.reopen().unwrap());
    let result = ouk_recompress::analyze(&mut input, &mut plain, &limits);
    plain.flush().unwrap();
    let analyze_s = t.elapsed().as_secs_f64();
    let a = match result {
        Ok(a) => a,
        Err(e) => {
            println!(
                "{path}\tsize={size}\tNOT EXACT: {e}\tanalyze={analyze_s:.2}s\tpeak={}MiB",
                peak_rss_mib()
            );
            return;
        }
    };
    let t = Instant::now();
    let mut out = Compare {
        original: BufReader::new(std::fs::File::open(&path).unwrap()),
        same: true,
        len: 0,
    };
    let mut plain = BufReader::new(plain_file.reopen().unwrap());
    let n = ouk_recompress::rebuild(&a.recipe, &mut plain, &mut out, &limits).unwrap();
    let rebuild_s = t.elapsed().as_secs_f64();
    assert!(out.same && n == size, "rebuild differs");
    println!(
        "{path}\tsize={size}\tformat={}\tplain={}\trecipe={}\tanalyze={analyze_s:.2}s\trebuild={rebuild_s:.2}s\tpeak={}MiB",
        a.format.name(),
        a.plain_size,
        a.recipe.len(),
        peak_rss_mib()
    );
}
