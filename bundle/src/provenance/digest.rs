//! SHA-1 and SHA-256 of a file in one pass, for the SBOM (SPDX 2.3 requires SHA-1 per
//! file) and the manifest (SHA-256).
//!
//! [`DualHasher`] takes bytes as they stream by (e.g. while the kit build copies a file into
//! the tar), [`HashingReader`] wraps a reader so whatever reads it (the tar writer) hashes
//! it too, and [`digest_reader`] drains a reader. Memory is one fixed buffer at most.

use std::io::{self, Read};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Size of the read buffer of [`digest_reader`].
pub const DIGEST_BUFFER: usize = 256 * 1024;

/// The digests and length of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigests {
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Incremental SHA-1 + SHA-256 + length.
#[derive(Clone, Default)]
pub struct DualHasher {
    sha1: Sha1,
    sha256: Sha256,
    size: u64,
}

impl DualHasher {
    pub fn new() -> DualHasher {
        DualHasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha1.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub fn finalize(self) -> FileDigests {
        FileDigests {
            sha1: self.sha1.finalize().into(),
            sha256: self.sha256.finalize().into(),
            size: self.size,
        }
    }
}

/// A reader that hashes everything read through it. Not `ouk_store::fsutil::HashingReader`:
/// SPDX needs SHA-1 beside SHA-256 ([`DualHasher`]), in the same pass.
pub struct HashingReader<R> {
    inner: R,
    hasher: DualHasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: DualHasher::new(),
        }
    }

    /// The digests of what was read so far, and the inner reader.
    pub fn finish(self) -> (FileDigests, R) {
        (self.hasher.finalize(), self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// SHA-1, SHA-256 and length of everything `reader` yields, in one pass.
pub fn digest_reader<R: Read>(mut reader: R) -> io::Result<FileDigests> {
    let mut hasher = DualHasher::new();
    ouk_store::fsutil::read_through(&mut reader, DIGEST_BUFFER, |piece| {
        hasher.update(piece);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        ouk_store::fsutil::PassError::Read(e) => e,
        ouk_store::fsutil::PassError::Sink(never) => match never {},
    })?;
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_and_streaming_agree() {
        let d = digest_reader(&b"abc"[..]).expect("digest");
        assert_eq!(
            hex::encode(d.sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);

        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = digest_reader(&data[..]).expect("digest");
        let mut r = HashingReader::new(&data[..]);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).expect("read");
        let (streamed, _) = r.finish();
        assert_eq!(streamed, whole);
        assert_eq!(sink, data);
        let mut h = DualHasher::new();
        for piece in data.chunks(4093) {
            h.update(piece);
        }
        assert_eq!(h.finalize(), whole);
    }
}
