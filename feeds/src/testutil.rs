//! Helpers for the feed modules' unit tests: rows and whole indexes made from literals.

use super::index::{FeedHeader, FeedIndexWriter, FeedRow, RowHash};

/// A row whose hash is 32 copies of `h`.
pub(crate) fn row(id: &str, tenant: Option<&str>, h: u8) -> FeedRow {
    FeedRow {
        id: id.into(),
        hash: RowHash([h; 32]),
        tenant: tenant.map(str::to_string),
        modified: None,
    }
}

/// The index of `feeds` (path, source, rows), sorted as the format requires: feeds by path
/// (a repeated path keeps its first entry), rows by their sort key.
pub(crate) fn index_bytes<P: AsRef<str>, S: AsRef<str>>(feeds: &[(P, S, Vec<FeedRow>)]) -> Vec<u8> {
    let mut order: Vec<&(P, S, Vec<FeedRow>)> = feeds.iter().collect();
    order.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    order.dedup_by(|a, b| a.0.as_ref() == b.0.as_ref());
    let mut w = FeedIndexWriter::new(Vec::new()).expect("format line");
    for (path, source, rows) in order {
        let mut rows = rows.clone();
        rows.sort_by(FeedRow::cmp_key);
        w.begin_feed(&FeedHeader {
            feed: path.as_ref().into(),
            source: source.as_ref().into(),
            rows: rows.len() as u64,
            skipped: 0,
        })
        .expect("feed header");
        for r in &rows {
            w.push_row(r).expect("row");
        }
    }
    w.finish().expect("finish")
}
