//! Applying a delta: rebuilding the target files the baseline lacks, verified.
//!
//! Files whose source is `baseline` are not written: the host's store has their content
//! and materialization hard-links or rehydrates them. Every other file is decoded, piece by
//! piece, into a [`RebuiltSink`]: [`DirSink`] writes it into a directory (created with
//! `create_new`, so nothing is overwritten) hashing it on the way; the importer's sink also
//! feeds the same bytes to the store writer, so a rebuilt file is read, hashed and chunked
//! once. The sink returns each file's SHA-256: the caller checks every one against the
//! rebuilt manifest before it uses any. Order matters: pieces, then the solid block, then the trailer block, whose
//! dictionary holds the digests of everything decoded before it. Memory per piece is bounded by
//! [`MAX_PIECE`](crate::format::MAX_PIECE) of target plus
//! [`MAX_REFERENCE`](crate::format::MAX_REFERENCE) of reference; the solid block holds at
//! most [`MAX_SOLID`](crate::format::MAX_SOLID) plus its references.
//!
//! Files of the decoded tier are re-created in two steps: their plain form is decoded from
//! the pieces into an unnamed scratch file on the applying thread, then re-compressed by its
//! recipe on a worker thread (the expensive step), at most [`REBUILD_WORKERS`] at once,
//! while the applying thread goes on with the next files. The sink still sees one file at
//! a time, and the re-created files in header order; an apply that fails reports the first
//! failing file in header order, as a sequential one would.
//!
//! Cost (issue 23): the pieces of a file are decoded on a decoder thread one ahead of the
//! sink; reference windows are lent from mappings of the checked baseline files rather
//! than copied ([`ContentReader::map_range`]); piece buffers are recycled between pieces
//! (at most [`SPARE_PIECES`] kept), and a sink may let the decoder thread write its copy of
//! the file ([`RebuiltSink::decoder_copy`]) so its own thread only hashes and stores. The
//! runs record patches copy from the baseline are reported after each file
//! ([`RebuiltSink::copied`]): what the host derives from a rebuilt feed need not read
//! them again.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use ouk_store::FileDigest;
use ouk_store::fsutil::{HashingReader, PassError, read_through};
use ouk_store::presized::PresizedFile;
use ouk_store::writeback::WritebackFile;

use crate::content::{ContentReader, RangeBytes, TreeFile};
use crate::envelope;
use crate::error::{DeltaError, Result};
use crate::format::{Block, DeltaFile, DeltaHeader, ReferenceRange, Source};
use crate::patch::{Encoding, PatchError, bsdiff_decode, zstd_decode, zstd_decode_into};
use crate::plain::PlainForms;
use ouk_recompress::{Limits, RecompressError};

fn io_err(context: String) -> impl FnOnce(io::Error) -> DeltaError {
    move |source| DeltaError::Io { context, source }
}

fn read_payload(payload: &mut (impl Read + Seek), offset: u64, length: u64) -> Result<Vec<u8>> {
    payload
        .seek(SeekFrom::Start(offset))
        .map_err(io_err("seek delta payload".into()))?;
    let mut buf = Vec::with_capacity(length.min(1 << 28) as usize);
    payload
        .take(length)
        .read_to_end(&mut buf)
        .map_err(io_err("read delta payload".into()))?;
    if buf.len() as u64 != length {
        return Err(DeltaError::BadDelta(
            "payload is shorter than its header says".into(),
        ));
    }
    Ok(buf)
}

/// Where rebuilt files go.
pub trait RebuiltSink {
    /// Take the whole content of `file` from `content` and return its SHA-256. An error
    /// reading `content` is the decoder's: [`apply_delta`] reports its own error in its
    /// place, so a sink may pass read errors through as they come.
    fn put(&mut self, file: &DeltaFile, content: &mut dyn Read) -> Result<FileDigest>;

    /// [`RebuiltSink::put`] of a file rebuilt from pieces: `copied` holds the runs record
    /// patches copied from baseline files so far, noted before `content` gives their bytes
    /// (so every byte read has its run, if it has one, in there). The default ignores them;
    /// the importer's store writer takes the baseline's cuts inside them
    /// ([`ouk_store::chunker::KnownCuts`]) instead of running the cutter.
    ///
    /// With `produced`, the thread producing the pieces (the decoder) hashes them as it
    /// hands them on: once `content` is at its end, [`ProducedDigest::get`] is the SHA-256
    /// of every byte it gave, and the sink need not hash them again on its own thread.
    fn put_copying(
        &mut self,
        file: &DeltaFile,
        content: &mut dyn Read,
        _copied: &CopiedSoFar,
        _produced: Option<&ProducedDigest>,
    ) -> Result<FileDigest> {
        self.put(file, content)
    }

    /// A file the applier may write `file`'s rebuilt bytes into itself, piece by piece on
    /// its decoder thread, so the sink's own thread only hashes and stores them. `None`
    /// (the default): the sink writes what it needs from `put`. When this returns a file,
    /// the next `put` is of `file`, and its bytes are in that file (in full when `put`'s
    /// content ended without an error): `put` must not write them there again.
    fn decoder_copy(&mut self, _file: &DeltaFile) -> Result<Option<PresizedFile>> {
        Ok(None)
    }

