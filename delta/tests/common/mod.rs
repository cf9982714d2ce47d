//! Helpers shared by the delta integration tests: a tree on disk as a delta sees it, a
//! delta made between two trees, a deterministic random stream.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod osv;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ouk_delta::GenerationId;
use ouk_delta::apply::{DirSink, apply_delta};
use ouk_delta::content::{DirContent, TreeFile};
use ouk_delta::format::DeltaHeader;
use ouk_delta::format::GenerationRef;
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_delta::tree::list_tree;
use ouk_store::FileDigest;

/// The files of `dir` (path, mode, size, SHA-256) and their content by digest.
pub fn tree_files(dir: &Path) -> (Vec<TreeFile>, DirContent) {
    let mut files = Vec::new();
    let mut content = Vec::new();
    for (rel, path, mode) in list_tree(dir).unwrap() {
        let bytes = fs::read(&path).unwrap();
        let sha256 = FileDigest::of(&bytes);
        files.push(TreeFile {
            path: rel,
            mode,
            size: bytes.len() as u64,
            sha256,
        });
        content.push((sha256, path));
    }
    (files, DirContent::new(content))
}

/// A generation reference numbered `n` (id of `n` bytes, version `vN`).
pub fn gref(n: u8) -> GenerationRef {
    GenerationRef {
        generation: GenerationId([n; 32]),
        version: Some(format!("v{n}")),
    }
}

/// A deterministic pseudo-random stream (xorshift), so the trees are the same every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A delta made between two trees, with what applying it needs.
pub struct Made {
    pub header: DeltaHeader,
    pub payload: Vec<u8>,
    pub base_files: Vec<TreeFile>,
    pub base: DirContent,
    pub target_files: Vec<TreeFile>,
}

/// The delta from the tree `d0` to `d1`, checked by `validate`.
pub fn make(d0: &Path, d1: &Path, options: &MakeOptions) -> Made {
    let (base_files, base) = tree_files(d0);
    let (target_files, target) = tree_files(d1);
    let mut payload = Vec::new();
    let header = make_delta(
        gref(0),
        &base_files,
        &base,
        gref(1),
        &target_files,
        &target,
        options,
        &mut payload,
    )
    .unwrap();
    header.validate(u64::MAX).unwrap();
    Made {
        header,
        payload,
        base_files,
        base,
        target_files,
    }
}

impl Made {
    /// Apply this delta into a new `work/out` (scratch space `work/scratch`): the output
    /// directory and the rebuilt files' digests by path.
    pub fn apply(&self, work: &Path) -> (PathBuf, HashMap<String, FileDigest>) {
        let (out, written) = self.apply_with(&self.header, work);
        (out, written.unwrap())
    }

    /// [`Made::apply`] with another header (a forged copy of this one), its error kept.
    pub fn apply_with(
        &self,
        header: &DeltaHeader,
        work: &Path,
    ) -> (PathBuf, ouk_delta::Result<HashMap<String, FileDigest>>) {
        let out = work.join("out");
        fs::create_dir_all(&out).unwrap();
        let written = apply_delta(
            header,
            &mut std::io::Cursor::new(&self.payload),
            &self.base_files,
            &self.base,
            &work.join("scratch"),
            &mut DirSink::new(&out),
        );
        (out, written.map(|w| w.into_iter().collect()))
    }
}
