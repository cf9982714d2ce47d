//! An ouk root: the directory layout, its lock, and recovery from interrupted work.
//!
//! ```text
//! ROOT/
//!   lock                         flock(2)ed by the one process working on the root
//!   store/                       the chunk store (packs + index.redb)
//!   generations/<gen-id>/        materialized trees, never written after publication
//!   current -> generations/<id>  the only thing readers follow
//!   state.json                   generation records and activations, published for
//!                                readers that take no lock (`crate::published`)
//!   changes/<gen-id>.jsonl       the feed rows a generation changed (written by the
//!                                importer before its flip; part of the generation)
//!   staging/  quarantine/
//! ```
//!
//! Invariants:
//! - Only the holder of `ROOT/lock` changes anything under ROOT. The lock is an advisory
//!   `flock`, released by the kernel when the process dies, so a crash never leaves the
//!   root locked.
//! - Names starting with `.` under `generations/` and `current.tmp-*` are work in progress;
//!   [`Root::open`] deletes them, because they were never published; so are dot-names
//!   under `changes/`.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ouk_store::{Store, StoreOptions, WriteTotals};
use serde::Serialize;

use ouk_delta::manifest::{ChunkSetManifest, ManifestEntry};
use ouk_delta::tree::list_tree;
use ouk_delta::{DeltaError, IoContext, Result};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`DeltaError::Locked`].
    Fail,
    /// Block until the lock is free.
    Wait,
}

/// What [`Root::open`] cleaned up.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RootRecovery {
    /// Unpublished generation directories and symlinks removed.
    pub removed_partial: Vec<String>,
    /// Staging entries removed.
    pub staging_cleaned: usize,
    /// The store's own recovery.
    pub store: ouk_store::RecoveryReport,
}

