//! The one home for writing files in place safely: atomic replacement, directory fsync,
//! and every temporary file or directory ouk makes next to its outputs.
//!
//! Output directories may be shared (a kit directory on a web server, a USB stick, a
//! mirror's export directory), so anyone who can write there may have planted a name
//! before ouk runs. Invariants:
//! - **No write through a planted name.** A temporary file is created exclusively
//!   (`O_CREAT | O_EXCL`, plus `O_NOFOLLOW`) under an unpredictable name (the `tempfile`
//!   crate's random suffix) in the destination's directory, so a symbolic link or file
//!   planted there is never opened, truncated or written through. A temporary directory is
//!   made the same way (`mkdir` never follows a link).
//! - **Whole or nothing.** A temporary file's bytes are fsynced before the `rename(2)` that
//!   publishes it, and the directory is fsynced after, so after a crash the destination
//!   holds its old content or its new content, whole. `rename` replaces a link at the
//!   destination itself, never what it points to.
//! - **No litter.** A temporary file that is not committed is removed when dropped (on
//!   every error path), as is a temporary directory.
//! - Files whose names must be predictable (a resumable download's `.part`) are opened
//!   with `O_NOFOLLOW` through [`open_no_follow`], and created only exclusively.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A filesystem operation failed; `context` says what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct FsError {
    /// What was being done, naming the path.
    pub context: String,
    /// The underlying error (its `raw_os_error` decides the exit code, e.g. `ENOSPC`).
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// What kind of failure this is: its `io::Error`'s (see [`crate::ErrorClass`]).
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::of_io(&self.source)
    }
}

/// This module's result type.
pub type Result<T> = std::result::Result<T, FsError>;

/// Attach what was being done (naming the path) to an I/O error: the one such trait of the
/// workspace. Every crate's error converts from [`FsError`] into its own I/O variant,
/// keeping context and source (so `ENOSPC` stays "no space"), so `.ctx(..)?` works in any
/// crate's functions; each crate re-exports this trait from its `error` module.
pub trait IoContext<T> {
    /// The error as an [`FsError`] with `context`.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| FsError {
            context: context(),
            source,
        })
    }
}

/// Read buffer of a hashing pass ([`sha256_reader`]): large enough to keep syscalls off
/// the profile, small enough to allocate per file.
pub const HASH_BUFFER: usize = 256 * 1024;

/// Which side of a streaming pass ([`read_through`]) failed: the input, or what the bytes
/// were handed to (a copy's write), so each keeps its own context.
#[derive(Debug)]
pub enum PassError<E> {
    /// Reading the input failed.
    Read(io::Error),
    /// The callback refused a piece.
    Sink(E),
}

/// The workspace's one read loop: hand every byte `reader` yields to `each`, in order,
/// through one buffer of `buffer` bytes, retrying an interrupted read; returns how many
/// bytes went by. Hashing a file, copying while hashing and digesting a stream are all
/// this loop with a different `each`.
pub fn read_through<E>(
    reader: impl io::Read,
    buffer: usize,
    each: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<u64, PassError<E>> {
    let mut buf = vec![0u8; buffer.max(1)];
    read_through_with(reader, &mut buf, each)
}

/// [`read_through`] through the caller's `buf` (for a pass per archive entry, where a
/// fresh buffer per entry would cost an allocation each).
pub fn read_through_with<E>(
    mut reader: impl io::Read,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<u64, PassError<E>> {
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PassError::Read(e)),
        };
        each(buf.get(..n).unwrap_or_default()).map_err(PassError::Sink)?;
        total += n as u64;
    }
}

/// SHA-256 and size of everything `reader` yields ([`read_through`] with a hasher).
pub fn sha256_reader(reader: impl io::Read) -> io::Result<([u8; 32], u64)> {
    let mut buf = vec![0u8; HASH_BUFFER];
    sha256_reader_with(reader, &mut buf)
}

/// [`sha256_reader`] through the caller's `buf`.
pub fn sha256_reader_with(reader: impl io::Read, buf: &mut [u8]) -> io::Result<([u8; 32], u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let size = read_through_with(reader, buf, |piece| {
        hasher.update(piece);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        PassError::Read(e) => e,
        PassError::Sink(never) => match never {},
    })?;
    Ok((hasher.finalize().into(), size))
}

