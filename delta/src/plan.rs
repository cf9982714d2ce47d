//! Making a delta: deciding, per target file, the cheapest way to ship it (the
//! [`DeltaPlan`]) and writing the payload.
//!
//! 1. Target content the baseline already has (same SHA-256, any path) is referenced.
//! 2. Every baseline file is cut into chunks (the store's pinned FastCDC); each new target
//!    file is cut too, and the baseline file sharing the most chunk bytes becomes its
//!    reference (else the baseline file at the same path). This is the chunk tier: it
//!    finds renamed and moved content and, for huge files, where each region came from.
//! 3. Each file (or, past [`MAX_PIECE`], each chunk-aligned piece with a reference window
//!    around the baseline offsets its chunks matched) is encoded every way that applies —
//!    zstd with the reference as prefix, bsdiff, zstd alone — and the smallest wins. This is
//!    the byte tier: a scattered 1 % edit ships as the edit, not as whole chunks.
//! 4. Small files whose best encoding is a literal go into one solid zstd stream, or, when
//!    they repeat the digest of another rebuilt file (manifests, SBOMs, sidecars), into the
//!    trailer stream, compressed against those digests (see [`crate::format`]). A DSSE
//!    envelope joins its block with its payload decoded when that re-encodes exactly
//!    ([`crate::envelope`], `ouk-delta/6`): its statement's digests then match too.
//!
//! A budget bounds the work, and it is counted in work units, never read off a clock: the
//! same pair gives the same delta bytes on a loaded and on an idle machine. Before any
//! encoding, files are granted full effort (bsdiff on every piece, whatever its size)
//! smallest first while their estimated input fits the budget
//! ([`MakeOptions::work_units`]); the rest get the cheaper effort (bsdiff only below the
//! size where its suffix sort costs minutes). Large pieces get zstd at level 12 either way;
//! the record tier ([`crate::records`]) is tried on every structured piece (it is cheap).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use ouk_store::{ChunkId, Chunker, ChunkerParams, FileDigest};
use rayon::prelude::*;

use crate::bsdiffx;
use crate::content::{ContentReader, TreeFile};
use crate::envelope;
use crate::error::{DeltaError, Result};
use crate::format::{
    Block, DeltaFile, DeltaHeader, Derivation, FORMAT_DECODED, FORMAT_DERIVED,
    FORMAT_PLAIN_MEMBERS, FORMAT_RECORDS, GenerationRef, MAX_PIECE, MAX_REFERENCE, MAX_SOLID,
    MAX_SOLID_REFERENCE, MemberForm, Piece, RecipeRef, ReferenceRange, SolidBlock, Source,
};
use crate::patch::{Encoding, ZstdTuning, zstd_encode};
use crate::plain::PlainForms;

/// Serializes bsdiff runs on large inputs (see `Encoder::best`).
static BIG_BSDIFF: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Knobs for [`make_delta`].
#[derive(Debug, Clone)]
pub struct MakeOptions {
    /// zstd level for patches and literals.
    pub level: i32,
    /// The effort budget, in seconds of full-effort encoding on a reference machine (two
    /// cores): converted to work units by [`MakeOptions::work_units`], never compared with
    /// a clock, so the delta depends on the input and the options only.
    pub time_budget: Duration,
    /// bsdiff is tried only when target piece and reference are at most this large.
    pub bsdiff_max: u64,
    /// Literal files up to this size go into the solid block.
    pub solid_max_file: u64,
    /// See through compression (the decoded tier): ship a changed gzip, zip or zstd file
    /// as a patch of its plain form plus a recipe, when that is smaller.
    pub see_through: bool,
    /// Try the record tier on structured feeds ([`crate::records`]). Off: the delta needs
    /// no format newer than `ouk-delta/3`, for hosts that predate the record tier.
    pub record_tier: bool,
    /// Bounds on decoding (target and baseline files are the maker's own, but a kit
    /// may carry a bomb).
    pub limits: ouk_recompress::Limits,
    /// Where plain forms are spilled (default: the system's temporary directory).
    pub scratch: Option<std::path::PathBuf>,
    /// Target paths the host computes instead of decoding ([`Source::Derived`]), and how.
    /// The caller puts a path here only after computing the file that way from the target
    /// tree and finding it identical; such a file costs its digest in the header and
    /// nothing in the payload (format `ouk-delta/5`). Empty: no file is derived.
    pub derived: std::collections::BTreeMap<String, Derivation>,
    /// Whether the layer above may fill [`MakeOptions::derived`] (the kit layer derives
    /// the feed index). Off, or with the record tier off: the delta needs no format newer
    /// than `ouk-delta/4`, for hosts that predate derivation.
    pub derive: bool,
    /// Ship DSSE envelopes of the solid and trailer blocks with their payload decoded
    /// ([`crate::envelope`], format `ouk-delta/6`). Only with [`MakeOptions::derive`] and
    /// [`MakeOptions::record_tier`] on: turning either off asks for a delta that older
    /// hosts apply, and this needs a newer one.
    pub plain_members: bool,
}

impl Default for MakeOptions {
    fn default() -> Self {
        MakeOptions {
            level: 19,
            time_budget: Duration::from_secs(90),
            bsdiff_max: 64 << 20,
            solid_max_file: 4 << 20,
            see_through: true,
            record_tier: true,
            limits: ouk_recompress::Limits::default(),
            scratch: None,
            derived: Default::default(),
            derive: true,
            plain_members: true,
        }
    }
}

/// Bytes of full-effort input (target plus reference, through bsdiff's suffix sort and zstd
/// at the full level) one second of [`MakeOptions::time_budget`] buys. Measured on the
/// testdata feeds (88 MB of target plus reference took about 8 s more with bsdiff than
/// without, docs/benchmarks.md): 3 MiB a second keeps the default 90 s well inside the
/// 2-minute bound of the 1 GiB pair.
pub const WORK_PER_SECOND: u64 = 3 << 20;

impl MakeOptions {
    /// Whether block members may travel in a plain form (see [`MakeOptions::plain_members`]).
    pub fn uses_plain_members(&self) -> bool {
        self.plain_members && self.derive && self.record_tier
    }

