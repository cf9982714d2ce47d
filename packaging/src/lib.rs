//! Signing and checking ouk's own packages (.deb, .rpm), the files an operator carries to an
//! air-gapped host before anything else.
//!
//! Each package `P` gets two sidecars an operator checks with the tools they already use:
//! `P.sha256` (`sha256sum -c` format) and `P.sig`, a cosign blob signature
//! (`cosign verify-blob --key ouk-packages.pub --signature P.sig P`, or openssl, see
//! [`ouk_kit::sign::sign_blob`]).
//!
//! Invariants:
//! - The signing key is always the [`KeyRole::Package`] key derived from the release key
//!   given ([`package_key`]), never the release key itself: a host that trusts the release
//!   key for kits never accepts a package signature as a kit signature (the derived key is
//!   another key), whatever the signed bytes are.
//! - Only packages are signed: [`sign_package`] refuses a file that is not a Debian binary
//!   package (an `ar` archive starting with `debian-binary`) or an RPM (its lead magic), so
//!   the package role never signs a kit bundle, a manifest or anything else by mistake.
//! - Verification reads the sidecars as untrusted input: the digest line must name this
//!   file and carry exactly 64 hex digits; the signature is checked with strict base64/DER.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ouk_kit::sign::{BlobError, KeyError, KeyRole, SigningKey, VerifyingKey};

/// What went wrong signing or checking a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error(
        "{path}: not a .deb or .rpm package (found {found}); the package key signs only packages"
    )]
    NotAPackage { path: PathBuf, found: String },
    #[error("{path}: {source}")]
    Signature { path: PathBuf, source: BlobError },
    #[error("{path}: the .sha256 sidecar is not `<64 hex digits>  {name}`")]
    DigestSidecar { path: PathBuf, name: String },
    #[error("{path}: SHA-256 is {actual}, the .sha256 sidecar says {expected}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// The key that signs packages: the [`KeyRole::Package`] key derived from `release_key`.
pub fn package_key(release_key: &SigningKey) -> SigningKey {
    release_key.derive_for_role(KeyRole::Package)
}

/// What [`sign_package`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPackage {
    /// SHA-256 of the package, lower-case hex.
    pub sha256: String,
    /// The `.sha256` sidecar.
    pub digest_file: PathBuf,
    /// The `.sig` sidecar (cosign blob signature, base64 and a newline).
    pub signature_file: PathBuf,
}

/// The kind of package `head` (the first bytes of a file) starts, if any.
fn package_kind(head: &[u8]) -> Option<&'static str> {
    // dpkg-deb: an ar archive whose first member is `debian-binary`.
    if head.starts_with(b"!<arch>\ndebian-binary") {
        return Some("deb");
    }
    // rpm: the 96-byte lead starts with ed ab ee db.
    if head.starts_with(&[0xed, 0xab, 0xee, 0xdb]) {
        return Some("rpm");
    }
    None
}

/// `path` with `suffix` appended to its file name (`ouk.deb` -> `ouk.deb.sig`).
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of the file at `path`, refusing anything that is not a package.
fn package_sha256(path: &Path) -> Result<[u8; 32], PackageError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut head = [0u8; 21];
    let mut got = 0;
    while got < head.len() {
        let n = file.read(&mut head[got..]).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = head.get(..got).unwrap_or_default();
    if package_kind(head).is_none() {
        return Err(PackageError::NotAPackage {
            path: path.to_path_buf(),
            found: format!("first bytes {}", hex::encode(head.get(..8).unwrap_or(head))),
        });
    }
    let rest = fs::File::open(path).map_err(io_err(path))?;
    ouk_kit::sign::sha256_reader(rest).map_err(io_err(path))
}

/// Write `path.sha256` and `path.sig` (the package key's cosign blob signature) for the
/// package at `path`. Refuses files that are not packages (see the module invariants).
pub fn sign_package(key: &SigningKey, path: &Path) -> Result<SignedPackage, PackageError> {
    let digest = package_sha256(path)?;
    let sig = ouk_kit::sign::sign_blob_sha256(key, &digest).map_err(|source| {
        PackageError::Signature {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let sha256 = hex::encode(digest);
    let name = file_name(path);
    let digest_file = sidecar(path, ".sha256");
    let signature_file = sidecar(path, ".sig");
    fs::write(&digest_file, format!("{sha256}  {name}\n")).map_err(io_err(&digest_file))?;
    fs::write(&signature_file, format!("{sig}\n")).map_err(io_err(&signature_file))?;
    Ok(SignedPackage {
        sha256,
        digest_file,
        signature_file,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Check the package at `path` against its `.sha256` and `.sig` sidecars and `key` (the
/// package public key). Returns the SHA-256 (hex).
pub fn verify_package(key: &VerifyingKey, path: &Path) -> Result<String, PackageError> {
    let digest = package_sha256(path)?;
    let actual = hex::encode(digest);
    let digest_file = sidecar(path, ".sha256");
    let line = fs::read_to_string(&digest_file).map_err(io_err(&digest_file))?;
    let name = file_name(path);
    let expected = parse_digest_line(&line, &name).ok_or_else(|| PackageError::DigestSidecar {
        path: digest_file.clone(),
        name: name.clone(),
    })?;
    if expected != actual {
        return Err(PackageError::DigestMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    let sig_file = sidecar(path, ".sig");
    let sig = fs::read_to_string(&sig_file).map_err(io_err(&sig_file))?;
    ouk_kit::sign::verify_blob_sha256(key, &digest, &sig).map_err(|source| {
        PackageError::Signature {
            path: sig_file,
            source,
        }
    })?;
    Ok(actual)
}

/// The digest of a `sha256sum` line `<64 hex>  <name>` (or ` *<name>`, binary mode) naming
/// `name`, lower-cased; `None` for anything else.
fn parse_digest_line(text: &str, name: &str) -> Option<String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let (hex_part, rest) = line.split_at_checked(64)?;
    let named = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    let valid = hex_part.bytes().all(|b| b.is_ascii_hexdigit());
    (valid && named == name).then(|| hex_part.to_ascii_lowercase())
}

/// Read the release key (cosign encrypted PEM) at `path` with `password`.
pub fn load_release_key(path: &Path, password: Option<&[u8]>) -> Result<SigningKey, PackageError> {
    SigningKey::from_pem_file(path, password).map_err(|source| PackageError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// Read a public key (PKIX PEM) at `path`.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, PackageError> {
    VerifyingKey::from_pem_file(path).map_err(|source| PackageError::Key {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
