//! File-system plumbing for tree generation: hashing writers, `sha256sum`-format
//! sidecars, and the final pass that fixes modes and mtimes and counts what was written.

use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A writer that forwards to `inner` while computing SHA-256 and counting bytes.
pub struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Returns the inner writer, the SHA-256 of everything written, and its length.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 of a byte slice.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of a file's content (for files written through a seeking writer, which a
/// [`HashWriter`] cannot follow).
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Creates the parent directories of `path`.
pub fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fs::create_dir_all(p),
        _ => Ok(()),
    }
}

/// Creates (truncating) `path` with the given mode, creating parent directories.
pub fn create(path: &Path, mode: u32) -> io::Result<File> {
    ensure_parent(path)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

/// Opens a buffered, hashing writer on a new file.
pub fn create_hashed(path: &Path) -> io::Result<HashWriter<BufWriter<File>>> {
    let f = create(path, 0o644)?;
    Ok(HashWriter::new(BufWriter::with_capacity(1 << 20, f)))
}

/// Completes a file opened with [`create_hashed`]; returns (sha256, length).
pub fn finish_hashed(w: HashWriter<BufWriter<File>>) -> io::Result<([u8; 32], u64)> {
    let (buf, digest, len) = w.finish();
    let f = buf.into_inner().map_err(|e| e.into_error())?;
    drop(f);
    Ok((digest, len))
}

/// Writes `bytes` to `path` (mode 0644 unless the final pass says otherwise) and returns
/// its SHA-256.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<[u8; 32]> {
    let mut f = create(path, 0o644)?;
    f.write_all(bytes)?;
    Ok(sha256(bytes))
}

/// Writes `<path>.sha256` containing `<hex>  <file name>\n` (the `sha256sum` format).
pub fn write_sidecar(path: &Path, digest: &[u8; 32]) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "sidecar target has no name"))?;
    let line = format!("{}  {}\n", hex::encode(digest), name);
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    write_file(&PathBuf::from(side), line.as_bytes())?;
    Ok(())
}

/// What the final pass found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Walked {
    pub files: u64,
    pub bytes: u64,
}

/// Sets modes (directories 0755; files 0644, or whatever `file_mode` returns for their
/// tree-relative path) and mtimes (`mtime` Unix seconds) on everything under `root`,
/// children before parents, and counts regular files and their bytes.
pub fn finalize(root: &Path, mtime: i64, file_mode: &dyn Fn(&str) -> u32) -> io::Result<Walked> {
    let when = if mtime >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(mtime.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
    };
    let mut acc = Walked::default();
    walk(root, root, when, file_mode, &mut acc)?;
    Ok(acc)
}

fn walk(
    root: &Path,
    dir: &Path,
    when: SystemTime,
    file_mode: &dyn Fn(&str) -> u32,
    acc: &mut Walked,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(root, &path, when, file_mode, acc)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)
                .ok()
                .and_then(|r| r.to_str())
                .ok_or_else(|| io::Error::other("non-UTF-8 path in generated tree"))?;
            let mode = file_mode(rel);
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            let f = File::open(&path)?;
            f.set_modified(when)?;
            acc.files += 1;
            acc.bytes += f.metadata()?.len();
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    File::open(dir)?.set_modified(when)?;
    Ok(())
}
