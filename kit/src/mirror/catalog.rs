//! The mirror's catalog: one record per mirrored bundle, in table `mirror_bundles` of the
//! root's index (the store's redb database), keyed by the bundle's SHA-256.
//!
//! A record ([`MirroredBundle`]) says what the bundle is (name, kind, version, channel,
//! size, digest, who signed it) and how to give its bytes back: which store file holds the
//! content ([`StoredContent`]: the tar stream inside plus the [`GzipRecipe`] that
//! re-compresses it, or the compressed bytes themselves) and which store files hold its
//! sidecars, under the relative paths they are written back to.
//!
//! Encoding: postcard inside the `OKMB` envelope (`ouk_store::envelope`): version 1 for
//! records whose content is [`StoredContent::Tar`] or [`StoredContent::Compressed`] (what
//! every build reads), version 2 for [`StoredContent::SeeThrough`] (a build without it
//! refuses the record as a newer version instead of misreading it), version 3 for
//! [`StoredContent::Delta`] (a stream delta against another mirrored bundle,
//! [`super::deltastore`]). A record holding content of a later version than its envelope
//! says is refused.
//!
//! Invariants:
//! - Every store file a record names is pinned for holder [`PIN_HOLDER`] in the same
//!   transaction that writes the record, so the store's gc keeps mirrored content.
//! - A record is validated when decoded ([`MirroredBundle::decode`]): the bundle name is one
//!   plain file name, sidecar paths are canonical relative paths (the bundle rules of
//!   `bundle::path`), distinct and not the bundle's name, and the recipe is sane; a
//!   see-through record's members pass [`super::seethrough::validate_members`]. Export
//!   writes files under those names, so a damaged index cannot make it write elsewhere.

use ouk_store::FileDigest;
use ouk_store::envelope::{self, EnvelopeError};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::gzip::{GzipRecipe, RecipeError};
use super::seethrough::{self, MemberRecipe};

/// bundle sha256 -> envelope bytes of a [`MirroredBundle`].
pub(crate) const BUNDLES: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("mirror_bundles");

/// The holder name of the mirror's pins in the store (`ouk_store::pins`).
pub const PIN_HOLDER: &str = "mirror";

const RECORD_KIND: [u8; 4] = *b"OKMB";
/// Version of records without see-through content (readable by every build).
const RECORD_VERSION: u16 = 1;
/// Version of records with [`StoredContent::SeeThrough`].
const RECORD_VERSION_SEE_THROUGH: u16 = 2;
/// Version of records with [`StoredContent::Delta`] (a build without delta storage refuses
/// them as a newer version instead of misreading them).
const RECORD_VERSION_DELTA: u16 = 3;

/// Kinds of bundle the mirror keeps.
pub const KINDS: [&str; 2] = ["kit", "delta"];

/// One mirrored bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredBundle {
    /// The bundle's file name.
    pub name: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Version (a delta's target version).
    pub version: String,
    /// Channel.
    pub channel: String,
    /// SHA-256 of the bundle bytes.
    pub sha256: FileDigest,
    /// Bundle size in bytes.
    pub size: u64,
    /// Seconds since the epoch when added.
    pub added_at: i64,
    /// Key id whose signature verified when added (None: no trust store, not checked).
    pub signed_by: Option<String>,
    /// Where the bundle's bytes come from.
    pub content: StoredContent,
    /// Files that travel with the bundle.
    pub sidecars: Vec<SidecarFile>,
}

/// How a bundle's bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredContent {
    /// The uncompressed tar stream, re-compressed by `recipe` on export.
    Tar {
        /// SHA-256 of the tar stream (its store file).
        sha256: FileDigest,
        /// Its length.
        size: u64,
        /// What re-creates the bundle's gzip member from it.
        recipe: GzipRecipe,
    },
    /// The compressed bundle bytes themselves (store file = the bundle's SHA-256): its gzip
    /// stream could not be reproduced from the tar.
    Compressed,
    /// The see-through tar stream (compressed members replaced by their plain forms,
    /// `super::seethrough`): `members` turn it back into the tar, `recipe` re-compresses
    /// that. Only in version-2 records (a new variant goes last: postcard numbers them).
    SeeThrough {
        /// SHA-256 of the see-through stream (its store file).
        sha256: FileDigest,
        /// Its length.
        size: u64,
        /// What re-creates the bundle's gzip member from the rebuilt tar.
        recipe: GzipRecipe,
        /// The substituted members, in stream order.
        members: Vec<MemberRecipe>,
    },
    /// The stream `target` names (a [`StoredContent::Tar`] or [`StoredContent::SeeThrough`]
    /// whose `sha256` is *not* a store file) kept as a stream delta
    /// ([`super::streamdelta`]) against the stream of the mirrored bundle `base`
    /// ([`super::deltastore`]). Only in version-3 records.
    Delta {
        /// SHA-256 of the base bundle (its catalog key).
        base: FileDigest,
        /// The store file holding the patch.
        patch: FileDigest,
        /// Its length.
        patch_size: u64,
        /// How the rebuilt stream becomes the bundle.
        target: Box<StoredContent>,
    },
}