    /// After `put` of `file`: the runs of it that record patches copied from baseline
    /// files, in file order (empty when none, or too many to keep: see
    /// [`MAX_NOTED_RUNS`]). The default ignores them; the importer derives the feed index
    /// from them without reading the copied rows again.
    fn copied(&mut self, _file: &DeltaFile, _copies: Vec<CopiedFrom>) {}
}

/// Runs of a rebuilt file copied from one baseline file by record patches
/// ([`RebuiltSink::copied`]): each run's `output` is an offset in the rebuilt file, its
/// `reference` an offset in the baseline file `baseline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedFrom {
    /// The baseline file's path.
    pub baseline: String,
    /// The runs, in rebuilt-file order.
    pub runs: Vec<crate::records::CopiedRun>,
}

/// Most copied runs noted per file (24 bytes each): a file with more is reported with
/// none, and its feed index is derived by reading it whole.
pub const MAX_NOTED_RUNS: usize = 1 << 20;

/// The runs of one file copied from baseline files, noted as its pieces are decoded (on
/// the decoder thread) and looked up by the sink while it reads the same file.
#[derive(Default)]
pub struct CopiedSoFar(Mutex<NotedCopies>);

/// The SHA-256 of a file's pieces, computed by the thread that produces them (the
/// decoder, or the importer's feed indexer) over each piece before it hands the piece on,
/// and set once the last one was handed on (before the sink's reader sees the end).
#[derive(Default)]
pub struct ProducedDigest(Mutex<Option<FileDigest>>);

impl ProducedDigest {
    /// The digest of every piece handed on, once the producer handed on the last.
    pub fn get(&self) -> Option<FileDigest> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set by the producer once its last piece is handed on, before its end of the pipe
    /// closes (so the sink finds it when its reader ends).
    pub fn set(&self, d: FileDigest) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }
}

/// Where a byte of a rebuilt file was copied from ([`CopiedSoFar::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedAt {
    /// The baseline file's path.
    pub baseline: String,
    /// The byte's offset in that file.
    pub reference: u64,
    /// Bytes of the run from this one on (at least 1).
    pub left: u64,
}

impl CopiedSoFar {
    pub(crate) fn note(&self, r: &ReferenceRange, at: u64, runs: Vec<crate::records::CopiedRun>) {
        self.lock().note(r, at, runs);
    }

    fn take(&self) -> Vec<CopiedFrom> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotedCopies> {
        // A panic while noting leaves a list still in order: use it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run holding file offset `offset`, if one was noted.
    pub fn at(&self, offset: u64) -> Option<CopiedAt> {
        let noted = self.lock();
        let copies = &noted.copies;
        let i = copies.partition_point(|c| c.runs.first().is_some_and(|r| r.output <= offset));
        let c = copies.get(i.checked_sub(1)?)?;
        let j = c.runs.partition_point(|r| r.output <= offset);
        let r = c.runs.get(j.checked_sub(1)?)?;
        let into = offset - r.output;
        (into < r.len).then(|| CopiedAt {
            baseline: c.baseline.clone(),
            reference: r.reference + into,
            left: r.len - into,
        })
    }
}

/// The copied runs of one file as its pieces are decoded.
#[derive(Default)]
struct NotedCopies {
    copies: Vec<CopiedFrom>,
    /// Runs seen so far; past [`MAX_NOTED_RUNS`] none is kept.
    runs: usize,
}

impl NotedCopies {
    /// Note the runs of a piece at `at` in its file, copied from the range `r`.
    fn note(&mut self, r: &ReferenceRange, at: u64, runs: Vec<crate::records::CopiedRun>) {
        self.runs += runs.len();
        if self.runs > MAX_NOTED_RUNS {
            self.copies = Vec::new();
            return;
        }
        let runs = runs.into_iter().map(|c| crate::records::CopiedRun {
            output: at + c.output,
            reference: r.offset + c.reference,
            len: c.len,
        });
        match self.copies.last_mut() {
            Some(last) if last.baseline == r.path => last.runs.extend(runs),
            _ => self.copies.push(CopiedFrom {
                baseline: r.path.clone(),
                runs: runs.collect(),
            }),
        }
    }

    /// The runs noted (none once there were too many).
    fn take(&mut self) -> Vec<CopiedFrom> {
        std::mem::take(&mut self.copies)
    }
}

/// A sink writing each rebuilt file under a directory, at the file's mode.
pub struct DirSink {
    dir: std::path::PathBuf,
    /// The file whose bytes the decoder thread is writing ([`RebuiltSink::decoder_copy`]).
    decoder_copied: Option<String>,
}

impl DirSink {
    /// Write under `dir` (which must exist).
    pub fn new(dir: &Path) -> DirSink {
        DirSink {
            dir: dir.to_path_buf(),
            decoder_copied: None,
        }
    }
}

/// Create `out_dir/<path>` (and its parents) for writing; never overwrites.
pub fn create_rebuilt(out_dir: &Path, f: &DeltaFile) -> Result<BufWriter<WritebackFile>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        WritebackFile::new(open_rebuilt(out_dir, f)?),
    ))
}

