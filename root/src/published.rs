//! The root's published state: what read-only commands and monitoring read, without the
//! root's lock and without the (private, exclusively opened) store index.
//!
//! `ROOT/state.json` holds every generation record and when each was last activated. The
//! holder of `ROOT/lock` rewrites it after each index commit that changes what it holds (a
//! generation recorded, an activation logged, generations dropped) and on every open of
//! the root where it differs, so a crash between a commit and the rewrite (or a root last
//! written by an older ouk) is caught up by the next writer. The index stays the authority;
//! this file is derived from it.
//!
//! Invariants:
//! - The file is replaced by `rename(2)` (written to a temporary name, synced first), so a
//!   reader sees one committed snapshot or the next, never a partial one; a rewrite that
//!   would change nothing writes nothing (opening a root writes nothing it need not).
//! - It is world-readable (0644 before the umask), like `current` and `generations/`: a
//!   monitoring account reads it. It holds labels, sizes and times only, never content.
//! - [`RootView`] takes no lock, creates nothing and writes nothing: it reads `ROOT/current`
//!   (the symbolic link services follow, swapped by rename) and this file. Between the
//!   flip of `current` and the rewrite that logs the activation, the new current generation
//!   is already recorded here (it is recorded before it is activated) but shows no
//!   activation yet: a reader reports it current with its activation time unknown, and
//!   never reports as current a generation `current` does not point at.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::generation::{GenerationRecord, GenerationSummary};
use crate::root::Root;
use ouk_delta::manifest::GenerationId;
use ouk_delta::{DeltaError, Result};

/// The file name under ROOT.
pub const STATE_FILE: &str = "state.json";
const FORMAT: &str = "ouk-state/1";

/// The snapshot `ROOT/state.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedState {
    /// `ouk-state/1`.
    pub format: String,
    /// Every recorded generation, in id order.
    pub generations: Vec<PublishedGeneration>,
}

/// One generation in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedGeneration {
    /// Its id.
    pub id: GenerationId,
    /// Its record.
    pub record: GenerationRecord,
    /// Position of its last activation in the activation log (0-based), if ever activated:
    /// generations are listed by it (clocks are coarse and may step backwards).
    pub last_activation: Option<u64>,
    /// Time of its last activation, seconds since the epoch.
    pub last_activated: Option<i64>,
}

impl Root {
    /// The snapshot of the index's generation records and activation log.
    pub fn published_state(&self) -> Result<PublishedState> {
        let mut last: HashMap<GenerationId, (u64, i64)> = HashMap::new();
        for (seq, a) in self.activations()?.into_iter().enumerate() {
            last.insert(a.generation, (seq as u64, a.at));
        }
        let mut generations = Vec::new();
        for (id, record) in self.generation_records()? {
            let l = last.get(&id);
            generations.push(PublishedGeneration {
                id,
                record,
                last_activation: l.map(|l| l.0),
                last_activated: l.map(|l| l.1),
            });
        }
        generations.sort_by_key(|g| g.id);
        Ok(PublishedState {
            format: FORMAT.into(),
            generations,
        })
    }

    /// Rewrite `ROOT/state.json` from the index when it differs (see the module docs).
    pub fn publish_state(&self) -> Result<()> {
        let path = self.dir().join(STATE_FILE);
        let mut bytes =
            serde_json::to_vec_pretty(&self.published_state()?).map_err(|e| DeltaError::Io {
                context: format!("encode {}", path.display()),
                source: std::io::Error::other(e),
            })?;
        bytes.push(b'\n');
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        // 0644: monitoring accounts read it (see the module invariants).
        ouk_store::fsutil::write_atomic_with_mode(&path, &bytes, 0o644)?;
        Ok(())
    }

    /// Every generation record in the index, in id order.
    fn generation_records(&self) -> Result<Vec<(GenerationId, GenerationRecord)>> {
        let txn = self.store().database().begin_read()?;
        let Some(table) = crate::generation::open_optional(&txn, crate::generation::RECORDS)?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let id = GenerationId(*k.value());
            let (_, record): (u16, GenerationRecord) =
                ouk_store::envelope::open(*b"OKGR", 1, v.value()).map_err(|e| {
                    DeltaError::Record {
                        what: format!("generation {id}"),
                        message: e.to_string(),
                    }
                })?;
            out.push((id, record));
        }
        Ok(out)
    }
}

/// A root opened for reading only: no lock, nothing created, nothing written (see the
/// module invariants).
#[derive(Debug)]
pub struct RootView {
    dir: PathBuf,
    state: PublishedState,
}

impl RootView {
    /// Open the root at `dir` for reading. A directory that does not exist is
    /// [`DeltaError::NoRoot`]; one with a store index but no published state (last written
    /// by an older ouk) is [`DeltaError::Unpublished`]; one with neither has nothing
    /// recorded.
    pub fn open(dir: &Path) -> Result<RootView> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(DeltaError::NoRoot { path: dir.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeltaError::NoRoot { path: dir.into() });
            }
            Err(e) => {
                return Err(DeltaError::Io {
                    context: format!("open root {}", dir.display()),
                    source: e,
                });
            }
        }
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let state: PublishedState =
                    serde_json::from_slice(&bytes).map_err(|e| DeltaError::Record {
                        what: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                if state.format != FORMAT {
                    return Err(DeltaError::Record {
                        what: path.display().to_string(),
                        message: format!("format {:?}, this ouk reads {FORMAT:?}", state.format),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `symlink_metadata`, not `exists`: a store this user may not enter (it is
                // private to the owner) still counts as there.
                if fs::symlink_metadata(dir.join("store")).is_ok() {
                    return Err(DeltaError::Unpublished { path: dir.into() });
                }
                PublishedState {
                    format: FORMAT.into(),
                    generations: Vec::new(),
                }
            }
            Err(e) => {
                return Err(DeltaError::Io {
                    context: format!("read {}", path.display()),
                    source: e,
                });
            }
        };
        Ok(RootView {
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ROOT/quarantine` (private to the owner: another user cannot list it).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// The generation `current` points at, if any.
    pub fn current(&self) -> Result<Option<GenerationId>> {
        crate::root::read_current(&self.dir)
    }

    /// Every recorded generation, most recently activated (or created) first, as
    /// [`Root::generations`] lists them.
    pub fn generations(&self) -> Result<Vec<GenerationSummary>> {
        let current = self.current()?;
        let mut out: Vec<(Option<u64>, GenerationSummary)> = self
            .state
            .generations
            .iter()
            .map(|g| {
                (
                    g.last_activation,
                    GenerationSummary {
                        id: g.id,
                        record: g.record.clone(),
                        materialized: self.dir.join("generations").join(g.id.to_hex()).is_dir(),
                        current: current == Some(g.id),
                        last_activated: g.last_activated,
                    },
                )
            })
            .collect();
        out.sort_by_key(|(seq, g)| std::cmp::Reverse((g.current, *seq, g.record.created_at, g.id)));
        Ok(out.into_iter().map(|(_, g)| g).collect())
    }
}
