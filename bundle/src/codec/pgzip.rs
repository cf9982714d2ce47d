//! Parallel, deterministic gzip writer.
//!
//! Job: compress a byte stream into ONE gzip member using several threads, with output
//! bytes that depend only on the input, the level and the block size: never on the thread
//! count, the machine or timing.
//!
//! How (the pigz scheme): the input is cut into fixed-size blocks (default 1 MiB). Each block
//! is deflated independently on a worker thread as raw deflate, with the 32 KiB of input
//! before it as preset dictionary (so matches may reach back across the cut and the ratio
//! barely drops), and ends with a sync flush (an empty stored block: the output is
//! byte-aligned and not final) except the last block, which ends the deflate stream. The
//! compressed blocks are written out in input order after a fixed 10-byte gzip header (no
//! name, mtime 0, XFL 0, OS 255 "unknown"), followed by the CRC-32 (workers compute each
//! block's CRC, the writer combines them in order) and ISIZE of the whole input.
//!
//! Pinning: "same input, same bytes" holds only for one compressor build. Another deflate
//! implementation, or another version of the same one, may choose other matches and emit
//! other (equally valid) bytes. The workspace therefore pins `flate2` and its `zlib-rs`
//! backend with `=` versions, and `golden_output_is_stable` fails when the bytes move. Do
//! not enable a C zlib feature of `flate2` anywhere in the workspace: it would take
//! precedence over `zlib-rs` and change the output.
//!
//! Memory bound: at most `2 * threads + 2` blocks are in flight (queued, compressing, or
//! compressed and waiting for their turn); each holds its input block, its output (at most
//! the input plus 0.1 %) and a 32 KiB dictionary; add the block being filled, two spare
//! buffers and one compressor state (about 300 KiB) per worker. With 1 MiB blocks and 2
//! threads that is at most about 16 MiB, independent of the stream length (measured: 27 MiB
//! peak RSS for a whole 256 MiB write + unpack benchmark process).
//!
//! As the bytes go out they are hashed (SHA-256) and counted, so the bundle's digest and
//! size are known when [`ParGzWriter::finish`] returns, without reading the output again.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};
use ouk_store::fsutil::HashingWriter;

/// Size of the deflate window, and of the dictionary each block gets.
pub const WINDOW: usize = 32 * 1024;

/// The fixed gzip header: magic, CM=8 (deflate), FLG=0 (no name, comment, extra or header
/// CRC), MTIME=0, XFL=0, OS=255.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Options of the parallel compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzOptions {
    /// Deflate level, 0..=9. Part of the output format.
    pub level: u32,
    /// Input block size in bytes, at least [`WINDOW`]. Part of the output format.
    pub block_size: usize,
    /// Worker threads, at least 1. Does NOT change the output.
    pub threads: usize,
}

impl Default for GzOptions {
    fn default() -> Self {
        GzOptions {
            level: 6,
            block_size: 1 << 20,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What the compressor reports at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzSummary {
    /// SHA-256 of the gzip bytes written.
    pub sha256: [u8; 32],
    /// Number of gzip bytes written.
    pub size: u64,
    /// Number of uncompressed bytes consumed.
    pub uncompressed_size: u64,
}

struct Job {
    index: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    index: u64,
    output: Result<Vec<u8>, String>,
    crc: crc32fast::Hasher,
    /// The input buffer, handed back for reuse.
    data: Vec<u8>,
}

/// A `Write` that deflates in parallel; see the module doc.
pub struct ParGzWriter<W: Write> {
    /// The output, hashing and counting the gzip bytes as they go out.
    out: HashingWriter<W>,
    level: u32,
    block_size: usize,
    buf: Vec<u8>,
    dict: Vec<u8>,
    spare: Vec<Vec<u8>>,
    next_index: u64,
    next_to_write: u64,
    pending: BTreeMap<u64, Done>,
    in_flight: usize,
    max_in_flight: usize,
    pool: Pool,
    crc: crc32fast::Hasher,
    consumed: u64,
}

/// The worker threads; dropping the pool closes the job queue and joins them.
struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            // A panicked worker has already been reported as a closed channel.
            let _ = handle.join();
        }
    }
}

impl<W: Write> ParGzWriter<W> {
    /// Starts a gzip member on `out` (the header is written at once).
    pub fn new(out: W, opts: GzOptions) -> io::Result<Self> {
        Self::with_header(out, opts, &GZIP_HEADER)
    }

