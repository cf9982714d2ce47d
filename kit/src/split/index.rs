//! The parts index `<bundle>.parts.json`: what `ouk kit split` records about a split bundle
//! (its name, size and SHA-256; every part's name, size and SHA-256, in order), and the
//! parser the importer runs on it.
//!
//! Invariants:
//! - the index is **untrusted input** (it travels on the same USB stick as the parts and
//!   is not signed): [`PartsIndex::parse`] never panics, bounds everything it accepts, and
//!   accepts only the one canonical layout `ouk kit split` writes: format `ouk-parts/1`,
//!   no unknown fields, a plain file name for the bundle, parts named
//!   `<bundle>.part001`, `.part002`, ... in order, every part `maxPartSize` bytes but the
//!   last (1 to `maxPartSize` bytes), sizes adding up (without overflow) to the bundle's
//!   size, lowercase 64-digit hex digests;
//! - nothing the index says is believed on its own: the importer checks every part against
//!   it and the reassembled bundle against the bundle's signed digest, so a forged index
//!   can only make an import fail, never make it accept other bytes;
//! - the encoding is deterministic (pretty JSON in field order, one trailing newline), so
//!   the same bundle split with the same maximum gives byte-identical output.

use serde::{Deserialize, Serialize};

/// The `format` field of a version 1 index.
pub const INDEX_FORMAT: &str = "ouk-parts/1";

/// Most parts a set may have. Part numbers have at least three digits (`.part001`); a
/// limit keeps a hostile index (or a `--max-size 1`) from naming millions of files.
pub const MAX_PARTS: usize = 9999;

/// Largest index file read (a 9999-part index is about 2 MiB).
pub const MAX_INDEX_BYTES: u64 = 4 << 20;

/// Longest bundle file name accepted: room for `.part9999.sha256` within the 255 bytes a
/// file name may have on common filesystems (FAT32 long names included).
pub const MAX_NAME_BYTES: usize = 200;

/// The file name of part `number` (1-based) of `bundle`.
pub fn part_name(bundle: &str, number: usize) -> String {
    format!("{bundle}.part{number:03}")
}

/// The file name of the index of `bundle`.
pub fn index_name(bundle: &str) -> String {
    format!("{bundle}.parts.json")
}

/// What a file name says about a split kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartName<'a> {
    /// `<bundle>.parts.json`.
    Index {
        /// The bundle's file name.
        bundle: &'a str,
    },
    /// `<bundle>.partNNN` (three or more digits).
    Part {
        /// The bundle's file name.
        bundle: &'a str,
        /// The number in the name.
        number: usize,
    },
}

impl<'a> PartName<'a> {
    /// Classify `file_name`; `None` when it is neither an index nor a part name.
    pub fn of(file_name: &'a str) -> Option<PartName<'a>> {
        if let Some(bundle) = file_name.strip_suffix(".parts.json") {
            return (!bundle.is_empty()).then_some(PartName::Index { bundle });
        }
        let (bundle, digits) = file_name.rsplit_once(".part")?;
        if bundle.is_empty() || digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = digits.parse().ok()?;
        Some(PartName::Part { bundle, number })
    }

    /// The bundle's file name.
    pub fn bundle(&self) -> &'a str {
        match self {
            PartName::Index { bundle } | PartName::Part { bundle, .. } => bundle,
        }
    }
}

/// The whole bundle an index describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRef {
    /// The bundle's file name (what the parts and sidecars are named after).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex (the digest its `.sha256`, `.metadata.json` and `.sig`
    /// are about).
    pub sha256: String,
}

/// One part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    /// File name, `<bundle>.partNNN`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the part, lowercase hex (also in `<part>.sha256`).
    pub sha256: String,
}

/// The parts index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartsIndex {
    /// [`INDEX_FORMAT`].
    pub format: String,
    /// The bundle the parts reassemble to.
    pub bundle: BundleRef,
    /// The `--max-size` the bundle was split with: every part but the last has this size.
    pub max_part_size: u64,
    /// The parts, in order.
    pub parts: Vec<PartRef>,
}

/// Why an index was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIndex(pub String);

fn bad(msg: impl Into<String>) -> InvalidIndex {
    InvalidIndex(msg.into())
}

