//! Hostile input: truncated streams, decompression bombs, damaged recipes. Nothing may
//! panic, bombs are refused with TooLarge, and a damaged recipe never makes rebuild write
//! past the limits.

mod common;

use std::io::Write;

use common::text;
use ouk_recompress::{Limits, RecompressError, analyze, decode, rebuild};
use proptest::prelude::*;

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zip_of(data: &[u8]) -> Vec<u8> {
    // A one-member archive written by hand (local header, deflate, central directory).
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    let d = e.finish().unwrap();
    let crc = crc32fast::hash(data);
    let mut z = Vec::new();
    z.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\x00\x00");
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&(d.len() as u32).to_le_bytes());
    z.extend_from_slice(&(data.len() as u32).to_le_bytes());
    z.extend_from_slice(&[1, 0, 0, 0, b'a']);
    z.extend_from_slice(&d);
    let cd = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x08\x00\x00\x00\x00\x00");
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&(d.len() as u32).to_le_bytes());
    z.extend_from_slice(&(data.len() as u32).to_le_bytes());
    z.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'a']);
    let cd_len = z.len() as u32 - cd;
    z.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    z.extend_from_slice(&cd_len.to_le_bytes());
    z.extend_from_slice(&cd.to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    z
}

#[test]
fn truncated_gzip_and_zstd_are_refused_at_every_cut() {
    let data = text(60_000, 41);
    let gz = gzip(&data, 6);
    let zs = zstd::bulk::compress(&data, 3).unwrap();
    for file in [&gz, &zs] {
        for cut in (1..file.len())
            .step_by(97)
            .chain([file.len() - 1, file.len() - 4])
        {
            let part = &file[..cut];
            let a = analyze(&mut &part[..], &mut Vec::new(), &Limits::default());
            let d = decode(&mut &part[..], &mut Vec::new(), &Limits::default());
            assert!(
                a.is_err() && d.is_err(),
                "cut at {cut} of {} accepted",
                file.len()
            );
        }
    }
}

#[test]
fn truncated_zip_never_panics_and_stays_exact() {
    let z = zip_of(&text(30_000, 42));
    common::round_trip(&z);
    for cut in (1..z.len()).step_by(53) {
        // A zip cut short is either refused (inside a deflate stream) or seen as verbatim
        // bytes; when analyze accepts it, the rebuild must be exact.
        let _ = common::try_round_trip(&z[..cut]);
    }
}

#[test]
fn bombs_past_max_plain_are_refused() {
    let zeros = vec![0u8; 8 << 20];
    let limits = Limits {
        max_plain: 1 << 20,
        max_ratio: 1 << 20,
    };
    for file in [
        gzip(&zeros, 9),
        zstd::bulk::compress(&zeros, 3).unwrap(),
        zip_of(&zeros),
    ] {
        let mut plain = Vec::new();
        let err = analyze(&mut &file[..], &mut plain, &limits).unwrap_err();
        assert!(matches!(err, RecompressError::TooLarge(_)), "{err}");
        // refused while decoding, not after: at most one output buffer past the bound
        assert!(plain.len() <= (1 << 20) + (256 << 10), "{}", plain.len());
        let err = decode(&mut &file[..], &mut Vec::new(), &limits).unwrap_err();
        assert!(matches!(err, RecompressError::TooLarge(_)), "{err}");
    }
}

#[test]
fn bombs_past_max_ratio_are_refused() {
    let zeros = vec![0u8; 4 << 20];
    let limits = Limits {
        max_plain: 1 << 30,
        max_ratio: 50,
    };
    for file in [
        gzip(&zeros, 9),
        zstd::bulk::compress(&zeros, 19).unwrap(),
        zip_of(&zeros),
    ] {
        let err = analyze(&mut &file[..], &mut Vec::new(), &limits).unwrap_err();
        assert!(matches!(err, RecompressError::TooLarge(_)), "{err}");
        let err = decode(&mut &file[..], &mut Vec::new(), &limits).unwrap_err();
        assert!(matches!(err, RecompressError::TooLarge(_)), "{err}");
    }
    // text at an ordinary ratio passes the same limits
    common::try_round_trip_with(&gzip(&text(1 << 20, 43), 6), &limits).unwrap();
}

#[test]
fn rebuild_refuses_a_recipe_past_the_host_limits() {
    let data = text(500_000, 44);
    let gz = gzip(&data, 6);
    let mut plain = Vec::new();
    let a = analyze(&mut &gz[..], &mut plain, &Limits::default()).unwrap();
    let small = Limits {
        max_plain: 100_000,
        max_ratio: 1024,
    };
    let mut out = Vec::new();
    let err = rebuild(&a.recipe, &mut &plain[..], &mut out, &small).unwrap_err();
    assert!(matches!(err, RecompressError::TooLarge(_)), "{err}");
    assert!(out.is_empty(), "refused before writing");
}

