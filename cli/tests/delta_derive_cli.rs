//! Ship information, derive the rest (issue 23): `delta make` lets the host derive the
//! feed index (format `ouk-delta/5`) and keeps the feed changes beside the bundle instead
//! of in it; the host derives both, ends on the target kit's generation, and refuses a
//! delta whose declared digest for a derived file is forged, leaving its generation as it
//! was.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::hostile::{Kit, gzip, import, make_delta, make_delta_with, sign};
use common::*;

const INDEX: &str = "metadata/feeds-index.jsonl";

struct Pair {
    dir: PathBuf,
    k0: PathBuf,
    k1: PathBuf,
}

fn pair(name: &str) -> Pair {
    let dir = std::env::temp_dir().join(format!("ouk-derive-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let k0 = build_signed_kit(&small_tree(&dir, 0), "2025.10.0", &dir.join("kits"));
    let k1 = build_signed_kit(&small_tree(&dir, 1), "2025.10.1", &dir.join("kits"));
    Pair { dir, k0, k1 }
}

fn header(delta: &Path) -> serde_json::Value {
    let d = Kit::load(delta);
    serde_json::from_slice(d.data(d.member("delta/delta.json").unwrap())).unwrap()
}

fn host_on(p: &Pair, name: &str) -> PathBuf {
    let root = trusted_root(&p.dir, name);
    let (rc, r) = import(&root, &p.k0, &[]);
    assert_eq!(rc, 0, "{r}");
    root
}

fn current(root: &Path) -> String {
    check_current_complete(root).expect("a current generation")
}

#[test]
fn the_feed_index_is_derived_on_the_host_and_the_delta_is_smaller() {
    let p = pair("ok");
    let derived = make_delta(
        &p.k0,
        &p.k1,
        &p.dir.join("d/stella-ouk-2025-10-01.delta.tgz"),
    );
    let shipped = make_delta_with(
        &p.k0,
        &p.k1,
        &p.dir.join("s/stella-ouk-2025-10-01.delta.tgz"),
        &["--no-derive"],
    );
    let h = header(&derived);
    // Signed kits carry a DSSE envelope, which travels in its plain form: ouk-delta/6,
    // which holds derived files too.
    assert_eq!(h["format"], "ouk-delta/6", "{h}");
    let index = h["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == INDEX)
        .unwrap_or_else(|| panic!("the index changes from day 0 to day 1: {h}"));
    assert_eq!(index["source"]["kind"], "derived", "{index}");
    assert_eq!(index["source"]["by"], "feeds-index", "{index}");
    assert!(index["sha256"].is_string(), "{index}");
    for newer in ["ouk-delta/5", "ouk-delta/6"] {
        assert_ne!(header(&shipped)["format"], newer);
    }
    let d = Kit::load(&derived);
    assert!(
        d.member("delta/feeds-changes.jsonl").is_none(),
        "the feed changes are derived on the host, not shipped"
    );
    let (ds, ss) = (
        fs::metadata(&derived).unwrap().len(),
        fs::metadata(&shipped).unwrap().len(),
    );
    assert!(ds < ss, "derived {ds} B, shipped {ss} B");

    // The host ends on the target kit's generation, with the target's index.
    let root = host_on(&p, "host");
    let (rc, r) = import(&root, &derived, &[]);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["generation"], Kit::load(&p.k1).generation.as_str(), "{r}");
    assert_eq!(current(&root), r["generation"].as_str().unwrap());
    let k1 = Kit::load(&p.k1);
    let want = k1.data(k1.member(INDEX).unwrap());
    assert_eq!(fs::read(root.join("current").join(INDEX)).unwrap(), want);

    // delta show on the connected site still lists the rows (kept beside the bundle).
    let (rc, show) = run_json(&p.dir, &["delta", "show", derived.to_str().unwrap()]);
    assert_eq!(rc, 0, "{show}");
    assert_eq!(show["feeds"]["recorded"], true, "{show}");
    let _ = fs::remove_dir_all(&p.dir);
}

#[test]
fn a_forged_derived_digest_is_refused_and_the_generation_stays() {
    let p = pair("forged");
    let delta = make_delta(
        &p.k0,
        &p.k1,
        &p.dir.join("d/stella-ouk-2025-10-01.delta.tgz"),
    );
    let d = Kit::load(&delta);
    let i = d
        .members
        .iter()
        .position(|m| m.name == "delta/delta.json")
        .unwrap();
    let mut h = header(&delta);
    let files = h["files"].as_array_mut().unwrap();
    let index = files.iter_mut().find(|f| f["path"] == INDEX).unwrap();
    index["sha256"] = serde_json::json!(common::hostile::sha256_hex(b"not the index"));
    let mut bytes = serde_json::to_vec(&h).unwrap();
    bytes.push(b'\n');
    let gz = gzip(&Kit::assemble(&d.with_data(i, &bytes)));
    let forged = p.dir.join("forged/stella-ouk-2025-10-01.delta.tgz");
    fs::create_dir_all(forged.parent().unwrap()).unwrap();
    fs::write(&forged, &gz).unwrap();
    // Re-signed with the trusted key: a valid signature does not make a wrong digest right.
    fs::write(format!("{}.sig", forged.display()), sign(&gz)).unwrap();

    let root = host_on(&p, "host");
    let before = current(&root);
    let (rc, r) = import(&root, &forged, &[]);
    assert!(rc == 2 || rc == 11, "exit {rc}: {r}");
    assert_eq!(current(&root), before, "the generation is unchanged");
    // The genuine delta still applies on the same host.
    let (rc, r) = import(&root, &delta, &[]);
    assert_eq!(rc, 0, "{r}");
    let _ = fs::remove_dir_all(&p.dir);
}
