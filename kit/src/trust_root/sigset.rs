//! What a kit or delta carries for trust, beside its bundle, and how an import uses it:
//!
//! - `<bundle>.sigs.json`: the signature set, `{"signatures":[{"keyid","sig"}]}`, each `sig`
//!   a cosign blob signature over the bundle (the same kind as `<bundle>.sig`, which stays a
//!   plain cosign file for interoperability and counts as one signature of the set);
//!   `kit build`/`delta make` with several `--signing-key`s write it, `ouk kit sign`
//!   countersigns into it;
//! - `<bundle>.trust.json`: a trust chain, a JSON array of signed trust documents (oldest
//!   first) for hosts behind; `--trust-chain` on `kit build`/`delta make` copies it there.
//!
//! Import order ([`prepare_import`], then [`authorize_bundle`]): migrate a flat key list,
//! apply the carried chain (each link verified against the one before; persisted unless a
//! dry run: a verified trust update stands on its own, whatever happens to the kit), refuse
//! an expired document, then refuse a revoked bundle digest and check a threshold of the
//! `kits` role over the bundle. Every refusal is a signature error (exit 5).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ouk_root::trust::document::{load_or_migrate, store};
use ouk_trust::{KitSignature, Role, SignedDocument, TrustDocument, apply_chain, check_expiry};
use serde::{Deserialize, Serialize};

use super::{ActiveTrust, trust_error};
use crate::build::write_atomic;
use crate::error::{IoContext, KitError, Result};
use crate::sign::{SigningKey, VerifyingKey};

/// Largest signature-set or chain sidecar read.
const MAX_SIDECAR: u64 = 16 << 20;
/// Most links in a carried chain.
const MAX_LINKS: usize = 1024;

/// `<bundle>.sigs.json`.
pub fn sigset_path(bundle: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sigs.json", bundle.display()))
}

/// `<bundle>.trust.json`.
pub fn chain_path(bundle: &Path) -> PathBuf {
    PathBuf::from(format!("{}.trust.json", bundle.display()))
}

/// One countersignature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEntry {
    /// Signer's kid.
    pub keyid: String,
    /// Cosign blob signature (base64 DER).
    pub sig: String,
}

