//! The delta's self-description (`delta/delta.json`) and its validation.
//!
//! A delta names its baseline and target generations and describes the target as an edit
//! of the baseline's file list (which the host has, recorded with the baseline generation):
//! `removed` paths, plus every file that is new or differs from the baseline file at the
//! same path (content or mode), with where its bytes come from:
//! - `baseline`: the host already has this content (by SHA-256) — nothing shipped;
//! - `pieces`: the file is the concatenation of pieces, each decoded from a range of
//!   `delta/payload.bin` with one [`Encoding`], optionally against a range of a baseline
//!   file (the reference). Large files are cut into pieces so neither side ever holds more
//!   than [`MAX_PIECE`] of target plus [`MAX_REFERENCE`] of reference in memory;
//! - `solid`: the file is a range of the solid block, one zstd stream holding all small
//!   literal files back to back (compressing them together is smaller than one by one);
//! - `trailer`: the same, in the trailer block, decoded last: the small files that list
//!   other files' digests (the offline manifest, SBOM, provenance, `.sha256` sidecars);
//! - `derived`: nothing shipped: the host computes the file from the rest of the target
//!   tree ([`Derivation`], e.g. the feed index from the rebuilt feeds) and checks it
//!   against the SHA-256 the header declares for it (format [`FORMAT_DERIVED`]).
//!
//! A block member may travel in a plain form the host re-encodes ([`DeltaFile::form`]:
//! a DSSE envelope with its payload base64-decoded, [`crate::envelope`]; format
//! [`FORMAT_PLAIN_MEMBERS`]), so the digests inside the payload match the block's
//! references and dictionary.
//!
//! Only files whose content the host already has (`baseline`) or computes (`derived`)
//! carry a SHA-256 in the header: it is how the host finds that content, or checks what it
//! computed. Every rebuilt file's digest is computed
//! by the host while decoding it, and the trailer block is compressed against those
//! digests (its dictionary), so the files that repeat them ship them as short matches
//! instead of the header shipping 32 bytes of entropy per file. Nothing is trusted less for
//! it: the payload is covered by the delta's signature, every decoder output is a function
//! of that payload and verified baseline bytes, and the importer checks every rebuilt file
//! against the rebuilt manifest and the generation id against the header.
//!
//! [`DeltaHeader::validate`] checks everything an attacker controls before any byte is
//! decoded: safe unique paths, pieces that tile each file exactly, ranges inside the
//! payload, declared sizes within bounds.

use std::collections::{BTreeMap, HashSet};

use ouk_store::FileDigest;
use serde::{Deserialize, Serialize};

use crate::content::TreeFile;
use crate::error::DeltaError;
use crate::manifest::{GenerationId, check_relative_path};
use crate::patch::Encoding;

/// Format name of a delta that uses no decoded tier (hosts of every release apply it).
pub const FORMAT: &str = "ouk-delta/2";
/// Format name of a delta with files rebuilt through their plain form, or references into
/// a baseline file's plain form (`recompressed` sources, `decoded` ranges). It is written
/// only when the delta needs it, so a host that predates it still applies the others.
pub const FORMAT_DECODED: &str = "ouk-delta/3";
/// Format name of a delta with a piece in the record tier ([`Encoding::Records`]; it may
/// use the decoded tier too). Written only when a piece needs it: a host that predates the
/// record tier refuses it by name ("made by a newer ouk?") instead of failing on a piece.
pub const FORMAT_RECORDS: &str = "ouk-delta/4";
/// Format name of a delta with a `derived` file ([`Source::Derived`]; it may use every
/// tier above). Written only when a file is derived: a host that predates derivation
/// refuses it by name instead of finding a listed file it cannot rebuild.
pub const FORMAT_DERIVED: &str = "ouk-delta/5";
/// Format name of a delta with a block member in a plain form ([`DeltaFile::form`]; it may
/// use every tier above). Written only when a member uses it: a host that predates it
/// refuses it by name instead of storing the plain form as the file.
pub const FORMAT_PLAIN_MEMBERS: &str = "ouk-delta/6";
/// Every format name this ouk applies, oldest first.
pub const FORMATS: [&str; 5] = [
    FORMAT,
    FORMAT_DECODED,
    FORMAT_RECORDS,
    FORMAT_DERIVED,
    FORMAT_PLAIN_MEMBERS,
];
/// Largest recipe (decoded) a `recompressed` file may carry.
pub const MAX_RECIPE: u64 = 64 << 20;
/// Largest piece of target a delta encodes at once.
pub const MAX_PIECE: u64 = 32 << 20;
/// Largest reference window a piece decodes against.
pub const MAX_REFERENCE: u64 = 64 << 20;
/// Largest decoded solid block.
pub const MAX_SOLID: u64 = 32 << 20;
/// Largest total of the solid block's references.
pub const MAX_SOLID_REFERENCE: u64 = 64 << 20;

