//! The delta a pair gives depends on the pair and the options only: a planner that runs
//! slow (a loaded machine, a slow disk) ships the same bytes as one that runs fast.

mod common;
use common::{Rng, gref, tree_files};

use std::fs;
use std::io::{self, Read};
use std::time::Duration;

use ouk_delta::content::{ContentReader, DirContent, TreeFile};
use ouk_delta::format::Source;
use ouk_delta::patch::Encoding;
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_store::FileDigest;

/// A reader that stalls before each range read, as a loaded host does.
struct Stalling<'a>(&'a DirContent, Duration);

impl ContentReader for Stalling<'_> {
    fn open(&self, sha256: &FileDigest) -> io::Result<Box<dyn Read + Send + '_>> {
        self.0.open(sha256)
    }
    fn read_range(&self, sha256: &FileDigest, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        std::thread::sleep(self.1);
        self.0.read_range(sha256, offset, length)
    }
}

/// A rebuilt "binary": code bytes from a small alphabet with 32-bit addresses, every
/// address moved by `shift` (the case bsdiff wins: zstd sees each address as new).
fn binary(shift: u32) -> Vec<u8> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    while out.len() < 160_000 {
        let r = rng.next();
        if r.is_multiple_of(3) {
            let address = 0x40_0000 + (r >> 8) as u32 % 0x10_0000 + shift;
            out.extend_from_slice(&address.to_le_bytes());
        } else {
            out.push(b"\x48\x89\xe5\x8b\x45\xc3\x0f\x1f"[(r >> 8) as usize % 8]);
        }
    }
    out
}

fn make(
    base: (&[TreeFile], &dyn ContentReader),
    target: (&[TreeFile], &dyn ContentReader),
    options: &MakeOptions,
) -> (Vec<u8>, Vec<u8>) {
    let mut payload = Vec::new();
    let header = make_delta(
        gref(0),
        base.0,
        base.1,
        gref(1),
        target.0,
        target.1,
        options,
        &mut payload,
    )
    .unwrap();
    header.validate(u64::MAX).unwrap();
    let uses_bsdiff = header.files.iter().any(|f| match &f.source {
        Source::Pieces { pieces } => pieces
            .iter()
            .any(|p| matches!(p.encoding, Encoding::Bsdiff | Encoding::BsdiffLzma)),
        _ => false,
    });
    assert!(uses_bsdiff, "the pair is one bsdiff wins");
    (serde_json::to_vec(&header).unwrap(), payload)
}

/// Before: the planner tried bsdiff only in the first half of its wall-clock budget, so
/// the same pair on a slow machine shipped a zstd patch instead (and other bytes).
#[test]
fn a_planner_that_runs_slow_ships_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    for (dir, shift) in [(&d0, 0), (&d1, 0x40)] {
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::write(dir.join("bin/tool"), binary(shift)).unwrap();
    }
    let (base_files, base) = tree_files(&d0);
    let (target_files, target) = tree_files(&d1);
    // A small budget: a wall-clock planner spends half of it in the stalls below.
    let options = MakeOptions {
        time_budget: Duration::from_secs(1),
        ..MakeOptions::default()
    };
    let fast = make((&base_files, &base), (&target_files, &target), &options);
    let stall = Duration::from_millis(600);
    let slow = make(
        (&base_files, &Stalling(&base, stall)),
        (&target_files, &Stalling(&target, stall)),
        &options,
    );
    assert!(fast.0 == slow.0, "headers differ");
    assert!(fast.1 == slow.1, "payloads differ");
}
