//! Trust material carried in a kit: every certificate under `certificates/` (for example
//! `certificates/russian_trusted_bundle.pem`, which Concelier's
//! `httpClients:source.bdu:trustedRootPaths` resolves offline) must be a bundle of PEM
//! X.509 certificates.
//!
//! The PEM framing is read here, line by line, so that every problem names the line it is
//! on (RFC 7468, strict for what is inside a block, lax for what is outside):
//! - text between blocks (`# Subject: ...`, `subject=...` lines that `openssl x509 -text`
//!   and CA bundles carry) is explanatory text and ignored, as RFC 7468 section 5.2 asks;
//!   binary bytes or control characters there, or a line that starts with `-----` but is
//!   no `BEGIN` line, are garbage and refused;
//! - a block is `-----BEGIN CERTIFICATE-----`, base64 lines (no headers), and the matching
//!   `-----END CERTIFICATE-----`; any other label (a key, a CSR) is refused, as is a block
//!   without its `END` line;
//! - the base64 body must decode exactly and the DER must be one X.509 certificate
//!   (RFC 5280, parsed by `x509-cert`) with nothing after it.
//!
//! A file with no certificate at all is refused too. Invariants: the parser never panics
//! on any input, reads only the bytes it is given (files are capped at
//! [`MAX_CERT_FILE_BYTES`] by [`check_file`]), and its errors name the file and the line.

use std::fmt;
use std::path::Path;

use x509_cert::der::Decode;

/// Where trust material lives in a release tree and in a kit.
pub const CERTIFICATES_DIR: &str = "certificates";
/// Largest certificate file accepted, bytes.
pub const MAX_CERT_FILE_BYTES: u64 = 16 << 20;

/// Whether the tree-relative `path` is a certificate file the build checks: under
/// `certificates/`, named `*.pem`, `*.crt` or `*.cer`.
pub fn is_certificate_path(path: &str) -> bool {
    path.strip_prefix(CERTIFICATES_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
        && [".pem", ".crt", ".cer"]
            .iter()
            .any(|ext| path.to_ascii_lowercase().ends_with(ext))
}

/// One certificate of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Line of its `BEGIN` line (1-based).
    pub line: usize,
    /// Its subject, as RFC 4514 text.
    pub subject: String,
}

/// What is wrong with a bundle, at one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    #[error("BEGIN {label} block has no END line (truncated)")]
    Truncated { label: String },
    #[error("END line without a BEGIN line")]
    StrayEnd,
    #[error("malformed encapsulation boundary {text:?}")]
    BadBoundary { text: String },
    #[error("END {end} does not match BEGIN {begin}")]
    MismatchedEnd { begin: String, end: String },
    #[error("a {label} block, not a CERTIFICATE")]
    NotCertificate { label: String },
    #[error("not base64 inside the PEM block")]
    Base64,
    #[error("the block's base64 does not decode")]
    Base64Decode,
    #[error("not an X.509 certificate: {reason}")]
    NotX509 { reason: String },
    #[error("binary data or control characters outside any PEM block")]
    Garbage,
    #[error("no certificate in the file")]
    Empty,
}

/// A certificate file that is not a valid PEM X.509 bundle.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The bundle is malformed at `line`.
    #[error("{path}: line {line}: {problem}")]
    Invalid {
        /// Tree-relative path.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        problem: PemProblem,
    },
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Tree-relative path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large to be a certificate bundle.
    #[error(
        "{path}: {size} bytes is past the {MAX_CERT_FILE_BYTES}-byte limit for a certificate file"
    )]
    TooLarge {
        /// Tree-relative path.
        path: String,
        /// Its size.
        size: u64,
    },
}

/// A line's text without its line ending.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The label of `-----BEGIN X-----` / `-----END X-----` (after trimming trailing blanks).
fn boundary<'a>(line: &'a [u8], kind: &str) -> Option<&'a [u8]> {
    let line = line.trim_ascii_end();
    let rest = line.strip_prefix(b"-----")?.strip_prefix(kind.as_bytes())?;
    let rest = rest.strip_prefix(b" ")?;
    rest.strip_suffix(b"-----")
}

fn is_base64_line(line: &[u8]) -> bool {
    !line.is_empty()
        && line
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn is_text(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|s| s.chars().all(|c| c == '\t' || !c.is_control()))
}

struct Open {
    line: usize,
    label: String,
    body: Vec<u8>,
}