/// The two solid blocks a small file can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Decoded after the pieces; its dictionary holds the digests the header lists.
    Solid,
    /// Decoded last; its dictionary holds the digests of every other listed file, the
    /// rebuilt ones as the host computed them.
    Trailer,
}

impl Block {
    /// The source a member of this block has.
    pub fn source(self) -> Source {
        match self {
            Block::Solid => Source::Solid,
            Block::Trailer => Source::Trailer,
        }
    }

    /// How messages name the block.
    pub fn name(self) -> &'static str {
        match self {
            Block::Solid => "solid block",
            Block::Trailer => "trailer block",
        }
    }
}

/// A digest dictionary: the target generation id, then each digest, as lowercase hex, one
/// per line.
pub fn digest_dictionary<'a>(
    target: &GenerationId,
    digests: impl IntoIterator<Item = &'a FileDigest>,
) -> Vec<u8> {
    let mut out = target.to_hex().into_bytes();
    out.push(b'\n');
    for d in digests {
        out.extend_from_slice(d.to_hex().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A generation named by a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRef {
    /// Generation id.
    pub generation: GenerationId,
    /// Kit version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A range of a baseline file used as a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRange {
    /// The baseline file, by path (the host resolves it through the baseline generation's
    /// manifest; a path is shorter than a digest and repeats the target's path).
    pub path: String,
    /// Start in that file.
    pub offset: u64,
    /// Length.
    pub length: u64,
    /// The range is of the baseline file's plain form (its content seen through its
    /// compression, [`ouk_recompress::decode`]), not of its bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decoded: bool,
}

/// One piece of a target file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Target bytes this piece produces.
    pub size: u64,
    /// How it is encoded.
    pub encoding: Encoding,
    /// Reference for `zstd-ref` and `bsdiff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceRange>,
    /// Start of the encoded bytes in the payload.
    pub offset: u64,
    /// Length of the encoded bytes.
    pub length: u64,
}

/// Where a target file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// Content the baseline has.
    Baseline,
    /// Concatenation of pieces.
    Pieces {
        /// In order.
        pieces: Vec<Piece>,
    },
    /// Part of the solid block: members are stored back to back in header order, so a
    /// member's offset is the sum of the sizes of the members before it.
    Solid,
    /// Part of the trailer block (laid out like the solid block).
    Trailer,
    /// Not shipped: the host computes it from the target tree (the layer above this crate
    /// knows how) and checks the result against the file's declared SHA-256.
    Derived {
        /// What computes it.
        by: Derivation,
    },
    /// A compressed file shipped through its plain form: the pieces produce the plain form
    /// ([`ouk_recompress`]), and the recipe re-creates the original compressed bytes from it.
    Recompressed {
        /// The container format.
        format: ouk_recompress::Format,
        /// Length of the plain form the pieces produce.
        plain_size: u64,
        /// In order; they tile `plain_size`.
        pieces: Vec<Piece>,
        /// The recipe, zstd-compressed, in the payload.
        recipe: RecipeRef,
        /// A baseline zip (by path) whose deflated members the rebuild may copy instead of
        /// re-compressing, when a member's local header names the same CRC-32 and sizes
        /// ([`crate::members`]); set only when the make side checked that this gives the
        /// exact file. Absent: the recipe re-compresses every member (a host that does not
        /// know the field does that, and gets the same bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reuse_members_of: Option<String>,
    },
}

/// How a `derived` file is computed on the host. The delta codec only names it; the kit
/// layer implements it, and the make side uses it only after computing the file the same
/// way and finding it byte-identical to the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Derivation {
    /// The feed index (`metadata/feeds-index.jsonl`): the kit's feed indexer, default
    /// options, over the target's feed files.
    FeedsIndex,
}

impl Derivation {
    /// How `delta show` names it.
    pub fn name(self) -> &'static str {
        match self {
            Derivation::FeedsIndex => "feeds-index",
        }
    }
}

impl Source {
    /// Whether the header declares this source's SHA-256 (content the host has or
    /// computes, not content it decodes).
    pub fn declares_digest(&self) -> bool {
        matches!(self, Source::Baseline | Source::Derived { .. })
    }

    /// The pieces of a `pieces` or `recompressed` source.
    pub fn pieces(&self) -> Option<&[Piece]> {
        match self {
            Source::Pieces { pieces } | Source::Recompressed { pieces, .. } => Some(pieces),
            _ => None,
        }
    }
}

