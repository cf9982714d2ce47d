//! A root's trust as a signed, versioned document (ouk-trust), on disk:
//! `ROOT/trust/root.json` (the active version's DSSE envelope) and
//! `ROOT/trust/history/<version>.json` (every version this root accepted, which `ouk trust
//! chain` carries to hosts behind).
//!
//! Two kinds of active document:
//! - **signed** (`trust init`, `trust add/remove/revoke/renew --signing-key`, or a chain a
//!   kit carried): changes only by a next version signed by a threshold of its `trust` keys;
//!   the flat `ROOT/trust/*.pub` files no longer count.
//! - **local** (no signatures): the version-1 document migrated from the flat key list on
//!   first use, every flat key in every role with threshold 1, i.e. exactly what the flat
//!   list meant. It is derived from the `.pub` files each time they change (so `ouk trust
//!   add/remove` without a signing key keep their meaning on such a host), and replaced by
//!   the first signed version a kit carries that one of its keys signed.
//!
//! Invariants: root.json is written only after the version it holds verified (against the
//! previous version, or, for `trust init --from`, against itself), history first, each file
//! atomically; a damaged root.json is an error, never an empty trust store.
//!
//! Keys are ouk-trust's [`PublicKey`] and signers p256 keys, so this module needs no crate
//! that knows kits; ouk-kit's `trust_root` is its face there (the kit's key types, and
//! what a kit's signature set and carried chain do to this document).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ouk_store::ErrorClass;
use ouk_store::fsutil::{FsError, IoContext, write_atomic};
use ouk_trust::{
    PublicKey, Role, SignedDocument, TrustDocument, TrustError, VerifiedDocument, verify_first,
    verify_next,
};
use p256::ecdsa::SigningKey;
use serde::Serialize;

use super::keys::TrustStoreError;

/// Why the root's trust document could not be read, made or changed. The messages are the
/// ones the kit crate gave before the document moved here.
#[derive(Debug, thiserror::Error)]
pub enum TrustDocError {
    /// A file of the document could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A signature or a trust rule refused the change (signature class).
    #[error("{what}: {message}")]
    Signature {
        /// What was refused.
        what: String,
        /// Why.
        message: String,
    },
    /// A stored document is damaged, or one does not encode.
    #[error("{0}")]
    Validation(String),
    /// The change asked for does not fit this root (a document that does not validate).
    #[error("{0}")]
    Usage(String),
    /// The change asked for does not fit this root's trust (no document, one already
    /// signed, an unsigned change to a signed one): typed, so the binary can say which
    /// command or flag does it.
    #[error(transparent)]
    Refused(#[from] TrustRefusal),
    /// The flat key list a local document is derived from.
    #[error(transparent)]
    Store(#[from] TrustStoreError),
}

impl TrustDocError {
    /// Signature for a refused change, validation for a damaged file, "other" for a change
    /// that does not fit this root, the OS error's class for I/O.
    pub fn class(&self) -> ErrorClass {
        match self {
            TrustDocError::Io { source, .. } => ErrorClass::of_io(source),
            TrustDocError::Signature { .. } => ErrorClass::Signature,
            TrustDocError::Validation(_) => ErrorClass::Validation,
            TrustDocError::Usage(_) => ErrorClass::Other,
            TrustDocError::Refused(r) => r.class(),
            TrustDocError::Store(s) => s.class(),
        }
    }
}

/// A change this root's trust does not allow as asked. The messages say what is wrong and
/// name no command or flag (they reach `reason.json`); the binary's hint table adds how to
/// do it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustRefusal {
    /// `trust init` on a root whose trust is already signed.
    #[error("{} already holds a signed trust document", file.display())]
    InitOverSigned {
        /// The active document's file.
        file: PathBuf,
    },
    /// Installing a first document (`trust init --from`) on a root whose trust is signed.
    #[error("this root already holds a signed trust document: newer versions come in a kit")]
    InstallOverSigned,
    /// A change to a root that holds no trust document.
    #[error("no trust document")]
    NoDocument,
    /// A change to signed trust without signers: it must be a next version signed by a
    /// threshold of the trust keys.
    #[error(
        "trust change: this root's trust is signed (version {version}): a change is a next version signed by a threshold of its trust keys"
    )]
    UnsignedChange {
        /// The active document's version.
        version: u64,
    },
}