/// Parse a PEM bundle of X.509 certificates; on failure, the 1-based line and the problem.
pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<CertificateInfo>, (usize, PemProblem)> {
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    let mut last_line = 0;
    for (i, raw) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        last_line = n;
        let line = trim_eol(raw);
        match open.take() {
            None => {
                if let Some(label) = boundary(line, "BEGIN") {
                    let label = String::from_utf8_lossy(label).into_owned();
                    if label != "CERTIFICATE" {
                        return Err((n, PemProblem::NotCertificate { label }));
                    }
                    open = Some(Open {
                        line: n,
                        label,
                        body: Vec::new(),
                    });
                } else if boundary(line, "END").is_some() {
                    return Err((n, PemProblem::StrayEnd));
                } else if line.starts_with(b"-----") {
                    return Err((
                        n,
                        PemProblem::BadBoundary {
                            text: String::from_utf8_lossy(line).chars().take(80).collect(),
                        },
                    ));
                } else if !is_text(line) {
                    return Err((n, PemProblem::Garbage));
                }
            }
            Some(mut block) => {
                if let Some(end) = boundary(line, "END") {
                    let end = String::from_utf8_lossy(end).into_owned();
                    if end != block.label {
                        return Err((
                            n,
                            PemProblem::MismatchedEnd {
                                begin: block.label,
                                end,
                            },
                        ));
                    }
                    out.push(certificate(&block)?);
                } else if boundary(line, "BEGIN").is_some() {
                    // A new block before this one ended: this one was cut short.
                    return Err((block.line, PemProblem::Truncated { label: block.label }));
                } else {
                    let l = line.trim_ascii();
                    if !is_base64_line(l) {
                        return Err((n, PemProblem::Base64));
                    }
                    block.body.extend_from_slice(l);
                    open = Some(block);
                }
            }
        }
    }
    if let Some(block) = open {
        return Err((block.line, PemProblem::Truncated { label: block.label }));
    }
    if out.is_empty() {
        return Err((last_line.max(1), PemProblem::Empty));
    }
    Ok(out)
}

fn certificate(block: &Open) -> Result<CertificateInfo, (usize, PemProblem)> {
    use base64ct::Encoding;
    let der = base64ct::Base64::decode_vec(
        std::str::from_utf8(&block.body).map_err(|_| (block.line, PemProblem::Base64))?,
    )
    .map_err(|_| (block.line, PemProblem::Base64Decode))?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
        (
            block.line,
            PemProblem::NotX509 {
                reason: e.to_string(),
            },
        )
    })?;
    Ok(CertificateInfo {
        line: block.line,
        subject: cert.tbs_certificate().subject().to_string(),
    })
}

/// Check the bytes of the certificate file `path` (tree-relative, for messages).
pub fn check_bytes(path: &str, bytes: &[u8]) -> Result<Vec<CertificateInfo>, CertError> {
    parse_bundle(bytes).map_err(|(line, problem)| CertError::Invalid {
        path: path.to_string(),
        line,
        problem,
    })
}

/// Read and check the certificate file at `file` (`path` is its tree-relative name).
pub fn check_file(path: &str, file: &Path) -> Result<Vec<CertificateInfo>, CertError> {
    let io = |source| CertError::Io {
        path: path.to_string(),
        source,
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size > MAX_CERT_FILE_BYTES {
        return Err(CertError::TooLarge {
            path: path.to_string(),
            size,
        });
    }
    let bytes = std::fs::read(file).map_err(io)?;
    check_bytes(path, &bytes)
}

/// Summary of the certificates a kit carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSummary {
    /// (file, certificates in it), by path.
    pub files: Vec<(String, usize)>,
}

impl fmt::Display for TrustSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let certs: usize = self.files.iter().map(|(_, n)| n).sum();
        write!(f, "{certs} certificate(s) in {} file(s)", self.files.len())
    }
}

