//! The root's trust document in the kit crate: `ouk_root::trust::document` (which owns
//! `ROOT/trust/root.json`, its history and its rules) with the kit's key types (signers are
//! [`SigningKey`]s, role keys come back as [`VerifyingKey`]s) and its errors as
//! [`KitError`]s (same messages, same classes), plus what a kit brings to it ([`sigset`]:
//! a bundle's signature set and carried chain). Nothing here reads or writes a file itself
//! except through `sigset`.

pub mod sigset;

pub use sigset::update_from_chain;

use std::collections::BTreeMap;
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

/// Store an accepted version: history, then root.json.
pub(crate) fn store(root: &Path, v: &ActiveTrust) -> Result<()> {
    Ok(doc::store(root, v)?)
}

/// The active trust document, if the root has one (no migration).
pub fn load(root: &Path) -> Result<Option<ActiveTrust>> {
    Ok(doc::load(root)?)
}

/// The active document, migrating a flat key list first; returns whether this call
/// migrated. With `write` false nothing is written (a dry run).
pub fn load_or_migrate(root: &Path, now: i64, write: bool) -> Result<(Option<ActiveTrust>, bool)> {
    Ok(doc::load_or_migrate(root, now, write)?)
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

/// `ouk trust init --from FILE`: install a signed document made elsewhere.
pub fn install(root: &Path, envelope_bytes: &[u8]) -> Result<ActiveTrust> {
    Ok(doc::install(root, envelope_bytes)?)
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

/// The signed versions after `after` this root holds, as a chain file's bytes.
pub fn export_chain(root: &Path, after: u64) -> Result<Vec<u8>> {
    Ok(doc::export_chain(root, after)?)
}

/// When each key of the active document first appeared on this root.
pub fn key_history(root: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    Ok(doc::key_history(root)?)
}

/// The status of the root's trust at `now` (migrating a flat list first, when `write`).
pub fn status(root: &Path, now: i64, write: bool) -> Result<TrustStatus> {
    Ok(doc::status(root, now, write)?)
}
