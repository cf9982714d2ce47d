//! Hostile and corrupted inputs for the import pipeline, and the sandbox that checks what an
//! import did with them.
//!
//! - [`tar`]: a hand-written tar codec (headers with any field value, GNU long names, pax
//!   records, member boundaries of a real archive), so tests can build archives the
//!   bundle writer would never produce;
//! - [`Corpus`]: real signed kits (three consecutive days) and deltas between them, built
//!   with the `ouk` binary, each with its decompressed tar and member table;
//! - [`structured_mutants`] and [`random_mutant`]: the generator. Structured mutants are
//!   named, one per attack (truncation at every structural boundary, swapped members,
//!   mix-and-match manifests, foreign signatures, `../` names, links, devices, bombs...)
//!   with the exact exit code they must get; random mutants (bit flips, cuts, header
//!   edits, manifest and delta-header edits, inserted hostile members) are drawn from a
//!   seeded RNG and must get one of a small set of codes;
//! - [`Sandbox`]: a root with an active generation, snapshotted before every case. Each
//!   import runs under a generous CPU bound and wall deadline ([`super::bounded`]):
//!   overrunning either fails the case, named. Afterwards it checks the exit code, that
//!   nothing changed outside `staging/` and `quarantine/`, that staging is empty, that a
//!   refusal was quarantined with a `reason.json` carrying the same code, and that an
//!   accepted input produced exactly the genuine target generation.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::bounded::Bounded;
use super::ouk;

/// A file of the cosign test fixture (`fixture.key`, password `hello`, and `fixture.pub`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/cosign")
        .join(name)
}

/// The fixture signing key.
pub fn signing_key() -> ouk_kit::sign::SigningKey {
    ouk_kit::sign::SigningKey::from_pem_file(&fixture("fixture.key"), Some(b"hello"))
        .expect("fixture key")
}

/// SHA-256, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The cosign signature of `bytes` under the fixture key.
pub fn sign(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
    ouk_kit::sign::sign_blob_sha256(&signing_key(), &digest)
        .expect("sign")
        .into_bytes()
}

/// Build a kit of `release` as `version` into `out`; signed with the fixture key when
/// `signed`. Returns the bundle path.
pub fn build_kit(release: &Path, out: &Path, version: &str, signed: bool) -> PathBuf {
    let mut cmd = Command::new(ouk());
    cmd.args([
        "kit",
        "build",
        "--version",
        version,
        "--channel",
        "edge",
        "--release-dir",
    ])
    .arg(release)
    .arg("--output-dir")
    .arg(out)
    .env("COSIGN_PASSWORD", "hello");
    if signed {
        cmd.arg("--signing-key").arg(fixture("fixture.key"));
    }
    let o = cmd.output().expect("run ouk kit build");
    assert_eq!(
        o.status.code(),
        Some(0),
        "kit build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.join(format!("stella-ops-offline-kit-{version}-edge.tar.gz"))
}

/// Make a delta `from` -> `to` at `out` (signed with the fixture key).
pub fn make_delta(from: &Path, to: &Path, out: &Path) -> PathBuf {
    make_delta_with(from, to, out, &[])
}

/// [`make_delta`] with extra `delta make` arguments.
pub fn make_delta_with(from: &Path, to: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .arg("--output")
        .arg(out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        // The planner tries bsdiff only while half its time budget is left: a day's budget
        // makes the encodings a test delta ships independent of how loaded the machine is
        // (tests that attack bsdiff pieces need them there).
        .args(["--time-budget", "86400"])
        .args(extra)
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .expect("run ouk delta make");
    assert_eq!(
        o.status.code(),
        Some(0),
        "delta make: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

/// `ouk --root ROOT --json --wait kit import BUNDLE --free-margin 0 [--max-kit-age 0]
/// extra...`.
///
/// `--wait`: tests run in parallel threads of one process, and a child forked by one
/// thread holds copies of the other threads' open descriptors until it execs, including
/// the lock of a root another thread just opened and closed in-process (snapshots,
/// `check_current_complete`). Without `--wait` that rare overlap reads as exit 13.
pub fn import(root: &Path, bundle: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "--wait",
        "kit",
        "import",
        bundle.to_str().unwrap(),
        "--free-margin",
        "0",
    ];
    if !extra.contains(&"--max-kit-age") {
        args.extend(["--max-kit-age", "0"]);
    }
    args.extend_from_slice(extra);
    super::run_json(root, &args)
}

/// Decompress a gzip file with the system `gzip` (the reader under test is not used to
/// prepare its own inputs).
pub fn gunzip(path: &Path) -> Vec<u8> {
    let o = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run gzip -dc (install gzip)");
    assert!(o.status.success(), "gzip -dc {}", path.display());
    o.stdout
}

/// A gzip writer (one member, level 1) over `out`.
pub fn gz_writer<W: Write>(out: W) -> ouk_kit::bundle::ParGzWriter<W> {
    ouk_kit::bundle::ParGzWriter::new(
        out,
        ouk_kit::bundle::GzOptions {
            level: 1,
            block_size: 1 << 20,
            threads: 1,
        },
    )
    .expect("gzip writer")
}

/// Compress `raw` into one gzip member.
pub fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut w = gz_writer(Vec::with_capacity(raw.len() / 2));
    w.write_all(raw).unwrap();
    w.finish().unwrap().0
}

/// Tar archives built byte by byte.
pub mod tar {
    /// Block size.
    pub const BLOCK: usize = 512;
    /// Largest size the 11 octal digits hold.
    pub const MAX_OCTAL: u64 = 0o77_777_777_777;

    fn octal(field: &mut [u8], v: u64) {
        let digits = field.len() - 1;
        let s = format!("{v:0digits$o}");
        let s = &s.as_bytes()[s.len().saturating_sub(digits)..];
        field[..s.len()].copy_from_slice(s);
        field[digits] = 0;
    }

    /// Recompute the header checksum of block `h`.
    pub fn set_checksum(h: &mut [u8]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h[..BLOCK].iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}");
        h[148..154].copy_from_slice(s.as_bytes());
        h[154] = 0;
        h[155] = b' ';
    }

    /// One GNU header block with any name (truncated to 100 bytes), type, mode, size
    /// field and link name. Sizes past the octal range use GNU base-256.
    pub fn header(name: &[u8], typeflag: u8, mode: u64, size: u64, linkname: &[u8]) -> [u8; 512] {
        let mut h = [0u8; BLOCK];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], mode);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if size > MAX_OCTAL {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        } else {
            octal(&mut h[124..136], size);
        }
        octal(&mut h[136..148], 0);
        h[156] = typeflag;
        let l = linkname.len().min(100);
        h[157..157 + l].copy_from_slice(&linkname[..l]);
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        set_checksum(&mut h);
        h
    }

    /// Zero padding after `n` bytes of data.
    pub fn padding(n: u64) -> usize {
        ((BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64) as usize
    }

    /// A GNU long-name record for `name`.
    pub fn long_name(name: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = name.len() as u64 + 1;
        out.extend_from_slice(&header(b"././@LongLink", b'L', 0o644, len, b""));
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len() + padding(len), 0);
        out
    }

    /// A pax extended header (`x`) with `records`.
    pub fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while format!("{len}").len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut out = header(b"PaxHeaders/x", b'x', 0o644, body.len() as u64, b"").to_vec();
        out.extend_from_slice(&body);
        out.resize(out.len() + padding(body.len() as u64), 0);
        out
    }

    /// A member: header (plus a long-name record when the name needs one), data, padding.
    pub fn entry(name: &str, typeflag: u8, mode: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        if name.len() > 100 {
            out.extend(long_name(name.as_bytes()));
        }
        out.extend_from_slice(&header(
            name.as_bytes(),
            typeflag,
            mode,
            data.len() as u64,
            b"",
        ));
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64), 0);
        out
    }

    /// A regular file member.
    pub fn file(name: &str, mode: u64, data: &[u8]) -> Vec<u8> {
        entry(name, b'0', mode, data)
    }

    /// The end-of-archive marker.
    pub fn end() -> Vec<u8> {
        vec![0u8; 2 * BLOCK]
    }

    /// One member of an existing archive.
    #[derive(Debug, Clone)]
    pub struct Member {
        /// First byte (of a long-name or pax record when there is one).
        pub start: usize,
        /// The main header block.
        pub header: usize,
        /// First data byte.
        pub data: usize,
        /// Data length.
        pub size: u64,
        /// One past the padding.
        pub end: usize,
        /// Name (long name resolved).
        pub name: String,
        /// Type flag.
        pub typeflag: u8,
    }

    fn parse_size(f: &[u8]) -> u64 {
        if f[0] & 0x80 != 0 {
            let mut v = 0u64;
            for &b in &f[4..] {
                v = (v << 8) | u64::from(b);
            }
            return v;
        }
        let s: String = f
            .iter()
            .take_while(|&&b| b != 0 && b != b' ')
            .map(|&b| b as char)
            .collect();
        u64::from_str_radix(s.trim(), 8).unwrap_or(0)
    }

    fn cstr(f: &[u8]) -> Vec<u8> {
        f.iter().take_while(|&&b| b != 0).copied().collect()
    }

    /// The members of a well-formed archive and the offset of its end marker.
    pub fn parse(tar: &[u8]) -> (Vec<Member>, usize) {
        let mut out = Vec::new();
        let mut off = 0;
        let mut start = None;
        let mut long: Option<Vec<u8>> = None;
        while off + BLOCK <= tar.len() {
            let h = &tar[off..off + BLOCK];
            if h.iter().all(|&b| b == 0) {
                return (out, off);
            }
            let size = parse_size(&h[124..136]);
            let typeflag = h[156];
            let data = off + BLOCK;
            let end = data + size as usize + padding(size);
            match typeflag {
                b'L' => {
                    start.get_or_insert(off);
                    long = Some(cstr(&tar[data..data + size as usize]));
                }
                b'x' => {
                    start.get_or_insert(off);
                }
                _ => {
                    let name = long.take().unwrap_or_else(|| cstr(&h[..100]));
                    out.push(Member {
                        start: start.take().unwrap_or(off),
                        header: off,
                        data,
                        size,
                        end,
                        name: String::from_utf8_lossy(&name).into_owned(),
                        typeflag,
                    });
                }
            }
            off = end;
        }
        (out, off)
    }
}

