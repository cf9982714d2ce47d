//! The trust store: `ROOT/trust/<kid>.pub`, PKIX PEM public keys an importer accepts.
//!
//! Keys are named by their RFC 7638 thumbprint, so adding the same key twice is a no-op
//! and `trust remove KID` names exactly one key. Removing a key revokes it for every later
//! import: nothing caches trust.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::write_atomic;
use crate::error::{IoContext, KitError, Result};
use crate::sign::VerifyingKey;

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

/// Add the PEM public key at `pem_path`; returns its kid.
pub fn add(root: &Path, pem_path: &Path) -> Result<TrustedKey> {
    if !pem_path.is_file() {
        return Err(KitError::NotFound(pem_path.to_path_buf()));
    }
    let key = VerifyingKey::from_pem_file(pem_path)?;
    let kid = key.kid();
    let path = trust_dir(root).join(format!("{kid}.pub"));
    write_atomic(&path, key.to_pem()?.as_bytes())?;
    Ok(TrustedKey { kid, path })
}

/// Every trusted key, sorted by kid. A file that does not parse is an error, not skipped:
/// a damaged trust store must not silently trust less (or more).
pub fn list(root: &Path) -> Result<Vec<(TrustedKey, VerifyingKey)>> {
    let dir = trust_dir(root);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(KitError::Io {
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
        let key = VerifyingKey::from_pem_file(&path)?;
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
    Err(KitError::Usage(format!(
        "no trusted key with kid {kid:?} (see `ouk trust list`)"
    )))
}
