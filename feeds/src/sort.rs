//! External sort of one feed's index rows in bounded memory.
//!
//! Rows are kept in memory until their estimated size passes the budget; then they are
//! sorted and spilled as a run to an anonymous temporary file, and a k-way merge of the
//! runs (plus what is still in memory) yields every row in [`FeedRow::sort_key`] order.
//!
//! A run is a private binary form, written and read only here: per row the id, then the
//! tenant and `modified` (each a `u32` little-endian length, `0` for absent and `n + 1` for
//! `n` bytes, then the bytes) and the 32 hash bytes. Reading it back costs no parsing
//! and no hex, which is what makes the merge cheap.
//!
//! Invariants: memory holds at most one budget of rows plus one buffered reader per run;
//! the output order is total and deterministic (rows with equal keys are equal rows: the
//! key includes the hash of the whole row), so it never depends on the budget or on where
//! runs were cut; temporary files vanish when the sorter is dropped, on error too.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use super::index::{FeedRow, RowHash};

/// The default memory budget for one feed's rows.
pub const DEFAULT_SORT_BUDGET: usize = 64 << 20;

/// Estimated bytes a row takes in memory (struct, strings, allocator overhead).
fn row_cost(r: &FeedRow) -> usize {
    std::mem::size_of::<FeedRow>()
        + r.id.len()
        + 16
        + r.tenant.as_ref().map_or(0, |t| t.len() + 16)
        + r.modified.as_ref().map_or(0, |m| m.len() + 16)
}

/// Collects rows; spills sorted runs past the budget.
pub struct RowSorter {
    budget: usize,
    temp_dir: Option<PathBuf>,
    mem: Vec<FeedRow>,
    mem_bytes: usize,
    runs: Vec<File>,
    rows: u64,
}

impl RowSorter {
    /// A sorter holding at most about `budget` bytes of rows; runs go to `temp_dir` (the
    /// system's temporary directory if `None`).
    pub fn new(budget: usize, temp_dir: Option<PathBuf>) -> Self {
        RowSorter {
            budget: budget.max(1),
            temp_dir,
            mem: Vec::new(),
            mem_bytes: 0,
            runs: Vec::new(),
            rows: 0,
        }
    }

    /// Add a row.
    pub fn push(&mut self, row: FeedRow) -> io::Result<()> {
        self.mem_bytes += row_cost(&row);
        self.mem.push(row);
        self.rows += 1;
        if self.mem_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Runs spilled to disk so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        self.mem.sort_unstable_by(FeedRow::cmp_key);
        let file = match &self.temp_dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for r in self.mem.drain(..) {
            write_run_row(&mut w, &r)?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.runs.push(file);
        self.mem_bytes = 0;
        self.mem.shrink_to(self.mem.capacity() / 2);
        Ok(())
    }

    /// Every row, sorted.
    pub fn finish(mut self) -> io::Result<SortedRows> {
        self.mem.sort_unstable_by(FeedRow::cmp_key);
        let mut sources: Vec<Source> = Vec::with_capacity(self.runs.len() + 1);
        for f in self.runs {
            sources.push(Source::Run(BufReader::with_capacity(256 << 10, f)));
        }
        sources.push(Source::Mem(std::mem::take(&mut self.mem).into_iter()));
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(r) = s.next_row()? {
                heap.push(Reverse(MergeHead { row: r, cursor: i }));
            }
        }
        Ok(SortedRows { sources, heap })
    }
}

fn write_field(w: &mut impl Write, field: Option<&str>) -> io::Result<()> {
    match field {
        None => w.write_all(&0u32.to_le_bytes()),
        Some(s) => {
            let n = u32::try_from(s.len() + 1).map_err(io::Error::other)?;
            w.write_all(&n.to_le_bytes())?;
            w.write_all(s.as_bytes())
        }
    }
}

fn write_run_row(w: &mut impl Write, r: &FeedRow) -> io::Result<()> {
    write_field(w, Some(&r.id))?;
    write_field(w, r.tenant.as_deref())?;
    write_field(w, r.modified.as_deref())?;
    w.write_all(&r.hash.0)
}

