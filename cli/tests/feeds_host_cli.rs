//! The host side of feed-aware kits (issue 10), end to end: `ROOT/changes/<gen>.jsonl`
//! written by an import (the same whether a delta or the full kit brought the generation),
//! `ouk delta show` and `ouk gen diff` row counts, and `ouk feeds history` chains across
//! three generations, through a no-op re-import, a rollback and a re-import after it, and
//! identical on two fresh roots.
//!
//! Each kit is a small synthetic release tree (whose osv, ghsa and nvd feeds churn day to
//! day; kit build indexes them) plus one hand-made feed, `feeds/test/rows.jsonl`, whose changes are known:
//! day 0 {A1, B, C}, day 1 {A2, C, D} (A modified, B withdrawn, D added), day 2 {A3, C, D, E}.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::hostile::*;
use common::*;
use ouk_kit::feeds::{FEED_INDEX_PATH, FeedIndexReader, IndexItem};
use serde_json::Value;

const TEST_FEED: &str = "feeds/test/rows.jsonl";

fn trust() -> String {
    fixture("fixture.pub").display().to_string()
}

fn test_rows(day: u32) -> Vec<String> {
    let row = |id: &str, summary: &str| {
        format!(
            r#"{{"id":"{id}","modified":"2025-10-0{}T00:00:00Z","summary":"{summary}"}}"#,
            day + 1
        )
    };
    match day {
        0 => vec![row("TEST-A", "a1"), row("TEST-B", "b"), row("TEST-C", "c")],
        1 => vec![row("TEST-A", "a2"), row("TEST-C", "c"), row("TEST-D", "d")],
        _ => vec![
            row("TEST-A", "a3"),
            row("TEST-C", "c"),
            row("TEST-D", "d"),
            row("TEST-E", "e"),
        ],
    }
    .into_iter()
    // `modified` of the unchanged rows must not move either: C and D keep day 0's / 1's.
    .map(|r| {
        if r.contains("TEST-C") {
            r.replace(&format!("2025-10-0{}", day + 1), "2025-10-01")
        } else if r.contains("TEST-D") {
            r.replace(&format!("2025-10-0{}", day + 1), "2025-10-02")
        } else {
            r
        }
    })
    .collect()
}

struct Kits {
    _dir: PathBuf,
    kits: Vec<PathBuf>,
    d01: PathBuf,
}

fn kits() -> &'static Kits {
    static K: std::sync::OnceLock<Kits> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let dir = scratch("feeds-host");
        let mut kits = Vec::new();
        for day in 0..3u32 {
            let release = small_tree(&dir, day);
            let rows = test_rows(day);
            let feed = release.join(TEST_FEED);
            fs::create_dir_all(feed.parent().unwrap()).unwrap();
            fs::write(&feed, rows.join("\n") + "\n").unwrap();
            kits.push(build_kit(
                &release,
                &dir.join("dist"),
                &format!("2025.10.{day}"),
                true,
            ));
        }
        let d01 = make_delta(
            &kits[0],
            &kits[1],
            &dir.join("d01/stella-ouk-2025-10-02.delta.tgz"),
        );
        Kits {
            _dir: dir,
            kits,
            d01,
        }
    })
}

fn import_ok(root: &Path, bundle: &Path) -> Value {
    let (rc, r) = import(root, bundle, &["--trust-key", &trust()]);
    assert_eq!(rc, 0, "import {}: {r}", bundle.display());
    r
}

fn gen_of(r: &Value) -> String {
    r["generation"].as_str().unwrap().to_string()
}

fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

type Key = (String, String, Option<String>);

/// An index as key -> set of hashes (the diff's definition, naively).
fn index_sets(path: &Path) -> BTreeMap<Key, BTreeSet<String>> {
    let mut r =
        FeedIndexReader::new(std::io::BufReader::new(fs::File::open(path).unwrap())).unwrap();
    let mut out: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    let mut source = String::new();
    while let Some(item) = r.next_item().unwrap() {
        match item {
            IndexItem::Feed(h) => source = h.source,
            IndexItem::Row(row) => {
                out.entry((source.clone(), row.id, row.tenant))
                    .or_default()
                    .insert(row.hash.to_hex());
            }
        }
    }
    out
}