/// Where a recipe sits in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeRef {
    /// Start in the payload.
    pub offset: u64,
    /// Encoded length.
    pub length: u64,
    /// Decoded length.
    pub size: u64,
}

/// One target file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaFile {
    /// Relative path.
    pub path: String,
    /// Permission bits (0644 when absent).
    #[serde(default = "default_mode", skip_serializing_if = "is_default_mode")]
    pub mode: u32,
    /// Length.
    pub size: u64,
    /// SHA-256 of the content: present exactly when the source is `baseline` (the host
    /// finds the content by it) or `derived` (the host checks what it computed against
    /// it); the host computes a rebuilt file's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<FileDigest>,
    /// Where the bytes come from.
    pub source: Source,
    /// For a block member: the plain form it has in the block (absent: its bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<MemberForm>,
}

/// The plain form a block member has in its block, re-encoded into the file on the host
/// (format [`FORMAT_PLAIN_MEMBERS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberForm {
    /// A DSSE envelope with its base64 `payload` decoded ([`crate::envelope`]); the number
    /// is the plain form's length in the block. Named `dsse` in the header (every member
    /// name is header bytes in the smallest deltas).
    #[serde(rename = "dsse")]
    DssePayload(u64),
}

impl DeltaFile {
    /// Bytes the file takes in its block: its plain form's when it has one.
    pub fn block_size(&self) -> u64 {
        match self.form {
            Some(MemberForm::DssePayload(n)) => n,
            None => self.size,
        }
    }
}

fn default_mode() -> u32 {
    0o644
}

fn is_default_mode(mode: &u32) -> bool {
    *mode == 0o644
}

/// A solid block: small files back to back in one zstd frame, compressed against the
/// concatenation of their references plus a digest dictionary
/// ([`DeltaHeader::dictionary`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SolidBlock {
    /// Extra reference ranges (renamed predecessors). The prefix is: the whole baseline
    /// file at each member's own path (implicit, in header order, when the baseline has
    /// it), then these, then the digest dictionary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ReferenceRange>,
    /// Start in the payload.
    pub offset: u64,
    /// Encoded length.
    pub length: u64,
    /// Decoded length.
    pub size: u64,
}

/// `delta/delta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaHeader {
    /// [`FORMAT`].
    pub format: String,
    /// What the delta applies to.
    pub baseline: GenerationRef,
    /// What applying it yields.
    pub target: GenerationRef,
    /// Baseline paths the target does not have, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Target files that are new or differ from the baseline at their path, sorted by path.
    pub files: Vec<DeltaFile>,
    /// The solid block, if any file uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solid: Option<SolidBlock>,
    /// The trailer block, if any file uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailer: Option<SolidBlock>,
    /// Length of `delta/payload.bin`.
    pub payload_size: u64,
    /// The plain form ([`ouk_recompress::decode_as`]) its `decoded` references and
    /// `recompressed` files use: absent (1) in deltas made before a zip's central
    /// directory was carried relative to its local headers, so a host decodes their
    /// baseline zips as they were when the delta was made; 2 since, written only with the
    /// decoded tier (other deltas are unchanged).
    #[serde(default = "plain_forms_1", skip_serializing_if = "is_plain_forms_1")]
    pub plain_forms: u32,
    /// The feed rows the delta changes, kept beside the bundle (not in it) as
    /// `<bundle>.feeds-changes.jsonl` for `ouk delta show` on the connected site: how many,
    /// and the SHA-256 and size of that file, so a reader checks the unsigned file against
    /// this (signed) header before using it. Absent in deltas made before it was recorded
    /// and for targets without a feed index. Informational only: applying a delta never
    /// reads it, so a host that predates the field ignores it and applies the delta the
    /// same (no format version is needed for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_changes: Option<FeedChangesRef>,
}

/// [`DeltaHeader::feed_changes`]: the feed changes file kept beside a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedChangesRef {
    /// Changed rows (added, modified, withdrawn). With none, no file is kept and the
    /// digest and size are absent: "no row changed" needs no file to say it.
    pub rows: u64,
    /// SHA-256 of the kept file (present exactly when `rows` is not 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<FileDigest>,
    /// Its length in bytes (0 when no file is kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
}

/// Largest feed changes file a header may declare.
pub const MAX_FEED_CHANGES: u64 = 1 << 30;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn plain_forms_1() -> u32 {
    1
}

fn is_plain_forms_1(v: &u32) -> bool {
    *v == 1
}

