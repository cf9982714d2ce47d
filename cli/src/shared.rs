//! Helpers more than one command uses, so no command file imports another for them: a
//! library error as a [`Failure`] (exit code from its class, the binary's flag hint
//! added), loading keys, parsing sizes.

use std::path::PathBuf;

use ouk_kit::sign::{SigningKey, VerifyingKey};

use crate::Failure;
use crate::exit::{ExitCode, class_code};
use crate::hint;

/// A kit error as a failure (its class's exit code, the flag hint added).
pub fn kit_failure(e: ouk_kit::KitError) -> Failure {
    Failure::new(class_code(e.class()), hint::message(&e, hint::for_kit(&e)))
}

/// The key password from `COSIGN_PASSWORD`, if set.
pub fn password() -> Option<Vec<u8>> {
    std::env::var_os("COSIGN_PASSWORD").map(|p| p.into_encoded_bytes())
}

/// The signing key at `path` (its password from `COSIGN_PASSWORD`).
pub fn load_signing_key(path: &std::path::Path) -> Result<SigningKey, Failure> {
    if !path.is_file() {
        return Err(Failure::new(
            ExitCode::Failure,
            format!("{}: not found", path.display()),
        ));
    }
    let pw = password();
    SigningKey::from_pem_file(path, pw.as_deref()).map_err(|e| {
        Failure::new(
            ExitCode::Signature,
            format!(
                "{}: {e} (the password comes from COSIGN_PASSWORD)",
                path.display()
            ),
        )
    })
}

/// The public keys at `paths`.
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
            VerifyingKey::from_pem_file(p)
                .map_err(|e| Failure::new(ExitCode::Signature, format!("{}: {e}", p.display())))
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

/// Parses `4GiB`, `700MiB`, `500MB`, `1000000` (the grammar of `ouk-testdata --size`, plus
/// terabytes). At least 1 byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 4GiB, 700MiB, 1000000)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?} (use KiB, MiB, GiB, ...)"
            ));
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        return Err("the size must be at least 1 byte".into());
    }
    Ok(v)
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
