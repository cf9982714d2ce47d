//! cosign's encrypted private-key container (the body of an `ENCRYPTED SIGSTORE PRIVATE
//! KEY` PEM block), as written by sigstore's `encrypted.Encrypt`.
//!
//! The container is JSON:
//! `{"kdf":{"name":"scrypt","params":{"N":..,"r":..,"p":..},"salt":"<b64>"},
//!   "cipher":{"name":"nacl/secretbox","nonce":"<b64>"},"ciphertext":"<b64>"}`
//! (base64 = standard alphabet with padding, as Go encodes `[]byte`). The 32-byte box key is
//! `scrypt(password, salt, N, r, p)`; the ciphertext is a NaCl secretbox (XSalsa20-Poly1305,
//! tag first) whose plaintext is the PKCS#8 DER of the private key.
//!
//! Invariants:
//! - [`seal`] always writes cosign's parameters (N=32768, r=8, p=1), a fresh random 32-byte
//!   salt and 24-byte nonce from the OS RNG, and fields in cosign's order.
//! - [`open`] accepts only `scrypt` + `nacl/secretbox`, a 24-byte nonce, and scrypt
//!   parameters whose memory (`128 * N * r`) stays at or under [`MAX_SCRYPT_MEMORY`], so a
//!   hostile key file cannot make us allocate without bound. The decrypted DER and the
//!   derived key are zeroized on drop.

use base64ct::{Base64, Encoding};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::elliptic_curve::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};

/// PEM label cosign writes today.
pub const PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of keys written by older cosign releases; read, never written.
pub const LEGACY_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt `N` cosign uses when it writes a key.
pub const SCRYPT_N: u64 = 32768;
/// scrypt `r` cosign uses when it writes a key.
pub const SCRYPT_R: u32 = 8;
/// scrypt `p` cosign uses when it writes a key.
pub const SCRYPT_P: u32 = 1;
/// Upper bound on scrypt memory (`128 * N * r` bytes) accepted when opening a key: 1 GiB.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Upper bound on scrypt `p` accepted when opening a key (it multiplies the time).
pub const MAX_SCRYPT_P: u64 = 64;

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why an encrypted container could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum EncryptedKeyError {
    #[error("encrypted key: the container is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("encrypted key: unsupported KDF {0:?} (expected \"scrypt\")")]
    UnsupportedKdf(String),
    #[error("encrypted key: unsupported cipher {0:?} (expected \"nacl/secretbox\")")]
    UnsupportedCipher(String),
    #[error("encrypted key: scrypt parameters N={n} r={r} p={p} rejected: {reason}")]
    BadScryptParams {
        n: u64,
        r: u64,
        p: u64,
        reason: &'static str,
    },
    #[error("encrypted key: field `{0}` is not valid base64")]
    Base64(&'static str),
    #[error("encrypted key: nonce is {0} bytes, expected 24")]
    BadNonce(usize),
    #[error("encrypted key: decryption failed (wrong password, or the key file is corrupted)")]
    Decrypt,
    #[error("encrypted key: encryption failed")]
    Encrypt,
    #[error("system random number generator failed: {0}")]
    Rng(getrandom::Error),
}

#[derive(Serialize, Deserialize)]
struct Container {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Encrypts `plaintext` (PKCS#8 DER) under `password` and returns the container JSON.
pub fn seal(plaintext: &[u8], password: &[u8]) -> Result<Vec<u8>, EncryptedKeyError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(EncryptedKeyError::Rng)?;
    getrandom::fill(&mut nonce).map_err(EncryptedKeyError::Rng)?;

    let params = ScryptParams {
        n: SCRYPT_N,
        r: u64::from(SCRYPT_R),
        p: u64::from(SCRYPT_P),
    };
    let key = derive_key(password, &salt, &params)?;
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key.as_slice()));
    let ciphertext = cipher
        .encrypt(GenericArray::from_slice(&nonce), plaintext)
        .map_err(|_| EncryptedKeyError::Encrypt)?;

    let container = Container {
        kdf: Kdf {
            name: KDF_NAME.to_owned(),
            params,
            salt: Base64::encode_string(&salt),
        },
        cipher: Cipher {
            name: CIPHER_NAME.to_owned(),
            nonce: Base64::encode_string(&nonce),
        },
        ciphertext: Base64::encode_string(&ciphertext),
    };
    Ok(serde_json::to_vec(&container)?)
}

