//! Golden recipes: preflate's correction data (and our recipe layout) are part of the
//! delta format, so the exact recipe bytes of fixed inputs are pinned. An upgrade of
//! preflate-rs or a change of the recipe encoding fails here and must be a deliberate,
//! versioned change (bump the recipe version, keep reading the old one).

mod common;

use std::io::Write;

use sha2::{Digest, Sha256};

fn recipe_sha256(input: &[u8]) -> String {
    let a = common::round_trip(input);
    hex::encode(Sha256::digest(&a.recipe))
}

#[test]
fn gzip_recipe_bytes_are_pinned() {
    let data = common::text(300_000, 1);
    let mut got = Vec::new();
    for level in [1, 6, 9] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(&data).unwrap();
        got.push(recipe_sha256(&e.finish().unwrap()));
    }
    // A checked-in file from another producer (Go), so the input bytes cannot move.
    let go = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/recompress/go-level9.gz"
    );
    got.push(recipe_sha256(&std::fs::read(go).unwrap()));
    let want = [
        // flate2 1.1.11 + zlib-rs 0.6.8 (both pinned exactly), levels 1, 6, 9
        "47698bc4efe3c9e3030cc81ba8f9151ad0093fb6043f549fb885e7b910db42b3",
        "71307d3f0577044c969378f381855fc3883be400e6e6cfbfef87006648ec129b",
        "cfbeb598419f52088f37aa11e93aa2b6bffcf7669af67dad0ce29226dc99e1ca",
        "fb339444788fa70d0f603b48d56689c38d15558fc6f5ee8449071e774db71dea",
    ];
    assert_eq!(
        got, want,
        "recipe bytes changed: a preflate-rs upgrade or a recipe layout change"
    );
}
