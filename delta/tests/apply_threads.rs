//! The pipelined apply (pieces decoded on a decoder thread one ahead of the sink) gives the
//! same result as the serial one, and its result does not depend on the thread count:
//! same files in the same order with the same digests, the same bytes, and the same error
//! for a damaged delta.

mod common;
use common::{Rng, make};

use std::fs;
use std::io::Cursor;
use std::path::Path;

use ouk_delta::apply::{DirSink, apply_delta_threads};
use ouk_delta::format::Source;
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;

/// Text lines from `rng`: compressible, every line different.
fn lines(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 80);
    while out.len() < bytes {
        let v = rng.next();
        out.extend_from_slice(
            format!(
                "{{\"id\":{},\"score\":{},\"ref\":\"{:x}\"}}\n",
                v >> 40,
                v & 0xff,
                v
            )
            .as_bytes(),
        );
    }
    out.truncate(bytes);
    out
}

/// Day 0 and day 1 of a tree: a 40 MiB file (two pieces) and a 3 MiB file with scattered
/// edits, a new file, and small files for the solid block.
fn trees(d0: &Path, d1: &Path) {
    let mut rng = Rng(0x5eed);
    let big = lines(&mut rng, 40 << 20);
    let feed = lines(&mut rng, 3 << 20);
    for d in [d0, d1] {
        fs::create_dir_all(d.join("feeds")).unwrap();
    }
    fs::write(d0.join("feeds/big.jsonl"), &big).unwrap();
    fs::write(d0.join("feeds/feed.jsonl"), &feed).unwrap();
    let edit = |data: &[u8], every: usize, rng: &mut Rng| {
        let mut out = data.to_vec();
        for at in (every / 2..out.len()).step_by(every) {
            out[at] = b'a' + (rng.next() % 26) as u8;
        }
        out
    };
    fs::write(d1.join("feeds/big.jsonl"), edit(&big, 3 << 20, &mut rng)).unwrap();
    fs::write(
        d1.join("feeds/feed.jsonl"),
        edit(&feed, 100 << 10, &mut rng),
    )
    .unwrap();
    fs::write(d1.join("feeds/new.jsonl"), lines(&mut rng, 600 << 10)).unwrap();
    for i in 0..5 {
        fs::write(d0.join(format!("s{i}.txt")), format!("small {i} day 0\n")).unwrap();
        fs::write(d1.join(format!("s{i}.txt")), format!("small {i} day 1\n")).unwrap();
    }
}

fn apply(
    made: &common::Made,
    payload: &[u8],
    out: &Path,
    threads: usize,
) -> ouk_delta::Result<Vec<(String, FileDigest)>> {
    fs::create_dir_all(out).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    apply_delta_threads(
        &made.header,
        &mut Cursor::new(payload),
        &made.base_files,
        &made.base,
        scratch.path(),
        &mut DirSink::new(out),
        threads,
    )
}

#[test]
fn the_apply_does_not_depend_on_the_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    trees(&d0, &d1);
    let options = MakeOptions {
        bsdiff_max: 0,
        record_tier: false,
        see_through: false,
        ..MakeOptions::default()
    };
    let made = make(&d0, &d1, &options);
    let big = made
        .header
        .files
        .iter()
        .find(|f| f.path == "feeds/big.jsonl")
        .unwrap();
    let Source::Pieces { pieces } = &big.source else {
        panic!("big ships as {:?}", big.source)
    };
    assert!(
        pieces.len() >= 2,
        "several pieces for the pipeline: {}",
        pieces.len()
    );
    let serial = apply(&made, &made.payload, &tmp.path().join("t1"), 1).unwrap();
    for threads in [2, 4] {
        let out = tmp.path().join(format!("t{threads}"));
        assert_eq!(
            apply(&made, &made.payload, &out, threads).unwrap(),
            serial,
            "{threads} threads"
        );
        for (path, digest) in &serial {
            assert_eq!(
                FileDigest::of(&fs::read(out.join(path)).unwrap()),
                *digest,
                "{path}"
            );
        }
    }
    for f in &made.target_files {
        if let Some((_, d)) = serial.iter().find(|(p, _)| *p == f.path) {
            assert_eq!(*d, f.sha256, "{} is the target's", f.path);
        }
    }
    // A damaged second piece of the big file: the same error, whatever the thread count.
    let mut damaged = made.payload.clone();
    let p = &pieces[1];
    let mid = (p.offset + p.length / 2) as usize;
    damaged[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0x5a);
    let errors: Vec<String> = [1, 2, 4]
        .iter()
        .map(|&t| {
            apply(&made, &damaged, &tmp.path().join(format!("bad{t}")), t)
                .expect_err("a damaged piece is refused")
                .to_string()
        })
        .collect();
    assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
}
