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

/// What flate2's miniz_oxide backend does for `write_all` then `finish`: every call with a
/// 32 KiB output buffer (flate2's writer buffer), no flush, then finish.
fn miniz_like_flate2(data: &[u8], level: u8) -> Vec<u8> {
    use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress};
    let mut c = CompressorOxide::default();
    c.set_format_and_level(miniz_oxide::DataFormat::Raw, level);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    let mut rest = data;
    while !rest.is_empty() {
        let (_, used, made) = compress(&mut c, rest, &mut buf, TDEFLFlush::None);
        out.extend_from_slice(&buf[..made]);
        rest = &rest[used..];
    }
    loop {
        let (status, _, made) = compress(&mut c, &[], &mut buf, TDEFLFlush::Finish);
        out.extend_from_slice(&buf[..made]);
        if status == TDEFLStatus::Done {
            return out;
        }
    }
}

#[test]
fn miniz_oxide_levels_1_6_9_10_are_exact() {
    let data = feed_json(8_000, 5);
    for level in [1u8, 6, 9, 10] {
        let xfl_level = i32::from(level.min(9));
        let d = miniz_like_flate2(&data, level);
        check_small(
            &gzip_member(&data, &d, xfl_level),
            &format!("miniz level {level}"),
        );
        // Level 1 is left out for compress_to_vec: miniz's fast path cuts blocks by the
        // room in the caller's output buffer, and compress_to_vec's is half the input (the
        // tier re-runs a writer's 32 KiB): such a stream goes to preflate.
        if level != 1 {
            let v = miniz_oxide::deflate::compress_to_vec(&data, level);
            check_small(
                &gzip_member(&data, &v, xfl_level),
                &format!("miniz compress_to_vec level {level}"),
            );
        }
    }
}