impl TrustRefusal {
    /// An unsigned change to signed trust is refused as a signature (as before the type);
    /// the rest do not fit this root ("other").
    pub fn class(&self) -> ErrorClass {
        match self {
            TrustRefusal::UnsignedChange { .. } => ErrorClass::Signature,
            TrustRefusal::InitOverSigned { .. }
            | TrustRefusal::InstallOverSigned
            | TrustRefusal::NoDocument => ErrorClass::Other,
        }
    }
}

/// A failed write keeps its context and its `io::Error` (a full disk stays "no space").
impl From<FsError> for TrustDocError {
    fn from(e: FsError) -> Self {
        TrustDocError::Io {
            context: e.context,
            source: e.source,
        }
    }
}

type Result<T, E = TrustDocError> = std::result::Result<T, E>;

/// Days a document made here stays valid unless told otherwise.
pub const DEFAULT_EXPIRES_DAYS: u64 = 365;
/// Validity of a document migrated from a flat key list: the list never expired, and a
/// migration must not start failing imports a year later.
pub const MIGRATED_EXPIRES_DAYS: u64 = 36_500;
const DAY: i64 = 86_400;

/// The active trust of a root.
#[derive(Debug, Clone)]
pub struct ActiveTrust {
    /// The document.
    pub document: TrustDocument,
    /// Its envelope (no signatures: a local, migrated document).
    pub envelope: SignedDocument,
}

impl ActiveTrust {
    /// Migrated from a flat key list, not signed by anyone.
    pub fn is_local(&self) -> bool {
        self.envelope.signatures.is_empty()
    }
}

/// The keys of `role` in `doc`.
pub fn role_keys(doc: &TrustDocument, role: Role) -> Result<Vec<PublicKey>> {
    let Some(spec) = doc.role(role) else {
        return Ok(Vec::new());
    };
    spec.keyids
        .iter()
        .map(|kid| doc.key(kid).map_err(trust_error("trust document")))
        .collect()
}

