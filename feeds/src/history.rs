//! Supersedes chains: per upstream id, the content hashes it had, in generation order.
//!
//! Two tables in the root's store database (`ROOT/store/index.redb`):
//! - `feeds_history_generations`: generation id -> (import sequence, version, baseline), one
//!   entry per generation whose rows were recorded;
//! - `feeds_history`: (upstream id, source, tenant, sequence) -> (generation, change, hash),
//!   one entry per changed row of that generation (as its changes file lists them).
//!
//! Invariants:
//! - A generation is recorded once, the first time an import activates it (sequence 1, 2,
//!   ... in that order); importing it again, rolling back to it or away from it appends
//!   nothing, so a rollback never rewrites history.
//! - A generation and its rows are written in one redb transaction: all or nothing.
//! - Nothing in a record depends on the clock or the machine, so the same kits imported in
//!   the same order on two fresh roots give identical chains.
//! - Keys are length-prefixed, so the chains of one upstream id are one contiguous range
//!   (looking one up reads only that id's entries, whatever the size of the history).

use std::collections::{BTreeMap, HashMap};

use ouk_delta::GenerationId;
use ouk_store::{StoreError, envelope};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::diff::{ChangeKind, RowChange};
use super::index::RowHash;

const GENERATIONS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("feeds_history_generations");
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("feeds_history");
const GEN_KIND: [u8; 4] = *b"OKFG";
const ROW_KIND: [u8; 4] = *b"OKFH";

/// What the history knows of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryGeneration {
    /// Import sequence: 1 for the first generation recorded on this root.
    pub seq: u64,
    /// Kit version.
    pub version: String,
    /// The generation its rows were diffed against.
    pub baseline: Option<GenerationId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RowValue {
    generation: GenerationId,
    change: ChangeKind,
    hash: Option<RowHash>,
    hashes: Vec<RowHash>,
}

/// One link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Import sequence of the generation.
    pub seq: u64,
    /// The generation.
    pub generation: GenerationId,
    /// Its kit version.
    pub version: String,
    /// What happened to the row in it.
    pub change: ChangeKind,
    /// The row's content hash from this generation on (absent once withdrawn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<RowHash>,
    /// Every hash, when the key had several rows (duplicates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<RowHash>,
}

/// The chain of one (source, upstream id, tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// The vendor.
    pub source: String,
    /// The upstream id.
    pub id: String,
    /// The tenant (absent: default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// A history record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record does not decode (a damaged index).
    #[error("feeds history: {0}")]
    Damaged(String),
    /// The producer of the rows failed (its error is kept by the caller).
    #[error("feeds history: the rows could not be produced")]
    Aborted,
}

fn db(e: impl Into<redb::Error>) -> HistoryError {
    HistoryError::Store(StoreError::from_index(e))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn id_prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 4);
    put_str(&mut k, id);
    k
}

fn row_key(id: &str, source: &str, tenant: Option<&str>, seq: u64) -> Vec<u8> {
    let mut k = id_prefix(id);
    put_str(&mut k, source);
    match tenant {
        None => k.push(0),
        Some(t) => {
            k.push(1);
            put_str(&mut k, t);
        }
    }
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Split a key back into (id, source, tenant, seq).
fn parse_key(mut k: &[u8]) -> Option<(String, String, Option<String>, u64)> {
    fn take_str(k: &mut &[u8]) -> Option<String> {
        let (len, rest) = k.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let s = rest.get(..len)?;
        *k = rest.get(len..)?;
        String::from_utf8(s.to_vec()).ok()
    }
    let id = take_str(&mut k)?;
    let source = take_str(&mut k)?;
    let (tag, rest) = k.split_first()?;
    k = rest;
    let tenant = match tag {
        0 => None,
        1 => Some(take_str(&mut k)?),
        _ => return None,
    };
    let seq = u64::from_be_bytes(*<&[u8; 8]>::try_from(k).ok()?);
    Some((id, source, tenant, seq))
}

/// Open `def` for reading, or `None` when it was never written.
fn open_optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, HistoryError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db(e)),
    }
}

/// What [`record`] hands its producer: records one changed row.
pub type Recorder<'a> = dyn FnMut(&RowChange) -> Result<(), HistoryError> + 'a;

/// What the history knows of `generation`, if it was recorded.
pub fn generation(
    database: &redb::Database,
    generation: &GenerationId,
) -> Result<Option<HistoryGeneration>, HistoryError> {
    let txn = database.begin_read().map_err(db)?;
    let Some(t) = open_optional(&txn, GENERATIONS)? else {
        return Ok(None);
    };
    match t.get(&generation.0).map_err(db)? {
        None => Ok(None),
        Some(v) => decode_gen(v.value()).map(Some),
    }
}

fn decode_gen(bytes: &[u8]) -> Result<HistoryGeneration, HistoryError> {
    envelope::open(GEN_KIND, 1, bytes)
        .map(|(_, g)| g)
        .map_err(|e| HistoryError::Damaged(format!("generation record: {e}")))
}

