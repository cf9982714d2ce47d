//! Rebuilding a zip while copying the members the host already has (issue 19, apply
//! cost): a member of a zip member run whose local header names the CRC-32 and sizes of a
//! deflated member of a reference zip is copied from it instead of re-compressed.

mod common;

use std::collections::HashMap;
use std::io::Write;

use common::feed_json;
use ouk_recompress::{
    Limits, MemberSource, RebuildStats, ZipMember, deflated_members, rebuild_reusing,
};

fn members(n: usize, grow: &[usize]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(time);
    for i in 0..n {
        z.start_file(format!("GHSA-{i:05}.json"), opts).unwrap();
        let rows = if grow.contains(&i) { 9 } else { 3 + i % 5 };
        z.write_all(&feed_json(rows, 7 + i as u64)).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A reference zip held in memory, indexed as the host indexes its baseline file.
struct Reference {
    bytes: Vec<u8>,
    index: HashMap<(u32, u64, u64), u64>,
    /// Serve every member's bytes with one byte flipped (a source that lies).
    lie: bool,
}

impl Reference {
    fn new(bytes: Vec<u8>) -> Self {
        let list: Vec<ZipMember> = deflated_members(&mut &bytes[..], 1 << 20).unwrap();
        let index = list
            .iter()
            .map(|m| ((m.crc, m.csize, m.usize), m.data_offset))
            .collect();
        Reference {
            bytes,
            index,
            lie: false,
        }
    }
}

impl MemberSource for Reference {
    fn member(&mut self, crc: u32, csize: u64, usize: u64) -> std::io::Result<Option<Vec<u8>>> {
        let Some(&at) = self.index.get(&(crc, csize, usize)) else {
            return Ok(None);
        };
        let mut b = self.bytes[at as usize..(at + csize) as usize].to_vec();
        if self.lie {
            b[0] ^= 1;
        }
        Ok(Some(b))
    }
}

fn rebuilt(z: &[u8], source: Option<&mut dyn MemberSource>) -> (Vec<u8>, RebuildStats) {
    let mut plain = Vec::new();
    let a = ouk_recompress::analyze(&mut &z[..], &mut plain, &Limits::default()).unwrap();
    let mut out = Vec::new();
    let stats = rebuild_reusing(
        &a.recipe,
        &mut &plain[..],
        &mut out,
        &Limits::default(),
        source,
    )
    .unwrap();
    (out, stats)
}

#[test]
fn the_index_lists_every_deflated_member() {
    let z = members(50, &[]);
    let list = deflated_members(&mut &z[..], 1 << 20).unwrap();
    assert_eq!(list.len(), 50);
    // At most `max` of them.
    assert_eq!(deflated_members(&mut &z[..], 7).unwrap().len(), 7);
    // Not a zip, a truncated one: fewer, never an error or a panic.
    assert!(deflated_members(&mut &b"hello"[..], 10).unwrap().is_empty());
    for cut in [10, 31, 100, z.len() / 2] {
        assert!(deflated_members(&mut &z[..cut], 100).unwrap().len() < 50);
    }
}

/// Three of 300 members changed: the other 297 are copied from the reference, three are
/// re-compressed, and the bytes are the target's exactly. Without a source all 300 are
/// re-compressed (what the host did before: 193,087 members for OSV's all.zip).
#[test]
fn unchanged_members_are_copied_not_recompressed() {
    let z0 = members(300, &[]);
    let z1 = members(300, &[10, 150, 299]);
    let (out, stats) = rebuilt(&z1, None);
    assert_eq!(out, z1);
    assert_eq!((stats.members_deflated, stats.members_copied), (300, 0));
    let mut reference = Reference::new(z0);
    let (out, stats) = rebuilt(&z1, Some(&mut reference));
    assert_eq!(out, z1, "the rebuilt bytes are exact");
    assert_eq!((stats.members_deflated, stats.members_copied), (3, 297));
}

/// A source that serves other bytes of the right length gives other bytes (which the
/// caller's digest refuses: exit 2 through the importer), never an error-free wrong
/// answer unnoticed by the digest; bytes of the wrong length are ignored.
#[test]
fn a_lying_source_gives_other_bytes_for_the_digest_to_refuse() {
    let z0 = members(40, &[]);
    let z1 = members(40, &[5]);
    let mut reference = Reference::new(z0);
    reference.lie = true;
    let (out, stats) = rebuilt(&z1, Some(&mut reference));
    assert_eq!(out.len(), z1.len());
    assert_ne!(out, z1);
    assert_eq!(stats.members_copied, 39);

    struct Short;
    impl MemberSource for Short {
        fn member(&mut self, _: u32, _: u64, _: u64) -> std::io::Result<Option<Vec<u8>>> {
            Ok(Some(vec![0; 3]))
        }
    }
    let (out, stats) = rebuilt(&z1, Some(&mut Short));
    assert_eq!(out, z1, "bytes of the wrong length are not used");
    assert_eq!(stats.members_copied, 0);
}
