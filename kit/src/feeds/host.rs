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
//! - The changes file and the history are written before `current` flips; a refused
//!   import removes what it wrote ([`undo_import`]); an import of the active generation
//!   writes nothing (the pipeline returns before it gets here).
//! - A crash after either was written but before the flip leaves the generation
//!   inactive: the next import of the same kit runs again, rewrites the same changes file
//!   (same baseline, same content) and, the history knowing the generation, appends
//!   nothing. A crash mid-write leaves a dot-name under `changes/` that opening the root
//!   removes.
//! - A generation without a feed index (a kit from before feed indexes) records nothing.

use std::path::{Path, PathBuf};

use ouk_delta::{GenerationId, Root};
use ouk_store::StoreError;
use serde::Serialize;

use super::changes::{ChangesError, ChangesFile, ChangesHeader};
use super::diff::{DiffCounts, DiffError, RowChange, diff_indexes};
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

/// Step 6 of an import, after the generation is materialized and before the flip: write
/// `ROOT/changes/<target>.jsonl` against `previous` and, the first time, the history.
/// `Ok(None)` when the target has no feed index.
pub fn record_import(
    root: &Root,
    target: &GenerationId,
    previous: Option<GenerationId>,
    version: &str,
) -> Result<Option<RecordedChanges>, FeedsError> {
    let new = generation_index(root, target)?;
    if new.path().is_none() {
        return Ok(None);
    }
    let old = match previous {
        Some(p) => generation_index(root, &p)?,
        None => GenerationIndex::default(),
    };
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
            let diffed = diff_indexes(old.path(), new.path(), &mut |c: RowChange| {
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
    Ok(Some(RecordedChanges {
        changes_file: dest,
        baseline: previous,
        rows: counts.values().map(|c| c.total()).sum(),
        counts,
        history_recorded,
    }))
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