    /// The budget in work units: bytes of full-effort input.
    pub fn work_units(&self) -> u64 {
        self.time_budget.as_secs().saturating_mul(WORK_PER_SECOND)
    }
}

/// The estimated full-effort input of each file to encode: its bytes plus a reference as
/// large (a compressed file is planned on its plain form: four times its bytes is the
/// estimate). Granted smallest first (ties by path) while the running sum fits `budget`.
fn grant_full_effort(
    files: &[&TreeFile],
    encode: &dyn Fn(&TreeFile) -> bool,
    compressed: &std::collections::HashSet<FileDigest>,
    budget: u64,
) -> std::collections::HashSet<String> {
    let mut costs: Vec<(u64, &str)> = files
        .iter()
        .filter(|f| encode(f))
        .map(|f| {
            let inflate = if compressed.contains(&f.sha256) { 4 } else { 1 };
            (f.size.saturating_mul(2 * inflate), f.path.as_str())
        })
        .collect();
    costs.sort_unstable();
    let mut spent = 0u64;
    let mut granted = std::collections::HashSet::new();
    for (cost, path) in costs {
        spent = spent.saturating_add(cost);
        if spent > budget {
            break;
        }
        granted.insert(path.to_string());
    }
    granted
}

/// One encoded piece before payload offsets are assigned.
struct EncodedPiece {
    size: u64,
    encoding: Encoding,
    reference: Option<ReferenceRange>,
    blob: Vec<u8>,
}

enum Plan {
    Baseline,
    /// Computed on the host ([`MakeOptions::derived`]).
    Derived(Derivation),
    Pieces(Vec<EncodedPiece>),
    /// A small file for the solid block, with its whole-file reference (if any) and its own
    /// best encoding as the fallback when the block is full.
    Solid {
        reference: Option<ReferenceRange>,
        fallback: Vec<EncodedPiece>,
    },
    /// A compressed file shipped as its plain form's pieces plus its recipe.
    Recompressed {
        format: ouk_recompress::Format,
        plain_size: u64,
        pieces: Vec<EncodedPiece>,
        /// zstd-compressed.
        recipe: Vec<u8>,
        recipe_size: u64,
        /// The baseline zip whose members the host copies (see [`crate::members`]).
        reuse_members_of: Option<String>,
    },
}

impl Plan {
    /// Payload bytes the plan costs (for the solid block: what its member costs alone, an
    /// upper bound of its share of the block).
    fn shipped(&self) -> u64 {
        let sum = |p: &[EncodedPiece]| p.iter().map(|p| p.blob.len() as u64).sum::<u64>();
        match self {
            Plan::Baseline | Plan::Derived(_) => 0,
            Plan::Pieces(p) => sum(p),
            Plan::Solid { fallback, .. } => sum(fallback),
            Plan::Recompressed { pieces, recipe, .. } => sum(pieces) + recipe.len() as u64,
        }
    }
}

/// A stream a reference can be taken from: a baseline file's bytes, or its plain form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RefKey {
    digest: FileDigest,
    decoded: bool,
}

impl RefKey {
    fn raw(digest: FileDigest) -> RefKey {
        RefKey {
            digest,
            decoded: false,
        }
    }
}

/// Where each chunk of the baseline first occurs, and the baseline's streams by key.
struct ChunkIndex {
    at: HashMap<ChunkId, (RefKey, u64)>,
    sizes: HashMap<RefKey, u64>,
    /// One baseline path per digest (references are written by path).
    paths: HashMap<FileDigest, String>,
}

impl ChunkIndex {
    fn sizes_and_paths(
        baseline: &[TreeFile],
    ) -> (HashMap<RefKey, u64>, HashMap<FileDigest, String>) {
        let mut sizes = HashMap::new();
        let mut paths = HashMap::new();
        for f in baseline {
            sizes.entry(RefKey::raw(f.sha256)).or_insert(f.size);
            paths.entry(f.sha256).or_insert_with(|| f.path.clone());
        }
        (sizes, paths)
    }

    /// The reference range `offset..offset+length` of `key`, as a header writes it.
    fn range(&self, key: RefKey, offset: u64, length: u64) -> ReferenceRange {
        ReferenceRange {
            path: self.paths.get(&key.digest).cloned().unwrap_or_default(),
            offset,
            length,
            decoded: key.decoded,
        }
    }
}

/// Where reference bytes come from: the baseline's files, and (when the delta sees through
/// compression) their plain forms.
struct References<'a> {
    baseline: &'a dyn ContentReader,
    plain: Option<&'a PlainForms<'a>>,
}

impl References<'_> {
    fn read_range(&self, key: RefKey, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        match (key.decoded, self.plain) {
            (false, _) => self.baseline.read_range(&key.digest, offset, length),
            (true, Some(p)) => p.read_range(&key.digest, offset, length),
            (true, None) => Err(io::Error::other("no plain forms to read")),
        }
    }
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> DeltaError {
    move |source| DeltaError::Io { context, source }
}

/// A chunk of a stream: (id, offset, length).
type ChunkSpan = (ChunkId, u64, u64);

/// A chunk-aligned run of a target file, with the reference offsets its chunks matched.
struct PieceSpan {
    offset: u64,
    len: u64,
    matched: Vec<(u64, u64)>,
}

/// (chunk id, offset, length) of a whole stream.
fn chunk_stream(chunker: &Chunker, r: impl Read) -> io::Result<Vec<ChunkSpan>> {
    let mut sc = ouk_store::chunker::StreamChunker::new(chunker.clone(), r);
    let mut out = Vec::new();
    let mut pos = 0u64;
    while let Some(c) = sc.next_chunk(&mut |_| {})? {
        out.push((ChunkId::of(c), pos, c.len() as u64));
        pos += c.len() as u64;
    }
    Ok(out)
}