/// Create `out_dir/<path>` and its parents, new, mode 0600 until its bytes are all written.
fn open_rebuilt(out_dir: &Path, f: &DeltaFile) -> Result<File> {
    let path = out_dir.join(&f.path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("create {}", path.display())))
}

/// Flush a file made by [`create_rebuilt`] and give it its mode.
pub fn finish_rebuilt(w: BufWriter<WritebackFile>, f: &DeltaFile, out_dir: &Path) -> Result<()> {
    let path = out_dir.join(&f.path);
    let file = w
        .into_inner()
        .map_err(|e| io_err(format!("write {}", path.display()))(e.into_error()))?;
    drop(file.into_inner());
    set_rebuilt_mode(f, out_dir)
}

/// Give `out_dir/<path>` the file's mode (after its bytes are all written).
pub fn set_rebuilt_mode(f: &DeltaFile, out_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = out_dir.join(&f.path);
    fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// A new `out_dir/<path>` with the file's declared size reserved, for
/// [`RebuiltSink::decoder_copy`]: the decoder writes whole pieces, which [`PresizedFile`]
/// hands to the file in slices short enough to keep the page cache off 2 MiB folios.
/// [`PresizedFile::finish`] it once the pieces are written.
pub fn create_rebuilt_presized(out_dir: &Path, f: &DeltaFile) -> Result<PresizedFile> {
    let file = open_rebuilt(out_dir, f)?;
    PresizedFile::reserve(file, f.size).map_err(io_err(format!(
        "reserve {} bytes for {}",
        f.size,
        out_dir.join(&f.path).display()
    )))
}

impl RebuiltSink for DirSink {
    fn put(&mut self, f: &DeltaFile, content: &mut dyn Read) -> Result<FileDigest> {
        let copied = self.decoder_copied.take().as_deref() == Some(f.path.as_str());
        let mut w = if copied {
            None
        } else {
            Some(create_rebuilt(&self.dir, f)?)
        };
        let mut content = HashingReader::new(content);
        // A read error is the decoder's, a write error the staging file's.
        let copied = read_through(&mut content, 1 << 20, |piece| match w.as_mut() {
            Some(w) => w.write_all(piece),
            None => Ok(()),
        });
        match copied {
            Err(PassError::Read(e)) => return Err(io_err(format!("decode {}", f.path))(e)),
            Err(PassError::Sink(e)) => return Err(io_err(format!("write {}", f.path))(e)),
            Ok(_) => {}
        }
        match w {
            Some(w) => finish_rebuilt(w, f, &self.dir)?,
            None => set_rebuilt_mode(f, &self.dir)?,
        }
        Ok(FileDigest(content.digest().0))
    }

    fn decoder_copy(&mut self, f: &DeltaFile) -> Result<Option<PresizedFile>> {
        let file = create_rebuilt_presized(&self.dir, f)?;
        self.decoder_copied = Some(f.path.clone());
        Ok(Some(file))
    }
}

/// Piece buffers kept for reuse between pieces (and files): the decoder takes one, the
/// sink gives back the one it finished reading. Two cover the pipeline (one being read
/// while the next is decoded); more would only hold memory.
const SPARE_PIECES: usize = 2;

/// A few piece buffers waiting to be reused (see [`SPARE_PIECES`]).
#[derive(Default)]
struct SparePieces(Mutex<Vec<Vec<u8>>>);

impl SparePieces {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut v| v.pop().unwrap_or_default())
            .unwrap_or_default()
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        if let Ok(mut v) = self.0.lock()
            && v.len() < SPARE_PIECES
        {
            v.push(buf);
        }
    }
}

/// Decode one piece's `blob` against `reference` into `out` where the codec can (zstd),
/// else into a fresh buffer. A record patch tells `copied` the runs it copies.
fn decode_piece(
    encoding: Encoding,
    reference: Option<&[u8]>,
    blob: &[u8],
    size: u64,
    mut out: Vec<u8>,
    copied: &mut dyn FnMut(crate::records::CopiedRun),
) -> std::result::Result<Vec<u8>, PatchError> {
    match (encoding, reference) {
        (Encoding::Zstd, _) => zstd_decode_into(None, blob, size, &mut out).map(|()| out),
        (Encoding::Bsdiff, Some(r)) => bsdiff_decode(r, blob, size),
        (Encoding::BsdiffLzma, Some(r)) => crate::bsdiffx::decode(r, blob, size),
        (Encoding::Records, Some(r)) => {
            crate::records::decode_noting_copies(r, blob, size, out, copied)
        }
        (_, r) => zstd_decode_into(r, blob, size, &mut out).map(|()| out),
    }
}

/// A file's pieces as one reader: each piece is decoded when the previous one is used up,
/// so at most one piece (and its reference window) is in memory. A decoding error is kept
/// in `error` (the reader itself returns a generic I/O error, which sinks pass on).
struct PieceReader<'a, P: Read + Seek> {
    file: &'a DeltaFile,
    pieces: std::slice::Iter<'a, crate::format::Piece>,
    payload: &'a mut P,
    refs: &'a References<'a>,
    current: Vec<u8>,
    at: usize,
    error: Option<DeltaError>,
    /// Where buffers handed away (to a piped sink) come back from.
    spare: Option<&'a SparePieces>,
    /// Bytes of the file decoded before the current piece.
    decoded: u64,
    /// Where the runs record patches copied from the baseline are noted (`None`: nowhere).
    copies: Option<&'a CopiedSoFar>,
}

