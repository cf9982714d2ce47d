//! Object-storage store tests against object_store's in-memory store: immutable packs
//! named by their BLAKE3, create-only writes, the pack-index objects, reindex from the
//! bucket alone, two writers racing on one bucket, and an upload cut before its index
//! object. (The same behaviour against a real S3 server, s3s-fs, is in `cli/tests/`.)

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rand::{RngCore, SeedableRng};

use super::*;
use crate::pack_index::{PackIndex, PackName, parse_index_key, parse_pack_key};
use crate::remote::S3Packs;

const URL: &str = "s3://ouk-test/site";
const TARGET: u64 = 1 << 20;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Connects a store to `bucket` (object_store's in-memory store) as to `s3://ouk-test/site`.
fn in_memory(bucket: Arc<InMemory>) -> impl Fn(&RemoteOptions) -> Result<Box<dyn PackBackend>> {
    move |r| {
        Ok(Box::new(S3Packs::with_store(
            bucket.clone() as Arc<dyn ObjectStore>,
            &r.url,
            "ouk-test",
            "memory",
            "site",
            r.pack_target,
        )?))
    }
}

fn open(dir: &Path, bucket: &Arc<InMemory>) -> Store {
    Store::open_with(
        dir,
        StoreOptions {
            threads: 2,
            remote: Some(RemoteOptions {
                url: URL.into(),
                pack_target: TARGET,
            }),
            ..Default::default()
        },
        &in_memory(bucket.clone()),
    )
    .unwrap()
}

fn objects(bucket: &InMemory) -> Vec<(String, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        let mut out = Vec::new();
        let mut list = bucket.list(None);
        while let Some(m) = list.next().await {
            let m = m.unwrap();
            let bytes = bucket
                .get(&m.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            out.push((m.location.to_string(), bytes.to_vec()));
        }
        out.sort();
        out
    })
}

fn read_back(store: &Store, d: &FileDigest) -> Vec<u8> {
    let mut out = Vec::new();
    store.read_file(d, &mut out).unwrap();
    out
}

#[test]
fn packs_are_immutable_objects_named_by_their_bytes() {
    let bucket = Arc::new(InMemory::new());
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), &bucket);
    assert!(store.is_remote());
    let data = random(5 << 20, 1);
    let put = store.put_reader(&data[..]).unwrap();
    assert_eq!(read_back(&store, &put.digest), data);
    let objs = objects(&bucket);
    let packs: Vec<_> = objs
        .iter()
        .filter_map(|(k, b)| parse_pack_key(k.strip_prefix("site/")?).map(|n| (n, b)))
        .collect();
    assert!(packs.len() >= 4, "5 MiB in 1 MiB packs: {}", packs.len());
    for (name, bytes) in &packs {
        assert_eq!(PackName::of(bytes), *name, "a pack's name is its BLAKE3");
    }
    let indexes: Vec<PackIndex> = objs
        .iter()
        .filter(|(k, _)| k.strip_prefix("site/").and_then(parse_index_key).is_some())
        .map(|(_, b)| PackIndex::decode(b).unwrap())
        .collect();
    assert_eq!(indexes.len(), packs.len(), "one index object per pack");
    assert_eq!(
        indexes.iter().map(|i| i.files.len()).sum::<usize>(),
        1,
        "the file record travels with the last pack"
    );
    // Nothing is left in the spool, and the local pack directory stays empty.
    assert_eq!(fs::read_dir(tmp.path().join("spool")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(tmp.path().join("packs")).unwrap().count(), 0);
    // Requests: one PUT per pack and per index object, whole-file reads in windows.
    let r = store.requests().unwrap();
    assert_eq!(r.put as usize, packs.len() * 2, "{r:?}");
    assert!(
        r.get as usize <= packs.len(),
        "a whole-file read takes one windowed GET per pack: {r:?}"
    );
    // A range read of one chunk is one ranged GET.
    let before = store.requests().unwrap().get;
    let mid = store.read_file_range(&put.digest, 3 << 20, 100).unwrap();
    assert_eq!(mid, &data[3 << 20..(3 << 20) + 100]);
    assert_eq!(store.requests().unwrap().get - before, 1);
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
    assert!(matches!(
        store.gc(&Default::default()),
        Err(StoreError::Unsupported(_))
    ));
}

