//! Sizes of one file pair's patch per encoding: `record_probe OLD NEW` prints the record
//! tier's, zstd --patch-from's (level 19, long) and bsdiff-lzma's bytes.
use ouk_delta::patch::{ZstdTuning, zstd_encode};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (old, new) = (std::fs::read(&args[1])?, std::fs::read(&args[2])?);
    let tuning = ZstdTuning {
        level: 19,
        long: true,
    };
    let t = std::time::Instant::now();
    eprintln!(
        "plan (ops, dict, lits): {:?}",
        ouk_delta::records::plan_stats(&old, &new)
    );
    let rec = ouk_delta::records::encode(&old, &new, tuning)?;
    let rec_s = t.elapsed();
    if let Some(r) = &rec {
        assert!(ouk_delta::records::decode(&old, r, new.len() as u64).unwrap() == new);
    }
    let t = std::time::Instant::now();
    let z = zstd_encode(Some(&old), &new, tuning)?;
    let z_s = t.elapsed();
    println!(
        "records {:?} ({rec_s:.1?})  zstd-ref-19 {} ({z_s:.1?})",
        rec.map(|r| r.len()),
        z.len()
    );
    if args.len() > 3 {
        let (b, l) = ouk_delta::bsdiffx::encode(&old, &new)?;
        println!("bsdiff {} bsdiff-lzma {}", b.len(), l.len());
    }
    Ok(())
}
