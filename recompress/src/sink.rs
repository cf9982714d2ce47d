//! Where plain bytes go, with the bomb bounds enforced on the way.
//!
//! [`Sink`] is the analyze/decode side: every plain byte is written through it, and it
//! refuses (with [`RecompressError::TooLarge`]) as soon as the plain form passes
//! [`Limits::max_plain`] or `max_ratio` times the compressed bytes consumed (with a floor,
//! so a small file is never a bomb). When a recipe is being built it also records verbatim
//! runs. [`OutMeter`] is the rebuild side: it refuses to write past the output size the
//! recipe announced (itself bounded by the limits), so a hostile recipe cannot make
//! `rebuild` write more than that.

use std::io::{Read, Write};

use crate::input::Input;
use crate::recipe::Builder;
use crate::{Limits, RecompressError, Result};

/// Compressed sizes below this count as this much for the ratio bound: a 100-byte gzip of
/// 20 KiB of zeros is no bomb.
pub(crate) const RATIO_FLOOR: u64 = 4096;

const COPY_BUF: usize = 64 << 10;

pub(crate) struct Sink<'a> {
    plain: std::io::BufWriter<&'a mut dyn Write>,
    written: u64,
    limits: &'a Limits,
    recipe: Option<Builder>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(plain: &'a mut dyn Write, limits: &'a Limits, with_recipe: bool) -> Self {
        Sink {
            plain: std::io::BufWriter::with_capacity(COPY_BUF, plain),
            written: 0,
            limits,
            recipe: with_recipe.then(Builder::default),
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The recipe under construction (`None` when only decoding).
    pub(crate) fn recipe(&mut self) -> Option<&mut Builder> {
        self.recipe.as_mut()
    }

    pub(crate) fn into_recipe(self) -> Option<Builder> {
        self.recipe
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        self.plain.flush()?;
        Ok(())
    }

    /// Refuse a plain form of `plain` bytes from `consumed` compressed bytes when it passes
    /// a bound.
    pub(crate) fn check(&self, plain: u64, consumed: u64) -> Result<()> {
        check_bounds(self.limits, plain, consumed)
    }

    /// Write decoded bytes; `consumed` is the compressed input used to produce them.
    pub(crate) fn decoded(&mut self, bytes: &[u8], consumed: u64) -> Result<()> {
        let total = self.written + bytes.len() as u64;
        self.check(total, consumed)?;
        self.plain.write_all(bytes)?;
        self.written = total;
        Ok(())
    }

    /// Move `n` bytes of input to the plain form verbatim.
    pub(crate) fn copy(&mut self, input: &mut Input<'_>, n: u64, what: &'static str) -> Result<()> {
        self.copy_as(input, n, what, true)
    }

    /// Move `n` bytes of input to the plain form verbatim without recording them in the
    /// recipe: the caller records them (a zip member's local header, see
    /// [`crate::recipe::Builder::zip_member`]).
    pub(crate) fn copy_unrecorded(
        &mut self,
        input: &mut Input<'_>,
        n: u64,
        what: &'static str,
    ) -> Result<()> {
        self.copy_as(input, n, what, false)
    }

    fn copy_as(
        &mut self,
        input: &mut Input<'_>,
        n: u64,
        what: &'static str,
        record: bool,
    ) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let want = left.min(COPY_BUF as u64) as usize;
            let have = input.fill(want)?.min(want);
            if have == 0 {
                return Err(RecompressError::Malformed {
                    what,
                    message: format!("truncated: {left} more bytes expected"),
                });
            }
            self.plain.write_all(&input.peek()[..have])?;
            input.consume(have);
            left -= have as u64;
        }
        self.written += n;
        if record && let Some(r) = self.recipe.as_mut() {
            r.copy(n);
        }
        self.check(self.written, input.consumed())
    }

    /// Move everything left in the input to the plain form verbatim.
    pub(crate) fn copy_rest(&mut self, input: &mut Input<'_>) -> Result<()> {
        loop {
            let have = input.fill(COPY_BUF)?;
            if have == 0 {
                return Ok(());
            }
            self.copy(input, have as u64, "input")?;
        }
    }
}

pub(crate) fn check_bounds(limits: &Limits, plain: u64, consumed: u64) -> Result<()> {
    if plain > limits.max_plain {
        return Err(RecompressError::TooLarge(format!(
            "plain form passes the {}-byte limit",
            limits.max_plain
        )));
    }
    let allowed = limits.max_ratio.saturating_mul(consumed.max(RATIO_FLOOR));
    if plain > allowed {
        return Err(RecompressError::TooLarge(format!(
            "{plain} plain bytes from {consumed} compressed bytes pass the ratio limit of {}",
            limits.max_ratio
        )));
    }
    Ok(())
}

/// The rebuild's output, refused past the size the recipe announced.
pub(crate) struct OutMeter<'a> {
    out: &'a mut dyn Write,
    written: u64,
    max: u64,
    /// A zip's local-header chain, fed every byte written (see [`crate::zip::Chain`]).
    chain: Option<crate::zip::Chain>,
}

impl<'a> OutMeter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write, max: u64, _limits: &Limits) -> Self {
        OutMeter {
            out,
            written: 0,
            max,
            chain: None,
        }
    }

    /// Follow a zip's local-header chain through every byte written from now on.
    pub(crate) fn track_zip(&mut self) {
        self.chain = Some(crate::zip::Chain::new());
    }

    /// Stop following the chain; the local headers it found (none when not tracking).
    pub(crate) fn take_chain(&mut self) -> Vec<crate::zip::LocalRef> {
        self.chain.take().map(|c| c.into_refs()).unwrap_or_default()
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let total = self.written + bytes.len() as u64;
        if total > self.max {
            return Err(RecompressError::TooLarge(format!(
                "rebuild would write past the {} bytes the recipe announced",
                self.max
            )));
        }
        self.out.write_all(bytes)?;
        if let Some(c) = self.chain.as_mut() {
            c.feed(bytes);
        }
        self.written = total;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<u64> {
        self.out.flush()?;
        if self.written != self.max {
            return Err(RecompressError::Malformed {
                what: "recipe",
                message: format!(
                    "rebuilt {} bytes, the recipe announced {}",
                    self.written, self.max
                ),
            });
        }
        Ok(self.written)
    }
}

/// Read until `buf` is full or the reader ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Read exactly `n` plain bytes into `buf` (cleared first; `n` is bounded by the caller).
pub(crate) fn read_plain(r: &mut dyn Read, n: u64, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    r.take(n).read_to_end(buf)?;
    if (buf.len() as u64) != n {
        return Err(plain_short(n - buf.len() as u64));
    }
    Ok(())
}

fn plain_short(left: u64) -> RecompressError {
    RecompressError::Malformed {
        what: "plain form",
        message: format!("ends {left} bytes before the recipe does"),
    }
}

/// Copy `n` plain bytes to the output verbatim.
pub(crate) fn copy_plain(plain: &mut dyn Read, out: &mut OutMeter<'_>, n: u64) -> Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    let mut left = n;
    while left > 0 {
        let want = left.min(COPY_BUF as u64) as usize;
        let got = read_full(plain, &mut buf[..want])?;
        if got == 0 {
            return Err(plain_short(left));
        }
        out.put(&buf[..got])?;
        left -= got as u64;
    }
    Ok(())
}
