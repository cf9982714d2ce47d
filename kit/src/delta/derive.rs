//! Ship information, derive the rest: the files of a delta's target that the host computes
//! from the rest of the target tree instead of decoding them from the payload
//! ([`ouk_delta::format::Source::Derived`], format `ouk-delta/5`).
//!
//! Today one file is derived: the feed index ([`FEED_INDEX_PATH`]), which `kit build`
//! writes by running the feed indexer over the kit's feeds, and which changes on every row
//! a feed changes (a new row hash per changed row: entropy a patch cannot shrink). The
//! host has the indexer and, once the delta is applied, the target's feeds.
//!
//! Invariants:
//! - *make* ([`derivable`]) marks a file derived only after computing it exactly as the
//!   host will ([`index_target_feeds`], the same function on both sides, default indexer
//!   options) and finding it byte-identical to the target kit's file; otherwise the file
//!   is shipped as before (a kit built with other indexer options, or a feed with a bad
//!   row, costs bytes, never correctness);
//! - *apply* ([`derive_files`]) computes each derived file only from verified bytes: the
//!   files the delta rebuilt (hashed by the sink as they were written to the private
//!   staging tree) and baseline files read through the verified reference and hashed
//!   again as they are copied. The result goes through the same sink as a rebuilt file and
//!   its SHA-256 must equal the one the signed header declares, else the delta is refused
//!   (a digest failure) before anything is committed: the generation stays as it was. The
//!   importer then checks it against the rebuilt manifest like any other file.
//! - An index written from rows the derive holds is streamed to the sink, hashed by the
//!   thread that writes it (the bytes the sink takes are the bytes hashed, in memory);
//!   one that is not the declared index is removed from staging and the full scan, which
//!   reads only verified files, decides.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ouk_delta::apply::{CopiedSoFar, ProducedDigest, RebuiltSink};
use ouk_delta::content::{ContentReader, TreeFile};
use ouk_delta::format::{DeltaFile, DeltaHeader, Derivation, Source};
use ouk_store::FileDigest;
use ouk_store::fsutil::HashingWriter;
use rayon::prelude::*;

use crate::error::{IoContext, KitError, Result};
use crate::feeds::FEED_INDEX_PATH;
use crate::feeds::diff::FeedRowsOf;
use crate::feeds::host::ComputedChanges;
use crate::feeds::incremental::{FeedRows, PredecessorIndex, RowDiff};
use crate::feeds::index::FeedRow;
use crate::feeds::indexer::{FeedFile, IndexOptions, feed_source, index_feeds_with, select_feeds};
use crate::feeds::same_bytes::{PositionedFeed, SameBytes};
use crate::feeds::scan::{Compression, feed_compression, open_feed, open_reader};
use ouk_delta::apply::CopiedFrom;

/// The feed index of the target whose feed files are `feeds` (kit path, file on disk),
/// written to a new file in `scratch` (sort runs spill there too), with its SHA-256.
/// Default indexer options: what a kit built without `--id-field`/`--skip-bad-rows` holds.
/// `shortcut` may answer a feed's rows instead of the indexer scanning it
/// ([`ouk_feeds::indexer::index_feeds_with`]).
fn index_target_feeds<'r>(
    feeds: &[FeedFile],
    scratch: &Path,
    shortcut: &dyn Fn(&str, &Path) -> Option<&'r [FeedRow]>,
) -> Result<(tempfile::NamedTempFile, FileDigest)> {
    let file = tempfile::NamedTempFile::new_in(scratch)
        .ctx(|| format!("create a temporary file in {}", scratch.display()))?;
    // Written and later read through the handle `NamedTempFile` created (O_EXCL), never
    // through its name again: what the sink stores is what was hashed here.
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file.as_file()));
    let options = IndexOptions {
        temp_dir: Some(scratch.to_path_buf()),
        ..IndexOptions::default()
    };
    let (_, out) = index_feeds_with(feeds, &options, out, shortcut)?;
    let (sha, _, inner) = out.finish();
    inner
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("write {}", file.path().display()))?;
    Ok((file, FileDigest(sha)))
}

/// The target's files the host can derive, for [`ouk_delta::plan::MakeOptions::derived`]:
/// `files` are the target kit's files, unpacked under `dir`. Empty when the target has no
/// feed index or when the indexer does not reproduce it byte for byte.
pub(crate) fn derivable(
    files: &[TreeFile],
    dir: &Path,
    scratch: &Path,
) -> Result<BTreeMap<String, Derivation>> {
    let mut out = BTreeMap::new();
    let Some(index) = files.iter().find(|f| f.path == FEED_INDEX_PATH) else {
        return Ok(out);
    };
    let on_disk: Vec<(String, PathBuf)> = files
        .iter()
        .map(|f| (f.path.clone(), dir.join(&f.path)))
        .collect();
    let feeds = select_feeds(on_disk.iter().map(|(p, d)| (p.as_str(), d.as_path())));
    // An indexer error here (a bad row the kit was built to skip, say) means only that
    // the host could not derive it either: the file is shipped.
    match index_target_feeds(&feeds, scratch, &|_, _| None) {
        Ok((_, sha)) if sha == index.sha256 => {
            out.insert(FEED_INDEX_PATH.to_string(), Derivation::FeedsIndex);
        }
        Ok(_) => tracing::info!("delta make: the feed index is not the indexer's: shipped"),
        Err(e) => tracing::info!("delta make: the feed index cannot be derived ({e}): shipped"),
    }
    Ok(out)
}