/// A sidecar: where it goes relative to the bundle's directory, and its store file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarFile {
    /// Relative path (`<bundle>.sha256`, `manifest/offline-manifest.json`, ...).
    pub path: String,
    /// SHA-256 (its store file).
    pub sha256: FileDigest,
    /// Length.
    pub size: u64,
}

/// Why a catalog record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The envelope or its payload did not decode.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The recipe is not usable.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A name, path or kind breaks the rules in the module doc.
    #[error("{0}")]
    Invalid(String),
}

/// Whether `name` is one plain file name (what a bundle is written as).
pub fn is_plain_file_name(name: &str) -> bool {
    !name.contains('/') && crate::bundle::path::check(name).is_ok()
}

impl MirroredBundle {
    /// The `OKMB` envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        let version = match self.content {
            StoredContent::Delta { .. } => RECORD_VERSION_DELTA,
            StoredContent::SeeThrough { .. } => RECORD_VERSION_SEE_THROUGH,
            _ => RECORD_VERSION,
        };
        envelope::seal(RECORD_KIND, version, self)
    }

    /// Decode and validate a record.
    pub fn decode(bytes: &[u8]) -> Result<MirroredBundle, CatalogError> {
        let (version, record): (u16, MirroredBundle) =
            envelope::open(RECORD_KIND, RECORD_VERSION_DELTA, bytes)?;
        let needs = match &record.content {
            StoredContent::Delta { .. } => RECORD_VERSION_DELTA,
            StoredContent::SeeThrough { .. } => RECORD_VERSION_SEE_THROUGH,
            _ => RECORD_VERSION,
        };
        if version < needs {
            return Err(CatalogError::Invalid(format!(
                "a version-{version} record cannot hold {} content",
                record.stored_as()
            )));
        }
        record.validate()?;
        Ok(record)
    }

    /// Check the invariants listed in the module doc.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if !is_plain_file_name(&self.name) {
            return Err(CatalogError::Invalid(format!(
                "bundle name {:?} is not a plain file name",
                self.name
            )));
        }
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(CatalogError::Invalid(format!(
                "kind {:?} is not kit or delta",
                self.kind
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.sidecars {
            if let Err(problem) = crate::bundle::path::check(&s.path) {
                return Err(CatalogError::Invalid(format!(
                    "sidecar path {:?}: {problem}",
                    s.path
                )));
            }
            if s.path == self.name || !seen.insert(s.path.as_str()) {
                return Err(CatalogError::Invalid(format!(
                    "sidecar path {:?} repeats another file",
                    s.path
                )));
            }
        }
        match &self.content {
            StoredContent::Tar { recipe, .. } => recipe.validate()?,
            StoredContent::SeeThrough {
                recipe,
                members,
                size,
                ..
            } => {
                recipe.validate()?;
                seethrough::validate_members(members, *size)
                    .map_err(|e| CatalogError::Invalid(format!("see-through members: {e}")))?;
            }
            StoredContent::Compressed => {}
            StoredContent::Delta { base, target, .. } => {
                if *base == self.sha256 {
                    return Err(CatalogError::Invalid(
                        "a delta record names itself as its base".into(),
                    ));
                }
                if !matches!(
                    **target,
                    StoredContent::Tar { .. } | StoredContent::SeeThrough { .. }
                ) {
                    return Err(CatalogError::Invalid(
                        "a delta record rebuilds a tar or see-through stream only".into(),
                    ));
                }
                // The target is checked as a record of its own content would be.
                MirroredBundle {
                    content: (**target).clone(),
                    sidecars: Vec::new(),
                    ..self.clone()
                }
                .validate()?;
            }
        }
        Ok(())
    }

    /// The store file holding the bundle's content.
    pub fn content_file(&self) -> FileDigest {
        match &self.content {
            StoredContent::Tar { sha256, .. } | StoredContent::SeeThrough { sha256, .. } => *sha256,
            StoredContent::Compressed => self.sha256,
            StoredContent::Delta { patch, .. } => *patch,
        }
    }

    /// The stream this record's content rebuilds (tar or see-through) and how it becomes
    /// the bundle: the content itself, or a delta's target. `None` for compressed bytes.
    pub fn stream(&self) -> Option<&StoredContent> {
        match &self.content {
            StoredContent::Tar { .. } | StoredContent::SeeThrough { .. } => Some(&self.content),
            StoredContent::Delta { target, .. } => Some(target),
            StoredContent::Compressed => None,
        }
    }

    /// The recipe that re-compresses this record's stream into the bundle (`None` for
    /// compressed bytes).
    pub fn gzip_recipe(&self) -> Option<&GzipRecipe> {
        match self.stream()? {
            StoredContent::Tar { recipe, .. } | StoredContent::SeeThrough { recipe, .. } => {
                Some(recipe)
            }
            _ => None,
        }
    }

    /// The bundle this record's content is a delta against.
    pub fn delta_base(&self) -> Option<FileDigest> {
        match &self.content {
            StoredContent::Delta { base, .. } => Some(*base),
            _ => None,
        }
    }

    /// Every store file this record needs (content first, then sidecars).
    pub fn store_files(&self) -> Vec<FileDigest> {
        let mut out = vec![self.content_file()];
        out.extend(self.sidecars.iter().map(|s| s.sha256));
        out
    }

    /// `tar` (see-through or not: [`BundleListing`](super::BundleListing) says which) or
    /// `compressed`.
    pub fn stored_as(&self) -> &'static str {
        match self.content {
            StoredContent::Tar { .. } | StoredContent::SeeThrough { .. } => "tar",
            StoredContent::Compressed => "compressed",
            StoredContent::Delta { .. } => "delta",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::pgzip::GZIP_HEADER;
    use crate::mirror::gzip::{Deflate, OUK_PGZIP};

    fn sample() -> MirroredBundle {
        MirroredBundle {
            name: "stella-ops-offline-kit-2025.10.0-edge.tar.gz".into(),
            kind: "kit".into(),
            version: "2025.10.0".into(),
            channel: "edge".into(),
            sha256: FileDigest::of(b"bundle"),
            size: 1234,
            added_at: 1_760_000_000,
            signed_by: Some("kid".into()),
            content: StoredContent::Tar {
                sha256: FileDigest::of(b"tar"),
                size: 10240,
                recipe: GzipRecipe {
                    header: GZIP_HEADER.to_vec(),
                    deflate: OUK_PGZIP,
                },
            },
            sidecars: vec![
                SidecarFile {
                    path: "stella-ops-offline-kit-2025.10.0-edge.tar.gz.sha256".into(),
                    sha256: FileDigest::of(b"sha"),
                    size: 3,
                },
                SidecarFile {
                    path: "manifest/offline-manifest.json".into(),
                    sha256: FileDigest::of(b"m"),
                    size: 1,
                },
            ],
        }
    }

    #[test]
    fn records_round_trip() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(&bytes[..4], b"OKMB");
        assert_eq!(MirroredBundle::decode(&bytes).unwrap(), r);
        let compressed = MirroredBundle {
            content: StoredContent::Compressed,
            signed_by: None,
            ..r
        };
        assert_eq!(
            MirroredBundle::decode(&compressed.encode()).unwrap(),
            compressed
        );
        assert_eq!(compressed.content_file(), compressed.sha256);
        assert_eq!(compressed.store_files().len(), 3);
    }

    #[test]
    fn the_encoding_is_stable() {
        // The record layout is part of the root's format: a change must be deliberate
        // (a new envelope version), not a side effect of reordering fields.
        let bytes = sample().encode();
        use sha2::Digest;
        assert_eq!(bytes.len(), 315);
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            "d16449461afcbfaad6d019cbfcc8a570d4b32f285fd5e2b1680c024c3424532b",
            "the OKMB v1 encoding moved"
        );
        assert_eq!(&bytes[4..6], &1u16.to_le_bytes());
    }

    #[test]
    fn damaged_or_hostile_records_are_refused() {
        let bytes = sample().encode();
        for cut in [0, 5, 6, 40, bytes.len() - 1] {
            assert!(MirroredBundle::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut newer = bytes.clone();
        // Version 2 is the see-through record (see_through_records_are_version_2_and_validated),
        // 3 the delta record (delta_records_are_version_3_and_validated); the first version
        // this build does not know is 4.
        newer[4] = 4;
        assert!(matches!(
            MirroredBundle::decode(&newer),
            Err(CatalogError::Envelope(
                EnvelopeError::UnsupportedVersion { .. }
            ))
        ));
        for bad in ["../x.tar.gz", "a/b.tar.gz", "", ".", "/abs"] {
            let r = MirroredBundle {
                name: bad.into(),
                ..sample()
            };
            assert!(MirroredBundle::decode(&r.encode()).is_err(), "{bad:?}");
        }
        for bad in ["../escape", "/etc/passwd", "a//b", "manifest/../../x"] {
            let mut r = sample();
            r.sidecars[1].path = bad.into();
            assert!(MirroredBundle::decode(&r.encode()).is_err(), "{bad:?}");
        }
        let mut dup = sample();
        dup.sidecars[1].path = dup.sidecars[0].path.clone();
        assert!(MirroredBundle::decode(&dup.encode()).is_err());
        let mut same_as_bundle = sample();
        same_as_bundle.sidecars[0].path = same_as_bundle.name.clone();
        assert!(MirroredBundle::decode(&same_as_bundle.encode()).is_err());
        let mut kind = sample();
        kind.kind = "other".into();
        assert!(MirroredBundle::decode(&kind.encode()).is_err());
        let mut recipe = sample();
        recipe.content = StoredContent::Tar {
            sha256: FileDigest::of(b"tar"),
            size: 1,
            recipe: GzipRecipe {
                header: vec![0x1f, 0x8b],
                deflate: Deflate::Zlib { level: 6 },
            },
        };
        assert!(matches!(
            MirroredBundle::decode(&recipe.encode()),
            Err(CatalogError::Recipe(_))
        ));
    }

    /// A see-through record whose one member carries a real recipe (made by analysing a
    /// gzip file, as `mirror add` does).
    fn see_through_sample() -> MirroredBundle {
        use std::io::Write;
        let plain: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("row {i}\n").into_bytes())
            .collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&plain).unwrap();
        let gz = e.finish().unwrap();
        let mut out = Vec::new();
        let a = ouk_recompress::analyze(&mut &gz[..], &mut out, &ouk_recompress::Limits::default())
            .unwrap();
        MirroredBundle {
            content: StoredContent::SeeThrough {
                sha256: FileDigest::of(b"stream"),
                size: 10_240 + a.plain_size,
                recipe: GzipRecipe {
                    header: GZIP_HEADER.to_vec(),
                    deflate: OUK_PGZIP,
                },
                members: vec![MemberRecipe {
                    offset: 512,
                    plain_len: a.plain_size,
                    original_len: gz.len() as u64,
                    recipe: a.recipe,
                }],
            },
            ..sample()
        }
    }

    #[test]
    fn see_through_records_are_version_2_and_validated() {
        let r = see_through_sample();
        let bytes = r.encode();
        assert_eq!(
            &bytes[4..6],
            &2u16.to_le_bytes(),
            "a build without see-through refuses it"
        );
        assert_eq!(MirroredBundle::decode(&bytes).unwrap(), r);
        assert_eq!(r.content_file(), FileDigest::of(b"stream"));
        assert_eq!(r.stored_as(), "tar");
        // Labelled version 1 (what an older build could read) it is refused, not misread.
        let mut v1 = bytes.clone();
        v1[4..6].copy_from_slice(&1u16.to_le_bytes());
        assert!(matches!(
            MirroredBundle::decode(&v1),
            Err(CatalogError::Invalid(_))
        ));
        // A version this build does not know is a clear error (3 is the delta record).
        let mut v4 = bytes.clone();
        v4[4..6].copy_from_slice(&4u16.to_le_bytes());
        assert!(matches!(
            MirroredBundle::decode(&v4),
            Err(CatalogError::Envelope(
                EnvelopeError::UnsupportedVersion { .. }
            ))
        ));
        // Members: past the stream, a damaged recipe, lengths the recipe does not say.
        let with = |f: &dyn Fn(&mut Vec<MemberRecipe>, &mut u64)| {
            let mut r = see_through_sample();
            if let StoredContent::SeeThrough { members, size, .. } = &mut r.content {
                f(members, size);
            }
            MirroredBundle::decode(&r.encode())
        };
        assert!(with(&|_, _| {}).is_ok());
        assert!(with(&|m, _| m.clear()).is_err());
        assert!(with(&|_, size| *size = 600).is_err());
        assert!(with(&|m, _| m[0].offset = u64::MAX).is_err());
        assert!(with(&|m, _| m[0].recipe.truncate(2)).is_err());
        assert!(with(&|m, _| m[0].plain_len -= 1).is_err());
        assert!(with(&|m, _| m[0].original_len += 1).is_err());
        assert!(
            with(&|m, _| m.push(m[0].clone())).is_err(),
            "overlapping members"
        );
    }

    fn delta_sample() -> MirroredBundle {
        let st = see_through_sample();
        MirroredBundle {
            content: StoredContent::Delta {
                base: FileDigest::of(b"older bundle"),
                patch: FileDigest::of(b"patch"),
                patch_size: 4321,
                target: Box::new(st.content.clone()),
            },
            ..st
        }
    }

    #[test]
    fn delta_records_are_version_3_and_validated() {
        let r = delta_sample();
        let bytes = r.encode();
        assert_eq!(&bytes[4..6], &3u16.to_le_bytes(), "older builds refuse it");
        assert_eq!(MirroredBundle::decode(&bytes).unwrap(), r);
        assert_eq!(r.content_file(), FileDigest::of(b"patch"));
        assert_eq!(r.store_files()[0], FileDigest::of(b"patch"));
        assert_eq!(r.stored_as(), "delta");
        assert_eq!(r.delta_base(), Some(FileDigest::of(b"older bundle")));
        assert!(matches!(r.stream(), Some(StoredContent::SeeThrough { .. })));
        for older in [1u16, 2] {
            let mut v = bytes.clone();
            v[4..6].copy_from_slice(&older.to_le_bytes());
            assert!(
                matches!(MirroredBundle::decode(&v), Err(CatalogError::Invalid(_))),
                "labelled version {older}"
            );
        }
        let mut v4 = bytes.clone();
        v4[4..6].copy_from_slice(&4u16.to_le_bytes());
        assert!(matches!(
            MirroredBundle::decode(&v4),
            Err(CatalogError::Envelope(
                EnvelopeError::UnsupportedVersion { .. }
            ))
        ));
        let with = |f: &dyn Fn(&mut MirroredBundle)| {
            let mut r = delta_sample();
            f(&mut r);
            MirroredBundle::decode(&r.encode())
        };
        assert!(with(&|_| {}).is_ok());
        assert!(
            with(
                &|r| if let StoredContent::Delta { base, .. } = &mut r.content {
                    *base = r.sha256
                }
            )
            .is_err(),
            "its own base"
        );
        assert!(
            with(
                &|r| if let StoredContent::Delta { target, .. } = &mut r.content {
                    **target = StoredContent::Compressed
                }
            )
            .is_err(),
            "a compressed target"
        );
        assert!(
            with(&|r| {
                let again = r.content.clone();
                if let StoredContent::Delta { target, .. } = &mut r.content {
                    **target = again
                }
            })
            .is_err(),
            "a delta of a delta"
        );
        assert!(
            with(
                &|r| if let StoredContent::Delta { target, .. } = &mut r.content
                    && let StoredContent::SeeThrough { size, .. } = &mut **target
                {
                    *size = 600
                }
            )
            .is_err(),
            "a target whose members run past its stream"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever bytes a damaged index holds, decoding a record never panics, and a record
        /// it accepts re-encodes to a record it accepts again.
        #[test]
        fn damaged_see_through_records_never_panic(
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8),
            cut in 0usize..4096,
        ) {
            let mut bytes = see_through_sample().encode();
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            bytes.truncate(bytes.len() - cut % bytes.len().max(1) / 4);
            if let Ok(r) = MirroredBundle::decode(&bytes) {
                proptest::prop_assert_eq!(MirroredBundle::decode(&r.encode()).unwrap(), r);
            }
        }
    }
}
