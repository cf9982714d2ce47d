//! ECDSA P-256 keys: [`SigningKey`] and [`VerifyingKey`], their PEM forms and their `kid`.
//!
//! Private keys are read from cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`,
//! or the legacy `ENCRYPTED COSIGN PRIVATE KEY`), from PKCS#8 PEM (`PRIVATE KEY`) and from
//! SEC1 PEM (`EC PRIVATE KEY`, possibly preceded by an `EC PARAMETERS` block as
//! `openssl ecparam -genkey` writes). They are written only in cosign's encrypted format.
//! Public keys are PKIX PEM (`PUBLIC KEY`) both ways.
//!
//! Invariants:
//! - Only P-256 keys load; any other curve or algorithm is a [`KeyError`], never a panic.
//! - Secret scalars are zeroized on drop and never printed (`Debug` shows the `kid` only).
//! - `kid` is the RFC 7638 JWK thumbprint: base64url (no padding) of SHA-256 over
//!   `{"crv":"P-256","kty":"EC","x":"..","y":".."}` with x, y the 32-byte big-endian
//!   coordinates in base64url without padding. It is the same for a signing key and its
//!   verifying key.
//! - Key files are never overwritten: [`write_key_pair`] refuses existing paths, and writes
//!   the private key with mode 0600 on Unix.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};

use ouk_trust::PemError;
use ouk_trust::keys::PemBlock;

use super::encrypted::{self, EncryptedKeyError};

/// PEM label of a PKCS#8 private key.
pub const PKCS8_LABEL: &str = "PRIVATE KEY";
/// PEM label of a SEC1 EC private key.
pub const SEC1_LABEL: &str = "EC PRIVATE KEY";
/// PEM label of a PKIX (SubjectPublicKeyInfo) public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Why a key could not be read, decoded, generated or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: refusing to overwrite an existing key file", .0.display())]
    Exists(PathBuf),
    #[error("{}: not a text (UTF-8) PEM file", .0.display())]
    NotText(PathBuf),
    #[error("no PEM block found (expected -----BEGIN ...-----)")]
    NotPem,
    #[error("malformed PEM block {label:?}: {reason}")]
    Pem { label: String, reason: String },
    #[error("no {wanted} PEM block found (found: {found})")]
    NoSuchBlock { wanted: &'static str, found: String },
    #[error("the key is encrypted: a password is required (COSIGN_PASSWORD)")]
    PasswordRequired,
    #[error(
        "refusing to encrypt a new private key under an empty password: anyone who copies the file could sign (set COSIGN_PASSWORD)"
    )]
    EmptyPassword,
    #[error(transparent)]
    Encrypted(#[from] EncryptedKeyError),
    #[error("not an ECDSA P-256 PKCS#8 private key: {0}")]
    Pkcs8(String),
    #[error("not a P-256 SEC1 EC private key: {0}")]
    Sec1(String),
    #[error("not an ECDSA P-256 PKIX public key: {0}")]
    Spki(String),
    #[error("encoding the key failed: {0}")]
    Encode(String),
    #[error("system random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// An ECDSA P-256 private key. Signing with it is deterministic (RFC 6979).
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: p256::ecdsa::VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid())
            .finish()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant-time comparison of the secret scalars (p256's `PartialEq`).
        self.inner == other.inner
    }
}

impl Eq for SigningKey {}

impl SigningKey {
    /// A fresh random key from the OS RNG.
    pub fn generate() -> Result<Self, KeyError> {
        let inner = p256::ecdsa::SigningKey::try_generate().map_err(KeyError::Rng)?;
        Ok(Self { inner })
    }

