//! A look-ahead buffer over the untrusted input stream.
//!
//! The container walkers need to peek at headers before deciding what they are, and
//! preflate needs whole deflate blocks in one slice, so input is read into a buffer that
//! grows on demand. Invariants: the buffer never holds more than [`MAX_BUFFER`] bytes (a
//! caller asking for more gets an error, not an allocation), and [`Input::consumed`] is the
//! exact count of bytes handed out, which the bomb checks compare plain output against.

use std::io::Read;

use crate::{RecompressError, Result};

/// Largest look-ahead ever buffered. A deflate block (preflate parses whole blocks) larger
/// than this is refused as not exact rather than buffered.
pub(crate) const MAX_BUFFER: usize = 64 << 20;

/// How much is read at a time when the caller does not ask for more.
const READ_STEP: usize = 256 << 10;

pub(crate) struct Input<'a> {
    reader: &'a mut dyn Read,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    consumed: u64,
    /// A zip's local-header chain, fed every byte consumed (see [`crate::zip::Chain`]).
    chain: Option<crate::zip::Chain>,
}

impl<'a> Input<'a> {
    pub(crate) fn new(reader: &'a mut dyn Read) -> Self {
        Input {
            reader,
            buf: Vec::new(),
            start: 0,
            eof: false,
            consumed: 0,
            chain: None,
        }
    }

    /// Follow a zip's local-header chain through every byte consumed from now on.
    pub(crate) fn track_zip(&mut self) {
        self.chain = Some(crate::zip::Chain::new());
    }

    /// Stop following the chain; the local headers it found (none when not tracking).
    pub(crate) fn take_chain(&mut self) -> Vec<crate::zip::LocalRef> {
        self.chain.take().map(|c| c.into_refs()).unwrap_or_default()
    }

    /// Bytes handed out so far (the compressed size seen, for the ratio bound).
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The buffered bytes not yet consumed.
    pub(crate) fn peek(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether the reader is exhausted (what [`Input::peek`] shows is all there is).
    pub(crate) fn at_eof(&self) -> bool {
        self.eof
    }

    /// Buffer at least `want` bytes, or all that is left when the input is shorter.
    /// Returns how many are buffered.
    pub(crate) fn fill(&mut self, want: usize) -> Result<usize> {
        if want > MAX_BUFFER {
            return Err(RecompressError::NotExact(format!(
                "needs a look-ahead of {want} bytes, past the {MAX_BUFFER}-byte bound"
            )));
        }
        if self.buf.len() - self.start >= want || self.eof {
            return Ok(self.buf.len() - self.start);
        }
        // Move the unconsumed tail to the front so the buffer does not grow without bound.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let target = want.max(READ_STEP);
        while self.buf.len() < want {
            let old = self.buf.len();
            self.buf.resize(target.max(old), 0);
            let n = loop {
                match self.reader.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e.into());
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
                break;
            }
        }
        Ok(self.buf.len())
    }

    /// Mark `n` buffered bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.start);
        if let Some(c) = self.chain.as_mut() {
            c.feed(&self.buf[self.start..self.start + n]);
        }
        self.start += n;
        self.consumed += n as u64;
    }

    /// Read exactly `n` bytes (n <= MAX_BUFFER) and return them, or fail with a truncation
    /// error naming `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>> {
        if self.fill(n)? < n {
            return Err(RecompressError::Malformed {
                what,
                message: format!("truncated: {n} bytes wanted at offset {}", self.consumed),
            });
        }
        let out = self.peek()[..n].to_vec();
        self.consume(n);
        Ok(out)
    }
}