/// Whether `name` is a plain file name ouk accepts for a bundle: 1 to [`MAX_NAME_BYTES`]
/// bytes, no `/`, NUL or control characters, not `.` or `..`, not starting with `.` (the
/// temporary files of a split are dot-names).
pub fn check_bundle_name(name: &str) -> Result<(), InvalidIndex> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(bad(format!(
            "bundle name must have 1 to {MAX_NAME_BYTES} bytes, not {}",
            name.len()
        )));
    }
    if name.starts_with('.') || name.chars().any(|c| c == '/' || c.is_control()) {
        return Err(bad(format!(
            "bundle name {name:?} is not a plain file name"
        )));
    }
    Ok(())
}

fn check_hex(what: &str, s: &str) -> Result<(), InvalidIndex> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(bad(format!(
            "{what}: sha256 must be 64 lowercase hex digits, not {s:?}"
        )))
    }
}

impl PartsIndex {
    /// Parse and [`validate`](PartsIndex::validate) untrusted index bytes.
    pub fn parse(bytes: &[u8]) -> Result<PartsIndex, InvalidIndex> {
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(bad(format!("larger than {MAX_INDEX_BYTES} bytes")));
        }
        let index: PartsIndex =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a parts index: {e}")))?;
        index.validate()?;
        Ok(index)
    }

    /// Check the invariants listed in the module documentation.
    pub fn validate(&self) -> Result<(), InvalidIndex> {
        if self.format != INDEX_FORMAT {
            return Err(bad(format!(
                "format {:?} is not {INDEX_FORMAT:?} (made by a newer ouk?)",
                self.format
            )));
        }
        check_bundle_name(&self.bundle.name)?;
        check_hex("bundle", &self.bundle.sha256)?;
        if self.max_part_size == 0 {
            return Err(bad("maxPartSize is 0"));
        }
        let count = self.parts.len();
        if count == 0 || count > MAX_PARTS {
            return Err(bad(format!(
                "{count} parts: a set has 1 to {MAX_PARTS} parts"
            )));
        }
        let mut total = 0u64;
        for (i, p) in self.parts.iter().enumerate() {
            let number = i + 1;
            let want = part_name(&self.bundle.name, number);
            if p.name != want {
                return Err(bad(format!(
                    "part {number} is named {:?}, expected {want:?}",
                    p.name
                )));
            }
            check_hex(&p.name, &p.sha256)?;
            let last = number == count;
            let size_ok = if last {
                (1..=self.max_part_size).contains(&p.size)
            } else {
                p.size == self.max_part_size
            };
            if !size_ok {
                return Err(bad(format!(
                    "{} has {} bytes: every part but the last has maxPartSize ({}) bytes, the last 1 to maxPartSize",
                    p.name, p.size, self.max_part_size
                )));
            }
            total = total
                .checked_add(p.size)
                .ok_or_else(|| bad("the part sizes overflow"))?;
        }
        if total != self.bundle.size {
            return Err(bad(format!(
                "the parts add up to {total} bytes, the bundle has {}",
                self.bundle.size
            )));
        }
        Ok(())
    }

    /// The canonical encoding (pretty JSON, trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";

    fn hexd(b: u8) -> String {
        hex::encode([b; 32])
    }

    fn sample() -> PartsIndex {
        PartsIndex {
            format: INDEX_FORMAT.into(),
            bundle: BundleRef {
                name: NAME.into(),
                size: 25,
                sha256: hexd(0xaa),
            },
            max_part_size: 10,
            parts: vec![
                PartRef {
                    name: part_name(NAME, 1),
                    size: 10,
                    sha256: hexd(1),
                },
                PartRef {
                    name: part_name(NAME, 2),
                    size: 10,
                    sha256: hexd(2),
                },
                PartRef {
                    name: part_name(NAME, 3),
                    size: 5,
                    sha256: hexd(3),
                },
            ],
        }
    }

    fn refused(index: &PartsIndex) -> String {
        PartsIndex::parse(&index.to_bytes())
            .expect_err("must be refused")
            .0
    }

    #[test]
    fn a_written_index_parses_back_to_itself() {
        let i = sample();
        let bytes = i.to_bytes();
        assert_eq!(PartsIndex::parse(&bytes), Ok(i.clone()));
        assert_eq!(bytes, i.to_bytes(), "deterministic");
        assert!(bytes.ends_with(b"}\n"));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"maxPartSize\": 10"), "{text}");
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            PartName::of(&format!("{NAME}.part001")),
            Some(PartName::Part {
                bundle: NAME,
                number: 1
            })
        );
        assert_eq!(
            PartName::of(&format!("{NAME}.part1234")),
            Some(PartName::Part {
                bundle: NAME,
                number: 1234
            })
        );
        assert_eq!(
            PartName::of(&format!("{NAME}.parts.json")),
            Some(PartName::Index { bundle: NAME })
        );
        for not in [
            NAME,
            "x.part01",
            "x.part",
            ".part001",
            ".parts.json",
            "x.part001.sha256",
            "x.part00a",
            "x.part+01",
            "x.part99999999999999999999999",
        ] {
            assert_eq!(PartName::of(not), None, "{not}");
        }
        assert_eq!(part_name("b", 7), "b.part007");
        assert_eq!(part_name("b", 1000), "b.part1000");
        assert_eq!(index_name("b"), "b.parts.json");
    }

    #[test]
    fn wrong_format_and_unknown_fields_are_refused() {
        let mut i = sample();
        i.format = "ouk-parts/2".into();
        assert!(refused(&i).contains("format"));
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(PartsIndex::parse(v.to_string().as_bytes()).is_err());
        v = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["parts"][0]["offset"] = serde_json::json!(0);
        assert!(PartsIndex::parse(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn names_must_be_canonical_and_in_order() {
        let mut i = sample();
        i.parts.swap(0, 1);
        assert!(refused(&i).contains("part 1 is named"));
        let mut i = sample();
        i.parts[2].name = "../../etc/passwd".into();
        assert!(refused(&i).contains("expected"));
        for name in ["", ".", "..", "a/b", "../x", ".hidden", "a\nb", "a\0b"] {
            let mut i = sample();
            i.bundle.name = name.into();
            assert!(PartsIndex::parse(&i.to_bytes()).is_err(), "{name:?}");
        }
        let mut i = sample();
        i.bundle.name = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(refused(&i).contains("bytes"));
    }

    #[test]
    fn sizes_must_add_up_and_follow_the_maximum() {
        let mut i = sample();
        i.bundle.size = 26;
        assert!(refused(&i).contains("add up"));
        let mut i = sample();
        i.parts[1].size = 9;
        i.bundle.size = 24;
        assert!(refused(&i).contains("maxPartSize"));
        let mut i = sample();
        i.parts[2].size = 0;
        i.bundle.size = 20;
        assert!(refused(&i).contains("maxPartSize"));
        let mut i = sample();
        i.parts[2].size = 11;
        i.bundle.size = 31;
        assert!(refused(&i).contains("maxPartSize"));
        let mut i = sample();
        i.max_part_size = 0;
        assert!(refused(&i).contains("maxPartSize is 0"));
        let mut i = sample();
        i.parts.clear();
        assert!(refused(&i).contains("1 to"));
    }

    #[test]
    fn overflowing_sizes_are_refused_without_panicking() {
        let mut i = sample();
        i.max_part_size = u64::MAX;
        for p in &mut i.parts {
            p.size = u64::MAX;
        }
        i.bundle.size = u64::MAX;
        assert!(refused(&i).contains("overflow"));
    }

    #[test]
    fn digests_must_be_lowercase_hex() {
        let mut i = sample();
        i.parts[0].sha256 = hexd(0xab).to_uppercase();
        assert!(refused(&i).contains("lowercase"));
        let mut i = sample();
        i.bundle.sha256 = "abc".into();
        assert!(refused(&i).contains("64"));
    }

    #[test]
    fn too_many_parts_or_too_many_bytes_are_refused() {
        let mut i = sample();
        i.max_part_size = 1;
        i.parts = (1..=MAX_PARTS + 1)
            .map(|n| PartRef {
                name: part_name(NAME, n),
                size: 1,
                sha256: hexd(1),
            })
            .collect();
        i.bundle.size = i.parts.len() as u64;
        assert!(refused(&i).contains("parts"));
        let big = vec![b' '; MAX_INDEX_BYTES as usize + 1];
        assert!(PartsIndex::parse(&big).unwrap_err().0.contains("larger"));
    }

    #[test]
    fn garbage_never_panics() {
        use proptest::prelude::*;
        let valid = sample().to_bytes();
        proptest!(ProptestConfig::with_cases(512), |(
            pos in 0usize..valid.len(), byte in any::<u8>(), cut in 0usize..valid.len(),
            junk in proptest::collection::vec(any::<u8>(), 0..256),
        )| {
            let mut b = valid.clone();
            b[pos] = byte;
            let _ = PartsIndex::parse(&b);
            let _ = PartsIndex::parse(&valid[..cut]);
            let _ = PartsIndex::parse(&junk);
        });
    }
}
