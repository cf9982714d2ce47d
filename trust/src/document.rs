//! The trust document: keys, roles with thresholds, revocations, a version and a validity
//! window, in one canonical JSON form.
//!
//! Encoding (why canonical JSON and not postcard or CBOR): the document is read and
//! reviewed by people (`ouk trust status --json`, a diff before signing), and TUF's root
//! metadata, the model, is JSON too. Its canonical form is the JSON serde_json writes for
//! [`TrustDocument`]: members in sorted order (struct fields are declared sorted, maps are
//! `BTreeMap`s), no whitespace, integers only, strings escaped by serde_json's fixed rules.
//! A parsed document must re-encode to exactly the bytes it came from
//! ([`TrustDocument::from_canonical_bytes`]), so one document has one byte form and a
//! signature over it covers every byte that is used; unknown members are refused, never
//! dropped.
//!
//! Invariants (checked by [`TrustDocument::validate`]):
//! - `type` is `ouk-trust-root`, `version` >= 1, `issued` < `expires`, both RFC 3339 UTC in
//!   the form jiff writes (`2027-01-01T00:00:00Z`);
//! - every key is ECDSA P-256 and named by its own RFC 7638 thumbprint;
//! - roles `kits` and `trust` exist; every role names keys the document holds, none of them
//!   revoked, sorted and without duplicates, and a threshold from 1 to the number of keys;
//! - revocation lists are sorted, without duplicates; kit digests are lowercase SHA-256 hex.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::TrustError;
use crate::keys::PublicKey;

/// The document's `type`.
pub const DOCUMENT_TYPE: &str = "ouk-trust-root";
/// The only key algorithm.
pub const KEY_ALGORITHM: &str = "ecdsa-p256-sha256";
/// Most keys a document may hold (bounds the work of a hostile document).
pub const MAX_KEYS: usize = 256;
/// Most revoked kit digests and keys, each.
pub const MAX_REVOKED: usize = 1 << 16;

/// What a role's keys sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Kits and deltas (bundle `.sig`, countersignatures, the manifest JWS).
    Kits,
    /// Analyzer plug-ins shipped in a kit.
    Plugins,
    /// Packages (the packaging work's signatures). A package signature never authorizes a
    /// kit: each role has its own keys and threshold, and a kit is checked against `kits`.
    Packages,
    /// The next trust document (rotation, revocation, renewal).
    Trust,
}

impl Role {
    /// Every role, in the document's (sorted) order.
    pub const ALL: [Role; 4] = [Role::Kits, Role::Packages, Role::Plugins, Role::Trust];

    /// The role's name in the document and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Kits => "kits",
            Role::Plugins => "plugins",
            Role::Packages => "packages",
            Role::Trust => "trust",
        }
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A key as the document holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Always [`KEY_ALGORITHM`].
    pub algorithm: String,
    /// Standard base64 of the PKIX DER.
    pub public: String,
}

/// Who may sign for a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Key ids (sorted, unique).
    pub keyids: Vec<String>,
    /// How many of them must sign.
    pub threshold: u32,
}

/// Keys and kits that nothing authorizes again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// Revoked key ids (sorted, unique).
    pub keys: Vec<String>,
    /// Revoked bundle SHA-256 digests, lowercase hex (sorted, unique).
    pub kits: Vec<String>,
}

/// One version of a host's trust. Field order is the canonical member order (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustDocument {
    /// When it stops being valid (RFC 3339 UTC).
    pub expires: String,
    /// When it was made (RFC 3339 UTC); `status` compares the host clock with it.
    pub issued: String,
    /// Every key a role names, by kid.
    pub keys: BTreeMap<String, KeyEntry>,
    /// Revocations (only ever grow from one version to the next).
    pub revoked: Revocations,
    /// Role name to its keys and threshold.
    pub roles: BTreeMap<String, RoleSpec>,
    /// Always [`DOCUMENT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// 1 for the first document, one more for each next one.
    pub version: u64,
}

/// Parse an RFC 3339 time in the form jiff writes; returns Unix seconds.
pub fn parse_time(text: &str) -> Result<i64, TrustError> {
    let t: jiff::Timestamp = text
        .parse()
        .map_err(|e| TrustError::Invalid(format!("time {text:?}: {e}")))?;
    if t.to_string() != text {
        return Err(TrustError::Invalid(format!(
            "time {text:?} is not in canonical form ({t})"
        )));
    }
    Ok(t.as_second())
}

