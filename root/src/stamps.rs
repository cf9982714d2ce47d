//! Stamps of published files: what each file of a generation looked like right after the
//! generation was published (device, inode, size, mtime, ctime), kept in the index.
//!
//! Why: publishing the next generation hard-links its unchanged files from the current
//! one. A file edited or damaged in the active tree would otherwise be carried into every
//! later generation, though their manifests say otherwise. Before a file is linked, its
//! stamp is compared with a fresh `stat`: any write to it (or a chmod, a rename over it, a
//! new link elsewhere) moves its ctime, which no user can set back. A file whose stamp
//! differs, or that has none (a crash between publishing and recording, a root made by an
//! older ouk), is read and its SHA-256 compared with the manifest before it is linked; one
//! that does not match is not linked, and the file comes from staging or the store.
//!
//! Invariants: a generation's stamps are recorded after its tree is written and before it
//! is published (so they include the ctime change its own links made, and a failure to
//! record them publishes nothing); a missing or undecodable stamp list only
//! costs a content check, never a wrong link.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ouk_store::{FileDigest, envelope};
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use ouk_delta::manifest::{ChunkSetManifest, GenerationId};
use ouk_delta::{DeltaError, IoContext, Result};

const STAMPS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("gen_stamps");

/// What `stat` said of one published file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub(crate) fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StampList {
    /// Path -> stamp.
    files: Vec<(String, FileStamp)>,
}

/// Stat every file of `manifest` under `tree` and record the stamps of generation `id`.
pub(crate) fn record(
    db: &redb::Database,
    id: &GenerationId,
    tree: &Path,
    manifest: &ChunkSetManifest,
) -> Result<()> {
    let mut files = Vec::with_capacity(manifest.entries().len());
    for e in manifest.entries() {
        let path = tree.join(&e.path);
        let meta = std::fs::symlink_metadata(&path).ctx(|| format!("stat {}", path.display()))?;
        files.push((e.path.clone(), FileStamp::of(&meta)));
    }
    let bytes = envelope::seal(*b"OKST", 1, &StampList { files });
    // Errors as the other generation writes report them: I/O (a full disk) stays I/O.
    use crate::generation::index;
    let txn = db.begin_write().map_err(index)?;
    {
        let mut t = txn.open_table(STAMPS).map_err(index)?;
        t.insert(&id.0, bytes.as_slice()).map_err(index)?;
    }
    txn.commit().map_err(index)?;
    Ok(())
}

/// Forget generation `id`'s stamps (in the caller's transaction).
pub(crate) fn remove(txn: &redb::WriteTransaction, id: &GenerationId) -> Result<()> {
    let mut t = txn.open_table(STAMPS).map_err(DeltaError::from_index)?;
    t.remove(&id.0).map_err(DeltaError::from_index)?;
    Ok(())
}

/// Generation `id`'s stamps by path (empty when none were recorded or they do not decode).
fn load(db: &redb::Database, id: &GenerationId) -> HashMap<String, FileStamp> {
    let Ok(txn) = db.begin_read() else {
        return HashMap::new();
    };
    let Ok(t) = txn.open_table(STAMPS) else {
        return HashMap::new();
    };
    let Ok(Some(v)) = t.get(&id.0) else {
        return HashMap::new();
    };
    envelope::open::<StampList>(*b"OKST", 1, v.value())
        .map(|(_, l)| l.files.into_iter().collect())
        .unwrap_or_default()
}

/// The paths of generation `id`'s files, published under `dir`, whose stamp still matches
/// a fresh `stat`: unchanged since they were published (and so since their content was
/// verified), as [`LinkSources`] trusts them for links. A delta apply reads its reference
/// bytes from these without hashing them again.
pub(crate) fn unchanged(db: &redb::Database, id: &GenerationId, dir: &Path) -> HashSet<String> {
    load(db, id)
        .into_iter()
        .filter(|(rel, stamp)| {
            std::fs::symlink_metadata(dir.join(rel))
                .is_ok_and(|m| m.is_file() && FileStamp::of(&m) == *stamp)
        })
        .map(|(rel, _)| rel)
        .collect()
}

/// The current generation's files that may be hard-linked into a new one: each is checked
/// (stamp, else content) once, on first use.
pub(crate) struct LinkSources {
    dir: PathBuf,
    stamps: HashMap<String, FileStamp>,
    /// (digest, mode) -> path in the current generation.
    by_content: HashMap<(FileDigest, u32), String>,
    /// Verdicts so far, by path.
    checked: HashMap<String, bool>,
}

impl LinkSources {
    /// No sources (no current generation).
    pub(crate) fn none() -> LinkSources {
        LinkSources {
            dir: PathBuf::new(),
            stamps: HashMap::new(),
            by_content: HashMap::new(),
            checked: HashMap::new(),
        }
    }

    /// The files of generation `id`, published at `dir`.
    pub(crate) fn of(
        db: &redb::Database,
        id: &GenerationId,
        dir: PathBuf,
        manifest: &ChunkSetManifest,
    ) -> LinkSources {
        let mut by_content = HashMap::new();
        for e in manifest.entries() {
            by_content
                .entry((e.sha256, e.mode))
                .or_insert_with(|| e.path.clone());
        }
        LinkSources {
            dir,
            stamps: load(db, id),
            by_content,
            checked: HashMap::new(),
        }
    }

    /// A file holding exactly `sha256` with `mode`, safe to link, if the current
    /// generation has one.
    pub(crate) fn find(&mut self, sha256: &FileDigest, mode: u32) -> Option<PathBuf> {
        let rel = self.by_content.get(&(*sha256, mode))?.clone();
        let path = self.dir.join(&rel);
        let ok = match self.checked.get(&rel) {
            Some(v) => *v,
            None => {
                let v = self.verify(&rel, &path, sha256);
                self.checked.insert(rel, v);
                v
            }
        };
        ok.then_some(path)
    }

    fn verify(&self, rel: &str, path: &Path, sha256: &FileDigest) -> bool {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        if !meta.is_file() {
            return false;
        }
        if self.stamps.get(rel) == Some(&FileStamp::of(&meta)) {
            return true;
        }
        // Changed since it was published, or never stamped: read it.
        ouk_delta::content::check_file(path, meta.len(), sha256).is_some()
    }
}
