//! The host side of feed-aware kits: what an import records, and diffs of generations.
//!
//! When an import activates a generation whose tree has a feed index, before the flip it
//! - diffs that index against the index of the generation active before (none, or one
//!   without an index: every row is added) — [`super::diff`];
//! - writes the changes to `ROOT/changes/<gen-id>.jsonl` — [`super::changes`]; and
//! - the first time the generation is imported, appends the same changes to the
//!   supersedes history, in one transaction — [`super::history`].
//!
//! Invariants:
//! - The changes file and the history are written after the generation is recorded and
//!   before it is materialized and `current` flips; an import refused after that removes
//!   what it wrote ([`undo_import`]); an import of the active generation
//!   writes nothing (the pipeline returns before it gets here).
//! - A crash after either was written but before the flip leaves the generation
//!   inactive: the next import of the same kit runs again, rewrites the same changes file
//!   (same baseline, same content) and, the history knowing the generation, appends
//!   nothing. A crash mid-write leaves a dot-name under `changes/` that opening the root
//!   removes.
//! - A generation without a feed index (a kit from before feed indexes) records nothing.

use std::path::{Path, PathBuf};

use ouk_delta::GenerationId;
use ouk_root::Root;
use ouk_store::StoreError;
use serde::Serialize;

use super::changes::{ChangesError, ChangesFile, ChangesHeader};
use super::diff::{DiffCounts, DiffError, FeedRowsOf, RowChange, diff_indexes, diff_rows};
use super::history::{self, HistoryError};
use super::index::FEED_INDEX_PATH;