/// A trust refusal as a signature error (exit 5), naming `what`.
pub fn trust_error(what: &str) -> impl Fn(TrustError) -> TrustDocError + '_ {
    move |e| TrustDocError::Signature {
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn trust_dir(root: &Path) -> PathBuf {
    root.join("trust")
}

/// `ROOT/trust/root.json`.
pub fn root_file(root: &Path) -> PathBuf {
    trust_dir(root).join("root.json")
}

fn history_file(root: &Path, version: u64) -> PathBuf {
    trust_dir(root)
        .join("history")
        .join(format!("{version}.json"))
}

/// Read an envelope file and parse its document (structure and canonical form).
fn read_envelope(path: &Path) -> Result<ActiveTrust> {
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    let damaged = |e: TrustError| TrustDocError::Validation(format!("{}: {e}", path.display()));
    let envelope = SignedDocument::parse(&bytes).map_err(damaged)?;
    let payload = envelope.payload_bytes().map_err(damaged)?;
    let document = TrustDocument::from_canonical_bytes(&payload).map_err(damaged)?;
    Ok(ActiveTrust { document, envelope })
}

/// The active trust document, if the root has one (no migration).
pub fn load(root: &Path) -> Result<Option<ActiveTrust>> {
    let path = root_file(root);
    if !path.is_file() {
        return Ok(None);
    }
    read_envelope(&path).map(Some)
}

/// Store an accepted version: history, then root.json.
pub fn store(root: &Path, v: &ActiveTrust) -> Result<()> {
    let json = v.envelope.to_json();
    write_atomic(&history_file(root, v.document.version), &json)?;
    Ok(write_atomic(&root_file(root), &json)?)
}

/// The local document the flat key list means, or `None` for an empty list.
fn local_from_flat(root: &Path, now: i64) -> Result<Option<TrustDocument>> {
    let flat: Vec<PublicKey> = super::keys::list(root)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if flat.is_empty() {
        return Ok(None);
    }
    let mut doc = TrustDocument::new(1, now, now + MIGRATED_EXPIRES_DAYS as i64 * DAY);
    for role in [Role::Kits, Role::Plugins, Role::Trust] {
        doc.set_role(role, &flat, 1);
    }
    Ok(Some(doc))
}

/// The active document, migrating a flat key list to a local version 1 first (and
/// re-deriving a local document from the `.pub` files, which stay its source). Returns
/// whether this call migrated. With `write` false nothing is written (a dry run).
pub fn load_or_migrate(root: &Path, now: i64, write: bool) -> Result<(Option<ActiveTrust>, bool)> {
    let existing = load(root)?;
    if let Some(t) = &existing
        && !t.is_local()
    {
        return Ok((existing, false));
    }
    let Some(mut doc) = local_from_flat(root, now)? else {
        // Every flat key was removed: a local document must not outlive them.
        if existing.is_some() && write {
            let path = root_file(root);
            fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        }
        return Ok((None, false));
    };
    if let Some(t) = &existing {
        // Same keys: keep the file (and its times) as it is.
        doc.issued.clone_from(&t.document.issued);
        doc.expires.clone_from(&t.document.expires);
        if doc == t.document {
            return Ok((existing, false));
        }
    }
    let envelope = SignedDocument::unsigned(&doc).map_err(trust_error("migrated trust"))?;
    let active = ActiveTrust {
        document: doc,
        envelope,
    };
    if write {
        write_atomic(&root_file(root), &active.envelope.to_json())?;
    }
    Ok((Some(active), existing.is_none()))
}

/// What `trust init` makes: the first signed version.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// Public keys of the `kits` and `trust` roles besides the signers'.
    pub keys: Vec<PublicKey>,
    /// Threshold of the `trust` role.
    pub trust_threshold: u32,
    /// Threshold of the `kits` role.
    pub kits_threshold: u32,
    /// Days until it expires.
    pub expires_days: u64,
}

/// `ouk trust init`: a signed version 1 from the signers' and `spec.keys`' public halves,
/// signed by every signer (they must reach its own trust threshold). Refuses a root that
/// already has a signed document.
pub fn init(
    root: &Path,
    signers: &[&SigningKey],
    spec: &InitSpec,
    now: i64,
) -> Result<ActiveTrust> {
    if load(root)?.is_some_and(|t| !t.is_local()) {
        return Err(TrustRefusal::InitOverSigned {
            file: root_file(root),
        }
        .into());
    }
    let mut keys: Vec<PublicKey> = signers
        .iter()
        .map(|k| PublicKey::from_p256(*k.verifying_key()))
        .collect();
    keys.extend(spec.keys.iter().cloned());
    let mut doc = TrustDocument::new(1, now, now + spec.expires_days as i64 * DAY);
    doc.set_role(Role::Kits, &keys, spec.kits_threshold);
    doc.set_role(Role::Trust, &keys, spec.trust_threshold);
    let envelope = SignedDocument::signed(&doc, signers).map_err(trust_error("trust init"))?;
    let v = verify_first(&envelope).map_err(trust_error("trust init"))?;
    let active = accepted(v);
    store(root, &active)?;
    Ok(active)
}

fn accepted(v: VerifiedDocument) -> ActiveTrust {
    ActiveTrust {
        document: v.document,
        envelope: v.envelope,
    }
}

/// `ouk trust init --from FILE`: install a signed document made elsewhere (a host's first
/// trust; it must verify under its own trust keys). Replaces a local document only.
pub fn install(root: &Path, envelope_bytes: &[u8]) -> Result<ActiveTrust> {
    if load(root)?.is_some_and(|t| !t.is_local()) {
        return Err(TrustRefusal::InstallOverSigned.into());
    }
    let env = SignedDocument::parse(envelope_bytes).map_err(trust_error("trust document"))?;
    let active = accepted(verify_first(&env).map_err(trust_error("trust document"))?);
    store(root, &active)?;
    Ok(active)
}

