//! gzip round trips: analyze -> rebuild is the input, decode is analyze's plain form, for
//! deflate from many producers.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{round_trip, text};

fn flate2_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Run a compressor CLI over `data` (stdin to stdout). A missing tool fails the test
/// unless OUK_SKIP_<TOOL> is set.
pub fn cli(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let skip = format!("OUK_SKIP_{}", tool.to_uppercase());
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if std::env::var_os(&skip).is_some() => {
            eprintln!("{tool} not run ({e}); {skip} is set");
            return None;
        }
        Err(e) => panic!("{tool} is needed by this test ({e}); install it or set {skip}=1"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    Some(out.stdout)
}

#[test]
fn flate2_zlib_rs_levels() {
    let data = text(300_000, 1);
    for level in [1, 6, 9] {
        let gz = flate2_gzip(&data, level);
        let a = round_trip(&gz);
        eprintln!("flate2 -{level}: {} -> recipe {}", gz.len(), a.recipe.len());
    }
}

/// A gzip member around a raw deflate stream (for encoders that only give raw deflate).
fn wrap_gzip(deflate: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend_from_slice(deflate);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[test]
fn miniz_oxide_levels() {
    let data = text(200_000, 2);
    for level in [1u8, 6, 9, 10] {
        let d = miniz_oxide::deflate::compress_to_vec(&data, level);
        round_trip(&wrap_gzip(&d, &data));
    }
}

#[test]
fn libdeflate_levels() {
    let data = text(200_000, 3);
    for level in [1, 6, 9, 12] {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut gz = vec![0u8; c.gzip_compress_bound(data.len())];
        let n = c.gzip_compress(&data, &mut gz).unwrap();
        gz.truncate(n);
        let a = round_trip(&gz);
        eprintln!("libdeflate -{level}: {n} -> recipe {}", a.recipe.len());
    }
}

#[test]
fn gnu_gzip_levels() {
    let data = text(300_000, 4);
    for level in ["-1", "-9"] {
        let Some(gz) = cli("gzip", &[level, "-c", "-n"], &data) else {
            return;
        };
        let a = round_trip(&gz);
        eprintln!("gzip {level}: {} -> recipe {}", gz.len(), a.recipe.len());
    }
}

#[test]
fn pigz() {
    // pigz compresses in 128 KiB blocks on threads and joins them with sync flushes: the
    // blocks end on byte boundaries with empty stored blocks, which preflate must see.
    let data = text(700_000, 5);
    let Some(gz) = cli("pigz", &["-6", "-n", "-c"], &data) else {
        return;
    };
    let a = round_trip(&gz);
    eprintln!("pigz -6: {} -> recipe {}", gz.len(), a.recipe.len());
}

#[test]
fn multi_member_and_trailing_bytes() {
    let mut gz = flate2_gzip(b"first member\n", 6);
    gz.extend(flate2_gzip(&text(50_000, 6), 9));
    gz.extend(flate2_gzip(b"", 1));
    gz.extend_from_slice(&[0u8; 37]); // tape padding after the last member
    let mut plain = Vec::new();
    let a = round_trip(&gz);
    ouk_recompress::decode(&mut &gz[..], &mut plain, &Default::default()).unwrap();
    assert_eq!(a.plain_size, plain.len() as u64);
    // Headers and trailers stay in the plain form; the data is decoded.
    assert!(plain.windows(12).any(|w| w == b"first member"));
    assert!(plain.ends_with(&[0u8; 37]));
}

#[test]
fn header_fields_fname_fextra_fcomment_fhcrc() {
    let data = text(20_000, 7);
    let mut b = flate2::GzBuilder::new()
        .filename("build.tar")
        .comment("made by a test")
        .extra(vec![b'A', b'B', 3, 0, 1, 2, 3])
        .mtime(1_700_000_000)
        .write(Vec::new(), flate2::Compression::new(6));
    b.write_all(&data).unwrap();
    let gz = b.finish().unwrap();
    round_trip(&gz);
    // and FHCRC, set by hand: header CRC-16 after the fixed fields
    let mut h = vec![0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 3];
    let crc16 = (crc32fast::hash(&h) & 0xffff) as u16;
    h.extend_from_slice(&crc16.to_le_bytes());
    let plain = flate2_gzip(&data, 6);
    h.extend_from_slice(&plain[10..]);
    round_trip(&h);
}

#[test]
fn empty_and_tiny_members() {
    round_trip(&flate2_gzip(b"", 6));
    round_trip(&flate2_gzip(b"x", 9));
    let Some(gz) = cli("gzip", &["-9", "-c", "-n"], b"") else {
        return;
    };
    round_trip(&gz);
}

#[test]
fn stored_blocks_from_level_zero() {
    let data = text(150_000, 8);
    round_trip(&flate2_gzip(&data, 0));
}

#[test]
fn highly_repetitive_blocks_of_long_matches() {
    // zlib fills a block with 16 Ki matches of 258 bytes: 4.2 MB of plain text per block,
    // past preflate's chunk size in one piece. (That is a ratio of 1026, past the default
    // bomb bound, so the bound is raised here.)
    let data = vec![b'a'; 12 << 20];
    let gz = flate2_gzip(&data, 9);
    let limits = ouk_recompress::Limits {
        max_ratio: 2000,
        ..Default::default()
    };
    common::try_round_trip_with(&gz, &limits).unwrap();
    let err = common::try_round_trip(&gz).unwrap_err();
    assert!(
        matches!(err, ouk_recompress::RecompressError::TooLarge(_)),
        "{err}"
    );
}

#[test]
fn go_compress_gzip_fixtures() {
    // Made by testdata/recompress/gogzip.go (checked in, so CI needs no Go).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/recompress");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        // Every level, HuffmanOnly (go-level-2.gz, whose incomplete Huffman codes preflate
        // 0.7.6 refuses) included, is re-created by the Go tier (tests/goflate_tier.rs).
        if name.starts_with("go-") && name.ends_with(".gz") {
            let gz = std::fs::read(&p).unwrap();
            let a = round_trip(&gz);
            eprintln!("{name}: {} -> recipe {}", gz.len(), a.recipe.len());
            n += 1;
        }
    }
    assert!(n >= 4, "the Go fixtures are missing from {dir}");
}
