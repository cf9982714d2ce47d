//! The feed changes `delta make` keeps beside a delta (`<bundle>.feeds-changes.jsonl`),
//! for `ouk delta show` on the connected site: the feed rows the delta adds, modifies and
//! withdraws. They are not in the bundle (the host derives its own from the generation it
//! has and the one the delta builds), and the file is not signed.
//!
//! Invariants:
//! - the delta's header (covered by the delta's signature) declares the file: its rows,
//!   SHA-256 and size ([`FeedChangesRef`]). A kept file is read once, hashed as it is read,
//!   and its rows are used only when its size and digest are the declared ones; any other
//!   file is refused as a digest failure, never shown (a tampered or stale file is not a
//!   silent wrong answer);
//! - with no row changed nothing is kept: the header's `rows: 0` says it;
//! - a file beside a delta whose header declares none (made by an older ouk) cannot be
//!   checked and is not read.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use ouk_delta::format::{DeltaHeader, FeedChangesRef};
use ouk_store::FileDigest;

use super::show::{DeltaFeeds, ShownFeeds, read_feed_changes};
use crate::error::{IoContext, KitError, Result};
use crate::read_once::HashingReader;

/// Suffix of the feed changes `delta make` keeps beside the delta bundle.
pub const FEED_CHANGES_SUFFIX: &str = ".feeds-changes.jsonl";

/// The feed changes beside `bundle` (`<bundle>.feeds-changes.jsonl`).
pub fn kept_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_os_string();
    name.push(FEED_CHANGES_SUFFIX);
    PathBuf::from(name)
}

/// Keep the feed changes `delta make` computed (`changes`, `None` when there are none to
/// keep) beside the delta `bundle`; a file an earlier delta of the same name left there
/// is removed.
pub(crate) fn keep_feed_changes(changes: Option<&Path>, bundle: &Path) -> Result<()> {
    let to = kept_path(bundle);
    let Some(changes) = changes else {
        return match fs::remove_file(&to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KitError::Io {
                context: format!("remove {}", to.display()),
                source: e,
            }),
            _ => Ok(()),
        };
    };
    // Streamed: a day's changes may be many megabytes.
    let mut from = File::open(changes).ctx(|| format!("read {}", changes.display()))?;
    let mut out = ouk_store::fsutil::AtomicFile::create(&to)?;
    std::io::copy(&mut from, &mut out).ctx(|| format!("write {}", to.display()))?;
    out.commit()?;
    Ok(())
}

/// The feed changes of the delta whose header is `header`, kept beside `beside` (the
/// name the delta was given: `delta show`'s argument). Refuses, as a digest failure, a
/// kept file that is not the one the header declares.
pub(crate) fn kept_feed_changes(beside: &Path, header: &DeltaHeader) -> Result<ShownFeeds> {
    let path = kept_path(beside);
    let Some(declared) = &header.feed_changes else {
        if path.exists() {
            tracing::warn!(
                "{}: not read: this delta's header declares no feed changes to check it \
                 against (made by an older ouk)",
                path.display()
            );
        }
        return Ok(ShownFeeds::Unrecorded(
            "this delta records none (its kits have no feeds, or an older ouk made it)".into(),
        ));
    };
    let (Some(expected), true) = (declared.sha256, declared.rows != 0) else {
        return Ok(ShownFeeds::Rows(DeltaFeeds::default()));
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ShownFeeds::Unrecorded(format!(
                "{} row(s) changed; their list is kept beside the delta where it was made \
                 ({}), and is not here",
                declared.rows,
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )));
        }
        Err(e) => {
            return Err(KitError::Io {
                context: format!("open {}", path.display()),
                source: e,
            });
        }
    };
    read_verified(file, &path, declared, expected, header)
}