/// The derived feed index as [`derive_files`] hands it beside the sink: the rows it was
/// written from, when the derive held them, or the file the full scan wrote.
pub(crate) enum DerivedIndex<'a> {
    /// Rows held ([`HeldRows`]): the index is being streamed into the sink, not on disk.
    Rows(&'a HeldRows),
    /// The index written by the full scan, already checked against the signed digest.
    File(&'a Path),
}

/// What the importer computes beside the sink from the derived feed index (the feed
/// changes), kept only when the index turns out to be the declared one.
pub(crate) type BesideIndex<'a> =
    dyn Fn(DerivedIndex<'_>) -> Option<crate::feeds::host::ComputedChanges> + Sync + 'a;

/// Compute every derived file of `header` on the host, after
/// [`ouk_delta::apply::apply_delta`] wrote the rebuilt files to `tree` and `sink`:
/// `baseline` is the baseline generation's file list, `rebuilt` what the apply returned,
/// `copies` the runs its record patches copied from the baseline
/// ([`ouk_delta::apply::RebuiltSink::copied`]; rows inside them are not read again),
/// `reference` the verified baseline content, `scratch` a private directory. Each derived
/// file goes into `sink` and must hash to its declared SHA-256. `beside_index` runs on a
/// thread of its own while the sink stores the feed index (the importer diffs it against
/// the active generation's there); what it returns is kept when the index is the declared
/// one. Returns the derived paths with their digests (to add to the rebuilt ones) and
/// what `beside_index` returned.
#[allow(clippy::too_many_arguments)]
pub(crate) fn derive_files(
    header: &DeltaHeader,
    baseline: &[TreeFile],
    rebuilt: &[(String, FileDigest)],
    copies: &HashMap<String, Vec<CopiedFrom>>,
    tree: &Path,
    reference: &dyn ContentReader,
    scratch: &Path,
    sink: &mut dyn RebuiltSink,
    beside_index: &BesideIndex<'_>,
) -> Result<DerivedFiles> {
    if !header.uses_derived() {
        return Ok(DerivedFiles::default());
    }
    let rebuilt: HashMap<String, FileDigest> = rebuilt.iter().cloned().collect();
    let target = header.target_files(baseline, &rebuilt)?;
    let mut out = Vec::new();
    let mut beside = None;
    for f in &header.files {
        let (Source::Derived { by }, Some(expected)) = (&f.source, f.sha256) else {
            continue;
        };
        match by {
            Derivation::FeedsIndex => {
                let held =
                    held_rows_from_baseline(baseline, &target, &rebuilt, copies, tree, reference);
                // Only the feed index at its own path is handed beside the store: step 6b
                // records the changes of that path.
                let beside_index = (f.path == FEED_INDEX_PATH).then_some(beside_index);
                if let Some((feeds, held)) = held {
                    let (put, changes) = put_index_streamed(f, &feeds, &held, sink, beside_index)?;
                    // Freeing ~400k rows' strings takes tens of milliseconds the import
                    // need not wait for.
                    let _ = std::thread::Builder::new().spawn(move || drop(held));
                    if put == Some(expected) {
                        tracing::debug!(step = "check", path = %f.path, "derived file streamed");
                        out.push((f.path.clone(), expected));
                        beside = changes;
                        continue;
                    }
                    // Not the declared index (or its rows could not be written): what it
                    // staged goes, and the full scan decides.
                    tracing::info!(path = %f.path, "the feed index from the baseline's is not the declared one: indexing every feed");
                    remove_staged(tree, &f.path)?;
                }
                let feeds = target_feeds(&target, &rebuilt, tree, reference, scratch)?;
                let (file, sha) = index_target_feeds(&feeds, scratch, &|_, _| None)?;
                let (actual, changes) =
                    put_index_file(f, &file, sha == expected, sink, beside_index)?;
                if actual != expected {
                    return Err(KitError::Delta(ouk_delta::DeltaError::DigestMismatch {
                        path: f.path.clone(),
                        expected,
                        actual,
                    }));
                }
                out.push((f.path.clone(), actual));
                beside = changes;
            }
        }
        tracing::debug!(step = "check", path = %f.path, "derived file stored");
    }
    Ok(DerivedFiles {
        files: out,
        feed_changes: beside,
    })
}

/// What [`derive_files`] derived.
#[derive(Default)]
pub(crate) struct DerivedFiles {
    /// The derived paths with their digests.
    pub(crate) files: Vec<(String, FileDigest)>,
    /// What the `beside_index` hook returned for the declared feed index.
    pub(crate) feed_changes: Option<ComputedChanges>,
}

/// Put the feed index written from `held` straight into `sink`: a thread encodes and
/// hashes it into pieces of [`INDEX_PIECE`] that the sink stores as they come (nothing is
/// written to scratch, and the sink takes the producer's SHA-256 instead of hashing again),
/// while `beside_index` diffs the rows on a third. Returns the digest of what the sink
/// took, `None` when the rows could not be written (the sink's own errors are errors),
/// and what `beside_index` returned.
fn put_index_streamed(
    f: &DeltaFile,
    feeds: &[FeedFile],
    held: &HeldRows,
    sink: &mut dyn RebuiltSink,
    beside_index: Option<&BesideIndex<'_>>,
) -> Result<(Option<FileDigest>, Option<ComputedChanges>)> {
    let digest = ProducedDigest::default();
    let sink_stopped = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (digest, sink_stopped) = (&digest, &sink_stopped);
        let producer = s.spawn(move || {
            let out = HashingWriter::new(PieceWriter {
                to: tx,
                piece: Vec::with_capacity(INDEX_PIECE),
                stopped: sink_stopped,
            });
            let (_, out) = index_feeds_with(feeds, &IndexOptions::default(), out, &|rel, _| {
                held.target_rows(rel)
            })
            .map_err(|e| tracing::debug!("the feed index from held rows failed: {e}"))
            .ok()?;
            let (sha, _, mut pieces) = out.finish();
            std::io::Write::flush(&mut pieces).ok()?;
            // Set before the pipe closes: the sink asks once its reader is at the end.
            digest.set(FileDigest(sha));
            Some(FileDigest(sha))
        });
        let beside = beside_index.map(|b| s.spawn(move || b(DerivedIndex::Rows(held))));
        let mut input = PieceReader {
            from: rx,
            piece: Vec::new(),
            at: 0,
        };
        let put = sink.put_copying(f, &mut input, &CopiedSoFar::default(), Some(digest));
        // The producer blocked on a piece nobody reads is released here.
        drop(input);
        let produced = match producer.join() {
            Ok(p) => p,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let changes = match beside.map(|b| b.join()) {
            Some(Ok(c)) => c,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => None,
        };
        match (produced, put) {
            (Some(sha), Ok(put)) => Ok((Some(put).filter(|p| *p == sha), changes)),
            // The sink failed on its own (a full disk): its error is the one.
            (_, Err(e)) if sink_stopped.load(Ordering::Relaxed) || produced.is_some() => {
                Err(e.into())
            }
            // The rows could not be written: the put ended early for that alone.
            _ => Ok((None, None)),
        }
    })
}

/// Put the feed index the full scan wrote (`file`) into `sink`; `beside_index` runs
/// meanwhile when `verified` (its digest is the declared one). Returns the SHA-256 the
/// sink computed and what `beside_index` returned.
fn put_index_file(
    f: &DeltaFile,
    file: &tempfile::NamedTempFile,
    verified: bool,
    sink: &mut dyn RebuiltSink,
    beside_index: Option<&BesideIndex<'_>>,
) -> Result<(FileDigest, Option<ComputedChanges>)> {
    let mut input = file.as_file();
    std::io::Seek::rewind(&mut input).ctx(|| format!("rewind the derived {}", f.path))?;
    std::thread::scope(|s| {
        let beside = beside_index
            .filter(|_| verified)
            .map(|b| s.spawn(move || b(DerivedIndex::File(file.path()))));
        let put = sink.put(f, &mut input);
        let changes = match beside.map(|b| b.join()) {
            Some(Ok(c)) => c,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => None,
        };
        Ok((put?, changes))
    })
}

/// Remove what a put staged at `tree/<path>` (none is fine).
fn remove_staged(tree: &Path, path: &str) -> Result<()> {
    match fs::remove_file(tree.join(path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)
            .ctx(|| format!("remove the staged {path}"))
            .map_err(Into::into),
        _ => Ok(()),
    }
}

/// Bytes of each piece the streamed feed index is handed to the sink in.
const INDEX_PIECE: usize = 1 << 20;

/// The write end of the pipe from the feed index writer to the sink.
struct PieceWriter<'a> {
    to: std::sync::mpsc::SyncSender<Vec<u8>>,
    piece: Vec<u8>,
    /// Set when the sink stopped reading (its own failure).
    stopped: &'a AtomicBool,
}

