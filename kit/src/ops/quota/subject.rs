//! Who a scan is counted against: parsing `--subject`, verifying a token, and the keyed
//! hash under which a subject is stored.
//!
//! - `anon:<ip>` counts against that IP (IPv4 or IPv6; an IPv4-mapped IPv6 address is the
//!   IPv4 address, so one host is one subject). `anon:unknown` is the one shared subject
//!   of callers that do not know the IP.
//! - `token:<jwt>` counts against the token's holder when the token verifies
//!   ([`super::token`]): its `sub` under the key that signed it, or, without `sub`, the
//!   token itself (SHA-256 of its text). A token that does not verify (garbage, expired,
//!   unknown `kid`, wrong key, unreadable trust store) is not refused: the scan counts as
//!   anonymous, against `anon:<ip>` when the caller gave its IP (`--ip`), else against
//!   `anon:unknown`, and the reason is reported.
//!
//! Invariant: a subject is never stored or printed in clear. The ledger keys it by
//! `HMAC-SHA256(salt, "ouk quota subject v1\0" || identity)`, where the salt is 32 random
//! bytes of the root (`ROOT/quota.salt`); without the salt the IPv4 space cannot be
//! enumerated against the ledger.

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::QuotaError;
use super::token::verify_token;
use crate::sign::VerifyingKey;

/// The subject as the caller named it.
#[derive(Clone, PartialEq, Eq)]
pub enum SubjectArg {
    /// `anon:<ip>`, or `anon:unknown` (`None`).
    Anonymous(Option<IpAddr>),
    /// `token:<jwt>`.
    Token(String),
}

// The token is a credential: Debug never shows it.
impl std::fmt::Debug for SubjectArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectArg::Anonymous(ip) => f.debug_tuple("Anonymous").field(ip).finish(),
            SubjectArg::Token(t) => write!(f, "Token(<{} bytes>)", t.len()),
        }
    }
}

/// Which limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectClass {
    /// No valid token.
    Anonymous,
    /// A verified token.
    Token,
}

impl SubjectClass {
    pub(crate) fn code(self) -> u8 {
        match self {
            SubjectClass::Anonymous => 0,
            SubjectClass::Token => 1,
        }
    }
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(SubjectClass::Anonymous),
            1 => Some(SubjectClass::Token),
            _ => None,
        }
    }
    /// `anonymous` / `token`.
    pub fn name(self) -> &'static str {
        match self {
            SubjectClass::Anonymous => "anonymous",
            SubjectClass::Token => "token",
        }
    }
}

/// Parse an IP as the caller gives it (`10.0.0.1`, `::1`, `[::1]`), canonical form.
pub fn parse_ip(text: &str) -> Result<IpAddr, QuotaError> {
    let t = text.trim_ascii();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    t.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| QuotaError::Subject(format!("{text:?} is not an IP address")))
}

/// Parse `anon:<ip>`, `anon:unknown` or `token:<jwt>`.
pub fn parse_subject(text: &str) -> Result<SubjectArg, QuotaError> {
    let t = text.trim_ascii();
    if let Some(ip) = t.strip_prefix("anon:") {
        if ip == "unknown" {
            return Ok(SubjectArg::Anonymous(None));
        }
        return parse_ip(ip).map(|ip| SubjectArg::Anonymous(Some(ip)));
    }
    if let Some(token) = t.strip_prefix("token:") {
        if token.is_empty() {
            return Err(QuotaError::Subject("empty token".into()));
        }
        return Ok(SubjectArg::Token(token.to_owned()));
    }
    // Never echo the argument: it may be a token with a mistyped prefix.
    Err(QuotaError::Subject(format!(
        "unknown subject kind ({} bytes)",
        t.len()
    )))
}

/// The subject a scan is counted against, after token verification.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedSubject {
    /// Which limit applies.
    pub class: SubjectClass,
    /// Thumbprint of the key that verified the token (token subjects only).
    pub kid: Option<String>,
    /// Why a token was counted as anonymous.
    pub fallback_reason: Option<String>,
    /// The identity that is hashed (never stored or printed).
    identity: String,
}

impl std::fmt::Debug for ResolvedSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedSubject")
            .field("class", &self.class)
            .field("kid", &self.kid)
            .field("fallback_reason", &self.fallback_reason)
            .finish_non_exhaustive()
    }
}

fn anonymous(ip: Option<IpAddr>, fallback_reason: Option<String>) -> ResolvedSubject {
    ResolvedSubject {
        class: SubjectClass::Anonymous,
        kid: None,
        fallback_reason,
        identity: match ip {
            Some(ip) => format!("anon:{ip}"),
            None => "anon:unknown".into(),
        },
    }
}

/// Resolve `arg` at time `now`: verify a token against `trusted` (the trust store's keys,
/// or why they could not be read). `fallback_ip` is the caller's IP, counted against when
/// a token does not verify; it is ignored for `anon:` subjects (their IP is the subject).
pub fn resolve(
    arg: &SubjectArg,
    fallback_ip: Option<IpAddr>,
    trusted: Result<&[VerifyingKey], String>,
    now: i64,
) -> ResolvedSubject {
    match arg {
        SubjectArg::Anonymous(ip) => anonymous(*ip, None),
        SubjectArg::Token(token) => {
            let verified = match trusted {
                Ok(keys) => verify_token(keys, token, now).map_err(|e| e.to_string()),
                Err(why) => Err(format!("the trust store is unreadable: {why}")),
            };
            match verified {
                Ok(v) => {
                    let holder = match &v.sub {
                        Some(sub) => format!("sub:{sub}"),
                        None => {
                            format!("sha256:{}", hex::encode(Sha256::digest(token.trim_ascii())))
                        }
                    };
                    ResolvedSubject {
                        class: SubjectClass::Token,
                        identity: format!("token:{}:{holder}", v.kid),
                        kid: Some(v.kid),
                        fallback_reason: None,
                    }
                }
                Err(why) => anonymous(
                    fallback_ip,
                    Some(format!("token not accepted, counted as anonymous: {why}")),
                ),
            }
        }
    }
}

/// Domain separation of the subject hash.
const SUBJECT_HASH_DOMAIN: &[u8] = b"ouk quota subject v1\0";

/// The key of `subject` in the ledger: HMAC-SHA256 under the root's salt.
pub fn subject_hash(salt: &[u8; 32], subject: &ResolvedSubject) -> [u8; 32] {
    hash_identity(salt, &subject.identity)
}

pub(crate) fn hash_identity(salt: &[u8; 32], identity: &str) -> [u8; 32] {
    // A 32-byte key is always a valid HMAC key; the fallback arm is unreachable.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(salt) else {
        return Sha256::digest([salt.as_slice(), identity.as_bytes()].concat()).into();
    };
    mac.update(SUBJECT_HASH_DOMAIN);
    mac.update(identity.as_bytes());
    mac.finalize().into_bytes().into()
}