/// The next version: `edit` applied to a copy of the active one, version + 1, issued now,
/// expiring in `expires_days` (or as long after now as the current one lasted), signed by
/// `signers`, then verified exactly as a host verifies a link (a threshold of the current
/// trust keys and of its own), and stored.
pub fn next_version(
    root: &Path,
    signers: &[&SigningKey],
    expires_days: Option<u64>,
    now: i64,
    edit: impl FnOnce(&mut TrustDocument),
) -> Result<ActiveTrust> {
    let (current, _) = load_or_migrate(root, now, true)?;
    let current = current.ok_or(TrustRefusal::NoDocument)?;
    if signers.is_empty() {
        return Err(TrustRefusal::UnsignedChange {
            version: current.document.version,
        }
        .into());
    }
    let mut doc = current.document.clone();
    doc.version += 1;
    let lasted = current.document.expires_unix().unwrap_or(now)
        - current.document.issued_unix().unwrap_or(now);
    let days = expires_days.map_or(lasted.max(DAY), |d| d as i64 * DAY);
    doc.issued = ouk_trust::document::format_time(now);
    doc.expires = ouk_trust::document::format_time(now + days);
    edit(&mut doc);
    doc.validate()
        .map_err(|e| TrustDocError::Usage(e.to_string()))?;
    let envelope = SignedDocument::signed(&doc, signers).map_err(trust_error("trust change"))?;
    let v = verify_next(&current.document, &envelope).map_err(trust_error("trust change"))?;
    let active = accepted(v);
    store(root, &active)?;
    Ok(active)
}

/// The signed versions after `after` this root holds, oldest first, as a chain file's
/// bytes (what `kit build --trust-chain` and `delta make --trust-chain` carry).
pub fn export_chain(root: &Path, after: u64) -> Result<Vec<u8>> {
    let active = load(root)?.filter(|t| !t.is_local()).ok_or_else(|| {
        TrustDocError::Usage("no signed trust document on this root (ouk trust init)".into())
    })?;
    let mut links = Vec::new();
    for version in after + 1..=active.document.version {
        let path = history_file(root, version);
        if !path.is_file() {
            continue;
        }
        let t = read_envelope(&path)?;
        if !t.is_local() {
            links.push(t.envelope);
        }
    }
    serde_json::to_vec_pretty(&links).map_err(|e| TrustDocError::Validation(e.to_string()))
}

/// When each key of the active document first appeared on this root: the first version in
/// `ROOT/trust/history/` that names it (kid -> (version, its `issued` time)). A version the
/// history lacks (a root initialised from a later version) is skipped: its keys date from
/// the first version the root holds.
pub fn key_history(root: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    let mut first = BTreeMap::new();
    let Some(active) = load(root)? else {
        return Ok(first);
    };
    for version in 1..=active.document.version {
        let path = history_file(root, version);
        if !path.is_file() {
            continue;
        }
        let t = read_envelope(&path)?;
        for kid in t.document.keys.keys() {
            first
                .entry(kid.clone())
                .or_insert_with(|| (version, t.document.issued.clone()));
        }
    }
    Ok(first)
}

/// `ouk trust status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustStatus {
    /// `signed`, `local` (migrated from a flat key list) or `none`.
    pub kind: String,
    /// Active version.
    pub version: Option<u64>,
    /// When it was issued.
    pub issued: Option<String>,
    /// When it expires.
    pub expires: Option<String>,
    /// Past its expiry: imports fail closed.
    pub expired: bool,
    /// Whole days left (negative: expired that long ago).
    pub days_left: Option<i64>,
    /// This host's clock, and what is wrong with it: `ok`, `behind` (before the document was
    /// issued) or `ahead` (past its expiry; a clock far ahead expires trust early).
    pub clock: String,
    /// The clock read.
    pub now: String,
    /// Role name to keys and threshold.
    pub roles: std::collections::BTreeMap<String, ouk_trust::RoleSpec>,
    /// Revoked keys and kit digests.
    pub revoked: ouk_trust::Revocations,
    /// Who signed the active version.
    pub signed_by: Vec<String>,
}