fn index_baseline(
    baseline: &[TreeFile],
    content: &dyn ContentReader,
    plain: Option<&PlainForms<'_>>,
    chunker: &Chunker,
) -> Result<ChunkIndex> {
    let mut unique: Vec<&TreeFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in baseline {
        if seen.insert(f.sha256) {
            unique.push(f);
        }
    }
    let (mut sizes, paths) = ChunkIndex::sizes_and_paths(baseline);
    type Indexed = (
        RefKey,
        Vec<ChunkSpan>,
        Option<(RefKey, u64, Vec<ChunkSpan>)>,
    );
    let per_file: Vec<Result<Indexed>> = unique
        .par_iter()
        .map(|f| {
            let context = || format!("read baseline {}", f.path);
            let r = content.open(&f.sha256).map_err(io_err(context()))?;
            let chunks = chunk_stream(chunker, r).map_err(io_err(context()))?;
            // The plain form of a compressed file is indexed too: a new layer or feed
            // finds its reference by what it decodes to, whatever its name.
            let decoded = match plain {
                Some(p) => match p.describe(&f.sha256).map_err(io_err(context()))? {
                    Some((_, size)) => {
                        let r = p.open(&f.sha256).map_err(io_err(context()))?;
                        let key = RefKey {
                            digest: f.sha256,
                            decoded: true,
                        };
                        Some((
                            key,
                            size,
                            chunk_stream(chunker, r).map_err(io_err(context()))?,
                        ))
                    }
                    None => None,
                },
                None => None,
            };
            Ok((RefKey::raw(f.sha256), chunks, decoded))
        })
        .collect();
    let mut at = HashMap::new();
    for r in per_file {
        let (key, chunks, decoded) = r?;
        for (id, off, _) in chunks {
            at.entry(id).or_insert((key, off));
        }
        if let Some((key, size, chunks)) = decoded {
            sizes.insert(key, size);
            for (id, off, _) in chunks {
                at.entry(id).or_insert((key, off));
            }
        }
    }
    Ok(ChunkIndex { at, sizes, paths })
}

/// Pick the reference window in `ref_size` bytes for a target piece whose matched chunks
/// sit at `matched` (baseline offset, length).
fn reference_window(
    matched: &[(u64, u64)],
    piece_off: u64,
    target_size: u64,
    ref_size: u64,
) -> (u64, u64) {
    if ref_size <= MAX_REFERENCE {
        return (0, ref_size);
    }
    let (lo, hi) = if matched.is_empty() {
        let center =
            (u128::from(piece_off) * u128::from(ref_size) / u128::from(target_size.max(1))) as u64;
        (center, center)
    } else {
        let lo = matched.iter().map(|m| m.0).min().unwrap_or(0);
        let hi = matched.iter().map(|m| m.0 + m.1).max().unwrap_or(0);
        (lo, hi)
    };
    let span = hi - lo;
    let (start, len) = if span >= MAX_REFERENCE {
        (lo, MAX_REFERENCE)
    } else {
        let pad = (MAX_REFERENCE - span) / 2;
        (lo.saturating_sub(pad), MAX_REFERENCE)
    };
    let start = start.min(ref_size - len);
    (start, len)
}

#[derive(Clone, Copy)]
struct Encoder<'a> {
    options: &'a MakeOptions,
    /// This file was granted full effort (see [`grant_full_effort`]).
    full: bool,
}

impl Encoder<'_> {
    /// The smallest encoding of `target` (optionally against `reference`): zstd with the
    /// reference, then bsdiff; the literal only when the reference did not already shrink
    /// the piece at least twofold. Large pieces get zstd at level 12; with full effort
    /// bsdiff runs on every piece, without it bsdiff is skipped where zstd already shipped
    /// a huge piece at under 1 %.
    fn best(
        &self,
        target: &[u8],
        reference: Option<(&[u8], ReferenceRange)>,
    ) -> io::Result<EncodedPiece> {
        // Large pieces against large references: zstd levels past 12 cost 10-20x the time
        // for a few percent, and from 16 up the patch gets larger (measured on feed pieces,
        // docs/benchmarks.md), so large ones stay at 12.
        let big = target.len() + reference.as_ref().map_or(0, |r| r.0.len()) > 8 << 20;
        // Full effort buys bsdiff, not a higher zstd level on large pieces: zstd at 19 on
        // a 26 MB feed and its reference takes 25-50 s here, and the record tier ships
        // feeds smaller than either.
        let level = if big {
            self.options.level.min(12)
        } else {
            self.options.level
        };
        let long = big || reference.as_ref().is_some_and(|r| r.0.len() > 8 << 20);
        let mut best: Option<EncodedPiece> = None;
        let consider = |best: &mut Option<EncodedPiece>, candidate: EncodedPiece| {
            if best
                .as_ref()
                .is_none_or(|b| candidate.blob.len() < b.blob.len())
            {
                *best = Some(candidate);
            }
        };
        let piece = |encoding, reference: Option<ReferenceRange>, blob| EncodedPiece {
            size: target.len() as u64,
            encoding,
            reference,
            blob,
        };
        if let Some((bytes, range)) = &reference {
            // zstd first: it is fast at these levels, and when it already ships a big piece
            // as under 1 % of its size, bsdiff's suffix sort is not worth its minutes.
            consider(
                &mut best,
                piece(
                    Encoding::ZstdRef,
                    Some(range.clone()),
                    zstd_encode(Some(bytes), target, ZstdTuning { level, long })?,
                ),
            );
            // Only where the suffix sort is expensive (target plus reference past 48 MiB:
            // the 32 MiB pieces of a 1 GiB kit's feeds): below that bsdiff costs seconds
            // and still ships scattered row edits about a fifth smaller than zstd at 12.
            let tiny_already = !self.full
                && bytes.len() + target.len() > 48 << 20
                && best
                    .as_ref()
                    .is_some_and(|b| b.blob.len() * 100 < target.len());
            if !tiny_already
                && target.len() as u64 <= self.options.bsdiff_max
                && bytes.len() as u64 <= self.options.bsdiff_max
            {
                // A suffix array of a large reference takes several times its size: run
                // big ones one at a time so `delta make` stays within its memory bound.
                let big_sa = bytes.len() + target.len() > 16 << 20;
                let _one_at_a_time =
                    big_sa.then(|| BIG_BSDIFF.lock().unwrap_or_else(|p| p.into_inner()));
                let (plain, lzma) = bsdiffx::encode(bytes, target)?;
                consider(
                    &mut best,
                    piece(Encoding::Bsdiff, Some(range.clone()), plain),
                );
                consider(
                    &mut best,
                    piece(Encoding::BsdiffLzma, Some(range.clone()), lzma),
                );
            }
            if target.len() <= 4 << 20 && level < 22 {
                consider(
                    &mut best,
                    piece(
                        Encoding::ZstdRef,
                        Some(range.clone()),
                        zstd_encode(
                            Some(bytes),
                            target,
                            ZstdTuning {
                                level: 22,
                                long: false,
                            },
                        )?,
                    ),
                );
            }
        }
        if let Some((bytes, range)) = &reference
            && self.options.record_tier
            && let Some(blob) = crate::records::encode(
                bytes,
                target,
                // The literals are the changed records only (a small fraction of a feed):
                // the full level costs little there, whatever the piece's size.
                ZstdTuning {
                    level: self.options.level,
                    long,
                },
            )?
        {
            consider(
                &mut best,
                piece(Encoding::Records, Some(range.clone()), blob),
            );
        }
        let shrunk = best
            .as_ref()
            .is_some_and(|b| b.blob.len() * 2 <= target.len());
        if !shrunk {
            consider(
                &mut best,
                piece(
                    Encoding::Zstd,
                    None,
                    zstd_encode(None, target, ZstdTuning { level, long })?,
                ),
            );
        }
        best.ok_or_else(|| io::Error::other("no encoding"))
    }
}

