//! Rule 4: `.sha256` sidecars match the file they describe.
//!
//! For every file `X.sha256` of the tree, `X` must exist and the sidecar must record
//! `X`'s SHA-256. Accepted sidecar bodies (one non-empty line, optionally followed by a
//! newline; surrounding whitespace and a `\r` are ignored):
//!
//! - `<hex>  <name>` (what `sha256sum` writes for text mode) and `<hex> *<name>` (binary);
//! - a bare `<hex>`;
//! - `SHA256 (<name>) = <hex>` (BSD / `sha256sum --tag`).
//!
//! `<hex>` is 64 hex digits (either case); `<name>` must be `X`'s base name or its
//! tree-relative path, optionally with a leading `./`. Sidecars larger than
//! [`MAX_SIDECAR`] bytes are malformed. `debug/debug-manifest.json.sha256` is checked by the
//! debug store rule and skipped here, so a mismatch there is reported once.

use std::path::Path;

use super::walk::read_small;
use super::{DEBUG_MANIFEST_SHA256, Index, LayoutError, Violation, base_name};

/// The largest sidecar read (a digest line with a long path fits many times over).
pub const MAX_SIDECAR: u64 = 64 * 1024;

/// The suffix of a sidecar's name.
pub const SIDECAR_SUFFIX: &str = ".sha256";

/// A parsed sidecar line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarLine {
    pub sha256: [u8; 32],
    /// The file name it records, if any (`None` for a bare digest).
    pub name: Option<String>,
}

/// Parses a sidecar body; the error says what is wrong.
pub fn parse_sidecar(body: &[u8]) -> Result<SidecarLine, String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text".to_owned())?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().ok_or_else(|| "empty".to_owned())?;
    if lines.next().is_some() {
        return Err("more than one line".to_owned());
    }
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest.rsplit_once(") = ").ok_or_else(|| {
            "malformed BSD-style line (expected `SHA256 (name) = hex`)".to_owned()
        })?;
        return Ok(SidecarLine {
            sha256: parse_hex_digest(hex.trim())?,
            name: Some(name.to_owned()),
        });
    }
    let (hex, rest) = match line.find([' ', '\t']) {
        Some(i) => line.split_at(i),
        None => (line, ""),
    };
    let sha256 = parse_hex_digest(hex)?;
    if rest.is_empty() {
        return Ok(SidecarLine { sha256, name: None });
    }
    // `<hex>  <name>` or `<hex> *<name>`; be lenient about the separator's exact width.
    let name = rest.trim_start_matches([' ', '\t']);
    let name = name.strip_prefix('*').unwrap_or(name);
    if name.is_empty() {
        return Err("no file name after the digest".to_owned());
    }
    Ok(SidecarLine {
        sha256,
        name: Some(name.to_owned()),
    })
}

/// 64 hex digits (either case) to bytes.
pub(crate) fn parse_hex_digest(hex: &str) -> Result<[u8; 32], String> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hex:?} is not a 64-digit hex SHA-256"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).map_err(|e| format!("{hex:?}: {e}"))?;
    Ok(out)
}

/// Whether `name` (from a sidecar of `target`) designates `target`.
pub(crate) fn name_matches(name: &str, target: &str) -> bool {
    let name = name.strip_prefix("./").unwrap_or(name);
    name == base_name(target) || name == target
}

/// Checks `target` (tree-relative) against the sidecar body `body` read from `sidecar`.
pub(crate) fn check_one(
    sidecar: &str,
    body: &[u8],
    target: &str,
    actual: &[u8; 32],
) -> Option<Violation> {
    let line = match parse_sidecar(body) {
        Ok(l) => l,
        Err(reason) => {
            return Some(Violation::SidecarMalformed {
                path: sidecar.to_owned(),
                reason,
            });
        }
    };
    if let Some(name) = &line.name
        && !name_matches(name, target)
    {
        return Some(Violation::SidecarName {
            path: sidecar.to_owned(),
            name: name.clone(),
            expected: base_name(target).to_owned(),
        });
    }
    if &line.sha256 != actual {
        return Some(Violation::SidecarMismatch {
            path: sidecar.to_owned(),
            target: target.to_owned(),
            expected: hex::encode(line.sha256),
            actual: hex::encode(actual),
        });
    }
    None
}

pub(crate) fn check(
    root: &Path,
    index: &Index<'_>,
    out: &mut Vec<Violation>,
) -> Result<(), LayoutError> {
    for (&path, _) in index.iter() {
        let Some(target) = path.strip_suffix(SIDECAR_SUFFIX) else {
            continue;
        };
        if path == DEBUG_MANIFEST_SHA256 {
            continue;
        }
        let Some(target_entry) = index.get(target) else {
            out.push(Violation::SidecarTargetMissing {
                path: path.to_owned(),
                target: target.to_owned(),
            });
            continue;
        };
        let body = match read_small(root, path, MAX_SIDECAR) {
            Ok(b) => b,
            Err(e) => {
                out.push(Violation::SidecarMalformed {
                    path: path.to_owned(),
                    reason: e.violation_reason()?,
                });
                continue;
            }
        };
        if let Some(v) = check_one(path, &body, target, &target_entry.sha256) {
            out.push(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_the_accepted_forms() {
        let d = parse_hex_digest(HEX).expect("hex");
        for (body, name) in [
            (format!("{HEX}  a.json\n"), Some("a.json")),
            (format!("{HEX} *a.json\r\n"), Some("a.json")),
            (format!("{HEX}\n"), None),
            (
                format!("{}  dir/a.json", HEX.to_uppercase()),
                Some("dir/a.json"),
            ),
            (format!("SHA256 (a.json) = {HEX}\n"), Some("a.json")),
        ] {
            let l = parse_sidecar(body.as_bytes()).expect(&body);
            assert_eq!(l.sha256, d, "{body}");
            assert_eq!(l.name.as_deref(), name, "{body}");
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [
            "".to_owned(),
            "\n\n".to_owned(),
            "abc  a.json".to_owned(),
            format!("{HEX}  a\n{HEX}  b\n"),
            format!("{}zz  a", &HEX[..62]),
            format!("{HEX}  *"),
            "SHA256 (a) abc".to_owned(),
        ] {
            assert!(parse_sidecar(body.as_bytes()).is_err(), "{body:?}");
        }
        assert!(parse_sidecar(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn names_match_base_name_or_path() {
        assert!(name_matches("a.json", "x/y/a.json"));
        assert!(name_matches("./a.json", "x/y/a.json"));
        assert!(name_matches("x/y/a.json", "x/y/a.json"));
        assert!(!name_matches("b.json", "x/y/a.json"));
        assert!(!name_matches("y/a.json", "x/y/a.json"));
    }
}
