//! Content-defined chunking: FastCDC (the 2020 algorithm) with pinned parameters.
//!
//! Invariants:
//! - Cut points depend only on the bytes and on [`ChunkerParams`]; a store records its
//!   params in its header and refuses to run with others, so chunk ids never mix
//!   parameter sets silently.
//! - [`StreamChunker`] yields exactly the chunks that chunking the whole input in memory
//!   would yield (FastCDC restarts its gear hash at every cut, so a buffer refill at a cut
//!   point changes nothing) while holding at most [`READ_BUFFER`] bytes of input.
//! - A [`KnownCuts`] hint can only move a cut, never change content: the chunk is still
//!   the bytes between two cuts, and the writer still names it by their BLAKE3.
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

/// Chunk lengths a caller knows before the cutter runs.
///
/// Where a stretch of a stream is byte for byte a stretch of a file the store already
/// chunked, FastCDC cuts it where it cut that file: a cut depends only on the bytes from
/// the previous cut up to and including the byte after the new one (the 2020 cutter
/// tests positions in pairs and hashes the byte at the cut). Less input left than the
/// largest chunk changes only where the cutter stops looking, which moves no cut found
/// before it; only a file's last chunk ends where the input ended rather than where the
/// bytes chose ([`FileCuts`] does not know it). A delta apply knows such stretches (the runs its record patches
/// copied from the baseline), so its writer need not run the cutter over them.
pub trait KnownCuts {
    /// The length of the chunk starting at stream offset `offset` (a cut the writer has
    /// reached), when known; `None` lets the cutter decide.
    fn chunk_at(&mut self, offset: u64) -> Option<usize>;
}

/// No chunk known ahead: the cutter decides every cut.
pub struct NoKnownCuts;

impl KnownCuts for NoKnownCuts {
    fn chunk_at(&mut self, _offset: u64) -> Option<usize> {
        None
    }
}

/// The cuts of a file the store holds, for [`KnownCuts`] providers: the chunk starting at
/// an offset, when the cutter chose its end from the bytes alone.
#[derive(Debug, Clone)]
pub struct FileCuts {
    /// Chunk start offsets, then the file's length.
    starts: Vec<u64>,
}

impl FileCuts {
    /// The cuts of a file whose chunks have `lengths`.
    pub fn new(lengths: impl IntoIterator<Item = u64>) -> FileCuts {
        let mut starts = vec![0];
        let mut at = 0;
        for l in lengths {
            at += l;
            starts.push(at);
        }
        FileCuts { starts }
    }