impl<'a, P: Read + Seek> PieceReader<'a, P> {
    /// A reader of `file`'s `pieces`, nothing decoded yet.
    fn new(
        file: &'a DeltaFile,
        pieces: &'a [crate::format::Piece],
        payload: &'a mut P,
        refs: &'a References<'a>,
        copies: Option<&'a CopiedSoFar>,
    ) -> Self {
        PieceReader {
            file,
            pieces: pieces.iter(),
            payload,
            refs,
            current: Vec::new(),
            at: 0,
            error: None,
            spare: None,
            decoded: 0,
            copies,
        }
    }

    fn decode_next(&mut self) -> Result<bool> {
        let Some(p) = self.pieces.next() else {
            return Ok(false);
        };
        let f = self.file;
        let blob = read_payload(self.payload, p.offset, p.length)?;
        let reference = match (&p.encoding, &p.reference) {
            (Encoding::Zstd, _) => None,
            (_, Some(r)) => Some(self.refs.read(r, &f.path)?),
            (_, None) => {
                return Err(DeltaError::BadDelta(format!(
                    "{}: patch without reference",
                    f.path
                )));
            }
        };
        let mut out = std::mem::take(&mut self.current);
        if out.capacity() == 0
            && let Some(spare) = self.spare
        {
            out = spare.take();
        }
        let mut runs = Vec::new();
        let bytes = decode_piece(
            p.encoding,
            reference.as_deref(),
            &blob,
            p.size,
            out,
            &mut |c| runs.push(c),
        )
        .map_err(|e| DeltaError::BadDelta(format!("{}: {e}", f.path)))?;
        // Runs of a plain baseline range only: a decoded range's offsets are of the
        // baseline's plain form, not of its bytes.
        if let (Some(r), Some(copies)) = (
            p.reference
                .as_ref()
                .filter(|r| !r.decoded && !runs.is_empty()),
            self.copies,
        ) {
            copies.note(r, self.decoded, runs);
        }
        self.decoded += bytes.len() as u64;
        self.current = bytes;
        self.at = 0;
        Ok(true)
    }
}

impl<P: Read + Seek> Read for PieceReader<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.error.is_some() {
                return Err(io::Error::other("delta piece failed to decode"));
            }
            match self.decode_next() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.error = Some(e);
                    return Err(io::Error::other("delta piece failed to decode"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The sink side of a file whose pieces a decoder thread decodes one ahead: pieces arrive
/// in order through a rendezvous channel, so at most one decoded piece waits while the
/// sink consumes another and the decoder works on a third (with its reference window):
/// about `2 * MAX_PIECE + MAX_REFERENCE` of memory, as the memory bound allows.
struct PipedPieces<'a> {
    decoded: Receiver<Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    error: Option<DeltaError>,
    /// Buffers read to the end go back here for the decoder.
    spare: &'a SparePieces,
}

impl Read for PipedPieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.error.is_some() {
                return Err(io::Error::other("delta piece failed to decode"));
            }
            match self.decoded.recv() {
                Ok(Ok(bytes)) => {
                    self.spare.give(std::mem::replace(&mut self.current, bytes));
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.error = Some(e);
                    return Err(io::Error::other("delta piece failed to decode"));
                }
                // The decoder is done: every piece was sent.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Decode `pieces` on a decoder thread while `consume` (the sink, on this thread) hashes,
/// chunks, stores and writes the pieces already decoded. The bytes `consume` sees are the
/// same, in the same order, as a [`PieceReader`] gives: only the timing differs. With
/// `copy`, the decoder thread also writes each piece there before handing it on (a write
/// error is then the decoder's). `consume` also gets the runs copied from the baseline so
/// far: the decoder notes each piece's runs before it hands the piece on. Returns
/// `consume`'s result, or the decoder's error when there was one (it explains a failed put
/// better than the sink's).
#[allow(clippy::too_many_arguments)]
fn decode_piped<P: Read + Seek + Send, T>(
    f: &DeltaFile,
    pieces: &[crate::format::Piece],
    payload: &mut P,
    refs: &References<'_>,
    spare: &SparePieces,
    copy: Option<PresizedFile>,
    consume: &mut dyn FnMut(&mut dyn Read, &CopiedSoFar, &ProducedDigest) -> Result<T>,
) -> Result<(T, Vec<CopiedFrom>)> {
    let copied = CopiedSoFar::default();
    let digest = ProducedDigest::default();
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Result<Vec<u8>>>(0);
        let (noted, hashed) = (&copied, &digest);
        let decoder = s.spawn(move || {
            use sha2::Digest;
            let mut sha = sha2::Sha256::new();
            let mut copy = copy;
            let mut reader = PieceReader::new(f, pieces, payload, refs, Some(noted));
            reader.spare = Some(spare);
            loop {
                let next = match reader.decode_next() {
                    Ok(true) => match copy.as_mut().map(|c| c.write_all(&reader.current)) {
                        Some(Err(e)) => Err(io_err(format!("write {}", f.path))(e)),
                        _ => {
                            sha.update(&reader.current);
                            Ok(std::mem::take(&mut reader.current))
                        }
                    },
                    Ok(false) => {
                        // Every piece is written: cut the copy at what was (a short file
                        // fails the caller's checks) before the sink sees the end.
                        if let Some(Err(e)) = copy.take().map(PresizedFile::finish) {
                            let _ = tx.send(Err(io_err(format!("write {}", f.path))(e)));
                        }
                        // Set before the channel closes: the sink asks at the end.
                        hashed.set(FileDigest(sha.finalize().into()));
                        return true;
                    }
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                // A closed channel: the sink stopped (its own error); stop decoding.
                if tx.send(next).is_err() || failed {
                    return false;
                }
            }
        });
        let mut piped = PipedPieces {
            decoded: rx,
            current: Vec::new(),
            at: 0,
            error: None,
            spare,
        };
        let put = consume(&mut piped, &copied, &digest);
        let decode_error = piped.error.take();
        spare.give(std::mem::take(&mut piped.current));
        // Closing the channel releases a decoder blocked on a piece nobody will read.
        drop(piped);
        // The decoder returns once the channel is closed. A panic there is a bug: it is
        // raised here, as the scope would have raised it (a decoder that died must never
        // look like the end of the file).
        let copies = match decoder.join() {
            Ok(true) => copied.take(),
            Ok(false) => Vec::new(),
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match decode_error {
            Some(e) => Err(e),
            None => put.map(|t| (t, copies)),
        }
    })
}

/// The host's own store failing (a damaged or missing chunk) is the host's fault, not the
/// delta's: such errors pass through as [`DeltaError::Store`] so the operator is told to
/// repair the store (exit 2) rather than to distrust a good delta.
fn reference_error(e: io::Error, context: &str, path: &str) -> DeltaError {
    let message = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<ouk_store::StoreError>())
    {
        Some(Ok(store)) => DeltaError::Store(*store),
        _ => DeltaError::BadDelta(format!(
            "{context}: reference {path} unavailable: {message}"
        )),
    }
}

/// Where reference ranges are read: baseline files resolved by path, and their plain forms
/// (decoded once each into the scratch directory) for `decoded` ranges.
struct References<'a> {
    by_path: HashMap<&'a str, &'a TreeFile>,
    baseline: &'a dyn ContentReader,
    plain: Option<PlainForms<'a>>,
}

