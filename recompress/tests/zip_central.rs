//! A zip's central directory in the plain form (recipe segment 11, version 6; issue 19):
//! each entry's CRC-32, sizes and local-header offset are carried relative to the local
//! header it describes, so a member that changes or moves changes its local header only,
//! and any archive (consistent or not) still rebuilds exactly.

mod common;

use std::io::Write;

use common::{feed_json, round_trip};
use ouk_recompress::{Limits, RecompressError, decode, rebuild};

/// A zip of `n` deflated members (zip crate, level 6, fixed time); member `grow` gets a
/// longer row (it changes, and every member after it moves).
fn members(n: usize, grow: Option<usize>) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(time);
    for i in 0..n {
        z.start_file(format!("GHSA-{i:05}.json"), opts).unwrap();
        let rows = if grow == Some(i) { 9 } else { 3 + i % 5 };
        z.write_all(&feed_json(rows, 7 + i as u64)).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn plain_of(z: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    decode(&mut &z[..], &mut plain, &Limits::default()).unwrap();
    plain
}

fn analyzed(z: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut plain = Vec::new();
    let a = ouk_recompress::analyze(&mut &z[..], &mut plain, &Limits::default()).unwrap();
    (plain, a.recipe)
}

fn rebuilt(recipe: &[u8], plain: &[u8]) -> Result<Vec<u8>, RecompressError> {
    let mut out = Vec::new();
    rebuild(recipe, &mut &plain[..], &mut out, &Limits::default())?;
    Ok(out)
}

/// Where the central directory starts (the members here are JSON, which never holds the
/// signature).
fn central_at(b: &[u8]) -> usize {
    b.windows(4).position(|w| w == b"PK\x01\x02").unwrap()
}

/// The central directory's entries (the end record after them keeps the directory's
/// offset verbatim: one field, not one per entry).
fn entries(b: &[u8]) -> &[u8] {
    let end = b.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    &b[central_at(b)..end]
}

/// One member of 300 grows: in the archive every central-directory entry after it differs
/// (offsets), in the plain form none does. Before segment 11 the plain form carried the
/// central directory verbatim and 290 entries differed.
#[test]
fn a_changed_member_leaves_the_central_directory_unchanged_in_the_plain_form() {
    let (z0, z1) = (members(300, None), members(300, Some(10)));
    let (c0, c1) = (entries(&z0), entries(&z1));
    assert_eq!(c0.len(), c1.len());
    let differ = c0
        .chunks(61)
        .zip(c1.chunks(61))
        .filter(|(a, b)| a != b)
        .count();
    assert!(differ > 250, "{differ} of the archives' 300 entries differ");
    let (p0, p1) = (plain_of(&z0), plain_of(&z1));
    let (t0, t1) = (entries(&p0), entries(&p1));
    let differ = t0
        .chunks(61)
        .zip(t1.chunks(61))
        .filter(|(a, b)| a != b)
        .count();
    assert!(differ == 0, "{differ} of the plain forms' entries differ");
    for z in [&z0, &z1] {
        let a = round_trip(z);
        assert_eq!(a.recipe[4], 6, "segment 11 needs version 6");
    }
}

/// An archive whose central directory disagrees with its local headers (a CRC-32, a size,
/// an offset edited) is still rebuilt exactly: the plain form then holds the difference.
#[test]
fn a_central_directory_that_disagrees_with_its_local_headers_rebuilds_exactly() {
    let mut z = members(40, None);
    let at = central_at(&z);
    // Entry 0's CRC-32, entry 0's compressed size and entry 0's offset.
    for off in [16, 20, 42] {
        z[at + off] ^= 0x5a;
    }
    // A later entry's uncompressed size.
    let second = at + 46 + z[at + 28] as usize;
    z[second + 24] ^= 0xa5;
    let (plain, recipe) = analyzed(&z);
    assert_eq!(recipe[4], 6);
    assert_eq!(rebuilt(&recipe, &plain).unwrap(), z);
}

/// A zip written to a stream (sizes in data descriptors after each member, zeros in the
/// local headers) and a zip with stored members and an archive comment rebuild exactly.
#[test]
fn descriptors_stored_members_and_comments_rebuild_exactly() {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    for i in 0..30 {
        let method = if i % 3 == 0 {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(time);
        z.start_file(format!("m{i}.json"), opts).unwrap();
        z.write_all(&feed_json(2 + i % 4, i as u64)).unwrap();
    }
    z.set_comment("an archive comment").unwrap();
    let z = z.finish().unwrap().into_inner();
    round_trip(&z);
    // Streamed: the zip crate's stream writer puts the sizes in data descriptors.
    let mut s = zip::ZipWriter::new_stream(Vec::new());
    for i in 0..20 {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(time);
        s.start_file(format!("s{i}.json"), opts).unwrap();
        s.write_all(&feed_json(2 + i % 4, i as u64)).unwrap();
    }
    let s = s.finish().unwrap().into_inner();
    round_trip(&s);
}

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
fn hostile_central_directory_segments_are_refused_never_a_panic() {
    let z = members(50, None);
    let (plain, recipe) = analyzed(&z);
    assert_eq!(rebuilt(&recipe, &plain).unwrap(), z);
    let cd = central_at(&z);
    let eocd = z.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let mut seg = vec![11];
    seg.extend(varint((eocd - cd) as u64));
    seg.extend(varint(50));
    let at = recipe
        .windows(seg.len())
        .position(|w| w == seg)
        .expect("segment 11 in the recipe");
    let malformed = |r: Result<Vec<u8>, RecompressError>, what: &str| match r {
        Err(RecompressError::Malformed { .. }) => {}
        other => panic!("{what}: {other:?}"),
    };
    // Under a version 5 header: refused by validate.
    let mut v5 = recipe.clone();
    v5[4] = 5;
    malformed(rebuilt(&v5, &plain), "version 5");
    // More entries than the segment's plain bytes can hold (46 bytes each at least).
    let mut many = recipe[..at].to_vec();
    many.push(11);
    many.extend(varint((eocd - cd) as u64));
    many.extend(varint((eocd - cd) as u64 / 46 + 1));
    many.extend_from_slice(&recipe[at + seg.len()..]);
    malformed(rebuilt(&many, &plain), "count past the plain bytes");
    // One entry more than there are (the end record is read as an entry): refused.
    let mut one_more = recipe[..at].to_vec();
    one_more.push(11);
    one_more.extend(varint((eocd - cd) as u64));
    one_more.extend(varint(51));
    one_more.extend_from_slice(&recipe[at + seg.len()..]);
    malformed(rebuilt(&one_more, &plain), "51 entries");
    // A plain form whose entry lost its signature: refused, nothing is guessed.
    let pcd = central_at(&plain);
    let mut p = plain.clone();
    p[pcd + 46 + plain[pcd + 28] as usize] = b'X';
    malformed(rebuilt(&recipe, &p), "entry 1 without its signature");
    // An entry's name length pointing past the segment.
    let mut p = plain.clone();
    p[pcd + 29] = 0xff;
    assert!(rebuilt(&recipe, &p).is_err(), "name past the segment");
    // Every byte of the segment and of the plain central directory flipped: an error or
    // other bytes (the caller's digest refuses them), never a panic.
    for i in at..recipe.len() {
        let mut r = recipe.clone();
        r[i] ^= 0xff;
        let _ = rebuilt(&r, &plain);
    }
    for i in pcd..plain.len() {
        let mut p = plain.clone();
        p[i] ^= 0x81;
        let _ = rebuilt(&recipe, &p);
    }
}