    /// Starts a gzip member on `out` with `header` as its header bytes instead of the fixed
    /// one (the mirror re-creating a bundle whose header it recorded). The caller vouches
    /// that `header` is a complete RFC 1952 member header.
    pub fn with_header(out: W, opts: GzOptions, header: &[u8]) -> io::Result<Self> {
        if opts.level > 9 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "deflate level must be 0..=9",
            ));
        }
        if opts.block_size < WINDOW || opts.threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "block size must be >= 32 KiB and threads >= 1",
            ));
        }
        let mut out = HashingWriter::new(out);
        out.write_all(header)?;
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::with_capacity(opts.threads);
        for i in 0..opts.threads {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let level = opts.level;
            let handle = std::thread::Builder::new()
                .name(format!("ouk-gzip-{i}"))
                .spawn(move || worker(level, &job_rx, &done_tx))?;
            workers.push(handle);
        }
        Ok(ParGzWriter {
            out,
            level: opts.level,
            block_size: opts.block_size,
            buf: Vec::with_capacity(opts.block_size),
            dict: Vec::new(),
            spare: Vec::new(),
            next_index: 0,
            next_to_write: 0,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 2 * opts.threads + 2,
            pool: Pool {
                jobs: Some(job_tx),
                results: done_rx,
                workers,
            },
            crc: crc32fast::Hasher::new(),
            consumed: 0,
        })
    }

    /// The deflate level in use.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Uncompressed bytes accepted so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Sends the current block to the workers.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.block_size));
        let data = std::mem::replace(&mut self.buf, fresh);
        // The next block's dictionary is the last 32 KiB of input before it. Blocks are at
        // least WINDOW long, so it is always the tail of this block (the first block has
        // no dictionary).
        let tail = data.len().saturating_sub(WINDOW);
        let next_dict = data[tail..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let job = Job {
            index: self.next_index,
            dict,
            data,
            last,
        };
        self.next_index += 1;
        self.in_flight += 1;
        let sent = self.pool.jobs.as_ref().map(|tx| tx.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(io::Error::other("gzip worker threads stopped")),
        }
    }

    /// Waits for one finished block, then writes every block whose turn has come.
    fn collect_one(&mut self) -> io::Result<()> {
        let done = self
            .pool
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.pending.insert(done.index, done);
        while let Some(done) = self.pending.remove(&self.next_to_write) {
            let output = done.output.map_err(io::Error::other)?;
            self.out.write_all(&output)?;
            self.crc.combine(&done.crc);
            self.next_to_write += 1;
            self.in_flight -= 1;
            let mut data = done.data;
            data.clear();
            if self.spare.len() < 2 {
                self.spare.push(data);
            }
        }
        Ok(())
    }

    /// Ends the deflate stream, writes the trailer and returns the output and a summary.
    pub fn finish(mut self) -> io::Result<(W, GzSummary)> {
        self.dispatch(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        let mut trailer = [0u8; 8];
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        trailer[4..].copy_from_slice(&(self.consumed as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        let (sha256, size, out) = self.out.finish();
        let summary = GzSummary {
            sha256,
            size,
            uncompressed_size: self.consumed,
        };
        Ok((out, summary))
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = self.block_size - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.consumed += n as u64;
            if self.buf.len() == self.block_size {
                self.dispatch(false)?;
            }
        }
        Ok(total)
    }

    /// Flushes the underlying writer only: flushing the compressor mid-block would make the
    /// output depend on when the caller flushed.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn worker(level: u32, jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Done>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let output = deflate_block(level, &job.dict, &job.data, job.last);
        let result = Done {
            index: job.index,
            output,
            crc,
            data: job.data,
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Deflates one block as raw deflate with `dict` as preset dictionary; ends with a sync
/// flush, or with the final block when `last`.
///
/// Every block gets a FRESH compressor: `Compress::reset` in zlib-rs clears the hash heads
/// but keeps the old window bytes, and deflate may compare bytes past the end of the input
/// (it clamps the match length, not the match position), so a reused compressor makes the
/// output depend on which block that worker compressed before, i.e. on scheduling. A new
/// compressor starts from a zeroed window (about 256 KiB to allocate and clear per 1 MiB
/// block, a fraction of a percent of the deflate time).
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> Result<Vec<u8>, String> {
    let mut compress = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        compress
            .set_dictionary(dict)
            .map_err(|e| format!("deflate set_dictionary: {e}"))?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Room for the worst case (stored blocks: the input plus 5 bytes per 64 KiB); pages
    // never written are never touched, so compressible input costs only what it produces.
    let mut out = Vec::with_capacity(data.len() + data.len() / 1024 + 1024);
    let start = compress.total_in();
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(compress.total_in() - start).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or(&[]);
        let status = compress
            .compress_vec(input, &mut out, flush)
            .map_err(|e| format!("deflate: {e}"))?;
        let consumed = usize::try_from(compress.total_in() - start).unwrap_or(usize::MAX);
        let all_in = consumed >= data.len();
        match status {
            Status::StreamEnd => break,
            Status::BufError if all_in && !last => break,
            _ => {}
        }
        // A sync flush is complete once all input is taken and output space was left.
        if !last && all_in && out.len() < out.capacity() {
            break;
        }
    }
    Ok(out)
}
