//! Gc roots held by the layers above the store: files that must survive [`Store::gc`]
//! whatever live set its caller passes.
//!
//! The store's gc keeps what the caller names live (the generations' files) and drops the
//! rest. Other holders of store content (the kit crate's mirror of bundles) record their
//! files here instead, in table `store_pins`, keyed by (holder, file SHA-256): every gc
//! keeps a pinned file and its chunks, so no caller has to know about every holder.
//!
//! Invariants:
//! - A pin is written in the holder's own redb write transaction ([`pin`]), together with
//!   the holder's record of why, so the pin and the record commit or vanish together.
//! - Pin a file only after the put that stored it committed: a pin does not create data,
//!   and a pin of a file the store does not have keeps nothing (gc reads the file records).

use std::collections::HashSet;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::Store;
use crate::error::Result;
use crate::id::FileDigest;

/// (holder, file sha256) -> nothing.
pub(crate) const PINS: TableDefinition<(&str, &[u8; 32]), ()> = TableDefinition::new("store_pins");

/// Pin `digest` for `holder` inside the caller's write transaction.
pub fn pin(txn: &redb::WriteTransaction, holder: &str, digest: &FileDigest) -> Result<()> {
    txn.open_table(PINS)?
        .insert((holder, digest.as_bytes()), ())?;
    Ok(())
}

/// Drop `holder`'s pin of `digest` (no-op when absent) inside the caller's transaction.
pub fn unpin(txn: &redb::WriteTransaction, holder: &str, digest: &FileDigest) -> Result<()> {
    txn.open_table(PINS)?.remove((holder, digest.as_bytes()))?;
    Ok(())
}

/// Drop every pin of `holder` inside the caller's transaction (a holder rebuilding its
/// records, as the mirror does after `reindex`).
pub fn unpin_all(txn: &redb::WriteTransaction, holder: &str) -> Result<()> {
    let mut table = txn.open_table(PINS)?;
    let mine: Vec<[u8; 32]> = table
        .range((holder, &[0u8; 32])..=(holder, &[0xffu8; 32]))?
        .map(|row| row.map(|(k, _)| *k.value().1))
        .collect::<std::result::Result<_, _>>()?;
    for digest in &mine {
        table.remove((holder, digest))?;
    }
    Ok(())
}

/// Every pinned file, whoever holds it, as of `txn`.
pub(crate) fn pinned_in(txn: &redb::ReadTransaction) -> Result<HashSet<FileDigest>> {
    let table = match txn.open_table(PINS) {
        Ok(t) => t,
        // A store no holder ever pinned into has no table yet.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashSet::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = HashSet::new();
    for row in table.iter()? {
        let (k, _) = row?;
        out.insert(FileDigest(*k.value().1));
    }
    Ok(out)
}

impl Store {
    /// Every pinned file, whoever holds it.
    pub fn pinned_files(&self) -> Result<HashSet<FileDigest>> {
        pinned_in(&self.db.begin_read()?)
    }
}
