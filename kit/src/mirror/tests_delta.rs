//! Delta storage in the mirror end to end: roll-ups with scattered edits on every chunk
//! stored as bounded chains, exported byte-identical, removed without breaking a chain,
//! and a damaged chain found.

use std::path::{Path, PathBuf};

use ouk_root::Root;
use sha2::{Digest, Sha256};

use super::*;
use crate::build::{KitMetadata, ManifestRef};
use crate::bundle::{EntrySource, EntrySpec, GzOptions, write_bundle};

/// Roll-up `week`: a feed of JSON rows where every 40th row (a different set each week)
/// changes, so every 64 KiB chunk of it changes, and a binary-like file with a few bytes
/// patched per week.
fn rollup(week: u32) -> Vec<u8> {
    let feed: Vec<u8> = (0..60_000u32)
        .flat_map(|i| {
            let rev = if (i + week * 7).is_multiple_of(40) {
                week
            } else {
                0
            };
            format!(
                "{{\"id\":\"CVE-2025-{i:05}\",\"rev\":{rev},\"score\":{},\"pkg\":\"lib{}\"}}\n",
                (i * 31 + rev) % 100,
                i % 977
            )
            .into_bytes()
        })
        .collect();
    let mut binary: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for k in 0..200u32 {
        let at = ((k * 7_919 + week * 104_729) as usize) % binary.len();
        binary[at] = binary[at].wrapping_add(week as u8);
    }
    let entries = vec![
        EntrySpec {
            path: "feeds/osv.jsonl".into(),
            mode: 0o644,
            source: EntrySource::Bytes(feed),
        },
        EntrySpec {
            path: "bin/scanner".into(),
            mode: 0o755,
            source: EntrySource::Bytes(binary),
        },
        EntrySpec {
            path: "VERSION".into(),
            mode: 0o644,
            source: EntrySource::Bytes(format!("week {week}\n").into_bytes()),
        },
    ];
    let (_, _, bytes) = write_bundle(Vec::new(), entries, GzOptions::default()).unwrap();
    bytes
}

