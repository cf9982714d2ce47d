//! The miniz_oxide and zlib-rs exact tiers (issue 19): deflate written by Rust tools through
//! flate2 (zlib-rs backend) or miniz_oxide is re-created by re-running the pinned encoder,
//! with a recipe of a few bytes instead of preflate's corrections.

mod common;

use std::io::Write;

use common::{binaryish, feed_json, gzip_member, round_trip};

/// Recipe bytes of one gzip member with a Rust-encoder segment: well under this.
const PER_STREAM: usize = 64;

fn check_small(gz: &[u8], what: &str) {
    let a = round_trip(gz);
    eprintln!(
        "{what}: {} gzip bytes -> recipe {}",
        gz.len(),
        a.recipe.len()
    );
    assert!(
        a.recipe.len() < PER_STREAM,
        "{what}: recipe of {} bytes",
        a.recipe.len()
    );
    // Version 4: the recipe holds a Rust-encoder segment.
    assert_eq!(a.recipe[4], 4, "{what}");
}

#[test]
fn flate2_zlib_rs_gzip_levels_1_6_9_are_exact() {
    let data = feed_json(8_000, 3);
    for level in [1u32, 6, 9] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        check_small(&gz, &format!("flate2/zlib-rs level {level}"));
    }
}

#[test]
fn flate2_zlib_rs_fed_in_8k_writes_is_exact() {
    let data = binaryish(300_000, 4);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    for piece in data.chunks(8 << 10) {
        e.write_all(piece).unwrap();
    }
    let gz = e.finish().unwrap();
    check_small(&gz, "flate2/zlib-rs level 6, 8 KiB writes");
}

#[test]
fn miniz_oxide_levels_6_9_10_are_exact() {
    let data = feed_json(8_000, 5);
    // Level 1 (miniz's fast path) is not yet matched: its blocks depend on the caller's
    // output buffer, which the tier does not yet vary (it goes to preflate, ~485 bytes).
    for level in [6u8, 9, 10] {
        // A writer's way: all the input, then finish (as flate2's miniz backend does).
        let mut c = miniz_oxide::deflate::core::CompressorOxide::default();
        c.set_format_and_level(miniz_oxide::DataFormat::Raw, level);
        let mut out = vec![0u8; data.len() + 1024];
        let (_, used, n1) = miniz_oxide::deflate::core::compress(
            &mut c,
            &data,
            &mut out,
            miniz_oxide::deflate::core::TDEFLFlush::None,
        );
        assert_eq!(used, data.len());
        let (_, _, n2) = miniz_oxide::deflate::core::compress(
            &mut c,
            &[],
            &mut out[n1..],
            miniz_oxide::deflate::core::TDEFLFlush::Finish,
        );
        out.truncate(n1 + n2);
        let xfl_level = i32::from(level.min(9));
        check_small(
            &gzip_member(&data, &out, xfl_level),
            &format!("miniz level {level}"),
        );
        let v = miniz_oxide::deflate::compress_to_vec(&data, level);
        check_small(
            &gzip_member(&data, &v, xfl_level),
            &format!("miniz compress_to_vec level {level}"),
        );
    }
}