/// SHA-256 and size of the file at `path`, streamed ([`sha256_reader`]); the size is that
/// of the bytes hashed.
pub fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    sha256_reader(file).ctx(|| format!("read {}", path.display()))
}

/// A reader that hashes (SHA-256) and counts every byte it hands out: the one way to hash
/// what a pass reads while the pass uses the bytes.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    size: u64,
}

impl<R: io::Read> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        use sha2::Digest;
        HashingReader {
            inner,
            hasher: sha2::Sha256::new(),
            size: 0,
        }
    }

    /// Read the rest of the input (bytes a parser did not need still count), then return
    /// the SHA-256 and size of everything read.
    pub fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.digest())
    }

    /// The SHA-256 and size of what was read so far (the rest is left unread).
    pub fn digest(self) -> ([u8; 32], u64) {
        use sha2::Digest;
        (self.hasher.finalize().into(), self.size)
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl<R: io::Read> io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (SHA-256) and counts what `inner` accepts: the one way to hash
/// what a pass writes.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        use sha2::Digest;
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            size: 0,
        }
    }

    /// Count the bytes `prefix` yields as if already written, without writing them (a
    /// file appended to: its kept bytes belong in the digest but are on disk already).
    pub fn hash_prefix(&mut self, prefix: impl io::Read) -> io::Result<u64> {
        use sha2::Digest;
        let n = read_through(prefix, HASH_BUFFER, |piece| {
            self.hasher.update(piece);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            PassError::Read(e) => e,
            PassError::Sink(never) => match never {},
        })?;
        self.size += n;
        Ok(n)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (bytes written through it directly are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 and size of everything hashed, and the inner writer.
    pub fn finish(self) -> ([u8; 32], u64, W) {
        use sha2::Digest;
        (self.hasher.finalize().into(), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }

    // The inner writer's own `write_all` (a buffered or in-memory writer may take the
    // whole slice at once), then the hash of the slice it took.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        use sha2::Digest;
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The mode [`File::create`] asks for: the umask decides the rest, as for any new file.
pub const DEFAULT_MODE: u32 = 0o666;

/// Longest part of the destination's name kept in a temporary name (the whole name must
/// stay under `NAME_MAX` with the prefix and the random suffix).
const NAME_IN_TEMP: usize = 64;

/// fsync a directory so entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync directory {}", dir.display()))
}

/// The directory a destination path lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `.tmp-<name>-`: the temporary's prefix, so a leftover (after a crash) says what it was.
fn temp_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(NAME_IN_TEMP);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".tmp-{}-", name.get(..end).unwrap_or_default())
}

/// Create a file exclusively at `path` (never through a link, never over anything).
fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A file being written under a temporary name beside its destination; [`commit`]
/// publishes it. Dropped without commit, the temporary file is removed.
///
/// [`commit`]: AtomicFile::commit
#[derive(Debug)]
pub struct AtomicFile {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Start writing `dest` (its directory is created when missing), mode as
    /// [`File::create`] gives.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        AtomicFile::create_with_mode(dest, DEFAULT_MODE)
    }

    /// Start writing `dest` with `mode` (before the umask).
    pub fn create_with_mode(dest: &Path, mode: u32) -> Result<AtomicFile> {
        let dir = parent_of(dest);
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        let file = tempfile::Builder::new()
            .prefix(&temp_prefix(dest))
            .make_in(dir, |p| create_exclusive(p, mode))
            .ctx(|| format!("create a temporary file for {}", dest.display()))?;
        Ok(AtomicFile {
            file,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary file's path (for messages).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The open temporary file.
    pub fn as_file(&self) -> &File {
        self.file.as_file()
    }

    /// Set the temporary file's permission bits exactly (not subject to the umask).
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        self.file
            .as_file()
            .set_permissions(Permissions::from_mode(mode))
            .ctx(|| format!("chmod {}", self.path().display()))
    }

    /// fsync the file, rename it to its destination, fsync the directory.
    pub fn commit(self) -> Result<PathBuf> {
        let AtomicFile { file, dest } = self;
        file.as_file()
            .sync_all()
            .ctx(|| format!("fsync {}", file.path().display()))?;
        // On failure the error carries the temporary file, which is removed when dropped.
        file.persist(&dest).map_err(|e| FsError {
            context: format!("rename to {}", dest.display()),
            source: e.error,
        })?;
        sync_dir(parent_of(&dest))?;
        Ok(dest)
    }
}

// Writes go to the `File` itself, not through `NamedTempFile`'s `Write`: that one wraps
// every error with the path, hiding the OS error code, so a full disk read as an unknown
// failure (exit 1) instead of "no space" (exit 12). The path is in the caller's context.
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_file_mut().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.as_file_mut().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_file_mut().flush()
    }
}

