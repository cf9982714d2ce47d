//! `Store::reindex`: rebuild the redb index of an object-storage store from the bucket.
//!
//! For such a store the bucket is the truth and `index.redb` a cache. Reindex lists
//! `packs/` and `index/`, reads every pack-index object (whose name must be the BLAKE3 of
//! its bytes and whose content must validate, [`crate::pack_index`]), and replaces the
//! `store_chunks`, `store_files`, `store_packs` and `store_remote_packs` tables in one
//! transaction.
//!
//! Invariants:
//! - A chunk is indexed only when its pack object is present at the length its index
//!   object records; a file record only when every chunk it names is indexed. So the
//!   rebuilt index references nothing half-written: a pack whose upload never finished,
//!   or whose index object never arrived, is left out (reported as an orphan).
//! - The result does not depend on listing order: packs are numbered in the order of
//!   their names, and a chunk stored in several packs (two writers racing) is located in
//!   the first of them by name.
//! - Pins (`store_pins`) and the tables of other crates are left alone: their holders
//!   rebuild their own records (the mirror from its records in the bucket).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::id::{ChunkId, FileDigest};
use crate::index::{CHUNKS, ChunkLocation, FILES, FileRecord, PACKS, REMOTE_PACKS};
use crate::pack_index::{PackIndex, PackName};

/// What [`Store::reindex`] found and rebuilt.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexReport {
    /// Packs indexed.
    pub packs: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Distinct chunks indexed.
    pub chunks: u64,
    /// File records indexed.
    pub files: u64,
    /// Pack objects no index object describes (an upload interrupted before its index
    /// object): not referenced.
    pub orphan_packs: Vec<String>,
    /// Index objects left out: their pack is missing or of another length, or they did
    /// not decode.
    pub refused_indexes: Vec<String>,
    /// File records left out because a chunk they name is in no indexed pack.
    pub incomplete_files: Vec<FileDigest>,
}

impl Store {
    /// Rebuild the index from the bucket (object-storage stores only); see the module doc.
    pub fn reindex(&self) -> Result<ReindexReport> {
        if !self.is_remote() {
            return Err(StoreError::Unsupported(
                "reindex of a local store (its redb index is the truth, not a cache)".into(),
            ));
        }
        let _exclusive = self.writer_lock.lock().unwrap_or_else(|p| p.into_inner());
        let listing = self.backend.listing()?;
        let mut report = ReindexReport::default();
        let present: HashMap<PackName, u64> = listing.packs.iter().copied().collect();
        for (key, why) in &listing.refused {
            report.refused_indexes.push(format!("{key}: {why}"));
        }
        // Index objects by pack name (BTreeMap: numbering in name order).
        let mut by_pack: BTreeMap<PackName, Vec<&PackIndex>> = BTreeMap::new();
        let mut loose_files: Vec<&PackIndex> = Vec::new();
        for index in &listing.indexes {
            match index.pack {
                None => loose_files.push(index),
                Some(name) => match present.get(&name) {
                    Some(&len) if len == index.pack_len => {
                        by_pack.entry(name).or_default().push(index)
                    }
                    Some(&len) => report.refused_indexes.push(format!(
                        "index of pack {name}: records {} bytes, the object has {len}",
                        index.pack_len
                    )),
                    None => report
                        .refused_indexes
                        .push(format!("index of pack {name}: the pack is missing")),
                },
            }
        }
        for (name, _) in &listing.packs {
            if !by_pack.contains_key(name) {
                report.orphan_packs.push(name.to_hex());
            }
        }
        report.orphan_packs.sort();
        let mut chunks: HashMap<ChunkId, ChunkLocation> = HashMap::new();
        let mut packs: Vec<(u32, PackName, u64)> = Vec::new();
        let mut files: BTreeMap<FileDigest, FileRecord> = BTreeMap::new();
        for (i, (name, indexes)) in by_pack.iter().enumerate() {
            let number = u32::try_from(i + 1)
                .map_err(|_| StoreError::Unsupported("more than 2^32 packs".into()))?;
            let len = present.get(name).copied().unwrap_or(0);
            packs.push((number, *name, len));
            for index in indexes {
                for c in &index.chunks {
                    chunks.entry(c.id).or_insert(ChunkLocation {
                        pack: number,
                        offset: c.offset,
                        frame_len: c.frame_len,
                        raw_len: c.raw_len,
                    });
                }
            }
        }
        let indexed = by_pack.values().flatten().chain(loose_files.iter());
        for index in indexed {
            for (digest, rec) in &index.files {
                files.entry(*digest).or_insert_with(|| rec.clone());
            }
        }
        let known: HashSet<&ChunkId> = chunks.keys().collect();
        files.retain(|digest, rec| {
            let complete = rec.chunks.iter().all(|c| known.contains(c));
            if !complete {
                report.incomplete_files.push(*digest);
            }
            complete
        });
        let txn = self.db.begin_write()?;
        let old: Vec<u32> = {
            let names = txn.open_table(REMOTE_PACKS)?;
            let mut numbers = Vec::new();
            for row in redb::ReadableTable::iter(&names)? {
                numbers.push(row?.0.value());
            }
            numbers
        };
        txn.delete_table(CHUNKS)?;
        txn.delete_table(FILES)?;
        txn.delete_table(PACKS)?;
        txn.delete_table(REMOTE_PACKS)?;
        {
            let mut chunk_table = txn.open_table(CHUNKS)?;
            for (id, loc) in &chunks {
                chunk_table.insert(id.as_bytes(), &loc.encode())?;
            }
            let mut file_table = txn.open_table(FILES)?;
            for (digest, rec) in &files {
                file_table.insert(digest.as_bytes(), rec.encode().as_slice())?;
            }
            let mut pack_table = txn.open_table(PACKS)?;
            let mut name_table = txn.open_table(REMOTE_PACKS)?;
            for (number, name, len) in &packs {
                pack_table.insert(*number, *len)?;
                name_table.insert(*number, &name.0)?;
            }
        }
        txn.commit()?;
        self.backend.forget(&old);
        for (number, name, _) in &packs {
            self.backend.register(*number, *name);
        }
        report.packs = packs.len() as u64;
        report.pack_bytes = packs.iter().map(|p| p.2).sum();
        report.chunks = chunks.len() as u64;
        report.files = files.len() as u64;
        report.incomplete_files.sort();
        Ok(report)
    }
}
