//! Print how a delta between two directory trees is encoded, file by file.
//! `cargo run --release -p ouk-delta --example delta_probe -- OLD_DIR NEW_DIR`

use std::fs;
use std::path::Path;

use ouk_delta::content::{DirContent, TreeFile};
use ouk_delta::format::{GenerationRef, Source};
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_delta::{GenerationId, tree::list_tree};
use ouk_store::FileDigest;

fn tree(dir: &Path) -> (Vec<TreeFile>, DirContent) {
    let mut files = Vec::new();
    let mut content = Vec::new();
    for (rel, path, mode) in list_tree(dir).expect("list tree") {
        let bytes = fs::read(&path).expect("read");
        let sha256 = FileDigest::of(&bytes);
        files.push(TreeFile {
            path: rel,
            mode,
            size: bytes.len() as u64,
            sha256,
        });
        content.push((sha256, path));
    }
    (files, DirContent::new(content))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (a, b) = (tree(Path::new(&args[1])), tree(Path::new(&args[2])));
    let g = |n| GenerationRef {
        generation: GenerationId([n; 32]),
        version: None,
    };
    let mut payload = Vec::new();
    let t = std::time::Instant::now();
    let h = make_delta(
        g(0),
        &a.0,
        &a.1,
        g(1),
        &b.0,
        &b.1,
        &MakeOptions::default(),
        &mut payload,
    )
    .expect("make");
    for f in &h.files {
        match &f.source {
            Source::Baseline => {}
            Source::Derived { by } => println!("derived {:>10} {} ({})", f.size, f.path, by.name()),
            Source::Solid => println!("solid   {:>10} {}", f.size, f.path),
            Source::Trailer => println!("trailer {:>10} {}", f.size, f.path),
            Source::Pieces { pieces } | Source::Recompressed { pieces, .. } => {
                for p in pieces {
                    println!(
                        "{:<8?} {:>10} -> {:>8} {}",
                        p.encoding, p.size, p.length, f.path
                    );
                }
            }
        }
    }
    let header = serde_json::to_vec(&h).expect("json");
    let header_z = zstd::bulk::compress(&header, 19).expect("zstd");
    println!("solid: {:?}", h.solid);
    println!(
        "payload {} bytes, header {} bytes ({} zstd), {:?}",
        payload.len(),
        header.len(),
        header_z.len(),
        t.elapsed()
    );
}
