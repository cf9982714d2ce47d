//! Compressed bytes of one stream, kept while its recipe is searched for: in memory up to
//! [`SPOOL_MEMORY`], then in an unlinked temporary file (deleted when dropped).
//!
//! Invariants: memory stays at most [`SPOOL_MEMORY`] whatever the stream size; reads are
//! positioned (`read_at`), so several readers (a decoder and a comparison) may walk the
//! same spool at once; a read past the end is an error, never a panic.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use crate::{RecompressError, Result};

/// Compressed bytes kept in memory before spilling to a temporary file.
const SPOOL_MEMORY: usize = 16 << 20;

#[derive(Default)]
pub(crate) struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spool {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if self.file.is_none() && self.mem.len() + bytes.len() > SPOOL_MEMORY {
            let mut f = tempfile::tempfile()?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes)?,
            None => self.mem.extend_from_slice(bytes),
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn read_at(&self, at: u64, buf: &mut [u8]) -> Result<()> {
        match &self.file {
            Some(f) => f.read_exact_at(buf, at)?,
            None => {
                let src = usize::try_from(at)
                    .ok()
                    .and_then(|start| self.mem.get(start..start.checked_add(buf.len())?))
                    .ok_or_else(|| RecompressError::Malformed {
                        what: "spool",
                        message: "read past its end".into(),
                    })?;
                buf.copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// A reader over the whole spool from its start.
    pub(crate) fn reader(&self) -> SpoolReader<'_> {
        SpoolReader {
            spool: self,
            pos: 0,
        }
    }
}

pub(crate) struct SpoolReader<'a> {
    spool: &'a Spool,
    pos: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.spool.len - self.pos).min(buf.len() as u64) as usize;
        self.spool
            .read_at(self.pos, &mut buf[..n])
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}