/// Read the kept file once: parse while hashing, then use the rows only when the bytes
/// are the declared ones. A parse failure of a file whose bytes are not the declared ones
/// is reported as the digest failure it is.
fn read_verified(
    file: File,
    path: &Path,
    declared: &FeedChangesRef,
    expected: FileDigest,
    header: &DeltaHeader,
) -> Result<ShownFeeds> {
    let name = path.display().to_string();
    // One byte past the declared size is enough to see that it is not the declared file.
    let mut hashing = HashingReader::new(file.take(declared.size.saturating_add(1)));
    let parsed = read_feed_changes(std::io::BufReader::new(&mut hashing), &name, header);
    // What the parser left unread is hashed too (a parse error stops early).
    let (sha, read) = hashing.finish().ctx(|| format!("read {name}"))?;
    let actual = FileDigest(sha);
    if read != declared.size || actual != expected {
        return Err(KitError::DigestMismatch {
            what: format!(
                "{name} ({} bytes; the delta's header declares {}): not this delta's feed \
                 changes (tampered, or left by another delta); remove it or make the delta again",
                read, declared.size
            ),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    let feeds = parsed?;
    let rows = feeds.rows.len() as u64;
    if rows != declared.rows {
        // Only a make-side bug gets here: the bytes are the declared ones.
        return Err(KitError::Validation(format!(
            "{name}: {rows} rows, the delta's header declares {}",
            declared.rows
        )));
    }
    Ok(ShownFeeds::Rows(feeds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::changes::{ChangesHeader, ChangesLines};
    use crate::feeds::diff::{ChangeKind, RowChange};
    use ouk_delta::GenerationId;
    use ouk_delta::format::GenerationRef;

    fn header(declared: Option<FeedChangesRef>) -> DeltaHeader {
        let gen_ref = |n| GenerationRef {
            generation: GenerationId([n; 32]),
            version: None,
        };
        DeltaHeader {
            feed_changes: declared,
            ..DeltaHeader::new(gen_ref(0), gen_ref(1))
        }
    }

    /// The changes file of `header` with rows for `ids`.
    fn changes(h: &DeltaHeader, ids: &[&str]) -> Vec<u8> {
        let mut lines = ChangesLines::new(
            Vec::new(),
            &ChangesHeader::new(h.target.generation, Some(h.baseline.generation)),
        )
        .unwrap();
        for id in ids {
            lines
                .push(&RowChange {
                    source: "osv".into(),
                    id: (*id).into(),
                    tenant: None,
                    change: ChangeKind::Added,
                    hash: None,
                    previous: None,
                    hashes: Vec::new(),
                    previous_hashes: Vec::new(),
                })
                .unwrap();
        }
        lines.finish().unwrap()
    }

    /// `kept_feed_changes` of a delta whose header declares `declared_ids`' file, with
    /// `on_disk` kept beside it.
    fn shown(declared_ids: &[&str], on_disk: Option<&[u8]>) -> Result<ShownFeeds> {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("x.delta.tgz");
        let bytes = changes(&header(None), declared_ids);
        let h = header(Some(FeedChangesRef {
            rows: declared_ids.len() as u64,
            sha256: (!declared_ids.is_empty()).then(|| FileDigest::of(&bytes)),
            size: if declared_ids.is_empty() {
                0
            } else {
                bytes.len() as u64
            },
        }));
        if let Some(b) = on_disk {
            fs::write(kept_path(&bundle), b).unwrap();
        }
        kept_feed_changes(&bundle, &h)
    }

    #[test]
    fn the_declared_file_is_shown() {
        let bytes = changes(&header(None), &["A-1", "A-2"]);
        let ShownFeeds::Rows(f) = shown(&["A-1", "A-2"], Some(&bytes)).unwrap() else {
            panic!("rows expected")
        };
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.counts["osv"].added, 2);
    }

    #[test]
    fn another_well_formed_file_is_a_digest_failure() {
        for other in [
            changes(&header(None), &["A-1", "A-3"]),
            changes(&header(None), &["A-1"]),
            changes(&header(None), &["A-1", "A-2", "A-3"]),
            b"not json at all".to_vec(),
        ] {
            let e = shown(&["A-1", "A-2"], Some(&other)).unwrap_err();
            assert!(matches!(e, KitError::DigestMismatch { .. }), "{e}");
            assert_eq!(e.class(), ouk_store::ErrorClass::Digest);
        }
    }

    #[test]
    fn a_missing_file_is_said_not_here_and_no_row_needs_no_file() {
        match shown(&["A-1"], None).unwrap() {
            ShownFeeds::Unrecorded(why) => assert!(why.contains("1 row(s)"), "{why}"),
            ShownFeeds::Rows(_) => panic!("nothing to show"),
        }
        // Declared empty: shown empty, whatever lies beside it.
        let ShownFeeds::Rows(f) = shown(&[], Some(b"anything")).unwrap() else {
            panic!("no row changed")
        };
        assert!(f.rows.is_empty());
    }

    #[test]
    fn a_file_beside_a_delta_that_declares_none_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("x.delta.tgz");
        let h = header(None);
        fs::write(kept_path(&bundle), changes(&h, &["A-1"])).unwrap();
        assert!(matches!(
            kept_feed_changes(&bundle, &h).unwrap(),
            ShownFeeds::Unrecorded(_)
        ));
    }
}