/// Plan one target file: `f` names the stream to encode in `target` (a file's bytes, or
/// its plain form), `fallback` the reference to use when no chunk matches. A file may join
/// the solid block only when `solid` allows it and its reference is a file's bytes.
#[allow(clippy::too_many_arguments)]
fn plan_file(
    f: &TreeFile,
    fallback_reference: Option<RefKey>,
    index: &ChunkIndex,
    target: &dyn ContentReader,
    refs: &References<'_>,
    chunker: &Chunker,
    enc: &Encoder<'_>,
    solid: bool,
) -> Result<Plan> {
    let read_target = |off: u64, len: u64| -> Result<Vec<u8>> {
        let bytes = target
            .read_range(&f.sha256, off, len)
            .map_err(io_err(format!("read {}", f.path)))?;
        if bytes.len() as u64 != len {
            return Err(DeltaError::BadDelta(format!(
                "{} is shorter than its manifest says",
                f.path
            )));
        }
        Ok(bytes)
    };
    let chunks = chunk_stream(
        chunker,
        target
            .open(&f.sha256)
            .map_err(io_err(format!("read {}", f.path)))?,
    )
    .map_err(io_err(format!("read {}", f.path)))?;
    let mut shared: HashMap<RefKey, u64> = HashMap::new();
    for (id, _, len) in &chunks {
        if let Some((k, _)) = index.at.get(id) {
            *shared.entry(*k).or_default() += len;
        }
    }
    let reference = shared
        .iter()
        .max_by_key(|(k, n)| (**n, **k))
        .map(|(k, _)| *k)
        .or(fallback_reference);
    let ref_size = reference
        .and_then(|k| index.sizes.get(&k).copied())
        .unwrap_or(0);

    // Pieces: chunk-aligned runs of at most MAX_PIECE bytes.
    let mut pieces: Vec<PieceSpan> = Vec::new();
    for (id, off, len) in &chunks {
        let start_new = pieces.last().is_none_or(|p| p.len + len > MAX_PIECE);
        if start_new {
            pieces.push(PieceSpan {
                offset: *off,
                len: 0,
                matched: Vec::new(),
            });
        }
        if let Some(p) = pieces.last_mut() {
            p.len += len;
            if let Some((k, at)) = index.at.get(id)
                && Some(*k) == reference
            {
                p.matched.push((*at, *len));
            }
        }
    }
    if pieces.is_empty() {
        pieces.push(PieceSpan {
            offset: 0,
            len: 0,
            matched: Vec::new(),
        });
    }
    // Pieces are independent: encode them on both cores.
    let encode_piece = |span: &PieceSpan| -> Result<EncodedPiece> {
        let bytes = read_target(span.offset, span.len)?;
        match reference {
            Some(k) if ref_size > 0 => {
                let (ref_off, ref_len) =
                    reference_window(&span.matched, span.offset, f.size, ref_size);
                let ref_bytes = refs
                    .read_range(k, ref_off, ref_len)
                    .map_err(io_err(format!("read reference for {}", f.path)))?;
                let range = index.range(k, ref_off, ref_bytes.len() as u64);
                enc.best(&bytes, Some((&ref_bytes, range)))
            }
            _ => enc.best(&bytes, None),
        }
        .map_err(io_err(format!("encode {}", f.path)))
    };
    let out: Vec<EncodedPiece> = pieces.par_iter().map(encode_piece).collect::<Result<_>>()?;
    // Small files join the solid block unless bsdiff is what makes them small.
    let bsdiff_wins = out.iter().any(|p| {
        matches!(
            p.encoding,
            Encoding::Bsdiff | Encoding::BsdiffLzma | Encoding::Records
        )
    });
    let raw_reference = reference.is_none_or(|k| !k.decoded);
    if solid
        && raw_reference
        && f.size <= enc.options.solid_max_file
        && out.len() == 1
        // A DSSE envelope joins its block even then: there it travels in its plain form,
        // whose digests match the block's dictionary (crate::envelope).
        && (!bsdiff_wins
            || enc.options.uses_plain_members()
                && envelope::to_plain(&read_target(0, f.size)?).is_some())
    {
        let reference = match reference {
            Some(k) if ref_size > 0 && ref_size <= MAX_SOLID_REFERENCE / 4 => {
                Some(index.range(k, 0, ref_size))
            }
            _ => None,
        };
        return Ok(Plan::Solid {
            reference,
            fallback: out,
        });
    }
    Ok(Plan::Pieces(out))
}

