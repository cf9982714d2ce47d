//! Generations: record, materialize, activate, roll back, retain.
//!
//! A generation is a [`ChunkSetManifest`] recorded in the index plus, once materialized,
//! a read-only tree `generations/<gen-id>/`. Publication follows OSTree's order:
//! 1. the tree is written under `generations/.tmp-<id>-<pid>/` (unchanged files hard-linked
//!    from the current generation once checked unchanged since it was published
//!    ([`crate::stamps`]), the rest rehydrated from the store with every chunk
//!    verified, or moved from a verified staging tree), write bits are cleared, and the
//!    filesystem is synced (`syncfs`, one call instead of an fsync per file);
//! 2. it is renamed to `generations/<id>` and `generations/` is fsynced;
//! 3. `current.tmp-<pid>` is made pointing at it and renamed over `current` (`rename(2)` is
//!    atomic), then ROOT is fsynced;
//! 4. the activation is appended to the activation log, and the published state
//!    (`ROOT/state.json`, [`crate::published`]) is rewritten for lock-free readers.
//!
//! A crash before 2 leaves a dot-directory that the next open deletes; between 2 and 3 a
//! complete but inactive generation; after 3 the new generation is current. Readers that
//! follow `current` see the old tree or the new tree, never a mix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ouk_store::fsutil::sync_dir;
use ouk_store::{FileDigest, envelope};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::root::{Root, remove_tree};
use crate::stamps;
use ouk_delta::manifest::{ChunkSetManifest, GenerationId};
use ouk_delta::{DeltaError, IoContext, Result};

const MANIFESTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("gen_manifests");
pub(crate) const RECORDS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("gen_records");
const ACTIVATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("gen_activations");

/// Free-form labels a generation carries (`version`, `channel`, `source`, ...).
pub type Labels = BTreeMap<String, String>;

/// What the index knows of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// Seconds since the epoch when first recorded.
    pub created_at: i64,
    /// Files in the tree.
    pub files: u64,
    /// Bytes in the tree.
    pub bytes: u64,
    /// Labels given when recorded.
    pub labels: Labels,
}

/// One entry of the activation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Generation made current.
    pub generation: GenerationId,
    /// Generation current before, if any.
    pub previous: Option<GenerationId>,
    /// Seconds since the epoch.
    pub at: i64,
    /// Why: `import`, `rollback`, `ingest`, or a forced activation's reason.
    pub reason: String,
    /// True when a policy check was overridden.
    pub forced: bool,
    /// Who asked (user name from the environment), for forced activations.
    pub actor: String,
    /// Extra facts (bundle sha256, ...).
    pub details: Labels,
}

/// A generation as listed.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationSummary {
    /// Its id.
    pub id: GenerationId,
    /// Its record.
    pub record: GenerationRecord,
    /// Whether `generations/<id>` exists.
    pub materialized: bool,
    /// Whether `current` points at it.
    pub current: bool,
    /// Last activation time, if ever activated.
    pub last_activated: Option<i64>,
}

/// Where materialization takes file content from.
#[derive(Debug, Clone, Copy)]
pub enum FileSource<'a> {
    /// Rehydrate from the chunk store (verifying every chunk and file digest).
    Store,
    /// Move files from a staging tree whose content the caller has verified against the
    /// manifest; files missing there come from the store.
    Staged(&'a Path),
}

/// What materialization did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Materialized {
    /// Already present: nothing written.
    pub already_present: bool,
    /// Files hard-linked from the current generation.
    pub linked: u64,
    /// Files moved from staging.
    pub moved: u64,
    /// Files rehydrated from the store.
    pub rehydrated: u64,
    /// Bytes written by rehydration.
    pub bytes_written: u64,
}

/// What activation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ActivateOutcome {
    /// The generation was already current; nothing changed.
    AlreadyCurrent,
    /// `current` now points at the generation.
    Activated {
        /// What was current before.
        previous: Option<GenerationId>,
    },
}