/// A field of a run row; `Ok(None)` when absent. A run is our own file, but a damaged
/// one must give an error, not a panic or a huge allocation.
fn read_field(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_RUN_FIELD {
        return Err(io::Error::other("sort run damaged: field too long"));
    }
    let mut bytes = vec![0u8; n - 1];
    r.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map(Some).map_err(io::Error::other)
}

/// Longest field a run holds (the indexer's limits are far below).
const MAX_RUN_FIELD: usize = 1 << 20;

enum Source {
    Run(BufReader<File>),
    Mem(std::vec::IntoIter<FeedRow>),
}

impl Source {
    fn next_row(&mut self) -> io::Result<Option<FeedRow>> {
        match self {
            Source::Mem(it) => Ok(it.next()),
            Source::Run(r) => {
                if r.fill_buf()?.is_empty() {
                    return Ok(None);
                }
                let id = read_field(r)?
                    .ok_or_else(|| io::Error::other("sort run damaged: row without id"))?;
                let tenant = read_field(r)?;
                let modified = read_field(r)?;
                let mut hash = [0u8; 32];
                r.read_exact(&mut hash)?;
                Ok(Some(FeedRow {
                    id,
                    hash: RowHash(hash),
                    tenant,
                    modified,
                }))
            }
        }
    }
}

/// An entry of a k-way merge of sorted row streams: the next row of stream `cursor`,
/// ordered by the row's sort key, then by stream (so equal rows keep stream order). Put
/// in a `BinaryHeap` under `Reverse` for the smallest first; the index diff merges a
/// source's feeds with it too.
pub(crate) struct MergeHead {
    pub(crate) row: FeedRow,
    pub(crate) cursor: usize,
}

impl PartialEq for MergeHead {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MergeHead {}
impl PartialOrd for MergeHead {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MergeHead {
    fn cmp(&self, other: &Self) -> Ordering {
        self.row
            .cmp_key(&other.row)
            .then(self.cursor.cmp(&other.cursor))
    }
}

/// The merged, sorted rows of a [`RowSorter`].
pub struct SortedRows {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<MergeHead>>,
}

impl Iterator for SortedRows {
    type Item = io::Result<FeedRow>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse(MergeHead { row, cursor: i }) = self.heap.pop()?;
        match self.sources[i].next_row() {
            Ok(Some(next)) => self.heap.push(Reverse(MergeHead {
                row: next,
                cursor: i,
            })),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64) -> FeedRow {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        FeedRow {
            id: format!("ID-{}", x % 997),
            hash: RowHash([(x >> 8) as u8; 32]),
            tenant: x.is_multiple_of(3).then(|| format!("t{}", x % 5)),
            modified: Some(format!("2025-01-{:02}", x % 28 + 1)),
        }
    }

    #[test]
    fn a_damaged_run_is_an_error_not_a_row() {
        let mut bytes = Vec::new();
        for i in 0..3 {
            write_run_row(&mut bytes, &row(i)).unwrap();
        }
        let read = |bytes: &[u8]| -> io::Result<Vec<FeedRow>> {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(bytes).unwrap();
            f.rewind().unwrap();
            let mut src = Source::Run(BufReader::new(f));
            let mut rows = Vec::new();
            while let Some(r) = src.next_row()? {
                rows.push(r);
            }
            Ok(rows)
        };
        assert_eq!(read(&bytes).unwrap(), (0..3).map(row).collect::<Vec<_>>());
        for cut in [1, 5, bytes.len() - 1] {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&huge).is_err(), "absurd length");
    }

    #[test]
    fn spilled_and_in_memory_sorts_agree() {
        let rows: Vec<FeedRow> = (0..5000).map(row).collect();
        let sorted = |budget: usize| {
            let mut s = RowSorter::new(budget, None);
            for r in &rows {
                s.push(r.clone()).unwrap();
            }
            let runs = s.runs();
            let out: Vec<FeedRow> = s.finish().unwrap().map(Result::unwrap).collect();
            (out, runs)
        };
        let (a, runs_a) = sorted(usize::MAX);
        let (b, runs_b) = sorted(4096);
        assert_eq!(runs_a, 0);
        assert!(runs_b > 10, "{runs_b} runs");
        assert_eq!(a.len(), 5000);
        assert_eq!(a, b);
        assert!(
            a.windows(2)
                .all(|w| w[0].cmp_key(&w[1]) != Ordering::Greater)
        );
    }
}
