//! The compressed variant's Python plug-in, shipped as a wheel (a zip of deflated members):
//! `plugins/scanner/wheels/stellaops_scanner_sbom-2025.10.0-py3-none-any.whl`.
//!
//! Members: a package of Python-looking modules plus `.dist-info` (`METADATA`, `WHEEL`,
//! `top_level.txt`, `RECORD` with each member's urlsafe-base64 SHA-256 and size, as pip
//! checks). Each day `k >= 1` edits a few lines of exactly one module (picked by the
//! release calendar), so two members change daily: that module and `RECORD`. The file name
//! and every other member stay byte-identical. About 100 KiB uncompressed: the one part of
//! the compressed variant with no plain twin, kept small so it weighs little in a delta.
//!
//! Invariants: a pure function of `(seed, day)`, cost `O(day)`; fixed member order,
//! timestamps and modes.

use crate::compressed::zip_member;
use crate::fsutil::{self, sha256, write_sidecar};
use crate::rng::{Sm, h};
use crate::schedule::rebuild_days;
use crate::words::{NAME_PARTS, WORDS};
use base64ct::{Base64UrlUnpadded, Encoding};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The wheel inside a tree.
pub const WHEEL: &str = "plugins/scanner/wheels/stellaops_scanner_sbom-2025.10.0-py3-none-any.whl";
/// The package directory inside the wheel.
pub const PACKAGE: &str = "stellaops_scanner_sbom";
const DIST_INFO: &str = "stellaops_scanner_sbom-2025.10.0.dist-info";
/// The package's modules (each `<name>.py`), in member order.
pub const MODULES: [&str; 10] = [
    "purl",
    "cyclonedx",
    "spdx",
    "resolver",
    "lockfiles",
    "wheels",
    "sdists",
    "licenses",
    "vendored",
    "report",
];
/// Domain tag of the wheel's daily module edits.
const WHEEL_EDITS: u64 = 0x7768_6c65;
/// Lines per module.
const LINES: u64 = 240;

/// One generated line of module `m`, drawn from `key`.
fn line(key: u64, out: &mut String) {
    let mut r = Sm::new(key);
    let a = r.pick(NAME_PARTS);
    let b = r.pick(NAME_PARTS);
    let w = r.pick(WORDS);
    match r.below(6) {
        0 => out.push_str(&format!("def {a}_{b}(self, {w}):\n")),
        1 => out.push_str(&format!("    # {w} {} {}\n", r.pick(WORDS), r.pick(WORDS))),
        2 => out.push_str(&format!(
            "    {a} = self.{b}.get({w:?}, {})\n",
            r.below(1000)
        )),
        3 => out.push_str(&format!("    return {a}.{b}({w}={})\n", r.below(64))),
        4 => out.push_str(&format!(
            "    if {a} is not None and {w} in {b}:\n        raise ValueError(\"{w} {}\")\n",
            r.pick(WORDS)
        )),
        _ => out.push_str(&format!("\nclass {}{}:\n", cap(a), cap(b))),
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Module `m` of day `day`: its base lines with every edit up to `day` applied.
fn module_text(seed: u64, m: usize, day: u32) -> String {
    let base = h(&[seed, WHEEL_EDITS, m as u64]);
    // The key of each line: its base key, replaced by the last edit that touched it.
    let mut keys: Vec<u64> = (0..LINES).map(|i| h(&[base, i])).collect();
    for k in rebuild_days(seed, WHEEL_EDITS, MODULES.len() as u64, m as u64, day) {
        let mut r = Sm::new(h(&[base, u64::from(k)]));
        for _ in 0..2 + r.below(3) {
            let at = r.below(LINES) as usize;
            keys[at] = h(&[base, u64::from(k), at as u64]);
        }
    }
    let mut out = format!(
        "\"\"\"StellaOps scanner SBOM helpers: {}.\"\"\"\n\nfrom __future__ import annotations\n\n",
        MODULES[m]
    );
    for k in keys {
        line(k, &mut out);
    }
    out
}

/// The wheel's members of day `day`, in archive order (RECORD last).
pub fn members(seed: u64, day: u32) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    out.push((
        format!("{PACKAGE}/__init__.py"),
        b"\"\"\"StellaOps scanner SBOM helpers.\"\"\"\n\n__version__ = \"2025.10.0\"\n".to_vec(),
    ));
    for (m, name) in MODULES.iter().enumerate() {
        out.push((
            format!("{PACKAGE}/{name}.py"),
            module_text(seed, m, day).into_bytes(),
        ));
    }
    out.push((
        format!("{DIST_INFO}/METADATA"),
        b"Metadata-Version: 2.3\nName: stellaops-scanner-sbom\nVersion: 2025.10.0\n\
Summary: SBOM helpers of the StellaOps scanner\nRequires-Python: >=3.10\n"
            .to_vec(),
    ));
    out.push((
        format!("{DIST_INFO}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: ouk-testdata\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
    ));
    out.push((
        format!("{DIST_INFO}/top_level.txt"),
        format!("{PACKAGE}\n").into_bytes(),
    ));
    let mut record = String::new();
    for (name, bytes) in &out {
        record.push_str(&format!(
            "{name},sha256={},{}\n",
            Base64UrlUnpadded::encode_string(&sha256(bytes)),
            bytes.len()
        ));
    }
    record.push_str(&format!("{DIST_INFO}/RECORD,,\n"));
    out.push((format!("{DIST_INFO}/RECORD"), record.into_bytes()));
    out
}

/// Writes the wheel of day `day` (and its sidecar).
pub fn write_wheel(root: &Path, seed: u64, day: u32) -> io::Result<()> {
    let path = root.join(WHEEL);
    let file = fsutil::create(&path, 0o644)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let opts = zip_member()?;
    for (name, bytes) in members(seed, day) {
        zip.start_file(name.as_str(), opts)
            .map_err(io::Error::other)?;
        zip.write_all(&bytes)?;
    }
    let out = zip.finish().map_err(io::Error::other)?;
    out.into_inner().map_err(|e| e.into_error())?;
    write_sidecar(&path, &fsutil::sha256_file(&path)?)
}