/// Opens a container (its JSON) with `password` and returns the plaintext (PKCS#8 DER).
pub fn open(container: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, EncryptedKeyError> {
    let container: Container = serde_json::from_slice(container)?;
    if container.kdf.name != KDF_NAME {
        return Err(EncryptedKeyError::UnsupportedKdf(container.kdf.name));
    }
    if container.cipher.name != CIPHER_NAME {
        return Err(EncryptedKeyError::UnsupportedCipher(container.cipher.name));
    }
    let salt = decode_b64(&container.kdf.salt, "kdf.salt")?;
    let nonce = decode_b64(&container.cipher.nonce, "cipher.nonce")?;
    if nonce.len() != NONCE_LEN {
        return Err(EncryptedKeyError::BadNonce(nonce.len()));
    }
    let ciphertext = decode_b64(&container.ciphertext, "ciphertext")?;

    let key = derive_key(password, &salt, &container.kdf.params)?;
    let cipher = XSalsa20Poly1305::new(GenericArray::from_slice(key.as_slice()));
    cipher
        .decrypt(GenericArray::from_slice(&nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| EncryptedKeyError::Decrypt)
}

fn decode_b64(s: &str, field: &'static str) -> Result<Vec<u8>, EncryptedKeyError> {
    Base64::decode_vec(s).map_err(|_| EncryptedKeyError::Base64(field))
}

/// Validates the scrypt parameters (bounded memory) and derives the 32-byte box key.
fn derive_key(
    password: &[u8],
    salt: &[u8],
    params: &ScryptParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, EncryptedKeyError> {
    let ScryptParams { n, r, p } = *params;
    let bad = |reason| EncryptedKeyError::BadScryptParams { n, r, p, reason };
    if n < 2 || !n.is_power_of_two() {
        return Err(bad("N must be a power of two greater than 1"));
    }
    if r == 0 || p == 0 {
        return Err(bad("r and p must be positive"));
    }
    if p > MAX_SCRYPT_P {
        return Err(bad("p is larger than this tool accepts (64)"));
    }
    let memory = n
        .checked_mul(r)
        .and_then(|v| v.checked_mul(128))
        .ok_or_else(|| bad("128 * N * r overflows"))?;
    if memory > MAX_SCRYPT_MEMORY {
        return Err(bad("128 * N * r exceeds the 1 GiB this tool accepts"));
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| bad("N out of range"))?;
    let r = u32::try_from(r).map_err(|_| bad("r out of range"))?;
    let p = u32::try_from(p).map_err(|_| bad("p out of range"))?;
    let params = scrypt::Params::new(log_n, r, p).map_err(|_| bad("rejected by scrypt"))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(password, salt, &params, key.as_mut_slice())
        .map_err(|_| bad("rejected by scrypt"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let sealed = seal(b"secret der bytes", b"pw").expect("seal");
        let opened = open(&sealed, b"pw").expect("open");
        assert_eq!(opened.as_slice(), b"secret der bytes");
    }

    #[test]
    fn sealed_json_has_cosign_shape() {
        let sealed = seal(b"x", b"pw").expect("seal");
        let v: serde_json::Value = serde_json::from_slice(&sealed).expect("json");
        assert_eq!(v["kdf"]["name"], "scrypt");
        assert_eq!(v["kdf"]["params"]["N"], 32768);
        assert_eq!(v["kdf"]["params"]["r"], 8);
        assert_eq!(v["kdf"]["params"]["p"], 1);
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
        let salt = Base64::decode_vec(v["kdf"]["salt"].as_str().expect("salt")).expect("b64");
        let nonce = Base64::decode_vec(v["cipher"]["nonce"].as_str().expect("nonce")).expect("b64");
        assert_eq!(salt.len(), 32);
        assert_eq!(nonce.len(), 24);
        let text = String::from_utf8(sealed).expect("utf8");
        assert!(
            text.starts_with(r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"#)
        );
    }

    #[test]
    fn wrong_password_is_a_decrypt_error() {
        let sealed = seal(b"x", b"pw").expect("seal");
        assert!(matches!(
            open(&sealed, b"nope"),
            Err(EncryptedKeyError::Decrypt)
        ));
    }

    #[test]
    fn hostile_params_are_refused_before_allocating() {
        let sealed = seal(b"x", b"pw").expect("seal");
        let mut v: serde_json::Value = serde_json::from_slice(&sealed).expect("json");
        for (n, r, p) in [
            (1u64 << 40, 8u64, 1u64),
            (3, 8, 1),
            (0, 8, 1),
            (32768, 0, 1),
            (32768, 8, 1000),
        ] {
            v["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            let bytes = serde_json::to_vec(&v).expect("json");
            assert!(
                matches!(
                    open(&bytes, b"pw"),
                    Err(EncryptedKeyError::BadScryptParams { .. })
                ),
                "N={n} r={r} p={p} accepted"
            );
        }
    }

    #[test]
    fn wrong_names_and_garbage_are_typed_errors() {
        let sealed = seal(b"x", b"pw").expect("seal");
        let v: serde_json::Value = serde_json::from_slice(&sealed).expect("json");
        let mut k = v.clone();
        k["kdf"]["name"] = "pbkdf2".into();
        let k = serde_json::to_vec(&k).expect("json");
        assert!(matches!(
            open(&k, b"pw"),
            Err(EncryptedKeyError::UnsupportedKdf(_))
        ));
        let mut c = v.clone();
        c["cipher"]["name"] = "aes".into();
        let c = serde_json::to_vec(&c).expect("json");
        assert!(matches!(
            open(&c, b"pw"),
            Err(EncryptedKeyError::UnsupportedCipher(_))
        ));
        let mut nn = v.clone();
        nn["cipher"]["nonce"] = Base64::encode_string(&[0u8; 12]).into();
        let nn = serde_json::to_vec(&nn).expect("json");
        assert!(matches!(
            open(&nn, b"pw"),
            Err(EncryptedKeyError::BadNonce(12))
        ));
        let mut b = v;
        b["ciphertext"] = "!!!".into();
        let b = serde_json::to_vec(&b).expect("json");
        assert!(matches!(
            open(&b, b"pw"),
            Err(EncryptedKeyError::Base64("ciphertext"))
        ));
        assert!(matches!(
            open(b"not json", b"pw"),
            Err(EncryptedKeyError::Json(_))
        ));
    }
}