    /// Reads the first private-key PEM block of `pem`: cosign encrypted (needs `password`;
    /// an empty password is a valid cosign password), PKCS#8 or SEC1. Other blocks (for
    /// example `EC PARAMETERS`) are skipped. `password` is ignored for unencrypted keys.
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let blocks = pem_blocks(pem)?;
        let block = blocks
            .iter()
            .find(|b| {
                matches!(
                    b.label.as_str(),
                    encrypted::PEM_LABEL | encrypted::LEGACY_PEM_LABEL | PKCS8_LABEL | SEC1_LABEL
                )
            })
            .ok_or_else(|| KeyError::NoSuchBlock {
                wanted: "private key",
                found: labels(&blocks),
            })?;
        let der = decode_block(block)?;
        match block.label.as_str() {
            PKCS8_LABEL => Self::from_pkcs8_der(&der),
            SEC1_LABEL => {
                let secret = p256::SecretKey::from_sec1_der(&der)
                    .map_err(|e| KeyError::Sec1(e.to_string()))?;
                Ok(Self {
                    inner: p256::ecdsa::SigningKey::from(&secret),
                })
            }
            _ => {
                let password = password.ok_or(KeyError::PasswordRequired)?;
                let pkcs8 = encrypted::open(&der, password)?;
                Self::from_pkcs8_der(&pkcs8)
            }
        }
    }

    /// [`SigningKey::from_pem`] on the contents of a file.
    pub fn from_pem_file(path: &Path, password: Option<&[u8]>) -> Result<Self, KeyError> {
        Self::from_pem(&read_text(path)?, password)
    }

    /// A key from PKCS#8 DER (what cosign's container holds).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let inner = p256::ecdsa::SigningKey::from_pkcs8_der(der)
            .map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The key as PKCS#8 DER (secret: zeroized on drop).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let doc = self
            .inner
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`; secret: zeroized on drop).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let der = self.to_pkcs8_der()?;
        pem::encode_string(PKCS8_LABEL, pem::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The key in cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY` PEM), scrypt
    /// N=32768 r=8 p=1, random salt and nonce: two calls give different (equally valid)
    /// files.
    pub fn to_cosign_pem(&self, password: &[u8]) -> Result<String, KeyError> {
        let der = self.to_pkcs8_der()?;
        let container = encrypted::seal(&der, password)?;
        pem::encode_string(encrypted::PEM_LABEL, pem::LineEnding::LF, &container)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// RFC 7638 thumbprint of the public half.
    pub fn kid(&self) -> String {
        self.verifying_key().kid()
    }

    /// The p256 key itself (the quota token signer in ouk-kit signs with it).
    pub fn inner(&self) -> &p256::ecdsa::SigningKey {
        &self.inner
    }

    /// The p256 key, for signers outside this crate (ouk-trust's documents).
    pub fn as_p256(&self) -> &p256::ecdsa::SigningKey {
        &self.inner
    }

    /// The key this key derives for signing files of `role`: a separate key, so a
    /// signature made for that role never verifies as one made by this key.
    ///
    /// Why: a cosign blob signature signs whatever bytes it is given. A kit key that signs
    /// a plug-in supplier's DLL signs attacker-chosen bytes, which can be a bundle (the
    /// review's attack), or the signing input of a JWS or a DSSE envelope. Domain
    /// separation inside the signed message cannot help while one key also signs raw
    /// blobs, so raw blobs of other parties are signed by a derived key instead; the kit
    /// key only ever signs bytes ouk produced (bundles, manifests, attestations).
    ///
    /// Derivation: HKDF-SHA256 (RFC 5869) with the secret scalar as input keying material
    /// and `ouk signing role <role> v1` as info, one output block per attempt, with a
    /// counter for the (2^-32-likely) block that is not a valid scalar. Written with the
    /// `hmac` crate already in the tree: the three HMAC calls are the whole of HKDF for one
    /// block, and the derivation is part of what hosts verify against (tested by value).
    pub fn derive_for_role(&self, role: KeyRole) -> SigningKey {
        use hmac::{Hmac, KeyInit, Mac};
        type HmacSha256 = Hmac<sha2::Sha256>;
        let secret = Zeroizing::new(self.inner.to_bytes());
        // HKDF-Extract with a fixed salt naming the scheme.
        let prk = {
            let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(b"ouk key derivation") else {
                unreachable!("HMAC takes keys of any length")
            };
            mac.update(secret.as_slice());
            Zeroizing::new(mac.finalize().into_bytes())
        };
        for attempt in 0u8..=255 {
            let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(prk.as_slice()) else {
                unreachable!("HMAC takes keys of any length")
            };
            mac.update(format!("ouk signing role {} v1", role.name()).as_bytes());
            mac.update(&[attempt]);
            // HKDF-Expand's block counter (T(1) = HMAC(PRK, info || 0x01)).
            mac.update(&[1]);
            let okm = Zeroizing::new(mac.finalize().into_bytes());
            if let Ok(inner) = p256::ecdsa::SigningKey::from_slice(okm.as_slice()) {
                return SigningKey { inner };
            }
        }
        unreachable!("256 HKDF blocks in a row outside the P-256 scalar range")
    }
}