/// The decoded tier for one target file: when it is in a format ouk sees through and
/// re-creates exactly, plan its plain form (spilled under `scratch`) against the baseline's
/// streams, plain forms included. `None` when the file has no exact plain form (it then
/// ships as bytes, as it would without this tier).
#[allow(clippy::too_many_arguments)]
fn plan_recompressed(
    f: &TreeFile,
    fallback: Option<&TreeFile>,
    index: &ChunkIndex,
    target: &dyn ContentReader,
    refs: &References<'_>,
    chunker: &Chunker,
    enc: &Encoder<'_>,
    scratch: &Path,
) -> Result<Option<Plan>> {
    let context = || format!("read {}", f.path);
    let mut plain_file = tempfile::NamedTempFile::new_in(scratch).map_err(io_err(format!(
        "create a scratch file in {}",
        scratch.display()
    )))?;
    let analysis = {
        let mut input = target.open(&f.sha256).map_err(io_err(context()))?;
        let mut out = io::BufWriter::with_capacity(1 << 20, plain_file.as_file_mut());
        let analysis = ouk_recompress::analyze(&mut input, &mut out, &enc.options.limits);
        out.flush()
            .map_err(io_err(format!("write the plain form of {}", f.path)))?;
        analysis
    };
    let analysis = match analysis {
        Ok(a) => a,
        // Reading the target failing is an error; a file that does not decode, or that
        // cannot be re-created exactly, simply ships as bytes.
        Err(ouk_recompress::RecompressError::Io(e)) => return Err(io_err(context())(e)),
        Err(_) => return Ok(None),
    };
    let plain = TreeFile {
        path: f.path.clone(),
        mode: f.mode,
        size: analysis.plain_size,
        sha256: f.sha256,
    };
    let plain_content = crate::content::DirContent::new([(f.sha256, plain_file.path().into())]);
    let fallback_file = fallback;
    // The fallback reference is the predecessor's plain form when it has one.
    let fallback = match (fallback, refs.plain) {
        (Some(b), Some(p)) => {
            let decoded = p
                .describe(&b.sha256)
                .map_err(io_err(format!("read baseline {}", b.path)))?
                .is_some();
            Some(RefKey {
                digest: b.sha256,
                decoded,
            })
        }
        (Some(b), None) => Some(RefKey::raw(b.sha256)),
        (None, _) => None,
    };
    let Plan::Pieces(pieces) = plan_file(
        &plain,
        fallback,
        index,
        &plain_content,
        refs,
        chunker,
        enc,
        false,
    )?
    else {
        return Ok(None);
    };
    let reuse_members_of = match fallback_file {
        Some(b) if analysis.format == ouk_recompress::Format::Zip => reuse_checked(
            f,
            b,
            &analysis,
            plain_file.path(),
            refs.baseline,
            &enc.options.limits,
        )?,
        _ => None,
    };
    let recipe = zstd_encode(
        None,
        &analysis.recipe,
        ZstdTuning {
            level: 19,
            long: false,
        },
    )
    .map_err(io_err(format!("compress the recipe of {}", f.path)))?;
    Ok(Some(Plan::Recompressed {
        format: analysis.format,
        plain_size: analysis.plain_size,
        pieces,
        recipe,
        recipe_size: analysis.recipe.len() as u64,
        reuse_members_of,
    }))
}

/// Whether rebuilding `f` while copying the members of the baseline zip `b` that have the
/// same CRC-32 and sizes gives `f`'s exact bytes (checked by doing it: most members are
/// copied, so it is cheap) and copies at least one: then `Some(b's path)`, which the delta
/// records so the host does the same. Any failure (the baseline is no zip, a member of it
/// differs) is `None`: the host then re-compresses every member, as before.
fn reuse_checked(
    f: &TreeFile,
    b: &TreeFile,
    analysis: &ouk_recompress::Analysis,
    plain: &Path,
    baseline: &dyn ContentReader,
    limits: &ouk_recompress::Limits,
) -> Result<Option<String>> {
    let Ok(mut members) = crate::members::BaselineMembers::index(baseline, &b.sha256) else {
        return Ok(None);
    };
    if members.is_empty() {
        return Ok(None);
    }
    let plain = std::fs::File::open(plain)
        .map_err(io_err(format!("reopen the plain form of {}", f.path)))?;
    let mut plain = io::BufReader::with_capacity(1 << 20, plain);
    let mut out = HashWriter::default();
    let stats = ouk_recompress::rebuild_reusing(
        &analysis.recipe,
        &mut plain,
        &mut out,
        limits,
        Some(&mut members),
    );
    Ok(match stats {
        Ok(s) if s.members_copied > 0 && out.digest() == f.sha256 => Some(b.path.clone()),
        _ => None,
    })
}

/// SHA-256 of what is written.
#[derive(Default)]
struct HashWriter(sha2::Sha256);

impl HashWriter {
    fn digest(self) -> FileDigest {
        use sha2::Digest;
        FileDigest(self.0.finalize().into())
    }
}

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `f` starts like a format the decoded tier sees through.
fn looks_compressed(f: &TreeFile, target: &dyn ContentReader) -> Result<bool> {
    if f.size < 4 {
        return Ok(false);
    }
    let head = target
        .read_range(&f.sha256, 0, 4)
        .map_err(io_err(format!("read {}", f.path)))?;
    Ok(ouk_recompress::sniff(&head).is_some())
}

/// The removed baseline file a new file most likely replaces: one in the same directory
/// (content-addressed blobs and versioned names change their name when rebuilt), the
/// closest in size, within a factor of four.
fn predecessor<'a>(f: &TreeFile, removed: &[&'a TreeFile]) -> Option<&'a TreeFile> {
    let dir = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let want = dir(&f.path);
    removed
        .iter()
        .filter(|b| {
            dir(&b.path) == want && b.size > 0 && b.size / 4 <= f.size && f.size / 4 <= b.size
        })
        .min_by_key(|b| (b.size.abs_diff(f.size), b.path.clone()))
        .copied()
}

