//! Store behaviour tests: round trips, dedup, durability recovery, fsck, gc.

use std::collections::HashSet;
use std::fs;
use std::io::Write;

use rand::{RngCore, SeedableRng};

use super::*;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Feed-like text: compressible, but with enough entropy that chunks differ.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let r = random(len / 8 + 1, seed);
    let mut out = Vec::with_capacity(len + 64);
    for (i, b) in r.iter().enumerate() {
        if out.len() >= len {
            break;
        }
        writeln!(out, "{{\"id\":\"CVE-2025-{i:05}\",\"score\":{b}}}").unwrap();
    }
    out.truncate(len);
    out
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn read_back(store: &Store, d: &FileDigest) -> Vec<u8> {
    let mut out = Vec::new();
    store.read_file(d, &mut out).unwrap();
    out
}

#[test]
fn put_and_read_back_small_large_and_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for data in [
        Vec::new(),
        b"hello".to_vec(),
        text(3 << 20, 1),
        random(5 << 20, 2),
    ] {
        let out = store.put_reader(&data[..]).unwrap();
        assert_eq!(out.size, data.len() as u64);
        assert_eq!(out.digest, FileDigest::of(&data));
        assert_eq!(read_back(&store, &out.digest), data);
    }
}

#[test]
fn identical_content_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let data = text(4 << 20, 3);
    let first = store.put_reader(&data[..]).unwrap();
    assert!(first.new_chunks > 10);
    let before = store.stats().unwrap();
    let second = store.put_reader(&data[..]).unwrap();
    assert_eq!(second.new_chunks, 0);
    assert_eq!(store.stats().unwrap().pack_bytes, before.pack_bytes);
    // A shifted copy shares all but the first chunk or two.
    let mut shifted = b"prefix".to_vec();
    shifted.extend_from_slice(&data);
    let third = store.put_reader(&shifted[..]).unwrap();
    assert!(third.new_chunks <= 2, "{} new chunks", third.new_chunks);
}

#[test]
fn a_chunk_repeated_in_later_batches_is_stored_once_whatever_the_threads() {
    // 3 MiB of chunks, repeated: each copy lands in another batch (4 MiB), some while the
    // batch before is still being prepared on the store's threads.
    let block = random(3 << 20, 9);
    let data: Vec<u8> = [&block[..], &block, &block, &block].concat();
    for threads in [1, 2, 4] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(
            tmp.path(),
            StoreOptions {
                threads,
                ..Default::default()
            },
        )
        .unwrap();
        let once = {
            let t = tempfile::tempdir().unwrap();
            open(t.path()).put_reader(&block[..]).unwrap().new_chunks
        };
        let put = store.put_reader(&data[..]).unwrap();
        // The copies after the first cut where the first did (random bytes re-sync at
        // once), so at most a chunk or two at each seam is new.
        assert!(
            put.new_chunks <= once + 6,
            "{threads} threads: {} new chunks for {} in one copy",
            put.new_chunks,
            once
        );
        let distinct: std::collections::HashSet<_> = put.chunks.iter().collect();
        assert_eq!(put.new_chunks, distinct.len() as u64, "{threads} threads");
        assert_eq!(read_back(&store, &put.digest), data);
    }
}