/// Write `bytes` to `path` atomically (see the module invariants), creating its directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with_mode(path, bytes, DEFAULT_MODE)
}

/// [`write_atomic`] with `mode` (before the umask).
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::create_with_mode(path, mode)?;
    f.write_all(bytes)
        .ctx(|| format!("write {}", f.path().display()))?;
    f.commit().map(drop)
}

/// A temporary directory in `dir`, named `<prefix><random>`, made exclusively and removed
/// with everything in it when dropped.
pub fn temp_dir_in(dir: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .ctx(|| format!("create a temporary directory in {}", dir.display()))
}

/// How [`open_no_follow`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Read only.
    Read,
    /// Append to an existing file.
    Append,
    /// Create a new file, exclusively (fails if anything, even a dangling link, is there).
    CreateNew,
}

/// Open a file whose name ouk must keep predictable without following a symbolic link at
/// the final component: a link planted there makes the open fail (`ELOOP`) instead of
/// reaching a file elsewhere.
pub fn open_no_follow(path: &Path, how: Opening) -> io::Result<File> {
    let mut o = OpenOptions::new();
    match how {
        Opening::Read => o.read(true),
        Opening::Append => o.append(true),
        Opening::CreateNew => o.write(true).create_new(true).mode(DEFAULT_MODE),
    };
    o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Directories private to the owner of the data: the store, staging and quarantine hold
/// kit content (secrets included: a kit's DPoP private key is a chunk in a pack like any
/// other file), so no other local user may traverse them. A directory another user owns
/// is reported (chmod fails there), never silently trusted.
///
/// Create `dir` (and missing parents) as 0700, or narrow an existing one to 0700 when it
/// grants anything to group or others.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` in pieces of at most 3 bytes, failing each read once with EINTR.
    struct Stuttering<'a> {
        data: &'a [u8],
        interrupt_next: bool,
    }

    impl io::Read for Stuttering<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt_next = !self.interrupt_next;
            if !self.interrupt_next {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.data.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_read_loop_retries_interrupted_reads_and_names_the_failing_side() {
        use sha2::Digest;
        let data = b"the one read loop of the workspace".to_vec();
        let input = Stuttering {
            data: &data,
            interrupt_next: false,
        };
        let (digest, size) = sha256_reader(input).expect("hash");
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, <[u8; 32]>::from(sha2::Sha256::digest(&data)));
        let mut seen = Vec::new();
        let refused = read_through(&data[..], 4, |piece| {
            seen.extend_from_slice(piece);
            if seen.len() >= 8 { Err("full") } else { Ok(()) }
        });
        assert!(matches!(refused, Err(PassError::Sink("full"))));
        assert_eq!(seen, data[..8]);
    }
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn hashing_reader_writer_and_file_give_one_digest() {
        use sha2::Digest;
        let data = b"bytes a pass reads, writes and hashes".to_vec();
        let want: [u8; 32] = sha2::Sha256::digest(&data).into();
        let mut reader = HashingReader::new(&data[..]);
        let mut head = [0u8; 6];
        io::Read::read_exact(&mut reader, &mut head).expect("read");
        assert_eq!(reader.size(), 6);
        assert_eq!(reader.finish().expect("finish"), (want, data.len() as u64));
        let mut writer = HashingWriter::new(Vec::new());
        writer.hash_prefix(&data[..5]).expect("prefix");
        writer.write_all(&data[5..]).expect("write");
        let (sha, size, inner) = writer.finish();
        assert_eq!((sha, size), (want, data.len() as u64));
        assert_eq!(inner, data[5..], "the prefix is hashed, not written");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, &data).expect("write");
        assert_eq!(sha256_file(&file).expect("hash"), (want, data.len() as u64));
        let missing = sha256_file(&dir.path().join("missing")).expect_err("missing");
        assert!(missing.context.starts_with("open "), "{missing}");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_a_link_at_the_destination_not_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let dir = tmp.path().join("out");
        fs::create_dir(&dir).unwrap();
        symlink(&outside, dir.join("index.json")).unwrap();
        write_atomic(&dir.join("index.json"), b"new").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert!(
            fs::symlink_metadata(dir.join("index.json"))
                .unwrap()
                .is_file()
        );
        assert_eq!(fs::read(dir.join("index.json")).unwrap(), b"new");
        assert_eq!(names(&dir), ["index.json"]);
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("sub/k.tar.gz");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"half").unwrap();
        assert!(f.path().starts_with(tmp.path().join("sub")));
        let name = f.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".tmp-k.tar.gz-"), "{name}");
        drop(f);
        assert!(names(&tmp.path().join("sub")).is_empty());
        assert!(!dest.exists());
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory at the destination: rename(2) refuses to replace it with a file.
        let dest = tmp.path().join("d");
        fs::create_dir(&dest).unwrap();
        let e = write_atomic(&dest, b"x").unwrap_err();
        assert!(e.to_string().contains("rename to"), "{e}");
        assert_eq!(names(tmp.path()), ["d"]);
    }

    #[test]
    fn modes_are_the_umask_s_or_exact() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("salt");
        write_atomic_with_mode(&p, b"k", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let q = tmp.path().join("bundle");
        let f = AtomicFile::create(&q).unwrap();
        f.set_mode(0o644).unwrap();
        f.commit().unwrap();
        assert_eq!(
            fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn a_long_name_still_makes_a_temporary_name() {
        let tmp = tempfile::tempdir().unwrap();
        let long = format!("{}.tar.gz", "é".repeat(120));
        write_atomic(&tmp.path().join(&long), b"x").unwrap();
        assert_eq!(names(tmp.path()), [long]);
    }

    #[test]
    fn open_no_follow_refuses_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let link = tmp.path().join("x.part");
        symlink(&outside, &link).unwrap();
        for how in [Opening::Read, Opening::Append, Opening::CreateNew] {
            assert!(open_no_follow(&link, how).is_err(), "{how:?}");
        }
        let dangling = tmp.path().join("y.part");
        symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        assert!(open_no_follow(&dangling, Opening::CreateNew).is_err());
        assert!(!tmp.path().join("nowhere").exists());
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
    }

    #[test]
    fn a_temporary_directory_is_fresh_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = temp_dir_in(tmp.path(), ".tmp-mirror-export-").unwrap();
        assert!(d.path().is_dir());
        let p = d.path().to_path_buf();
        drop(d);
        assert!(!p.exists());
    }

    #[test]
    fn new_and_existing_directories_end_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fresh = tmp.path().join("a/b");
        ensure_private_dir(&fresh).expect("create");
        assert_eq!(fs::metadata(&fresh).expect("stat").mode() & 0o777, 0o700);
        let open = tmp.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&open).expect("narrow");
        assert_eq!(fs::metadata(&open).expect("stat").mode() & 0o777, 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"x").expect("write");
        assert!(ensure_private_dir(&file).is_err());
    }

    #[test]
    fn write_errors_keep_their_os_error_code() {
        // /dev/full fails every write with ENOSPC; a temp file there cannot be made, so
        // check the path the data takes: a write error from the file must carry its code.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = AtomicFile::create(&dir.path().join("x")).expect("create");
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        if let Ok(full) = full {
            // Swap the descriptor under the temp file for /dev/full.
            use std::os::fd::AsRawFd;
            // SAFETY: dup2 onto a descriptor we own, from one we own.
            let rc = unsafe { libc::dup2(full.as_raw_fd(), f.as_file().as_raw_fd()) };
            assert_eq!(rc, f.as_file().as_raw_fd());
            let e = f.write_all(b"x").expect_err("/dev/full is full");
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        }
    }
}