#[test]
fn reindex_rebuilds_the_cache_from_the_bucket_alone() {
    let bucket = Arc::new(InMemory::new());
    let a = tempfile::tempdir().unwrap();
    let (d1, d2) = (random(3 << 20, 2), random(2 << 20, 3));
    let (p1, p2, stats) = {
        let store = open(a.path(), &bucket);
        let p1 = store.put_reader(&d1[..]).unwrap();
        // A second commit whose every chunk is known: a records-only index object.
        let mut w = store.writer().unwrap();
        let p2 = w.put_reader(&d2[..], &mut |_| {}).unwrap();
        let again = w.put_reader(&d1[..], &mut |_| {}).unwrap();
        assert_eq!(again.new_chunks, 0);
        w.commit().unwrap();
        (p1, p2, store.stats().unwrap())
    };
    let b = tempfile::tempdir().unwrap();
    let fresh = open(b.path(), &bucket);
    assert_eq!(
        fresh.stats().unwrap().chunks,
        0,
        "a new cache knows nothing"
    );
    let report = fresh.reindex().unwrap();
    assert!(report.orphan_packs.is_empty(), "{report:?}");
    assert!(report.refused_indexes.is_empty(), "{report:?}");
    assert_eq!(report.files, 2);
    let rebuilt = fresh.stats().unwrap();
    assert_eq!(rebuilt.chunks, stats.chunks);
    assert_eq!(rebuilt.files, stats.files);
    assert_eq!(rebuilt.pack_bytes, stats.pack_bytes);
    assert_eq!(read_back(&fresh, &p1.digest), d1);
    assert_eq!(read_back(&fresh, &p2.digest), d2);
    // Reindex twice gives the same index; the original cache can reindex as well.
    fresh.reindex().unwrap();
    assert_eq!(fresh.stats().unwrap().chunks, stats.chunks);
    drop(fresh);
    let original = open(a.path(), &bucket);
    original.reindex().unwrap();
    assert_eq!(read_back(&original, &p2.digest), d2);
    // A local store is its own truth: no reindex.
    let local = tempfile::tempdir().unwrap();
    let l = Store::open(local.path(), StoreOptions::default()).unwrap();
    assert!(matches!(l.reindex(), Err(StoreError::Unsupported(_))));
}

#[test]
fn two_writers_racing_on_one_bucket_lose_nothing() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = random(2 << 20, 4);
    let only_a = random(1 << 20, 5);
    let only_b = random(1 << 20, 6);
    let (sa, sb) = (open(a.path(), &bucket), open(b.path(), &bucket));
    let (pa, pb) = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            let mut w = sa.writer().unwrap();
            let x = w.put_reader(&shared[..], &mut |_| {}).unwrap();
            let y = w.put_reader(&only_a[..], &mut |_| {}).unwrap();
            w.commit().unwrap();
            (x, y)
        });
        let tb = s.spawn(|| {
            let mut w = sb.writer().unwrap();
            let x = w.put_reader(&shared[..], &mut |_| {}).unwrap();
            let y = w.put_reader(&only_b[..], &mut |_| {}).unwrap();
            w.commit().unwrap();
            (x, y)
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    // The same frames in the same order make the same pack bytes: whoever lost the
    // create-only race found the object there and used it.
    assert_eq!(read_back(&sa, &pa.1.digest), only_a);
    assert_eq!(read_back(&sb, &pb.1.digest), only_b);
    let c = tempfile::tempdir().unwrap();
    let sc = open(c.path(), &bucket);
    let report = sc.reindex().unwrap();
    assert!(report.incomplete_files.is_empty(), "{report:?}");
    for (digest, data) in [
        (pa.0.digest, &shared),
        (pa.1.digest, &only_a),
        (pb.1.digest, &only_b),
    ] {
        assert_eq!(&read_back(&sc, &digest), data);
    }
    assert!(sc.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn a_pack_without_its_index_object_is_never_referenced() {
    let bucket = Arc::new(InMemory::new());
    let a = tempfile::tempdir().unwrap();
    let store = open(a.path(), &bucket);
    let kept = random(1 << 20, 7);
    let p = store.put_reader(&kept[..]).unwrap();
    // What an upload cut between the pack and its index object leaves: a pack nothing
    // names (here, bytes of a pack that was never indexed), and a damaged index object.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stray = b"OUKPACK1\0\0\0\0\0\0\0\0 half an upload".to_vec();
    let stray_name = PackName::of(&stray);
    rt.block_on(async {
        bucket
            .put(
                &ObjectPath::from(format!("site/{}", stray_name.pack_key())),
                PutPayload::from(stray),
            )
            .await
            .unwrap();
        let junk = b"not an index".to_vec();
        bucket
            .put(
                &ObjectPath::from(format!("site/{}", PackName::of(&junk).index_key())),
                PutPayload::from(junk),
            )
            .await
            .unwrap();
    });
    let b = tempfile::tempdir().unwrap();
    let fresh = open(b.path(), &bucket);
    let report = fresh.reindex().unwrap();
    assert_eq!(report.orphan_packs, vec![stray_name.to_hex()]);
    assert_eq!(report.refused_indexes.len(), 1, "{report:?}");
    assert_eq!(report.files, 1);
    assert_eq!(read_back(&fresh, &p.digest), kept);
    // A writer dropped before commit uploaded nothing the index names, and its spool goes.
    let mut w = fresh.writer().unwrap();
    w.put_reader(&random(3 << 20, 8)[..], &mut |_| {}).unwrap();
    drop(w);
    assert_eq!(fs::read_dir(b.path().join("spool")).unwrap().count(), 0);
    assert_eq!(fresh.stats().unwrap().files, 1);
}

#[test]
fn a_store_keeps_its_backend() {
    let bucket = Arc::new(InMemory::new());
    let a = tempfile::tempdir().unwrap();
    drop(open(a.path(), &bucket));
    // An object-storage cache opened as a local store is refused, and the reverse.
    let err = Store::open(a.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::PacksElsewhere { .. }), "{err}");
    let local = tempfile::tempdir().unwrap();
    Store::open(local.path(), StoreOptions::default())
        .unwrap()
        .put_reader(&b"local bytes"[..])
        .unwrap();
    let err = Store::open_with(
        local.path(),
        StoreOptions {
            remote: Some(RemoteOptions::new(URL)),
            ..Default::default()
        },
        &in_memory(bucket.clone()),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::LocalPacks { .. }), "{err}");
}