/// Check every certificate file among `paths` (tree-relative, under `root`).
pub fn check_tree<'a>(
    root: &Path,
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<TrustSummary, CertError> {
    let mut summary = TrustSummary::default();
    for p in paths.into_iter().filter(|p| is_certificate_path(p)) {
        let certs = check_file(p, &root.join(p))?;
        summary.files.push((p.to_string(), certs.len()));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = include_str!("../../../testdata/certs/synthetic-root-ca.pem");
    const SUB: &str = include_str!("../../../testdata/certs/synthetic-sub-ca.pem");

    fn good() -> String {
        format!("# Subject: root\n{ROOT}\nsubject=CN = sub\n{SUB}")
    }

    #[test]
    fn a_good_bundle_with_explanatory_text_parses() {
        let certs = parse_bundle(good().as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].line, 2);
        assert!(
            certs[0].subject.contains("Russian Trusted Root CA"),
            "{certs:?}"
        );
        assert!(certs[1].subject.contains("Russian Trusted Sub CA"));
        // CRLF line endings are fine too.
        let crlf = good().replace('\n', "\r\n");
        assert_eq!(parse_bundle(crlf.as_bytes()).unwrap().len(), 2);
        assert!(is_certificate_path(
            "certificates/russian_trusted_bundle.pem"
        ));
        assert!(is_certificate_path("certificates/x/ca.CRT"));
        assert!(!is_certificate_path(
            "certificates/russian_trusted_bundle.pem.sha256"
        ));
        assert!(!is_certificate_path("certificatesx/a.pem"));
    }

    #[test]
    fn a_truncated_block_names_its_begin_line() {
        // The second certificate loses its last lines and END line.
        let cut: String = SUB.lines().take(5).map(|l| format!("{l}\n")).collect();
        let text = format!("{ROOT}{cut}");
        let begin = ROOT.lines().count() + 1;
        assert_eq!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (
                begin,
                PemProblem::Truncated {
                    label: "CERTIFICATE".into()
                }
            )
        );
        // Cut before the next BEGIN: also truncated, at the cut block's BEGIN.
        let text = format!("{cut}{ROOT}");
        assert!(matches!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (1, PemProblem::Truncated { .. })
        ));
        // Lines removed from the middle: the base64 still frames, the DER does not parse.
        let mut lines: Vec<&str> = ROOT.lines().collect();
        lines.remove(3);
        let text = lines.join("\n") + "\n";
        assert!(matches!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (1, PemProblem::Base64Decode | PemProblem::NotX509 { .. })
        ));
    }

    #[test]
    fn garbage_between_blocks_names_its_line() {
        let text = format!("{ROOT}\u{1}\u{2}binary\n{SUB}");
        let line = ROOT.lines().count() + 1;
        assert_eq!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (line, PemProblem::Garbage)
        );
        let mut bytes = ROOT.as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, 0x00, b'\n']);
        bytes.extend_from_slice(SUB.as_bytes());
        assert_eq!(
            parse_bundle(&bytes).unwrap_err(),
            (line, PemProblem::Garbage)
        );
        // A stray END, a broken boundary, a non-base64 line inside a block.
        let text = format!("{ROOT}-----END CERTIFICATE-----\n");
        assert_eq!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (line, PemProblem::StrayEnd)
        );
        let text = format!("{ROOT}-----BEGIN CERTIFICATE\n");
        assert!(matches!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (l, PemProblem::BadBoundary { .. }) if l == line
        ));
        let text = ROOT.replacen("MIIC", "MI*C", 1);
        assert_eq!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (2, PemProblem::Base64)
        );
    }

    #[test]
    fn a_non_certificate_block_is_refused() {
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let text = format!("{ROOT}{key}");
        let line = ROOT.lines().count() + 1;
        assert_eq!(
            parse_bundle(text.as_bytes()).unwrap_err(),
            (
                line,
                PemProblem::NotCertificate {
                    label: "EC PRIVATE KEY".into()
                }
            )
        );
        // A CERTIFICATE label around DER that is not a certificate.
        let fake = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_bundle(fake.as_bytes()).unwrap_err(),
            (1, PemProblem::NotX509 { .. })
        ));
        let mismatched = ROOT.replace("END CERTIFICATE", "END X509 CRL");
        assert!(matches!(
            parse_bundle(mismatched.as_bytes()).unwrap_err(),
            (_, PemProblem::MismatchedEnd { .. })
        ));
        assert_eq!(
            parse_bundle(b"# only text\n").unwrap_err(),
            (1, PemProblem::Empty)
        );
        assert_eq!(parse_bundle(b"").unwrap_err(), (1, PemProblem::Empty));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = check_bytes(
            "certificates/b.pem",
            b"\n\n-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "certificates/b.pem: line 3: BEGIN CERTIFICATE block has no END line (truncated)"
        );
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse_bundle(&bytes);
        }
    }
}
