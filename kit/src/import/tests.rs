//! The pipeline end to end inside the kit crate: phases a kit and a delta import report.

use std::path::{Path, PathBuf};

use ouk_store::progress::Step;

use super::{ImportOptions, import, quarantine};
use crate::build::{BuildOptions, build_kit};

/// A phase and the units its advances added up to.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    name: String,
    total: Option<u64>,
    done: u64,
}

fn build(tree_day: u32, seed: u64, version: &str, work: &Path) -> PathBuf {
    let tree = work.join(format!("tree-{tree_day}"));
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(seed).on_day(tree_day), &tree)
        .expect("generate tree");
    let out = work.join(format!("kits-{tree_day}"));
    let opts = BuildOptions {
        version: version.into(),
        channel: "edge".into(),
        release_dir: tree,
        output_dir: out,
        staging_dir: None,
        signing_key: None,
        captured_at: None,
        created_at: None,
        allow_missing_debug: true,
        threads: 1,
        primer: None,
        cold_start_caches: Vec::new(),
        feed_index: Default::default(),
        allow_feed_conflicts: false,
        force: false,
    };
    build_kit(&opts, &mut ouk_store::progress::ignore)
        .expect("build kit")
        .bundle
}

fn options(bundle: &Path) -> ImportOptions {
    ImportOptions {
        bundle: bundle.to_path_buf(),
        sidecars: Default::default(),
        extra_keys: Vec::new(),
        allow_unsigned: true,
        dry_run: false,
        force: None,
        wait: false,
        free_margin: 0,
        max_age_days: 0,
        max_clock_skew_secs: super::policy::DEFAULT_MAX_CLOCK_SKEW_SECS,
        quarantine: quarantine::Limits::default(),
    }
}

/// Import `bundle` into `root`, returning the phases heard.
fn import_recording(root: &Path, bundle: &Path) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    let report = import(root, &options(bundle), &mut |s| match s {
        Step::Phase { name, total, .. } => seen.push(Seen {
            name: name.into(),
            total,
            done: 0,
        }),
        Step::Advance(n) => seen.last_mut().expect("an advance after its phase").done += n,
    })
    .map_err(|f| format!("{}: {}", f.step, f.error))
    .expect("import");
    assert_eq!(report.outcome, "activated");
    seen
}

fn assert_phases(seen: &[Seen], input: &Path) {
    let names: Vec<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["verify", "unpack", "store", "activate"], "{seen:?}");
    let size = std::fs::metadata(input).expect("stat input").len();
    assert_eq!(seen[0].total, Some(size), "verify's total is the input");
    assert_eq!(
        seen[0].done, size,
        "verify's advances sum to the input's size"
    );
    for s in &seen[1..3] {
        assert_eq!(Some(s.done), s.total, "{} advances to its total", s.name);
    }
    assert!(seen[1].done > 0, "the unpack phase moved");
}

#[test]
fn a_kit_and_a_delta_import_report_their_phases_in_order() {
    let work = tempfile::tempdir().expect("tempdir");
    let kit0 = build(0, 11, "2025.10.0", work.path());
    let kit1 = build(1, 11, "2025.10.1", work.path());
    let root = work.path().join("root");

    let seen = import_recording(&root, &kit0);
    assert_phases(&seen, &kit0);

    let delta = work.path().join("d.delta.tgz");
    crate::delta::make_from_bundles(&kit0, &kit1, &delta, None, &Default::default())
        .expect("delta make");
    let seen = import_recording(&root, &delta);
    assert_phases(&seen, &delta);
}

#[test]
fn an_already_current_kit_reports_only_what_it_read() {
    let work = tempfile::tempdir().expect("tempdir");
    let kit = build(2, 5, "2025.10.2", work.path());
    let root = work.path().join("root");
    import_recording(&root, &kit);
    let mut names = Vec::new();
    let report = import(&root, &options(&kit), &mut |s| {
        if let Step::Phase { name, .. } = s {
            names.push(name.to_string());
        }
    })
    .map_err(|f| f.error.to_string())
    .expect("second import");
    assert_eq!(report.outcome, "already-active");
    assert_eq!(names, ["verify"]);
}
