//! Lazily compressed writes and their compaction: sizes back to the store's level, reads
//! unchanged, and a crash at any step of a compaction leaves every chunk readable.

use std::collections::HashSet;
use std::fs;
use std::io::Write;

use super::compact::{CRASH_AT, CrashPoint};
use super::*;

/// Feed-like text (compressible, chunks differ).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = seed.wrapping_mul(7919);
    while out.len() < len {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        writeln!(
            out,
            "{{\"id\":\"CVE-2025-{:05}\",\"score\":{},\"v\":{}}}",
            i >> 48,
            (i >> 40) & 0xff,
            i >> 20
        )
        .unwrap();
    }
    out.truncate(len);
    out
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn put(store: &Store, data: &[u8], fast: bool) -> PutOutcome {
    let mut w = store.writer().unwrap();
    if fast {
        w.store_new_chunks_fast();
    }
    let out = w.put_reader(data, &mut |_| {}).unwrap();
    w.commit().unwrap();
    out
}

fn read_back(store: &Store, d: &FileDigest) -> Vec<u8> {
    let mut out = Vec::new();
    store.read_file(d, &mut out).unwrap();
    out
}

fn lazy_packs(store: &Store) -> HashSet<u32> {
    compact::lazy_packs_in(&store.db.begin_read().unwrap()).unwrap()
}

/// Stored frame bytes of `data` in a fresh store written the normal way: what compaction
/// must come back to (zstd is deterministic at a level, so the frames are identical).
fn normal_stored_bytes(data: &[&[u8]]) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for d in data {
        put(&store, d, false);
    }
    store.stats().unwrap().stored_bytes
}

#[test]
fn a_fast_write_is_lazy_and_compact_brings_it_to_the_store_level() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let base = text(3 << 20, 1);
    let fresh = text(5 << 20, 2);
    let b = put(&store, &base, false);
    let packs_before = store.stats().unwrap().packs;
    let f = put(&store, &fresh, true);
    if crate::compact::LAZY_LEVEL.is_none() {
        assert!(
            f.new_chunks > 0 && f.new_stored_bytes >= f.new_raw_bytes,
            "lazy frames are stored raw: {} stored of {} raw",
            f.new_stored_bytes,
            f.new_raw_bytes
        );
    }
    let lazy = lazy_packs(&store);
    assert_eq!(lazy.len(), 1, "the fast write made one lazy pack");
    assert_eq!(
        store.stats().unwrap().packs,
        packs_before + 1,
        "not appended to the normal pack"
    );
    let normal = normal_stored_bytes(&[&base, &fresh]);
    let before = store.stats().unwrap();
    assert!(
        before.stored_bytes > normal,
        "fast frames are larger: {} vs {normal}",
        before.stored_bytes
    );
    // A normal write after a fast one does not go into the lazy pack.
    let more = text(1 << 20, 3);
    let m = put(&store, &more, false);
    for id in &m.chunks {
        assert!(!lazy.contains(&store.locate(id).unwrap().unwrap().pack));
    }
    let report = store.compact(&mut progress::ignore).unwrap();
    assert_eq!(report.packs_compacted, 1);
    assert!(report.bytes_after < report.bytes_before);
    assert!(lazy_packs(&store).is_empty());
    let after = store.stats().unwrap();
    assert_eq!(
        after.stored_bytes,
        normal_stored_bytes(&[&base, &fresh, &more]),
        "frames at the store's level"
    );
    for (d, data) in [(b.digest, &base), (f.digest, &fresh), (m.digest, &more)] {
        assert_eq!(&read_back(&store, &d), data);
    }
    // Idempotent, and the store reopens clean.
    assert_eq!(
        store
            .compact(&mut progress::ignore)
            .unwrap()
            .packs_compacted,
        0
    );
    drop(store);
    let store = open(tmp.path());
    assert!(store.recovery().is_clean());
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn gc_recompresses_lazy_packs_and_drops_their_dead_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let keep = text(4 << 20, 4);
    let dead = text(4 << 20, 5);
    let k = put(&store, &keep, true);
    put(&store, &dead, true);
    assert_eq!(lazy_packs(&store).len(), 2);
    let live: HashSet<FileDigest> = [k.digest].into();
    store.gc(&live).unwrap();
    assert!(lazy_packs(&store).is_empty());
    let s = store.stats().unwrap();
    assert_eq!(s.stored_bytes, normal_stored_bytes(&[&keep]));
    assert_eq!(
        s.pack_bytes,
        s.stored_bytes + pack::PACK_HEADER_LEN * s.packs
    );
    assert_eq!(read_back(&store, &k.digest), keep);
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn a_crash_at_any_step_of_compact_leaves_every_chunk_readable() {
    for at in [
        CrashPoint::MidCopy,
        CrashPoint::BeforeCommit,
        CrashPoint::AfterCommit,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = [text(2 << 20, 6), text(20 << 20, 7)];
        let digests: Vec<FileDigest> = {
            let store = open(tmp.path());
            let d = vec![
                put(&store, &data[0], false).digest,
                put(&store, &data[1], true).digest,
            ];
            CRASH_AT.with(|c| c.set(Some(at)));
            let crashed = store.compact(&mut progress::ignore);
            CRASH_AT.with(|c| c.set(None));
            assert!(
                crashed.is_err(),
                "{at:?}: the simulated crash stops compaction"
            );
            // A crash: nothing cleans up after it.
            std::mem::forget(store);
            d
        };
        // The index lock of the forgotten handle is released by reopening in a new
        // Database only after the file handle closes: redb refuses a second open in the
        // same process, so copy the store directory as a crashed host would find it.
        let after = tempfile::tempdir().unwrap();
        copy_dir(tmp.path(), after.path());
        let store = open(after.path());
        assert!(
            !store.recovery().is_clean(),
            "{at:?}: a leftover pack is found"
        );
        assert!(store.fsck(&|_| {}).unwrap().is_clean(), "{at:?}");
        for (d, bytes) in digests.iter().zip(&data) {
            assert_eq!(&read_back(&store, d), bytes, "{at:?}");
        }
        // Compaction runs again (or is already done) and ends at the store's level.
        store.compact(&mut progress::ignore).unwrap();
        assert!(lazy_packs(&store).is_empty());
        assert_eq!(
            store.stats().unwrap().stored_bytes,
            normal_stored_bytes(&[&data[0], &data[1]])
        );
        assert!(store.fsck(&|_| {}).unwrap().is_clean());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}