/// Whether `bytes` hold, as 64 lowercase hex digits, one of `digests`.
fn repeats_digest(bytes: &[u8], digests: &std::collections::HashSet<[u8; 64]>) -> bool {
    if digests.is_empty() {
        return false;
    }
    let mut run = 0usize;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() || (b'a'..=b'f').contains(b) {
            run += 1;
            if run >= 64 {
                let window: &[u8; 64] = match bytes[i + 1 - 64..=i].try_into() {
                    Ok(w) => w,
                    Err(_) => continue,
                };
                if digests.contains(window) {
                    return true;
                }
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Make the delta that turns `baseline_files` into `target_files`, writing the payload to
/// `payload` and returning the header. Files equal to the baseline at their path are not
/// listed; renamed or re-moded content is listed as `baseline`.
#[allow(clippy::too_many_arguments)]
pub fn make_delta(
    baseline_ref: GenerationRef,
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    target_ref: GenerationRef,
    target_files: &[TreeFile],
    target: &dyn ContentReader,
    options: &MakeOptions,
    payload: &mut dyn Write,
) -> Result<DeltaHeader> {
    make_delta_reporting(
        baseline_ref,
        baseline_files,
        baseline,
        target_ref,
        target_files,
        target,
        options,
        payload,
        &mut ouk_store::progress::ignore,
    )
}

/// Run `work` (the parallel planning) on its own scoped thread while this thread reports
/// the units it counts in `done` to `progress` every 100 ms: the sink is a `FnMut` of this
/// thread, and the planning keeps its biggest-first order across both cores (batching it
/// to report between batches would not). Reporting never changes the plans.
fn planning_reported<T: Send>(
    progress: ouk_store::progress::StepSink<'_>,
    work: impl FnOnce(&std::sync::atomic::AtomicU64) -> T + Send,
) -> T {
    use std::sync::atomic::{AtomicU64, Ordering};
    let done = AtomicU64::new(0);
    let mut reported = 0u64;
    let mut report = |progress: &mut dyn FnMut(ouk_store::progress::Step<'_>)| {
        let now = done.load(Ordering::Relaxed);
        if now > reported {
            progress(ouk_store::progress::Step::Advance(now - reported));
            reported = now;
        }
    };
    let out = std::thread::scope(|scope| {
        let reporter = std::thread::current();
        let counter = &done;
        let worker = scope.spawn(move || {
            let out = work(counter);
            // Wake the reporter now rather than at its next tick.
            reporter.unpark();
            out
        });
        while !worker.is_finished() {
            std::thread::park_timeout(Duration::from_millis(100));
            report(&mut *progress);
        }
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    report(&mut *progress);
    out
}

/// What the target changes against the baseline, by path.
struct Changes<'a> {
    /// Target files that differ from the baseline file at their path (content or mode),
    /// sorted by path: the files a header lists.
    files: Vec<&'a TreeFile>,
    /// Baseline paths the target no longer has, sorted.
    removed: Vec<String>,
    /// The baseline files at those paths (a renamed file's predecessor is among them).
    removed_files: Vec<&'a TreeFile>,
    /// Baseline files by path.
    by_path: HashMap<&'a str, &'a TreeFile>,
    /// Baseline content by digest: a listed file with such content ships nothing.
    have: std::collections::HashSet<FileDigest>,
}

impl<'a> Changes<'a> {
    fn of(baseline_files: &'a [TreeFile], target_files: &'a [TreeFile]) -> Changes<'a> {
        let by_path: HashMap<&str, &TreeFile> = baseline_files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect();
        let mut files: Vec<&TreeFile> = target_files
            .iter()
            .filter(|f| {
                by_path
                    .get(f.path.as_str())
                    .is_none_or(|b| b.sha256 != f.sha256 || b.mode != f.mode)
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let target_paths: std::collections::HashSet<&str> =
            target_files.iter().map(|f| f.path.as_str()).collect();
        let removed_files: Vec<&TreeFile> = baseline_files
            .iter()
            .filter(|b| !target_paths.contains(b.path.as_str()))
            .collect();
        let mut removed: Vec<String> = removed_files.iter().map(|b| b.path.clone()).collect();
        removed.sort();
        Changes {
            files,
            removed,
            removed_files,
            by_path,
            have: baseline_files.iter().map(|f| f.sha256).collect(),
        }
    }
}

/// The plan of every listed file (in `changes.files` order), made on both cores, biggest
/// file first, with the `encode` phase's progress.
fn plan_files(
    changes: &Changes<'_>,
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    target: &dyn ContentReader,
    options: &MakeOptions,
    progress: ouk_store::progress::StepSink<'_>,
) -> Result<Vec<Plan>> {
    let files = &changes.files;
    let chunker = Chunker::new(ChunkerParams::V1);
    // What the host has (by digest) or derives (by path) is neither decoded nor encoded.
    let encode = |f: &TreeFile| {
        !changes.have.contains(&f.sha256) && !options.derived.contains_key(f.path.as_str())
    };
    // The decoded tier runs when a file to ship is compressed: the baseline's compressed
    // files are then decoded (once each, into a scratch directory) and indexed too.
    let mut compressed: std::collections::HashSet<FileDigest> = Default::default();
    if options.see_through {
        for f in files.iter().filter(|f| encode(f)) {
            if looks_compressed(f, target)? {
                compressed.insert(f.sha256);
            }
        }
    }
    let scratch = if compressed.is_empty() {
        None
    } else {
        Some(match &options.scratch {
            Some(d) => ouk_store::fsutil::temp_dir_in(d, ".ouk-delta-plain-")?,
            None => tempfile::Builder::new()
                .prefix("ouk-delta-plain-")
                .tempdir()
                .map_err(io_err("create a scratch directory".into()))?,
        })
    };
    let plain_forms = scratch
        .as_ref()
        .map(|d| PlainForms::new(baseline, d.path(), options.limits.clone()));
    let refs = References {
        baseline,
        plain: plain_forms.as_ref(),
    };
    let index = if files.iter().any(|f| encode(f)) {
        index_baseline(baseline_files, baseline, plain_forms.as_ref(), &chunker)?
    } else {
        let (sizes, paths) = ChunkIndex::sizes_and_paths(baseline_files);
        ChunkIndex {
            at: HashMap::new(),
            sizes,
            paths,
        }
    };
    let full_effort = grant_full_effort(files, &encode, &compressed, options.work_units());
    let plan_one = |i: usize| -> Result<Plan> {
        let f = files[i];
        if changes.have.contains(&f.sha256) {
            return Ok(Plan::Baseline);
        }
        if let Some(by) = options.derived.get(f.path.as_str()) {
            return Ok(Plan::Derived(*by));
        }
        let enc = &Encoder {
            options,
            full: full_effort.contains(&f.path),
        };
        let fallback = changes
            .by_path
            .get(f.path.as_str())
            .copied()
            .or_else(|| predecessor(f, &changes.removed_files));
        let opaque = || {
            let fallback = fallback.map(|b| RefKey::raw(b.sha256));
            plan_file(f, fallback, &index, target, &refs, &chunker, enc, true)
        };
        let Some(dir) = scratch.as_ref().filter(|_| compressed.contains(&f.sha256)) else {
            return opaque();
        };
        match plan_recompressed(
            f,
            fallback,
            &index,
            target,
            &refs,
            &chunker,
            enc,
            dir.path(),
        )? {
            // Under an eighth of the file, bytes cannot do better: their plan (bsdiff on
            // compressed bytes, slow) is skipped.
            Some(d) if d.shipped().saturating_mul(8) < f.size => Ok(d),
            Some(d) => {
                let o = opaque()?;
                Ok(if o.shipped() <= d.shipped() { o } else { d })
            }
            None => opaque(),
        }
    };
    // Biggest first, so the two cores finish together.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].size));
    let planned: Vec<(usize, Result<Plan>)> = planning_reported(progress, |planned_bytes| {
        order
            .par_iter()
            .map(|&i| {
                let plan = plan_one(i);
                planned_bytes.fetch_add(files[i].size, std::sync::atomic::Ordering::Relaxed);
                (i, plan)
            })
            .collect()
    });
    let mut plans: Vec<Option<Plan>> = (0..files.len()).map(|_| None).collect();
    for (i, p) in planned {
        plans[i] = Some(p?);
    }
    Ok(plans
        .into_iter()
        .map(|p| p.unwrap_or(Plan::Baseline))
        .collect())
}

/// The payload as it is written: blobs back to back, each placed at the running offset.
struct PayloadWriter<'w> {
    out: &'w mut dyn Write,
    written: u64,
}

impl PayloadWriter<'_> {
    /// Append `blob`; its (offset, length) in the payload.
    fn write(&mut self, blob: &[u8]) -> Result<(u64, u64)> {
        self.out
            .write_all(blob)
            .map_err(io_err("write delta payload".into()))?;
        let at = self.written;
        self.written += blob.len() as u64;
        Ok((at, blob.len() as u64))
    }

    /// Append the pieces, then `tail` (a recipe) when given; the pieces as a header lists
    /// them and the tail's (offset, length).
    fn pieces(
        &mut self,
        pieces: Vec<EncodedPiece>,
        tail: Option<&[u8]>,
    ) -> Result<(Vec<Piece>, (u64, u64))> {
        let mut out = Vec::with_capacity(pieces.len());
        for p in pieces {
            let (offset, length) = self.write(&p.blob)?;
            out.push(Piece {
                size: p.size,
                encoding: p.encoding,
                reference: p.reference,
                offset,
                length,
            });
        }
        let tail = match tail {
            Some(blob) => self.write(blob)?,
            None => (0, 0),
        };
        Ok((out, tail))
    }
}

/// A solid block being filled: its members' raw bytes, its explicit references and the
/// reference bytes its prefix will hold.
#[derive(Default)]
struct BlockFill {
    raw: Vec<u8>,
    references: Vec<ReferenceRange>,
    reference_bytes: u64,
}

/// Write each planned file's payload and say where its bytes come from. Small files go
/// into the solid or trailer block (filled in `blocks`) while they fit, else ship their
/// own pieces.
fn write_sources(
    files: &[&TreeFile],
    plans: Vec<Plan>,
    by_path: &HashMap<&str, &TreeFile>,
    target: &dyn ContentReader,
    payload: &mut PayloadWriter<'_>,
    blocks: &mut [BlockFill; 2],
    plain_members: bool,
) -> Result<Vec<DeltaFile>> {
    // Digests the header will not list (the host computes them): a small file repeating
    // one of them belongs in the trailer block.
    let rebuilt_hex: std::collections::HashSet<[u8; 64]> = files
        .iter()
        .zip(&plans)
        .filter(|(_, p)| !matches!(p, Plan::Baseline | Plan::Derived(_)))
        .filter_map(|(f, _)| f.sha256.to_hex().into_bytes().try_into().ok())
        .collect();
    let mut out = Vec::with_capacity(files.len());
    for (f, plan) in files.iter().zip(plans) {
        let mut form = None;
        let source = match plan {
            Plan::Baseline => Source::Baseline,
            Plan::Derived(by) => Source::Derived { by },
            Plan::Solid {
                reference,
                fallback,
            } => {
                let mut bytes = Vec::with_capacity(f.size as usize);
                target
                    .open(&f.sha256)
                    .and_then(|mut r| r.read_to_end(&mut bytes))
                    .map_err(io_err(format!("read {}", f.path)))?;
                // A DSSE envelope travels with its payload decoded (crate::envelope).
                if let Some(plain) = envelope::to_plain(&bytes).filter(|_| plain_members) {
                    form = Some(MemberForm::DssePayload(plain.len() as u64));
                    bytes = plain;
                }
                let block = if repeats_digest(&bytes, &rebuilt_hex) {
                    Block::Trailer
                } else {
                    Block::Solid
                };
                let fill = &mut blocks[block as usize];
                // The member's same-path baseline file is part of the prefix implicitly;
                // another reference (a renamed predecessor) is listed explicitly.
                let implicit = by_path.get(f.path.as_str()).map_or(0, |b| b.size);
                let explicit = reference.filter(|r| {
                    r.path != f.path && !fill.references.iter().any(|s| s.path == r.path)
                });
                let ref_len = implicit + explicit.as_ref().map_or(0, |r| r.length);
                if fill.raw.len() as u64 + bytes.len() as u64 > MAX_SOLID
                    || fill.reference_bytes + ref_len > MAX_SOLID_REFERENCE
                {
                    form = None;
                    Source::Pieces {
                        pieces: payload.pieces(fallback, None)?.0,
                    }
                } else {
                    fill.raw.extend_from_slice(&bytes);
                    fill.reference_bytes += ref_len;
                    fill.references.extend(explicit);
                    block.source()
                }
            }
            Plan::Pieces(pieces) => Source::Pieces {
                pieces: payload.pieces(pieces, None)?.0,
            },
            Plan::Recompressed {
                format,
                plain_size,
                pieces,
                recipe,
                recipe_size,
                reuse_members_of,
            } => {
                let (pieces, (offset, length)) = payload.pieces(pieces, Some(&recipe))?;
                Source::Recompressed {
                    format,
                    plain_size,
                    pieces,
                    recipe: RecipeRef {
                        offset,
                        length,
                        size: recipe_size,
                    },
                    reuse_members_of,
                }
            }
        };
        out.push(DeltaFile {
            path: f.path.clone(),
            mode: f.mode,
            size: f.size,
            sha256: source.declares_digest().then_some(f.sha256),
            source,
            form,
        });
    }
    Ok(out)
}

/// Compress each block that has members against its prefix (its references, then its
/// digest dictionary) and record it in `header`.
fn write_blocks(
    header: &mut DeltaHeader,
    blocks: [BlockFill; 2],
    changes: &Changes<'_>,
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    options: &MakeOptions,
    payload: &mut PayloadWriter<'_>,
) -> Result<()> {
    let digest_of: HashMap<&str, FileDigest> = changes
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256))
        .collect();
    for (block, fill) in [Block::Solid, Block::Trailer].into_iter().zip(blocks) {
        // A block with members is written even when they are all empty files: a member
        // must name a block that exists.
        if header.block_members(block).is_empty() {
            continue;
        }
        *header.block_mut(block) = Some(SolidBlock {
            references: fill.references,
            offset: 0,
            length: 0,
            size: fill.raw.len() as u64,
        });
        let dictionary = header.dictionary(block, &|f: &DeltaFile| {
            digest_of.get(f.path.as_str()).copied()
        })?;
        let mut read = |r: &ReferenceRange, prefix: &mut Vec<u8>| -> Result<()> {
            let b = changes.by_path.get(r.path.as_str()).ok_or_else(|| {
                DeltaError::BadDelta(format!("reference {} is not in the baseline", r.path))
            })?;
            let bytes = baseline
                .read_range(&b.sha256, r.offset, r.length)
                .map_err(io_err(format!("read reference {}", r.path)))?;
            prefix.extend_from_slice(&bytes);
            Ok(())
        };
        let prefix = envelope::block_prefix(header, block, baseline_files, &mut read, &dictionary)?;
        let small = fill.raw.len() < 8 << 20;
        let tuning = ZstdTuning {
            level: if small { 22 } else { options.level.max(19) },
            long: !small || prefix.len() > 8 << 20,
        };
        let blob = zstd_encode(Some(&prefix), &fill.raw, tuning)
            .map_err(io_err(format!("compress the {}", block.name())))?;
        let (offset, length) = payload.write(&blob)?;
        if let Some(s) = header.block_mut(block) {
            s.offset = offset;
            s.length = length;
        }
    }
    Ok(())
}

/// [`make_delta`], reporting the `encode` phase to `progress`: its total is the bytes of
/// the target files that differ from the baseline, advanced as each file's plan is made
/// (the slow part: chunk matching and encoding); indexing the baseline before it and
/// writing the payload after it count nothing.
#[allow(clippy::too_many_arguments)]
pub fn make_delta_reporting(
    baseline_ref: GenerationRef,
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    target_ref: GenerationRef,
    target_files: &[TreeFile],
    target: &dyn ContentReader,
    options: &MakeOptions,
    payload: &mut dyn Write,
    progress: ouk_store::progress::StepSink<'_>,
) -> Result<DeltaHeader> {
    let changes = Changes::of(baseline_files, target_files);
    progress(ouk_store::progress::Step::Phase {
        name: "encode",
        total: Some(changes.files.iter().map(|f| f.size).sum()),
        unit: ouk_store::progress::Unit::Bytes,
    });
    let plans = plan_files(
        &changes,
        baseline_files,
        baseline,
        target,
        options,
        progress,
    )?;
    let mut payload = PayloadWriter {
        out: payload,
        written: 0,
    };
    let mut blocks: [BlockFill; 2] = Default::default();
    let files = write_sources(
        &changes.files,
        plans,
        &changes.by_path,
        target,
        &mut payload,
        &mut blocks,
        options.uses_plain_members(),
    )?;
    let mut header = DeltaHeader {
        removed: changes.removed.clone(),
        files,
        ..DeltaHeader::new(baseline_ref, target_ref)
    };
    write_blocks(
        &mut header,
        blocks,
        &changes,
        baseline_files,
        baseline,
        options,
        &mut payload,
    )?;
    header.payload_size = payload.written;
    // The oldest format that names every tier the delta uses.
    if header.uses_decoded_tier() {
        header.format = FORMAT_DECODED.into();
        header.plain_forms = ouk_recompress::PLAIN_VERSION;
    }
    if header.uses_records() {
        header.format = FORMAT_RECORDS.into();
    }
    if header.uses_derived() {
        header.format = FORMAT_DERIVED.into();
    }
    if header.uses_member_forms() {
        header.format = FORMAT_PLAIN_MEMBERS.into();
    }
    // Never sign what no host would accept.
    header.validate(u64::MAX)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_digest_is_found_only_whole() {
        let d = FileDigest::of(b"x").to_hex();
        let set: std::collections::HashSet<[u8; 64]> =
            [d.clone().into_bytes().try_into().unwrap()].into();
        assert!(repeats_digest(
            format!("{{\"sha256\":\"{d}\"}}").as_bytes(),
            &set
        ));
        assert!(
            repeats_digest(format!("ab{d}").as_bytes(), &set),
            "inside a longer run"
        );
        assert!(
            !repeats_digest(&d.as_bytes()[..63], &set),
            "a prefix is not the digest"
        );
        assert!(!repeats_digest(d.to_uppercase().as_bytes(), &set));
        assert!(!repeats_digest(
            FileDigest::of(b"y").to_hex().as_bytes(),
            &set
        ));
        assert!(!repeats_digest(d.as_bytes(), &Default::default()));
    }

    #[test]
    fn windows_stay_inside_the_reference_and_under_the_cap() {
        let big = 10 * MAX_REFERENCE;
        for (matched, off) in [
            (vec![], 0u64),
            (vec![(5 * MAX_REFERENCE, 1000)], 0),
            (vec![(big - 10, 10)], 0),
            (vec![(0, 10), (big - 10, 10)], 0),
        ] {
            let (s, l) = reference_window(&matched, off, big, big);
            assert!(s + l <= big && l <= MAX_REFERENCE);
        }
        assert_eq!(reference_window(&[], 0, 100, 100), (0, 100));
    }
}
