//! Hostile inputs: a [`Mutant`] is one bundle (with sidecars and import arguments) and
//! the exit codes the importer must answer it with. Structured mutants ([`structured`])
//! are named, one per attack; random ones ([`random`]) are drawn from a seeded RNG; piece
//! mutants ([`pieces`]) attack the patch pieces of a delta. This module holds the type,
//! the hostile members inserted into real archives, and the edits the generators share.

pub mod pieces;
pub mod random;
pub mod structured;

use std::path::PathBuf;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::corpus::Kit;
use super::{fixture, gzip, tar};

/// The bytes of a mutated bundle.
#[derive(Debug, Clone)]
pub enum Payload {
    /// In memory.
    Bytes(Vec<u8>),
    /// A file already written (large, streamed inputs).
    File(PathBuf),
}

/// One hostile input and what the importer must do with it.
#[derive(Debug, Clone)]
pub struct Mutant {
    /// Family (for counting).
    pub family: &'static str,
    /// What exactly was done.
    pub detail: String,
    /// File name of the bundle (decides kit or delta by suffix).
    pub name: String,
    /// The bundle.
    pub bundle: Payload,
    /// Files written next to the bundle: (file name, bytes).
    pub sidecars: Vec<(String, Vec<u8>)>,
    /// Extra import arguments; `{dir}` is replaced by the case directory. Without
    /// `--trust-key` the import runs with `--allow-unsigned` and an empty trust store.
    pub args: Vec<String>,
    /// Acceptable exit codes. 0 means the mutation may be harmless (bytes nobody
    /// checks, like the gzip header's mtime); an accepted input must then have activated
    /// exactly the genuine target generation.
    pub expect: Vec<i32>,
    /// A substring the error message must contain (any of `|`-separated alternatives).
    pub message: Option<&'static str>,
}

impl Mutant {
    fn new(family: &'static str, detail: impl Into<String>, kit: &Kit, bytes: Vec<u8>) -> Mutant {
        Mutant {
            family,
            detail: detail.into(),
            name: kit
                .bundle
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            bundle: Payload::Bytes(bytes),
            sidecars: Vec::new(),
            args: vec!["--allow-unsigned".into()],
            expect: vec![11],
            message: None,
        }
    }
    fn expect(mut self, codes: &[i32]) -> Mutant {
        self.expect = codes.to_vec();
        self
    }
    fn message(mut self, m: &'static str) -> Mutant {
        self.message = Some(m);
        self
    }
    fn trusted(mut self) -> Mutant {
        self.args = vec![
            "--trust-key".into(),
            fixture("fixture.pub").display().to_string(),
        ];
        self
    }
    fn sidecar(mut self, name: &str, bytes: Vec<u8>) -> Mutant {
        self.sidecars.push((name.into(), bytes));
        self
    }
    fn arg(mut self, a: &str) -> Mutant {
        self.args.push(a.into());
        self
    }
    fn named(mut self, name: &str) -> Mutant {
        self.name = name.into();
        self
    }
}