/// Write `bytes` as bundle `name` in `dir` with a matching `.metadata.json`.
fn place(dir: &Path, name: &str, version: &str, bytes: &[u8]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    let meta = KitMetadata {
        name: name.into(),
        kind: "kit".into(),
        version: version.into(),
        channel: "edge".into(),
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
        manifest: ManifestRef {
            name: MANIFEST_PATH.into(),
            sha256: "0".repeat(64),
            size: 0,
        },
        created_at: "2025-10-01T00:00:00Z".into(),
        generation_id: "0".repeat(64),
        signed: false,
        kid: None,
        secrets: None,
    };
    fs::write(
        dir.join(format!("{name}.metadata.json")),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    path
}

struct Mirror {
    tmp: tempfile::TempDir,
    root: Root,
    weeks: Vec<Vec<u8>>,
}

/// A mirror holding `n` roll-ups added with `policy` (versions "1".., names sorting in
/// add order, so the previous roll-up is the newest even within one second).
fn mirror_of(n: u32, policy: &AddPolicy) -> (Mirror, Vec<AddReport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::testutil::root_at(&tmp.path().join("root"));
    let mut weeks = Vec::new();
    let mut reports = Vec::new();
    for w in 1..=n {
        let bytes = rollup(w);
        let p = place(
            &tmp.path().join(format!("in{w}")),
            &format!("w{w}.tar.gz"),
            &w.to_string(),
            &bytes,
        );
        reports.push(add_with(&root, &p, 2, true, policy).unwrap());
        weeks.push(bytes);
    }
    (Mirror { tmp, root, weeks }, reports)
}

fn export_is_identical(m: &Mirror, week: u32) {
    let out = m.tmp.path().join(format!("out-{week}-{}", rand_suffix()));
    let sel = Selector {
        what: week.to_string(),
        ..Default::default()
    };
    let r = export(&m.root, &sel, &out, 2).unwrap();
    assert_eq!(
        fs::read(&r.path).unwrap(),
        m.weeks[week as usize - 1],
        "week {week}"
    );
    fs::remove_dir_all(&out).unwrap();
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn depths(root: &Root) -> Vec<(String, &'static str, u32)> {
    stats(root)
        .unwrap()
        .per_bundle
        .into_iter()
        .map(|b| (b.version, b.stored_as, b.chain_depth))
        .collect()
}

#[test]
fn rollups_become_bounded_delta_chains_and_export_identically() {
    let (m, reports) = mirror_of(4, &AddPolicy { max_chain_depth: 2 });
    let how: Vec<_> = reports.iter().map(|r| r.bundle.stored_as).collect();
    assert_eq!(how, ["tar", "delta", "delta", "tar"], "{reports:?}");
    assert_eq!(
        depths(&m.root),
        [
            ("1".into(), "tar", 0),
            ("2".into(), "delta", 1),
            ("3".into(), "delta", 2),
            ("4".into(), "tar", 0)
        ]
    );
    // Every chunk of the feed changed each week, yet a delta costs a fraction of the
    // chunks a snapshot takes.
    let s = stats(&m.root).unwrap();
    assert_eq!((s.stored_as_delta, s.max_chain_depth), (2, 2));
    let cost: Vec<u64> = s.per_bundle.iter().map(|b| b.cost_bytes).collect();
    // (Measured at zstd level 3: [247129, 16327, 25242, 248885].)
    assert!(cost[1] * 5 < cost[0], "{cost:?}");
    assert!(cost[2] * 5 < cost[0], "{cost:?}");
    assert!(reports[1].new_stored_bytes * 5 < reports[0].new_stored_bytes);
    assert_eq!(s.per_bundle[1].delta_base.as_deref(), Some("w1.tar.gz"));
    for w in 1..=4 {
        export_is_identical(&m, w);
    }
    assert_eq!(verify_chains(&m.root).unwrap().1.len(), 0);
    // Adding one again changes nothing.
    let p = m.tmp.path().join("in3/w3.tar.gz");
    let again = add(&m.root, &p, 2, true).unwrap();
    assert_eq!(again.outcome, "already-mirrored");
    // With depth 0 the policy never stores a delta (the mirror as before).
    let (plain, reports) = mirror_of(2, &AddPolicy { max_chain_depth: 0 });
    assert!(reports.iter().all(|r| r.bundle.stored_as == "tar"));
    export_is_identical(&plain, 2);
}

#[test]
fn removing_a_base_rebases_its_dependants_first() {
    let (m, _) = mirror_of(3, &AddPolicy { max_chain_depth: 4 });
    assert_eq!(
        depths(&m.root).iter().map(|d| d.2).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // The middle of the chain: week 3 becomes a delta against week 1.
    let sel = |w: &str| Selector {
        what: w.into(),
        ..Default::default()
    };
    let r = remove(&m.root, &sel("2")).unwrap();
    assert_eq!(r.rebased, [("w3.tar.gz".to_string(), "delta")]);
    assert_eq!(
        depths(&m.root),
        [("1".into(), "tar", 0), ("3".into(), "delta", 1)]
    );
    export_is_identical(&m, 3);
    // The snapshot: week 3 becomes chunks.
    let r = remove(&m.root, &sel("1")).unwrap();
    assert_eq!(r.rebased, [("w3.tar.gz".to_string(), "tar")]);
    assert_eq!(depths(&m.root), [("3".into(), "tar", 0)]);
    export_is_identical(&m, 3);
    // Gc keeps what the remaining record needs and it still exports.
    let live = std::collections::HashSet::new();
    m.root.store().gc(&live).unwrap();
    export_is_identical(&m, 3);
    assert!(export(&m.root, &sel("1"), &m.tmp.path().join("gone"), 2).is_err());
}

#[test]
fn a_damaged_chain_is_found_and_never_exported() {
    let (m, _) = mirror_of(3, &AddPolicy::default());
    let records = list(&m.root).unwrap();
    let (
        StoredContent::Delta {
            patch: p2,
            patch_size: s2,
            ..
        },
        StoredContent::Delta { .. },
    ) = (&records[1].content, &records[2].content)
    else {
        panic!("weeks 2 and 3 are deltas: {records:?}");
    };
    // Week 3's record names week 2's delta: every chunk reads fine, the stream it
    // rebuilds is wrong.
    let mut bad = records[2].clone();
    if let StoredContent::Delta {
        patch, patch_size, ..
    } = &mut bad.content
    {
        *patch = *p2;
        *patch_size = *s2;
    }
    let txn = m.root.store().database().begin_write().unwrap();
    {
        let mut table = txn.open_table(catalog::BUNDLES).unwrap();
        table
            .insert(bad.sha256.as_bytes(), bad.encode().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
    let (checked, failures) = verify_chains(&m.root).unwrap();
    assert_eq!(checked, 2);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].name, "w3.tar.gz");
    let out = m.tmp.path().join("out-bad");
    let sel = Selector {
        what: "3".into(),
        ..Default::default()
    };
    assert!(export(&m.root, &sel, &out, 2).is_err());
    let left: Vec<_> = fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // The rest of the chain is intact.
    export_is_identical(&m, 2);
}

#[test]
fn an_export_at_depth_n_decodes_each_window_once_and_spools_no_stream_per_step() {
    let (m, _) = mirror_of(4, &AddPolicy { max_chain_depth: 3 });
    assert_eq!(depths(&m.root)[3].2, 3, "week 4 sits at depth 3");
    streamdelta::probe::take();
    export_is_identical(&m, 4);
    let (decodes, scratch_files) = streamdelta::probe::take();
    // One window per step (the streams are smaller than a window), each decoded once;
    // no scratch file at all (the snapshot is read from the store into memory), however
    // deep the chain.
    assert_eq!(decodes, 3);
    assert_eq!(
        scratch_files, 0,
        "{scratch_files} scratch files for 3 steps"
    );
}

#[test]
fn an_add_compresses_the_bundle_once_when_the_store_gives_back_its_proven_tar() {
    streamdelta::probe::take_recompressions();
    // Week 1 stored as its tar, week 2 as a delta rebuilding its tar.
    let (m, reports) = mirror_of(2, &AddPolicy::default());
    let how: Vec<_> = reports.iter().map(|r| r.bundle.stored_as).collect();
    assert_eq!(how, ["tar", "delta"]);
    // One whole re-compression per add (the recipe search), none to check the stored form.
    assert_eq!(streamdelta::probe::take_recompressions(), 2);
    export_is_identical(&m, 1);
    export_is_identical(&m, 2);
}