impl References<'_> {
    /// Read a reference range of the baseline, resolved by path (lent from a mapping of
    /// the baseline file where the reader has one).
    fn read(&self, r: &ReferenceRange, context: &str) -> Result<RangeBytes> {
        let file = self.by_path.get(r.path.as_str()).ok_or_else(|| {
            DeltaError::BadDelta(format!(
                "{context}: reference {} is not in the baseline",
                r.path
            ))
        })?;
        let bytes = match (&self.plain, r.decoded) {
            (_, false) => self.baseline.map_range(&file.sha256, r.offset, r.length),
            (Some(p), true) => p
                .read_range(&file.sha256, r.offset, r.length)
                .map(RangeBytes::Owned),
            (None, true) => {
                return Err(DeltaError::BadDelta(format!(
                    "{context}: decoded reference without a scratch directory"
                )));
            }
        }
        .map_err(|e| reference_error(e, context, &r.path))?;
        if bytes.len() as u64 != r.length {
            return Err(DeltaError::BadDelta(format!(
                "{context}: reference {} is shorter than the delta expects",
                r.path
            )));
        }
        Ok(bytes)
    }
}

/// A `recompressed` file waiting to be re-created: its plain form already decoded (from the
/// pieces, on the applying thread) into an unnamed scratch file, and the recipe. Owned data
/// only, so a worker thread can run the re-compression, which is the expensive step.
struct RebuildJob {
    path: String,
    size: u64,
    plain: File,
    plain_size: u64,
    recipe: Vec<u8>,
    /// The baseline zip whose members the rebuild copies (`reuse_members_of`, resolved).
    reuse: Option<FileDigest>,
}

