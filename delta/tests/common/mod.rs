//! Helpers shared by the delta integration tests: a tree on disk as a delta sees it.

use std::fs;
use std::path::Path;

use ouk_delta::GenerationId;
use ouk_delta::content::{DirContent, TreeFile};
use ouk_delta::format::GenerationRef;
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
