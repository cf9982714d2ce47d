//! Zip archives of many members (issue 19, OSV's `all.zip`): what a delta costs when a
//! few members change, and what the host does to rebuild it.
//!
//! A changed member moves every member after it, so a central directory carried verbatim
//! in the plain form differs in every later entry (offsets) as well as in the changed
//! entries (CRC-32 and sizes). These tests build the same change in a zip and in its
//! plain twin (the members' rows back to back) and bound the zip's delta by the twin's.

mod common;
use common::osv::{members, twin_of, zip_of};
use common::{Made, make};

use std::collections::HashMap;
use std::fs;
use std::io::Cursor;
use std::path::Path;

use ouk_delta::apply::{DirSink, apply_delta};
use ouk_delta::format::{DeltaHeader, Source};
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;

const MEMBERS: usize = 4_000;

fn write_tree(dir: &Path, day: u32, zipped: bool) {
    fs::create_dir_all(dir.join("feeds/osv")).unwrap();
    let m = members(MEMBERS, day);
    if zipped {
        fs::write(dir.join("feeds/osv/all.zip"), zip_of(&m)).unwrap();
    } else {
        fs::write(dir.join("feeds/osv/all.txt"), twin_of(&m)).unwrap();
    }
    fs::write(dir.join("README"), format!("day {day}\n")).unwrap();
}

fn apply(m: &Made) -> ouk_delta::Result<HashMap<String, FileDigest>> {
    let out = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let written = apply_delta(
        &m.header,
        &mut Cursor::new(&m.payload),
        &m.base_files,
        &m.base,
        scratch.path(),
        &mut DirSink::new(out.path()),
    )?;
    Ok(written.into_iter().collect())
}

fn pair(tmp: &Path, zipped: bool) -> Made {
    let tag = if zipped { "zip" } else { "plain" };
    let (d0, d1) = (tmp.join(format!("{tag}0")), tmp.join(format!("{tag}1")));
    write_tree(&d0, 0, zipped);
    write_tree(&d1, 1, zipped);
    make(&d0, &d1, &MakeOptions::default())
}

/// About 40 of 4,000 members change: the zip's delta costs about what the twin's does.
/// With the central directory verbatim in the plain form, every entry after the first
/// change differs (its offset) and the delta was several times the twin's.
#[test]
fn a_few_changed_members_cost_what_the_twin_costs() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = pair(tmp.path(), false);
    let zipped = pair(tmp.path(), true);
    let recipe: u64 = zipped
        .header
        .files
        .iter()
        .filter_map(|f| match &f.source {
            Source::Recompressed { recipe, .. } => Some(recipe.length),
            _ => None,
        })
        .sum();
    eprintln!(
        "{MEMBERS}-member zip: delta {} B (recipe {recipe} B), plain twin {} B",
        zipped.payload.len(),
        twin.payload.len()
    );
    assert!(
        zipped
            .header
            .files
            .iter()
            .any(|f| f.path.ends_with("all.zip")
                && matches!(f.source, Source::Recompressed { .. })),
        "the zip travels through its plain form"
    );
    // The zip's plain form also carries each changed member's local header (its CRC-32
    // and sizes are new) and the recipe: a small constant over the twin.
    assert!(
        zipped.payload.len() <= twin.payload.len() * 3 / 2 + 512,
        "zip delta {} B vs plain twin {} B",
        zipped.payload.len(),
        twin.payload.len()
    );
    // And the host re-creates the zip bit for bit.
    let rebuilt = apply(&zipped).unwrap();
    for f in &zipped.target_files {
        if let Some(d) = rebuilt.get(&f.path) {
            assert_eq!(*d, f.sha256, "{} re-created exactly", f.path);
        }
    }
}

/// A delta made before plain form 2 (no `plainForms` in its header) references the
/// baseline zip's plain form with its central directory verbatim: the host decodes the
/// baseline that way for it, so it still applies. Made here by decoding both zips as plain
/// form 1 is what an older build did: the header says 1, and the references were cut from
/// the plain form 2 bytes, so this checks the host really decodes by the header.
#[test]
fn the_header_names_the_plain_form_its_references_use() {
    let tmp = tempfile::tempdir().unwrap();
    let mut zipped = pair(tmp.path(), true);
    assert_eq!(zipped.header.plain_forms, ouk_recompress::PLAIN_VERSION);
    let json = serde_json::to_string(&zipped.header).unwrap();
    assert!(json.contains("\"plainForms\":2"), "{json}");
    apply(&zipped).unwrap();
    // The same delta claiming plain form 1: its references into the baseline zip's plain
    // form now read the verbatim central directory, so the zip comes out other than the
    // target (the digest refuses it): the header decides how the host decodes.
    zipped.header.plain_forms = 1;
    let rebuilt = apply(&zipped);
    let target = zipped
        .target_files
        .iter()
        .find(|f| f.path.ends_with("all.zip"))
        .unwrap()
        .sha256;
    assert!(rebuilt.map_or(true, |r| r["feeds/osv/all.zip"] != target));
    // A version this build does not know is refused before anything is decoded.
    zipped.header.plain_forms = ouk_recompress::PLAIN_VERSION + 1;
    assert!(zipped.header.validate(u64::MAX).is_err());
    // A header without the field (a delta made before) reads as plain form 1.
    let old = json.replace(",\"plainForms\":2", "");
    let h: DeltaHeader = serde_json::from_str(&old).unwrap();
    assert_eq!(h.plain_forms, 1);
}