/// A hostile member inserted into a real archive: (label, member bytes, message).
pub fn hostile_members() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    use tar::*;
    let h = |name: &[u8], t: u8, mode: u64, link: &[u8]| header(name, t, mode, 0, link).to_vec();
    let long = "a/".repeat(2100) + "x";
    let mut v: Vec<(&'static str, Vec<u8>, &'static str)> = vec![
        ("dotdot", file("../evil", 0o644, b"x"), "`..`"),
        (
            "dotdot-deep",
            file("feeds/../../../evil", 0o644, b"x"),
            "`..`",
        ),
        (
            "dotdot-dir",
            entry("../evil-dir/", b'5', 0o755, b""),
            "`..`",
        ),
        (
            "absolute",
            file("/tmp/ouk-evil-absolute", 0o644, b"x"),
            "absolute",
        ),
        (
            "absolute-etc",
            file("/etc/cron.d/evil", 0o644, b"x"),
            "absolute",
        ),
        ("dot", file("./feeds/evil", 0o644, b"x"), "`.`"),
        ("empty-component", file("feeds//evil", 0o644, b"x"), "empty"),
        ("backslash", file("..\\evil", 0o644, b"x"), "backslash"),
        (
            "symlink-out",
            h(b"feeds/link", b'2', 0o777, b"/etc"),
            "symbolic link",
        ),
        (
            "symlink-up",
            h(b"feeds/up", b'2', 0o777, b"../../../../../../etc/passwd"),
            "symbolic link",
        ),
        (
            "symlink-inside",
            h(b"feeds/same", b'2', 0o777, b"osv"),
            "symbolic link",
        ),
        (
            "hardlink-out",
            h(b"feeds/hard", b'1', 0o644, b"/etc/passwd"),
            "hard link",
        ),
        (
            "hardlink-up",
            h(b"feeds/hard-up", b'1', 0o644, b"../../../etc/shadow"),
            "hard link",
        ),
        (
            "hardlink-inside",
            h(b"feeds/hard-in", b'1', 0o644, b"feeds/osv/osv-all.jsonl"),
            "hard link",
        ),
        ("chardev", h(b"dev-null", b'3', 0o666, b""), "device"),
        ("blockdev", h(b"dev-sda", b'4', 0o660, b""), "device"),
        ("fifo", h(b"feeds/fifo", b'6', 0o644, b""), "FIFO"),
        (
            "contiguous",
            file_typed("feeds/contig", b'7'),
            "unsupported",
        ),
        (
            "gnu-sparse",
            file_typed("feeds/sparse", b'S'),
            "unsupported",
        ),
        ("volume-label", file_typed("label", b'V'), "unsupported"),
        ("setuid", file("feeds/suid", 0o4755, b"x"), "mode"),
        (
            "setgid-dir",
            entry("feeds/sgid/", b'5', 0o2755, b""),
            "mode",
        ),
        ("sticky", file("feeds/sticky", 0o1777, b"x"), "mode"),
        ("nul-in-long-name", long_then(b"feeds/a\0b"), "control|NUL"),
        ("newline-name", file("feeds/a\nb", 0o644, b"x"), "control"),
        ("too-long-name", long_then(long.as_bytes()), "longer"),
        (
            "long-name-dotdot",
            long_then(format!("{}/../../../evil", "d".repeat(120)).as_bytes()),
            "`..`",
        ),
        ("pax-dotdot", pax_then(&[("path", b"../pax-evil")]), "`..`"),
        (
            "pax-absolute",
            pax_then(&[("path", b"/tmp/pax-evil")]),
            "absolute",
        ),
        ("pax-uid", pax_then(&[("uid", b"0")]), "pax"),
        ("pax-linkpath", pax_then(&[("linkpath", b"/etc")]), "pax"),
        ("global-pax", global_pax(), "unsupported|pax"),
        (
            "dir-with-data",
            entry_sized("feeds/dirdata/", b'5', 10),
            "directory",
        ),
        ("non-utf8", file_bytes_name(b"feeds/\xff\xfe"), "UTF-8"),
    ];
    v.push((
        "undeclared",
        file("feeds/undeclared.bin", 0o644, b"surprise"),
        "not declared",
    ));
    v
}

fn file_typed(name: &str, t: u8) -> Vec<u8> {
    tar::entry(name, t, 0o644, b"data")
}

fn entry_sized(name: &str, t: u8, size: u64) -> Vec<u8> {
    let mut out = tar::header(name.as_bytes(), t, 0o755, size, b"").to_vec();
    out.resize(out.len() + tar::BLOCK, b'z');
    out
}

fn file_bytes_name(name: &[u8]) -> Vec<u8> {
    let mut out = tar::header(name, b'0', 0o644, 1, b"").to_vec();
    out.push(b'x');
    out.resize(out.len() + 511, 0);
    out
}

fn long_then(name: &[u8]) -> Vec<u8> {
    let mut out = tar::long_name(name);
    out.extend_from_slice(&tar::header(b"short", b'0', 0o644, 1, b""));
    out.push(b'x');
    out.resize(out.len() + 511, 0);
    out
}

fn pax_then(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = tar::pax(records);
    out.extend(tar::file("feeds/pax-target", 0o644, b"x"));
    out
}

fn global_pax() -> Vec<u8> {
    let mut out = tar::pax(&[("comment", b"hi")]);
    out[156] = b'g';
    tar::set_checksum(&mut out[..512]);
    out.extend(tar::file("feeds/after-global", 0o644, b"x"));
    out
}

fn flip(bytes: &mut [u8], rng: &mut ChaCha8Rng, flips: usize) -> Vec<usize> {
    let mut at = Vec::new();
    for _ in 0..flips {
        let i = rng.random_range(0..bytes.len());
        bytes[i] ^= 1 << rng.random_range(0..8);
        at.push(i);
    }
    at
}

fn json_edit(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut v);
    let mut out = serde_json::to_vec_pretty(&v).unwrap();
    out.push(b'\n');
    out
}

fn random_hex(rng: &mut ChaCha8Rng) -> String {
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// The archive of `kit` with member `name` replaced by `data` (same mode).
fn replace(kit: &Kit, name: &str, data: &[u8]) -> Vec<u8> {
    let i = kit.members.iter().position(|m| m.name == name).unwrap();
    Kit::assemble(&kit.with_data(i, data))
}

/// The in-bundle manifest of `kit` replaced by `edit` of it.
fn manifest_mutant(kit: &Kit, detail: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Mutant {
    let bytes = json_edit(kit.manifest(), edit);
    let tar = replace(kit, "manifest/offline-manifest.json", &bytes);
    Mutant::new("manifest-edit", detail, kit, gzip(&tar))
}

/// The delta header of `d` replaced by `edit` of it.
fn delta_header_mutant(d: &Kit, detail: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Mutant {
    let h = d.member("delta/delta.json").unwrap();
    let bytes = json_edit(d.data(h), edit);
    let tar = replace(d, "delta/delta.json", &bytes);
    Mutant::new("delta-header", detail, d, gzip(&tar))
}
