//! Content-defined chunking: FastCDC (the 2020 algorithm) with pinned parameters.
//!
//! Invariants:
//! - Cut points depend only on the bytes and on [`ChunkerParams`]; a store records its
//!   params in its header and refuses to run with others, so chunk ids never mix
//!   parameter sets silently.
//! - [`StreamChunker`] yields exactly the chunks that chunking the whole input in memory
//!   would yield (FastCDC restarts its gear hash at every cut, so a buffer refill at a cut
//!   point changes nothing) while holding at most [`READ_BUFFER`] bytes of input.
//! - The `fastcdc` crate version is pinned exactly in the workspace and
//!   `tests::golden_cut_points` fails if an upgrade moves a single cut.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use serde::{Deserialize, Serialize};

/// Bytes of input the streaming chunker holds at once.
pub const READ_BUFFER: usize = 4 << 20;

/// The parameters that decide cut points. Part of the store's on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk, bytes (except a file's last chunk).
    pub min_size: u32,
    /// Target average chunk, bytes.
    pub avg_size: u32,
    /// Largest chunk, bytes.
    pub max_size: u32,
    /// FastCDC 2020 normalization level (0..=3).
    pub normalization: u8,
    /// Gear table seed (0 = the published table).
    pub seed: u64,
}

impl ChunkerParams {
    /// The parameters every ouk store uses: 16 KiB / 64 KiB / 256 KiB, normalization 1,
    /// seed 0. Chosen by measurement (see `docs/benchmarks.md`): smaller chunks dedup feeds
    /// slightly better but cost index size and per-chunk overhead; byte-level patches in the
    /// delta tier recover the rest.
    pub const V1: ChunkerParams = ChunkerParams {
        min_size: 16 * 1024,
        avg_size: 64 * 1024,
        max_size: 256 * 1024,
        normalization: 1,
        seed: 0,
    };

    fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

/// A configured FastCDC cutter (masks and gear tables computed once).
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Vec<u64>,
    gear_ls: Vec<u64>,
}

impl Chunker {
    /// A cutter for `params`.
    pub fn new(params: ChunkerParams) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, params.level());
        let (gear, gear_ls) = get_gear_with_seed(params.seed);
        Chunker {
            params,
            mask_s,
            mask_l,
            gear: gear.into_owned(),
            gear_ls: gear_ls.into_owned(),
        }
    }

    /// The parameters of this cutter.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data` (`data.len()` when it is shorter than the
    /// minimum or is the input's tail).
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        let (_, len) = cut_gear(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        // cut_gear returns 0 only for empty input; never loop forever on a bad return.
        if len == 0 { data.len() } else { len }
    }

    /// Chunk boundaries of an in-memory buffer, as `(offset, len)` pairs.
    pub fn cuts(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(data.len() / self.params.avg_size as usize + 1);
        let mut pos = 0;
        while pos < data.len() {
            let len = self.next_cut(&data[pos..]);
            out.push((pos, len));
            pos += len;
        }
        out
    }
}

/// Chunks a `Read` stream with a fixed-size buffer.
pub struct StreamChunker<R> {
    chunker: Chunker,
    source: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> StreamChunker<R> {
    /// Chunk `source` with `chunker`.
    pub fn new(chunker: Chunker, source: R) -> Self {
        let cap = READ_BUFFER.max(2 * chunker.params.max_size as usize);
        StreamChunker {
            chunker,
            source,
            buf: vec![0; cap],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next chunk's bytes, or `None` at the end of input. `observe` sees every byte of
    /// input exactly once, in order (used to hash the whole file while chunking).
    pub fn next_chunk(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<Option<&[u8]>> {
        let max = self.chunker.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < self.buf.len() {
                let n = match self.source.read(&mut self.buf[self.end..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    self.eof = true;
                    break;
                }
                observe(&self.buf[self.end..self.end + n]);
                self.end += n;
            }
        }
        if self.start == self.end {
            return Ok(None);
        }
        let len = self.chunker.next_cut(&self.buf[self.start..self.end]);
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    fn stream_cuts(data: &[u8], read_size: usize) -> Vec<usize> {
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut sc = StreamChunker::new(Chunker::new(ChunkerParams::V1), Dribble(data, read_size));
        let mut seen = Vec::new();
        let mut lens = Vec::new();
        while let Some(c) = sc.next_chunk(&mut |b| seen.extend_from_slice(b)).unwrap() {
            lens.push(c.len());
        }
        assert_eq!(seen, data);
        lens
    }

    /// Cut points of a fixed pseudo-random input under `ChunkerParams::V1`. If this fails,
    /// the chunker changed: every existing store would stop deduplicating against new data.
    /// Do not update these numbers without a store format version bump.
    #[test]
    fn golden_cut_points() {
        // BLAKE3's XOF is a fixed function: the input can never drift with a dependency.
        let mut data = vec![0u8; 2 << 20];
        blake3::Hasher::new()
            .update(b"ouk golden cut points")
            .finalize_xof()
            .fill(&mut data);
        let lens: Vec<usize> = Chunker::new(ChunkerParams::V1)
            .cuts(&data)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let sum: usize = lens.iter().sum();
        assert_eq!(sum, data.len());
        let golden: &[usize] = &GOLDEN;
        assert_eq!(lens, golden, "FastCDC cut points moved");
    }

    const GOLDEN: [usize; 26] = [
        94549, 37562, 46806, 70160, 72012, 89152, 102813, 145585, 82806, 138051, 82532, 36507,
        72251, 70069, 161904, 108945, 89627, 77742, 53391, 54674, 66040, 91986, 65996, 111590,
        45887, 28515,
    ];

    #[test]
    fn stream_matches_in_memory_across_refills() {
        let data = pseudo_random(11 << 20, 7);
        let mem: Vec<usize> = Chunker::new(ChunkerParams::V1)
            .cuts(&data)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(stream_cuts(&data, 1 << 20), mem);
        assert_eq!(stream_cuts(&data, 777_777), mem);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(stream_cuts(&[], 10).is_empty());
        assert_eq!(stream_cuts(b"x", 10), vec![1]);
        assert_eq!(
            Chunker::new(ChunkerParams::V1).cuts(&[0u8; 100]),
            vec![(0, 100)]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn chunks_respect_bounds_and_cover_input(len in 0usize..1_500_000, seed: u64, read in 1usize..300_000) {
            let data = pseudo_random(len, seed);
            let lens = stream_cuts(&data, read);
            prop_assert_eq!(lens.iter().sum::<usize>(), len);
            let p = ChunkerParams::V1;
            for (i, l) in lens.iter().enumerate() {
                prop_assert!(*l <= p.max_size as usize);
                if i + 1 < lens.len() {
                    prop_assert!(*l >= p.min_size as usize);
                }
            }
        }

        #[test]
        fn an_edit_moves_only_nearby_cuts(seed: u64, at in 0usize..3_000_000) {
            let a = pseudo_random(4 << 20, seed);
            let mut b = a.clone();
            b[at] ^= 0xff;
            let c = Chunker::new(ChunkerParams::V1);
            let ca = c.cuts(&a);
            let cb = c.cuts(&b);
            let ids = |d: &[u8], cs: &[(usize, usize)]| -> std::collections::HashSet<Vec<u8>> {
                cs.iter().map(|&(o, l)| d[o..o + l].to_vec()).collect()
            };
            let shared = ids(&a, &ca).intersection(&ids(&b, &cb)).count();
            // One flipped byte may change the chunk holding it and the next cut or two.
            prop_assert!(shared + 3 >= ca.len(), "shared {} of {}", shared, ca.len());
        }
    }
}