/// Why feed changes could not be computed or recorded.
#[derive(Debug, thiserror::Error)]
pub enum FeedsError {
    /// An index is malformed or unreadable.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// The changes file could not be written or read.
    #[error(transparent)]
    Changes(#[from] ChangesError),
    /// The history could not be read or written.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A generation is unknown, or its manifest unreadable.
    #[error(transparent)]
    Delta(#[from] ouk_delta::DeltaError),
    /// The store failed (rehydrating an index).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A temporary file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A generation's feed index, found in its tree or rehydrated from the store.
#[derive(Debug, Default)]
pub struct GenerationIndex {
    path: Option<PathBuf>,
    _temp: Option<tempfile::TempPath>,
}

impl GenerationIndex {
    /// The index file, or `None` when the generation has none.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// The feed index of generation `id`: `generations/<id>/metadata/feeds-index.jsonl` when
/// the tree is there, else rehydrated (verified) from the store into a temporary file.
pub fn generation_index(root: &Root, id: &GenerationId) -> Result<GenerationIndex, FeedsError> {
    let in_tree = root.generation_dir(id).join(FEED_INDEX_PATH);
    if in_tree.is_file() {
        return Ok(GenerationIndex {
            path: Some(in_tree),
            _temp: None,
        });
    }
    let manifest = root.manifest(id)?;
    let Some(entry) = manifest.get(FEED_INDEX_PATH) else {
        return Ok(GenerationIndex::default());
    };
    let io = |context: &str| {
        let context = context.to_string();
        move |source| FeedsError::Io { context, source }
    };
    let mut tmp = tempfile::NamedTempFile::new_in(root.staging_dir())
        .map_err(io("create a temporary feed index"))?;
    root.store()
        .read_chunks(&entry.chunks, Some(&entry.sha256), tmp.as_file_mut())?;
    let path = tmp.into_temp_path();
    Ok(GenerationIndex {
        path: Some(path.to_path_buf()),
        _temp: Some(path),
    })
}

/// What an import recorded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedChanges {
    /// `ROOT/changes/<gen-id>.jsonl`.
    pub changes_file: PathBuf,
    /// The generation diffed against.
    pub baseline: Option<GenerationId>,
    /// Per source: rows added, modified, withdrawn.
    pub counts: DiffCounts,
    /// Changed rows in all.
    pub rows: u64,
    /// Whether the history recorded the generation now (false: it knew it already).
    pub history_recorded: bool,
}

/// Row changes of a target's feed index against the generation active before, computed
/// ahead of [`record_computed`] (a delta apply computes them while its other work is
/// still running: [`changes_of_rows`] from the rows it holds, or [`compute_changes`] from
/// the index files). Bounded: at most the limit given to either.
#[derive(Debug)]
pub struct ComputedChanges {
    previous: Option<GenerationId>,
    changes: Vec<RowChange>,
    counts: DiffCounts,
}

/// The changes from `previous`'s feed index to the index at `new_index`, kept in memory,
/// or `None` when there are more than `limit` (then [`record_import`] streams them).
pub fn compute_changes(
    root: &Root,
    previous: Option<GenerationId>,
    new_index: &Path,
    limit: usize,
) -> Result<Option<ComputedChanges>, FeedsError> {
    let old = match previous {
        Some(p) => generation_index(root, &p)?,
        None => GenerationIndex::default(),
    };
    kept(previous, limit, &mut |sink| {
        diff_indexes(old.path(), Some(new_index), sink)
    })
}

/// Step 6 of an import, after the generation is recorded and before it is materialized
/// (so a full disk here leaves no extra tree) and flipped: write
/// `ROOT/changes/<target>.jsonl` against `previous` and, the first time, the history. The
/// target's index is read from `staged` (the verified staging tree) when it is there.
/// `Ok(None)` when the target has no feed index.
pub fn record_import(
    root: &Root,
    target: &GenerationId,
    staged: Option<&Path>,
    previous: Option<GenerationId>,
    version: &str,
) -> Result<Option<RecordedChanges>, FeedsError> {
    let new = match staged.map(|d| d.join(FEED_INDEX_PATH)) {
        Some(p) if p.is_file() => GenerationIndex {
            path: Some(p),
            _temp: None,
        },
        _ => generation_index(root, target)?,
    };
    if new.path().is_none() {
        return Ok(None);
    }
    let old = match previous {
        Some(p) => generation_index(root, &p)?,
        None => GenerationIndex::default(),
    };
    record_with(root, target, previous, version, &mut |sink| {
        diff_indexes(old.path(), new.path(), sink)
    })
    .map(Some)
}

/// [`compute_changes`] when both indexes' rows are held in memory: `old`, every feed of
/// `previous`'s index, and `new`, every feed of the target's (see [`diff_rows`]). The
/// caller vouches that they are those indexes' rows (a delta apply holds the baseline's,
/// read through verified content, and the rows it wrote into the derived index, whose
/// digest it checked).
pub fn changes_of_rows(
    previous: Option<GenerationId>,
    old: &[FeedRowsOf<'_>],
    new: &[FeedRowsOf<'_>],
    limit: usize,
) -> Result<Option<ComputedChanges>, FeedsError> {
    kept(previous, limit, &mut |sink| diff_rows(old, new, sink))
}

/// The changes `diff` hands its sink, kept in memory, or `None` when there are more than
/// `limit`.
fn kept(
    previous: Option<GenerationId>,
    limit: usize,
    diff: &mut dyn FnMut(&mut ChangeSink<'_>) -> Result<DiffCounts, DiffError>,
) -> Result<Option<ComputedChanges>, FeedsError> {
    let mut changes = Vec::new();
    let diffed = diff(&mut |c| {
        if changes.len() == limit {
            return Err(DiffError::Sink("more changes than kept in memory".into()));
        }
        changes.push(c);
        Ok(())
    });
    match diffed {
        Ok(counts) => Ok(Some(ComputedChanges {
            previous,
            changes,
            counts,
        })),
        Err(DiffError::Sink(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// [`record_import`] of changes computed ahead ([`changes_of_rows`], [`compute_changes`])
/// against the generation that is still the active one.
pub fn record_computed(
    root: &Root,
    target: &GenerationId,
    computed: ComputedChanges,
    version: &str,
) -> Result<RecordedChanges, FeedsError> {
    let ComputedChanges {
        previous,
        changes,
        counts,
    } = computed;
    let mut changes = Some(changes);
    record_with(root, target, previous, version, &mut |sink| {
        for c in changes.take().unwrap_or_default() {
            sink(c)?;
        }
        Ok(counts.clone())
    })
}

/// Where a diff hands its changes, in order.
type ChangeSink<'a> = dyn FnMut(RowChange) -> Result<(), DiffError> + 'a;

/// Write the changes `diff` hands to its sink to `ROOT/changes/<target>.jsonl` and, the
/// first time, to the history, in the history's one transaction.
fn record_with(
    root: &Root,
    target: &GenerationId,
    previous: Option<GenerationId>,
    version: &str,
    diff: &mut dyn FnMut(&mut ChangeSink<'_>) -> Result<DiffCounts, DiffError>,
) -> Result<RecordedChanges, FeedsError> {
    let dest = root.changes_file(target);
    let mut file = Some(ChangesFile::create(
        &dest,
        &ChangesHeader::new(*target, previous),
    )?);
    let mut failure: Option<FeedsError> = None;
    let mut counts: Option<DiffCounts> = None;
    let mut committed = false;
    let recorded = history::record(
        root.store().database(),
        target,
        version,
        previous,
        &mut |rec| {
            let diffed = diff(&mut |c: RowChange| {
                let pushed = match file.as_mut() {
                    Some(f) => f.push(&c).map_err(FeedsError::from),
                    None => Ok(()),
                };
                match pushed.and_then(|()| rec(&c).map_err(FeedsError::from)) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        failure = Some(e);
                        Err(DiffError::Sink("recording a change failed".into()))
                    }
                }
            });
            let done = diffed.map_err(FeedsError::from).and_then(|c| {
                if let Some(f) = file.take() {
                    f.commit()?;
                    committed = true;
                }
                Ok(c)
            });
            match done {
                Ok(c) => {
                    counts = Some(c);
                    true
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    false
                }
            }
        },
    );
    let history_recorded = match recorded {
        Ok(r) => r,
        Err(e) => {
            if committed {
                let _ = std::fs::remove_file(&dest);
            }
            return Err(match (e, failure) {
                (HistoryError::Aborted, Some(f)) => f,
                (e, _) => e.into(),
            });
        }
    };
    let counts = counts.unwrap_or_default();
    Ok(RecordedChanges {
        changes_file: dest,
        baseline: previous,
        rows: counts.values().map(|c| c.total()).sum(),
        counts,
        history_recorded,
    })
}

/// Undo [`record_import`] for an import refused before its flip: remove the changes file
/// and, if this import recorded it, the generation's history.
pub fn undo_import(
    root: &Root,
    target: &GenerationId,
    recorded: &RecordedChanges,
) -> Result<(), FeedsError> {
    match std::fs::remove_file(&recorded.changes_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(FeedsError::Io {
                context: format!("remove {}", recorded.changes_file.display()),
                source,
            });
        }
    }
    if recorded.history_recorded {
        history::forget(root.store().database(), target)?;
    }
    Ok(())
}

/// Row changes from generation `a` to generation `b`, handed to `sink` in order. Also says
/// whether each generation has a feed index.
pub fn diff_generations(
    root: &Root,
    a: &GenerationId,
    b: &GenerationId,
    sink: &mut dyn FnMut(RowChange),
) -> Result<(DiffCounts, bool, bool), FeedsError> {
    let old = generation_index(root, a)?;
    let new = generation_index(root, b)?;
    let counts = diff_indexes(old.path(), new.path(), &mut |c| {
        sink(c);
        Ok(())
    })?;
    Ok((counts, old.path().is_some(), new.path().is_some()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use ouk_root::LockWait;
    use ouk_store::StoreOptions;

    use super::*;
    use crate::diff::ChangeKind;
    use crate::index::{FeedHeader, FeedIndexWriter, FeedRow, RowHash};

    /// A generation tree holding only an index (enough for [`record_import`]).
    fn fake_generation(root: &Root, g: u8, rows: &[(&str, u8)]) -> GenerationId {
        let id = GenerationId([g; 32]);
        let mut w = FeedIndexWriter::new(Vec::new()).unwrap();
        w.begin_feed(&FeedHeader {
            feed: "feeds/osv/a.jsonl".into(),
            source: "osv".into(),
            rows: rows.len() as u64,
            skipped: 0,
        })
        .unwrap();
        for (row_id, h) in rows {
            w.push_row(&FeedRow {
                id: (*row_id).into(),
                hash: RowHash([*h; 32]),
                tenant: None,
                modified: None,
            })
            .unwrap();
        }
        let p = root.generation_dir(&id).join(FEED_INDEX_PATH);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, w.finish().unwrap()).unwrap();
        id
    }

    fn open(dir: &Path) -> Root {
        Root::open(dir, LockWait::Fail, StoreOptions::default()).unwrap()
    }

    #[test]
    fn record_writes_changes_and_history_once_and_undo_removes_both() {
        let dir = tempfile::tempdir().unwrap();
        let root = open(dir.path());
        let g1 = fake_generation(&root, 1, &[("A", 1), ("B", 1)]);
        let g2 = fake_generation(&root, 2, &[("A", 2), ("C", 1)]);
        let r1 = record_import(&root, &g1, None, None, "1").unwrap().unwrap();
        assert!(r1.history_recorded);
        assert_eq!(r1.counts["osv"].added, 2);
        let r2 = record_import(&root, &g2, None, Some(g1), "2")
            .unwrap()
            .unwrap();
        assert_eq!(r2.rows, 3);
        let text = fs::read_to_string(root.changes_file(&g2)).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        // Again (a re-run after a crash before the flip): same file, no new history.
        let again = record_import(&root, &g2, None, Some(g1), "2")
            .unwrap()
            .unwrap();
        assert!(!again.history_recorded);
        assert_eq!(fs::read_to_string(root.changes_file(&g2)).unwrap(), text);
        let chain = history::chains(root.store().database(), "A", None).unwrap();
        assert_eq!(chain[0].entries.len(), 2);
        // Undo of the import that recorded g2: file and history gone.
        undo_import(&root, &g2, &r2).unwrap();
        assert!(!root.changes_file(&g2).exists());
        let chain = history::chains(root.store().database(), "A", None).unwrap();
        assert_eq!(chain[0].entries.len(), 1);
        assert_eq!(chain[0].entries[0].change, ChangeKind::Added);
        // Undo of an import that found the history already knowing the generation keeps it.
        let r1b = record_import(&root, &g1, None, None, "1").unwrap().unwrap();
        undo_import(&root, &g1, &r1b).unwrap();
        assert_eq!(
            history::chains(root.store().database(), "A", None).unwrap()[0]
                .entries
                .len(),
            1
        );
    }

    #[test]
    fn a_malformed_index_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = open(dir.path());
        let id = GenerationId([3; 32]);
        let p = root.generation_dir(&id).join(FEED_INDEX_PATH);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "{\"format\":\"ouk-feeds-index/1\"}\n{\"feed\":\"feeds/osv/a\",\"source\":\"osv\",\"rows\":1,\"skipped\":0}\n").unwrap();
        let e = record_import(&root, &id, None, None, "3").unwrap_err();
        assert!(matches!(e, FeedsError::Diff(_)), "{e}");
        assert!(!root.changes_file(&id).exists());
        let leftovers = fs::read_dir(root.changes_dir()).unwrap().count();
        assert_eq!(leftovers, 0, "no dot-name left");
        assert!(
            history::generation(root.store().database(), &id)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn changes_computed_ahead_record_what_the_streaming_diff_records() {
        let streamed = tempfile::tempdir().unwrap();
        let ahead = tempfile::tempdir().unwrap();
        let (a, b) = (open(streamed.path()), open(ahead.path()));
        let rows1: &[(&str, u8)] = &[("A", 1), ("B", 1), ("D", 1)];
        let rows2: &[(&str, u8)] = &[("A", 2), ("C", 1), ("D", 1)];
        let (g1, g2) = (fake_generation(&a, 1, rows1), fake_generation(&a, 2, rows2));
        fake_generation(&b, 1, rows1);
        fake_generation(&b, 2, rows2);
        record_import(&a, &g1, None, None, "1").unwrap();
        record_import(&b, &g1, None, None, "1").unwrap();
        let r_streamed = record_import(&a, &g2, None, Some(g1), "2")
            .unwrap()
            .unwrap();
        let index2 = b.generation_dir(&g2).join(FEED_INDEX_PATH);
        let computed = compute_changes(&b, Some(g1), &index2, 10).unwrap().unwrap();
        let r_ahead = record_computed(&b, &g2, computed, "2").unwrap();
        assert_eq!(r_ahead.counts, r_streamed.counts);
        assert_eq!((r_ahead.rows, r_ahead.history_recorded), (3, true));
        assert_eq!(
            fs::read(b.changes_file(&g2)).unwrap(),
            fs::read(a.changes_file(&g2)).unwrap()
        );
        let chains = |r: &Root| history::chains(r.store().database(), "A", None).unwrap();
        assert_eq!(chains(&b)[0].entries.len(), chains(&a)[0].entries.len());
        // Past the limit, nothing is kept: the caller streams instead.
        assert!(compute_changes(&b, Some(g1), &index2, 2).unwrap().is_none());
    }
}