/// Each piece inside the payload, fitting its encoding, the pieces tiling `size` bytes.
fn check_pieces(path: &str, pieces: &[Piece], size: u64, payload: u64) -> Result<(), DeltaError> {
    let bad = |m: &str| Err(DeltaError::BadDelta(format!("{path:?}: {m}")));
    let mut total = 0u64;
    for p in pieces {
        let inside = p.offset.checked_add(p.length).is_some_and(|e| e <= payload);
        if p.size > MAX_PIECE || !inside {
            return bad("piece out of bounds");
        }
        match (&p.encoding, &p.reference) {
            (Encoding::Zstd, None) => {}
            (
                Encoding::ZstdRef | Encoding::Bsdiff | Encoding::BsdiffLzma | Encoding::Records,
                Some(r),
            ) if r.length <= MAX_REFERENCE && check_relative_path(&r.path).is_ok() => {}
            _ => return bad("piece reference does not fit its encoding"),
        }
        total = total.saturating_add(p.size);
    }
    if total != size {
        return bad(&format!("pieces cover {total} of {size} bytes"));
    }
    Ok(())
}

/// How one listed file travels, for `delta show`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileTier {
    /// Target path.
    pub path: String,
    /// `reference` (the host has the content), `patch` (against a baseline file), `literal`,
    /// `solid` / `trailer` (a member of that block), `recompressed` (its plain form
    /// patched, its compressed bytes re-created from a recipe), or the name of the
    /// [`Derivation`] that computes it on the host (`feeds-index`).
    pub tier: &'static str,
    /// Bytes of the file.
    pub size: u64,
    /// For `recompressed`: the container format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<ouk_recompress::Format>,
    /// For `recompressed`: bytes of the plain form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_size: Option<u64>,
    /// For `recompressed`: bytes of its recipe in the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe_bytes: Option<u64>,
    /// Payload bytes of its own (block members share their block's and show 0).
    pub shipped: u64,
    /// The encoding of its first piece, when it has pieces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Pieces and payload bytes per encoding, in first-use order, when its pieces use
    /// more than one (a large feed's pieces may be record patches and zstd patches).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<EncodingShare>,
    /// Whether a piece patches against a baseline file's plain form.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decoded_reference: bool,
    /// For a block member: the plain form it travels in, when not its bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<MemberForm>,
}

/// The pieces of one file in one encoding ([`FileTier::encodings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncodingShare {
    /// The encoding.
    pub encoding: Encoding,
    /// Pieces in it.
    pub pieces: u64,
    /// Their payload bytes.
    pub shipped: u64,
}

/// Pieces and bytes per encoding, in first-use order; empty when one encoding (or none)
/// covers them all.
fn encoding_shares(pieces: &[Piece]) -> Vec<EncodingShare> {
    let mut out: Vec<EncodingShare> = Vec::new();
    for p in pieces {
        match out.iter_mut().find(|s| s.encoding == p.encoding) {
            Some(s) => {
                s.pieces += 1;
                s.shipped += p.length;
            }
            None => out.push(EncodingShare {
                encoding: p.encoding,
                pieces: 1,
                shipped: p.length,
            }),
        }
    }
    if out.len() < 2 {
        out.clear();
    }
    out
}

/// What a delta changes, by category.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaSummary {
    /// Files the delta lists (new or changed).
    pub files: u64,
    /// Baseline paths removed.
    pub removed: u64,
    /// Listed files whose content the baseline already has (renames, mode changes).
    pub reused: u64,
    /// Files shipped as patches.
    pub patched: u64,
    /// Files shipped as literals.
    pub literal: u64,
    /// Files in the solid or trailer block (patched against their references there).
    pub solid: u64,
    /// Compressed files shipped through their plain form and rebuilt on the host.
    pub recompressed: u64,
    /// Files computed on the host from the rest of the target (nothing shipped).
    #[serde(skip_serializing_if = "is_zero")]
    pub derived: u64,
    /// Bytes of the listed files.
    pub listed_bytes: u64,
    /// Payload bytes.
    pub payload_bytes: u64,
}

impl DeltaHeader {
    /// A header of format [`FORMAT`] from `baseline` to `target` that lists nothing yet:
    /// the planner fills it (and raises the format to the tiers it uses).
    pub fn new(baseline: GenerationRef, target: GenerationRef) -> DeltaHeader {
        DeltaHeader {
            format: FORMAT.into(),
            baseline,
            target,
            removed: Vec::new(),
            files: Vec::new(),
            solid: None,
            trailer: None,
            payload_size: 0,
            plain_forms: 1,
            feed_changes: None,
        }
    }

