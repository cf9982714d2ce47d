//! The miniz_oxide and zlib-rs exact tiers (issue 19): deflate written by Rust tools through
//! flate2 (zlib-rs backend) or miniz_oxide is re-created by re-running the pinned encoder,
//! with a recipe of a few bytes instead of preflate's corrections.

mod common;

use std::io::Write;

use common::{binaryish, feed_json, gzip_member, round_trip};
use ouk_recompress::{Limits, RecompressError, rebuild};

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

/// A recipe: `plain_len` plain bytes as one Rust-encoder segment (`tag` 7 miniz, 8 zlib-rs).
fn rust_recipe(version: u8, tag: u8, plain_len: u8, id: &[u8], level: u8, feed: u8) -> Vec<u8> {
    let mut r = b"OUKR".to_vec();
    r.extend_from_slice(&[version, 0, plain_len, 64, 1, tag, plain_len]);
    r.push(id.len() as u8);
    r.extend_from_slice(id);
    r.extend_from_slice(&[level, feed]);
    r
}

/// A writer that keeps what was written.
#[derive(Default)]
struct Written(Vec<u8>);
impl Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn refused(recipe: &[u8], plain: &[u8]) -> RecompressError {
    let mut out = Written::default();
    let e = rebuild(recipe, &mut &plain[..], &mut out, &Limits::default()).unwrap_err();
    assert!(
        out.0.is_empty(),
        "wrote {} bytes before refusing: {e}",
        out.0.len()
    );
    e
}

#[test]
fn hostile_rust_segments_are_refused_before_writing() {
    let plain = b"hello hello hello";
    let n = plain.len() as u8;
    for (tag, id, max) in [
        (7u8, &b"miniz_oxide 0.9.1"[..], 10u8),
        (8, &b"zlib-rs 0.6.8"[..], 9),
    ] {
        // A level past the encoder's range: malformed, before any encoder is made.
        for level in [max + 1, 255] {
            let e = refused(&rust_recipe(4, tag, n, id, level, n), plain);
            assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
        }
        // A zero feed: malformed.
        let e = refused(&rust_recipe(4, tag, n, id, 6, 0), plain);
        assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
        // Another version of the encoder: unsupported, naming it.
        let mut other = id.to_vec();
        *other.last_mut().unwrap() = b'0';
        let e = refused(&rust_recipe(4, tag, n, &other, 6, n), plain);
        match &e {
            RecompressError::Unsupported(m) => {
                assert!(m.contains(std::str::from_utf8(&other).unwrap()), "{m}")
            }
            e => panic!("{e}"),
        }
        // The segment in a version 3 recipe: malformed (version 3 has no such segment).
        let e = refused(&rust_recipe(3, tag, n, id, 6, n), plain);
        assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
        // Output is bounded by the recipe's size as it is written.
        let mut small = rust_recipe(4, tag, n, id, 0, n);
        small[7] = 5; // out_len 5: stored output of 17 plain bytes is longer
        assert!(
            rebuild(
                &small,
                &mut &plain[..],
                &mut Written::default(),
                &Limits::default()
            )
            .is_err()
        );
    }
}