/// Decode `f`'s plain form from its pieces into an unnamed file in `scratch`, rewound.
fn spool_plain<P: Read + Seek>(
    f: &DeltaFile,
    plain_size: u64,
    mut plain: PieceReader<'_, P>,
    scratch: &Path,
) -> Result<File> {
    let file = tempfile::tempfile_in(scratch).map_err(io_err(format!(
        "create a scratch file in {}",
        scratch.display()
    )))?;
    let mut out = Bounded {
        inner: BufWriter::with_capacity(1 << 20, file),
        left: plain_size,
    };
    let copied = io::copy(&mut plain, &mut out);
    if let Some(e) = plain.error.take() {
        return Err(e);
    }
    match copied {
        Ok(n) if n == plain_size => {}
        Ok(n) => {
            return Err(DeltaError::BadDelta(format!(
                "{}: the pieces decode to {n} plain bytes, the delta declares {plain_size}",
                f.path
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(DeltaError::BadDelta(format!("{}: {e}", f.path)));
        }
        Err(e) => return Err(io_err(format!("spool the plain form of {}", f.path))(e)),
    }
    let mut file = out
        .inner
        .into_inner()
        .map_err(|e| io_err(format!("write {}", f.path))(e.into_error()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_err(format!("rewind {}", f.path)))?;
    Ok(file)
}

/// Re-create a `recompressed` file from its spooled plain form by its recipe into an
/// unnamed file in `scratch`, returned rewound. The sink then hashes it like any rebuilt
/// file.
fn rebuild_file(
    job: RebuildJob,
    scratch: &Path,
    baseline: &dyn ContentReader,
) -> Result<io::Take<File>> {
    let file = tempfile::tempfile_in(scratch).map_err(io_err(format!(
        "create a scratch file in {}",
        scratch.display()
    )))?;
    let mut out = Bounded {
        inner: BufWriter::with_capacity(1 << 20, file),
        left: job.size,
    };
    let limits = Limits {
        max_plain: job.plain_size,
        ..Limits::default()
    };
    let mut plain = io::BufReader::with_capacity(1 << 20, job.plain);
    // The members index is an optimisation only: a baseline zip that cannot be read or
    // indexed leaves every member to the recipe, which re-creates the same bytes.
    let mut members = job
        .reuse
        .and_then(|d| crate::members::BaselineMembers::index(baseline, &d).ok());
    let source = members
        .as_mut()
        .map(|m| m as &mut dyn ouk_recompress::MemberSource);
    let n =
        match ouk_recompress::rebuild_reusing(&job.recipe, &mut plain, &mut out, &limits, source) {
            Ok(stats) => {
                crate::members::count(&stats);
                stats.written
            }
            Err(RecompressError::Unsupported(why)) => {
                return Err(DeltaError::CannotRebuild {
                    path: job.path,
                    why,
                });
            }
            Err(RecompressError::Io(e)) if e.kind() != io::ErrorKind::InvalidData => {
                return Err(io_err(format!("re-create {}", job.path))(e));
            }
            Err(e) => return Err(DeltaError::BadDelta(format!("{}: {e}", job.path))),
        };
    if n != job.size {
        return Err(DeltaError::BadDelta(format!(
            "{}: re-created {n} bytes, the delta declares {}",
            job.path, job.size
        )));
    }
    let mut file = out
        .inner
        .into_inner()
        .map_err(|e| io_err(format!("write {}", job.path))(e.into_error()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_err(format!("rewind {}", job.path)))?;
    Ok(file.take(job.size))
}

/// Re-compression, the expensive step of the decoded tier (deflate at the producer's
/// level), runs on worker threads while the applying thread decodes pieces and feeds the
/// sink: up to [`REBUILD_WORKERS`] files at once, at most one more spooled and waiting,
/// so scratch space and memory stay bounded (a few recompressors' state; the spooled plain
/// forms are on disk). Results reach the sink in file order, so the sink sees the same
/// sequence whatever the thread timing.
struct RebuildPool {
    jobs: Option<SyncSender<(RebuildJob, SyncSender<RebuildResult>)>>,
    pending: VecDeque<(usize, Receiver<RebuildResult>)>,
    workers: usize,
}

/// Most re-compressions run at once (each holds one compressor's state: up to ~100 MiB
/// for a high zstd level, a few hundred KiB for deflate).
const REBUILD_WORKERS: usize = 2;

type RebuildResult = Result<io::Take<File>>;

impl RebuildPool {
    fn start<'scope, 'env>(
        s: &'scope Scope<'scope, 'env>,
        scratch: &'scope Path,
        baseline: &'scope dyn ContentReader,
    ) -> Self {
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, REBUILD_WORKERS);
        let (tx, rx) = sync_channel::<(RebuildJob, SyncSender<RebuildResult>)>(0);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            s.spawn(move || {
                loop {
                    // A poisoned lock means another worker panicked; stop taking jobs (the
                    // applying thread sees the closed result channel as an error).
                    let next = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((job, done)) = next else { return };
                    // The applying thread may have stopped waiting (an earlier error).
                    let _ = done.send(rebuild_file(job, scratch, baseline));
                }
            });
        }
        RebuildPool {
            jobs: Some(tx),
            pending: VecDeque::new(),
            workers,
        }
    }

    /// Queue `job` (the file at `index` of the header); when enough are in flight, first
    /// hand the oldest finished one to `finish`.
    fn submit(
        &mut self,
        index: usize,
        job: RebuildJob,
        finish: &mut dyn FnMut(usize, io::Take<File>) -> Result<()>,
    ) -> Result<()> {
        while self.pending.len() > self.workers {
            self.finish_oldest(finish)?;
        }
        let (done_tx, done_rx) = sync_channel(1);
        let sent = self.jobs.as_ref().map(|jobs| jobs.send((job, done_tx)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(DeltaError::BadDelta(
                "the re-compression workers stopped".into(),
            ));
        }
        self.pending.push_back((index, done_rx));
        Ok(())
    }

    fn finish_oldest(
        &mut self,
        finish: &mut dyn FnMut(usize, io::Take<File>) -> Result<()>,
    ) -> Result<()> {
        let Some((index, done)) = self.pending.pop_front() else {
            return Ok(());
        };
        let rebuilt = done.recv().map_err(|_| {
            DeltaError::BadDelta("a re-compression worker stopped before it finished".into())
        })??;
        finish(index, rebuilt)
    }

    /// Hand every queued file to `finish`, in order, and stop the workers.
    fn drain(&mut self, finish: &mut dyn FnMut(usize, io::Take<File>) -> Result<()>) -> Result<()> {
        while !self.pending.is_empty() {
            self.finish_oldest(finish)?;
        }
        self.jobs = None;
        Ok(())
    }

    /// After the applying thread failed: the first error of a file queued before the
    /// failure (that file comes first in the header, so its error is the one to report, as
    /// a one-file-at-a-time apply would), else `err`.
    fn first_error(&mut self, err: DeltaError) -> DeltaError {
        self.jobs = None;
        while let Some((_, done)) = self.pending.pop_front() {
            if let Ok(Err(e)) = done.recv() {
                return e;
            }
        }
        err
    }
}

/// A writer that refuses to grow past `left` bytes (a recipe cannot make a rebuilt file
/// larger than the header declares).
struct Bounded<W> {
    inner: W,
    left: u64,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the rebuilt file is larger than the delta declares",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decode every non-baseline file of `header` into `sink`. The header must have passed
/// [`DeltaHeader::validate`]; references resolve through `baseline_files` (the baseline
/// generation's files) to content in `baseline`. `scratch` is a private directory for
/// plain forms of compressed baseline files and for re-created compressed files (used
/// only by deltas with a decoded tier). Returns each path rebuilt with the SHA-256 the sink
/// computed, in the order rebuilt.
pub fn apply_delta(
    header: &DeltaHeader,
    payload: &mut (impl Read + Seek + Send),
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    scratch: &Path,
    sink: &mut dyn RebuiltSink,
) -> Result<Vec<(String, FileDigest)>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    apply_delta_threads(
        header,
        payload,
        baseline_files,
        baseline,
        scratch,
        sink,
        threads,
    )
}

/// [`apply_delta`] on `threads` threads: with more than one, each file's pieces are decoded
/// on a decoder thread one piece ahead of the sink (which hashes, chunks and stores them
/// meanwhile). The sink sees the same bytes in the same order whatever `threads` is, so
/// the result does not depend on it.
pub fn apply_delta_threads(
    header: &DeltaHeader,
    payload: &mut (impl Read + Seek + Send),
    baseline_files: &[TreeFile],
    baseline: &dyn ContentReader,
    scratch: &Path,
    sink: &mut dyn RebuiltSink,
    threads: usize,
) -> Result<Vec<(String, FileDigest)>> {
    let refs = References {
        by_path: baseline_files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect(),
        baseline,
        plain: header.uses_decoded_tier().then(|| {
            PlainForms::new(baseline, scratch, Limits::default()).with_version(header.plain_forms)
        }),
    };
    let mut written = Vec::new();
    let spare = SparePieces::default();
    std::thread::scope(|s| -> Result<()> {
        let mut pool = RebuildPool::start(s, scratch, baseline);
        let mut put = |index: usize,
                       content: &mut dyn Read,
                       copied: &CopiedSoFar,
                       produced: Option<&ProducedDigest>,
                       sink: &mut dyn RebuiltSink|
         -> Result<()> {
            let f = &header.files[index];
            let digest = sink.put_copying(f, content, copied, produced)?;
            written.push((f.path.clone(), digest));
            Ok(())
        };
        for (index, f) in header.files.iter().enumerate() {
            match &f.source {
                Source::Pieces { pieces } if threads > 1 => {
                    let outcome = sink.decoder_copy(f).and_then(|copy| {
                        decode_piped(
                            f,
                            pieces,
                            &mut *payload,
                            &refs,
                            &spare,
                            copy,
                            &mut |r, copied, produced| {
                                put(index, r, copied, Some(produced), &mut *sink)
                            },
                        )
                    });
                    match outcome {
                        Ok(((), copies)) => sink.copied(f, copies),
                        Err(e) => return Err(pool.first_error(e)),
                    }
                }
                Source::Pieces { pieces } => {
                    let copied = CopiedSoFar::default();
                    let mut reader =
                        PieceReader::new(f, pieces, &mut *payload, &refs, Some(&copied));
                    let put = put(index, &mut reader, &copied, None, &mut *sink);
                    // The decoder's own error explains a failed put better than the sink's.
                    let outcome = match reader.error.take() {
                        Some(e) => Err(e),
                        None => put,
                    };
                    if let Err(e) = outcome {
                        return Err(pool.first_error(e));
                    }
                    drop(reader);
                    sink.copied(f, copied.take());
                }
                Source::Recompressed {
                    plain_size,
                    pieces,
                    recipe,
                    reuse_members_of,
                    ..
                } => {
                    let reuse = match reuse_members_of {
                        None => Ok(None),
                        Some(p) => refs
                            .by_path
                            .get(p.as_str())
                            .map(|b| Some(b.sha256))
                            .ok_or_else(|| {
                                DeltaError::BadDelta(format!(
                                    "{}: reuse_members_of {p:?} is not a baseline file",
                                    f.path
                                ))
                            }),
                    };
                    let job = reuse
                        .and_then(|reuse| {
                            read_payload(payload, recipe.offset, recipe.length).map(|b| (b, reuse))
                        })
                        .and_then(|(blob, reuse)| {
                            zstd_decode(None, &blob, recipe.size)
                                .map(|r| (r, reuse))
                                .map_err(|e| {
                                    DeltaError::BadDelta(format!("{}: recipe: {e}", f.path))
                                })
                        })
                        .and_then(|(recipe, reuse)| {
                            // A plain form's runs are of plain forms: not noted.
                            let reader = PieceReader::new(f, pieces, &mut *payload, &refs, None);
                            let plain = spool_plain(f, *plain_size, reader, scratch)?;
                            Ok(RebuildJob {
                                path: f.path.clone(),
                                size: f.size,
                                plain,
                                plain_size: *plain_size,
                                recipe,
                                reuse,
                            })
                        });
                    match job {
                        // An error from `submit` is the oldest queued file's: report it.
                        Ok(job) => pool.submit(index, job, &mut |i, mut r| {
                            put(i, &mut r, &CopiedSoFar::default(), None, &mut *sink)
                        })?,
                        Err(e) => return Err(pool.first_error(e)),
                    }
                }
                _ => {}
            }
        }
        pool.drain(&mut |i, mut r| put(i, &mut r, &CopiedSoFar::default(), None, &mut *sink))
    })?;
    for block in [Block::Solid, Block::Trailer] {
        let Some(solid) = header.block(block) else {
            continue;
        };
        let context = block.name();
        let known: HashMap<&str, FileDigest> =
            written.iter().map(|(p, d)| (p.as_str(), *d)).collect();
        let dictionary =
            header.dictionary(block, &|f: &DeltaFile| known.get(f.path.as_str()).copied())?;
        let prefix = envelope::block_prefix(
            header,
            block,
            baseline_files,
            &mut |r, prefix| {
                prefix.extend_from_slice(&refs.read(r, context)?);
                Ok(())
            },
            &dictionary,
        )?;
        let blob = read_payload(payload, solid.offset, solid.length)?;
        let decoded = zstd_decode(Some(&prefix), &blob, solid.size)
            .map_err(|e| DeltaError::BadDelta(format!("{context}: {e}")))?;
        drop(prefix);
        for (f, offset) in header.block_members(block) {
            let start = offset as usize;
            let end = offset
                .checked_add(f.block_size())
                .filter(|e| *e <= solid.size)
                .ok_or_else(|| DeltaError::BadDelta(format!("{}: outside the {context}", f.path)))?
                as usize;
            let digest = sink.put(f, &mut &*envelope::member_bytes(f, &decoded[start..end])?)?;
            written.push((f.path.clone(), digest));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::CopiedRun;

    fn range(path: &str, offset: u64) -> ReferenceRange {
        ReferenceRange {
            path: path.into(),
            offset,
            length: 1 << 20,
            decoded: false,
        }
    }

    fn run(output: u64, reference: u64) -> CopiedRun {
        CopiedRun {
            output,
            reference,
            len: 10,
        }
    }

    #[test]
    fn noted_runs_are_in_file_offsets_and_too_many_are_none() {
        let mut noted = NotedCopies::default();
        noted.note(&range("a", 100), 0, vec![run(0, 5)]);
        noted.note(&range("a", 200), 50, vec![run(1, 6)]);
        noted.note(&range("b", 0), 90, vec![run(2, 7)]);
        let want = vec![
            CopiedFrom {
                baseline: "a".into(),
                runs: vec![
                    CopiedRun {
                        output: 0,
                        reference: 105,
                        len: 10,
                    },
                    CopiedRun {
                        output: 51,
                        reference: 206,
                        len: 10,
                    },
                ],
            },
            CopiedFrom {
                baseline: "b".into(),
                runs: vec![CopiedRun {
                    output: 92,
                    reference: 7,
                    len: 10,
                }],
            },
        ];
        assert_eq!(noted.take(), want);
        let mut many = NotedCopies::default();
        many.note(&range("a", 0), 0, vec![run(0, 0); MAX_NOTED_RUNS]);
        many.note(&range("a", 0), 0, vec![run(0, 0)]);
        many.note(&range("a", 0), 0, vec![run(0, 0)]);
        assert!(many.take().is_empty());
    }

    #[test]
    fn the_run_holding_an_offset_is_found_across_baseline_files() {
        let noted = CopiedSoFar::default();
        assert_eq!(noted.at(0), None, "nothing noted yet");
        noted.note(&range("a", 100), 0, vec![run(0, 5), run(20, 40)]);
        noted.note(&range("b", 0), 90, vec![run(2, 7)]);
        let at = |o| noted.at(o).map(|c| (c.baseline, c.reference, c.left));
        assert_eq!(at(0), Some(("a".into(), 105, 10)));
        assert_eq!(at(9), Some(("a".into(), 114, 1)));
        assert_eq!(at(10), None, "between runs");
        assert_eq!(at(25), Some(("a".into(), 145, 5)));
        assert_eq!(at(91), None, "before b's run");
        assert_eq!(at(92), Some(("b".into(), 7, 10)));
        assert_eq!(at(101), Some(("b".into(), 16, 1)));
        assert_eq!(at(102), None, "past the last run");
    }
}
