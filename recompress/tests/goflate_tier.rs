//! The Go-exact tier of deflate streams (issue 19): a stream written by Go's
//! `compress/flate` (OCI layers, Go's gzip) is re-created by the Go port at its level, so
//! its recipe is a few bytes instead of preflate's corrections (~6 % of the compressed
//! size before this tier).

mod common;

use std::path::{Path, PathBuf};

use common::{gzip_member, round_trip, text, zlib_deflate};
use ouk_recompress::goflate::{self, GoDeflater, PORT_ID};
use ouk_recompress::{Limits, RecompressError, rebuild};

/// Recipe bytes of one gzip member with a Go segment: magic, version, format, three
/// varints, a copy of the header, the stream's segment, a copy of the trailer.
const PER_STREAM: usize = 64;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/recompress")
}

/// Whether `recipe` is a version 3 recipe that names the Go port (a Go segment).
fn uses_go_tier(recipe: &[u8]) -> bool {
    recipe[4] == 3
        && recipe
            .windows(PORT_ID.len())
            .any(|w| w == PORT_ID.as_bytes())
}

/// Count the Go segments of `recipe`: each names the port (its length byte, then it).
fn go_segments(recipe: &[u8]) -> usize {
    let mut id = vec![PORT_ID.len() as u8];
    id.extend_from_slice(PORT_ID.as_bytes());
    recipe.windows(id.len()).filter(|w| *w == id).count()
}

#[test]
fn go_gzip_fixtures_take_the_go_tier() {
    // Written by Go 1.19's compress/gzip (testdata/recompress/gogzip.go): levels 1,
    // default (6), 9 and HuffmanOnly; before this tier they cost preflate corrections
    // (or, for HuffmanOnly, the whole stream carried verbatim).
    for level in ["1", "-1", "9", "-2"] {
        let gz = std::fs::read(testdata().join(format!("go-level{level}.gz"))).unwrap();
        let a = round_trip(&gz);
        eprintln!(
            "go-level{level}.gz: {} -> recipe {}",
            gz.len(),
            a.recipe.len()
        );
        assert!(
            uses_go_tier(&a.recipe),
            "go-level{level}.gz: not the Go tier"
        );
        assert!(
            a.recipe.len() < PER_STREAM,
            "go-level{level}.gz: recipe of {} bytes",
            a.recipe.len()
        );
    }
}

#[test]
fn go_tar_layer_fixture_takes_the_go_tier() {
    let gz = std::fs::read(testdata().join("goflate/tar.gz")).unwrap();
    let a = round_trip(&gz);
    eprintln!("goflate/tar.gz: {} -> recipe {}", gz.len(), a.recipe.len());
    assert!(uses_go_tier(&a.recipe));
    assert!(a.recipe.len() < PER_STREAM, "recipe of {}", a.recipe.len());
}

#[test]
fn every_single_write_go_fixture_is_go_exact() {
    // The port's fixtures (raw streams written by gen.go with Go 1.19, every level and
    // many shapes of input), wrapped in a gzip member. Streams written in one go must take
    // the Go tier; streams with flushes cannot (the recipe says "one write") and must still
    // round trip through another tier.
    let dir = testdata().join("goflate");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let (mut go, mut other) = (0, 0);
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (writes, file) = (f[5], f[8]);
        let level: i32 = f[4].parse().unwrap();
        // "-": a large stream gen.go checks but that is not checked in.
        if file == "-" {
            continue;
        }
        let stream = std::fs::read(dir.join(file)).unwrap();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&stream[..]),
            &mut plain,
        )
        .unwrap();
        // Big fixtures are covered by the tar and the ignored long run; keep this quick.
        if plain.len() > 4 << 20 {
            continue;
        }
        let gz = gzip_member(&plain, &stream, level);
        let a = round_trip(&gz);
        if writes == "all" {
            assert!(uses_go_tier(&a.recipe), "{file}: not the Go tier");
            assert!(a.recipe.len() < PER_STREAM, "{file}: {}", a.recipe.len());
            go += 1;
        } else {
            other += 1;
        }
    }
    eprintln!("{go} single-write fixtures Go-exact, {other} flushed ones round trip");
    assert!(go > 100 && other > 0);
}

#[test]
fn a_port_stream_round_trips_at_every_level() {
    let data = text(300_000, 7);
    for level in goflate::LEVELS_BY_LIKELIHOOD {
        let gz = goflate::gzip(&data, level).unwrap();
        let a = round_trip(&gz);
        assert!(uses_go_tier(&a.recipe), "level {level}");
        assert!(
            a.recipe.len() < PER_STREAM,
            "level {level}: {}",
            a.recipe.len()
        );
    }
}

#[test]
fn several_go_members_each_take_the_go_tier() {
    let mut gz = Vec::new();
    for (i, level) in [6, 1, 9].into_iter().enumerate() {
        gz.extend(goflate::gzip(&text(50_000, i as u64), level).unwrap());
    }
    let a = round_trip(&gz);
    assert_eq!(go_segments(&a.recipe), 3);
    assert!(a.recipe.len() < 3 * PER_STREAM);
}

#[test]
fn a_zlib_stream_still_takes_the_zlib_tier() {
    let data = text(200_000, 3);
    let gz = gzip_member(&data, &zlib_deflate(&data, 6, 8, 15, 0), 6);
    let a = round_trip(&gz);
    assert_eq!(a.recipe[4], 2, "no Go segment, so still a version 2 recipe");
    assert_eq!(go_segments(&a.recipe), 0);
    assert!(a.recipe.len() < PER_STREAM);
}