/// The changes file's rows as (key, kind, hash, previous), and what the naive diff of the
/// two generations' indexes says they should be.
fn check_against_naive(changes: &[Value], old: Option<&Path>, new: &Path) {
    let a = old.map(index_sets).unwrap_or_default();
    let b = index_sets(new);
    let keys: BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    let want: Vec<(Key, &str, Option<String>, Option<String>)> = keys
        .into_iter()
        .filter_map(|k| {
            let first = |s: Option<&BTreeSet<String>>| s.and_then(|s| s.iter().next().cloned());
            let kind = match (a.get(k), b.get(k)) {
                (None, Some(_)) => "added",
                (Some(_), None) => "withdrawn",
                (Some(x), Some(y)) if x != y => "modified",
                _ => return None,
            };
            Some((k.clone(), kind, first(b.get(k)), first(a.get(k))))
        })
        .collect();
    let got: Vec<(Key, &str, Option<String>, Option<String>)> = changes
        .iter()
        .map(|c| {
            (
                (
                    c["source"].as_str().unwrap().to_string(),
                    c["id"].as_str().unwrap().to_string(),
                    c["tenant"].as_str().map(str::to_string),
                ),
                c["change"].as_str().unwrap(),
                c["hash"].as_str().map(str::to_string),
                c["previous"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "row count");
    assert_eq!(got, want);
}

fn gen_index(root: &Path, generation: &str) -> PathBuf {
    root.join("generations")
        .join(generation)
        .join(FEED_INDEX_PATH)
}

fn test_changes(changes: &[Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .filter(|c| c["source"] == "test")
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_delta_and_the_full_kit_write_the_same_changes_file_and_show_and_diff_count_it() {
    let k = kits();
    let tmp = tempfile::tempdir().unwrap();
    let (via_delta, via_kit) = (tmp.path().join("a"), tmp.path().join("b"));

    // First import: no baseline, every row added.
    let g0 = gen_of(&import_ok(&via_delta, &k.kits[0]));
    let first = lines(&via_delta.join("changes").join(format!("{g0}.jsonl")));
    assert_eq!(first[0]["format"], "ouk-feeds-changes/1");
    assert_eq!(first[0]["generation"], g0.as_str());
    assert!(first[0]["baseline"].is_null());
    assert!(first[1..].iter().all(|c| c["change"] == "added"));
    check_against_naive(&first[1..], None, &gen_index(&via_delta, &g0));
    assert_eq!(
        test_changes(&first[1..]),
        [
            ("TEST-A", "added"),
            ("TEST-B", "added"),
            ("TEST-C", "added")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // Day 1 by delta on one root, by the full kit on another.
    let r = import_ok(&via_delta, &k.d01);
    let g1 = gen_of(&r);
    assert_eq!(r["feeds"]["counts"]["test"]["added"], 1, "{r}");
    import_ok(&via_kit, &k.kits[0]);
    assert_eq!(gen_of(&import_ok(&via_kit, &k.kits[1])), g1);
    let name = format!("changes/{g1}.jsonl");
    let by_delta = fs::read(via_delta.join(&name)).unwrap();
    assert_eq!(
        by_delta,
        fs::read(via_kit.join(&name)).unwrap(),
        "the same bytes either way"
    );
    let changes = lines(&via_delta.join(&name));
    assert_eq!(changes[0]["baseline"], g0.as_str());
    check_against_naive(
        &changes[1..],
        Some(&gen_index(&via_delta, &g0)),
        &gen_index(&via_delta, &g1),
    );
    assert_eq!(
        test_changes(&changes[1..]),
        [
            ("TEST-A", "modified"),
            ("TEST-B", "withdrawn"),
            ("TEST-D", "added")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let a = changes.iter().find(|c| c["id"] == "TEST-A").unwrap();
    assert!(a["hash"].is_string() && a["previous"].is_string() && a["hash"] != a["previous"]);

    // delta show (no root needed): the rows `delta make` recorded, the same as the host's.
    let (rc, show) = run_json(tmp.path(), &["delta", "show", k.d01.to_str().unwrap()]);
    assert_eq!(rc, 0, "{show}");
    assert_eq!(show["feeds"]["recorded"], true);
    assert_eq!(
        show["feeds"]["sources"]["test"],
        serde_json::json!({"added": 1, "modified": 1, "withdrawn": 1})
    );
    assert_eq!(
        show["feeds"]["rows"].as_array().unwrap(),
        &changes[1..].to_vec()
    );
    let text = run(tmp.path(), &["delta", "show", k.d01.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("feed test: 1 added, 1 modified, 1 withdrawn"),
        "{text}"
    );
    assert!(text.contains("  - TEST-B"), "{text}");

    // gen diff: the same counts, and the feed file among the changed files.
    let (rc, diff) = run_json(&via_delta, &["gen", "diff", &g0[..12], &g1[..12]]);
    assert_eq!(rc, 0, "{diff}");
    assert_eq!(diff["feeds"]["sources"], show["feeds"]["sources"]);
    assert_eq!(diff["feeds"]["rows"], show["feeds"]["rows"]);
    assert!(
        diff["files"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == TEST_FEED),
        "{diff}"
    );

    // Importing the active generation again writes nothing.
    let before = fs::metadata(via_delta.join(&name))
        .unwrap()
        .modified()
        .unwrap();
    let r = import_ok(&via_delta, &k.d01);
    assert_eq!(r["outcome"], "already-active");
    assert!(r.get("feeds").is_none(), "{r}");
    assert_eq!(
        fs::metadata(via_delta.join(&name))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    let names: BTreeSet<String> = fs::read_dir(via_delta.join("changes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([format!("{g0}.jsonl"), format!("{g1}.jsonl")])
    );
}

fn history(root: &Path, id: &str) -> (i32, Value) {
    run_json(root, &["--wait", "feeds", "history", id])
}

#[test]
fn history_chains_survive_reimport_and_rollback_and_are_the_same_on_two_roots() {
    let k = kits();
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let gens: Vec<String> = k.kits.iter().map(|b| gen_of(&import_ok(&one, b))).collect();

    let (rc, a) = history(&one, "TEST-A");
    assert_eq!(rc, 0, "{a}");
    let chain = &a["chains"][0];
    assert_eq!(chain["source"], "test");
    let entries = chain["entries"].as_array().unwrap();
    let got: Vec<(u64, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["generation"].as_str().unwrap(),
                e["version"].as_str().unwrap(),
                e["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, gens[0].as_str(), "2025.10.0", "added"),
            (2, gens[1].as_str(), "2025.10.1", "modified"),
            (3, gens[2].as_str(), "2025.10.2", "modified"),
        ]
    );
    // Each hash is the row's hash in that generation's index.
    for (e, g) in entries.iter().zip(&gens) {
        let sets = index_sets(&gen_index(&one, g));
        let want = &sets[&("test".to_string(), "TEST-A".to_string(), None)];
        assert_eq!(want.iter().next().map(String::as_str), e["hash"].as_str());
    }
    let (_, b) = history(&one, "TEST-B");
    let kinds: Vec<&str> = b["chains"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["added", "withdrawn"]);
    let (rc, _) = history(&one, "TEST-C-NOT-THERE");
    assert_eq!(rc, 1);
    let text = run(&one, &["feeds", "history", "TEST-A", "--source", "test"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("test TEST-A\n"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");

    // A no-op re-import, a rollback, and a re-import after it append nothing; the changes
    // files stay (they belong to their generations).
    let g2_changes = fs::read(one.join(format!("changes/{}.jsonl", gens[2]))).unwrap();
    assert_eq!(import_ok(&one, &k.kits[2])["outcome"], "already-active");
    let (rc, r) = run_json(&one, &["--wait", "gen", "rollback"]);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(history(&one, "TEST-A").1, a);
    for g in &gens {
        assert!(one.join(format!("changes/{g}.jsonl")).is_file());
    }
    // (The state a crash between writing the changes file and the flip leaves: the
    // generation complete, its changes and history recorded, `current` on the one before.)
    assert_eq!(import_ok(&one, &k.kits[2])["outcome"], "activated");
    assert_eq!(history(&one, "TEST-A").1, a);
    assert_eq!(
        fs::read(one.join(format!("changes/{}.jsonl", gens[2]))).unwrap(),
        g2_changes,
        "rewritten identically"
    );

    // A fresh root, the same kits in the same order: the same chains, for the hand-made
    // feed and for a synthetic feed row modified on day 1.
    for b in &k.kits {
        import_ok(&two, b);
    }
    assert_eq!(history(&two, "TEST-A").1, a);
    let day1 = lines(&one.join(format!("changes/{}.jsonl", gens[1])));
    let synthetic = day1[1..]
        .iter()
        .find(|c| c["source"] != "test" && c["change"] == "modified")
        .expect("the synthetic feeds revise rows every day");
    let id = synthetic["id"].as_str().unwrap();
    let (rc, h1) = history(&one, id);
    assert_eq!(rc, 0, "{h1}");
    assert_eq!(h1["chains"][0]["entries"][1]["change"], "modified", "{h1}");
    assert_eq!(history(&two, id).1, h1);

    // gc drops the changes files of the generations it removes, not the history.
    let (rc, r) = run_json(&two, &["--wait", "gen", "gc", "--keep", "1"]);
    assert_eq!(rc, 0, "{r}");
    let names: Vec<String> = fs::read_dir(two.join("changes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{}.jsonl", gens[2])]);
    assert_eq!(history(&two, "TEST-A").1, a);
}
