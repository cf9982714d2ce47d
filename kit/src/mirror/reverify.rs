//! `ouk mirror verify`: re-check every stored bundle's signatures against the root's trust
//! as it is now.
//!
//! `mirror add` verifies a bundle under the keys trusted at that moment and records who
//! signed it. Keys change afterwards (a rotation, a revoked key, a revoked kit digest), and a
//! mirror that hands out what it stored must be able to say which of its bundles the current
//! trust still authorizes. This module answers that without trusting anything it stored
//! beyond the store's own verified reads: the signature sidecars (`.sig`, `.sigs.json`) are
//! read back from the store (each read is checked against its SHA-256), written into a
//! private scratch directory beside a name standing for the bundle, and judged by the same
//! rule an import uses (`trust_root::sigset::authorize_bundle`: not revoked, then a threshold
//! of the `kits` role) over the bundle digest the catalog recorded, which `mirror export`
//! checks the rebuilt bytes against.
//!
//! Invariants: nothing in the mirror is changed; a bundle is `valid` only when the current
//! trust authorizes it; with no trust at all every bundle is `unchecked` and the report says
//! so (the caller fails closed on it).

use std::fs;
use std::path::Path;

use ouk_root::Root;
use serde::Serialize;

use crate::error::{IoContext, KitError, Result};
use crate::mirror::catalog::MirroredBundle;
use crate::trust_root::sigset;

/// What the current trust says of one stored bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleVerdict {
    /// The bundle's file name.
    pub name: String,
    /// `kit` or `delta`.
    pub kind: String,
    /// Version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// The bundle's SHA-256 (what the signatures are over).
    pub sha256: String,
    /// `valid`, `invalid` (no threshold of trusted signatures), `revoked` (its digest or
    /// every key that signed it is revoked), or `unchecked` (this root trusts no key).
    pub verdict: &'static str,
    /// The keys whose signatures the current trust accepts, when `valid`.
    pub signed_by: Vec<String>,
    /// Who signed it when it was added (`mirror add`), for comparison.
    pub signed_by_when_added: Option<String>,
    /// Why it is not `valid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ouk mirror verify`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorVerifyReport {
    /// The trust document version judged against (`None`: no trust on this root).
    pub trust_version: Option<u64>,
    /// Per bundle, in `mirror list` order.
    pub bundles: Vec<BundleVerdict>,
    /// Bundles the current trust authorizes.
    pub valid: usize,
    /// Bundles it does not (`invalid`, `revoked` or `unchecked`).
    pub failed: usize,
}

/// Judge every mirrored bundle (or those `select` keeps) under the root's current trust.
/// `now` is the caller's clock (the trust document's expiry is not applied here: an
/// expired document still says which keys were trusted; `ouk trust status` reports expiry).
pub fn verify(
    root: &Root,
    now: i64,
    select: &dyn Fn(&MirroredBundle) -> bool,
) -> Result<MirrorVerifyReport> {
    let (trust, _) = ouk_root::trust::document::load_or_migrate(root.dir(), now, false)?;
    let scratch = tempfile::Builder::new()
        .prefix("mirror-verify-")
        .tempdir_in(root.staging_dir())
        .ctx(|| {
            format!(
                "create a scratch directory in {}",
                root.staging_dir().display()
            )
        })?;
    let mut bundles = Vec::new();
    for b in super::list(root)?.iter().filter(|b| select(b)) {
        let verdict = match &trust {
            None => unchecked(b),
            Some(t) => judge(root, &t.document, b, scratch.path())?,
        };
        bundles.push(verdict);
    }
    let valid = bundles.iter().filter(|b| b.verdict == "valid").count();
    Ok(MirrorVerifyReport {
        trust_version: trust.as_ref().map(|t| t.document.version),
        failed: bundles.len() - valid,
        valid,
        bundles,
    })
}

fn base(b: &MirroredBundle, verdict: &'static str) -> BundleVerdict {
    BundleVerdict {
        name: b.name.clone(),
        kind: b.kind.clone(),
        version: b.version.clone(),
        channel: b.channel.clone(),
        sha256: b.sha256.to_hex(),
        verdict,
        signed_by: Vec::new(),
        signed_by_when_added: b.signed_by.clone(),
        reason: None,
    }
}

fn unchecked(b: &MirroredBundle) -> BundleVerdict {
    BundleVerdict {
        reason: Some("this root trusts no key (ouk trust add PUB, or ouk trust init)".into()),
        ..base(b, "unchecked")
    }
}

/// One bundle: its signature sidecars out of the store into `scratch`, then the import's
/// rule over the recorded digest.
fn judge(
    root: &Root,
    doc: &ouk_trust::TrustDocument,
    b: &MirroredBundle,
    scratch: &Path,
) -> Result<BundleVerdict> {
    let stand_in = scratch.join(&b.name);
    let sig_path = stand_in.with_file_name(format!("{}.sig", b.name));
    let set_path = sigset::sigset_path(&stand_in);
    for p in [&sig_path, &set_path] {
        if p.exists() {
            fs::remove_file(p).ctx(|| format!("remove {}", p.display()))?;
        }
    }
    for s in &b.sidecars {
        let target = if s.path == format!("{}.sig", b.name) {
            &sig_path
        } else if s.path == format!("{}.sigs.json", b.name) {
            &set_path
        } else {
            continue;
        };
        // Created new (O_EXCL, no symlink followed) in the private scratch directory, from
        // the store's verified read.
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .ctx(|| format!("create {}", target.display()))?;
        root.store().read_file(&s.sha256, &mut out)?;
    }
    let sig = sig_path.exists().then_some(sig_path.as_path());
    Ok(
        match sigset::authorize_bundle(doc, &stand_in, &b.sha256.0, sig, &[]) {
            Ok(signers) => BundleVerdict {
                signed_by: signers.split(',').map(str::to_string).collect(),
                ..base(b, "valid")
            },
            Err(e) => {
                let revoked = doc.is_kit_revoked(&b.sha256.to_hex())
                    || b.signed_by
                        .as_deref()
                        .is_some_and(|k| doc.is_key_revoked(k));
                let reason = match e {
                    KitError::Signature { message, .. } => message,
                    KitError::Unsigned { missing, .. } => missing.to_string(),
                    other => other.to_string(),
                };
                // The stand-in's scratch path means nothing to the reader: name the bundle.
                let reason = reason.replace(&stand_in.display().to_string(), &b.name);
                BundleVerdict {
                    reason: Some(reason),
                    ..base(b, if revoked { "revoked" } else { "invalid" })
                }
            }
        },
    )
}