/// What generation gc removed.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationGc {
    /// Generations dropped.
    pub removed: Vec<GenerationId>,
    /// Generations kept.
    pub kept: Vec<GenerationId>,
    /// The store's gc.
    pub store: ouk_store::GcReport,
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn record_error(what: String, e: impl std::fmt::Display) -> DeltaError {
    DeltaError::Record {
        what,
        message: e.to_string(),
    }
}

/// Open `def` for reading, or `None` when nothing was ever written to it (redb creates a
/// table on its first write; a root with no generations has none of these tables yet).
pub(crate) fn open_optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A redb error of a write to the index. An I/O error (a full disk growing the index file)
/// stays an I/O error, so it is reported as "no space" (exit 12) rather than as an opaque
/// index failure (exit 1).
pub(crate) fn index(e: impl Into<redb::Error>) -> DeltaError {
    match e.into() {
        redb::Error::Io(source) => DeltaError::Io {
            context: "write the index".into(),
            source,
        },
        other => DeltaError::from_index(other),
    }
}

/// `syncfs(2)` of the file system holding `dir`: every dirty page of it reaches the
/// device. The durability point of [`Root::materialize`]; an import also calls it early,
/// on a thread, so the device writes the staged tree while the CPU does other work.
pub fn syncfs(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx(|| format!("open {}", dir.display()))?;
    // SAFETY: syncfs on a valid descriptor we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(DeltaError::Io {
            context: format!("syncfs {}", dir.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Root {
    /// Record `manifest` as a generation (idempotent: an existing record is kept as is).
    /// Every file it names must already be in the store.
    pub fn record_generation(
        &self,
        manifest: &ChunkSetManifest,
        labels: Labels,
    ) -> Result<GenerationId> {
        let id = manifest.id();
        let db = self.store().database();
        let txn = db.begin_write().map_err(index)?;
        {
            let mut manifests = txn.open_table(MANIFESTS).map_err(index)?;
            if manifests.get(&id.0)?.is_none() {
                manifests
                    .insert(&id.0, manifest.encode().as_slice())
                    .map_err(index)?;
                let rec = GenerationRecord {
                    created_at: now_unix(),
                    files: manifest.entries().len() as u64,
                    bytes: manifest.total_bytes(),
                    labels,
                };
                txn.open_table(RECORDS)
                    .map_err(index)?
                    .insert(&id.0, envelope::seal(*b"OKGR", 1, &rec).as_slice())
                    .map_err(index)?;
            }
        }
        txn.commit().map_err(index)?;
        // Before any activation of it: a lock-free reader that finds `current` pointing at
        // this generation finds its record published too.
        self.publish_state()?;
        Ok(id)
    }

    /// The manifest of generation `id`.
    pub fn manifest(&self, id: &GenerationId) -> Result<ChunkSetManifest> {
        let txn = self.store().database().begin_read()?;
        let Some(table) = open_optional(&txn, MANIFESTS)? else {
            return Err(DeltaError::UnknownGeneration(id.to_hex()));
        };
        let bytes = table
            .get(&id.0)?
            .ok_or_else(|| DeltaError::UnknownGeneration(id.to_hex()))?;
        // The record was written from a manifest that encoded and hashed to `id`; one that
        // no longer decodes is a damaged index, not a bad input.
        let m = ChunkSetManifest::decode(bytes.value())
            .map_err(|e| record_error(format!("manifest {id}"), e))?;
        if m.id() != *id {
            return Err(record_error(
                format!("manifest {id}"),
                "content does not hash to its id",
            ));
        }
        Ok(m)
    }

    /// The record of generation `id`, if known.
    pub fn generation_record(&self, id: &GenerationId) -> Result<Option<GenerationRecord>> {
        let txn = self.store().database().begin_read()?;
        let Some(table) = open_optional(&txn, RECORDS)? else {
            return Ok(None);
        };
        match table.get(&id.0)? {
            None => Ok(None),
            Some(v) => envelope::open(*b"OKGR", 1, v.value())
                .map(|(_, r)| Some(r))
                .map_err(|e| record_error(format!("generation {id}"), e)),
        }
    }

    /// The activation log, oldest first.
    pub fn activations(&self) -> Result<Vec<Activation>> {
        let txn = self.store().database().begin_read()?;
        let Some(table) = open_optional(&txn, ACTIVATIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let (_, a) = envelope::open(*b"OKAC", 1, v.value())
                .map_err(|e| record_error(format!("activation {}", k.value()), e))?;
            out.push(a);
        }
        Ok(out)
    }

    /// The generation `current` points at, if any.
    pub fn current(&self) -> Result<Option<GenerationId>> {
        crate::root::read_current(self.dir())
    }

    /// The directory of generation `id`.
    pub fn generation_dir(&self, id: &GenerationId) -> PathBuf {
        self.generations_dir().join(id.to_hex())
    }

    /// Every recorded generation, most recently activated (or created) first.
    pub fn generations(&self) -> Result<Vec<GenerationSummary>> {
        let current = self.current()?;
        // Order by position in the activation log, not by time: clocks are coarse and
        // may step backwards.
        let mut last: HashMap<GenerationId, (usize, i64)> = HashMap::new();
        for (seq, a) in self.activations()?.into_iter().enumerate() {
            last.insert(a.generation, (seq, a.at));
        }
        let txn = self.store().database().begin_read()?;
        let Some(table) = open_optional(&txn, RECORDS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let id = GenerationId(*k.value());
            let (_, record): (u16, GenerationRecord) = envelope::open(*b"OKGR", 1, v.value())
                .map_err(|e| record_error(format!("generation {id}"), e))?;
            out.push(GenerationSummary {
                id,
                materialized: self.generation_dir(&id).is_dir(),
                current: current == Some(id),
                last_activated: last.get(&id).map(|l| l.1),
                record,
            });
        }
        out.sort_by_key(|g| {
            let seq = last.get(&g.id).map(|l| l.0);
            std::cmp::Reverse((g.current, seq, g.record.created_at, g.id))
        });
        Ok(out)
    }

    /// The generation of kit version `name` (its `version` label), else the one whose hex id
    /// starts with `name` (at least 4 digits). A version wins over an id prefix: versions
    /// are what operators read in `gen list` and type.
    pub fn resolve(&self, name: &str) -> Result<GenerationId> {
        let generations = self.generations()?;
        let by_version: Vec<GenerationId> = generations
            .iter()
            .filter(|g| g.record.labels.get("version").map(String::as_str) == Some(name))
            .map(|g| g.id)
            .collect();
        match by_version.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            _ => return Err(DeltaError::AmbiguousGeneration(name.to_string())),
        }
        let prefix = name.to_ascii_lowercase();
        if prefix.len() < 4 {
            return Err(DeltaError::UnknownGeneration(prefix));
        }
        let matches: Vec<GenerationId> = generations
            .into_iter()
            .map(|g| g.id)
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(DeltaError::UnknownGeneration(prefix)),
            _ => Err(DeltaError::AmbiguousGeneration(prefix)),
        }
    }

    /// The paths of generation `id`'s published files that are unchanged since it was
    /// published (their stamps match a fresh `stat`; see `stamps`).
    pub fn unchanged_published_files(&self, id: &GenerationId) -> HashSet<String> {
        stamps::unchanged(self.store().database(), id, &self.generation_dir(id))
    }

    /// Write generation `id`'s tree, unless it is already there.
    pub fn materialize(&self, id: &GenerationId, source: FileSource<'_>) -> Result<Materialized> {
        let target = self.generation_dir(id);
        if target.is_dir() {
            return Ok(Materialized {
                already_present: true,
                ..Default::default()
            });
        }
        let manifest = self.manifest(id)?;
        let tmp =
            self.generations_dir()
                .join(format!(".tmp-{}-{}", id.to_hex(), std::process::id()));
        remove_tree(&tmp)?;
        fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        // Files the current generation has, by (digest, mode): hard-link candidates, each
        // checked against its publication stamp (else its content) before it is linked.
        let mut reusable = match self.current()? {
            Some(cur) => match self.manifest(&cur) {
                Ok(m) => stamps::LinkSources::of(
                    self.store().database(),
                    &cur,
                    self.generation_dir(&cur),
                    &m,
                ),
                Err(_) => stamps::LinkSources::none(),
            },
            None => stamps::LinkSources::none(),
        };
        let mut out = Materialized::default();
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        dirs.insert(tmp.clone());
        for e in manifest.entries() {
            let dest = tmp.join(&e.path);
            if let Some(parent) = dest.parent()
                && dirs.insert(parent.to_path_buf())
            {
                fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
                let mut p = parent.parent();
                while let Some(d) = p {
                    if d == tmp || !dirs.insert(d.to_path_buf()) {
                        break;
                    }
                    p = d.parent();
                }
            }
            let read_only = e.mode & !0o222;
            if let Some(src) = reusable.find(&e.sha256, e.mode)
                && fs::hard_link(&src, &dest).is_ok()
            {
                out.linked += 1;
                continue;
            }
            if let FileSource::Staged(staging) = source {
                let staged = staging.join(&e.path);
                if fs::rename(&staged, &dest).is_ok() {
                    fs::set_permissions(&dest, fs::Permissions::from_mode(read_only))
                        .ctx(|| format!("chmod {}", dest.display()))?;
                    out.moved += 1;
                    continue;
                }
            }
            let file = File::create(&dest).ctx(|| format!("create {}", dest.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let n = self
                .store()
                .read_chunks(&e.chunks, Some(&e.sha256), &mut w)?;
            w.flush().ctx(|| format!("write {}", dest.display()))?;
            drop(w);
            fs::set_permissions(&dest, fs::Permissions::from_mode(read_only))
                .ctx(|| format!("chmod {}", dest.display()))?;
            out.rehydrated += 1;
            out.bytes_written += n;
        }
        // Directories read-only too: a published generation is never written again.
        let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            fs::set_permissions(d, fs::Permissions::from_mode(0o555))
                .ctx(|| format!("chmod {}", d.display()))?;
        }
        syncfs(&tmp)?;
        // The stamps, before publishing: they include the ctime change of this tree's own
        // links (renaming the directory changes no file's), and a failure here (a full disk
        // growing the index) leaves nothing published.
        if let Err(e) = stamps::record(self.store().database(), id, &tmp, &manifest) {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &target).ctx(|| format!("publish {}", target.display()))?;
        sync_dir(&self.generations_dir())?;

        Ok(out)
    }

    /// Point `current` at generation `id` (materializing it from the store if needed) and
    /// log the activation. A no-op when it is already current.
    pub fn activate(
        &self,
        id: &GenerationId,
        reason: &str,
        forced: bool,
        details: Labels,
    ) -> Result<ActivateOutcome> {
        let previous = self.current()?;
        if previous == Some(*id) && self.generation_dir(id).is_dir() {
            return Ok(ActivateOutcome::AlreadyCurrent);
        }
        self.materialize(id, FileSource::Store)?;
        let tmp_link = self
            .dir()
            .join(format!("current.tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp_link);
        symlink(Path::new("generations").join(id.to_hex()), &tmp_link)
            .ctx(|| format!("create {}", tmp_link.display()))?;
        fs::rename(&tmp_link, self.current_link())
            .ctx(|| format!("flip {}", self.current_link().display()))?;
        sync_dir(self.dir())?;
        let activation = Activation {
            generation: *id,
            previous,
            at: now_unix(),
            reason: reason.to_string(),
            forced,
            actor: std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "unknown".into()),
            details,
        };
        let txn = self.store().database().begin_write().map_err(index)?;
        {
            let mut log = txn.open_table(ACTIVATIONS).map_err(index)?;
            let next = log.last().map_err(index)?.map_or(1, |(k, _)| k.value() + 1);
            log.insert(next, envelope::seal(*b"OKAC", 1, &activation).as_slice())
                .map_err(index)?;
        }
        txn.commit().map_err(index)?;
        // The activation happened (`current` flipped, the log committed): a failure to
        // republish must not report it as failed. The next open of the root republishes
        // (`Root::open`), and until then readers see the flip with no activation time.
        let _ = self.publish_state();
        Ok(ActivateOutcome::Activated { previous })
    }

    /// Make the previous generation (or `target`) current again.
    pub fn rollback(&self, target: Option<&str>) -> Result<(GenerationId, ActivateOutcome)> {
        let id = match target {
            Some(prefix) => self.resolve(prefix)?,
            None => {
                let current = self.current()?;
                self.generations()?
                    .into_iter()
                    .find(|g| Some(g.id) != current && g.last_activated.is_some())
                    .map(|g| g.id)
                    .ok_or(DeltaError::NothingToRollBackTo)?
            }
        };
        let outcome = self.activate(&id, "rollback", false, Labels::new())?;
        Ok((id, outcome))
    }

    /// Keep the `keep` most recently activated generations (always including the current
    /// one), drop the others' trees and records, then drop the store data nothing kept uses.
    pub fn gc_generations(&self, keep: usize) -> Result<GenerationGc> {
        let all = self.generations()?;
        let (kept, removed): (Vec<_>, Vec<_>) = all
            .into_iter()
            .enumerate()
            .partition(|(i, g)| g.current || *i < keep);
        let removed: Vec<GenerationId> = removed.into_iter().map(|(_, g)| g.id).collect();
        let kept: Vec<GenerationId> = kept.into_iter().map(|(_, g)| g.id).collect();
        // Drop the records first: a crash after this leaves only unreferenced trees and
        // store data, which the next gc removes.
        let txn = self.store().database().begin_write().map_err(index)?;
        {
            let mut manifests = txn.open_table(MANIFESTS).map_err(index)?;
            let mut records = txn.open_table(RECORDS).map_err(index)?;
            for id in &removed {
                manifests.remove(&id.0).map_err(index)?;
                records.remove(&id.0).map_err(index)?;
                stamps::remove(&txn, id)?;
            }
        }
        txn.commit().map_err(index)?;
        self.publish_state()?;
        let known: HashSet<GenerationId> = kept.iter().copied().collect();
        for entry in fs::read_dir(self.generations_dir()).ctx(|| "list generations".to_string())? {
            let entry = entry.ctx(|| "list generations".to_string())?;
            let keep_it = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<GenerationId>().ok())
                .is_some_and(|id| known.contains(&id));
            if !keep_it {
                // Rename first so a crash mid-delete leaves a dot-name recovery removes.
                let trash = self
                    .generations_dir()
                    .join(format!(".trash-{}", entry.file_name().to_string_lossy()));
                fs::rename(entry.path(), &trash)
                    .ctx(|| format!("retire {}", entry.path().display()))?;
                remove_tree(&trash)?;
            }
        }
        // A generation's changes file goes with it (and one whose generation is unknown).
        let changes = self.changes_dir();
        if changes.is_dir() {
            for entry in fs::read_dir(&changes).ctx(|| format!("list {}", changes.display()))? {
                let entry = entry.ctx(|| format!("list {}", changes.display()))?;
                let keep_it = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .and_then(|n| n.parse::<GenerationId>().ok())
                    .is_some_and(|id| known.contains(&id));
                if !keep_it {
                    remove_tree(&entry.path())?;
                }
            }
            sync_dir(&changes)?;
        }
        let store = self.gc_store()?;
        Ok(GenerationGc {
            removed,
            kept,
            store,
        })
    }

    /// Drop store data no recorded generation uses.
    pub fn gc_store(&self) -> Result<ouk_store::GcReport> {
        let mut live: HashSet<FileDigest> = HashSet::new();
        for g in self.generations()? {
            for e in self.manifest(&g.id)?.entries() {
                live.insert(e.sha256);
            }
        }
        Ok(self.store().gc(&live)?)
    }
}