/// A real bundle (kit or delta) with its decompressed archive.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The bundle, next to its sidecars.
    pub bundle: PathBuf,
    /// Its bytes.
    pub gz: Vec<u8>,
    /// The decompressed tar.
    pub tar: Vec<u8>,
    /// Members in archive order.
    pub members: Vec<tar::Member>,
    /// Offset of the end-of-archive marker.
    pub trailer: usize,
    /// The generation a successful import of it activates.
    pub generation: String,
    /// Its version.
    pub version: String,
    /// The tar recompressed the way mutants are (to recognise a mutation that changed
    /// nothing).
    pub regz: Vec<u8>,
}

impl Kit {
    /// Load a bundle built by `ouk`.
    pub fn load(bundle: &Path) -> Kit {
        let gz = fs::read(bundle).unwrap();
        let tar = gunzip(bundle);
        let (members, trailer) = tar::parse(&tar);
        let mut kit = Kit {
            bundle: bundle.to_path_buf(),
            gz,
            tar,
            members,
            trailer,
            generation: String::new(),
            version: String::new(),
            regz: Vec::new(),
        };
        kit.regz = gzip(&kit.tar);
        let doc = if let Some(m) = kit.member("manifest/offline-manifest.json") {
            serde_json::from_slice::<serde_json::Value>(kit.data(m)).unwrap()
        } else {
            let h = kit.member("delta/delta.json").expect("a kit or a delta");
            serde_json::from_slice::<serde_json::Value>(kit.data(h)).unwrap()["target"].clone()
        };
        let field = |a: &str, b: &str| {
            doc.get(a)
                .or_else(|| doc.get(b))
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string()
        };
        kit.generation = field("generationId", "generation");
        kit.version = field("version", "version");
        kit
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&tar::Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// A member's data.
    pub fn data(&self, m: &tar::Member) -> &[u8] {
        &self.tar[m.data..m.data + m.size as usize]
    }

    /// A member's whole bytes (records, header, data, padding).
    pub fn raw(&self, m: &tar::Member) -> &[u8] {
        &self.tar[m.start..m.end]
    }

    /// A sidecar's bytes (`sig`, `sha256`, `metadata.json`).
    pub fn sidecar(&self, ext: &str) -> Vec<u8> {
        fs::read(format!("{}.{ext}", self.bundle.display())).unwrap()
    }

    /// The kit's sidecar manifest and its JWS (from its output directory).
    pub fn sidecar_manifest(&self) -> (Vec<u8>, Vec<u8>) {
        let dir = self.bundle.parent().unwrap().join("manifest");
        (
            fs::read(dir.join("offline-manifest.json")).unwrap(),
            fs::read(dir.join("offline-manifest.json.jws")).unwrap(),
        )
    }

    /// The in-bundle offline manifest (kits only).
    pub fn manifest(&self) -> &[u8] {
        self.data(self.member("manifest/offline-manifest.json").unwrap())
    }

    /// Regular files with data, excluding `except`.
    pub fn files(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].typeflag == b'0' && self.members[i].size > 0)
            .collect()
    }

    /// The archive rebuilt from `parts` (raw member bytes) and an end marker.
    pub fn assemble(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend(tar::end());
        out
    }

    /// Every member's raw bytes, in order.
    pub fn parts(&self) -> Vec<Vec<u8>> {
        self.members.iter().map(|m| self.raw(m).to_vec()).collect()
    }

    /// The members with member `i` replaced by a file `name` holding `data`.
    pub fn with_data(&self, i: usize, data: &[u8]) -> Vec<Vec<u8>> {
        let mut parts = self.parts();
        let m = &self.members[i];
        let mode = {
            let h = &self.tar[m.header + 100..m.header + 108];
            let s: String = h
                .iter()
                .take_while(|&&b| b != 0 && b != b' ')
                .map(|&b| b as char)
                .collect();
            u64::from_str_radix(s.trim(), 8).unwrap_or(0o644)
        };
        parts[i] = tar::file(&m.name, mode, data);
        parts
    }
}

/// Real inputs: kits of days 0, 1 and 2 and the deltas 0->1 and 1->2.
pub struct Corpus {
    /// Where everything lives.
    pub dir: PathBuf,
    /// Day 0 (2025.10.0): what the sandbox host has active.
    pub k0: Kit,
    /// Day 1 (2025.10.1): the kit under attack.
    pub k1: Kit,
    /// Day 2 (2025.10.2).
    pub k2: Kit,
    /// Delta day 0 -> day 1 (the delta under attack).
    pub d01: Kit,
    /// Delta day 1 -> day 2 (a baseline the host does not have).
    pub d12: Kit,
}

impl Corpus {
    /// Build the corpus under `dir` from the testdata tree `spec` (days 0-2).
    pub fn build(dir: &Path, spec: ouk_testdata::TreeSpec) -> Corpus {
        Corpus::build_days(dir, spec, 3)
    }

    /// The same with only days 0 and 1 (`k2` and `d12` are then copies of `k1` and `d01`).
    pub fn build_days(dir: &Path, spec: ouk_testdata::TreeSpec, days: u32) -> Corpus {
        let mut kits = Vec::new();
        for day in 0..days {
            let release = dir.join(format!("release-{day}"));
            if !release.exists() {
                ouk_testdata::generate(&spec.on_day(day), &release).unwrap();
            }
            let bundle = build_kit(
                &release,
                &dir.join(format!("kit-{day}")),
                &format!("2025.10.{day}"),
                true,
            );
            kits.push(Kit::load(&bundle));
        }
        let d01 = make_delta(
            &kits[0].bundle,
            &kits[1].bundle,
            &dir.join("deltas/stella-ouk-2025-10-24.delta.tgz"),
        );
        let d12 = if days > 2 {
            make_delta(
                &kits[1].bundle,
                &kits[2].bundle,
                &dir.join("deltas/stella-ouk-2025-10-25.delta.tgz"),
            )
        } else {
            d01.clone()
        };
        if days < 3 {
            kits.push(kits[1].clone());
        }
        let k2 = kits.pop().unwrap();
        let k1 = kits.pop().unwrap();
        let k0 = kits.pop().unwrap();
        Corpus {
            dir: dir.to_path_buf(),
            k0,
            k1,
            k2,
            d01: Kit::load(&d01),
            d12: Kit::load(&d12),
        }
    }
}

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