/// What a derived key signs ([`SigningKey::derive_for_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Third-party files shipped in a kit: analyzer plug-in DLLs and their manifests.
    Plugin,
    /// ouk's own installable packages (.deb, .rpm; packaging/): a package signature made
    /// with the derived key never verifies as a kit signature of the same operator key.
    Package,
}

impl KeyRole {
    /// The role's name in the derivation and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Plugin => "plugin",
            KeyRole::Package => "package",
        }
    }
}

impl VerifyingKey {
    /// Reads the first `PUBLIC KEY` (PKIX) block of `pem`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let blocks = pem_blocks(pem)?;
        let block = blocks
            .iter()
            .find(|b| b.label == PUBLIC_KEY_LABEL)
            .ok_or_else(|| KeyError::NoSuchBlock {
                wanted: PUBLIC_KEY_LABEL,
                found: labels(&blocks),
            })?;
        Self::from_der(&decode_block(block)?)
    }

    /// [`VerifyingKey::from_pem`] on the contents of a file.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_pem(&read_text(path)?)
    }

    /// A key from PKIX (SubjectPublicKeyInfo) DER.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let inner = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|e| KeyError::Spki(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The key as PKIX PEM (`BEGIN PUBLIC KEY`, LF line endings, trailing newline).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.inner
            .to_public_key_pem(pem::LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The RFC 7638 canonical JWK: `{"crv":"P-256","kty":"EC","x":"..","y":".."}`.
    pub fn jwk(&self) -> String {
        let point = self.inner.to_sec1_point(false);
        // A valid P-256 point's uncompressed SEC1 form is 0x04 || x (32) || y (32).
        let xy = point.as_bytes().get(1..).unwrap_or_default();
        let (x, y) = xy.split_at_checked(32).unwrap_or_default();
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            Base64UrlUnpadded::encode_string(x),
            Base64UrlUnpadded::encode_string(y)
        )
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn kid(&self) -> String {
        Base64UrlUnpadded::encode_string(&Sha256::digest(self.jwk().as_bytes()))
    }

    /// The p256 key itself (the quota token verifier in ouk-kit checks with it).
    pub fn inner(&self) -> &p256::ecdsa::VerifyingKey {
        &self.inner
    }

    /// The p256 key, for verifiers outside this crate (ouk-trust's documents).
    pub fn as_p256(&self) -> &p256::ecdsa::VerifyingKey {
        &self.inner
    }

    /// A key from a p256 one.
    pub fn from_p256(inner: p256::ecdsa::VerifyingKey) -> Self {
        Self { inner }
    }
}

/// Generates a key and writes `<prefix>.key` (cosign encrypted format under `password`,
/// mode 0600) and `<prefix>.pub` (PKIX PEM), as `cosign generate-key-pair` does, making
/// the prefix's directory when it is missing. Refuses to overwrite either file, and an empty
/// password (cosign reads such keys, so [`SigningKey::from_pem`] does too, but a key made
/// here is never that weak). Returns the generated key.
pub fn write_key_pair(prefix: &Path, password: &[u8]) -> Result<SigningKey, KeyError> {
    if password.is_empty() {
        return Err(KeyError::EmptyPassword);
    }
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    // Like `cosign generate-key-pair --output-key-prefix`, a missing directory is made
    // (0700: it is about to hold a private key).
    if let Some(dir) = key_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeyError::Io {
                path: dir.to_owned(),
                source,
            })?;
    }
    let key = SigningKey::generate()?;
    let private_pem = key.to_cosign_pem(password)?;
    let public_pem = key.verifying_key().to_pem()?;
    write_new(&key_path, private_pem.as_bytes(), 0o600)?;
    write_new(&pub_path, public_pem.as_bytes(), 0o644)?;
    Ok(key)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::NotText(path.to_owned()))
}

