//! Derived files (`ouk-delta/5`): a file the host computes from the target tree costs its
//! declared digest in the header and nothing in the payload; the apply leaves it to the
//! layer that derives it; hosts that predate the format refuse it by name.

mod common;

use std::fs;

use ouk_delta::format::{Derivation, FORMAT_DERIVED, FORMAT_RECORDS, Source};
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;

use common::{Rng, make};

const INDEX: &str = "metadata/feeds-index.jsonl";

/// Two trees: a feed that changes a little, and an index of it that changes everywhere
/// (new digests per row: what a real feed index does when its rows change).
fn trees(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut rng = Rng(7);
    for day in 0..2u64 {
        let t = dir.join(format!("d{day}"));
        fs::create_dir_all(t.join("feeds/osv")).unwrap();
        fs::create_dir_all(t.join("metadata")).unwrap();
        let mut feed = String::new();
        let mut index = String::new();
        for row in 0..2000u64 {
            let v = if row % 50 == 0 { day } else { 0 };
            feed.push_str(&format!("{{\"id\":\"OSV-{row}\",\"v\":{v}}}\n"));
            index.push_str(&format!(
                "{{\"id\":\"OSV-{row}\",\"h\":\"{:016x}\"}}\n",
                rng.next()
            ));
        }
        fs::write(t.join("feeds/osv/all.jsonl"), feed).unwrap();
        fs::write(t.join(INDEX), index).unwrap();
    }
    (dir.join("d0"), dir.join("d1"))
}

#[test]
fn a_derived_file_ships_its_digest_only_and_the_apply_leaves_it_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = trees(tmp.path());
    let shipped = make(&d0, &d1, &MakeOptions::default());
    assert_ne!(shipped.header.format, FORMAT_DERIVED);
    let options = MakeOptions {
        derived: [(INDEX.to_string(), Derivation::FeedsIndex)].into(),
        ..MakeOptions::default()
    };
    let derived = make(&d0, &d1, &options);
    assert_eq!(derived.header.format, FORMAT_DERIVED);
    let f = derived
        .header
        .files
        .iter()
        .find(|f| f.path == INDEX)
        .unwrap();
    let want = FileDigest::of(&fs::read(d1.join(INDEX)).unwrap());
    assert_eq!(
        f.source,
        Source::Derived {
            by: Derivation::FeedsIndex
        }
    );
    assert_eq!(f.sha256, Some(want));
    assert!(
        derived.payload.len() + 2000 < shipped.payload.len(),
        "derived {} vs shipped {}",
        derived.payload.len(),
        shipped.payload.len()
    );
    assert_eq!(derived.header.summary().derived, 1);

    let (_, written) = derived.apply(tmp.path());
    assert!(!written.contains_key(INDEX), "the apply does not invent it");
    assert!(written.contains_key("feeds/osv/all.jsonl"));
    // The target list takes the declared digest: the deriving layer checks it.
    let target = derived
        .header
        .target_files(&derived.base_files, &written)
        .unwrap();
    assert_eq!(target, derived.target_files);
}

#[test]
fn hosts_that_predate_derivation_refuse_it_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = trees(tmp.path());
    let options = MakeOptions {
        derived: [(INDEX.to_string(), Derivation::FeedsIndex)].into(),
        ..MakeOptions::default()
    };
    let mut header = make(&d0, &d1, &options).header;
    // An older reader knows what it knows: a newer name is what it meets first.
    header.format = "ouk-delta/7".into();
    let e = header.validate(u64::MAX).unwrap_err().to_string();
    assert!(e.contains("made by a newer ouk"), "{e}");
    // A derived file under an older name is refused (no host of /4 could derive it).
    header.format = FORMAT_RECORDS.into();
    let e = header.validate(u64::MAX).unwrap_err().to_string();
    assert!(e.contains("cannot hold derived files"), "{e}");
    // A derived file without its declared digest is refused: nothing to check it against.
    header.format = FORMAT_DERIVED.into();
    let i = header.files.iter().position(|f| f.path == INDEX).unwrap();
    header.files[i].sha256 = None;
    let e = header.validate(u64::MAX).unwrap_err().to_string();
    assert!(e.contains("host derives"), "{e}");
}
