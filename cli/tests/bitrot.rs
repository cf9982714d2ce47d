//! Bit rot in the store (issue 6, suite 7).
//!
//! - Bytes flipped inside pack frames: `ouk store fsck` exits 2 and names exactly the
//!   damaged chunks, every file that needs one and, per generation, the paths affected.
//! - Chunk-location records damaged inside `index.redb` (found by their bytes and flipped):
//!   the same. Random bytes flipped anywhere in `index.redb`: fsck and a later import never
//!   panic, never die by a signal, and never activate wrong bytes.
//! - A later import that needs a damaged chunk (a delta patching against it, or rebuilding
//!   unchanged files from the store) refuses with 2, or succeeds with every file under
//!   `current/` matching its manifest; a full kit brings its own bytes and succeeds.
//!
//! Short form: a handful of chunks and 10 random index trials; `OUK_LONG_TESTS=1`: 50
//! chunks per round and 200 index trials.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::hostile::*;
use common::*;
use rand::{Rng, SeedableRng};

fn long() -> bool {
    std::env::var_os("OUK_LONG_TESTS").is_some()
}

fn trust() -> String {
    fixture("fixture.pub").display().to_string()
}

fn open(root: &Path) -> ouk_root::Root {
    ouk_root::Root::open(
        root,
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .unwrap()
}

/// What the store holds: every file (generation entries and the kept offline manifests)
/// with its chunks, and where each generation uses each file.
struct Inventory {
    /// File digest (hex) -> chunk ids (hex).
    files: BTreeMap<String, Vec<String>>,
    /// Generation -> file digest -> paths.
    uses: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Chunk id (hex) -> (pack, offset, frame length).
    chunks: BTreeMap<String, (u32, u64, u32, u32)>,
}

fn inventory(root: &Path) -> Inventory {
    let r = open(root);
    let mut inv = Inventory {
        files: BTreeMap::new(),
        uses: BTreeMap::new(),
        chunks: BTreeMap::new(),
    };
    for g in r.generations().unwrap() {
        let m = r.manifest(&g.id).unwrap();
        let uses = inv.uses.entry(g.id.to_hex()).or_default();
        for e in m.entries() {
            inv.files.insert(
                e.sha256.to_hex(),
                e.chunks.iter().map(|c| c.to_string()).collect(),
            );
            uses.entry(e.sha256.to_hex())
                .or_default()
                .push(e.path.clone());
        }
        if let Some(sha) = g.record.labels.get("manifestSha256") {
            let d: ouk_store::FileDigest = sha.parse().unwrap();
            let rec = r.store().file_record(&d).unwrap().unwrap();
            inv.files.insert(
                sha.clone(),
                rec.chunks.iter().map(|c| c.to_string()).collect(),
            );
        }
    }
    for ids in inv.files.values() {
        for id in ids {
            let cid: ouk_store::ChunkId = id.parse().unwrap();
            let loc = r.store().locate(&cid).unwrap().unwrap();
            inv.chunks.insert(
                id.clone(),
                (loc.pack, loc.offset, loc.frame_len, loc.raw_len),
            );
        }
    }
    inv
}

/// Flip one bit at a random place of each chunk's frame in its pack.
fn rot_frames(
    root: &Path,
    inv: &Inventory,
    victims: &[String],
    rng: &mut rand_chacha::ChaCha8Rng,
) -> BTreeSet<String> {
    // Alternately in the 52-byte frame header (every bit of it is checked: magic, lengths,
    // id, header check) and in the payload (a flip there is almost always caught by the
    // decompressor or the BLAKE3 check, but can be harmless: a zstd window-size bit, say).
    // Returns the chunks whose damage must be detected (the header flips).
    let mut sure = BTreeSet::new();
    for (i, id) in victims.iter().enumerate() {
        let (pack, offset, len, _) = inv.chunks[id];
        let path = root
            .join("store/packs")
            .join(ouk_store::pack::pack_file_name(pack));
        let mut bytes = fs::read(&path).unwrap();
        let within = if i % 2 == 0 || len <= 52 {
            sure.insert(id.clone());
            rng.random_range(0..52)
        } else {
            rng.random_range(52..len as usize)
        };
        bytes[offset as usize + within] ^= 1 << rng.random_range(0..8);
        fs::write(&path, bytes).unwrap();
    }
    sure
}

/// What fsck must report for `victims`: (chunk ids, file digests, gen -> paths).
fn expected(
    inv: &Inventory,
    victims: &BTreeSet<String>,
) -> (
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let files: BTreeSet<String> = inv
        .files
        .iter()
        .filter(|(_, ids)| ids.iter().any(|i| victims.contains(i)))
        .map(|(f, _)| f.clone())
        .collect();
    let mut gens = BTreeMap::new();
    for (g, uses) in &inv.uses {
        let paths: BTreeSet<String> = uses
            .iter()
            .filter(|(f, _)| files.contains(*f))
            .flat_map(|(_, p)| p.iter().cloned())
            .collect();
        if !paths.is_empty() {
            gens.insert(g.clone(), paths);
        }
    }
    (victims.clone(), files, gens)
}

/// Run fsck and compare its report with the expectation.
fn fsck_names(root: &Path, inv: &Inventory, victims: &BTreeSet<String>, sure: &BTreeSet<String>) {
    let (rc, doc) = run_json(root, &["--wait", "store", "fsck"]);
    assert_eq!(rc, 2, "fsck of a damaged store exits 2: {doc}");
    assert_eq!(doc["clean"], false);
    let got_chunks: BTreeSet<String> = doc["report"]["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        got_chunks.is_subset(victims),
        "only damaged chunks: {:?}",
        got_chunks.difference(victims).collect::<Vec<_>>()
    );
    assert!(
        sure.is_subset(&got_chunks),
        "every chunk with a damaged header: missed {:?}",
        sure.difference(&got_chunks).collect::<Vec<_>>()
    );
    // A payload flip fsck did not report must have been harmless: the chunk still reads
    // back as bytes that hash to its id.
    {
        let r = open(root);
        for id in victims.difference(&got_chunks) {
            let cid: ouk_store::ChunkId = id.parse().unwrap();
            let mut buf = Vec::new();
            r.store()
                .read_chunk(&cid, &mut buf)
                .unwrap_or_else(|e| panic!("chunk {id} is damaged but fsck said nothing: {e}"));
            eprintln!("harmless payload flip in chunk {id}: it still verifies");
        }
    }
    let (want_chunks, want_files, want_gens) = expected(inv, &got_chunks);
    assert_eq!(
        got_chunks, want_chunks,
        "every damaged chunk, and only those"
    );
    let got_files: BTreeSet<String> = doc["report"]["damagedFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got_files, want_files, "every file that needs one");
    let got_gens: BTreeMap<String, BTreeSet<String>> = doc["damagedGenerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["generation"].as_str().unwrap().to_string(),
                g["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got_gens, want_gens, "every generation and path affected");
    // People get the same in text.
    let text =
        String::from_utf8_lossy(&run(root, &["--wait", "store", "fsck"]).stdout).into_owned();
    for id in &got_chunks {
        assert!(text.contains(&format!("DAMAGED chunk {id}")), "{text}");
    }
    for g in want_gens.keys() {
        assert!(text.contains(&format!("DAMAGED generation {g}")), "{text}");
    }
}

/// A root with days 0 and 1 imported.
fn two_days(dir: &Path) -> std::path::PathBuf {
    let c = small_corpus();
    let root = dir.join("root");
    for k in [&c.k0, &c.k1] {
        let (rc, r) = import(&root, &k.bundle, &["--trust-key", &trust()]);
        assert_eq!(rc, 0, "{r}");
    }
    root
}

#[test]
fn fsck_names_every_damaged_chunk_file_and_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = two_days(tmp.path());
    let inv = inventory(&pristine);
    let all: Vec<String> = inv.chunks.keys().cloned().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let rounds = if long() { 20 } else { 3 };
    for round in 0..rounds {
        let root = tmp.path().join(format!("round{round}"));
        copy_tree(&pristine, &root);
        let n = if long() { 50 } else { 1 + round * 3 };
        let mut victims = BTreeSet::new();
        while victims.len() < n.min(all.len()) {
            victims.insert(all[rng.random_range(0..all.len())].clone());
        }
        let v: Vec<String> = victims.iter().cloned().collect();
        let sure = rot_frames(&root, &inv, &v, &mut rng);
        fsck_names(&root, &inv, &victims, &sure);
        ouk_root::remove_tree(&root).unwrap();
    }
}

#[test]
fn damaged_chunk_locations_in_the_index_are_named_by_fsck() {
    let tmp = tempfile::tempdir().unwrap();
    let root = two_days(tmp.path());
    let inv = inventory(&root);
    let index = root.join("store/index.redb");
    let mut bytes = fs::read(&index).unwrap();
    let mut victims = BTreeSet::new();
    for (id, &(pack, offset, len, raw)) in inv.chunks.iter().step_by(17).take(6) {
        // The record's 20 bytes as the store encodes them; flip the offset's low byte
        // wherever they occur (redb may keep an older copy of a page).
        let mut rec = Vec::new();
        rec.extend_from_slice(&pack.to_le_bytes());
        rec.extend_from_slice(&offset.to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&raw.to_le_bytes());
        let hits: Vec<usize> = bytes
            .windows(20)
            .enumerate()
            .filter(|(_, w)| *w == rec.as_slice())
            .map(|(i, _)| i)
            .collect();
        assert!(!hits.is_empty(), "chunk {id}'s location is in the index");
        for i in hits {
            bytes[i + 4] ^= 0x08;
        }
        victims.insert(id.clone());
    }
    fs::write(&index, bytes).unwrap();
    fsck_names(&root, &inv, &victims, &victims);
}

/// Random bytes of `index.redb` flipped: whatever fsck and a later import make of it, they
/// never panic, never die by a signal, and an import that succeeds activates exactly the
/// genuine generation, complete.
#[test]
fn random_index_damage_never_panics_or_activates_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small_corpus();
    let pristine = two_days(tmp.path());
    let trials = if long() { 200 } else { 10 };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let mut panics = Vec::new();
    let mut samples: BTreeMap<String, String> = BTreeMap::new();
    for trial in 0..trials {
        let root = tmp.path().join(format!("trial{trial}"));
        copy_tree(&pristine, &root);
        let index = root.join("store/index.redb");
        let mut bytes = fs::read(&index).unwrap();
        let flips = rng.random_range(1..=8);
        for _ in 0..flips {
            let i = rng.random_range(0..bytes.len());
            bytes[i] ^= 1 << rng.random_range(0..8);
        }
        fs::write(&index, bytes).unwrap();
        let fsck = run(&root, &["--json", "--wait", "store", "fsck"]);
        let fsck_rc = code(&fsck);
        samples
            .entry(format!("fsck {fsck_rc}"))
            .or_insert_with(|| String::from_utf8_lossy(&fsck.stderr).into_owned());
        if fsck_rc == 101 {
            panics.push(format!(
                "trial {trial}: fsck: {}",
                String::from_utf8_lossy(&fsck.stderr)
                    .lines()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        // The delta d12 needs day 1 from the store (its baseline).
        let out = run(
            &root,
            &[
                "--json",
                "--wait",
                "kit",
                "import",
                c.d12.bundle.to_str().unwrap(),
                "--trust-key",
                &trust(),
                "--free-margin",
                "0",
                "--max-kit-age",
                "0",
            ],
        );
        let rc = code(&out);
        samples
            .entry(format!("import {rc}"))
            .or_insert_with(|| String::from_utf8_lossy(&out.stderr).into_owned());
        if rc == 101 {
            panics.push(format!(
                "trial {trial}: import: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if rc == 0 {
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["generation"].as_str(), Some(c.k2.generation.as_str()));
            let cur = root.join("current");
            let genuine =
                c.k2.bundle
                    .parent()
                    .unwrap()
                    .join("manifest/offline-manifest.json");
            let m: serde_json::Value = serde_json::from_slice(&fs::read(genuine).unwrap()).unwrap();
            for a in m["artifacts"].as_array().unwrap() {
                let p = cur.join(a["name"].as_str().unwrap());
                assert_eq!(
                    sha256_file(&p),
                    a["sha256"].as_str().unwrap(),
                    "trial {trial}: wrong bytes activated at {}",
                    a["name"]
                );
            }
        }
        *tally
            .entry(format!("fsck {fsck_rc} / import {rc}"))
            .or_default() += 1;
        ouk_root::remove_tree(&root).unwrap();
    }
    eprintln!("random index damage ({trials} trials): {tally:?}");
    for (k, v) in &samples {
        eprintln!("first stderr of {k}: {}", v.trim());
    }
    assert!(
        panics.is_empty(),
        "{} panic(s):\n{}",
        panics.len(),
        panics.join("\n")
    );
}

#[test]
fn an_import_that_needs_a_damaged_chunk_never_materializes_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small_corpus();
    let pristine = tmp.path().join("pristine");
    let (rc, r) = import(&pristine, &c.k0.bundle, &["--trust-key", &trust()]);
    assert_eq!(rc, 0, "{r}");
    let inv = inventory(&pristine);
    // Day-1 delta on day 0 whose chunks are rotten: every chunk in turn for a few rounds
    // (short form), each round a different set.
    let all: Vec<String> = inv.chunks.keys().cloned().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let rounds = if long() { 40 } else { 4 };
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    for round in 0..rounds {
        let root = tmp.path().join(format!("round{round}"));
        copy_tree(&pristine, &root);
        let n = if round == 0 {
            all.len()
        } else {
            1 + rng.random_range(0..8)
        };
        let mut victims: Vec<String> = all.clone();
        if n < all.len() {
            victims = (0..n)
                .map(|_| all[rng.random_range(0..all.len())].clone())
                .collect();
        }
        victims.sort();
        victims.dedup();
        rot_frames(&root, &inv, &victims, &mut rng);
        // The delta: refused as store damage (2, whether the damage is hit rebuilding
        // unchanged files or reading a patch reference), or applied with correct bytes.
        let (rc, r) = import(&root, &c.d01.bundle, &["--trust-key", &trust()]);
        assert!(
            rc == 0 || rc == 2,
            "round {round}: delta on a rotten store: {r}"
        );
        if rc != 0 {
            let m = r["error"].as_str().unwrap();
            assert!(m.contains("damaged") || m.contains("reads back"), "{m}");
            assert_eq!(
                check_current_complete(&root).as_deref(),
                Some(c.k0.generation.as_str()),
                "refused: current unchanged"
            );
            assert_eq!(fs::read_dir(root.join("staging")).unwrap().count(), 0);
        } else {
            assert_eq!(
                check_current_complete(&root).as_deref(),
                Some(c.k1.generation.as_str())
            );
        }
        *tally.entry(format!("delta {rc}")).or_default() += 1;
        // The full kit brings every byte itself: it succeeds, and current is right.
        let (rc, r) = import(&root, &c.k1.bundle, &["--trust-key", &trust()]);
        assert_eq!(rc, 0, "round {round}: the full kit: {r}");
        assert_eq!(
            check_current_complete(&root).as_deref(),
            Some(c.k1.generation.as_str())
        );
        // The next day's delta then patches against day 1 in the store: again refused
        // with 2 or correct.
        let (rc, r) = import(&root, &c.d12.bundle, &["--trust-key", &trust()]);
        assert!(rc == 0 || rc == 2, "round {round}: d12: {r}");
        if rc != 0 {
            let m = r["error"].as_str().unwrap();
            assert!(m.contains("damaged") || m.contains("reads back"), "{m}");
        }
        let want = if rc == 0 {
            &c.k2.generation
        } else {
            &c.k1.generation
        };
        assert_eq!(
            check_current_complete(&root).as_deref(),
            Some(want.as_str())
        );
        *tally.entry(format!("next delta {rc}")).or_default() += 1;
        ouk_root::remove_tree(&root).unwrap();
    }
    eprintln!("imports over rotten chunks: {tally:?}");
}

/// The host's store is damaged, not the delta: the refusal must say so with exit 2 (as a
/// damaged chunk does everywhere else), not call the delta invalid (11).
#[test]
fn a_damaged_reference_chunk_is_reported_as_damage_not_as_an_invalid_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small_corpus();
    let root = tmp.path().join("root");
    let (rc, r) = import(&root, &c.k0.bundle, &["--trust-key", &trust()]);
    assert_eq!(rc, 0, "{r}");
    let inv = inventory(&root);
    let all: Vec<String> = inv.chunks.keys().cloned().collect();
    rot_frames(
        &root,
        &inv,
        &all,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
    );
    let (rc, r) = import(&root, &c.d01.bundle, &["--trust-key", &trust()]);
    assert_eq!(rc, 2, "a damaged store is exit 2: {r}");
    assert!(
        !r["error"].as_str().unwrap().contains("invalid delta"),
        "{r}"
    );
}
