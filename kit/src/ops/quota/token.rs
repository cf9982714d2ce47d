//! Offline verification of a scanner token: a JWT (RFC 7519) in JWS compact serialization
//! (RFC 7515), signed ES256 by a key of the root's trust store.
//!
//! Accepted: `BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(r || s)`, unpadded
//! base64url, at most [`MAX_TOKEN_LEN`] bytes. The header must say `"alg":"ES256"` and must
//! not carry `crit` (no extension is understood) nor an unencoded payload (`b64`). A `kid`,
//! when present, must name a trusted key (its RFC 7638 thumbprint) and only that key is
//! tried; without a `kid` every trusted key is tried. The claims must be a JSON object;
//! `exp` and `nbf`, when present, are NumericDates (a JSON number of seconds, a fraction
//! is truncated) checked against the `now` the caller passes, with no leeway:
//! valid while `nbf <= now < exp`. `sub` is the holder's identity when present. `iss`,
//! `aud` and `iat` are not checked (the trust store, not a claim, says who may issue).
//!
//! Invariants: nothing here reads the clock, and input never panics: every malformed token
//! is a [`TokenError`].

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier;
use serde_json::{Map, Value};

use crate::sign::VerifyingKey;

/// Longest token considered (a scanner JWT is a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not three base64url parts.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header is not a JSON object, or a member has the wrong type.
    #[error("token header: {0}")]
    Header(String),
    /// Not ES256.
    #[error("token algorithm {0:?} is not accepted (expected \"ES256\")")]
    UnsupportedAlg(String),
    /// A critical extension or an unencoded payload was asked for.
    #[error("token header asks for an extension ({0}); none is accepted")]
    Extension(String),
    /// The trust store is empty.
    #[error("the trust store holds no key to verify tokens with")]
    NoTrustedKeys,
    /// The `kid` names no trusted key.
    #[error("token kid {0:?} matches no key in the trust store")]
    UnknownKid(String),
    /// No trusted key verifies the signature.
    #[error("token signature does not verify against the trust store")]
    BadSignature,
    /// The claims are not a JSON object or a claim has the wrong type.
    #[error("token claims: {0}")]
    Claims(String),
    /// `now >= exp`.
    #[error("token expired at {exp} (now {now}, Unix seconds)")]
    Expired {
        /// `exp`.
        exp: i64,
        /// The clock.
        now: i64,
    },
    /// `now < nbf`.
    #[error("token not valid before {nbf} (now {now}, Unix seconds)")]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// The clock.
        now: i64,
    },
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Thumbprint of the trusted key that verified it.
    pub kid: String,
    /// The `sub` claim.
    pub sub: Option<String>,
    /// The `exp` claim.
    pub exp: Option<i64>,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    Base64UrlUnpadded::decode_vec(part).map_err(|_| TokenError::Malformed(what))
}

fn object(bytes: &[u8], err: fn(String) -> TokenError) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err("not a JSON object".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

/// A NumericDate claim: `None` when absent, an error when not a finite number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(i) = v.as_i64() {
        return Ok(Some(i));
    }
    match v.as_f64() {
        // Saturating float-to-int cast: a huge exp is "far future", not an overflow.
        Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
        _ => Err(TokenError::Claims(format!("{name} is not a NumericDate"))),
    }
}

/// Verify `token` against `keys` at time `now` (Unix seconds).
pub fn verify_token(
    keys: &[VerifyingKey],
    token: &str,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let token = token.trim_ascii();
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let header = object(
        &decode_part(header_b64, "header is not base64url")?,
        TokenError::Header,
    )?;
    match header.get("alg") {
        Some(Value::String(a)) if a == "ES256" => {}
        Some(Value::String(a)) => return Err(TokenError::UnsupportedAlg(a.clone())),
        Some(_) => return Err(TokenError::Header("alg is not a string".into())),
        None => return Err(TokenError::UnsupportedAlg(String::new())),
    }
    if header.contains_key("crit") {
        return Err(TokenError::Extension("crit".into()));
    }
    if header.get("b64").is_some_and(|b| b != &Value::Bool(true)) {
        return Err(TokenError::Extension("b64".into()));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::Header("kid is not a string".into())),
    };
    if claims_b64.is_empty() {
        return Err(TokenError::Malformed(
            "empty claims (a detached JWS is not a token)",
        ));
    }
    let claims = object(
        &decode_part(claims_b64, "claims are not base64url")?,
        TokenError::Claims,
    )?;
    let sig_bytes = decode_part(sig_b64, "signature is not base64url")?;
    let sig = Signature::from_slice(&sig_bytes)
        .map_err(|_| TokenError::Malformed("signature is not a 64-byte ES256 signature"))?;

    if keys.is_empty() {
        return Err(TokenError::NoTrustedKeys);
    }
    let candidates: Vec<&VerifyingKey> = match kid {
        Some(k) => {
            let found: Vec<_> = keys.iter().filter(|key| key.kid() == k).collect();
            if found.is_empty() {
                return Err(TokenError::UnknownKid(k.to_owned()));
            }
            found
        }
        None => keys.iter().collect(),
    };
    // The signing input is the two encoded parts exactly as they appear in the token.
    let signing_input_len = header_b64.len() + 1 + claims_b64.len();
    let signing_input = token
        .get(..signing_input_len)
        .ok_or(TokenError::Malformed("token shorter than its parts"))?;
    let key = candidates
        .into_iter()
        .find(|k| k.inner().verify(signing_input.as_bytes(), &sig).is_ok())
        .ok_or(TokenError::BadSignature)?;

    let exp = numeric_date(&claims, "exp")?;
    let nbf = numeric_date(&claims, "nbf")?;
    if let Some(exp) = exp
        && now >= exp
    {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = nbf
        && now < nbf
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    let sub = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::Claims("sub is not a string".into())),
    };
    Ok(VerifiedToken {
        kid: key.kid(),
        sub,
        exp,
    })
}

/// Make a token (tests, fixtures and the fuzz seeds): `header` and `claims` are JSON
/// texts, signed ES256 with `key`.
pub fn sign_token(
    key: &crate::sign::SigningKey,
    header: &str,
    claims: &str,
) -> Result<String, crate::sign::JwsError> {
    use p256::ecdsa::signature::Signer;
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(claims.as_bytes())
    );
    let sig: Signature = key
        .inner()
        .try_sign(input.as_bytes())
        .map_err(|e| crate::sign::JwsError::Sign(e.to_string()))?;
    Ok(format!(
        "{input}.{}",
        Base64UrlUnpadded::encode_string(&sig.to_bytes())
    ))
}