/// Every named attack on the kit `c.k1` and the delta `c.d01` (host: `c.k0` active).
pub fn structured_mutants(c: &Corpus) -> Vec<Mutant> {
    let mut out = Vec::new();
    for (label, kit) in [("kit", &c.k1), ("delta", &c.d01)] {
        let gz = &kit.gz;
        let n = gz.len();
        // Truncation of the compressed file at its structural boundaries.
        for (what, len) in [
            ("empty file", 0),
            ("inside the gzip magic", 1),
            ("inside the gzip header", 5),
            ("right after the gzip header", 10),
            ("first deflate bytes", 12),
            ("mid deflate stream", n / 2),
            ("before the CRC-32 trailer", n - 8),
            ("inside the CRC-32", n - 6),
            ("before ISIZE", n - 4),
            ("last byte missing", n - 1),
        ] {
            out.push(
                Mutant::new(
                    "gz-truncate",
                    format!("{label}: {what} ({len} bytes)"),
                    kit,
                    gz[..len].to_vec(),
                )
                .message("truncated|corrupt|gzip|bundle refused|not a delta|invalid"),
            );
        }
        let mut b = gz.clone();
        b[n - 8] ^= 1;
        out.push(
            Mutant::new("gz-trailer", format!("{label}: CRC-32 bit flipped"), kit, b)
                .message("corrupt"),
        );
        let mut b = gz.clone();
        b[n - 2] ^= 1;
        out.push(
            Mutant::new("gz-trailer", format!("{label}: ISIZE bit flipped"), kit, b)
                .message("corrupt"),
        );
        let mut b = gz.clone();
        b.extend_from_slice(b"garbage after the gzip member");
        out.push(
            Mutant::new(
                "gz-trailing",
                format!("{label}: garbage after the member"),
                kit,
                b,
            )
            .message("after the end"),
        );
        let mut b = gz.clone();
        b.extend(gzip(&tar::end()));
        out.push(
            Mutant::new(
                "gz-trailing",
                format!("{label}: a second gzip member"),
                kit,
                b,
            )
            .message("after the end"),
        );
        let mut b = gz.clone();
        b[0] = 0x1e;
        out.push(
            Mutant::new("gz-header", format!("{label}: bad gzip magic"), kit, b)
                .message("corrupt|gzip|invalid"),
        );
        let mut b = gz.clone();
        b[3] |= 0x02; // FHCRC set: a header CRC that is not there
        out.push(
            Mutant::new(
                "gz-header",
                format!("{label}: FHCRC flag without a CRC"),
                kit,
                b,
            )
            .message("corrupt|gzip|invalid"),
        );
        // Truncation of the tar stream at its structural boundaries (recompressed, so the
        // gzip layer is valid and the tar reader must notice).
        let mid = &kit.members[kit.members.len() / 2];
        let last = kit.members.last().unwrap();
        for (what, cut) in [
            ("at a member's header", mid.start),
            ("inside a header", mid.header + 100),
            ("right after a header", mid.data),
            ("mid entry data", mid.data + (mid.size as usize / 2).max(1)),
            (
                "inside the padding",
                mid.data + mid.size as usize + tar::padding(mid.size).min(1),
            ),
            ("at the end marker", kit.trailer),
            ("inside the end marker", kit.trailer + 512),
            (
                "mid last entry",
                last.data + (last.size as usize / 2).max(1),
            ),
            // Inside the in-bundle manifest (read before anything is unpacked; found by
            // the long random run: this was exit 1, a local I/O error, instead of 11).
            (
                "inside the manifest entry",
                kit.member("manifest/offline-manifest.json")
                    .map_or(0, |m| m.data + m.size as usize / 2),
            ),
        ] {
            if cut >= kit.tar.len() || cut == 0 {
                continue;
            }
            out.push(
                Mutant::new(
                    "tar-truncate",
                    format!("{label}: {what} (tar offset {cut})"),
                    kit,
                    gzip(&kit.tar[..cut]),
                )
                .message("truncated|malformed"),
            );
        }
        // Header damage without and with a fixed checksum (on a file member).
        let files = kit.files();
        let mid = &kit.members[files[files.len() / 2]];
        let mut t = kit.tar.clone();
        t[mid.header + 10] ^= 0x20;
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: name byte flipped, stale checksum"),
                kit,
                gzip(&t),
            )
            .message("checksum"),
        );
        // A member's data larger than the manifest/header declares: a size-field edit.
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[124..136].copy_from_slice(b"77777777777\0");
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: size field 8 GiB"),
                kit,
                gzip(&t),
            )
            .message("more than|declares|not declared|truncated"),
        );
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[124] = 0x80;
        h[125..136].fill(0);
        h[128..136].copy_from_slice(&(1u64 << 62).to_be_bytes());
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: base-256 size 2^62"),
                kit,
                gzip(&t),
            )
            .message("more than|declares|not declared|truncated"),
        );
        let mut t = kit.tar.clone();
        let h = &mut t[mid.header..mid.header + 512];
        h[156] = b'2';
        h[157..162].copy_from_slice(b"/etc\0");
        tar::set_checksum(h);
        out.push(
            Mutant::new(
                "tar-header",
                format!("{label}: file turned into a symlink"),
                kit,
                gzip(&t),
            )
            .message("link"),
        );
        // Hostile members inserted at the start, the middle and just before the end.
        for (i, (what, member, msg)) in hostile_members().into_iter().enumerate() {
            let mut parts = kit.parts();
            let at = match i % 3 {
                0 => 0,
                1 => parts.len() / 2,
                _ => parts.len(),
            };
            parts.insert(at, member);
            out.push(
                Mutant::new(
                    "hostile-member",
                    format!("{label}: {what} at member {at}"),
                    kit,
                    gzip(&Kit::assemble(&parts)),
                )
                .message(msg),
            );
        }
        // Duplicate names: a member repeated, and a directory repeated.
        let mut parts = kit.parts();
        let dup = parts[files[0]].clone();
        parts.push(dup);
        out.push(
            Mutant::new(
                "duplicate",
                format!("{label}: file {} twice", kit.members[files[0]].name),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("duplicate"),
        );
        if let Some(d) = kit.members.iter().position(|m| m.typeflag == b'5') {
            let mut parts = kit.parts();
            parts.push(kit.raw(&kit.members[d]).to_vec());
            out.push(
                Mutant::new(
                    "duplicate",
                    format!("{label}: directory {} twice", kit.members[d].name),
                    kit,
                    gzip(&Kit::assemble(&parts)),
                )
                .message("duplicate"),
            );
        }
        let mut parts = kit.parts();
        let f = &kit.members[files[0]];
        parts.push(tar::entry(&format!("{}/", f.name), b'5', 0o755, b""));
        out.push(
            Mutant::new(
                "duplicate",
                format!("{label}: a file's name again as a directory"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("conflicts|duplicate"),
        );
        // A member dropped.
        let mut parts = kit.parts();
        parts.remove(*files.last().unwrap());
        out.push(
            Mutant::new(
                "dropped",
                format!("{label}: last file dropped"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .message("lacks|not a delta|no "),
        );
        // Bomb: a member that decompresses to 100 x its declared size (for a delta, the
        // payload, which its header bounds).
        let i = kit
            .members
            .iter()
            .position(|m| m.name == "delta/payload.bin")
            .unwrap_or(files[0]);
        let m = &kit.members[i];
        let big = vec![0u8; (m.size as usize) * 100];
        out.push(
            Mutant::new(
                "bomb",
                format!("{label}: {} is 100 x its size", m.name),
                kit,
                gzip(&Kit::assemble(&kit.with_data(i, &big))),
            )
            .message("more than|payload"),
        );
    }

    // ---- kit-only attacks ----
    let k1 = &c.k1;
    let files = k1.files();
    let manifest_i = k1
        .members
        .iter()
        .position(|m| m.name == "manifest/offline-manifest.json")
        .unwrap();
    let content: Vec<usize> = files.iter().copied().filter(|&i| i != manifest_i).collect();
    // One data bit flipped (the gzip layer valid): the digest check catches it.
    let mut t = k1.tar.clone();
    let m = &k1.members[content[content.len() / 2]];
    t[m.data + m.size as usize / 2] ^= 0x01;
    out.push(
        Mutant::new(
            "tar-data",
            format!("kit: one bit of {} flipped", m.name),
            k1,
            gzip(&t),
        )
        .expect(&[2])
        .message("digest mismatch"),
    );
    // The same, but re-signed with the trusted key: a valid signature does not make wrong
    // content right.
    let bytes = gzip(&t);
    out.push(
        Mutant::new(
            "resigned",
            format!("kit: {} tampered then re-signed", m.name),
            k1,
            bytes.clone(),
        )
        .sidecar(".sig", sign(&bytes))
        .trusted()
        .expect(&[2])
        .message("digest mismatch"),
    );
    // Swapped members: two files' contents exchanged under their names.
    let (a, b) = (content[1], content[content.len() - 2]);
    let mut parts = k1.parts();
    let (ma, mb) = (&k1.members[a], &k1.members[b]);
    parts[a] = tar::file(&ma.name, 0o644, k1.data(mb));
    parts[b] = tar::file(&mb.name, 0o644, k1.data(ma));
    out.push(
        Mutant::new(
            "swapped",
            format!("kit: contents of {} and {} swapped", ma.name, mb.name),
            k1,
            gzip(&Kit::assemble(&parts)),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than"),
    );
    // Same-size swap, if two files share a size: only the digests can tell.
    let mut by_size: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in &content {
        by_size.entry(k1.members[i].size).or_default().push(i);
    }
    if let Some(pair) = by_size
        .values()
        .find(|v| v.len() >= 2 && k1.data(&k1.members[v[0]]) != k1.data(&k1.members[v[1]]))
    {
        let (a, b) = (pair[0], pair[1]);
        let mut parts = k1.parts();
        let (ma, mb) = (&k1.members[a], &k1.members[b]);
        parts[a] = tar::file(&ma.name, 0o644, k1.data(mb));
        parts[b] = tar::file(&mb.name, 0o644, k1.data(ma));
        out.push(
            Mutant::new(
                "swapped",
                format!("kit: same-size {} and {} swapped", ma.name, mb.name),
                k1,
                gzip(&Kit::assemble(&parts)),
            )
            .expect(&[2])
            .message("digest mismatch"),
        );
    }
    // Members in another order (harmless: the order is not part of the contract).
    let mut parts = k1.parts();
    parts.reverse();
    out.push(
        Mutant::new(
            "reordered",
            "kit: members in reverse order",
            k1,
            gzip(&Kit::assemble(&parts)),
        )
        .expect(&[0, 11]),
    );
    // Mix-and-match: k1's files with k2's manifest inside, and with k0's.
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-1 files with the day-2 manifest inside",
            k1,
            gzip(&replace(
                k1,
                "manifest/offline-manifest.json",
                c.k2.manifest(),
            )),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than|lacks|not declared"),
    );
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-2 files with the day-1 manifest inside",
            &c.k2,
            gzip(&replace(
                &c.k2,
                "manifest/offline-manifest.json",
                k1.manifest(),
            )),
        )
        .expect(&[2, 11])
        .message("digest mismatch|more than|lacks|not declared"),
    );
    // Mix-and-match through sidecars, every signature valid: the day-2 bundle (its own
    // valid .sig) with the day-1 manifest and its valid JWS.
    let (m1, jws1) = k1.sidecar_manifest();
    out.push(
        Mutant::new(
            "mix-and-match",
            "kit: day-2 bundle, day-1 manifest + JWS as sidecars",
            &c.k2,
            c.k2.gz.clone(),
        )
        .sidecar(".sig", c.k2.sidecar("sig"))
        .sidecar("m.json", m1.clone())
        .sidecar("m.json.jws", jws1.clone())
        .trusted()
        .arg("--manifest")
        .arg("{dir}/m.json")
        .arg("--manifest-signature")
        .arg("{dir}/m.json.jws")
        .message("differs|more than|digest mismatch"),
    );
    // A valid signature over different bytes: day-0's .sig next to the day-1 bundle.
    out.push(
        Mutant::new(
            "foreign-signature",
            "kit: day-1 bundle with day-0's valid .sig",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sig", c.k0.sidecar("sig"))
        .trusted()
        .expect(&[5])
        .message("not valid"),
    );
    out.push(
        Mutant::new(
            "foreign-signature",
            "kit: day-1 manifest with day-0's valid JWS",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sig", k1.sidecar("sig"))
        .sidecar("m.json", m1)
        .sidecar("m.json.jws", c.k0.sidecar_manifest().1)
        .trusted()
        .arg("--manifest")
        .arg("{dir}/m.json")
        .arg("--manifest-signature")
        .arg("{dir}/m.json.jws")
        .expect(&[5])
        .message("manifest signature"),
    );
    out.push(
        Mutant::new(
            "foreign-digest",
            "kit: day-1 bundle with day-0's .sha256",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".sha256", c.k0.sidecar("sha256"))
        .expect(&[2])
        .message("re-copy the kit"),
    );
    out.push(
        Mutant::new(
            "foreign-digest",
            "kit: day-1 bundle with day-0's .metadata.json",
            k1,
            k1.gz.clone(),
        )
        .sidecar(".metadata.json", c.k0.sidecar("metadata.json"))
        .expect(&[2])
        .message("re-copy the kit"),
    );
    out.push(
        Mutant::new(
            "unsigned",
            "kit: no .sig with a trusted key",
            k1,
            k1.gz.clone(),
        )
        .trusted()
        .expect(&[5])
        .message("unsigned"),
    );
    out.push(
        Mutant::new("foreign-signature", "kit: garbage .sig", k1, k1.gz.clone())
            .sidecar(".sig", b"MEUCIQDnot-a-signature==".to_vec())
            .trusted()
            .expect(&[5]),
    );
    // Manifest edits (the in-bundle manifest is what --allow-unsigned imports trust).
    let names: Vec<String> = content
        .iter()
        .map(|&i| k1.members[i].name.clone())
        .collect();
    let idx_of = |v: &serde_json::Value, name: &str| {
        v["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .position(|a| a["name"] == name)
            .unwrap()
    };
    let target = names[names.len() / 3].clone();
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a digest changed", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"][i]["sha256"] = "0".repeat(64).into();
        })
        .expect(&[2])
        .message("digest mismatch"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a size one byte too large", move |v| {
            let i = idx_of(v, &t2);
            let s = v["artifacts"][i]["size"].as_u64().unwrap();
            v["artifacts"][i]["size"] = (s + 1).into();
        })
        .expect(&[2])
        .message("digest mismatch"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a size one byte too small (endless data)", move |v| {
            let i = idx_of(v, &t2);
            let s = v["artifacts"][i]["size"].as_u64().unwrap();
            v["artifacts"][i]["size"] = (s - 1).into();
        })
        .message("more than"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "an artifact removed", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"].as_array_mut().unwrap().remove(i);
        })
        .message("not declared"),
    );
    out.push(manifest_mutant(k1, "an artifact the bundle lacks", |v| {
        v["artifacts"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "zzz/missing.bin", "sha256": "1".repeat(64), "size": 3, "capturedAt": "2025-10-24T00:00:00Z"
        }));
    }).message("lacks"));
    out.push(
        manifest_mutant(k1, "artifacts unsorted", |v| {
            v["artifacts"].as_array_mut().unwrap().reverse();
        })
        .message("sorted"),
    );
    out.push(
        manifest_mutant(k1, "an artifact twice", |v| {
            let a = v["artifacts"][0].clone();
            v["artifacts"].as_array_mut().unwrap().insert(0, a);
        })
        .message("sorted or duplicated"),
    );
    out.push(
        manifest_mutant(k1, "an artifact named ../../etc/passwd", |v| {
            v["artifacts"][0]["name"] = "../../etc/passwd".into();
        })
        .message("artifact"),
    );
    out.push(
        manifest_mutant(k1, "an artifact listing the manifest itself", |v| {
            let mut a = v["artifacts"][0].clone();
            a["name"] = "manifest/offline-manifest.json".into();
            let arr = v["artifacts"].as_array_mut().unwrap();
            let at = arr
                .iter()
                .position(|x| x["name"].as_str().unwrap() > "manifest/offline-manifest.json")
                .unwrap_or(arr.len());
            arr.insert(at, a);
        })
        .message("lists itself"),
    );
    out.push(
        manifest_mutant(k1, "generationId of another tree", |v| {
            v["generationId"] = "ab".repeat(32).into();
        })
        .message("generation"),
    );
    out.push(
        manifest_mutant(k1, "generationId not hex", |v| {
            v["generationId"] = "xyz".into();
        })
        .message("generationId"),
    );
    out.push(
        manifest_mutant(k1, "schema of another format", |v| {
            v["schema"] = "evil/manifest@9".into();
        })
        .message("schema"),
    );
    out.push(
        manifest_mutant(k1, "version older than the active one", |v| {
            v["version"] = "2025.9.30".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        manifest_mutant(k1, "version equal to the active one", |v| {
            v["version"] = "2025.10.0".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        manifest_mutant(k1, "createdAt a year old (freeze)", |v| {
            v["createdAt"] = "2024-10-23T00:00:00Z".into();
        })
        .arg("--max-kit-age")
        .arg("30")
        .expect(&[8])
        .message("stale"),
    );
    out.push(
        manifest_mutant(k1, "createdAt not a time", |v| {
            v["createdAt"] = "yesterday".into();
        })
        .arg("--max-kit-age")
        .arg("30")
        .expect(&[8, 11])
        .message("stale|createdAt"),
    );
    let t2 = target.clone();
    out.push(
        manifest_mutant(k1, "a huge declared size (2^60)", move |v| {
            let i = idx_of(v, &t2);
            v["artifacts"][i]["size"] = (1u64 << 60).into();
        })
        .expect(&[11, 12])
        .message("free >=|size|too large|bytes"),
    );
    out.push(
        manifest_mutant(k1, "declared sizes that overflow a u64 sum", |v| {
            for a in v["artifacts"].as_array_mut().unwrap().iter_mut().take(3) {
                a["size"] = u64::MAX.into();
            }
        })
        .expect(&[11, 12])
        .message("free >=|size|too large|overflow|bytes"),
    );
    out.push(
        manifest_mutant(k1, "an unknown artifact field", |v| {
            v["artifacts"][0]["x-evil"] = "1".into();
        })
        .message("unknown field"),
    );
    out.push(
        manifest_mutant(k1, "an unknown top-level field (ignored)", |v| {
            v["x-comment"] = "harmless".into();
        })
        .expect(&[0]),
    );
    let tar = replace(k1, "manifest/offline-manifest.json", b"{\"schema\": ");
    out.push(
        Mutant::new(
            "manifest-edit",
            "kit: manifest is truncated JSON",
            k1,
            gzip(&tar),
        )
        .message("manifest"),
    );
    let tar = replace(k1, "manifest/offline-manifest.json", &[0xff; 64]);
    out.push(
        Mutant::new(
            "manifest-edit",
            "kit: manifest is binary garbage",
            k1,
            gzip(&tar),
        )
        .message("manifest"),
    );

    // ---- delta-only attacks ----
    let d = &c.d01;
    out.push(
        delta_header_mutant(d, "baseline the host does not have", |v| {
            v["baseline"]["generation"] = "cd".repeat(32).into();
        })
        .message("does not have"),
    );
    out.push(
        delta_header_mutant(d, "target version older", |v| {
            v["target"]["version"] = "2025.9.1".into();
        })
        .expect(&[8])
        .message("version not newer"),
    );
    out.push(
        // (The target id seeds the solid block's dictionary: rebuilt files differ, 2.)
        delta_header_mutant(d, "target generation of another tree", |v| {
            v["target"]["generation"] = "ef".repeat(32).into();
        })
        .expect(&[2, 11])
        .message("disagree|generation|rebuilt content"),
    );
    out.push(
        delta_header_mutant(d, "payloadSize one byte more", |v| {
            let s = v["payloadSize"].as_u64().unwrap();
            v["payloadSize"] = (s + 1).into();
        })
        .message("payload"),
    );
    out.push(
        delta_header_mutant(d, "format of another version", |v| {
            v["format"] = "ouk-delta/9".into();
        })
        .message("format"),
    );
    out.push(
        delta_header_mutant(d, "a file path ../../evil", |v| {
            v["files"][0]["path"] = "../../evil".into();
        })
        .message("`..`|path|parent"),
    );
    out.push(
        delta_header_mutant(d, "a file path /etc/evil", |v| {
            v["files"][0]["path"] = "/etc/evil".into();
        })
        .message("absolute|path"),
    );
    out.push(
        delta_header_mutant(d, "a setuid mode", |v| {
            v["files"][0]["mode"] = 0o4755.into();
        })
        .message("mode"),
    );
    out.push(
        delta_header_mutant(d, "a file's size one byte more", |v| {
            let s = v["files"][0]["size"].as_u64().unwrap();
            v["files"][0]["size"] = (s + 1).into();
        })
        .expect(&[2, 11]),
    );
    out.push(
        delta_header_mutant(d, "a file's sha256 changed", |v| {
            v["files"][0]["sha256"] = "0".repeat(64).into();
        })
        .expect(&[2, 11]),
    );
    out.push(
        delta_header_mutant(d, "a huge file size (endless data)", |v| {
            v["files"][0]["size"] = (1u64 << 50).into();
        })
        .expect(&[11, 12]),
    );
    out.push(
        delta_header_mutant(d, "removes a path the baseline lacks", |v| {
            let r = v
                .as_object_mut()
                .unwrap()
                .entry("removed")
                .or_insert(serde_json::json!([]));
            r.as_array_mut().unwrap().push("zzzz/not-there".into());
        })
        .message("does not have|removes"),
    );
    out.push(
        delta_header_mutant(d, "solid block past the payload", |v| {
            if v["solid"].is_object() {
                v["solid"]["length"] = (1u64 << 40).into();
            } else {
                v["payloadSize"] = 0.into();
            }
        })
        .message("payload|outside"),
    );
    out.push(
        delta_header_mutant(d, "solid block decoding to 1 GiB", |v| {
            if v["solid"].is_object() {
                v["solid"]["size"] = (1u64 << 30).into();
            } else {
                v["payloadSize"] = 0.into();
            }
        })
        .message("too large|payload|solid"),
    );
    out.push(
        delta_header_mutant(d, "files unsorted", |v| {
            v["files"].as_array_mut().unwrap().reverse();
        })
        .message("sorted"),
    );
    out.push(
        delta_header_mutant(d, "the target manifest file dropped", |v| {
            v["files"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["path"] != "manifest/offline-manifest.json");
        })
        .expect(&[2, 11]),
    );
    let h = d.member("delta/delta.json").unwrap();
    let tar = replace(d, "delta/delta.json", &d.data(h)[..d.data(h).len() / 2]);
    out.push(
        Mutant::new("delta-header", "delta: delta.json truncated", d, gzip(&tar))
            .message("delta.json"),
    );
    // The payload damaged: one bit, and cut short.
    let p = d.member("delta/payload.bin").unwrap();
    let mut t = d.tar.clone();
    t[p.data + p.size as usize / 2] ^= 0x10;
    out.push(
        Mutant::new(
            "delta-payload",
            "delta: one payload bit flipped",
            d,
            gzip(&t),
        )
        .expect(&[2, 11]),
    );
    let payload = d.data(p);
    let tar = replace(d, "delta/payload.bin", &payload[..payload.len() - 1]);
    out.push(
        Mutant::new(
            "delta-payload",
            "delta: payload one byte short",
            d,
            gzip(&tar),
        )
        .message("payload"),
    );
    // A delta with the kit's signature material of another delta.
    out.push(
        Mutant::new(
            "foreign-signature",
            "delta: d01 with d12's valid .sig",
            d,
            d.gz.clone(),
        )
        .sidecar(".sig", c.d12.sidecar("sig"))
        .trusted()
        .expect(&[5])
        .message("not valid"),
    );
    out.push(
        Mutant::new(
            "baseline",
            "delta: d12 (baseline day 1) on a day-0 host",
            &c.d12,
            c.d12.gz.clone(),
        )
        .sidecar(".sig", c.d12.sidecar("sig"))
        .trusted()
        .expect(&[11])
        .message("does not have"),
    );
    // A kit named like a delta, and a delta named like a kit.
    out.push(
        Mutant::new("disguise", "kit bytes named .delta.tgz", k1, k1.gz.clone())
            .named("stella-ouk-2025-10-24.delta.tgz")
            .message("not a delta|not declared"),
    );
    out.push(
        Mutant::new("disguise", "delta bytes named .tar.gz", d, d.gz.clone())
            .named("stella-ops-offline-kit-2025.10.1-edge.tar.gz")
            .expect(&[0, 11]),
    );
    out
}

/// One random mutation of `c.k1` or `c.d01`.
pub fn random_mutant(c: &Corpus, rng: &mut ChaCha8Rng) -> Mutant {
    let kit = if rng.random_bool(0.6) { &c.k1 } else { &c.d01 };
    random_mutant_of(kit, rng)
}

/// One random mutation of the kit or delta `kit`.
pub fn random_mutant_of(kit: &Kit, rng: &mut ChaCha8Rng) -> Mutant {
    // A draw that changed nothing (a digit replaced by itself, a swap of two directory
    // entries...) is drawn again: every input counted is a real mutation.
    loop {
        let m = draw_mutant(kit, rng);
        match &m.bundle {
            Payload::Bytes(b) if *b == kit.gz || *b == kit.regz => continue,
            _ => return m,
        }
    }
}

/// A draw that changed nothing (`random_mutant_of` draws again).
fn noop(kit: &Kit) -> Mutant {
    Mutant::new("noop", "", kit, kit.gz.clone())
}

fn draw_mutant(kit: &Kit, rng: &mut ChaCha8Rng) -> Mutant {
    let label = if kit.member("delta/delta.json").is_none() {
        "kit"
    } else {
        "delta"
    };
    let any = &[0, 2, 8, 11][..];
    match rng.random_range(0..9u32) {
        0 => {
            let mut b = kit.gz.clone();
            let k = rng.random_range(1..=4);
            let at = flip(&mut b, rng, k);
            Mutant::new(
                "gz-bitflip",
                format!("{label}: {k} bit(s) at {at:?}"),
                kit,
                b,
            )
            .expect(any)
        }
        1 => {
            let len = rng.random_range(0..kit.gz.len());
            Mutant::new(
                "gz-truncate",
                format!("{label}: cut to {len}"),
                kit,
                kit.gz[..len].to_vec(),
            )
        }
        2 => {
            let mut t = kit.tar.clone();
            let k = rng.random_range(1..=4);
            let at = flip(&mut t, rng, k);
            Mutant::new(
                "tar-bitflip",
                format!("{label}: {k} tar bit(s) at {at:?}"),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
        3 => {
            // Header fields rewritten with a valid checksum.
            let mut t = kit.tar.clone();
            let m = &kit.members[rng.random_range(0..kit.members.len())];
            let field = rng.random_range(0..5u32);
            let h = &mut t[m.header..m.header + 512];
            let what = match field {
                0 => {
                    let i = rng.random_range(0..100);
                    h[i] = rng.random();
                    format!("name byte {i}")
                }
                1 => {
                    let i = rng.random_range(100..108);
                    h[i] = b"01234567"[rng.random_range(0..8)];
                    format!("mode digit {i}")
                }
                2 => {
                    let i = rng.random_range(124..135);
                    h[i] = b"01234567"[rng.random_range(0..8)];
                    format!("size digit {i}")
                }
                3 => {
                    h[156] = b"0123456789xgLKSV7"[rng.random_range(0..17)];
                    format!("typeflag {}", h[156] as char)
                }
                _ => {
                    let i = rng.random_range(257..265);
                    h[i] = rng.random();
                    format!("magic byte {i}")
                }
            };
            tar::set_checksum(h);
            Mutant::new(
                "tar-header",
                format!("{label}: {} {what}", m.name),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
        4 => {
            // The archive cut at a random structural boundary.
            let m = &kit.members[rng.random_range(0..kit.members.len())];
            let choices = [
                m.start,
                m.header + rng.random_range(1..512),
                m.data + (m.size as usize).min(rng.random_range(0..4096)),
                kit.trailer,
                kit.trailer + rng.random_range(1..1024),
            ];
            let cut = choices[rng.random_range(0..choices.len())].min(kit.tar.len() - 1);
            Mutant::new(
                "tar-truncate",
                format!("{label}: tar cut at {cut}"),
                kit,
                gzip(&kit.tar[..cut]),
            )
        }
        5 => {
            // Members dropped, duplicated, swapped or hostile ones inserted.
            let mut parts = kit.parts();
            let i = rng.random_range(0..parts.len());
            let j = rng.random_range(0..parts.len());
            let (what, codes): (String, &[i32]) = match rng.random_range(0..4u32) {
                0 => {
                    parts.remove(i);
                    (format!("member {i} dropped"), &[0, 2, 11])
                }
                1 => {
                    let p = parts[i].clone();
                    parts.insert(j, p);
                    (format!("member {i} repeated at {j}"), &[11])
                }
                2 => {
                    let (a, b) = (&kit.members[i], &kit.members[j]);
                    if a.typeflag != b'0' || b.typeflag != b'0' || kit.data(a) == kit.data(b) {
                        return noop(kit);
                    }
                    parts[i] = tar::file(&a.name, 0o644, kit.data(b));
                    parts[j] = tar::file(&b.name, 0o644, kit.data(a));
                    (format!("data of members {i} and {j} swapped"), any)
                }
                _ => {
                    let hostile = hostile_members();
                    let (name, member, _) = hostile[rng.random_range(0..hostile.len())].clone();
                    parts.insert(j, member);
                    (format!("hostile member {name} at {j}"), &[11])
                }
            };
            Mutant::new(
                "members",
                format!("{label}: {what}"),
                kit,
                gzip(&Kit::assemble(&parts)),
            )
            .expect(codes)
        }
        6 if label == "kit" => {
            // A random edit of the in-bundle manifest.
            let edit = rng.random_range(0..6u32);
            let n = kit.manifest().len();
            let bytes = match edit {
                0 => {
                    let mut b = kit.manifest().to_vec();
                    flip(&mut b, rng, 1);
                    b
                }
                1 => kit.manifest()[..rng.random_range(0..n)].to_vec(),
                _ => {
                    let count = kit.members.len();
                    let pick = rng.random_range(0..count);
                    let hexd = random_hex(rng);
                    let delta: i64 = [-3, -2, -1, 1, 2, 3][rng.random_range(0..6)];
                    json_edit(kit.manifest(), |v| {
                        let arts = v["artifacts"].as_array_mut().unwrap();
                        let k = pick % arts.len();
                        match edit {
                            2 => arts[k]["sha256"] = hexd.into(),
                            3 => {
                                let s = arts[k]["size"].as_u64().unwrap() as i64;
                                arts[k]["size"] = (s + delta).max(0).into();
                            }
                            4 => {
                                arts.remove(k);
                            }
                            _ => v["generationId"] = hexd.into(),
                        }
                    })
                }
            };
            if bytes == kit.manifest() {
                return noop(kit);
            }
            let tar = replace(kit, "manifest/offline-manifest.json", &bytes);
            Mutant::new(
                "manifest-edit",
                format!("{label}: manifest edit {edit}"),
                kit,
                gzip(&tar),
            )
            .expect(any)
        }
        6 | 7 => {
            // A random edit of the delta header (or, for kits, of a random JSON member).
            let (name, data) = if label == "delta" {
                let h = kit.member("delta/delta.json").unwrap();
                ("delta/delta.json".to_string(), kit.data(h).to_vec())
            } else {
                let json: Vec<&tar::Member> = kit
                    .members
                    .iter()
                    .filter(|m| m.name.ends_with(".json"))
                    .collect();
                let m = json[rng.random_range(0..json.len())];
                (m.name.clone(), kit.data(m).to_vec())
            };
            let mut b = data.clone();
            let what = match rng.random_range(0..3u32) {
                0 => {
                    flip(&mut b, rng, 1);
                    "bit flip".to_string()
                }
                1 => {
                    // A digit changed (numbers are sizes and offsets).
                    let digits: Vec<usize> =
                        (0..b.len()).filter(|&i| b[i].is_ascii_digit()).collect();
                    if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                        b[i] = b'0' + rng.random_range(0..10);
                    }
                    "digit changed".to_string()
                }
                _ => {
                    // A hex digit changed (digests and generation ids).
                    let hexes: Vec<usize> =
                        (0..b.len()).filter(|&i| b[i].is_ascii_hexdigit()).collect();
                    if let Some(&i) = hexes.get(rng.random_range(0..hexes.len().max(1))) {
                        b[i] = b"0123456789abcdef"[rng.random_range(0..16)];
                    }
                    "hex digit changed".to_string()
                }
            };
            if b == data {
                return noop(kit);
            }
            let tar = replace(kit, &name, &b);
            Mutant::new(
                "json-edit",
                format!("{label}: {name} {what}"),
                kit,
                gzip(&tar),
            )
            .expect(any)
        }
        _ => {
            // Payload or file data flipped (the gzip layer valid).
            let files = kit.files();
            let m = &kit.members[files[rng.random_range(0..files.len())]];
            let mut t = kit.tar.clone();
            let k = rng.random_range(1..=3);
            let mut at = Vec::new();
            for _ in 0..k {
                let i = m.data + rng.random_range(0..m.size as usize);
                t[i] ^= 1 << rng.random_range(0..8);
                at.push(i);
            }
            Mutant::new(
                "data-bitflip",
                format!("{label}: {} bit(s) in {}", k, m.name),
                kit,
                gzip(&t),
            )
            .expect(any)
        }
    }
}

/// What a root looks like, for before/after comparison: every path under the sandbox
/// (except `ROOT/staging/**`, `ROOT/quarantine/**`, the redb file, which redb rewrites on
/// open, and the lock) with its type, size, mode, inode and mtime; plus what the index
/// says (generations, activations, chunks, files, current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Path -> description.
    pub paths: BTreeMap<String, String>,
    /// Index facts.
    pub facts: String,
}

fn walk(base: &Path, dir: &Path, skip: &dyn Fn(&str) -> bool, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        if skip(&rel) {
            continue;
        }
        let m = fs::symlink_metadata(&p).unwrap();
        let desc = if rel.starts_with("root/store/packs/") && m.is_file() {
            // Packs by content: a refused import appends frames while it streams and
            // truncates them away when it refuses (the mtime moves, the bytes do not).
            format!(
                "pack {:o} {} ino {} sha256 {}",
                m.mode(),
                m.len(),
                m.ino(),
                sha256_hex(&fs::read(&p).unwrap())
            )
        } else if m.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            format!("dir {:o}", m.mode())
        } else {
            format!(
                "file {:o} {} ino {} mtime {}.{}",
                m.mode(),
                m.len(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec()
            )
        };
        out.insert(rel, desc);
        if m.is_dir() {
            walk(base, &p, skip, out);
        }
    }
}

/// Snapshot `sandbox` (which holds the root at `sandbox/root`).
pub fn snapshot(sandbox: &Path) -> Snapshot {
    let mut paths = BTreeMap::new();
    let skip = |rel: &str| {
        rel.starts_with("root/staging/")
            || rel.starts_with("root/quarantine/")
            || rel == "root/store/index.redb"
            || rel == "root/lock"
    };
    walk(sandbox, sandbox, &skip, &mut paths);
    let r = ouk_root::Root::open(
        &sandbox.join("root"),
        ouk_root::LockWait::Wait,
        ouk_store::StoreOptions::default(),
    )
    .expect("open root for a snapshot");
    let stats = r.store().stats().unwrap();
    let facts = format!(
        "current {:?} generations {} activations {} chunks {} files {} packs {}",
        r.current().unwrap(),
        r.generations().unwrap().len(),
        r.activations().unwrap().len(),
        stats.chunks,
        stats.files,
        stats.pack_bytes
    );
    Snapshot { paths, facts }
}

/// Copy a directory tree with `cp -a`.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// A root with one active generation that hostile inputs are thrown at.
pub struct Sandbox {
    /// Work directory: `sandbox/` (checked) and `cases/` (inputs).
    pub work: PathBuf,
    /// `work/sandbox`.
    pub dir: PathBuf,
    /// `work/sandbox/root`.
    pub root: PathBuf,
    pristine: PathBuf,
    before: Snapshot,
    /// Generations an accepted input may have activated.
    pub accepted: Vec<String>,
    cases: u64,
    /// The case that used the most CPU, and how much.
    pub slowest: (Duration, String),
    /// CPU time of the last case.
    pub last_cpu: Duration,
    /// CPU seconds one case may use (see [`Bounded`]): generous, to catch a blowup.
    pub cpu_secs: u64,
    /// Wall time one case may take: only a hang gets there.
    pub wall: Duration,
    /// The error message of the last refused case.
    pub last_message: String,
}

/// Outcome of one case: the exit code, or why the case failed.
pub type CaseResult = Result<i32, String>;

impl Sandbox {
    /// A sandbox under `work` whose root has `baseline` active (imported unsigned-allowed).
    pub fn new(work: &Path, baseline: &Kit, accepted: &[&str]) -> Sandbox {
        let dir = work.join("sandbox");
        let root = dir.join("root");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("canary"), b"must not change").unwrap();
        fs::create_dir_all(dir.join("canary-dir")).unwrap();
        let (rc, r) = import(&root, &baseline.bundle, &["--allow-unsigned"]);
        assert_eq!(rc, 0, "baseline import: {r}");
        let pristine = work.join("pristine");
        copy_tree(&dir, &pristine);
        let before = snapshot(&dir);
        Sandbox {
            work: work.to_path_buf(),
            dir,
            root,
            pristine,
            before,
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            cases: 0,
            slowest: (Duration::ZERO, String::new()),
            last_cpu: Duration::ZERO,
            cpu_secs: super::bounded::default_cpu_secs(),
            wall: super::bounded::DEFAULT_WALL,
            last_message: String::new(),
        }
    }

    fn reset(&mut self) {
        ouk_root::remove_tree(&self.dir).unwrap();
        copy_tree(&self.pristine, &self.dir);
        self.before = snapshot(&self.dir);
    }

    /// Import `m` into the root and check every invariant; see the module doc.
    pub fn run(&mut self, m: &Mutant) -> CaseResult {
        self.cases += 1;
        self.last_cpu = Duration::ZERO;
        self.last_message.clear();
        let case = self.work.join("cases").join(format!("{}", self.cases));
        fs::create_dir_all(&case).unwrap();
        let bundle = case.join(&m.name);
        match &m.bundle {
            Payload::Bytes(b) => fs::write(&bundle, b).unwrap(),
            Payload::File(p) => {
                fs::rename(p, &bundle).unwrap();
            }
        }
        for (name, bytes) in &m.sidecars {
            let path = if name.starts_with('.') {
                case.join(format!("{}{name}", m.name))
            } else {
                case.join(name)
            };
            fs::write(path, bytes).unwrap();
        }
        let dir = case.display().to_string();
        // --wait: see `import`.
        let mut args: Vec<String> = vec![
            "--json".into(),
            "--wait".into(),
            "kit".into(),
            "import".into(),
            bundle.display().to_string(),
            "--free-margin".into(),
            "0".into(),
        ];
        if !m.args.iter().any(|a| a == "--max-kit-age") {
            args.extend(["--max-kit-age".into(), "0".into()]);
        }
        args.extend(m.args.iter().map(|a| a.replace("{dir}", &dir)));
        let quarantine_before = fs::read_dir(self.root.join("quarantine")).unwrap().count();
        let mut cmd = Command::new(ouk());
        cmd.arg("--root")
            .arg(&self.root)
            .args(&args)
            .env_remove("OUK_ROOT");
        // Bounded: a case that spins past its CPU bound (a decoder expanding a bomb, a
        // busy loop) or hangs past the wall deadline fails here, named, instead of
        // stalling the run.
        let child = Bounded::spawn_with(
            &mut cmd,
            format!("[{}] {}", m.family, m.detail),
            self.cpu_secs,
            self.wall,
        );
        let out = match child.wait() {
            Ok(out) => out,
            Err(overrun) => {
                let _ = fs::remove_dir_all(&case);
                self.reset();
                return Err(overrun);
            }
        };
        self.last_cpu = out.cpu;
        if out.cpu > self.slowest.0 {
            self.slowest = (out.cpu, m.detail.clone());
        }
        let status = out.status;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let result = self.check(m, status.code(), &stdout, &stderr, quarantine_before);
        let _ = fs::remove_dir_all(&case);
        if result.is_err() || result == Ok(0) {
            self.reset();
        }
        result
    }

    fn check(
        &mut self,
        m: &Mutant,
        code: Option<i32>,
        stdout: &str,
        stderr: &str,
        quarantine_before: usize,
    ) -> CaseResult {
        let ctx = || {
            format!(
                "[{}] {}\nstdout: {stdout}\nstderr: {stderr}",
                m.family, m.detail
            )
        };
        let Some(code) = code else {
            return Err(format!("killed by a signal: {}", ctx()));
        };
        if code == 101 {
            return Err(format!("PANIC (exit 101): {}", ctx()));
        }
        if !m.expect.contains(&code) {
            return Err(format!(
                "exit {code}, expected one of {:?}: {}",
                m.expect,
                ctx()
            ));
        }
        let doc: serde_json::Value = serde_json::from_str(stdout.trim())
            .map_err(|e| format!("stdout is not one JSON document ({e}): {}", ctx()))?;
        // Staging is empty whatever happened.
        let staging = fs::read_dir(self.root.join("staging")).unwrap().count();
        if staging != 0 {
            return Err(format!(
                "staging holds {staging} entries afterwards: {}",
                ctx()
            ));
        }
        if code == 0 {
            // Accepted: it must be the genuine target, complete.
            let current = super::check_current_complete(&self.root);
            let Some(current) = current else {
                return Err(format!("accepted but nothing current: {}", ctx()));
            };
            if !self.accepted.contains(&current) {
                return Err(format!(
                    "accepted and activated an unknown generation {current}: {}",
                    ctx()
                ));
            }
            return Ok(0);
        }
        let message = doc["error"].as_str().unwrap_or_default();
        self.last_message = message.to_string();
        if message.is_empty() || doc["exitCode"] != code {
            return Err(format!(
                "no error message / exitCode in the JSON: {}",
                ctx()
            ));
        }
        if let Some(want) = m.message
            && !want.split('|').any(|w| message.contains(w))
        {
            return Err(format!("message lacks {want:?}: {}", ctx()));
        }
        let after = snapshot(&self.dir);
        if after != self.before {
            let mut diff = Vec::new();
            for (k, v) in &after.paths {
                if self.before.paths.get(k) != Some(v) {
                    diff.push(format!("+ {k}: {v}"));
                }
            }
            for (k, v) in &self.before.paths {
                if !after.paths.contains_key(k) {
                    diff.push(format!("- {k}: {v}"));
                }
            }
            return Err(format!(
                "the root changed outside staging/quarantine: {diff:?}\nfacts {} -> {}\n{}",
                self.before.facts,
                after.facts,
                ctx()
            ));
        }
        // Quarantined with the same code.
        let q = self.root.join("quarantine");
        let entries: Vec<PathBuf> = fs::read_dir(&q)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if code != 12 {
            if entries.len() != quarantine_before + 1 {
                return Err(format!(
                    "not quarantined ({} entries): {}",
                    entries.len(),
                    ctx()
                ));
            }
            let newest = entries
                .iter()
                .find(|p| p.join("reason.json").is_file())
                .ok_or_else(|| format!("no reason.json: {}", ctx()))?;
            let reason: serde_json::Value =
                serde_json::from_slice(&fs::read(newest.join("reason.json")).unwrap())
                    .map_err(|e| format!("reason.json: {e}"))?;
            if reason["code"] != code || reason["step"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "reason.json {reason} does not match exit {code}: {}",
                    ctx()
                ));
            }
        }
        for e in entries {
            ouk_root::remove_tree(&e).unwrap();
        }
        Ok(code)
    }
}

/// Outcome counts: family -> exit code (or "FAIL") -> count.
#[derive(Debug, Default)]
pub struct Tally {
    /// Counts.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Failures (first few kept in full).
    pub failures: Vec<String>,
    /// Total cases.
    pub total: u64,
}

impl Tally {
    /// Record one case.
    pub fn add(&mut self, family: &str, r: &CaseResult) {
        self.total += 1;
        let key = match r {
            Ok(c) => format!("exit {c}"),
            Err(e) => {
                if self.failures.len() < 20 {
                    self.failures.push(e.clone());
                }
                "FAIL".into()
            }
        };
        *self
            .counts
            .entry(family.to_string())
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    /// Add another tally's counts.
    pub fn merge(&mut self, other: Tally) {
        self.total += other.total;
        for (fam, m) in other.counts {
            let mine = self.counts.entry(fam).or_default();
            for (k, v) in m {
                *mine.entry(k).or_default() += v;
            }
        }
        self.failures.extend(other.failures);
    }

    /// A markdown table of the counts.
    pub fn table(&self) -> String {
        let mut codes: Vec<String> = self
            .counts
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        codes.sort();
        codes.dedup();
        let mut s = format!(
            "| family | {} | total |\n|---|{}---|\n",
            codes.join(" | "),
            "---|".repeat(codes.len())
        );
        let mut totals = vec![0u64; codes.len()];
        for (fam, m) in &self.counts {
            let row: Vec<u64> = codes.iter().map(|c| *m.get(c).unwrap_or(&0)).collect();
            for (t, r) in totals.iter_mut().zip(&row) {
                *t += r;
            }
            s.push_str(&format!(
                "| {fam} | {} | {} |\n",
                row.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" | "),
                row.iter().sum::<u64>()
            ));
        }
        s.push_str(&format!(
            "| **all** | {} | {} |\n",
            totals
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
            self.total
        ));
        s
    }
}

/// An edit of a JSON value.
type JsonEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// Attacks on the patch pieces of a delta (`zstd-ref`, `bsdiff` and plain `zstd`): bits
/// flipped inside each piece's encoded bytes, and header edits of each piece (encoding
/// swapped, reference moved, lengths changed). Each must be refused with 2 or 11. Each
/// mutant comes with the encoding of the piece it attacks.
pub fn piece_mutants(d: &Kit, rng: &mut ChaCha8Rng) -> Vec<(String, Mutant)> {
    let h = d.member("delta/delta.json").unwrap();
    let header: serde_json::Value = serde_json::from_slice(d.data(h)).unwrap();
    let p = d.member("delta/payload.bin").unwrap();
    let mut out = Vec::new();
    let files = header["files"].as_array().unwrap();
    for (fi, f) in files.iter().enumerate() {
        let Some(pieces) = f["source"]["pieces"].as_array() else {
            continue;
        };
        for (pi, piece) in pieces.iter().enumerate() {
            let enc = piece["encoding"].as_str().unwrap().to_string();
            let (off, len) = (
                piece["offset"].as_u64().unwrap() as usize,
                piece["length"].as_u64().unwrap() as usize,
            );
            let what = format!(
                "{} piece {pi} ({enc}, {len} bytes)",
                f["path"].as_str().unwrap()
            );
            for k in 0..6 {
                let mut t = d.tar.clone();
                let at = match k {
                    0 => 0,
                    1 => len - 1,
                    _ => rng.random_range(0..len),
                };
                t[p.data + off + at] ^= 1 << rng.random_range(0..8);
                out.push((
                    enc.clone(),
                    Mutant::new(
                        "piece-bytes",
                        format!("{what}: bit flipped at {at}"),
                        d,
                        gzip(&t),
                    )
                    .expect(&[2, 11]),
                ));
            }
            let edits: Vec<(&str, JsonEdit)> = vec![
                (
                    "encoding swapped",
                    Box::new(|v: &mut serde_json::Value| {
                        let e = v["encoding"].as_str().unwrap_or("zstd").to_string();
                        v["encoding"] = match e.as_str() {
                            "zstd-ref" => "bsdiff",
                            "zstd" => "zstd-ref",
                            _ => "zstd-ref",
                        }
                        .into();
                    }),
                ),
                (
                    "encoding zstd without its reference",
                    Box::new(|v: &mut serde_json::Value| {
                        v["encoding"] = "zstd".into();
                    }),
                ),
                (
                    "size one byte more",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["size"].as_u64().unwrap();
                        v["size"] = (s + 1).into();
                    }),
                ),
                (
                    "length one byte less",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["length"].as_u64().unwrap();
                        v["length"] = s.saturating_sub(1).into();
                    }),
                ),
                (
                    "offset one byte on",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["offset"].as_u64().unwrap();
                        v["offset"] = (s + 1).into();
                    }),
                ),
                (
                    "reference shifted",
                    Box::new(|v: &mut serde_json::Value| {
                        if let Some(o) = v["reference"]["offset"].as_u64() {
                            v["reference"]["offset"] = (o + 7).into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference past its file",
                    Box::new(|v: &mut serde_json::Value| {
                        if v["reference"].is_object() {
                            v["reference"]["offset"] = (1u64 << 40).into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference to another file",
                    Box::new(|v: &mut serde_json::Value| {
                        if v["reference"].is_object() {
                            v["reference"]["path"] = "manifest/offline-manifest.json".into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference to a missing file",
                    Box::new(|v: &mut serde_json::Value| {
                        v["reference"] =
                            serde_json::json!({"path": "no/such/file", "offset": 0, "length": 10});
                        v["encoding"] = "zstd-ref".into();
                    }),
                ),
            ];
            for (label, edit) in edits {
                out.push((
                    enc.clone(),
                    delta_header_mutant(d, &format!("{what}: {label}"), |v| {
                        edit(&mut v["files"][fi]["source"]["pieces"][pi])
                    })
                    .expect(&[2, 11]),
                ));
            }
        }
    }
    out
}

/// A scratch directory under the cargo target dir, removed by the caller when done. Stale
/// ones of processes that no longer run are removed first.
pub fn scratch(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(rd) = fs::read_dir(&base) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n
                .strip_prefix(&format!("{name}-"))
                .and_then(|p| p.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = ouk_root::remove_tree(&e.path());
            }
        }
    }
    let dir = base.join(format!("{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    SCRATCH.lock().unwrap().push(dir.clone());
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" function; it runs once at exit.
        unsafe { libc::atexit(remove_scratch) };
    });
    dir
}

static SCRATCH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_scratch() {
    if let Ok(dirs) = SCRATCH.lock() {
        for d in dirs.iter() {
            let _ = ouk_root::remove_tree(d);
        }
    }
}

/// The corpus of small kits (testdata `small(7)`, days 0-2) and deltas, built once per test
/// process (a test binary) in a scratch directory removed at exit.
pub fn small_corpus() -> &'static Corpus {
    static C: std::sync::OnceLock<Corpus> = std::sync::OnceLock::new();
    C.get_or_init(|| Corpus::build(&scratch("corpus"), ouk_testdata::TreeSpec::small(7)))
}

/// A small filesystem mounted by the test (tests run as root): tmpfs with a size limit,
/// else an ext4 image on a loop device. Unmounted (lazily, if busy) when dropped.
pub struct SmallFs {
    /// Mount point.
    pub mnt: PathBuf,
    /// `tmpfs` or `ext4-loop`.
    pub kind: &'static str,
    image: Option<PathBuf>,
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl SmallFs {
    /// Mount a filesystem of `bytes` (plus `extra` mount options for tmpfs, like
    /// `nr_inodes=300`) at `dir/mnt`. Panics with a clear message when neither tmpfs nor a
    /// loop-mounted ext4 image can be mounted: a full-disk test must not pass silently.
    pub fn new(dir: &Path, bytes: u64, extra: &str) -> SmallFs {
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let m = mnt.to_str().unwrap();
        let mut opts = format!("size={bytes}");
        if !extra.is_empty() {
            opts = format!("{opts},{extra}");
        }
        let tmpfs = sh("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", m]);
        if tmpfs.is_ok() {
            return SmallFs {
                mnt,
                kind: "tmpfs",
                image: None,
            };
        }
        let image = dir.join("fs.img");
        let img = image.to_str().unwrap();
        let size = format!("{bytes}");
        let ext4 = sh("truncate", &["-s", &size, img])
            .and_then(|_| sh("mkfs.ext4", &["-q", "-F", "-m", "0", img]))
            .and_then(|_| sh("mount", &["-o", "loop", img, m]));
        match ext4 {
            Ok(()) => SmallFs {
                mnt,
                kind: "ext4-loop",
                image: Some(image),
            },
            Err(e) => panic!(
                "cannot make a small filesystem for the full-disk test (it needs root): \
                 tmpfs: {}; loop ext4: {e}",
                tmpfs.unwrap_err()
            ),
        }
    }

    /// Change the size (tmpfs only; returns false for the ext4 fallback).
    pub fn resize(&self, bytes: u64) -> bool {
        if self.kind != "tmpfs" {
            return false;
        }
        sh(
            "mount",
            &[
                "-o",
                &format!("remount,size={bytes}"),
                self.mnt.to_str().unwrap(),
            ],
        )
        .unwrap();
        true
    }

    /// Bytes free for an unprivileged writer.
    pub fn free(&self) -> u64 {
        statvfs(&self.mnt).0
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        let (free, total) = statvfs(&self.mnt);
        total - free
    }
}

/// (available, total) bytes of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (
        st.f_bavail as u64 * st.f_frsize as u64,
        st.f_blocks as u64 * st.f_frsize as u64,
    )
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let m = self.mnt.to_str().unwrap().to_string();
        if sh("umount", &[&m]).is_err() {
            let _ = sh("umount", &["-l", &m]);
        }
        if let Some(img) = &self.image {
            let _ = fs::remove_file(img);
        }
    }
}

/// The day-`day` small tree plus `feeds/blob.bin`, `random_mib` MiB of incompressible
/// bytes (seeded), built as a kit of `version` signed by the fixture key.
pub fn fat_kit(dir: &Path, day: u32, version: &str, random_mib: usize, seed: u64) -> PathBuf {
    use rand::{RngCore, SeedableRng};
    let release = dir.join(format!("release-{version}"));
    ouk_testdata::generate(&ouk_testdata::TreeSpec::small(7).on_day(day), &release).unwrap();
    let mut bytes = vec![0u8; random_mib << 20];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    fs::write(release.join("feeds/blob.bin"), &bytes).unwrap();
    build_kit(&release, &dir.join(format!("kit-{version}")), version, true)
}