    /// The length of the file's chunk starting at `offset`, if one starts there and is not
    /// the file's last (whose end is the file's, not a cut).
    pub fn chunk_at(&self, offset: u64) -> Option<usize> {
        let i = self.starts.binary_search(&offset).ok()?;
        if i + 2 >= self.starts.len() {
            return None;
        }
        usize::try_from(self.starts[i + 1] - offset).ok()
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
    /// Stream offset of `buf[start]`.
    offset: u64,
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
            offset: 0,
        }
    }

    /// The next chunk's bytes, or `None` at the end of input. `observe` sees every byte of
    /// input exactly once, in order (used to hash the whole file while chunking).
    pub fn next_chunk(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<Option<&[u8]>> {
        self.next_chunk_knowing(observe, &mut NoKnownCuts)
    }

    /// [`StreamChunker::next_chunk`], taking a chunk's length from `known` where it knows
    /// one: the hint is used only when it fits the largest chunk and a whole largest
    /// chunk of input is buffered (what the cutter would have seen).
    pub fn next_chunk_knowing(
        &mut self,
        observe: &mut dyn FnMut(&[u8]),
        known: &mut dyn KnownCuts,
    ) -> io::Result<Option<&[u8]>> {
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
        let buffered = self.end - self.start;
        let len = match known.chunk_at(self.offset) {
            Some(l) if l > 0 && l <= max && buffered >= max => l,
            _ => self.chunker.next_cut(&self.buf[self.start..self.end]),
        };
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        self.offset += len as u64;
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

    /// A stream made of stretches of `base` (the runs: stream offset, base offset,
    /// length) and fresh bytes between them, as an edited file would be.
    fn spliced(
        base: &[u8],
        seed: u64,
        pieces: &[(usize, usize)],
    ) -> (Vec<u8>, Vec<(u64, u64, u64)>) {
        let mut out = Vec::new();
        let mut runs = Vec::new();
        for (i, &(from, len)) in pieces.iter().enumerate() {
            out.extend(pseudo_random(100 + i * 37, seed ^ i as u64));
            let (from, len) = (
                from.min(base.len()),
                len.min(base.len() - from.min(base.len())),
            );
            runs.push((out.len() as u64, from as u64, len as u64));
            out.extend_from_slice(&base[from..from + len]);
        }
        // Fresh bytes after the last run too: a run that reaches the base's end does not
        // reach the stream's.
        out.extend(pseudo_random(300_000, !seed));
        (out, runs)
    }

    /// Known cuts from `runs` of `base`, as a delta apply gives them; counts its answers.
    struct RunCuts<'a> {
        runs: &'a [(u64, u64, u64)],
        base: FileCuts,
        answered: usize,
    }

    impl KnownCuts for RunCuts<'_> {
        fn chunk_at(&mut self, offset: u64) -> Option<usize> {
            let &(at, from, len) = self
                .runs
                .iter()
                .find(|&&(at, _, len)| offset >= at && offset < at + len)?;
            let chunk = self.base.chunk_at(from + (offset - at))?;
            // The byte after the chunk decides its cut: it must be in the run too.
            ((chunk as u64) < at + len - offset).then(|| {
                self.answered += 1;
                chunk
            })
        }
    }

    fn stream_lens(data: &[u8], known: &mut dyn KnownCuts) -> Vec<usize> {
        let mut sc = StreamChunker::new(Chunker::new(ChunkerParams::V1), data);
        let mut lens = Vec::new();
        while let Some(c) = sc.next_chunk_knowing(&mut |_| {}, known).unwrap() {
            lens.push(c.len());
        }
        lens
    }

    #[test]
    fn cuts_known_from_copied_runs_are_the_cutters_own() {
        let base = pseudo_random(6 << 20, 11);
        let c = Chunker::new(ChunkerParams::V1);
        let base_cuts = c.cuts(&base);
        let cuts = FileCuts::new(base_cuts.iter().map(|&(_, l)| l as u64));
        // Runs of every shape: long, out of order, reaching the base's end (whose last
        // chunk is not known), and from one cut to another (the fresh byte after the
        // run's last chunk decides whether the cutter cuts there: it must not be known).
        let (from, to) = (base_cuts[10].0, base_cuts[30].0);
        let (stream, runs) = spliced(
            &base,
            3,
            &[
                (5_000, 2 << 20),
                (3 << 20, 700_000),
                (1 << 20, 90_000),
                (from, to - from),
                (from, to - from),
                (5 << 20, 1 << 20),
            ],
        );
        let mut known = RunCuts {
            runs: &runs,
            base: cuts,
            answered: 0,
        };
        let hinted = stream_lens(&stream, &mut known);
        assert_eq!(hinted, stream_lens(&stream, &mut NoKnownCuts));
        assert!(
            known.answered > 20,
            "the runs' chunks came from the hints: {}",
            known.answered
        );
    }

    #[test]
    fn a_wrong_hint_moves_cuts_but_every_byte_stays() {
        struct Wrong;
        impl KnownCuts for Wrong {
            fn chunk_at(&mut self, offset: u64) -> Option<usize> {
                // Lengths no cutter would choose, and some past the largest chunk.
                Some([1usize, 4097, 300_000, 262_144][(offset % 4) as usize])
            }
        }
        let data = pseudo_random(3 << 20, 5);
        let mut sc = StreamChunker::new(Chunker::new(ChunkerParams::V1), &data[..]);
        let mut back = Vec::new();
        while let Some(c) = sc.next_chunk_knowing(&mut |_| {}, &mut Wrong).unwrap() {
            assert!(c.len() <= ChunkerParams::V1.max_size as usize);
            back.extend_from_slice(c);
        }
        assert!(back == data);
    }

    #[test]
    fn file_cuts_know_every_chunk_but_the_last() {
        let cuts = FileCuts::new([100_000, 200_000, 20_000, 50_000]);
        assert_eq!(cuts.chunk_at(0), Some(100_000));
        assert_eq!(cuts.chunk_at(100_000), Some(200_000));
        assert_eq!(cuts.chunk_at(300_000), Some(20_000));
        assert_eq!(cuts.chunk_at(50), None, "not a cut");
        assert_eq!(cuts.chunk_at(320_000), None, "the last chunk");
        assert_eq!(cuts.chunk_at(370_000), None, "the end is no chunk");
        assert_eq!(FileCuts::new([]).chunk_at(0), None);
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
