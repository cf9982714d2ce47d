//! `ouk delta show`: what a delta bundle says about itself (header, summary, the feed rows
//! it changes), read from the stream without unpacking anything and without a signature
//! check, so every size is bounded by what the header declares.

use std::io::Read;
use std::path::Path;

use ouk_delta::format::{DeltaHeader, DeltaSummary};
use serde::Serialize;

use super::{
    FEED_CHANGES_PATH, HEADER_PATH, JWS_PATH, MAX_FEED_CHANGES, MAX_HEADER, MAX_PAYLOAD,
    PAYLOAD_PATH, parse_header,
};
use crate::bundle::{BundleReader, ReadError, ReadLimits};
use crate::error::{KitError, Result};
use crate::split::BundleInput;

/// The feed rows a delta changes, as `delta make` recorded them.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaFeeds {
    /// Per source: rows added, modified, withdrawn.
    pub counts: crate::feeds::diff::DiffCounts,
    /// Every changed row, in (source, id, tenant) order.
    pub rows: Vec<crate::feeds::diff::RowChange>,
}

/// What `delta show` can say of the feed rows a delta changes.
#[derive(Debug, Clone)]
pub enum ShownFeeds {
    /// The rows, checked against the delta's header (or, in deltas made before they were
    /// kept beside the bundle, read from it).
    Rows(DeltaFeeds),
    /// None to show, and why.
    Unrecorded(String),
}

/// The feed changes read from `input` (named `name` in messages), which must be for
/// `header`'s baseline and target.
pub(crate) fn read_feed_changes(
    input: impl std::io::BufRead,
    name: &str,
    header: &DeltaHeader,
) -> Result<DeltaFeeds> {
    use crate::feeds::changes::ChangesReader;
    use crate::feeds::host::FeedsError;
    let err = |e| KitError::from(FeedsError::from(e));
    let (h, mut reader) = ChangesReader::new(input, name).map_err(err)?;
    if h.generation != header.target.generation || h.baseline != Some(header.baseline.generation) {
        return Err(KitError::Validation(format!(
            "{FEED_CHANGES_PATH} is for another baseline or target than {HEADER_PATH}"
        )));
    }
    let mut feeds = DeltaFeeds {
        counts: Default::default(),
        rows: Vec::new(),
    };
    while let Some(c) = reader.next_change().map_err(err)? {
        feeds
            .counts
            .entry(c.source.clone())
            .or_default()
            .count(c.change);
        feeds.rows.push(c);
    }
    Ok(feeds)
}

/// `ouk delta show`: the header, its summary, and the feed rows the delta changes: from
/// the bundle when an older ouk put them there, else from the file `delta make` keeps
/// beside it, checked against the digest the header declares ([`super::feed_changes`]).
///
/// Reads only what it shows. `delta show` runs on files nobody has verified yet (it checks
/// no signature), so nothing is unpacked to disk: the header and the feed changes are read
/// from the stream, and the payload is passed over in it, never written nor held, at most
/// the size the header declares (a 4 MB file declaring a 4 GiB payload used to write 4 GiB
/// into the temporary directory).
pub fn show(bundle: &Path) -> Result<(DeltaHeader, DeltaSummary, ShownFeeds)> {
    show_as(bundle, bundle)
}

/// [`show`] of the delta read from `bundle`, whose kept feed changes are beside `named`
/// (`kit inspect` reads a private copy of the delta named by its argument).
pub fn show_as(bundle: &Path, named: &Path) -> Result<(DeltaHeader, DeltaSummary, ShownFeeds)> {
    if !bundle.is_file() {
        return Err(KitError::NotFound(bundle.to_path_buf()));
    }
    let header: std::cell::RefCell<Option<DeltaHeader>> = std::cell::RefCell::new(None);
    // A payload before the header is let through the reader's size check (it is not read)
    // so that the refusal below can say what is wrong.
    let lookup = |p: &str| match p {
        HEADER_PATH => Some(MAX_HEADER),
        PAYLOAD_PATH => Some(
            header
                .borrow()
                .as_ref()
                .map_or(u64::MAX, |h| h.payload_size),
        ),
        JWS_PATH => Some(64 << 10),
        FEED_CHANGES_PATH => Some(MAX_FEED_CHANGES),
        _ => None,
    };
    let limits = ReadLimits {
        max_total_bytes: MAX_HEADER + MAX_PAYLOAD + MAX_FEED_CHANGES + (1 << 20),
        max_entries: 16,
    };
    let input = BundleInput::File(bundle.to_path_buf());
    let file = input.reader()?;
    let mut reader = BundleReader::new(file, lookup, limits);
    let mut payload_seen = false;
    let mut feeds = None;
    while let Some(mut entry) = reader.next_entry()? {
        if entry.kind == crate::bundle::EntryKind::Directory {
            continue;
        }
        match entry.path.as_str() {
            HEADER_PATH => {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| ReadError::from_io(e, 0, Some(HEADER_PATH)))?;
                *header.borrow_mut() = Some(parse_header(&bytes)?);
            }
            PAYLOAD_PATH => {
                let declared = header.borrow().as_ref().map(|h| h.payload_size);
                match declared {
                    None => {
                        return Err(KitError::Validation(format!(
                            "{PAYLOAD_PATH} comes before {HEADER_PATH}: not a delta ouk made"
                        )));
                    }
                    Some(n) if n != entry.size => {
                        return Err(KitError::Validation(format!(
                            "{PAYLOAD_PATH} has {} bytes, the header says {n}",
                            entry.size
                        )));
                    }
                    Some(_) => payload_seen = true,
                }
            }
            FEED_CHANGES_PATH => {
                let h = header.borrow();
                let h = h.as_ref().ok_or_else(|| {
                    KitError::Validation(format!(
                        "{FEED_CHANGES_PATH} comes before {HEADER_PATH}: not a delta ouk made"
                    ))
                })?;
                feeds = Some(read_feed_changes(
                    std::io::BufReader::new(&mut entry),
                    FEED_CHANGES_PATH,
                    h,
                )?);
            }
            // The JWS is not shown; the reader skips what is not read.
            _ => {}
        }
    }
    drop(reader);
    let header = header.into_inner();
    let (Some(header), true) = (header, payload_seen) else {
        return Err(KitError::Validation(format!(
            "{}: not a delta (no {HEADER_PATH} and {PAYLOAD_PATH})",
            bundle.display()
        )));
    };
    let feeds = match feeds {
        Some(rows) => ShownFeeds::Rows(rows),
        None => super::feed_changes::kept_feed_changes(named, &header)?,
    };
    let summary = header.summary();
    Ok((header, summary, feeds))
}