/// Unix seconds as the canonical RFC 3339 string.
pub fn format_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "invalid-time".into())
}

fn sorted_unique(list: &[String]) -> bool {
    list.windows(2).all(|w| w[0] < w[1])
}

impl TrustDocument {
    /// An empty document (no keys or roles yet: not valid until roles are set).
    pub fn new(version: u64, issued_unix: i64, expires_unix: i64) -> Self {
        TrustDocument {
            expires: format_time(expires_unix),
            issued: format_time(issued_unix),
            keys: BTreeMap::new(),
            revoked: Revocations::default(),
            roles: BTreeMap::new(),
            kind: DOCUMENT_TYPE.into(),
            version,
        }
    }

    /// The canonical bytes (what is signed).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, integers, vectors and string-keyed maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse and validate canonical bytes; refuses any other spelling of the same document.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, TrustError> {
        let doc: TrustDocument =
            serde_json::from_slice(bytes).map_err(|e| TrustError::Malformed(e.to_string()))?;
        doc.validate()?;
        if doc.to_canonical_bytes() != bytes {
            return Err(TrustError::NonCanonical);
        }
        Ok(doc)
    }

    /// Expiry, Unix seconds.
    pub fn expires_unix(&self) -> Result<i64, TrustError> {
        parse_time(&self.expires)
    }

    /// Issue time, Unix seconds.
    pub fn issued_unix(&self) -> Result<i64, TrustError> {
        parse_time(&self.issued)
    }

    /// The spec of `role`, if the document defines it.
    pub fn role(&self, role: Role) -> Option<&RoleSpec> {
        self.roles.get(role.name())
    }

    /// The key `kid`, decoded.
    pub fn key(&self, kid: &str) -> Result<PublicKey, TrustError> {
        let entry = self.keys.get(kid).ok_or_else(|| TrustError::Key {
            kid: kid.into(),
            reason: "not in the document".into(),
        })?;
        PublicKey::from_base64(&entry.public).map_err(|e| TrustError::Key {
            kid: kid.into(),
            reason: e.to_string(),
        })
    }

    /// Whether `kid` is revoked.
    pub fn is_key_revoked(&self, kid: &str) -> bool {
        self.revoked
            .keys
            .binary_search_by(|k| k.as_str().cmp(kid))
            .is_ok()
    }

    /// Whether the bundle with this SHA-256 (lowercase hex) is revoked.
    pub fn is_kit_revoked(&self, sha256_hex: &str) -> bool {
        self.revoked
            .kits
            .binary_search_by(|k| k.as_str().cmp(sha256_hex))
            .is_ok()
    }

    /// Give `role` these keys and threshold (keys added to the key map; ids sorted).
    pub fn set_role(&mut self, role: Role, keys: &[PublicKey], threshold: u32) {
        let mut keyids: Vec<String> = keys.iter().map(PublicKey::kid).collect();
        keyids.sort();
        keyids.dedup();
        for k in keys {
            self.insert_key(k);
        }
        self.roles
            .insert(role.name().into(), RoleSpec { keyids, threshold });
        self.drop_unused_keys();
    }

    /// Add `key` to `role` (creating the role with threshold 1 when absent).
    pub fn add_key(&mut self, role: Role, key: &PublicKey) {
        let kid = key.kid();
        self.insert_key(key);
        let spec = self
            .roles
            .entry(role.name().into())
            .or_insert_with(|| RoleSpec {
                keyids: Vec::new(),
                threshold: 1,
            });
        if let Err(at) = spec.keyids.binary_search(&kid) {
            spec.keyids.insert(at, kid);
        }
    }

    /// Remove `kid` from `role` (every role when `None`); with `revoke`, also list it as
    /// revoked. Thresholds are left as they are: [`validate`](Self::validate) refuses a role
    /// left with fewer keys than its threshold, which the caller reports.
    pub fn remove_key(&mut self, role: Option<Role>, kid: &str, revoke: bool) {
        for (name, spec) in self.roles.iter_mut() {
            if role.is_none_or(|r| r.name() == name) {
                spec.keyids.retain(|k| k != kid);
            }
        }
        if revoke {
            if let Err(at) = self.revoked.keys.binary_search_by(|k| k.as_str().cmp(kid)) {
                self.revoked.keys.insert(at, kid.to_string());
            }
            for spec in self.roles.values_mut() {
                spec.keyids.retain(|k| k != kid);
            }
        }
        // An optional role left without keys is gone (nothing may sign for it); a required
        // one stays, empty, for validate to refuse.
        self.roles.retain(|name, spec| {
            !spec.keyids.is_empty() || name == Role::Kits.name() || name == Role::Trust.name()
        });
        self.drop_unused_keys();
    }

    /// Revoke a kit by its bundle SHA-256 (lowercase hex).
    pub fn revoke_kit(&mut self, sha256_hex: &str) {
        let hex = sha256_hex.to_ascii_lowercase();
        if let Err(at) = self.revoked.kits.binary_search(&hex) {
            self.revoked.kits.insert(at, hex);
        }
    }

    fn insert_key(&mut self, key: &PublicKey) {
        self.keys.insert(
            key.kid(),
            KeyEntry {
                algorithm: KEY_ALGORITHM.into(),
                public: key.to_base64(),
            },
        );
    }

    /// Keys no role names are dropped: the key map is exactly what the roles use.
    fn drop_unused_keys(&mut self) {
        let used: std::collections::BTreeSet<&String> =
            self.roles.values().flat_map(|r| r.keyids.iter()).collect();
        let unused: Vec<String> = self
            .keys
            .keys()
            .filter(|k| !used.contains(k))
            .cloned()
            .collect();
        for k in unused {
            self.keys.remove(&k);
        }
    }

    /// Check every invariant of the module doc.
    pub fn validate(&self) -> Result<(), TrustError> {
        let invalid = |m: String| Err(TrustError::Invalid(m));
        if self.kind != DOCUMENT_TYPE {
            return invalid(format!("type {:?}, expected {DOCUMENT_TYPE:?}", self.kind));
        }
        if self.version == 0 {
            return invalid("version 0 (the first version is 1)".into());
        }
        if self.issued_unix()? >= self.expires_unix()? {
            return invalid(format!(
                "expires {} is not after issued {}",
                self.expires, self.issued
            ));
        }
        if self.keys.len() > MAX_KEYS {
            return invalid(format!("{} keys, at most {MAX_KEYS}", self.keys.len()));
        }
        for (kid, entry) in &self.keys {
            if entry.algorithm != KEY_ALGORITHM {
                return invalid(format!("key {kid}: algorithm {:?}", entry.algorithm));
            }
            let key = self.key(kid)?;
            if key.kid() != *kid {
                return invalid(format!(
                    "key {kid} is named by another key's id ({})",
                    key.kid()
                ));
            }
        }
        self.validate_revocations()?;
        for (name, spec) in &self.roles {
            if Role::from_name(name).is_none() {
                return invalid(format!("unknown role {name:?}"));
            }
            if !sorted_unique(&spec.keyids) {
                return invalid(format!("role {name}: key ids not sorted and unique"));
            }
            for kid in &spec.keyids {
                if !self.keys.contains_key(kid) {
                    return invalid(format!("role {name}: key {kid} is not in the document"));
                }
                if self.is_key_revoked(kid) {
                    return invalid(format!("role {name}: key {kid} is revoked"));
                }
            }
            if spec.threshold == 0 || spec.threshold as usize > spec.keyids.len() {
                return invalid(format!(
                    "role {name}: threshold {} with {} key(s) (needs 1..={})",
                    spec.threshold,
                    spec.keyids.len(),
                    spec.keyids.len()
                ));
            }
        }
        for required in [Role::Kits, Role::Trust] {
            if self.role(required).is_none() {
                return invalid(format!("role {:?} is missing", required.name()));
            }
        }
        Ok(())
    }

    fn validate_revocations(&self) -> Result<(), TrustError> {
        let r = &self.revoked;
        if r.keys.len() > MAX_REVOKED || r.kits.len() > MAX_REVOKED {
            return Err(TrustError::Invalid(format!(
                "more than {MAX_REVOKED} revocations"
            )));
        }
        if !sorted_unique(&r.keys) || !sorted_unique(&r.kits) {
            return Err(TrustError::Invalid(
                "revocation lists not sorted and unique".into(),
            ));
        }
        if let Some(bad) = r.kits.iter().find(|d| {
            d.len() != 64
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }) {
            return Err(TrustError::Invalid(format!(
                "revoked kit {bad:?} is not a lowercase SHA-256 hex digest"
            )));
        }
        Ok(())
    }
}
