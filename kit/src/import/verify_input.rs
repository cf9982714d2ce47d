//! Step 2 of the import, for every input kind: read the input once into a private copy
//! (hashing it on the way), check that digest against the recorded one and the signature
//! over it against the trust store. Nothing is unpacked before this step has passed, and
//! every later step reads only the copy it made.

use std::path::Path;

use ouk_root::Root;
use ouk_store::progress::StepSink;

use super::{ImportOptions, StepResult, step, trust};
use crate::error::{KitError, Result};
use crate::sign::VerifyingKey;
use crate::split::BundleInput;
use crate::trust_root::RoleKeys;
use crate::verify::{self, Sidecars};

/// The keys an import trusts: the trust store plus `--trust-key`s.
pub fn trusted_keys(root: &Path, extra: &[VerifyingKey]) -> Result<Vec<VerifyingKey>> {
    // A signed trust document replaces the flat list (crate::trust_root).
    let mut keys: Vec<VerifyingKey> = match ouk_root::trust::document::load(root)? {
        Some(t) if !t.is_local() => t.role_keys(ouk_trust::Role::Kits)?,
        _ => trust::list(root)?.into_iter().map(|(_, k)| k).collect(),
    };
    keys.extend(extra.iter().cloned());
    Ok(keys)
}

/// What steps 1-2 established about a bundle.
pub(crate) struct Verified {
    /// The bundle: a file, or a split kit's parts (every later pass reads through it).
    pub input: BundleInput,
    pub bundle_sha: [u8; 32],
    pub signed_by: Option<String>,
    pub keys: Vec<VerifyingKey>,
    pub sidecars: Sidecars,
    /// Trust versions the kit's chain applied.
    pub trust_applied: Vec<u64>,
    /// A flat key list was migrated to a trust document.
    pub trust_migrated: bool,
}

pub(super) fn verify_step(
    root: &Root,
    opts: &ImportOptions,
    progress: StepSink<'_>,
) -> StepResult<Verified> {
    // A part or index of a split kit names the parts (checked against the index as they
    // are read); the sidecars are found where the whole bundle would be.
    // Read once: the input is copied into the root's private staging directory as it is
    // hashed, and every later pass (manifest, kind, unpack) reads that copy, so the bytes
    // the signature is checked against are the bytes that are used.
    let input = step(
        "verify",
        BundleInput::open(&opts.bundle)
            .and_then(|i| i.read_once_reporting(&root.staging_dir(), progress)),
    )?;
    let sidecars = Sidecars::discover(&input.path(), opts.sidecars.clone());
    let (bundle_sha, size, digest_checked) =
        step("verify", verify::check_input_digest(&input, &sidecars))?;
    tracing::info!(step = "verify", sha256 = %hex::encode(bundle_sha), size, digest_sidecar = digest_checked, "read once into staging");
    tracing::debug!(step = "verify", ?sidecars, "sidecars");
    // Trust first: a chain the kit carries is applied (and an expired document refused)
    // before its signature is checked against the result (crate::trust_root::sigset).
    let trust = step(
        "verify",
        crate::trust_root::sigset::prepare_import(
            root.dir(),
            &input.path(),
            ouk_root::now_unix(),
            !opts.dry_run,
        ),
    )?;
    let keys = step("verify", import_keys(root.dir(), &trust, &opts.extra_keys))?;
    let signed_by = if let Some(doc) = &trust.document {
        let sig = sidecars.signature.as_deref();
        let authorized = crate::trust_root::sigset::authorize_bundle(
            doc,
            &input.path(),
            &bundle_sha,
            sig,
            &opts.extra_keys,
        );
        match authorized {
            Ok(kids) => Some(kids),
            Err(_) if opts.allow_unsigned => {
                step(
                    "verify",
                    crate::trust_root::sigset::check_not_revoked(doc, &bundle_sha),
                )?;
                None
            }
            Err(e) => return Err(("verify", e)),
        }
    } else if opts.allow_unsigned && keys.is_empty() {
        None
    } else if keys.is_empty() {
        return Err((
            "verify",
            KitError::Unsigned {
                what: "bundle".into(),
                missing: crate::MissingSignature::KeyToImport,
            },
        ));
    } else {
        match verify::check_signature(&bundle_sha, &sidecars, &keys) {
            Ok(kid) => kid,
            Err(_) if opts.allow_unsigned => None,
            Err(e) => return Err(("verify", e)),
        }
    };
    tracing::info!(
        step = "verify",
        signed_by = signed_by.as_deref().unwrap_or("-"),
        trusted_keys = keys.len(),
        "signature checked"
    );
    Ok(Verified {
        input,
        bundle_sha,
        signed_by,
        keys,
        sidecars,
        trust_applied: trust.applied,
        trust_migrated: trust.migrated,
    })
}

/// The keys an import checks the manifest JWS with: the active document's `kits` keys (the
/// flat list when there is none) plus `--trust-key`s.
fn import_keys(
    root: &Path,
    trust: &crate::trust_root::sigset::ImportTrust,
    extra: &[VerifyingKey],
) -> Result<Vec<VerifyingKey>> {
    match &trust.document {
        Some(doc) => {
            let mut keys = crate::trust_root::role_keys(doc, ouk_trust::Role::Kits)?;
            keys.extend(
                extra
                    .iter()
                    .filter(|k| !doc.is_key_revoked(&k.kid()))
                    .cloned(),
            );
            Ok(keys)
        }
        None => trusted_keys(root, extra),
    }
}
