//! CPU time of the host's feed step of an import ([`record_import`]) and of the index diff
//! under it ([`diff_indexes`]), on two real feed indexes.
//!
//! Not a criterion bench: the figure issue 23 asks for is CPU seconds (user + sys, from
//! `/proc/self/stat`) of one call on the 1 GiB testdata pair, next to the wall time.
//!
//! ```text
//! tar -xzf K0.tar.gz metadata/feeds-index.jsonl -O > old.jsonl
//! tar -xzf K1.tar.gz metadata/feeds-index.jsonl -O > new.jsonl
//! cargo bench -p ouk-feeds --bench record_import -- old.jsonl new.jsonl [RUNS]
//! ```
//! Without arguments two synthetic indexes (3 feeds of 130,000 rows, 1 % changed) are
//! generated in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ouk_delta::GenerationId;
use ouk_feeds::diff::diff_indexes;
use ouk_feeds::host::record_import;
use ouk_feeds::{FEED_INDEX_PATH, FeedHeader, FeedIndexWriter, FeedRow, RowHash};
use ouk_root::{LockWait, Root};
use ouk_store::StoreOptions;

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `)`.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on every Linux ouk runs on.
    ticks / 100.0
}

fn synthetic(dir: &Path, name: &str, day: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut w = FeedIndexWriter::new(f).unwrap();
    let rows = 130_000u64;
    for (feed, source) in [
        ("feeds/ghsa/a.jsonl", "ghsa"),
        ("feeds/nvd/a.jsonl", "nvd"),
        ("feeds/osv/a.jsonl", "osv"),
    ] {
        w.begin_feed(&FeedHeader {
            feed: feed.into(),
            source: source.into(),
            rows,
            skipped: 0,
        })
        .unwrap();
        for i in 0..rows {
            let v = if i % 100 == 0 { day } else { 0 };
            let mut h = [0x5au8; 32];
            h[..8].copy_from_slice(&i.to_be_bytes());
            h[8] = v as u8;
            w.push_row(&FeedRow {
                id: format!("GHSA-{i:08}-{source}"),
                hash: RowHash(h),
                tenant: None,
                modified: (i % 3 == 0).then(|| "2025-10-01T00:00:00Z".into()),
            })
            .unwrap();
        }
    }
    w.finish().unwrap();
    path
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = match (args.first(), args.get(1)) {
        (Some(o), Some(n)) => (PathBuf::from(o), PathBuf::from(n)),
        _ => (
            synthetic(dir.path(), "old.jsonl", 0),
            synthetic(dir.path(), "new.jsonl", 1),
        ),
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    println!(
        "old {} ({} bytes), new {} ({} bytes)",
        old.display(),
        fs::metadata(&old).unwrap().len(),
        new.display(),
        fs::metadata(&new).unwrap().len()
    );

    for run in 0..runs {
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let mut changes = 0u64;
        diff_indexes(Some(&old), Some(&new), &mut |_| {
            changes += 1;
            Ok(())
        })
        .unwrap();
        println!(
            "diff_indexes    run {run}: {changes} changes, cpu {:.2} s, wall {:.2} s",
            cpu_seconds() - cpu,
            wall.elapsed().as_secs_f64()
        );
    }

    for run in 0..runs {
        // A fresh root each run: the history records a generation once.
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::open(root_dir.path(), LockWait::Fail, StoreOptions::default()).unwrap();
        let (g0, g1) = (GenerationId([0; 32]), GenerationId([1; 32]));
        let in_tree = root.generation_dir(&g0).join(FEED_INDEX_PATH);
        fs::create_dir_all(in_tree.parent().unwrap()).unwrap();
        fs::copy(&old, &in_tree).unwrap();
        let staged = root_dir.path().join("staged");
        let staged_index = staged.join(FEED_INDEX_PATH);
        fs::create_dir_all(staged_index.parent().unwrap()).unwrap();
        fs::copy(&new, &staged_index).unwrap();
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let recorded = record_import(&root, &g1, Some(&staged), Some(g0), "1")
            .unwrap()
            .unwrap();
        println!(
            "record_import   run {run}: {} rows, cpu {:.2} s, wall {:.2} s",
            recorded.rows,
            cpu_seconds() - cpu,
            wall.elapsed().as_secs_f64()
        );
    }
}
