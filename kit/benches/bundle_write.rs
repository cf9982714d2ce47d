//! Side-by-side measurement of the bundle writer against `tar --sort=name | gzip -6`.
//!
//! Not a criterion bench: one timed run of each on a real tree, since the figure the kit-build
//! issue asks for is wall time against GNU tar + gzip on the same machine.
//!
//! ```text
//! cargo bench -p ouk-kit --bench bundle_write -- TREE_DIR [OUT_DIR] [THREADS]
//! ```
//! Without TREE_DIR a 256 MiB JSON-lines-like tree is generated in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ouk_kit::bundle::{BundleWriter, ReadLimits, WriterOptions, unpack_to_dir};

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, u32)>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(base, &p, out)?;
        } else if ft.is_file() {
            let rel = p
                .strip_prefix(base)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let mode = e.metadata()?.permissions().mode() & 0o777;
            let mode = if mode & 0o077 == 0 {
                0o600
            } else if mode & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            out.push((rel, p, mode));
        }
    }
    Ok(())
}

fn synth_tree(dir: &Path, bytes: usize) -> std::io::Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words = [
        "\"id\":\"GHSA-",
        "\"aliases\":[\"CVE-2024-",
        "\"ecosystem\":\"npm\"",
        "\"severity\":",
        "\"summary\":\"Prototype pollution in",
        "\"affected\":[{\"package\":{\"name\":\"",
        "\"ranges\":[{\"type\":\"SEMVER\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"",
        "\"modified\":\"2025-10-",
        "lodash",
        "express",
        "openssl",
        "}]}]}\n",
    ];
    for f in 0..16 {
        let sub = dir.join(format!("feeds/src{}", f % 4));
        fs::create_dir_all(&sub)?;
        let mut data = Vec::with_capacity(bytes / 16 + 64);
        while data.len() < bytes / 16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
            data.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
        fs::write(sub.join(format!("part-{f:02}.jsonl")), data)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let tmp = tempfile::tempdir()?;
    let tree = match args.first() {
        Some(t) => PathBuf::from(t),
        None => {
            let t = tmp.path().join("tree");
            synth_tree(&t, 256 << 20)?;
            t
        }
    };
    let out_dir = args
        .get(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let threads = args
        .get(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(WriterOptions::default().threads);

    let mut files = Vec::new();
    walk(&tree, &tree, &mut files)?;
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let input: u64 = files
        .iter()
        .map(|f| fs::metadata(&f.1).map(|m| m.len()).unwrap_or(0))
        .sum();
    // Warm the page cache for both contenders.
    for f in &files {
        std::io::copy(&mut fs::File::open(&f.1)?, &mut std::io::sink())?;
    }

    let ours_path = out_dir.join("ours.tar.gz");
    let start = Instant::now();
    let out = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&ours_path)?);
    let mut w = BundleWriter::with_options(
        out,
        WriterOptions {
            threads,
            ..WriterOptions::default()
        },
    )?;
    for (rel, path, mode) in &files {
        w.add_file(rel, *mode, path)?;
    }
    let (summary, out) = w.finish()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let ours = start.elapsed().as_secs_f64();

    let theirs_path = out_dir.join("tar-gzip6.tar.gz");
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar --sort=name -C '{}' -cf - . | gzip -6 > '{}' && sync '{}'",
            tree.display(),
            theirs_path.display(),
            theirs_path.display()
        ))
        .status()?;
    let theirs = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err("tar | gzip failed".into());
    }
    let theirs_size = fs::metadata(&theirs_path)?.len();

    println!("input: {} files, {input} bytes", files.len());
    println!(
        "ouk BundleWriter ({threads} threads, level 6): {ours:.2} s, {} bytes ({:.2} % of input), sha256 {}",
        summary.size,
        100.0 * summary.size as f64 / input as f64,
        summary.sha256_hex()
    );
    println!(
        "tar --sort=name | gzip -6:             {theirs:.2} s, {theirs_size} bytes ({:.2} % of input)",
        100.0 * theirs_size as f64 / input as f64
    );
    println!("time ratio ours / tar+gzip: {:.2}", ours / theirs);
    println!(
        "size ratio ours / tar+gzip: {:.4}",
        summary.size as f64 / theirs_size as f64
    );

    // The import side: our safe unpack (with SHA-256 of every file) against `tar -xzf`.
    let declared: std::collections::HashMap<String, u64> = files
        .iter()
        .map(|f| {
            (
                f.0.clone(),
                fs::metadata(&f.1).map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    let x_ours = out_dir.join("x-ours");
    let x_tar = out_dir.join("x-tar");
    for d in [&x_ours, &x_tar] {
        let _ = fs::remove_dir_all(d);
        fs::create_dir(d)?;
    }
    let start = Instant::now();
    let unpacked = unpack_to_dir(
        fs::File::open(&ours_path)?,
        &x_ours,
        &|p| declared.get(p).copied(),
        ReadLimits::for_declared(files.len() as u64, input),
    )?;
    let ours_x = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&ours_path)
        .arg("-C")
        .arg(&x_tar)
        .status()?;
    let tar_x = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err("tar -xzf failed".into());
    }
    println!(
        "unpack_to_dir (+ SHA-256 of {} files): {ours_x:.2} s; tar -xzf: {tar_x:.2} s; ratio {:.2}",
        unpacked.len(),
        ours_x / tar_x
    );
    fs::remove_dir_all(&x_ours)?;
    fs::remove_dir_all(&x_tar)?;
    Ok(())
}