#[test]
fn wrong_plain_form_is_refused() {
    let data = text(100_000, 45);
    let gz = gzip(&data, 6);
    let mut plain = Vec::new();
    let a = analyze(&mut &gz[..], &mut plain, &Limits::default()).unwrap();
    // shorter, longer
    let short = &plain[..plain.len() - 1];
    assert!(
        rebuild(
            &a.recipe,
            &mut &short[..],
            &mut Vec::new(),
            &Limits::default()
        )
        .is_err()
    );
    let mut long = plain.clone();
    long.push(0);
    assert!(
        rebuild(
            &a.recipe,
            &mut &long[..],
            &mut Vec::new(),
            &Limits::default()
        )
        .is_err()
    );
    // same length, other content: an error or other bytes (the caller's SHA-256 catches
    // those), never a panic
    let mut other = plain.clone();
    other[5000] ^= 0x20;
    if let Ok(n) = rebuild(
        &a.recipe,
        &mut &other[..],
        &mut Vec::new(),
        &Limits::default(),
    ) {
        assert_eq!(n, gz.len() as u64);
    }
}

/// Recipes of one file of each format, with their plain forms (analyzed once: every
/// proptest case mutates a copy).
fn samples() -> &'static [(Vec<u8>, Vec<u8>)] {
    static SAMPLES: std::sync::OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(make_samples)
}

fn make_samples() -> Vec<(Vec<u8>, Vec<u8>)> {
    let data = text(40_000, 46);
    let mut z = zstd::bulk::compress(&data, 3).unwrap();
    z.extend_from_slice(b"tail");
    // zlib-exact, verbatim and Go-exact deflate segments too (recipe versions 2 and 3)
    let zlib = common::gzip_member(&data, &common::zlib_deflate(&data, 9, 8, 15, 0), 9);
    let go_huffman_only = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/recompress/go-level-2.gz"
    ))
    .unwrap();
    // go-level-2.gz takes the Go tier (recipe version 3); a flushed HuffmanOnly stream
    // is carried verbatim.
    let verbatim = common::go_huffman_only_flushed(&data);
    let go6 = ouk_recompress::goflate::gzip(&data, 6).unwrap();
    [
        gzip(&data, 9),
        zip_of(&data),
        z,
        zlib,
        go_huffman_only,
        verbatim,
        go6,
    ]
    .into_iter()
    .map(|f| {
        let mut plain = Vec::new();
        let a = analyze(&mut &f[..], &mut plain, &Limits::default()).unwrap();
        (a.recipe, plain)
    })
    .collect()
}

const SMALL: Limits = Limits {
    max_plain: 1 << 20,
    max_ratio: 1024,
};

/// A writer that counts (rebuild output is bounded by the limits, whatever the recipe).
struct Count(u64);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn rebuild_bounded(recipe: &[u8], plain: &[u8]) {
    let mut out = Count(0);
    let _ = rebuild(recipe, &mut &plain[..], &mut out, &SMALL);
    let bound = SMALL.max_plain + SMALL.max_plain / 16 + (1 << 20);
    assert!(out.0 <= bound, "wrote {} bytes", out.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recipes_never_panic_nor_write_past_limits(
        which in 0usize..7,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let s = samples();
        let (recipe, plain) = &s[which];
        let mut r = recipe.clone();
        for (i, bit) in &flips {
            let i = i.index(r.len());
            r[i] ^= 1 << bit;
        }
        if truncate {
            r.truncate(cut.index(r.len()));
        }
        rebuild_bounded(&r, plain);
    }

    #[test]
    fn arbitrary_bytes_as_recipe_or_input_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        rebuild_bounded(&bytes, &text(2000, 47));
        let mut with_magic = b"OUKR\x01".to_vec();
        with_magic.extend_from_slice(&bytes);
        rebuild_bounded(&with_magic, &text(2000, 47));
        // and as a version 3 gzip recipe whose first segment is a Go one
        let mut v3 = b"OUKR\x03\x00".to_vec();
        v3.extend_from_slice(&bytes);
        rebuild_bounded(&v3, &text(2000, 47));
        for head in [&[0x1fu8, 0x8b, 8][..], b"PK\x03\x04", &[0x28, 0xb5, 0x2f, 0xfd]] {
            let mut input = head.to_vec();
            input.extend_from_slice(&bytes);
            let _ = decode(&mut &input[..], &mut Vec::new(), &SMALL);
            let _ = analyze(&mut &input[..], &mut Vec::new(), &SMALL);
        }
    }
}
