//! The flat trust store: `ROOT/trust/<kid>.pub`, PKIX PEM public keys an importer accepts
//! while the root has no signed trust document (and the source of the local document
//! migrated from them, ouk-kit's `trust_root`).
//!
//! Keys are named by their RFC 7638 thumbprint, so adding the same key twice is a no-op
//! and `trust remove KID` names exactly one key. Removing a key revokes it for every later
//! import: nothing caches trust.
//!
//! Invariants: a file that does not parse is an error, never skipped (a damaged trust store
//! must not silently trust less, or more); a key is written atomically, in the one PEM form
//! ouk writes (`ouk_trust::PublicKey::to_pem`), whatever form it was given in.

use std::fs;
use std::path::{Path, PathBuf};

use ouk_store::ErrorClass;
use ouk_store::fsutil::{FsError, IoContext, write_atomic};
use ouk_trust::{PemError, PublicKey};
use serde::Serialize;

/// Why the trust store could not be read or changed. The messages are the ones the kit
/// crate gave before the store moved here (a key fault reads `key: ...`).
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// A file or directory of the store could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file to add does not exist.
    #[error("{0}: not found")]
    NotFound(PathBuf),
    /// A key file could not be read.
    #[error("key: {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not text.
    #[error("key: {}: not a text (UTF-8) PEM file", .0.display())]
    KeyNotText(PathBuf),
    /// A key file's PEM is not a P-256 public key.
    #[error("key: {0}")]
    Key(#[from] PemError),
    /// No key of the store has this kid.
    #[error("no trusted key with kid {0:?} (see `ouk trust list`)")]
    NoSuchKey(String),
}

impl TrustStoreError {
    /// A key that does not read is a signature failure (as every key fault is); a missing
    /// input is not found; a kid the store lacks is "other" (a bad argument).
    pub fn class(&self) -> ErrorClass {
        match self {
            TrustStoreError::Io { source, .. } => ErrorClass::of_io(source),
            TrustStoreError::NotFound(_) => ErrorClass::NotFound,
            TrustStoreError::KeyFile { .. }
            | TrustStoreError::KeyNotText(_)
            | TrustStoreError::Key(_) => ErrorClass::Signature,
            TrustStoreError::NoSuchKey(_) => ErrorClass::Other,
        }
    }
}

/// A failed write keeps its context and its `io::Error` (a full disk stays "no space").
impl From<FsError> for TrustStoreError {
    fn from(e: FsError) -> Self {
        TrustStoreError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

type Result<T, E = TrustStoreError> = std::result::Result<T, E>;

/// A trusted key.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Where it is stored.
    pub path: PathBuf,
}

/// `ROOT/trust`.
pub fn trust_dir(root: &Path) -> PathBuf {
    root.join("trust")
}

/// The PKIX PEM public key in the file at `path`.
pub fn read_pem_file(path: &Path) -> Result<PublicKey> {
    let bytes = fs::read(path).map_err(|source| TrustStoreError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| TrustStoreError::KeyNotText(path.into()))?;
    Ok(PublicKey::from_pem(&text)?)
}

/// Add the PEM public key at `pem_path`; returns its kid.
pub fn add(root: &Path, pem_path: &Path) -> Result<TrustedKey> {
    if !pem_path.is_file() {
        return Err(TrustStoreError::NotFound(pem_path.to_path_buf()));
    }
    let key = read_pem_file(pem_path)?;
    let kid = key.kid();
    let path = trust_dir(root).join(format!("{kid}.pub"));
    write_atomic(&path, key.to_pem()?.as_bytes())?;
    Ok(TrustedKey { kid, path })
}

/// Every trusted key, sorted by kid. A file that does not parse is an error, not skipped:
/// a damaged trust store must not silently trust less (or more).
pub fn list(root: &Path) -> Result<Vec<(TrustedKey, PublicKey)>> {
    let dir = trust_dir(root);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(TrustStoreError::Io {
                context: format!("list {}", dir.display()),
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pub") {
            continue;
        }
        let key = read_pem_file(&path)?;
        out.push((
            TrustedKey {
                kid: key.kid(),
                path,
            },
            key,
        ));
    }
    out.sort_by(|a, b| a.0.kid.cmp(&b.0.kid));
    Ok(out)
}

/// Remove the key `kid`.
pub fn remove(root: &Path, kid: &str) -> Result<TrustedKey> {
    for (t, _) in list(root)? {
        if t.kid == kid {
            fs::remove_file(&t.path).ctx(|| format!("remove {}", t.path.display()))?;
            return Ok(t);
        }
    }
    Err(TrustStoreError::NoSuchKey(kid.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_pub() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/cosign/fixture.pub")
    }

    #[test]
    fn add_list_remove_round_trip() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(list(root.path()).expect("empty").is_empty());
        let added = add(root.path(), &fixture_pub()).expect("add");
        assert_eq!(
            added.path,
            trust_dir(root.path()).join(format!("{}.pub", added.kid))
        );
        // Stored in the one form ouk writes (cosign's bytes for cosign's key).
        let stored = fs::read(&added.path).expect("stored");
        assert_eq!(stored, fs::read(fixture_pub()).expect("fixture"));
        // Adding it again is a no-op.
        add(root.path(), &fixture_pub()).expect("add again");
        let keys = list(root.path()).expect("list");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0.kid, added.kid);
        assert_eq!(keys[0].1.kid(), added.kid);
        let gone = remove(root.path(), &added.kid).expect("remove");
        assert_eq!(gone.kid, added.kid);
        assert!(list(root.path()).expect("empty again").is_empty());
    }

    #[test]
    fn faults_keep_their_messages_and_classes() {
        let root = tempfile::tempdir().expect("tempdir");
        let missing = root.path().join("nope.pub");
        let e = add(root.path(), &missing).expect_err("missing");
        assert_eq!(e.to_string(), format!("{}: not found", missing.display()));
        assert_eq!(e.class(), ErrorClass::NotFound);

        let e = remove(root.path(), "abc").expect_err("no such kid");
        assert_eq!(
            e.to_string(),
            "no trusted key with kid \"abc\" (see `ouk trust list`)"
        );
        assert_eq!(e.class(), ErrorClass::Other);

        // A damaged file in the store is an error, never skipped.
        fs::create_dir_all(trust_dir(root.path())).expect("mkdir");
        let damaged = trust_dir(root.path()).join("x.pub");
        fs::write(&damaged, "not a key").expect("write");
        let e = list(root.path()).expect_err("damaged");
        assert_eq!(
            e.to_string(),
            "key: no PEM block found (expected -----BEGIN ...-----)"
        );
        assert_eq!(e.class(), ErrorClass::Signature);
        fs::write(&damaged, [0xff, 0xfe]).expect("write");
        let e = list(root.path()).expect_err("not text");
        assert_eq!(
            e.to_string(),
            format!("key: {}: not a text (UTF-8) PEM file", damaged.display())
        );
    }
}