/// The block's DER (or, for cosign, JSON) bytes; zeroized on drop as it may be secret.
fn decode_block(block: &PemBlock<'_>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (_, bytes) = pem::decode_vec(block.text.as_bytes()).map_err(|e| KeyError::Pem {
        label: block.label.clone(),
        reason: e.to_string(),
    })?;
    Ok(Zeroizing::new(bytes))
}

/// Splits a text into its PEM blocks (ouk-trust's splitter; its two refusals carry the same
/// messages as ours).
fn pem_blocks(input: &str) -> Result<Vec<PemBlock<'_>>, KeyError> {
    ouk_trust::keys::pem_blocks(input).map_err(|e| match e {
        PemError::NotPem => KeyError::NotPem,
        PemError::Pem { label, reason } => KeyError::Pem { label, reason },
        other => KeyError::Pem {
            label: String::new(),
            reason: other.to_string(),
        },
    })
}

fn labels(blocks: &[PemBlock<'_>]) -> String {
    blocks
        .iter()
        .map(|b| b.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::testutil::{
        fixture_key, fixture_pub, require_python_module, require_tool, run_ok,
    };
    use std::ffi::OsStr;

    #[test]
    fn cosign_fixture_decrypts_to_the_fixture_public_key() {
        let key = SigningKey::from_pem(&fixture_key(), Some(b"hello")).expect("fixture key");
        let public = VerifyingKey::from_pem(&fixture_pub()).expect("fixture pub");
        assert_eq!(key.verifying_key(), public);
        assert_eq!(key.kid(), public.kid());
        // The PKIX PEM we write for it is byte-identical to cosign's.
        assert_eq!(public.to_pem().expect("pem"), fixture_pub());
    }

    #[test]
    fn cosign_fixture_with_wrong_or_missing_password_fails() {
        let wrong = SigningKey::from_pem(&fixture_key(), Some(b"hellO"));
        assert!(matches!(
            wrong,
            Err(KeyError::Encrypted(EncryptedKeyError::Decrypt))
        ));
        let missing = SigningKey::from_pem(&fixture_key(), None);
        assert!(matches!(missing, Err(KeyError::PasswordRequired)));
    }

    #[test]
    fn generate_write_encrypted_read_back_is_the_same_key() {
        let key = SigningKey::generate().expect("generate");
        let pem = key.to_cosign_pem(b"pw").expect("write");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = SigningKey::from_pem(&pem, Some(b"pw")).expect("read back");
        assert_eq!(back, key);
        let empty = key.to_cosign_pem(b"").expect("write");
        assert_eq!(
            SigningKey::from_pem(&empty, Some(b"")).expect("empty pw"),
            key
        );
    }

    /// Independent reader of cosign's format: python hashlib.scrypt + PyNaCl secretbox +
    /// `cryptography`'s PKCS#8 parser; prints the public key as PKIX PEM.
    const PY_COSIGN_OPEN: &str = r#"
import sys, json, base64, hashlib
from nacl.secret import SecretBox
from cryptography.hazmat.primitives import serialization
text = open(sys.argv[1]).read().strip().splitlines()
assert text[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----", text[0]
assert text[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----", text[-1]
c = json.loads(base64.b64decode("".join(text[1:-1])))
assert c["kdf"]["name"] == "scrypt" and c["cipher"]["name"] == "nacl/secretbox"
p = c["kdf"]["params"]
key = hashlib.scrypt(sys.argv[2].encode(), salt=base64.b64decode(c["kdf"]["salt"]),
                     n=p["N"], r=p["r"], p=p["p"], maxmem=128 * 1024 * 1024, dklen=32)
der = SecretBox(key).decrypt(base64.b64decode(c["ciphertext"]), base64.b64decode(c["cipher"]["nonce"]))
priv = serialization.load_der_private_key(der, password=None)
sys.stdout.write(priv.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"#;

    #[test]
    fn python_nacl_opens_the_cosign_key_we_write() {
        require_python_module("nacl.secret", "pynacl");
        require_python_module("cryptography", "cryptography");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("open.py");
        std::fs::write(&script, PY_COSIGN_OPEN).expect("write");
        // The real cosign fixture first: proves the script reads cosign's own output.
        let fixture = dir.path().join("fixture.key");
        std::fs::write(&fixture, fixture_key()).expect("write");
        let out = run_ok(
            "python3",
            [script.as_os_str(), fixture.as_os_str(), "hello".as_ref()],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), fixture_pub());
        // Then a key we wrote.
        let key = SigningKey::generate().expect("generate");
        let ours = dir.path().join("ours.key");
        std::fs::write(&ours, key.to_cosign_pem(b"s3cret").expect("pem")).expect("write");
        let out = run_ok(
            "python3",
            [script.as_os_str(), ours.as_os_str(), "s3cret".as_ref()],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            key.verifying_key().to_pem().expect("pem")
        );
    }

    #[test]
    fn write_key_pair_makes_a_missing_directory_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path().join("keys/site/ouk");
        write_key_pair(&prefix, b"pw").expect("write pair");
        assert!(dir.path().join("keys/site/ouk.key").is_file());
        assert!(dir.path().join("keys/site/ouk.pub").is_file());
        let mode = std::fs::metadata(dir.path().join("keys/site"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn write_key_pair_refuses_an_empty_password_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path().join("keys/cosign");
        assert!(matches!(
            write_key_pair(&prefix, b""),
            Err(KeyError::EmptyPassword)
        ));
        assert!(!with_suffix(&prefix, ".key").exists());
        assert!(!with_suffix(&prefix, ".pub").exists());
        assert!(!dir.path().join("keys").exists());
    }

    #[test]
    fn write_key_pair_writes_both_files_and_refuses_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path().join("cosign");
        let key = write_key_pair(&prefix, b"pw").expect("write pair");
        let read = SigningKey::from_pem_file(&dir.path().join("cosign.key"), Some(b"pw"))
            .expect("read key");
        let public = VerifyingKey::from_pem_file(&dir.path().join("cosign.pub")).expect("pub");
        assert_eq!(read, key);
        assert_eq!(public, key.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("cosign.key"))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_key_pair(&prefix, b"pw"),
            Err(KeyError::Exists(_))
        ));
    }

    #[test]
    fn plain_pkcs8_and_sec1_pem_load() {
        let key = SigningKey::generate().expect("generate");
        let pkcs8 = key.to_pkcs8_pem().expect("pkcs8");
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(SigningKey::from_pem(&pkcs8, None).expect("pkcs8"), key);

        let secret = p256::SecretKey::from(key.inner().as_nonzero_scalar());
        let sec1 = secret.to_sec1_pem(pem::LineEnding::LF).expect("sec1");
        // openssl ecparam -genkey puts an EC PARAMETERS block first.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            sec1.as_str()
        );
        assert_eq!(SigningKey::from_pem(&with_params, None).expect("sec1"), key);
    }

    #[test]
    fn openssl_generated_keys_load() {
        require_tool("openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        let sec1 = dir.path().join("sec1.pem");
        let pkcs8 = dir.path().join("pkcs8.pem");
        let public = dir.path().join("pub.pem");
        let (sec1_s, pkcs8_s, public_s) = (sec1.as_os_str(), pkcs8.as_os_str(), public.as_os_str());
        run_ok(
            "openssl",
            [
                OsStr::new("ecparam"),
                "-name".as_ref(),
                "prime256v1".as_ref(),
                "-genkey".as_ref(),
                "-out".as_ref(),
                sec1_s,
            ],
        );
        run_ok(
            "openssl",
            [
                OsStr::new("pkcs8"),
                "-topk8".as_ref(),
                "-nocrypt".as_ref(),
                "-in".as_ref(),
                sec1_s,
                "-out".as_ref(),
                pkcs8_s,
            ],
        );
        run_ok(
            "openssl",
            [
                OsStr::new("ec"),
                "-pubout".as_ref(),
                "-in".as_ref(),
                sec1_s,
                "-out".as_ref(),
                public_s,
            ],
        );
        let a = SigningKey::from_pem_file(&sec1, None).expect("sec1");
        let b = SigningKey::from_pem_file(&pkcs8, None).expect("pkcs8");
        let p = VerifyingKey::from_pem_file(&public).expect("pub");
        assert_eq!(a, b);
        assert_eq!(a.verifying_key(), p);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 has no P-256 vector; this recomputes the definition independently from the
        // fixture's SPKI bytes (uncompressed point = last 65 bytes of the DER).
        let public = VerifyingKey::from_pem(&fixture_pub()).expect("pub");
        let der = pem::decode_vec(fixture_pub().as_bytes()).expect("pem").1;
        let point = &der[der.len() - 64..];
        let jwk = format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            Base64UrlUnpadded::encode_string(&point[..32]),
            Base64UrlUnpadded::encode_string(&point[32..])
        );
        assert_eq!(public.jwk(), jwk);
        let kid = Base64UrlUnpadded::encode_string(&Sha256::digest(jwk.as_bytes()));
        assert_eq!(public.kid(), kid);
        assert_eq!(kid.len(), 43);
    }

    #[test]
    fn garbage_and_wrong_kinds_are_typed_errors() {
        assert!(matches!(
            SigningKey::from_pem("hello", None),
            Err(KeyError::NotPem)
        ));
        assert!(matches!(
            SigningKey::from_pem(&fixture_pub(), None),
            Err(KeyError::NoSuchBlock { .. })
        ));
        assert!(matches!(
            VerifyingKey::from_pem(&fixture_key()),
            Err(KeyError::NoSuchBlock { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n", None),
            Err(KeyError::Pem { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
                None
            ),
            Err(KeyError::Pkcs8(_))
        ));
        assert!(matches!(
            SigningKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
                None
            ),
            Err(KeyError::Pem { .. })
        ));
        // An Ed25519 public key is not a P-256 key.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(VerifyingKey::from_pem(ed), Err(KeyError::Spki(_))));
    }
}

#[cfg(test)]
mod role_tests {
    use super::*;
    use crate::sign::testutil::fixture_key;

    fn fixture() -> SigningKey {
        SigningKey::from_pem(&fixture_key(), Some(b"hello")).expect("fixture key")
    }

    #[test]
    fn the_plugin_key_is_another_key_and_stable() {
        let kit = fixture();
        let plugin = kit.derive_for_role(KeyRole::Plugin);
        assert_ne!(plugin.kid(), kit.kid(), "a derived key is a different key");
        assert_eq!(
            plugin,
            kit.derive_for_role(KeyRole::Plugin),
            "deterministic"
        );
        // Golden value: the derivation is part of what hosts verify plug-ins against (the
        // kit publishes the public half); a change here is a format change.
        assert_eq!(plugin.kid(), PLUGIN_KID_OF_FIXTURE);
        // A plug-in signature does not verify under the kit key.
        let digest = [7u8; 32];
        let sig = crate::sign::sign_blob_sha256(&plugin, &digest).expect("sign");
        assert!(crate::sign::verify_blob_sha256(&kit.verifying_key(), &digest, &sig).is_err());
        assert!(crate::sign::verify_blob_sha256(&plugin.verifying_key(), &digest, &sig).is_ok());
    }

    const PLUGIN_KID_OF_FIXTURE: &str = "HgsTN_yT3x2FtVZftIMP0waQ7fqaFMAhkqLgMgN5ygw";
}