#[test]
fn a_flushed_go_stream_is_not_taken_for_a_single_write() {
    // Go's Flush writes a sync marker mid-stream: the port at the same level, in one
    // write, differs there, so the Go tier must not claim it (preflate or verbatim do).
    let data = text(200_000, 4);
    let mut stream = Vec::new();
    let mut d = GoDeflater::new(6).unwrap();
    d.write(&data[..70_000], &mut stream).unwrap();
    d.flush(&mut stream).unwrap();
    d.write(&data[70_000..], &mut stream).unwrap();
    d.finish(&mut stream).unwrap();
    let gz = gzip_member(&data, &stream, 6);
    let a = round_trip(&gz);
    assert_eq!(go_segments(&a.recipe), 0);
}

/// A hand-made version 3 recipe: one Go segment of `plain.len()` bytes.
fn go_recipe(version: u8, plain_len: u8, port: &[u8], level_zigzag: &[u8], out_len: u8) -> Vec<u8> {
    let mut r = b"OUKR".to_vec();
    r.extend_from_slice(&[version, 0, plain_len, out_len, 1, 6, plain_len]);
    r.push(port.len() as u8);
    r.extend_from_slice(port);
    r.extend_from_slice(level_zigzag);
    r
}

/// A writer that records whether anything was written.
#[derive(Default)]
struct Written(Vec<u8>);
impl std::io::Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_recipe_with_a_bad_go_level_is_refused_before_writing() {
    let plain = b"hello hello hello";
    let n = plain.len() as u8;
    // Good: level 6 (zigzag 12) rebuilds the port's stream.
    let want = goflate::deflate(plain, 6).unwrap();
    let good = go_recipe(3, n, PORT_ID.as_bytes(), &[12], want.len() as u8);
    let mut out = Written::default();
    let len = rebuild(&good, &mut &plain[..], &mut out, &Limits::default()).unwrap();
    assert_eq!(out.0, want);
    assert_eq!(len, out.0.len() as u64);
    // Bad levels: 10, -1 (Go's alias of 6: never written), -3, and one past 32 bits.
    for level in [&[20u8][..], &[1], &[5], &[0xff, 0xff, 0xff, 0xff, 0x7f]] {
        let bad = go_recipe(3, n, PORT_ID.as_bytes(), level, 64);
        let mut out = Written::default();
        let e = rebuild(&bad, &mut &plain[..], &mut out, &Limits::default()).unwrap_err();
        assert!(
            matches!(e, RecompressError::Malformed { .. }),
            "{level:?}: {e}"
        );
        assert!(out.0.is_empty(), "{level:?}: wrote before refusing");
    }
    // A recipe after a copy segment: still nothing written (validated first).
    let mut bad = b"OUKR".to_vec();
    bad.extend_from_slice(&[3, 0, n + 2, 64, 2, 1, 2, 6, n]);
    bad.push(PORT_ID.len() as u8);
    bad.extend_from_slice(PORT_ID.as_bytes());
    bad.push(20);
    let mut out = Written::default();
    let e = rebuild(
        &bad,
        &mut &b"xyhello hello hello"[..],
        &mut out,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
    assert!(out.0.is_empty());
}

#[test]
fn a_recipe_from_another_go_port_is_unsupported_naming_it() {
    let plain = b"hello hello hello";
    let r = go_recipe(3, plain.len() as u8, b"go1.27", &[12], 64);
    let mut out = Written::default();
    let e = rebuild(&r, &mut &plain[..], &mut out, &Limits::default()).unwrap_err();
    assert!(matches!(e, RecompressError::Unsupported(_)), "{e}");
    assert!(
        e.to_string().contains("go1.27") && e.to_string().contains(PORT_ID),
        "{e}"
    );
    assert!(out.0.is_empty());
}

#[test]
fn a_go_segment_needs_version_3_and_a_short_identity() {
    let plain = b"hello hello hello";
    let n = plain.len() as u8;
    // Segment 6 in a version 2 recipe: malformed (version 2 has no such segment).
    let v2 = go_recipe(2, n, PORT_ID.as_bytes(), &[12], 64);
    let e = rebuild(
        &v2,
        &mut &plain[..],
        &mut Written::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
    // An identity longer than any port's: malformed, before it is compared.
    let long = go_recipe(3, n, &[b'g'; 40], &[12], 64);
    let e = rebuild(
        &long,
        &mut &plain[..],
        &mut Written::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RecompressError::Malformed { .. }), "{e}");
    // A version past the newest (6 since zip central directories) is not read.
    let v7 = go_recipe(7, n, PORT_ID.as_bytes(), &[12], 64);
    let e = rebuild(
        &v7,
        &mut &plain[..],
        &mut Written::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RecompressError::Unsupported(_)), "{e}");
}

#[test]
fn a_go_segment_output_is_bounded_by_the_recipe() {
    // The recipe says 5 bytes of output; the port writes more: refused as it writes.
    let plain = b"hello hello hello";
    let r = go_recipe(3, plain.len() as u8, PORT_ID.as_bytes(), &[12], 5);
    let e = rebuild(
        &r,
        &mut &plain[..],
        &mut Written::default(),
        &Limits::default(),
    );
    assert!(e.is_err());
}
