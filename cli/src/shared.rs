//! Helpers more than one command uses, so no command file imports another for them: a
//! library error as a [`Failure`] (exit code from its class, the binary's flag hint
//! added), loading keys, parsing sizes.

use std::path::PathBuf;

use ouk_kit::sign::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::Failure;
use crate::exit::{ExitCode, class_code};
use crate::hint;

/// A kit error as a failure (its class's exit code, the flag hint added).
pub fn kit_failure(e: ouk_kit::KitError) -> Failure {
    Failure::new(class_code(e.class()), hint::message(&e, hint::for_kit(&e)))
}

/// The key password from COSIGN_PASSWORD (scripts, CI), as cosign takes it.
pub fn env_password() -> Option<Zeroizing<Vec<u8>>> {
    std::env::var_os("COSIGN_PASSWORD").map(|p| Zeroizing::new(p.into_encoded_bytes()))
}

/// Ask for a password on the terminal with echo off (cosign's behaviour; never from argv).
/// `confirm`: ask twice and require the same answer (a new key). Fails, naming
/// COSIGN_PASSWORD, when there is no terminal to ask on.
pub fn prompt_password(prompt: &str, confirm: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let no_terminal = |e: std::io::Error| {
        Failure::new(
            ExitCode::Failure,
            format!("cannot ask for the key's password ({e}): no terminal; set COSIGN_PASSWORD"),
        )
    };
    let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(no_terminal)?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Enter the password again: ").map_err(no_terminal)?,
        );
        if *first != *again {
            return Err(Failure::new(
                ExitCode::Failure,
                "the two passwords differ; nothing was written",
            ));
        }
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}

/// A public key where a private key belongs (or the reverse) is a wrong argument, not a bad
/// signature: say which file to give instead.
fn wrong_key_kind(path: &std::path::Path, e: &ouk_kit::sign::KeyError) -> Option<Failure> {
    match e {
        ouk_kit::sign::KeyError::NoSuchBlock { wanted, found }
            if found.contains("PUBLIC KEY") && wanted.to_ascii_lowercase().contains("private") =>
        {
            Some(Failure::new(
                ExitCode::Usage,
                format!(
                    "{} is a public key; signing needs the private key (the .key file `ouk key generate` wrote beside the .pub)",
                    path.display()
                ),
            ))
        }
        ouk_kit::sign::KeyError::NoSuchBlock { wanted, found }
            if found.contains("PRIVATE KEY") && wanted.to_ascii_lowercase().contains("public") =>
        {
            Some(Failure::new(
                ExitCode::Usage,
                format!(
                    "{} is a private key; give the public key (.pub) here, and keep the private key on the signing host",
                    path.display()
                ),
            ))
        }
        _ => None,
    }
}

/// The signing key at `path`: its password is `given` (`--signing-password`), else
/// COSIGN_PASSWORD, else asked on the terminal.
pub fn load_signing_key_with(
    path: &std::path::Path,
    given: Option<&[u8]>,
) -> Result<SigningKey, Failure> {
    match given {
        None => load_signing_key(path),
        Some(pw) => {
            if !path.is_file() {
                return Err(Failure::new(
                    ExitCode::Failure,
                    format!("{}: not found", path.display()),
                ));
            }
            SigningKey::from_pem_file(path, Some(pw)).map_err(|e| {
                wrong_key_kind(path, &e).unwrap_or_else(|| {
                    Failure::new(ExitCode::Signature, format!("{}: {e}", path.display()))
                })
            })
        }
    }
}

/// The signing key at `path`: its password from COSIGN_PASSWORD, else asked on the terminal.
pub fn load_signing_key(path: &std::path::Path) -> Result<SigningKey, Failure> {
    if !path.is_file() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", path.display()),
        ));
    }
    let failure = |e: ouk_kit::sign::KeyError| {
        wrong_key_kind(path, &e).unwrap_or_else(|| {
            Failure::new(
                ExitCode::Signature,
                format!(
                    "{}: {e} (the password comes from COSIGN_PASSWORD or the terminal)",
                    path.display()
                ),
            )
        })
    };
    let env = env_password();
    match SigningKey::from_pem_file(path, env.as_ref().map(|p| p.as_slice())) {
        // Encrypted, and no COSIGN_PASSWORD: ask on the terminal, as cosign does.
        Err(ouk_kit::sign::KeyError::PasswordRequired) if env.is_none() => {
            let pw = prompt_password(
                &format!("Enter the password for {}: ", path.display()),
                false,
            )?;
            SigningKey::from_pem_file(path, Some(&pw)).map_err(failure)
        }
        other => other.map_err(failure),
    }
}

pub fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, Failure> {
    paths
        .iter()
        .map(|p| {
            if !p.is_file() {
                return Err(Failure::new(
                    ExitCode::Failure,
                    format!("{}: not found", p.display()),
                ));
            }
            VerifyingKey::from_pem_file(p).map_err(|e| {
                wrong_key_kind(p, &e).unwrap_or_else(|| {
                    Failure::new(ExitCode::Signature, format!("{}: {e}", p.display()))
                })
            })
        })
        .collect()
}

/// A transport error as a failure (its class's exit code, the flag hint added).
pub fn transport_failure(e: ouk_transport::TransportError) -> Failure {
    Failure::new(
        class_code(e.class()),
        hint::message(&e, hint::for_transport(&e)),
    )
}

/// A feed indexing error as a failure (its class's exit code, the flag hint added).
pub fn feed_failure(e: ouk_kit::feeds::FeedError) -> Failure {
    Failure::new(class_code(e.class()), hint::message(&e, hint::for_feed(&e)))
}

/// Parses `4GiB`, `700MiB`, `500MB`, `1000000` (the grammar of [`ouk_store::units`], also
/// `ouk-testdata --size`). At least 1 byte. A clap value parser, hence the `String` error.
pub fn parse_size(s: &str) -> Result<u64, String> {
    ouk_store::units::parse_size(s).map_err(|e| e.to_string())
}

/// [`parse_size`], where 0 is a valid answer (a margin, not a part size).
pub fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    ouk_store::units::parse_size_or_zero(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("700MiB"), Ok(700 << 20));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2tib"), Ok(2 << 40));
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
    }
}
