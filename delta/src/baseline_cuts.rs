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
