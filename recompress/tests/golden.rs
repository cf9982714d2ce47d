//! Golden recipes: preflate's correction data (and our recipe layout) are part of the
//! delta format, so the exact recipe bytes of fixed inputs are pinned. An upgrade of
//! preflate-rs or a change of the recipe encoding fails here and must be a deliberate,
//! versioned change (bump the recipe version, keep reading the old one).

mod common;

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

fn recipe_sha256(input: &[u8]) -> String {
    let a = common::round_trip(input);
    hex::encode(Sha256::digest(&a.recipe))
}

#[test]
fn gzip_recipe_bytes_are_pinned() {
    let data = common::text(300_000, 1);
    let mut got = Vec::new();
    // libdeflate, levels 1, 6, 9: no exact tier re-runs it, so these are preflate's. (Until
    // recipe version 4 these were flate2/zlib-rs streams, which now take the zlib-rs tier:
    // `rust_encoder_recipe_bytes_are_pinned`.)
    for level in [1, 6, 9] {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut d = vec![0u8; c.deflate_compress_bound(data.len())];
        let n = c.deflate_compress(&data, &mut d).unwrap();
        d.truncate(n);
        got.push(recipe_sha256(&common::gzip_member(&data, &d, level)));
    }
    // A checked-in stream from another producer (Go 1.19, level 9, flushed every 10000
    // bytes: the Go tier re-creates only single-write streams, so this one is preflate's),
    // so the input bytes cannot move. (Until recipe version 3 this pin was go-level9.gz,
    // which now takes the Go tier: `go_exact_recipe_bytes_are_pinned`.)
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/recompress/goflate/out"
    );
    let stream = std::fs::read(format!("{dir}/text.9.flush10000.deflate")).unwrap();
    let mut plain = Vec::new();
    flate2::read::DeflateDecoder::new(&stream[..])
        .read_to_end(&mut plain)
        .unwrap();
    got.push(recipe_sha256(&common::gzip_member(&plain, &stream, 9)));
    let want = [
        // libdeflate (pinned by the workspace) levels 1, 6, 9: preflate recipes (version 2)
        "0a0fc208d25d3a53218f1fee93a20340735807736f01a8da89757d1264fc8a60",
        "cbfae9862744295e8655129e266e24ae6ec24f29fd5d848c7a6ee9c13bd6717d",
        "3ab85739c722d6f46dfc6ff1d36c54438ad7f5edbc061e0a9c20625ac4272d15",
        // Go 1.19 level 9 with flushes: preflate (recipe version 2)
        "72db8d2d04d08c20b4fa985a131ec05ae75913e08d03c241dadece87915238ff",
    ];
    assert_eq!(
        got, want,
        "recipe bytes changed: a preflate-rs upgrade or a recipe layout change"
    );
}

#[test]
fn zlib_exact_recipe_bytes_are_pinned() {
    // Python's gzip (zlib level 9, memLevel 8) of a fixed document: the whole recipe is a
    // few bytes naming the zlib setting and version, so it is pinned byte for byte.
    let data = common::text(300_000, 1);
    let gz = common::gzip_member(&data, &common::zlib_deflate(&data, 9, 8, 15, 0), 9);
    let a = common::round_trip(&gz);
    let mut want = b"OUKR\x02\x00".to_vec();
    // plain 300_018 (10 header + 300_000 + 8 trailer), out_len, 3 segments
    want.extend_from_slice(&[0xf2, 0xa7, 0x12]);
    let mut out_len = Vec::new();
    let mut v = gz.len() as u64;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out_len.push(b);
            break;
        }
        out_len.push(b | 0x80);
    }
    want.extend_from_slice(&out_len);
    want.push(3);
    // copy 10, zlib 300_000 "1.4" level 9 memLevel 8 window 15 default, copy 8
    want.extend_from_slice(&[
        1, 10, 4, 0xe0, 0xa7, 0x12, 3, b'1', b'.', b'4', 9, 8, 15, 0, 1, 8,
    ]);
    assert_eq!(
        hex::encode(&a.recipe),
        hex::encode(&want),
        "zlib-exact recipe bytes changed: the bundled zlib or the recipe layout changed"
    );
}

/// The LEB128 varint of `v`, as recipes write it.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn go_exact_recipe_bytes_are_pinned() {
    // go-level9.gz (Go 1.19 compress/gzip, level 9, header with a name): the recipe names
    // the Go port and the level, so it is pinned byte for byte (recipe version 3).
    let gz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/recompress/go-level9.gz"
    ))
    .unwrap();
    let a = common::round_trip(&gz);
    let header = 10 + b"data.txt\0".len() as u64;
    let mut want = b"OUKR\x03\x00".to_vec();
    want.extend(varint(header + 60_000 + 8));
    want.extend(varint(gz.len() as u64));
    want.push(3);
    // copy the header, Go port "go1.7-1.26" level 9 (zigzag 18) of 60_000 plain bytes,
    // copy the trailer
    want.extend([1, header as u8, 6]);
    want.extend(varint(60_000));
    want.push(10);
    want.extend(b"go1.7-1.26");
    want.extend([18, 1, 8]);
    assert_eq!(
        hex::encode(&a.recipe),
        hex::encode(&want),
        "Go-exact recipe bytes changed: the Go port's identity or the recipe layout changed"
    );
    assert_eq!(a.recipe.len(), 32);
}

/// The recipe of a one-member gzip of `plain` whose stream is a Rust-encoder segment.
fn rust_recipe_want(
    gz_len: usize,
    plain: usize,
    tag: u8,
    id: &[u8],
    level: u8,
    feed: u64,
) -> Vec<u8> {
    let mut want = b"OUKR\x04\x00".to_vec();
    want.extend(varint(10 + plain as u64 + 8));
    want.extend(varint(gz_len as u64));
    want.push(3);
    want.extend([1, 10, tag]);
    want.extend(varint(plain as u64));
    want.push(id.len() as u8);
    want.extend(id);
    want.push(level);
    want.extend(varint(feed));
    want.extend([1, 8]);
    want
}

#[test]
fn rust_encoder_recipe_bytes_are_pinned() {
    // flate2 (zlib-rs) gzip level 9, written in one call: segment 8 names "zlib-rs 0.6.8",
    // level 9 and the whole stream as one piece (recipe version 4).
    let plain = common::feed_json(2_000, 11);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    e.write_all(&plain).unwrap();
    let gz = e.finish().unwrap();
    let a = common::round_trip(&gz);
    let want = rust_recipe_want(
        gz.len(),
        plain.len(),
        8,
        b"zlib-rs 0.6.8",
        9,
        plain.len() as u64,
    );
    assert_eq!(
        hex::encode(&a.recipe),
        hex::encode(&want),
        "zlib-rs recipe bytes changed: the encoder's identity or the recipe layout changed"
    );
    // miniz_oxide level 6 (compress_to_vec): segment 7 names "miniz_oxide 0.9.1".
    let d = miniz_oxide::deflate::compress_to_vec(&plain, 6);
    let gz = common::gzip_member(&plain, &d, 6);
    let a = common::round_trip(&gz);
    let want = rust_recipe_want(
        gz.len(),
        plain.len(),
        7,
        b"miniz_oxide 0.9.1",
        6,
        plain.len() as u64,
    );
    assert_eq!(
        hex::encode(&a.recipe),
        hex::encode(&want),
        "miniz recipe bytes changed: the encoder's identity or the recipe layout changed"
    );
}