impl PieceWriter<'_> {
    fn hand_on(&mut self) -> std::io::Result<()> {
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(INDEX_PIECE));
        self.to.send(piece).map_err(|_| {
            self.stopped.store(true, Ordering::Relaxed);
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the sink stopped")
        })
    }
}

impl std::io::Write for PieceWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.piece.extend_from_slice(bytes);
        if self.piece.len() >= INDEX_PIECE {
            self.hand_on()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        self.hand_on()
    }
}

/// The read end: the pieces as they come; the end once the writer is gone.
struct PieceReader {
    from: std::sync::mpsc::Receiver<Vec<u8>>,
    piece: Vec<u8>,
    at: usize,
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.piece.len() {
            match self.from.recv() {
                Ok(piece) => {
                    self.piece = piece;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The rows behind a feed index the derive computed from the baseline's: every feed of
/// the baseline's index, and the rows it wrote for each target feed. Their diff is the
/// diff of the two indexes ([`ouk_feeds::diff::diff_rows`]), so the importer need not read
/// either index again for the feed changes it records.
pub(crate) struct HeldRows {
    baseline: Vec<FeedRows>,
    /// Per target feed (kit path, in index order): its rows, `None` for a feed the indexer
    /// scans (new, or its row diff declined).
    target: Vec<(String, Option<TargetRows>)>,
}

/// A target feed's rows, as [`held_rows_from_baseline`] found them.
enum TargetRows {
    /// The baseline feed's (`HeldRows::baseline[i]`), unchanged.
    Baseline(usize),
    /// Computed from the baseline feed's rows and the feed's row diff.
    Rebuilt(Vec<FeedRow>),
}

impl HeldRows {
    fn rows_of<'a>(&'a self, rows: &'a TargetRows) -> &'a [FeedRow] {
        match rows {
            TargetRows::Baseline(i) => self.baseline.get(*i).map_or(&[], |f| &f.rows),
            TargetRows::Rebuilt(rows) => rows,
        }
    }

    /// The rows of target feed `rel`, when held.
    fn target_rows(&self, rel: &str) -> Option<&[FeedRow]> {
        let (_, rows) = self.target.iter().find(|(r, _)| r == rel)?;
        rows.as_ref().map(|r| self.rows_of(r))
    }

    /// Every feed of the baseline's index and of the target's, with its source, for
    /// [`ouk_feeds::diff::diff_rows`]: the baseline's, then the target's. `None` when a
    /// target feed was scanned (its rows went into the index without being held).
    pub(crate) fn feeds(&self) -> Option<(Vec<FeedRowsOf<'_>>, Vec<FeedRowsOf<'_>>)> {
        let baseline = self
            .baseline
            .iter()
            .map(|f| FeedRowsOf {
                source: &f.header.source,
                rows: &f.rows,
            })
            .collect();
        let target = self
            .target
            .iter()
            .map(|(rel, rows)| {
                Some(FeedRowsOf {
                    // Every target feed has a source: `select_feeds` kept only those.
                    source: feed_source(rel)?,
                    rows: self.rows_of(rows.as_ref()?),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((baseline, target))
    }
}

/// The rows of the target's feed index computed from the baseline's (verified, read
/// through `reference`): an unchanged feed keeps its rows, a rebuilt one is diffed row by
/// row against its baseline feed at the same path ([`ouk_feeds::incremental`]), and a new
/// feed, or one whose diff declines, is left to the indexer to scan (its rows are then not
/// held). `None` when the shortcut cannot answer at all (no baseline index, or an
/// unchanged feed whose rows it lacks): the caller then indexes every feed from scratch.
/// The index written from these rows is checked against the signed digest like the full
/// scan's, so a wrong shortcut costs a rescan, never a wrong file. Returns the target's
/// feeds (for [`index_feeds_with`]) and the rows, with the baseline index's.
fn held_rows_from_baseline(
    baseline: &[TreeFile],
    target: &[TreeFile],
    rebuilt: &HashMap<String, FileDigest>,
    copies: &HashMap<String, Vec<CopiedFrom>>,
    tree: &Path,
    reference: &dyn ContentReader,
) -> Option<(Vec<FeedFile>, HeldRows)> {
    let before_index = baseline.iter().find(|f| f.path == FEED_INDEX_PATH)?;
    let before = PredecessorIndex::new(std::io::BufReader::with_capacity(
        1 << 20,
        reference.open(&before_index.sha256).ok()?,
    ))
    .ok()?;
    let in_baseline: HashMap<&str, &TreeFile> =
        baseline.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut on_disk = Vec::new();
    for f in target.iter().filter(|f| feed_source(&f.path).is_some()) {
        match rebuilt.get(&f.path) {
            Some(d) if *d == f.sha256 => on_disk.push((f.path.clone(), tree.join(&f.path))),
            // Not rebuilt: the baseline's own file, whose rows its index holds.
            _ => on_disk.push((f.path.clone(), PathBuf::new())),
        }
    }
    let feeds = select_feeds(on_disk.iter().map(|(p, d)| (p.as_str(), d.as_path())));
    // The rebuilt feeds are diffed against their baseline feeds on every core while this
    // thread reads the baseline index (every feed of it: the feed changes need them all).
    let options = IndexOptions::default();
    let (before, diffs) = rayon::join(
        || before.every_feed().ok().flatten(),
        || {
            feeds
                .par_iter()
                .map(|(rel, path)| {
                    diff_from_baseline(rel, path, &in_baseline, copies, reference, &options)
                })
                .collect::<Vec<_>>()
        },
    );
    let before = before?;
    tracing::debug!(
        step = "check",
        "baseline feed index read and rebuilt feeds diffed"
    );
    let at: HashMap<&str, usize> = before
        .iter()
        .enumerate()
        .map(|(i, f)| (f.header.feed.as_str(), i))
        .collect();
    let target: Vec<(String, Option<TargetRows>)> = feeds
        .iter()
        .zip(diffs)
        .map(|((rel, path), diff)| {
            let was = at.get(rel.as_str()).map(|&i| (i, &before[i]));
            let rows = match (was, diff) {
                // Not rebuilt: the baseline's rows, when it skipped none.
                (Some((i, b)), None) if path.as_os_str().is_empty() && b.header.skipped == 0 => {
                    Some(TargetRows::Baseline(i))
                }
                (Some((_, b)), Some(d)) => d.apply_to(b).map(TargetRows::Rebuilt),
                // A new feed, or one whose diff declined: the indexer scans its file.
                _ => None,
            };
            (rel.clone(), rows)
        })
        .collect();
    // A feed the delta did not rebuild has no file of its own to scan: without its rows
    // from the baseline the shortcut cannot answer at all.
    if feeds
        .iter()
        .zip(&target)
        .any(|((_, path), (_, rows))| path.as_os_str().is_empty() && rows.is_none())
    {
        return None;
    }
    let held = HeldRows {
        baseline: before,
        target,
    };
    Some((feeds, held))
}

/// How rebuilt feed `rel` (at `path`; empty for a feed the delta did not rebuild, which
/// has no diff) differs from the baseline feed at the same path, if there is one. When the
/// apply copied runs of that baseline feed into it, only the rows outside them are read
/// ([`RowDiff::of_same_bytes`]); else, or when that declines, both feeds are read whole.
fn diff_from_baseline(
    rel: &str,
    path: &Path,
    in_baseline: &HashMap<&str, &TreeFile>,
    copies: &HashMap<String, Vec<CopiedFrom>>,
    reference: &dyn ContentReader,
    options: &IndexOptions,
) -> Option<RowDiff> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let was = in_baseline.get(rel)?;
    let compression = feed_compression(rel).unwrap_or(Compression::None);
    if compression == Compression::None
        && let Some(diff) = copies
            .get(rel)
            .and_then(|c| diff_outside_copies(rel, path, was, c, reference, options))
    {
        return Some(diff);
    }
    let predecessor = || {
        let raw = std::io::BufReader::with_capacity(1 << 20, reference.open(&was.sha256)?);
        open_reader(raw, compression)
    };
    RowDiff::of(&predecessor, open_feed(path).ok()?, options)
}

/// [`RowDiff::of_same_bytes`] of rebuilt feed `rel` (staged at `path`) against the
/// baseline feed `was`, given the runs the apply copied from it. Positioned reads only:
/// the rows inside the runs (nearly all of a daily feed) are never read.
fn diff_outside_copies(
    rel: &str,
    path: &Path,
    was: &TreeFile,
    copies: &[CopiedFrom],
    reference: &dyn ContentReader,
    options: &IndexOptions,
) -> Option<RowDiff> {
    use std::os::unix::fs::FileExt;
    let runs: Vec<SameBytes> = copies
        .iter()
        .filter(|c| c.baseline == rel)
        .flat_map(|c| &c.runs)
        .map(|r| SameBytes {
            successor: r.output,
            predecessor: r.reference,
            len: r.len,
        })
        .collect();
    if runs.is_empty() {
        return None;
    }
    let staged = File::open(path).ok()?;
    let staged_size = staged.metadata().ok()?.len();
    let read_staged = |at: u64, len: usize| -> std::io::Result<Vec<u8>> {
        let n = usize::try_from(staged_size.saturating_sub(at))
            .map_err(std::io::Error::other)?
            .min(len);
        let mut buf = vec![0; n];
        staged.read_exact_at(&mut buf, at)?;
        Ok(buf)
    };
    let read_baseline = |at: u64, len: usize| reference.read_range(&was.sha256, at, len as u64);
    RowDiff::of_same_bytes(
        &PositionedFeed::new(was.size, &read_baseline),
        &PositionedFeed::new(staged_size, &read_staged),
        &runs,
        options,
    )
}

/// The target's feed files on disk: a rebuilt one where the apply staged it, a baseline
/// one copied out of `reference` into `scratch` and checked against its digest (the
/// indexer reads files by path; a copy is what makes the bytes it reads the verified
/// ones).
fn target_feeds(
    target: &[TreeFile],
    rebuilt: &HashMap<String, FileDigest>,
    tree: &Path,
    reference: &dyn ContentReader,
    scratch: &Path,
) -> Result<Vec<FeedFile>> {
    let copies = scratch.join("derive-feeds");
    let mut on_disk = Vec::new();
    for f in target.iter().filter(|f| feed_source(&f.path).is_some()) {
        if rebuilt.get(&f.path) == Some(&f.sha256) {
            on_disk.push((f.path.clone(), tree.join(&f.path)));
            continue;
        }
        let to = copies.join(&f.path);
        copy_verified(reference, f, &to)?;
        on_disk.push((f.path.clone(), to));
    }
    Ok(select_feeds(
        on_disk.iter().map(|(p, d)| (p.as_str(), d.as_path())),
    ))
}

/// Copy the content of `f` from `reference` to `to`, refusing it unless it hashes to
/// `f.sha256`.
fn copy_verified(reference: &dyn ContentReader, f: &TreeFile, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
    }
    let mut input = reference
        .open(&f.sha256)
        .ctx(|| format!("read the baseline {}", f.path))?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(
        1 << 20,
        // Created new in the import's private scratch: never over, nor through, a name
        // that is already there.
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .ctx(|| format!("create {}", to.display()))?,
    ));
    std::io::copy(&mut (&mut input).take(f.size.saturating_add(1)), &mut out)
        .ctx(|| format!("copy the baseline {}", f.path))?;
    let (sha, _, inner) = out.finish();
    let actual = FileDigest(sha);
    inner
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("write {}", to.display()))?;
    if actual != f.sha256 {
        return Err(KitError::Delta(ouk_delta::DeltaError::DigestMismatch {
            path: f.path.clone(),
            expected: f.sha256,
            actual,
        }));
    }
    Ok(())
}

/// `options` with [`derivable`]'s files of the target kit (`files`, unpacked under `dir`)
/// added to [`ouk_delta::plan::MakeOptions::derived`].
pub(crate) fn with_derived(
    options: &ouk_delta::plan::MakeOptions,
    files: &[TreeFile],
    dir: &Path,
) -> Result<ouk_delta::plan::MakeOptions> {
    let mut options = options.clone();
    // A delta for hosts older than the record tier is older than derivation too.
    if options.derive && options.record_tier {
        options.derived.extend(derivable(files, dir, dir)?);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ouk_delta::GenerationId;
    use ouk_delta::apply::DirSink;
    use ouk_delta::content::DirContent;
    use ouk_delta::format::{DeltaFile, FORMAT_DERIVED, GenerationRef};

    const OSV: &str = "feeds/osv/all.jsonl";
    const GHSA: &str = "feeds/ghsa/all.jsonl";

    fn rows(prefix: &str, n: u32, bump: u32) -> Vec<u8> {
        (0..n)
            .map(|i| {
                let m = if i % 3 == 0 { bump } else { 0 };
                format!("{{\"id\":\"{prefix}-{i}\",\"modified\":\"2025-10-0{m}\"}}\n")
            })
            .collect::<String>()
            .into_bytes()
    }

    fn tree_file(path: &str, bytes: &[u8]) -> TreeFile {
        TreeFile {
            path: path.into(),
            mode: 0o644,
            size: bytes.len() as u64,
            sha256: FileDigest::of(bytes),
        }
    }

    /// A host after the apply: the baseline (osv day 0, ghsa) in `base/`, the rebuilt osv
    /// (day 1) in `tree/`; the header derives the index, declaring `declared` (the true
    /// index's digest when `None`). `ghsa_on_host` is what the host's copy of ghsa holds.
    fn derive(declared: Option<FileDigest>, ghsa_on_host: &[u8]) -> Result<Vec<u8>> {
        let tmp = tempfile::tempdir().unwrap();
        let (base, tree, scratch) = (
            tmp.path().join("base"),
            tmp.path().join("tree"),
            tmp.path().join("scratch"),
        );
        let (osv0, osv1, ghsa) = (rows("OSV", 40, 1), rows("OSV", 40, 2), rows("GHSA", 10, 1));
        for (dir, path, bytes) in [
            (&base, OSV, &osv0[..]),
            (&base, GHSA, ghsa_on_host),
            (&tree, OSV, &osv1[..]),
        ] {
            fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            fs::write(dir.join(path), bytes).unwrap();
        }
        fs::create_dir_all(&scratch).unwrap();
        // The true index of the target, computed from pristine copies.
        let pristine = tmp.path().join("pristine");
        for (path, bytes) in [(OSV, &osv1), (GHSA, &ghsa)] {
            fs::create_dir_all(pristine.join(path).parent().unwrap()).unwrap();
            fs::write(pristine.join(path), bytes).unwrap();
        }
        let feeds = select_feeds(
            [OSV, GHSA]
                .iter()
                .map(|p| (*p, pristine.join(p)))
                .collect::<Vec<_>>()
                .iter()
                .map(|(p, d)| (*p, d.as_path())),
        );
        let (index, index_sha) = index_target_feeds(&feeds, &scratch, &|_, _| None).unwrap();
        let index_bytes = fs::read(index.path()).unwrap();
        let baseline = vec![tree_file(OSV, &osv0), tree_file(GHSA, &ghsa)];
        let reference = DirContent::new([
            (FileDigest::of(&osv0), base.join(OSV)),
            (FileDigest::of(&ghsa), base.join(GHSA)),
        ]);
        let gen_ref = |n| GenerationRef {
            generation: GenerationId([n; 32]),
            version: None,
        };
        let header = DeltaHeader {
            format: FORMAT_DERIVED.into(),
            files: vec![
                DeltaFile {
                    path: OSV.into(),
                    mode: 0o644,
                    size: osv1.len() as u64,
                    sha256: None,
                    source: Source::Trailer,
                    form: None,
                },
                DeltaFile {
                    path: FEED_INDEX_PATH.into(),
                    mode: 0o644,
                    size: index_bytes.len() as u64,
                    sha256: Some(declared.unwrap_or(index_sha)),
                    source: Source::Derived {
                        by: Derivation::FeedsIndex,
                    },
                    form: None,
                },
            ],
            ..DeltaHeader::new(gen_ref(0), gen_ref(1))
        };
        let rebuilt = vec![(OSV.to_string(), FileDigest::of(&osv1))];
        let beside = std::sync::Mutex::new(None);
        let out = derive_files(
            &header,
            &baseline,
            &rebuilt,
            &HashMap::new(),
            &tree,
            &reference,
            &scratch,
            &mut DirSink::new(&tree),
            &|d: DerivedIndex<'_>| {
                if let DerivedIndex::File(p) = d {
                    *beside.lock().unwrap() = Some(fs::read(p).unwrap());
                }
                None
            },
        )?;
        assert_eq!(out.files, vec![(FEED_INDEX_PATH.to_string(), index_sha)]);
        let derived = fs::read(tree.join(FEED_INDEX_PATH)).unwrap();
        assert_eq!(derived, index_bytes);
        assert_eq!(
            beside.into_inner().unwrap(),
            Some(index_bytes),
            "the verified index is handed beside the store's work"
        );
        Ok(derived)
    }

    /// The index written from [`held_rows_from_baseline`]'s rows, as the derive streams it.
    fn feeds_index_from_baseline(
        baseline: &[TreeFile],
        target: &[TreeFile],
        rebuilt: &HashMap<String, FileDigest>,
        copies: &HashMap<String, Vec<CopiedFrom>>,
        tree: &Path,
        reference: &dyn ContentReader,
        scratch: &Path,
    ) -> Option<(tempfile::NamedTempFile, FileDigest, HeldRows)> {
        let (feeds, held) =
            held_rows_from_baseline(baseline, target, rebuilt, copies, tree, reference)?;
        let (file, sha) =
            index_target_feeds(&feeds, scratch, &|rel, _| held.target_rows(rel)).ok()?;
        Some((file, sha, held))
    }

    /// The index of `feeds` (path, bytes), by the full scan.
    fn full_index(feeds: &[(&str, &[u8])]) -> (Vec<u8>, FileDigest) {
        let dir = tempfile::tempdir().unwrap();
        let listed: Vec<(&str, PathBuf)> = feeds
            .iter()
            .map(|(p, bytes)| {
                let at = dir.path().join(p);
                fs::create_dir_all(at.parent().unwrap()).unwrap();
                fs::write(&at, bytes).unwrap();
                (*p, at)
            })
            .collect();
        let feeds = select_feeds(listed.iter().map(|(p, d)| (*p, d.as_path())));
        let (file, sha) = index_target_feeds(&feeds, dir.path(), &|_, _| None).unwrap();
        (fs::read(file.path()).unwrap(), sha)
    }

    /// A host after an apply, for the shortcut's tests: the baseline's index and the
    /// baseline feeds it can read under `base/` (only those are in `reference`), the
    /// rebuilt target feeds under `tree/`, an empty `scratch/`.
    struct Host {
        _tmp: tempfile::TempDir,
        tree: PathBuf,
        scratch: PathBuf,
        /// The baseline's feed index on disk.
        index_at: PathBuf,
        /// The baseline's feeds, then its index.
        baseline: Vec<TreeFile>,
        reference: DirContent,
        target: Vec<TreeFile>,
        rebuilt: HashMap<String, FileDigest>,
    }

    impl Host {
        /// `baseline`: its feeds (path, bytes, whether the host can read the file) and its
        /// feed index `index`; `target`: its feeds (path, bytes, whether the apply rebuilt
        /// it).
        fn new(
            baseline: &[(&str, &[u8], bool)],
            index: &[u8],
            target: &[(&str, &[u8], bool)],
        ) -> Host {
            let tmp = tempfile::tempdir().unwrap();
            let at = |dir: &str| tmp.path().join(dir);
            let (base, tree, scratch) = (at("base"), at("tree"), at("scratch"));
            let write = |dir: &Path, path: &str, bytes: &[u8]| {
                fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
                fs::write(dir.join(path), bytes).unwrap();
            };
            fs::create_dir_all(&scratch).unwrap();
            write(&base, "index", index);
            let index_at = base.join("index");
            let mut readable = vec![(FileDigest::of(index), index_at.clone())];
            for (path, bytes, _) in baseline.iter().filter(|(_, _, read)| *read) {
                write(&base, path, bytes);
                readable.push((FileDigest::of(bytes), base.join(path)));
            }
            for (path, bytes, _) in target.iter().filter(|(_, _, rebuilt)| *rebuilt) {
                write(&tree, path, bytes);
            }
            Host {
                baseline: baseline
                    .iter()
                    .map(|(p, b, _)| tree_file(p, b))
                    .chain([tree_file(FEED_INDEX_PATH, index)])
                    .collect(),
                reference: DirContent::new(readable),
                target: target.iter().map(|(p, b, _)| tree_file(p, b)).collect(),
                rebuilt: target
                    .iter()
                    .filter(|(_, _, rebuilt)| *rebuilt)
                    .map(|(p, b, _)| (p.to_string(), FileDigest::of(b)))
                    .collect(),
                _tmp: tmp,
                tree,
                scratch,
                index_at,
            }
        }

        /// [`feeds_index_from_baseline`] on this host, its baseline listing `baseline`,
        /// read through `reference`.
        fn index_from(
            &self,
            baseline: &[TreeFile],
            copies: &HashMap<String, Vec<CopiedFrom>>,
            reference: &dyn ContentReader,
        ) -> Option<(tempfile::NamedTempFile, FileDigest, HeldRows)> {
            feeds_index_from_baseline(
                baseline,
                &self.target,
                &self.rebuilt,
                copies,
                &self.tree,
                reference,
                &self.scratch,
            )
        }
    }

    #[test]
    fn the_baseline_index_gives_the_target_index_without_a_full_scan() {
        let (osv0, osv1, ghsa) = (rows("OSV", 40, 1), rows("OSV", 41, 2), rows("GHSA", 10, 1));
        let (index0, _) = full_index(&[(OSV, &osv0), (GHSA, &ghsa)]);
        let (index1, sha1) = full_index(&[(OSV, &osv1), (GHSA, &ghsa)]);
        // ghsa is not rebuilt and is not on disk as a file of its own: its rows come from
        // the baseline index, so its file is never read.
        let host = Host::new(
            &[(OSV, &osv0, true), (GHSA, &ghsa, false)],
            &index0,
            &[(OSV, &osv1, true), (GHSA, &ghsa, false)],
        );
        let (file, sha, _) = host
            .index_from(&host.baseline, &HashMap::new(), &host.reference)
            .expect("the shortcut answers");
        assert_eq!(sha, sha1);
        assert_eq!(fs::read(file.path()).unwrap(), index1);
        // Without the baseline index it declines (and the full scan decides).
        assert!(
            host.index_from(&host.baseline[..2], &HashMap::new(), &host.reference)
                .is_none()
        );
    }

    #[test]
    fn the_rows_held_beside_the_derived_index_diff_as_the_two_index_files_do() {
        use crate::feeds::diff::{diff_rows, diff_to_vec};
        const NVD: &str = "feeds/nvd/all.jsonl";
        // osv changes rows and gains one, ghsa is unchanged, nvd is gone from the target
        // (its rows are withdrawn: the baseline index's every feed counts).
        let (osv0, osv1) = (rows("OSV", 40, 1), rows("OSV", 41, 2));
        let (ghsa, nvd) = (rows("GHSA", 10, 1), rows("CVE", 5, 1));
        let (index0, _) = full_index(&[(OSV, &osv0), (GHSA, &ghsa), (NVD, &nvd)]);
        let (_, sha1) = full_index(&[(OSV, &osv1), (GHSA, &ghsa)]);
        let host = Host::new(
            &[(OSV, &osv0, true), (GHSA, &ghsa, false), (NVD, &nvd, false)],
            &index0,
            &[(OSV, &osv1, true), (GHSA, &ghsa, false)],
        );
        let (file, sha, held) = host
            .index_from(&host.baseline, &HashMap::new(), &host.reference)
            .expect("the shortcut answers");
        assert_eq!(sha, sha1);
        let (old, new) = held.feeds().expect("every feed's rows are held");
        let mut from_rows = Vec::new();
        let counts = diff_rows(&old, &new, &mut |c| {
            from_rows.push(c);
            Ok(())
        })
        .unwrap();
        let (file_counts, from_files) =
            diff_to_vec(Some(&host.index_at), Some(file.path())).unwrap();
        assert_eq!(counts, file_counts);
        assert_eq!(from_rows, from_files);
        let withdrawn = from_rows
            .iter()
            .filter(|c| c.source == "nvd" && c.change == crate::feeds::diff::ChangeKind::Withdrawn)
            .count();
        assert_eq!((withdrawn, counts["osv"].added), (5, 1));
        assert!(counts["osv"].modified > 0 && counts["ghsa"].total() == 0);
    }

    #[test]
    fn a_streamed_index_that_is_not_the_declared_one_is_replaced_by_the_full_scan() {
        let (osv0, osv1, ghsa) = (rows("OSV", 40, 1), rows("OSV", 41, 2), rows("GHSA", 10, 1));
        // The baseline's index lies about ghsa (not rebuilt): the rows held for it are
        // wrong, so the streamed index is not the declared one.
        let (lying, _) = full_index(&[(OSV, &osv0), (GHSA, &rows("GHSA", 9, 1))]);
        let (index1, sha1) = full_index(&[(OSV, &osv1), (GHSA, &ghsa)]);
        let host = Host::new(
            &[(OSV, &osv0, true), (GHSA, &ghsa, true)],
            &lying,
            &[(OSV, &osv1, true), (GHSA, &ghsa, false)],
        );
        let header = DeltaHeader {
            format: FORMAT_DERIVED.into(),
            files: vec![
                DeltaFile {
                    path: OSV.into(),
                    mode: 0o644,
                    size: osv1.len() as u64,
                    sha256: None,
                    source: Source::Trailer,
                    form: None,
                },
                DeltaFile {
                    path: FEED_INDEX_PATH.into(),
                    mode: 0o644,
                    size: index1.len() as u64,
                    sha256: Some(sha1),
                    source: Source::Derived {
                        by: Derivation::FeedsIndex,
                    },
                    form: None,
                },
            ],
            ..DeltaHeader::new(
                GenerationRef {
                    generation: GenerationId([0; 32]),
                    version: None,
                },
                GenerationRef {
                    generation: GenerationId([1; 32]),
                    version: None,
                },
            )
        };
        let handed = std::sync::Mutex::new(Vec::new());
        let out = derive_files(
            &header,
            &host.baseline,
            &[(OSV.to_string(), FileDigest::of(&osv1))],
            &HashMap::new(),
            &host.tree,
            &host.reference,
            &host.scratch,
            &mut DirSink::new(&host.tree),
            &|d: DerivedIndex<'_>| match d {
                // What the wrong rows give must not be kept: only the file's answer is.
                DerivedIndex::Rows(_) => {
                    handed.lock().unwrap().push("rows");
                    crate::feeds::host::changes_of_rows(None, &[], &[], 1).unwrap()
                }
                DerivedIndex::File(_) => {
                    handed.lock().unwrap().push("file");
                    None
                }
            },
        )
        .unwrap();
        assert_eq!(out.files, vec![(FEED_INDEX_PATH.to_string(), sha1)]);
        assert_eq!(fs::read(host.tree.join(FEED_INDEX_PATH)).unwrap(), index1);
        assert_eq!(*handed.lock().unwrap(), ["rows", "file"]);
        assert!(out.feed_changes.is_none());
    }

    #[test]
    fn a_new_feed_is_scanned_alone_and_its_rows_are_not_held() {
        const NVD: &str = "feeds/nvd/all.jsonl";
        let (osv0, osv1, nvd) = (rows("OSV", 40, 1), rows("OSV", 41, 2), rows("CVE", 5, 1));
        let (index0, _) = full_index(&[(OSV, &osv0)]);
        let (index1, sha1) = full_index(&[(OSV, &osv1), (NVD, &nvd)]);
        let host = Host::new(
            &[(OSV, &osv0, true)],
            &index0,
            &[(OSV, &osv1, true), (NVD, &nvd, true)],
        );
        let (file, sha, held) = host
            .index_from(&host.baseline, &HashMap::new(), &host.reference)
            .expect("the shortcut still answers: only the new feed is scanned");
        assert_eq!((fs::read(file.path()).unwrap(), sha), (index1, sha1));
        assert!(held.target_rows(OSV).is_some() && held.target_rows(NVD).is_none());
        assert!(held.feeds().is_none(), "a scanned feed's rows are not held");
    }

    /// A reader that counts what is read of each digest, whole (`open`) or by range.
    struct Counting<'a> {
        inner: &'a dyn ContentReader,
        opened: std::sync::Mutex<Vec<FileDigest>>,
        ranged: std::sync::atomic::AtomicU64,
    }

    impl ContentReader for Counting<'_> {
        fn open(&self, sha256: &FileDigest) -> std::io::Result<Box<dyn Read + Send + '_>> {
            self.opened.lock().unwrap().push(*sha256);
            self.inner.open(sha256)
        }
        fn read_range(
            &self,
            sha256: &FileDigest,
            offset: u64,
            length: u64,
        ) -> std::io::Result<Vec<u8>> {
            let got = self.inner.read_range(sha256, offset, length)?;
            self.ranged
                .fetch_add(got.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(got)
        }
    }

    #[test]
    fn rows_inside_the_runs_the_apply_copied_are_not_read_again() {
        use ouk_delta::records::CopiedRun;
        let line =
            |i: u32, m: u32| format!("{{\"id\":\"OSV-{i}\",\"modified\":\"2025-10-0{m}\"}}\n");
        // Large enough that the few blocks read near the changes are a small part.
        let osv0: String = (0..100_000).map(|i| line(i, 1)).collect();
        // Rows 100 and 75000 change (same length, so offsets line up) and one row comes.
        let osv1: String = (0..100_000)
            .map(|i| line(i, if i == 100 || i == 75_000 { 2 } else { 1 }))
            .chain([line(500_000, 1)])
            .collect();
        let (osv0, osv1) = (osv0.into_bytes(), osv1.into_bytes());
        let (index0, _) = full_index(&[(OSV, &osv0)]);
        let (index1, sha1) = full_index(&[(OSV, &osv1)]);
        let host = Host::new(&[(OSV, &osv0, true)], &index0, &[(OSV, &osv1, true)]);
        let reference = Counting {
            inner: &host.reference,
            opened: Default::default(),
            ranged: Default::default(),
        };
        // What a record patch copies: everything but the two changed rows and the new one.
        let at = |i: u32| (0..i).map(|j| line(j, 1).len() as u64).sum::<u64>();
        let run = |from: u64, to: u64| CopiedRun {
            output: from,
            reference: from,
            len: to - from,
        };
        let copies = HashMap::from([(
            OSV.to_string(),
            vec![CopiedFrom {
                baseline: OSV.into(),
                runs: vec![
                    run(0, at(100)),
                    run(at(101), at(75_000)),
                    run(at(75_001), osv0.len() as u64),
                ],
            }],
        )]);
        let (file, sha, _) = host
            .index_from(&host.baseline, &copies, &reference)
            .expect("the shortcut answers");
        assert_eq!(sha, sha1);
        assert_eq!(fs::read(file.path()).unwrap(), index1);
        // The baseline feed was never read whole, and only a little of it by range.
        assert!(
            !reference
                .opened
                .lock()
                .unwrap()
                .contains(&FileDigest::of(&osv0))
        );
        let ranged = reference.ranged.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ranged > 0 && ranged < osv0.len() as u64 / 10,
            "{ranged} of {}",
            osv0.len()
        );
    }

