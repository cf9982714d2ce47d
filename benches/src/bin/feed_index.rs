//! `feed_index FEED [--budget BYTES] [--kit-path feeds/osv/NAME]`: index one feed file
//! exactly as `ouk kit build` does (ouk_kit::feeds::index_feeds, default options, spilled
//! runs next to the output) and print rows, bytes, seconds, rows/s and sort runs as JSON.
//! The index goes to FEED.index.jsonl. Used by benches/scripts/feeds_index.sh.

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let feed = PathBuf::from(
        args.next()
            .ok_or("usage: feed_index FEED [--budget BYTES]")?,
    );
    let mut opts = ouk_kit::feeds::IndexOptions::default();
    let mut kit_path = format!(
        "feeds/osv/{}",
        feed.file_name()
            .ok_or("FEED has no file name")?
            .to_string_lossy()
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--budget" => opts.sort_budget = args.next().ok_or("--budget BYTES")?.parse()?,
            "--kit-path" => kit_path = args.next().ok_or("--kit-path PATH")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let out_path = PathBuf::from(format!("{}.index.jsonl", feed.display()));
    opts.temp_dir = out_path.parent().map(|p| p.to_path_buf());
    let bytes = std::fs::metadata(&feed)?.len();
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out_path)?);
    let start = Instant::now();
    let (report, out) = ouk_kit::feeds::index_feeds(&[(kit_path, feed.clone())], &opts, out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let secs = start.elapsed().as_secs_f64();
    let rows: u64 = report.feeds.iter().map(|f| f.rows).sum();
    let runs: usize = report.feeds.iter().map(|f| f.sort_runs).sum();
    println!(
        "{}",
        serde_json::json!({
            "feed": feed,
            "bytes": bytes,
            "rows": rows,
            "skipped": report.skipped_total,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "rowsPerSecond": (rows as f64 / secs).round(),
            "mibPerSecond": ((bytes as f64 / (1 << 20) as f64 / secs) * 10.0).round() / 10.0,
            "sortRuns": runs,
            "indexBytes": std::fs::metadata(&out_path)?.len(),
        })
    );
    Ok(())
}