/// An open, locked ouk root.
pub struct Root {
    dir: PathBuf,
    store: Store,
    recovery: RootRecovery,
    _lock: File,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn flock(file: &File, wait: LockWait) -> std::io::Result<bool> {
    let op = libc::LOCK_EX
        | if wait == LockWait::Fail {
            libc::LOCK_NB
        } else {
            0
        };
    loop {
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

impl Root {
    /// Open (creating when absent) and lock the root at `dir`, then clean up whatever an
    /// interrupted earlier process left unpublished.
    pub fn open(dir: &Path, wait: LockWait, options: StoreOptions) -> Result<Root> {
        fs::create_dir_all(dir).ctx(|| format!("create root {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .ctx(|| format!("open {}", lock_path.display()))?;
        if !flock(&lock, wait).ctx(|| format!("lock {}", lock_path.display()))? {
            return Err(DeltaError::Locked { path: lock_path });
        }
        fs::create_dir_all(dir.join("generations"))
            .ctx(|| format!("create {}", dir.join("generations").display()))?;
        // Staging holds unpacked kits (secrets too) and private copies of inputs;
        // quarantine holds refused inputs: both private to the owner. (The root itself
        // and `generations/` stay readable: services and monitoring read `current`, and
        // the secret files in a generation are 0400.)
        for sub in ["staging", "quarantine"] {
            let p = dir.join(sub);
            ouk_store::fsutil::ensure_private_dir(&p).ctx(|| format!("create {}", p.display()))?;
        }
        let store = Store::open(&dir.join("store"), options)?;
        let mut root = Root {
            dir: dir.to_path_buf(),
            recovery: RootRecovery {
                store: store.recovery().clone(),
                ..Default::default()
            },
            store,
            _lock: lock,
        };
        root.recover()?;
        // Catch the published state up with the index: a crash between an index commit
        // and its republication, or a root last written by an older ouk (a no-op, writing
        // nothing, when it is current).
        root.publish_state()?;
        Ok(root)
    }

    fn recover(&mut self) -> Result<()> {
        let gens = self.generations_dir();
        for entry in fs::read_dir(&gens).ctx(|| format!("list {}", gens.display()))? {
            let entry = entry.ctx(|| format!("list {}", gens.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                remove_tree(&entry.path())?;
                self.recovery
                    .removed_partial
                    .push(format!("generations/{name}"));
            }
        }
        for entry in fs::read_dir(&self.dir).ctx(|| format!("list {}", self.dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("current.tmp-") {
                fs::remove_file(entry.path())
                    .ctx(|| format!("remove {}", entry.path().display()))?;
                self.recovery.removed_partial.push(name);
            }
        }
        let changes = self.changes_dir();
        if changes.is_dir() {
            for entry in fs::read_dir(&changes).ctx(|| format!("list {}", changes.display()))? {
                let entry = entry.ctx(|| format!("list {}", changes.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    remove_tree(&entry.path())?;
                    self.recovery
                        .removed_partial
                        .push(format!("changes/{name}"));
                }
            }
        }
        self.recovery.staging_cleaned = self.clean_staging()?;
        Ok(())
    }

    /// Empty `staging/`; returns how many entries were removed.
    pub fn clean_staging(&self) -> Result<usize> {
        let staging = self.staging_dir();
        let mut n = 0;
        for entry in fs::read_dir(&staging).ctx(|| format!("list {}", staging.display()))? {
            let entry = entry.ctx(|| format!("list {}", staging.display()))?;
            remove_tree(&entry.path())?;
            n += 1;
        }
        Ok(n)
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The chunk store.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// The chunk store, for maintenance that needs it alone ([`Store::check_index`]).
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
    /// What opening the root repaired.
    pub fn recovery(&self) -> &RootRecovery {
        &self.recovery
    }
    /// `ROOT/generations`.
    pub fn generations_dir(&self) -> PathBuf {
        self.dir.join("generations")
    }
    /// `ROOT/staging`.
    pub fn staging_dir(&self) -> PathBuf {
        self.dir.join("staging")
    }
    /// `ROOT/quarantine`.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }
    /// `ROOT/changes`: one `<gen-id>.jsonl` of changed feed rows per imported generation.
    pub fn changes_dir(&self) -> PathBuf {
        self.dir.join("changes")
    }
    /// `ROOT/changes/<gen-id>.jsonl`.
    pub fn changes_file(&self, id: &ouk_delta::GenerationId) -> PathBuf {
        self.changes_dir().join(format!("{}.jsonl", id.to_hex()))
    }
    /// `ROOT/current`.
    pub fn current_link(&self) -> PathBuf {
        self.dir.join("current")
    }
}

/// The generation `dir/current` points at, if any. Reads only the link (replaced by
/// rename, so it is always one generation's), so lock-free readers use it too.
pub(crate) fn read_current(dir: &Path) -> Result<Option<ouk_delta::GenerationId>> {
    let link = dir.join("current");
    match fs::read_link(&link) {
        Ok(target) => {
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<ouk_delta::GenerationId>().ok());
            match name {
                Some(id) => Ok(Some(id)),
                None => Err(DeltaError::Io {
                    context: format!("read {}", link.display()),
                    source: std::io::Error::other(format!("points at {}", target.display())),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DeltaError::Io {
            context: format!("read {}", link.display()),
            source: e,
        }),
    }
}

/// Remove a file or a whole tree, making read-only directories writable first
/// (published generations are read-only).
pub fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DeltaError::Io {
                context: format!("stat {}", path.display()),
                source: e,
            });
        }
    };
    if !meta.is_dir() {
        return fs::remove_file(path)
            .ctx(|| format!("remove {}", path.display()))
            .map_err(Into::into);
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .ctx(|| format!("make {} writable", path.display()))?;
    }
    for entry in fs::read_dir(path).ctx(|| format!("list {}", path.display()))? {
        let entry = entry.ctx(|| format!("list {}", path.display()))?;
        remove_tree(&entry.path())?;
    }
    fs::remove_dir(path)
        .ctx(|| format!("remove {}", path.display()))
        .map_err(Into::into)
}

/// Ingesting a directory tree into the store as a chunk-set manifest: every regular file
/// (as [`ouk_delta::tree::list_tree`] lists them) through one store writer, one durable commit
/// for the whole tree.
impl Root {
    /// Put every file under `dir` into the store (one commit) and return its manifest.
    /// `progress` gets the count of bytes read since its last call.
    pub fn ingest_tree(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(ChunkSetManifest, WriteTotals)> {
        let files = list_tree(dir)?;
        let mut writer = self.store().writer()?;
        let mut entries = Vec::with_capacity(files.len());
        for (rel, path, mode) in files {
            let put = writer.put_file(&path, progress)?;
            entries.push(ManifestEntry {
                path: rel,
                mode,
                size: put.size,
                sha256: put.digest,
                chunks: put.chunks,
            });
        }
        let totals = writer.commit()?;
        Ok((ChunkSetManifest::new(entries)?, totals))
    }
}