    #[test]
    fn the_host_derives_the_index_from_rebuilt_and_baseline_feeds() {
        let derived = derive(None, &rows("GHSA", 10, 1)).unwrap();
        let text = String::from_utf8(derived).unwrap();
        assert!(text.contains("OSV-39") && text.contains("GHSA-9"), "{text}");
    }

    #[test]
    fn a_forged_declared_digest_is_refused_as_a_digest_failure() {
        let e = derive(Some(FileDigest::of(b"forged")), &rows("GHSA", 10, 1)).unwrap_err();
        assert!(
            matches!(
                &e,
                KitError::Delta(ouk_delta::DeltaError::DigestMismatch { path, .. })
                    if path == FEED_INDEX_PATH
            ),
            "{e}"
        );
        assert_eq!(e.class(), ouk_store::ErrorClass::Digest);
    }

    #[test]
    fn a_tampered_baseline_feed_is_refused_before_it_is_indexed() {
        // The host's copy of ghsa no longer holds what the baseline's manifest says.
        let e = derive(None, &rows("GHSA", 10, 7)).unwrap_err();
        assert!(
            matches!(
                &e,
                KitError::Delta(ouk_delta::DeltaError::DigestMismatch { path, .. })
                    if path == GHSA
            ),
            "{e}"
        );
    }
}
