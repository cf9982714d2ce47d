//! The root's trust document in the kit crate: what converts between
//! `ouk_root::trust::document` (which owns `ROOT/trust/root.json`, its history and its
//! rules) and the kit's key types (signers are [`SigningKey`]s, role keys come back as
//! [`VerifyingKey`]s), its errors as [`KitError`]s (same messages, same classes), plus what
//! a kit brings to it ([`sigset`]: a bundle's signature set and carried chain). Loading,
//! storing, installing, exporting and the status take and give no kit type: callers call
//! `ouk_root::trust::document` for them directly (its error converts with `?`). Nothing
//! here reads or writes a file itself except through `sigset`.

pub mod sigset;

pub use sigset::update_from_chain;

use std::path::Path;

use ouk_root::trust::document::{self as doc, TrustDocError};
pub use ouk_root::trust::document::{
    ActiveTrust, DEFAULT_EXPIRES_DAYS, MIGRATED_EXPIRES_DAYS, TrustStatus, root_file,
};
use ouk_trust::{Role, TrustDocument, TrustError};

use crate::error::{KitError, Result};
use crate::sign::{SigningKey, VerifyingKey};

/// A document refusal keeps its message and class as a kit error.
impl From<TrustDocError> for KitError {
    fn from(e: TrustDocError) -> Self {
        match e {
            TrustDocError::Io { context, source } => KitError::Io { context, source },
            TrustDocError::Signature { what, message } => KitError::Signature { what, message },
            TrustDocError::Validation(m) => KitError::Validation(m),
            TrustDocError::Usage(m) => KitError::Usage(m),
            TrustDocError::Refused(r) => KitError::TrustRefused(r),
            TrustDocError::Store(s) => KitError::TrustStore(s),
        }
    }
}

/// The keys of `role` in the active document, as the kit's keys.
pub trait RoleKeys {
    /// The keys of `role` (none revoked: a valid document's roles never name one).
    fn role_keys(&self, role: Role) -> Result<Vec<VerifyingKey>>;
}

impl RoleKeys for ActiveTrust {
    fn role_keys(&self, role: Role) -> Result<Vec<VerifyingKey>> {
        role_keys(&self.document, role)
    }
}

/// The keys of `role` in `doc`, as the kit's keys.
pub fn role_keys(document: &TrustDocument, role: Role) -> Result<Vec<VerifyingKey>> {
    Ok(doc::role_keys(document, role)?
        .iter()
        .map(|k| VerifyingKey::from_p256(*k.as_p256()))
        .collect())
}

/// A trust refusal as a signature error (exit 5), naming `what`.
pub fn trust_error(what: &str) -> impl Fn(TrustError) -> KitError + '_ {
    move |e| KitError::from(doc::trust_error(what)(e))
}

/// What `trust init` makes: the first signed version.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// Public keys of the `kits` and `trust` roles besides the signers'.
    pub keys: Vec<VerifyingKey>,
    /// Threshold of the `trust` role.
    pub trust_threshold: u32,
    /// Threshold of the `kits` role.
    pub kits_threshold: u32,
    /// Days until it expires.
    pub expires_days: u64,
}

fn p256_signers(signers: &[SigningKey]) -> Vec<&p256::ecdsa::SigningKey> {
    signers.iter().map(SigningKey::as_p256).collect()
}

/// `ouk trust init`: a signed version 1 (see `ouk_root::trust::document::init`).
pub fn init(root: &Path, signers: &[SigningKey], spec: &InitSpec, now: i64) -> Result<ActiveTrust> {
    let spec = doc::InitSpec {
        keys: spec
            .keys
            .iter()
            .map(|k| ouk_trust::PublicKey::from_p256(*k.as_p256()))
            .collect(),
        trust_threshold: spec.trust_threshold,
        kits_threshold: spec.kits_threshold,
        expires_days: spec.expires_days,
    };
    Ok(doc::init(root, &p256_signers(signers), &spec, now)?)
}

/// The next version, signed by `signers` (see `ouk_root::trust::document::next_version`).
pub fn next_version(
    root: &Path,
    signers: &[SigningKey],
    expires_days: Option<u64>,
    now: i64,
    edit: impl FnOnce(&mut TrustDocument),
) -> Result<ActiveTrust> {
    Ok(doc::next_version(
        root,
        &p256_signers(signers),
        expires_days,
        now,
        edit,
    )?)
}
