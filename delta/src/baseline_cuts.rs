//! The chunk cuts a rebuilt file shares with the baseline files it copied runs from.
//!
//! A record patch copies long runs of the baseline feed verbatim. Inside such a run, a
//! chunk of the baseline file that lies wholly in the run, together with the byte after
//! it (which the cutter hashes to decide the cut), is exactly the chunk the cutter would
//! make of the rebuilt file once it reaches that chunk's start
//! ([`ouk_store::chunker::KnownCuts`]). [`BaselineCuts`] answers those, so the store
//! writer skips the cutter over most of a daily feed.
//!
//! Invariant: an answer can only move a cut, never change what is stored (the writer
//! names every chunk by the BLAKE3 of its bytes and hashes the whole file). So a run noted
//! wrongly, or a baseline file whose store record is missing, costs deduplication at
//! worst, and then only until the next cut the cutter makes itself.

use std::collections::HashMap;

use ouk_store::chunker::{FileCuts, KnownCuts};
use ouk_store::{FileDigest, Store};

use crate::apply::CopiedSoFar;

/// [`KnownCuts`] of one rebuilt file, from the runs noted in `copied` and the cuts the
/// store recorded for the baseline files they came from.
pub struct BaselineCuts<'a> {
    copied: &'a CopiedSoFar,
    baseline: &'a HashMap<String, FileDigest>,
    store: &'a Store,
    /// Per baseline path, its cuts (`None`: the store has no complete record of it).
    cuts: HashMap<String, Option<FileCuts>>,
}

impl<'a> BaselineCuts<'a> {
    /// The cuts of the file whose copied runs `copied` notes; `baseline` maps the
    /// baseline's paths to their digests in `store`.
    pub fn new(
        copied: &'a CopiedSoFar,
        baseline: &'a HashMap<String, FileDigest>,
        store: &'a Store,
    ) -> Self {
        BaselineCuts {
            copied,
            baseline,
            store,
            cuts: HashMap::new(),
        }
    }
}

impl KnownCuts for BaselineCuts<'_> {
    fn chunk_at(&mut self, offset: u64) -> Option<usize> {
        let at = self.copied.at(offset)?;
        if !self.cuts.contains_key(&at.baseline) {
            // A store error here only means no hint: the cutter runs.
            let cuts = self
                .baseline
                .get(&at.baseline)
                .and_then(|sha| self.store.file_cuts(sha).ok().flatten());
            self.cuts.insert(at.baseline.clone(), cuts);
        }
        let len = self
            .cuts
            .get(&at.baseline)?
            .as_ref()?
            .chunk_at(at.reference)?;
        // The byte after the chunk decides its cut: it must be copied too.
        ((len as u64) < at.left).then_some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ReferenceRange;
    use crate::records::CopiedRun;
    use ouk_store::chunker::NoKnownCuts;
    use ouk_store::{FileHashing, StoreOptions};

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Counts the cuts `inner` answered.
    struct Counted<'a, K>(&'a mut K, usize);

    impl<K: KnownCuts> KnownCuts for Counted<'_, K> {
        fn chunk_at(&mut self, offset: u64) -> Option<usize> {
            let c = self.0.chunk_at(offset);
            self.1 += usize::from(c.is_some());
            c
        }
    }

    #[test]
    fn a_file_copied_from_the_baseline_gets_the_cutters_chunks_without_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        let base = bytes(4 << 20, 7);
        let mut w = store.writer().unwrap();
        let base_sha = w.put_reader(&base[..], &mut |_| {}).unwrap().digest;
        w.commit().unwrap();

        // A new head, most of the baseline, one changed byte, the rest, a new tail.
        let mut target = bytes(3_000, 9);
        let first = (target.len() as u64, 100_000u64, 2_000_000u64);
        target.extend_from_slice(&base[100_000..2_100_000]);
        target.push(base[2_100_000] ^ 1);
        let second = (target.len() as u64, 2_100_001u64, 1_900_000u64);
        target.extend_from_slice(&base[2_100_001..4_000_001]);
        target.extend(bytes(5_000, 11));

        let copied = CopiedSoFar::default();
        let range = ReferenceRange {
            path: "feeds/a.jsonl".into(),
            offset: 0,
            length: base.len() as u64,
            decoded: false,
        };
        for (output, reference, len) in [first, second] {
            copied.note(
                &range,
                0,
                vec![CopiedRun {
                    output,
                    reference,
                    len,
                }],
            );
        }
        let digests = HashMap::from([("feeds/a.jsonl".to_string(), base_sha)]);
        let mut cuts = BaselineCuts::new(&copied, &digests, &store);
        let mut counted = Counted(&mut cuts, 0);
        let mut w = store.writer().unwrap();
        let hinted = w
            .put_reader_knowing(&target[..], &mut counted, FileHashing::Compute, &mut |_| {})
            .unwrap();
        let plain = w
            .put_reader_knowing(
                &target[..],
                &mut NoKnownCuts,
                FileHashing::Compute,
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(hinted.chunks, plain.chunks, "the cutter's own chunks");
        assert_eq!(hinted.digest, plain.digest);
        assert!(
            counted.1 * 2 > plain.chunks.len(),
            "most chunks came from the baseline's cuts: {} of {}",
            counted.1,
            plain.chunks.len()
        );
    }
}