/// The status of the root's trust at `now` (migrating a flat list first, when `write`).
pub fn status(root: &Path, now: i64, write: bool) -> Result<TrustStatus> {
    let (active, _) = load_or_migrate(root, now, write)?;
    let now_text = ouk_trust::document::format_time(now);
    let Some(t) = active else {
        return Ok(TrustStatus {
            kind: "none".into(),
            version: None,
            issued: None,
            expires: None,
            expired: false,
            days_left: None,
            clock: "ok".into(),
            now: now_text,
            roles: Default::default(),
            revoked: Default::default(),
            signed_by: Vec::new(),
        });
    };
    let d = &t.document;
    let issued = d.issued_unix().unwrap_or(now);
    let expires = d.expires_unix().unwrap_or(now);
    let clock = if now < issued {
        "behind"
    } else if now >= expires {
        "ahead"
    } else {
        "ok"
    };
    Ok(TrustStatus {
        kind: if t.is_local() { "local" } else { "signed" }.into(),
        version: Some(d.version),
        issued: Some(d.issued.clone()),
        expires: Some(d.expires.clone()),
        expired: now >= expires,
        days_left: Some((expires - now).div_euclid(DAY)),
        clock: clock.into(),
        now: now_text,
        roles: d.roles.clone(),
        revoked: d.revoked.clone(),
        signed_by: t
            .envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(n: u8) -> SigningKey {
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes[31] = n;
        SigningKey::from_slice(&bytes).expect("valid scalar")
    }

    const NOW: i64 = 1_800_000_000;

    fn spec() -> InitSpec {
        InitSpec {
            keys: Vec::new(),
            trust_threshold: 1,
            kits_threshold: 1,
            expires_days: DEFAULT_EXPIRES_DAYS,
        }
    }

    #[test]
    fn init_then_next_version_is_stored_with_its_history() {
        let root = tempfile::tempdir().expect("tempdir");
        let k = signer(1);
        let first = init(root.path(), &[&k], &spec(), NOW).expect("init");
        assert!(!first.is_local());
        assert_eq!(first.document.version, 1);
        let next = next_version(root.path(), &[&k], None, NOW + 10, |_| {}).expect("next");
        assert_eq!(next.document.version, 2);
        let loaded = load(root.path()).expect("load").expect("a document");
        assert_eq!(loaded.document, next.document);
        assert!(history_file(root.path(), 1).is_file());
        assert!(history_file(root.path(), 2).is_file());
        let keys = role_keys(&loaded.document, Role::Kits).expect("kits keys");
        assert_eq!(keys, vec![PublicKey::from_p256(*k.verifying_key())]);
    }

    #[test]
    fn refusals_keep_their_messages_and_classes() {
        let root = tempfile::tempdir().expect("tempdir");
        let e = next_version(root.path(), &[], None, NOW, |_| {}).expect_err("no document");
        assert_eq!(e.to_string(), "no trust document");
        assert!(matches!(
            e,
            TrustDocError::Refused(TrustRefusal::NoDocument)
        ));
        assert_eq!(e.class(), ErrorClass::Other);

        let k = signer(1);
        init(root.path(), &[&k], &spec(), NOW).expect("init");
        let e = next_version(root.path(), &[], None, NOW, |_| {}).expect_err("unsigned change");
        assert_eq!(e.class(), ErrorClass::Signature);
        // A change signed by a key the document does not trust is refused as a signature.
        let stranger = signer(2);
        let e = next_version(root.path(), &[&stranger], None, NOW, |_| {}).expect_err("stranger");
        assert!(e.to_string().starts_with("trust change: "), "{e}");
        assert_eq!(e.class(), ErrorClass::Signature);

        // A damaged root.json is an error, never an empty trust store.
        fs::write(root_file(root.path()), b"{").expect("damage");
        let e = load(root.path()).expect_err("damaged");
        assert_eq!(e.class(), ErrorClass::Validation);
    }
}
