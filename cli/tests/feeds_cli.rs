//! End-to-end: feed-aware kits. `ouk kit build` indexes feeds/<source>/ into
//! metadata/feeds-index.jsonl (reproducibly), refuses bad rows and conflicting feeds unless
//! told otherwise, and `ouk feeds audit` finds conflicts in a host generation or a kit
//! directory (exit 11) and none in a clean one (exit 0).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const BUNDLE: &str = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";
const INDEX: &str = "metadata/feeds-index.jsonl";

/// An unsigned build of `release` into `out` with a fixed time and extra arguments.
fn build(release: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--created-at", "2025-10-23T00:00:00Z"];
    args.extend_from_slice(extra);
    build_unsigned(release, out, &args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh copy of the small tree plus feeds of every shape: a reordered JSON array, a
/// gzip and a zstd feed.
fn tree(tmp: &Path) -> PathBuf {
    let release = tmp.join("release");
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7), &release).expect("generate tree");
    let jvn = release.join("feeds/jvn");
    fs::create_dir_all(&jvn).unwrap();
    fs::write(
        jvn.join("jvndb.json"),
        "[\n  {\"modified\": \"2025-10-01T00:00:00Z\", \"id\": \"JVNDB-2025-0001\", \"title\": \"a\"},\n  {\"id\": \"JVNDB-2025-0002\", \"tenant\": \"acme\"}\n]\n",
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(jvn.join("extra.jsonl.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(b"{\"id\":\"JVNDB-2025-0003\"}\n").unwrap();
    gz.finish().unwrap();
    let bdu = release.join("feeds/bdu");
    fs::create_dir_all(&bdu).unwrap();
    fs::write(
        bdu.join("bdu.ndjson.zst"),
        zstd::encode_all(
            &b"{\"id\":\"BDU:2025-00001\"}\n{\"id\":\"BDU:2025-00002\"}\n"[..],
            3,
        )
        .unwrap(),
    )
    .unwrap();
    release
}

fn tar_list(bundle: &Path) -> String {
    let o = Command::new("tar")
        .arg("-tzf")
        .arg(bundle)
        .output()
        .unwrap();
    assert!(o.status.success());
    text(&o.stdout)
}

fn tar_cat(bundle: &Path, member: &str) -> Vec<u8> {
    let o = Command::new("tar")
        .arg("-xzOf")
        .arg(bundle)
        .arg(member)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    o.stdout
}

fn import(root: &Path, bundle: &Path) {
    let (rc, r) = run_json(
        root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--allow-unsigned",
            "--max-kit-age",
            "0",
            "--force-activate",
            "--force-reason",
            "test",
        ],
    );
    assert_eq!(rc, 0, "{r}");
}

#[test]
fn kit_build_indexes_feeds_into_the_bundle_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let a = tmp.path().join("a");
    let o = build(&release, &a, &["--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let feeds = report["feeds"].as_array().unwrap();
    let names: Vec<&str> = feeds.iter().map(|f| f["feed"].as_str().unwrap()).collect();
    for f in [
        "feeds/bdu/bdu.ndjson.zst",
        "feeds/jvn/extra.jsonl.gz",
        "feeds/jvn/jvndb.json",
        "feeds/osv/osv-all.jsonl",
        "feeds/ghsa/ghsa-all.jsonl",
        "feeds/nvd/nvd-2.0.jsonl",
    ] {
        assert!(names.contains(&f), "{f} not in {names:?}");
    }
    let jvn = feeds
        .iter()
        .find(|f| f["feed"] == "feeds/jvn/jvndb.json")
        .unwrap();
    assert_eq!(
        (jvn["rows"].as_u64(), jvn["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(report["feedAudit"]["conflicts"], 0);

    let bundle = a.join(BUNDLE);
    assert!(tar_list(&bundle).lines().any(|l| l == INDEX));
    let index = tar_cat(&bundle, INDEX);
    let index_text = text(&index);
    assert!(index_text.starts_with("{\"format\":\"ouk-feeds-index/1\"}\n"));
    assert!(index_text.contains(
        "{\"feed\":\"feeds/jvn/jvndb.json\",\"source\":\"jvn\",\"rows\":2,\"skipped\":0}\n"
    ));
    assert!(index_text.contains("\"tenant\":\"acme\""));
    // The manifest lists it like any artifact.
    let manifest = fs::read_to_string(a.join("manifest/offline-manifest.json")).unwrap();
    assert!(manifest.contains(INDEX));

    // Same feeds, rows reformatted and reordered: byte-identical bundle.
    fs::write(
        release.join("feeds/jvn/jvndb.json"),
        "[{\"tenant\":\"acme\",\"id\":\"JVNDB-2025-0002\"},{\"title\":\"a\",\"id\":\"JVNDB-2025-0001\",\"modified\":\"2025-10-01T00:00:00Z\"}]",
    )
    .unwrap();
    let b = tmp.path().join("b");
    let o = build(&release, &b, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        tar_cat(&b.join(BUNDLE), INDEX),
        index,
        "same rows, same index"
    );
    let c = tmp.path().join("c");
    let o = build(&release, &c, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        fs::read(b.join(BUNDLE)).unwrap(),
        fs::read(c.join(BUNDLE)).unwrap(),
        "two builds, identical bytes"
    );
    // No temporary files are left in the output directory.
    let left: Vec<_> = fs::read_dir(&c)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A release tree may not carry its own index.
    fs::create_dir_all(release.join("metadata")).unwrap();
    fs::write(release.join(INDEX), "{\"format\":\"ouk-feeds-index/1\"}\n").unwrap();
    let o = build(&release, &tmp.path().join("d"), &[]);
    assert_eq!(code(&o), 11, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(INDEX));
}

#[test]
fn a_kit_without_feeds_carries_the_format_line() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    fs::remove_dir_all(release.join("feeds")).unwrap();
    let out = tmp.path().join("out");
    let o = build(&release, &out, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        tar_cat(&out.join(BUNDLE), INDEX),
        b"{\"format\":\"ouk-feeds-index/1\"}\n"
    );
}

#[test]
fn bad_rows_fail_the_build_with_file_and_line_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    fs::write(
        release.join("feeds/jvn/more.jsonl"),
        "{\"id\":\"JVNDB-2025-0100\"}\n\n{\"id\": broken\n{\"title\":\"no id\"}\n{\"id\":\"JVNDB-2025-0101\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = build(&release, &out, &[]);
    assert_eq!(code(&o), 11, "{}", text(&o.stderr));
    let e = text(&o.stderr);
    assert!(
        e.contains("feeds/jvn/more.jsonl:3:") && e.contains("invalid JSON"),
        "{e}"
    );
    assert!(e.contains("--skip-bad-rows"), "{e}");
    assert!(!out.join(BUNDLE).exists());

    let o = build(&release, &out, &["--skip-bad-rows"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("skipped 2 bad feed rows"), "{s}");
    assert!(s.contains("feeds/jvn/more.jsonl:3: invalid JSON"), "{s}");
    assert!(s.contains("feeds/jvn/more.jsonl:4: no upstream id"), "{s}");
    assert!(
        s.contains("feed feeds/jvn/more.jsonl: 2 rows, 2 skipped"),
        "{s}"
    );
    let index = text(&tar_cat(&out.join(BUNDLE), INDEX));
    assert!(
        index.contains(
            "\"feed\":\"feeds/jvn/more.jsonl\",\"source\":\"jvn\",\"rows\":2,\"skipped\":2"
        )
    );

    // --json lists them too.
    let o = build(
        &release,
        &tmp.path().join("out2"),
        &["--skip-bad-rows", "--json"],
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["skippedTotal"], 2);
    assert_eq!(r["skippedRows"][1]["line"], 4);
    assert_eq!(r["skippedRows"][1]["file"], "feeds/jvn/more.jsonl");
}

#[test]
fn conflicts_refuse_the_build_and_feeds_audit_finds_them_on_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tree(tmp.path());
    let root = tmp.path().join("root");

    // A clean kit imports; its generation audits clean (exit 0).
    let clean = tmp.path().join("clean");
    let o = build(&release, &clean, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    import(&root, &clean.join(BUNDLE));
    let (rc, r) = run_json(&root, &["feeds", "audit"]);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["conflicts"], 0);
    assert!(r["rows"].as_u64().unwrap() > 100);
    let clean_gen = r["generation"].as_str().unwrap().to_string();

    // The same advisory twice in one vendor's feeds (another file, other key order), and
    // one id with two contents.
    fs::write(
        release.join("feeds/jvn/dup.jsonl"),
        "{\"title\":\"a\",\"id\":\"JVNDB-2025-0001\",\"modified\":\"2025-10-01T00:00:00Z\"}\n{\"id\":\"JVNDB-2025-0003\",\"title\":\"changed\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("conflicting");
    let o = build(&release, &out, &[]);
    assert_eq!(code(&o), 11, "{}", text(&o.stderr));
    let e = text(&o.stderr);
    assert!(e.contains("1 duplicate and 1 divergent"), "{e}");
    assert!(
        e.contains("duplicate jvn JVNDB-2025-0001 tenant default: 2 rows"),
        "{e}"
    );
    assert!(e.contains("divergent jvn JVNDB-2025-0003"), "{e}");
    assert!(e.contains("--allow-feed-conflicts"), "{e}");
    assert!(!out.join(BUNDLE).exists());

    // The connected site can audit the release tree before building.
    let (rc, r) = run_json(
        &root,
        &["feeds", "audit", "--kit-dir", release.to_str().unwrap()],
    );
    assert_eq!(rc, 11, "{r}");
    assert_eq!(
        (r["duplicates"].as_u64(), r["divergent"].as_u64()),
        (Some(1), Some(1))
    );

    let o = build(&release, &out, &["--allow-feed-conflicts"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("feed conflicts: 2"),
        "{}",
        text(&o.stdout)
    );
    import(&root, &out.join(BUNDLE));
    let o = run(&root, &["feeds", "audit", "--limit", "1"]);
    assert_eq!(code(&o), 11, "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("2 conflicts (1 duplicate, 1 divergent)"), "{s}");
    assert!(
        s.contains("duplicate jvn JVNDB-2025-0001 tenant default"),
        "{s}"
    );
    assert!(s.contains("... and 1 more (--limit 1)"), "{s}");
    // The earlier generation, by prefix, is still clean.
    let o = run(&root, &["feeds", "audit", "--generation", &clean_gen[..12]]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    // An unpacked kit (it carries its index) audits like the generation.
    let x = tmp.path().join("x");
    fs::create_dir_all(&x).unwrap();
    let t = Command::new("tar")
        .arg("-xzf")
        .arg(out.join(BUNDLE))
        .arg("-C")
        .arg(&x)
        .arg(INDEX)
        .status()
        .unwrap();
    assert!(t.success());
    let o = run(&root, &["feeds", "audit", "--kit-dir", x.to_str().unwrap()]);
    assert_eq!(code(&o), 11, "{}", text(&o.stderr));
}