/// Record `generation` and the rows `produce` hands to its recorder, in one transaction,
/// unless the history already knows it. `produce` is called either way (with a recorder
/// that records nothing when the generation is known), so a caller can write its changes
/// file in the same pass. Returns whether anything was recorded. When `produce` fails,
/// nothing is recorded and [`HistoryError::Aborted`] is returned (`produce` keeps its own
/// error for the caller).
pub fn record(
    database: &redb::Database,
    generation: &GenerationId,
    version: &str,
    baseline: Option<GenerationId>,
    produce: &mut dyn FnMut(&mut Recorder<'_>) -> bool,
) -> Result<bool, HistoryError> {
    let txn = database.begin_write().map_err(db)?;
    let recorded = {
        let mut gens = txn.open_table(GENERATIONS).map_err(db)?;
        if gens.get(&generation.0).map_err(db)?.is_some() {
            None
        } else {
            // One more than the largest sequence recorded (not the count: a forgotten
            // generation leaves a gap, and a sequence is never given twice).
            let mut last = 0;
            for item in gens.iter().map_err(db)? {
                let (_, v) = item.map_err(db)?;
                last = last.max(decode_gen(v.value())?.seq);
            }
            let seq = last + 1;
            let rec = HistoryGeneration {
                seq,
                version: version.to_string(),
                baseline,
            };
            gens.insert(&generation.0, envelope::seal(GEN_KIND, 1, &rec).as_slice())
                .map_err(db)?;
            Some(seq)
        }
    };
    let ok = match recorded {
        None => produce(&mut |_| Ok(())),
        Some(seq) => {
            let mut rows = txn.open_table(ROWS).map_err(db)?;
            produce(&mut |c: &RowChange| {
                let key = row_key(&c.id, &c.source, c.tenant.as_deref(), seq);
                let value = RowValue {
                    generation: *generation,
                    change: c.change,
                    hash: c.hash,
                    hashes: c.hashes.clone(),
                };
                rows.insert(
                    key.as_slice(),
                    envelope::seal(ROW_KIND, 1, &value).as_slice(),
                )
                .map_err(db)?;
                Ok(())
            })
        }
    };
    if !ok {
        txn.abort().map_err(db)?;
        return Err(HistoryError::Aborted);
    }
    txn.commit().map_err(db)?;
    Ok(recorded.is_some())
}

/// Remove `generation` and its rows (an import that recorded them and was then refused
/// before its flip). Returns whether it was known.
pub fn forget(database: &redb::Database, generation: &GenerationId) -> Result<bool, HistoryError> {
    let txn = database.begin_write().map_err(db)?;
    let known = {
        let mut gens = txn.open_table(GENERATIONS).map_err(db)?;
        let Some(seq) = gens
            .remove(&generation.0)
            .map_err(db)?
            .map(|v| decode_gen(v.value()))
            .transpose()?
            .map(|g| g.seq)
        else {
            return Ok(false);
        };
        let mut rows = txn.open_table(ROWS).map_err(db)?;
        rows.retain(|k, _| parse_key(k).is_none_or(|(_, _, _, s)| s != seq))
            .map_err(db)?;
        true
    };
    txn.commit().map_err(db)?;
    Ok(known)
}

/// The chains of `id` (optionally of one source), ordered by (source, tenant), each oldest
/// first.
pub fn chains(
    database: &redb::Database,
    id: &str,
    source: Option<&str>,
) -> Result<Vec<Chain>, HistoryError> {
    let txn = database.begin_read().map_err(db)?;
    let Some(rows) = open_optional(&txn, ROWS)? else {
        return Ok(Vec::new());
    };
    let gens = open_optional(&txn, GENERATIONS)?;
    let mut versions: HashMap<GenerationId, String> = HashMap::new();
    let prefix = id_prefix(id);
    let mut out: BTreeMap<(String, Option<String>), Vec<HistoryEntry>> = BTreeMap::new();
    for item in rows.range(prefix.as_slice()..).map_err(db)? {
        let (k, v) = item.map_err(db)?;
        if !k.value().starts_with(&prefix) {
            break;
        }
        let Some((_, src, tenant, seq)) = parse_key(k.value()) else {
            return Err(HistoryError::Damaged(format!("row key of {id}")));
        };
        if source.is_some_and(|s| s != src) {
            continue;
        }
        let (_, value): (u16, RowValue) = envelope::open(ROW_KIND, 1, v.value())
            .map_err(|e| HistoryError::Damaged(format!("row of {id}: {e}")))?;
        let version = match versions.entry(value.generation) {
            std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let version = match &gens {
                    Some(t) => match t.get(&value.generation.0).map_err(db)? {
                        Some(g) => decode_gen(g.value())?.version,
                        None => String::new(),
                    },
                    None => String::new(),
                };
                e.insert(version).clone()
            }
        };
        out.entry((src, tenant)).or_default().push(HistoryEntry {
            seq,
            generation: value.generation,
            version,
            change: value.change,
            hash: value.hash,
            hashes: value.hashes,
        });
    }
    Ok(out
        .into_iter()
        .map(|((source, tenant), mut entries)| {
            entries.sort_by_key(|e| e.seq);
            Chain {
                source,
                id: id.to_string(),
                tenant,
                entries,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, tenant: Option<&str>, kind: ChangeKind, h: u8) -> RowChange {
        RowChange {
            source: "osv".into(),
            id: id.into(),
            tenant: tenant.map(str::to_string),
            change: kind,
            hash: (kind != ChangeKind::Withdrawn).then_some(RowHash([h; 32])),
            previous: None,
            hashes: Vec::new(),
            previous_hashes: Vec::new(),
        }
    }

    fn open_db(dir: &std::path::Path) -> redb::Database {
        redb::Database::create(dir.join("h.redb")).unwrap()
    }

    fn put(db: &redb::Database, g: u8, version: &str, rows: &[RowChange]) -> bool {
        record(db, &GenerationId([g; 32]), version, None, &mut |rec| {
            rows.iter().all(|r| rec(r).is_ok())
        })
        .unwrap()
    }

    #[test]
    fn chains_follow_generation_order_and_a_known_generation_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        assert!(put(
            &db,
            1,
            "1.0",
            &[
                change("A", None, ChangeKind::Added, 1),
                change("AB", None, ChangeKind::Added, 9)
            ]
        ));
        assert!(put(
            &db,
            2,
            "1.1",
            &[
                change("A", None, ChangeKind::Modified, 2),
                change("A", Some("t"), ChangeKind::Added, 5)
            ]
        ));
        assert!(
            !put(&db, 1, "1.0", &[change("A", None, ChangeKind::Modified, 7)]),
            "known"
        );
        assert!(put(
            &db,
            3,
            "1.2",
            &[change("A", None, ChangeKind::Withdrawn, 0)]
        ));
        let c = chains(&db, "A", None).unwrap();
        assert_eq!(c.len(), 2, "default tenant and t");
        assert_eq!(c[0].tenant, None);
        let seqs: Vec<(u64, &str, ChangeKind)> = c[0]
            .entries
            .iter()
            .map(|e| (e.seq, e.version.as_str(), e.change))
            .collect();
        assert_eq!(
            seqs,
            vec![
                (1, "1.0", ChangeKind::Added),
                (2, "1.1", ChangeKind::Modified),
                (3, "1.2", ChangeKind::Withdrawn)
            ]
        );
        assert_eq!(c[0].entries[1].hash, Some(RowHash([2; 32])));
        assert_eq!(c[1].tenant.as_deref(), Some("t"));
        assert!(chains(&db, "A", Some("ghsa")).unwrap().is_empty());
        assert!(chains(&db, "", None).unwrap().is_empty());
        assert_eq!(
            chains(&db, "AB", None).unwrap().len(),
            1,
            "AB is not a row of A"
        );
        assert_eq!(
            generation(&db, &GenerationId([2; 32]))
                .unwrap()
                .unwrap()
                .seq,
            2
        );
    }

    #[test]
    fn a_failed_producer_records_nothing_and_forget_removes_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let r = record(&db, &GenerationId([1; 32]), "1", None, &mut |rec| {
            rec(&change("A", None, ChangeKind::Added, 1)).unwrap();
            false
        });
        assert!(matches!(r, Err(HistoryError::Aborted)));
        assert!(generation(&db, &GenerationId([1; 32])).unwrap().is_none());
        assert!(chains(&db, "A", None).unwrap().is_empty());
        assert!(put(&db, 1, "1", &[change("A", None, ChangeKind::Added, 1)]));
        assert!(put(
            &db,
            2,
            "2",
            &[change("A", None, ChangeKind::Modified, 2)]
        ));
        assert!(forget(&db, &GenerationId([2; 32])).unwrap());
        assert!(!forget(&db, &GenerationId([2; 32])).unwrap());
        let c = chains(&db, "A", None).unwrap();
        assert_eq!(c[0].entries.len(), 1);
        assert!(put(
            &db,
            3,
            "3",
            &[change("A", None, ChangeKind::Modified, 3)]
        ));
        assert_eq!(chains(&db, "A", None).unwrap()[0].entries[1].seq, 2);
    }

    #[test]
    fn keys_round_trip() {
        for (id, src, t, seq) in [("A", "osv", None, 1u64), ("", "", Some("x\0y"), u64::MAX)] {
            let k = row_key(id, src, t, seq);
            assert_eq!(
                parse_key(&k),
                Some((id.to_string(), src.to_string(), t.map(str::to_string), seq))
            );
        }
        assert_eq!(parse_key(b"\0\0\0\x09A"), None);
    }
}