    /// Check everything before anything is decoded. `max_file` bounds each declared size.
    pub fn validate(&self, max_file: u64) -> Result<(), DeltaError> {
        self.validate_format()?;
        self.validate_blocks()?;
        let mut seen = HashSet::new();
        for (i, f) in self.files.iter().enumerate() {
            check_relative_path(&f.path)
                .map_err(|why| DeltaError::BadDelta(format!("{:?}: {why}", f.path)))?;
            if i > 0 && self.files[i - 1].path >= f.path {
                return Err(DeltaError::BadDelta(format!(
                    "{:?}: files not sorted or duplicated",
                    f.path
                )));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(DeltaError::BadDelta(format!("{:?}: duplicate", f.path)));
            }
            self.validate_file(f, max_file)?;
        }
        Ok(())
    }

    /// The format name, the tiers it may hold, the plain-forms version and the
    /// `feedChanges` entry.
    fn validate_format(&self) -> Result<(), DeltaError> {
        let bad = |m: String| Err(DeltaError::BadDelta(m));
        if !FORMATS.contains(&self.format.as_str()) {
            return bad(format!(
                "format {:?}, expected one of {FORMATS:?} (made by a newer ouk?)",
                self.format
            ));
        }
        // Each tier needs its format or a later one (FORMATS is oldest first); checked in
        // this order, so a delta that breaks several rules names the same one as before.
        let rank = |name: &str| FORMATS.iter().position(|f| *f == name);
        let needs = [
            (self.uses_records(), FORMAT_RECORDS, "record pieces"),
            (self.uses_derived(), FORMAT_DERIVED, "derived files"),
            (
                self.uses_member_forms(),
                FORMAT_PLAIN_MEMBERS,
                "block members in a plain form",
            ),
            (
                self.uses_decoded_tier(),
                FORMAT_DECODED,
                "recompressed files or decoded references",
            ),
        ];
        for (used, oldest, what) in needs {
            if used && rank(&self.format) < rank(oldest) {
                return bad(format!(
                    "format {:?} cannot hold {what} (only {oldest:?} and later)",
                    self.format
                ));
            }
        }
        if !(1..=ouk_recompress::PLAIN_VERSION).contains(&self.plain_forms) {
            return bad(format!(
                "plain forms version {} (this ouk decodes 1 to {}; made by a newer ouk?)",
                self.plain_forms,
                ouk_recompress::PLAIN_VERSION
            ));
        }
        if let Some(c) = &self.feed_changes {
            let kept = c.rows != 0;
            if c.sha256.is_some() != kept || (c.size != 0) != kept || c.size > MAX_FEED_CHANGES {
                return bad(format!(
                    "feedChanges: {} rows with {} bytes{}: a digest and a size (at most \
                     {MAX_FEED_CHANGES}) are declared exactly when a row changed",
                    c.rows,
                    c.size,
                    if c.sha256.is_some() {
                        " and a digest"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(())
    }

    /// The solid and trailer blocks (bounds, references, members' sizes) and the removed
    /// paths.
    fn validate_blocks(&self) -> Result<(), DeltaError> {
        let bad = |m: String| Err(DeltaError::BadDelta(m));
        let in_payload = |off: u64, len: u64| self.in_payload(off, len);
        for block in [Block::Solid, Block::Trailer] {
            let Some(s) = self.block(block) else {
                continue;
            };
            let name = block.name();
            if !in_payload(s.offset, s.length) {
                return bad(format!("{name} outside the payload"));
            }
            if s.size > MAX_SOLID {
                return bad(format!("{name} of {} bytes is too large", s.size));
            }
            let mut total = 0u64;
            for r in &s.references {
                check_relative_path(&r.path).map_err(|why| {
                    DeltaError::BadDelta(format!("{name} reference {:?}: {why}", r.path))
                })?;
                if r.decoded {
                    return bad(format!("{name} reference {:?}: decoded", r.path));
                }
                total = total.saturating_add(r.length);
            }
            if total > MAX_SOLID_REFERENCE {
                return bad(format!("{name} references too large"));
            }
        }
        for (i, p) in self.removed.iter().enumerate() {
            check_relative_path(p)
                .map_err(|why| DeltaError::BadDelta(format!("removed {p:?}: {why}")))?;
            if i > 0 && self.removed[i - 1] >= *p {
                return bad(format!("removed {p:?}: not sorted or duplicated"));
            }
        }
        for block in [Block::Solid, Block::Trailer] {
            let Some(s) = self.block(block) else {
                continue;
            };
            let members: u64 = self
                .block_members(block)
                .iter()
                .map(|(f, _)| f.block_size())
                .fold(0u64, u64::saturating_add);
            if members != s.size {
                return bad(format!(
                    "{} members hold {members} bytes, the block {}",
                    block.name(),
                    s.size
                ));
            }
        }
        Ok(())
    }

    /// Whether `off..off + len` lies inside the payload.
    fn in_payload(&self, off: u64, len: u64) -> bool {
        off.checked_add(len)
            .is_some_and(|end| end <= self.payload_size)
    }

    /// One listed file (its path already checked): its mode, size, digest and where its
    /// bytes come from.
    fn validate_file(&self, f: &DeltaFile, max_file: u64) -> Result<(), DeltaError> {
        let bad = |m: String| Err(DeltaError::BadDelta(m));
        let in_payload = |off: u64, len: u64| self.in_payload(off, len);
        if f.mode & !0o777 != 0 {
            return bad(format!("{:?}: mode {:o}", f.path, f.mode));
        }
        if f.size > max_file {
            return bad(format!(
                "{:?}: size {} past the limit {max_file}",
                f.path, f.size
            ));
        }
        if f.source.declares_digest() != f.sha256.is_some() {
            return bad(format!(
                "{:?}: a sha256 is listed exactly for content the baseline has or the \
                 host derives",
                f.path
            ));
        }
        if let Some(form) = f.form {
            let in_block = matches!(f.source, Source::Solid | Source::Trailer);
            let MemberForm::DssePayload(n) = form;
            // The plain form is never larger than the file (crate::envelope).
            if !in_block || n > f.size || n > MAX_SOLID {
                return bad(format!(
                    "{:?}: a plain form of {n} bytes for a file of {} bytes ({})",
                    f.path,
                    f.size,
                    if in_block {
                        "larger"
                    } else {
                        "not a block member"
                    }
                ));
            }
        }
        match &f.source {
            Source::Baseline | Source::Derived { .. } => {}
            Source::Solid | Source::Trailer => {
                let block = if f.source == Source::Solid {
                    Block::Solid
                } else {
                    Block::Trailer
                };
                if self.block(block).is_none() {
                    return bad(format!(
                        "{:?}: refers to a missing {}",
                        f.path,
                        block.name()
                    ));
                }
            }
            Source::Pieces { pieces } => check_pieces(&f.path, pieces, f.size, self.payload_size)?,
            Source::Recompressed {
                plain_size,
                pieces,
                recipe,
                reuse_members_of,
                ..
            } => {
                check_pieces(&f.path, pieces, *plain_size, self.payload_size)?;
                if let Some(p) = reuse_members_of {
                    check_relative_path(p).map_err(|why| {
                        DeltaError::BadDelta(format!("{:?}: reuse_members_of {p:?}: {why}", f.path))
                    })?;
                }
                if !in_payload(recipe.offset, recipe.length) || recipe.size > MAX_RECIPE {
                    return bad(format!("{:?}: recipe out of bounds", f.path));
                }
            }
        }
        Ok(())
    }

    /// Whether any piece is in the record tier (needs [`FORMAT_RECORDS`]).
    pub fn uses_records(&self) -> bool {
        self.files.iter().any(|f| match &f.source {
            Source::Recompressed { pieces, .. } | Source::Pieces { pieces } => {
                pieces.iter().any(|p| p.encoding == Encoding::Records)
            }
            _ => false,
        })
    }

    /// Whether any block member is in a plain form (needs [`FORMAT_PLAIN_MEMBERS`]).
    pub fn uses_member_forms(&self) -> bool {
        self.files.iter().any(|f| f.form.is_some())
    }

    /// Whether any file is derived on the host (needs [`FORMAT_DERIVED`]).
    pub fn uses_derived(&self) -> bool {
        self.files
            .iter()
            .any(|f| matches!(f.source, Source::Derived { .. }))
    }

    /// Whether any file or reference needs [`FORMAT_DECODED`].
    pub fn uses_decoded_tier(&self) -> bool {
        self.files.iter().any(|f| match &f.source {
            Source::Recompressed { .. } => true,
            Source::Pieces { pieces } => pieces
                .iter()
                .any(|p| p.reference.as_ref().is_some_and(|r| r.decoded)),
            _ => false,
        })
    }

    /// The target's full file list: the baseline's, minus `removed`, with `files` laid
    /// over it; a rebuilt file's digest is the one `rebuilt` holds for its path (computed
    /// while decoding it). Refuses a delta that removes or keeps what the baseline does
    /// not have.
    pub fn target_files(
        &self,
        baseline: &[TreeFile],
        rebuilt: &std::collections::HashMap<String, FileDigest>,
    ) -> Result<Vec<TreeFile>, DeltaError> {
        let mut by_path: BTreeMap<&str, TreeFile> = baseline
            .iter()
            .map(|f| (f.path.as_str(), f.clone()))
            .collect();
        for p in &self.removed {
            if by_path.remove(p.as_str()).is_none() {
                return Err(DeltaError::BadDelta(format!(
                    "removes {p:?}, which the baseline does not have"
                )));
            }
        }
        for f in &self.files {
            let sha256 = f
                .sha256
                .or_else(|| rebuilt.get(&f.path).copied())
                .ok_or_else(|| {
                    DeltaError::BadDelta(format!("{:?}: listed but not rebuilt", f.path))
                })?;
            by_path.insert(
                f.path.as_str(),
                TreeFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    size: f.size,
                    sha256,
                },
            );
        }
        Ok(by_path.into_values().collect())
    }

    /// The header's description of `block`, when the delta has it.
    pub fn block(&self, block: Block) -> Option<&SolidBlock> {
        match block {
            Block::Solid => self.solid.as_ref(),
            Block::Trailer => self.trailer.as_ref(),
        }
    }

    /// The header's slot for `block`.
    pub fn block_mut(&mut self, block: Block) -> &mut Option<SolidBlock> {
        match block {
            Block::Solid => &mut self.solid,
            Block::Trailer => &mut self.trailer,
        }
    }

    /// A block's members with their offsets in the decoded block.
    pub fn block_members(&self, block: Block) -> Vec<(&DeltaFile, u64)> {
        let source = block.source();
        let mut at = 0u64;
        let mut out = Vec::new();
        for f in &self.files {
            if f.source == source {
                out.push((f, at));
                at = at.saturating_add(f.block_size());
            }
        }
        out
    }

    /// The ranges whose concatenation (followed by the block's dictionary) is a block's
    /// prefix: each member's same-path baseline file, then the explicit ones.
    pub fn block_references(&self, block: Block, baseline: &[TreeFile]) -> Vec<ReferenceRange> {
        self.block_reference_forms(block, baseline)
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    /// [`Self::block_references`], each with the plain form the prefix holds it in: a
    /// member's same-path baseline file in the member's own form
    /// ([`crate::envelope::block_prefix`]), every other range as bytes.
    pub fn block_reference_forms(
        &self,
        block: Block,
        baseline: &[TreeFile],
    ) -> Vec<(ReferenceRange, Option<MemberForm>)> {
        let sizes: std::collections::HashMap<&str, u64> =
            baseline.iter().map(|b| (b.path.as_str(), b.size)).collect();
        let mut out: Vec<(ReferenceRange, Option<MemberForm>)> = self
            .block_members(block)
            .into_iter()
            .filter_map(|(f, _)| {
                sizes.get(f.path.as_str()).map(|&len| {
                    let range = ReferenceRange {
                        path: f.path.clone(),
                        offset: 0,
                        length: len,
                        decoded: false,
                    };
                    (range, f.form)
                })
            })
            .collect();
        if let Some(s) = self.block(block) {
            out.extend(s.references.iter().map(|r| (r.clone(), None)));
        }
        out
    }

    /// A block's digest dictionary, the end of its prefix: the target generation id, then,
    /// in header order, the digest of every listed file the block may repeat. For the
    /// solid block these are the digests the header lists; for the trailer block, every
    /// listed file's but its own members', `rebuilt` giving the digests the header does
    /// not list. Refuses a rebuilt file `rebuilt` does not know.
    pub fn dictionary(
        &self,
        block: Block,
        rebuilt: &dyn Fn(&DeltaFile) -> Option<FileDigest>,
    ) -> Result<Vec<u8>, DeltaError> {
        let mut digests = Vec::new();
        for f in &self.files {
            match (block, &f.source) {
                (_, Source::Baseline | Source::Derived { .. }) => digests.extend(f.sha256),
                (Block::Solid, _) | (Block::Trailer, Source::Trailer) => {}
                (Block::Trailer, _) => digests.push(rebuilt(f).ok_or_else(|| {
                    DeltaError::BadDelta(format!(
                        "{:?}: needed by the trailer block before it is rebuilt",
                        f.path
                    ))
                })?),
            }
        }
        Ok(digest_dictionary(&self.target.generation, &digests))
    }

    /// Per listed file, how it travels.
    pub fn tiers(&self) -> Vec<FileTier> {
        let patch_or_literal = |pieces: &[Piece]| {
            if pieces.iter().any(|p| p.reference.is_some()) {
                "patch"
            } else {
                "literal"
            }
        };
        self.files
            .iter()
            .map(|f| {
                let pieces = f.source.pieces().unwrap_or(&[]);
                let mut t = FileTier {
                    path: f.path.clone(),
                    tier: "reference",
                    size: f.size,
                    format: None,
                    decoded_size: None,
                    recipe_bytes: None,
                    shipped: pieces.iter().map(|p| p.length).sum(),
                    encoding: pieces.first().map(|p| p.encoding),
                    encodings: encoding_shares(pieces),
                    decoded_reference: pieces
                        .iter()
                        .any(|p| p.reference.as_ref().is_some_and(|r| r.decoded)),
                    form: f.form,
                };
                match &f.source {
                    Source::Baseline => {}
                    Source::Derived { by } => t.tier = by.name(),
                    Source::Solid => t.tier = "solid",
                    Source::Trailer => t.tier = "trailer",
                    Source::Pieces { pieces } => t.tier = patch_or_literal(pieces),
                    Source::Recompressed {
                        format,
                        plain_size,
                        recipe,
                        ..
                    } => {
                        t.tier = "recompressed";
                        t.format = Some(*format);
                        t.decoded_size = Some(*plain_size);
                        t.recipe_bytes = Some(recipe.length);
                        t.shipped += recipe.length;
                    }
                }
                t
            })
            .collect()
    }

    /// Counts for people.
    pub fn summary(&self) -> DeltaSummary {
        let mut s = DeltaSummary {
            files: self.files.len() as u64,
            removed: self.removed.len() as u64,
            payload_bytes: self.payload_size,
            ..Default::default()
        };
        // The counts are the tiers `delta show` lists, counted.
        for t in self.tiers() {
            s.listed_bytes += t.size;
            match t.tier {
                "reference" => s.reused += 1,
                "solid" | "trailer" => s.solid += 1,
                "patch" => s.patched += 1,
                "literal" => s.literal += 1,
                "recompressed" => s.recompressed += 1,
                _ => s.derived += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_mixed_pieces_lists_each_encoding_and_one_of_one_kind_lists_none() {
        let piece = |encoding, length| Piece {
            size: 10,
            encoding,
            reference: None,
            offset: 0,
            length,
        };
        let mixed = [
            piece(Encoding::Records, 7),
            piece(Encoding::ZstdRef, 15),
            piece(Encoding::ZstdRef, 16),
        ];
        assert_eq!(
            encoding_shares(&mixed),
            vec![
                EncodingShare {
                    encoding: Encoding::Records,
                    pieces: 1,
                    shipped: 7
                },
                EncodingShare {
                    encoding: Encoding::ZstdRef,
                    pieces: 2,
                    shipped: 31
                },
            ]
        );
        assert!(encoding_shares(&mixed[1..]).is_empty());
        assert!(encoding_shares(&[]).is_empty());
    }

    fn header(feed_changes: Option<FeedChangesRef>) -> DeltaHeader {
        let gen_ref = |n| GenerationRef {
            generation: GenerationId([n; 32]),
            version: None,
        };
        DeltaHeader {
            feed_changes,
            ..DeltaHeader::new(gen_ref(0), gen_ref(1))
        }
    }

    #[test]
    fn feed_changes_declare_a_digest_and_size_exactly_when_a_row_changed() {
        let r = |rows, sha: Option<u8>, size| {
            header(Some(FeedChangesRef {
                rows,
                sha256: sha.map(|b| FileDigest([b; 32])),
                size,
            }))
            .validate(1 << 30)
        };
        assert!(header(None).validate(1 << 30).is_ok());
        assert!(r(0, None, 0).is_ok());
        assert!(r(3, Some(1), 400).is_ok());
        for bad in [
            r(0, Some(1), 0),
            r(0, None, 5),
            r(3, None, 400),
            r(3, Some(1), 0),
            r(3, Some(1), MAX_FEED_CHANGES + 1),
        ] {
            assert!(matches!(bad, Err(DeltaError::BadDelta(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_header_without_feed_changes_keeps_its_bytes_and_an_older_host_reads_one_with() {
        // Absent, the field writes nothing: deltas without feed changes are unchanged.
        let bytes = serde_json::to_string(&header(None)).unwrap();
        assert!(!bytes.contains("feedChanges"), "{bytes}");
        let mut with = header(Some(FeedChangesRef {
            rows: 0,
            sha256: None,
            size: 0,
        }));
        let bytes = serde_json::to_string(&with).unwrap();
        assert!(bytes.contains(r#""feedChanges":{"rows":0}"#), "{bytes}");
        // A host that predates the field parses the header without it (serde passes over
        // unknown members) and applies the same files.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct OlderHeader {
            format: String,
            files: Vec<DeltaFile>,
            payload_size: u64,
        }
        let older: OlderHeader = serde_json::from_str(&bytes).unwrap();
        with.feed_changes = None;
        assert_eq!(
            (older.format, older.files, older.payload_size),
            (with.format, with.files, with.payload_size)
        );
    }
}