#[test]
fn single_threaded_and_parallel_stores_agree() {
    let data = text(6 << 20, 4);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let one = Store::open(
        a.path(),
        StoreOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let two = Store::open(
        b.path(),
        StoreOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let x = one.put_reader(&data[..]).unwrap();
    let y = two.put_reader(&data[..]).unwrap();
    assert_eq!(x, y);
    assert_eq!(
        one.stats().unwrap().stored_bytes,
        two.stats().unwrap().stored_bytes
    );
}

#[test]
fn data_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let data = random(1 << 20, 5);
    let d = open(tmp.path()).put_reader(&data[..]).unwrap().digest;
    let store = open(tmp.path());
    assert!(store.recovery().is_clean());
    assert_eq!(read_back(&store, &d), data);
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn uncommitted_writes_leave_no_trace_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = text(2 << 20, 6);
    let kept_digest = open(tmp.path()).put_reader(&kept[..]).unwrap().digest;
    {
        let store = open(tmp.path());
        let mut w = store.writer().unwrap();
        w.put_reader(&random(3 << 20, 7)[..], &mut |_| {}).unwrap();
        // Neither committed nor dropped (a dropped writer rolls back): like a crash after
        // the pack append.
        std::mem::forget(w);
    }
    let packs_dir = tmp.path().join("packs");
    let len_before: u64 = fs::read_dir(&packs_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // Simulate a crash that also left a brand-new pack file behind.
    fs::write(packs_dir.join(pack::pack_file_name(99)), b"OUKPACK1garbage").unwrap();
    let store = open(tmp.path());
    let rec = store.recovery();
    assert_eq!(rec.removed_packs, vec![99]);
    assert_eq!(rec.truncated_packs.len(), 1);
    let len_after: u64 = fs::read_dir(&packs_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(len_after < len_before);
    assert_eq!(read_back(&store, &kept_digest), kept);
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn a_writer_dropped_without_commit_leaves_the_packs_as_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = text(2 << 20, 6);
    let kept_digest = open(tmp.path()).put_reader(&kept[..]).unwrap().digest;
    let packs_dir = tmp.path().join("packs");
    let listing = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = fs::read_dir(&packs_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let store = open(tmp.path());
    {
        let mut w = store.writer().unwrap();
        w.put_reader(&random(3 << 20, 7)[..], &mut |_| {}).unwrap();
        assert_ne!(listing(), before, "the put appended frames");
        // Dropped without commit: a refused import.
    }
    assert_eq!(listing(), before, "the appends were undone");
    assert_eq!(read_back(&store, &kept_digest), kept);
    // The next writer appends where the committed data ends and commits normally.
    let again = store.put_reader(&random(3 << 20, 7)[..]).unwrap();
    drop(store);
    let store = open(tmp.path());
    assert!(store.recovery().is_clean());
    assert_eq!(read_back(&store, &again.digest), random(3 << 20, 7));
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn fsck_names_damaged_chunks_and_files_and_reads_refuse_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let a = store.put_reader(&text(1 << 20, 8)[..]).unwrap();
    let b = store.put_reader(&random(1 << 20, 9)[..]).unwrap();
    let victim = b.chunks[1];
    let loc = store.locate(&victim).unwrap().unwrap();
    drop(store);
    let path = tmp
        .path()
        .join("packs")
        .join(pack::pack_file_name(loc.pack));
    let mut bytes = fs::read(&path).unwrap();
    bytes[(loc.offset + 100) as usize] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    let store = open(tmp.path());
    let report = store.fsck(&|_| {}).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].id, victim);
    assert_eq!(report.damaged_files, vec![b.digest]);
    assert!(matches!(
        store.read_file(&b.digest, &mut Vec::new()),
        Err(StoreError::DamagedChunk { id, .. }) if id == victim
    ));
    assert_eq!(read_back(&store, &a.digest).len(), 1 << 20);
}

#[test]
fn gc_drops_dead_data_and_repacks_sparse_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let keep_data = random(1 << 20, 10);
    let keep = store.put_reader(&keep_data[..]).unwrap();
    let drop_ = store.put_reader(&random(4 << 20, 11)[..]).unwrap();
    let before = store.stats().unwrap();
    let live: HashSet<FileDigest> = [keep.digest].into();
    let report = store.gc(&live).unwrap();
    assert_eq!(report.files_removed, 1);
    assert_eq!(report.chunks_removed, drop_.chunks.len() as u64);
    assert_eq!(report.packs_rewritten, 1);
    let after = store.stats().unwrap();
    assert!(after.pack_bytes < before.pack_bytes / 3, "{after:?}");
    assert_eq!(read_back(&store, &keep.digest), keep_data);
    assert!(store.file_record(&drop_.digest).unwrap().is_none());
    drop(store);
    let store = open(tmp.path());
    assert!(store.recovery().is_clean());
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
    assert_eq!(read_back(&store, &keep.digest), keep_data);
    // And the store keeps accepting data after a repack.
    let more = store.put_reader(&text(1 << 20, 12)[..]).unwrap();
    assert_eq!(read_back(&store, &more.digest).len(), 1 << 20);
    // Everything dead: every pack goes.
    store.gc(&HashSet::new()).unwrap();
    assert_eq!(store.stats().unwrap().packs, 0);
}

#[test]
fn a_second_process_handle_is_refused_as_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = open(tmp.path());
    assert!(matches!(
        Store::open(tmp.path(), StoreOptions::default()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn a_store_with_other_chunker_params_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    {
        let db = redb::Database::create(tmp.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(index::META).unwrap();
            let other = StoreHeader {
                chunker: ChunkerParams {
                    avg_size: 8192,
                    ..ChunkerParams::V1
                },
                zstd_level: 3,
            };
            meta.insert(index::HEADER_KEY, other.encode().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Store::open(tmp.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Incompatible { .. }), "{err}");
}

#[test]
fn many_files_in_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut w = store.writer().unwrap();
    let mut digests = Vec::new();
    for i in 0..200u64 {
        let data = text(1000 + (i as usize) * 37, i);
        digests.push((w.put_reader(&data[..], &mut |_| {}).unwrap().digest, data));
    }
    let totals = w.commit().unwrap();
    assert_eq!(totals.files, 200);
    for (d, data) in digests {
        assert_eq!(read_back(&store, &d), data);
    }
}

#[test]
fn ranges_read_across_chunk_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let data = random(3 << 20, 13);
    let d = store.put_reader(&data[..]).unwrap().digest;
    for (off, len) in [
        (0u64, 10u64),
        (65_530, 200_000),
        (3 << 20, 5),
        ((3 << 20) - 7, 100),
        (1_000_000, 1_500_000),
    ] {
        let got = store.read_file_range(&d, off, len).unwrap();
        let s = (off as usize).min(data.len());
        let e = ((off + len) as usize).min(data.len());
        assert_eq!(got, &data[s..e], "{off}+{len}");
    }
}

#[test]
fn an_index_io_error_stays_an_io_error() {
    // A full disk while redb grows the index must read as ENOSPC, not as an opaque index
    // failure (the CLI maps the former to exit 12).
    let e = crate::StoreError::from_index(redb::StorageError::Io(
        std::io::Error::from_raw_os_error(libc_enospc()),
    ));
    match e {
        crate::StoreError::Io { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc_enospc()))
        }
        other => panic!("{other:?}"),
    }
    let e = crate::StoreError::from_index(redb::StorageError::Corrupted("x".into()));
    assert!(matches!(e, crate::StoreError::IndexDamaged { .. }));
}

fn libc_enospc() -> i32 {
    28
}

#[test]
fn gc_keeps_pinned_files_until_unpinned() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let pinned_data = random(1 << 20, 20);
    let pinned = store.put_reader(&pinned_data[..]).unwrap();
    let txn = store.database().begin_write().unwrap();
    crate::pins::pin(&txn, "test", &pinned.digest).unwrap();
    txn.commit().unwrap();
    assert!(store.pinned_files().unwrap().contains(&pinned.digest));
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.files_removed, 0);
    assert_eq!(read_back(&store, &pinned.digest), pinned_data);
    let txn = store.database().begin_write().unwrap();
    crate::pins::unpin(&txn, "test", &pinned.digest).unwrap();
    txn.commit().unwrap();
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.files_removed, 1);
    assert!(store.file_record(&pinned.digest).unwrap().is_none());
}

#[test]
fn a_put_hashed_by_its_producer_records_the_producers_digest_or_fails_without_one() {
    use crate::chunker::NoKnownCuts;
    use crate::writer::FileHashing;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let data = vec![7u8; 300_000];
    let mut w = store.writer().unwrap();
    let computed = w.put_reader(&data[..], &mut |_| {}).unwrap();
    let mut given = || Some(FileDigest::of(&data));
    let hashed = w
        .put_reader_knowing(
            &data[..],
            &mut NoKnownCuts,
            FileHashing::Given(&mut given),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(hashed.digest, computed.digest);
    assert_eq!(hashed.chunks, computed.chunks);
    let mut none = || None;
    let e = w
        .put_reader_knowing(
            &data[..],
            &mut NoKnownCuts,
            FileHashing::Given(&mut none),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("no digest"), "{e}");
}