/// `<bundle>.sigs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSet {
    /// Sorted by kid, one per key.
    pub signatures: Vec<SetEntry>,
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(KitError::Io {
                context: format!("open {}", path.display()),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    file.take(MAX_SIDECAR + 1)
        .read_to_end(&mut out)
        .ctx(|| format!("read {}", path.display()))?;
    if out.len() as u64 > MAX_SIDECAR {
        return Err(KitError::Validation(format!(
            "{}: larger than {MAX_SIDECAR} bytes",
            path.display()
        )));
    }
    Ok(Some(out))
}

/// The signature set beside `bundle` (empty when there is none).
pub fn read_set(bundle: &Path) -> Result<SignatureSet> {
    let path = sigset_path(bundle);
    match read_bounded(&path)? {
        None => Ok(SignatureSet::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| KitError::Signature {
            what: format!("signature set {}", path.display()),
            message: format!("malformed: {e}"),
        }),
    }
}

/// Every signature over `bundle`: its `.sig` (`sig_path`, when present) and its set.
pub fn collect(bundle: &Path, sig_path: Option<&Path>) -> Result<Vec<KitSignature>> {
    let mut sigs = Vec::new();
    if let Some(p) = sig_path
        && let Some(bytes) = read_bounded(p)?
    {
        sigs.push(KitSignature {
            keyid: None,
            sig: String::from_utf8_lossy(&bytes).trim().to_string(),
        });
    }
    for e in read_set(bundle)?.signatures {
        sigs.push(KitSignature {
            keyid: Some(e.keyid),
            sig: e.sig,
        });
    }
    Ok(sigs)
}

/// Add `key`'s signature over the bundle with SHA-256 `sha256` to its set (replacing the
/// key's earlier one), and write `.sig` too when the bundle has none. Returns the set.
pub fn countersign(bundle: &Path, sha256: &[u8; 32], key: &SigningKey) -> Result<SignatureSet> {
    let sig = crate::sign::sign_blob_sha256(key, sha256).map_err(|e| KitError::Signature {
        what: format!("{}", bundle.display()),
        message: e.to_string(),
    })?;
    let sig_file = PathBuf::from(format!("{}.sig", bundle.display()));
    if !sig_file.exists() {
        write_atomic(&sig_file, sig.as_bytes())?;
    }
    let mut set = read_set(bundle)?;
    let keyid = key.kid();
    set.signatures.retain(|e| e.keyid != keyid);
    set.signatures.push(SetEntry { keyid, sig });
    set.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    let json = serde_json::to_vec_pretty(&set).map_err(|e| KitError::Validation(e.to_string()))?;
    write_atomic(&sigset_path(bundle), &json)?;
    Ok(set)
}

/// Copy the chain file `chain` beside `bundle` (after checking it parses).
pub fn attach_chain(bundle: &Path, chain: &Path) -> Result<usize> {
    let bytes = read_bounded(chain)?.ok_or_else(|| KitError::NotFound(chain.to_path_buf()))?;
    let links = parse_chain(chain, &bytes)?;
    write_atomic(&chain_path(bundle), &bytes)?;
    Ok(links.len())
}

fn parse_chain(path: &Path, bytes: &[u8]) -> Result<Vec<SignedDocument>> {
    let malformed = |message: String| KitError::Signature {
        what: format!("trust chain {}", path.display()),
        message,
    };
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not a JSON array: {e}")))?;
    if raw.len() > MAX_LINKS {
        return Err(malformed(format!(
            "{} links, at most {MAX_LINKS}",
            raw.len()
        )));
    }
    raw.into_iter()
        .map(|v| {
            let bytes = serde_json::to_vec(&v).map_err(|e| malformed(e.to_string()))?;
            SignedDocument::parse(&bytes).map_err(|e| malformed(e.to_string()))
        })
        .collect()
}

/// The trust an import checks a bundle against.
#[derive(Debug, Clone, Default)]
pub struct ImportTrust {
    /// The active document after the chain (`None`: no trust at all, the legacy path).
    pub document: Option<TrustDocument>,
    /// Versions the carried chain applied.
    pub applied: Vec<u64>,
    /// A flat key list was migrated to a local version 1.
    pub migrated: bool,
}

/// Migrate, apply the chain beside `bundle`, refuse an expired document (module doc).
/// `write` false (dry run) verifies the same and writes nothing.
pub fn prepare_import(root: &Path, bundle: &Path, now: i64, write: bool) -> Result<ImportTrust> {
    let (active, migrated) = load_or_migrate(root, now, write)?;
    let Some(mut active) = active else {
        return Ok(ImportTrust::default());
    };
    let mut applied = Vec::new();
    let path = chain_path(bundle);
    if let Some(bytes) = read_bounded(&path)? {
        let links = parse_chain(&path, &bytes)?;
        let what = format!("trust chain {}", path.display());
        let outcome = apply_chain(&active.document, &links).map_err(trust_error(&what))?;
        for v in outcome.applied {
            applied.push(v.document.version);
            active = ActiveTrust {
                document: v.document,
                envelope: v.envelope,
            };
            if write {
                store(root, &active)?;
            }
        }
    }
    check_expiry(&active.document, now).map_err(trust_error("this host's trust document"))?;
    Ok(ImportTrust {
        document: Some(active.document),
        applied,
        migrated,
    })
}

/// Refuse a revoked bundle digest (no flag lets it through).
pub fn check_not_revoked(doc: &TrustDocument, sha256: &[u8; 32]) -> Result<()> {
    let hex = hex::encode(sha256);
    if doc.is_kit_revoked(&hex) {
        return Err(KitError::Signature {
            what: "bundle".into(),
            message: format!(
                "kit {hex} is revoked by trust document version {}",
                doc.version
            ),
        });
    }
    Ok(())
}

/// A threshold of `doc`'s `kits` keys over the bundle (its `.sig` at `sig_path` and its
/// set), or one signature by a key the operator named for this import (`extra`, never a
/// revoked one). Returns the signers' kids, comma-separated.
pub fn authorize_bundle(
    doc: &TrustDocument,
    bundle: &Path,
    sha256: &[u8; 32],
    sig_path: Option<&Path>,
    extra: &[VerifyingKey],
) -> Result<String> {
    check_not_revoked(doc, sha256)?;
    let sigs = collect(bundle, sig_path)?;
    if sigs.is_empty() {
        return Err(KitError::Unsigned {
            what: "bundle".into(),
            missing: crate::MissingSignature::BundleSig,
        });
    }
    let what = format!("bundle {}", bundle.display());
    match ouk_trust::authorize_digest(doc, Role::Kits, sha256, &sigs, &what) {
        Ok(a) => Ok(a.signers.join(",")),
        Err(e) => {
            for k in extra.iter().filter(|k| !doc.is_key_revoked(&k.kid())) {
                let verifies = sigs.iter().any(|s| {
                    s.keyid.as_ref().is_none_or(|id| *id == k.kid())
                        && crate::sign::verify_blob_sha256(k, sha256, &s.sig).is_ok()
                });
                if verifies {
                    return Ok(k.kid());
                }
            }
            let enough = match &e {
                ouk_trust::TrustError::Unauthorized { have: 0, .. } => "any trusted key",
                _ => "enough trusted keys",
            };
            Err(KitError::Signature {
                what,
                message: format!("not valid under {enough}: {e}"),
            })
        }
    }
}

/// `ouk trust update --chain FILE`: apply a chain file to the root outside an import.
/// Returns the versions applied.
pub fn update_from_chain(root: &Path, chain: &Path, now: i64) -> Result<Vec<u64>> {
    let (active, _) = load_or_migrate(root, now, true)?;
    let active = active.ok_or(KitError::NoTrust)?;
    let bytes = read_bounded(chain)?.ok_or_else(|| KitError::NotFound(chain.to_path_buf()))?;
    let links = parse_chain(chain, &bytes)?;
    let what = format!("trust chain {}", chain.display());
    let outcome = apply_chain(&active.document, &links).map_err(trust_error(&what))?;
    let mut applied = Vec::new();
    for v in outcome.applied {
        applied.push(v.document.version);
        store(
            root,
            &ActiveTrust {
                document: v.document,
                envelope: v.envelope,
            },
        )?;
    }
    Ok(applied)
}
