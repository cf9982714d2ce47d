//! Tests of the bundle codec: round trips, determinism, GNU tar and gzip interop, hostile
//! archives, and a no-panic property over mutated input.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use std::process::Command;

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

// ---------------------------------------------------------------------------------------
// helpers

fn opts(threads: usize) -> WriterOptions {
    WriterOptions {
        threads,
        ..WriterOptions::default()
    }
}

/// Deterministic pseudo-random, compressible text of `len` bytes.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "vulnerability",
        "advisory",
        "CVE",
        "package",
        "version",
        "severity",
        "high",
        "low",
        "affected",
        "fixed",
        "stellaops",
        "scanner",
        "{\"id\":",
        "\"purl\":",
        "\n",
        "}",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = words[(x % words.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if x & 0x100 == 0 {
            b' '
        } else {
            b'0' + (x >> 20) as u8 % 10
        });
    }
    out.truncate(len);
    out
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn gzip_fast(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A sample tree: (path, mode, content).
fn sample_files() -> Vec<(String, u32, Vec<u8>)> {
    let long_dir = format!("plugins/{}", "very-long-directory-name-".repeat(5));
    vec![
        ("manifest/offline-manifest.json".into(), 0o644, text(1, 2000)),
        ("secrets/signing.key".into(), 0o600, b"secret\n".to_vec()),
        ("bin/ouk".into(), 0o755, text(2, 512)),
        ("empty".into(), 0o644, Vec::new()),
        ("feeds/nvd.jsonl".into(), 0o644, text(3, 3 * 1024 * 1024 + 17)),
        (format!("{long_dir}/file-with-a-long-name.json"), 0o644, text(4, 700)),
        (
            "plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/StellaOps.Scanner.Analyzers.Lang.Go.dll".into(),
            0o644,
            text(5, 4000),
        ),
        (
            "plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/StellaOps.Scanner.Analyzers.Lang.Go.pdb".into(),
            0o644,
            text(6, 3000),
        ),
        (
            "plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/manifest.json".into(),
            0o644,
            text(7, 300),
        ),
        (
            "plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go-extra/manifest.json".into(),
            0o644,
            text(8, 300),
        ),
    ]
}

fn specs(files: &[(String, u32, Vec<u8>)]) -> Vec<EntrySpec> {
    files
        .iter()
        .map(|(p, m, d)| EntrySpec {
            path: p.clone(),
            mode: *m,
            source: EntrySource::Bytes(d.clone()),
        })
        .collect()
}

fn build(
    files: &[(String, u32, Vec<u8>)],
    threads: usize,
) -> (Vec<u8>, BundleSummary, Vec<EntryInfo>) {
    let (summary, infos, out) =
        write_bundle(Vec::new(), specs(files), opts(threads)).expect("write");
    (out, summary, infos)
}

fn declared_of(files: &[(String, u32, Vec<u8>)]) -> BTreeMap<String, u64> {
    files
        .iter()
        .map(|(p, _, d)| (p.clone(), d.len() as u64))
        .collect()
}

fn limits_of(files: &[(String, u32, Vec<u8>)]) -> ReadLimits {
    let total = files.iter().map(|f| f.2.len() as u64).sum();
    ReadLimits::for_declared(files.len() as u64, total)
}

fn tool_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{cmd:?} warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Whether an interop test may run: `true` when `tool` can be spawned. A missing tool fails
/// the test, naming it, unless `OUK_SKIP_<TOOL>` is set (then the caller skips after a
/// notice): a machine without GNU tar would otherwise pass the interop tests unchecked.
fn require(tool: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            let var = format!("OUK_SKIP_{}", tool.to_uppercase());
            if std::env::var_os(&var).is_some() {
                eprintln!("`{tool}` cannot be run ({e}): skipped because {var} is set");
                false
            } else {
                panic!(
                    "`{tool}` cannot be run ({e}): this test needs {tool} (install it, or set \
                     {var}=1 to skip explicitly)"
                );
            }
        }
    }
}

/// A small tar builder for hostile archives (ustar headers, any name, any type).
#[derive(Default)]
struct Tar {
    buf: Vec<u8>,
}

impl Tar {
    fn header(name: &[u8], typeflag: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn entry(mut self, name: &str, typeflag: u8, mode: u32, data: &[u8], link: &str) -> Self {
        self.buf.extend_from_slice(&Self::header(
            name.as_bytes(),
            typeflag,
            mode,
            data.len() as u64,
            link.as_bytes(),
        ));
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.resize(self.buf.len() + pad, 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, b'0', 0o644, data, "")
    }

    fn end(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 1024, 0);
        self.buf
    }
}

/// Unpacks gzip bytes into `<tmp>/stage`, declaring `declared`; returns the result and the
/// temp dir (to check that nothing leaked outside `stage`).
fn unpack_hostile(
    gz: &[u8],
    declared: &[(&str, u64)],
) -> (Result<Vec<UnpackedFile>, ReadError>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let stage = tmp.path().join("stage");
    fs::create_dir(&stage).expect("mkdir");
    let map: BTreeMap<String, u64> = declared.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    let lookup = |p: &str| map.get(p).copied();
    let total: u64 = map.values().sum();
    let res = unpack_to_dir(
        gz,
        &stage,
        &lookup,
        ReadLimits::for_declared(map.len() as u64, total),
    );
    // Nothing may appear beside `stage`.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("stage")],
        "something leaked out of stage"
    );
    (res, tmp)
}

// ---------------------------------------------------------------------------------------
// writer and reader

#[test]
fn bundle_round_trip_via_files_and_bytes() {
    let files = sample_files();
    let src = tempfile::tempdir().expect("tempdir");
    // Half of the entries from disk, half from memory, in sorted order.
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut w = BundleWriter::with_options(Vec::new(), opts(2)).expect("writer");
    let mut infos = Vec::new();
    for (i, (p, m, d)) in sorted.iter().enumerate() {
        let info = if i % 2 == 0 {
            let fp = src.path().join(format!("f{i}"));
            fs::write(&fp, d).expect("write src");
            w.add_file(p, *m, &fp).expect("add_file")
        } else {
            w.add_bytes(p, *m, d).expect("add_bytes")
        };
        assert_eq!(info.size, d.len() as u64);
        assert_eq!(info.sha256, sha(d));
        infos.push(info);
    }
    let (summary, out) = w.finish().expect("finish");
    assert_eq!(summary.sha256, sha(&out));
    assert_eq!(summary.size, out.len() as u64);
    assert_eq!(summary.files, files.len() as u64);
    assert_eq!(summary.tar_size, gunzip(&out).len() as u64);

    let dst = tempfile::tempdir().expect("tempdir");
    let declared = declared_of(&files);
    let got = unpack_to_dir(
        &out[..],
        dst.path(),
        &|p| declared.get(p).copied(),
        limits_of(&files),
    )
    .expect("unpack");
    assert_eq!(got.len(), files.len());
    for (u, info) in got.iter().zip(&infos) {
        assert_eq!(
            (&u.path, u.size, u.sha256, u.mode),
            (&info.path, info.size, info.sha256, info.mode)
        );
    }
    for (p, m, d) in &files {
        let fp = dst.path().join(p);
        assert_eq!(&fs::read(&fp).expect("read"), d, "{p}");
        assert_eq!(
            fs::metadata(&fp).expect("meta").permissions().mode() & 0o7777,
            *m,
            "{p}"
        );
    }
    assert_eq!(
        fs::metadata(dst.path().join("plugins"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

#[test]
fn bundle_entries_are_sorted_with_directories() {
    let files = sample_files();
    let (out, summary, _) = build(&files, 1);
    let mut reader = BundleReader::new(
        &out[..],
        |_: &str| Some(u64::MAX),
        ReadLimits::for_declared(100, 1 << 30),
    );
    let mut names = Vec::new();
    while let Some(e) = reader.next_entry().expect("entry") {
        names.push(match e.kind {
            EntryKind::Directory => {
                assert_eq!(e.mode, 0o755);
                format!("{}/", e.path)
            }
            EntryKind::File => e.path.clone(),
        });
    }
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(names, sorted);
    assert_eq!(
        names.iter().filter(|n| n.ends_with('/')).count() as u64,
        summary.directories
    );
    assert!(names.contains(&"plugins/scanner/analyzers/lang/".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("./")));
}

#[test]
fn bundle_is_deterministic_across_runs_and_threads() {
    let files = sample_files();
    let (a, sa, _) = build(&files, 1);
    let (b, sb, _) = build(&files, 1);
    let (c, sc, _) = build(&files, 2);
    let (d, _, _) = build(&files, 3);
    assert_eq!(a, b);
    assert_eq!(a, c, "1 vs 2 threads");
    assert_eq!(a, d, "1 vs 3 threads");
    assert_eq!((sa, sb), (sc, sc));
    // Fixed gzip header: no name, mtime 0, XFL 0, OS 255.
    assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
}

#[test]
fn bundle_pgzip_decodes_at_block_edges() {
    for (len, block) in [
        (0usize, 32 * 1024),
        (1, 32 * 1024),
        (32 * 1024, 32 * 1024),
        (32 * 1024 + 1, 32 * 1024),
        (5 * 64 * 1024, 64 * 1024),
        (3 * 1024 * 1024 + 7, 1 << 20),
    ] {
        let data = text(len as u64, len);
        let mut outputs = Vec::new();
        for threads in [1, 2] {
            let mut w = ParGzWriter::new(
                Vec::new(),
                GzOptions {
                    level: 6,
                    block_size: block,
                    threads,
                },
            )
            .expect("new");
            // Uneven writes must not matter either.
            for chunk in data.chunks(7919) {
                w.write_all(chunk).expect("write");
            }
            let (out, s) = w.finish().expect("finish");
            assert_eq!(s.sha256, sha(&out));
            assert_eq!(s.uncompressed_size, len as u64);
            assert_eq!(gunzip(&out), data, "len {len} block {block}");
            outputs.push(out);
        }
        assert_eq!(
            outputs[0], outputs[1],
            "len {len}: thread count changed the bytes"
        );
    }
}

/// Many small blocks of mixed content, compressed by 1, 2 and 4 workers several times:
/// the bytes must never depend on which worker compressed which block before. (zlib-rs
/// keeps stale window bytes across `reset()`, and deflate may look at bytes past the end of
/// the input; reusing a compressor made the output depend on scheduling.)
#[test]
fn bundle_pgzip_independent_of_scheduling() {
    let mut data = Vec::new();
    for i in 0..48u64 {
        data.extend_from_slice(&text(i, 40_000 + (i as usize * 7919) % 30_000));
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for _ in 0..(i as usize % 5) * 4000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 32) as u8);
        }
    }
    let run = |threads| {
        let mut w = ParGzWriter::new(
            Vec::new(),
            GzOptions {
                level: 6,
                block_size: 64 * 1024,
                threads,
            },
        )
        .expect("new");
        w.write_all(&data).expect("write");
        w.finish().expect("finish").0
    };
    let reference = run(1);
    assert_eq!(gunzip(&reference), data);
    for threads in [2, 4, 2, 4, 1] {
        assert!(
            run(threads) == reference,
            "{threads} threads changed the bytes"
        );
    }
}

#[test]
fn bundle_pgzip_ratio_close_to_single_stream() {
    let data = text(9, 8 << 20);
    let mut w = ParGzWriter::new(Vec::new(), GzOptions::default()).expect("new");
    w.write_all(&data).expect("write");
    let (ours, _) = w.finish().expect("finish");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&data).expect("gzip");
    let single = enc.finish().expect("gzip");
    // Primed blocks cost well under 1 % over one stream.
    assert!(
        (ours.len() as f64) < single.len() as f64 * 1.01,
        "parallel {} vs single {}",
        ours.len(),
        single.len()
    );
}

/// The bytes of a fixed input must not move: a change here means the compressor build or
/// the format changed, and every published bundle digest with it. Update only on purpose.
#[test]
fn bundle_golden_output_is_stable() {
    let files = vec![
        ("a/b.txt".to_string(), 0o644, text(11, 100_000)),
        ("a/c.bin".to_string(), 0o755, text(12, 3 << 20)),
        ("secrets/k".to_string(), 0o600, b"k".to_vec()),
    ];
    let (out, summary, _) = build(&files, 2);
    assert_eq!(
        summary.sha256_hex(),
        GOLDEN_SHA256,
        "bundle bytes changed (size {})",
        out.len()
    );
}

const GOLDEN_SHA256: &str = "8faa43cf4383d6945ef33593ea1470a91c506dba67bec584724f39e6201905f1";

#[test]
fn bundle_writer_refuses_bad_input() {
    let mut w = BundleWriter::with_options(Vec::new(), opts(1)).expect("writer");
    assert!(matches!(
        w.add_bytes("/abs", 0o644, b""),
        Err(WriteError::InvalidPath { .. })
    ));
    assert!(matches!(
        w.add_bytes("a/../b", 0o644, b""),
        Err(WriteError::InvalidPath { .. })
    ));
    assert!(matches!(
        w.add_bytes("./a", 0o644, b""),
        Err(WriteError::InvalidPath { .. })
    ));
    assert!(matches!(
        w.add_bytes("a", 0o4755, b""),
        Err(WriteError::InvalidMode { .. })
    ));
    w.add_bytes("b", 0o644, b"x").expect("b");
    assert!(matches!(
        w.add_bytes("a", 0o644, b""),
        Err(WriteError::OutOfOrder { .. })
    ));
    assert!(matches!(
        w.add_bytes("b", 0o644, b""),
        Err(WriteError::OutOfOrder { .. })
    ));
    assert!(matches!(
        w.add_bytes("b/c", 0o644, b""),
        Err(WriteError::PathConflict { .. })
    ));
    let mut short: &[u8] = b"abc";
    assert!(matches!(
        w.add_reader("c", 0o644, 10, &mut short),
        Err(WriteError::SourceChanged {
            expected: 10,
            actual: 3,
            ..
        })
    ));
    let mut w = BundleWriter::with_options(Vec::new(), opts(1)).expect("writer");
    let mut long: &[u8] = b"abcdef";
    assert!(matches!(
        w.add_reader("c", 0o644, 3, &mut long),
        Err(WriteError::SourceChanged { .. })
    ));
    assert!(matches!(
        BundleWriter::with_options(
            Vec::new(),
            WriterOptions {
                threads: 0,
                ..opts(1)
            }
        ),
        Err(WriteError::InvalidOptions(_))
    ));
}

// ---------------------------------------------------------------------------------------
// interop with GNU tar and gzip

#[test]
fn bundle_gnu_tar_lists_and_extracts() {
    if !require("tar") || !require("gzip") {
        return;
    }
    let files = sample_files();
    let (out, _, _) = build(&files, 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tmp.path().join("kit.tar.gz");
    fs::write(&bundle, &out).expect("write");

    tool_ok(Command::new("gzip").arg("-t").arg(&bundle));

    let listed = tool_ok(Command::new("tar").arg("-tzf").arg(&bundle));
    let listed: Vec<&str> = listed.lines().collect();
    let listed_files: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|n| !n.ends_with('/'))
        .collect();
    let mut expected: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed_files, expected);
    assert!(
        listed
            .iter()
            .all(|n| !n.starts_with("./") && !n.starts_with('/'))
    );
    assert!(
        listed.iter().any(|n| n.len() > 100),
        "a long name is listed"
    );

    // The seed's smoke test. GNU tar matches member patterns only with `--wildcards` (its
    // default for names on the command line is `--no-wildcards`, whatever the archive), so
    // the seed's literal command needs `--wildcards` (or TAR_OPTIONS=--wildcards) with GNU
    // tar; bsdtar matches globs by default.
    let go = tool_ok(
        Command::new("tar")
            .args(["--wildcards", "-tzf"])
            .arg(&bundle)
            .arg("plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/*"),
    );
    let go: Vec<&str> = go.lines().collect();
    assert_eq!(go.len(), 3, "{go:?}");
    assert!(go.iter().all(|n| {
        n.starts_with("plugins/scanner/analyzers/lang/StellaOps.Scanner.Analyzers.Lang.Go/")
    }));

    let dst = tmp.path().join("x");
    fs::create_dir(&dst).expect("mkdir");
    tool_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&bundle)
            .arg("-C")
            .arg(&dst),
    );
    for (p, m, d) in &files {
        let fp = dst.join(p);
        assert_eq!(&fs::read(&fp).expect("read"), d, "{p}");
        assert_eq!(
            fs::metadata(&fp).expect("meta").permissions().mode() & 0o7777,
            *m,
            "{p}"
        );
    }
    // GNU tar's verbose listing shows numeric owners 0/0 and mtime 0.
    let verbose = tool_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-tvzf"])
            .arg(&bundle),
    );
    for line in verbose.lines() {
        assert!(line.contains(" 0/0 "), "{line}");
        assert!(line.contains("1970-01-01"), "{line}");
    }
}

#[test]
fn bundle_reads_gnu_tar_archives() {
    if !require("tar") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    let files = sample_files();
    for (p, m, d) in &files {
        let fp = tree.join(p);
        fs::create_dir_all(fp.parent().expect("parent")).expect("mkdir");
        fs::write(&fp, d).expect("write");
        fs::set_permissions(&fp, fs::Permissions::from_mode(*m)).expect("chmod");
    }
    let declared = declared_of(&files);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    for format in ["gnu", "ustar", "posix"] {
        let bundle = tmp.path().join(format!("{format}.tar.gz"));
        let mut cmd = Command::new("tar");
        cmd.args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
        ])
        .arg(format!("--format={format}"))
        .arg("-czf")
        .arg(&bundle)
        .arg("-C")
        .arg(&tree)
        .args(&names);
        let out = cmd.output().expect("tar");
        if format == "ustar" && !out.status.success() {
            // ustar cannot hold every long name; that is tar's refusal, not ours.
            continue;
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dst = tmp.path().join(format!("x-{format}"));
        fs::create_dir(&dst).expect("mkdir");
        let got = unpack_to_dir(
            fs::File::open(&bundle).expect("open"),
            &dst,
            &|p| declared.get(p).copied(),
            limits_of(&files),
        )
        .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(got.len(), files.len(), "{format}");
        for (p, m, d) in &files {
            let fp = dst.join(p);
            assert_eq!(&fs::read(&fp).expect("read"), d, "{format} {p}");
            assert_eq!(
                fs::metadata(&fp).expect("meta").permissions().mode() & 0o777,
                *m
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// hostile bundles

#[test]
fn bundle_refuses_absolute_path() {
    let gz = gzip_fast(&Tar::default().file("/tmp/ouk-evil", b"x").end());
    let (res, _t) = unpack_hostile(&gz, &[("/tmp/ouk-evil", 1)]);
    assert!(
        matches!(res, Err(ReadError::UnsafePath { ref path, problem: PathProblem::Absolute }) if path == "/tmp/ouk-evil"),
        "{res:?}"
    );
}

#[test]
fn bundle_refuses_parent_components() {
    for name in [
        "../x",
        "a/../../x",
        "a/..",
        "./a",
        "a//b",
        "a\\..\\b",
        "a\u{1}b",
    ] {
        let gz = gzip_fast(&Tar::default().file(name, b"x").end());
        let (res, _t) = unpack_hostile(&gz, &[(name, 1)]);
        assert!(
            matches!(res, Err(ReadError::UnsafePath { ref path, .. }) if path == name),
            "{name}: {res:?}"
        );
    }
}

#[test]
fn bundle_refuses_links_devices_fifos() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Tar::default()
                .entry("evil", b'2', 0o777, b"", "/etc/passwd")
                .end(),
            "symlink",
        ),
        (
            Tar::default()
                .entry("evil", b'2', 0o777, b"", "../../outside")
                .end(),
            "symlink",
        ),
        (
            Tar::default()
                .file("a", b"x")
                .entry("b", b'1', 0o644, b"", "a")
                .end(),
            "hardlink",
        ),
        (
            Tar::default()
                .entry("evil", b'1', 0o644, b"", "/etc/shadow")
                .end(),
            "hardlink",
        ),
        (
            Tar::default().entry("null", b'3', 0o666, b"", "").end(),
            "device",
        ),
        (
            Tar::default().entry("sda", b'4', 0o660, b"", "").end(),
            "device",
        ),
        (
            Tar::default().entry("pipe", b'6', 0o644, b"", "").end(),
            "fifo",
        ),
        (
            Tar::default().entry("cont", b'7', 0o644, b"", "").end(),
            "other",
        ),
        (
            Tar::default().entry("g", b'g', 0o644, b"", "").end(),
            "other",
        ),
        (
            Tar::default().entry("sparse", b'S', 0o644, b"", "").end(),
            "other",
        ),
    ];
    for (tar, what) in cases {
        let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("a", 1), ("evil", 0)]);
        let ok = match what {
            "symlink" => matches!(res, Err(ReadError::Link { hard: false, .. })),
            "hardlink" => matches!(res, Err(ReadError::Link { hard: true, .. })),
            "device" => matches!(res, Err(ReadError::Device { .. })),
            "fifo" => matches!(res, Err(ReadError::Fifo { .. })),
            _ => matches!(res, Err(ReadError::UnsupportedType { .. })),
        };
        assert!(ok, "{what}: {res:?}");
    }
}

#[test]
fn bundle_refuses_duplicates_and_conflicts() {
    let dup = Tar::default().file("a", b"1").file("a", b"2").end();
    let (res, _t) = unpack_hostile(&gzip_fast(&dup), &[("a", 1)]);
    assert!(
        matches!(res, Err(ReadError::Duplicate { ref path }) if path == "a"),
        "{res:?}"
    );

    let dup_dir = Tar::default()
        .entry("d/", b'5', 0o755, b"", "")
        .entry("d", b'5', 0o755, b"", "")
        .end();
    let (res, _t) = unpack_hostile(&gzip_fast(&dup_dir), &[]);
    assert!(matches!(res, Err(ReadError::Duplicate { .. })), "{res:?}");

    let file_then_child = Tar::default().file("a", b"1").file("a/b", b"2").end();
    let (res, _t) = unpack_hostile(&gzip_fast(&file_then_child), &[("a", 1), ("a/b", 1)]);
    assert!(
        matches!(res, Err(ReadError::PathConflict { .. })),
        "{res:?}"
    );

    let child_then_file = Tar::default().file("a/b", b"2").file("a", b"1").end();
    let (res, _t) = unpack_hostile(&gzip_fast(&child_then_file), &[("a", 1), ("a/b", 1)]);
    assert!(
        matches!(res, Err(ReadError::PathConflict { .. })),
        "{res:?}"
    );

    // An explicit directory after its content (implicit first) is fine.
    let late_dir = Tar::default()
        .file("d/x", b"1")
        .entry("d/", b'5', 0o700, b"", "")
        .end();
    let (res, t) = unpack_hostile(&gzip_fast(&late_dir), &[("d/x", 1)]);
    assert_eq!(res.expect("late dir").len(), 1);
    let mode = fs::metadata(t.path().join("stage/d"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn bundle_refuses_sizes_past_the_manifest() {
    let tar = Tar::default().file("a", &[7u8; 2000]).end();
    let (res, t) = unpack_hostile(&gzip_fast(&tar), &[("a", 1000)]);
    assert!(
        matches!(res, Err(ReadError::SizeExceedsDeclared { ref path, size: 2000, declared: 1000 }) if path == "a"),
        "{res:?}"
    );
    // Refused before copying: the file was never created.
    assert!(!t.path().join("stage/a").exists());

    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("b", 5000)]);
    assert!(
        matches!(res, Err(ReadError::Undeclared { ref path }) if path == "a"),
        "{res:?}"
    );
}

/// A reader that counts the bytes taken from its input: the compressed side of a
/// decoder's work.
struct Counting<'a, R> {
    inner: R,
    taken: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken.set(self.taken.get() + n as u64);
        Ok(n)
    }
}

/// Read `gz` as a bundle declaring `declared` until the first error; the error, the
/// decompressed bytes the reader consumed ([`BundleReader::position`]: inflate writes only
/// into the buffers the reader asks to fill, so this is the decompression done) and the
/// compressed bytes it took from its input.
fn read_until_refused(gz: &[u8], declared: &[(&str, u64)]) -> (ReadError, u64, u64) {
    let map: BTreeMap<String, u64> = declared.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    let total: u64 = map.values().sum();
    let taken = std::cell::Cell::new(0);
    let mut reader = BundleReader::new(
        Counting {
            inner: gz,
            taken: &taken,
        },
        |p: &str| map.get(p).copied(),
        ReadLimits::for_declared(map.len() as u64, total),
    );
    loop {
        match reader.next_entry() {
            Ok(Some(mut e)) => {
                std::io::copy(&mut e, &mut std::io::sink()).expect("content");
            }
            Ok(None) => panic!("the bundle was accepted"),
            Err(e) => return (e, reader.position(), taken.get()),
        }
    }
}

/// Bombs stop early, shown by the work done rather than a stopwatch: how many bytes the
/// reader decompressed and how much of its compressed input it took.
#[test]
fn bundle_stops_gzip_bomb_early() {
    // 100 MB of zeros declared as 1 KB: refused at the header, before a byte of the data
    // is decompressed.
    let mut tar = Tar::header(b"bomb", b'0', 0o644, 100_000_000, b"").to_vec();
    tar.resize(512 + 100_000_000, 0);
    tar.resize(tar.len() + 1024, 0);
    let gz = gzip_fast(&tar);
    drop(tar);
    let (res, t) = unpack_hostile(&gz, &[("bomb", 1024)]);
    assert!(
        matches!(res, Err(ReadError::SizeExceedsDeclared { .. })),
        "{res:?}"
    );
    assert!(!t.path().join("stage/bomb").exists());
    let (e, decompressed, taken) = read_until_refused(&gz, &[("bomb", 1024)]);
    assert!(matches!(e, ReadError::SizeExceedsDeclared { .. }), "{e:?}");
    assert_eq!(decompressed, 512, "decompressed past the header: {e:?}");
    // At most one fill of the reader's 256 KiB input buffer, of a larger input.
    let bound = 256 << 10;
    assert!(gz.len() as u64 > 2 * bound, "{} bytes", gz.len());
    assert!(taken <= bound, "took {taken} of {} bytes", gz.len());

    // A bundle whose tar stream grows past the caller's total limit (here: endless zero
    // padding after the end marker) stops at the limit: the reader decompresses no more
    // than the limit, and takes a matching share of its input.
    let mut tar = Tar::default().file("a", b"x").end();
    tar.resize(50_000_000, 0);
    let gz = gzip_fast(&tar);
    let (res, _t) = unpack_hostile(&gz, &[("a", 1)]);
    assert!(matches!(res, Err(ReadError::TotalLimit { .. })), "{res:?}");
    let limit = ReadLimits::for_declared(1, 1).max_total_bytes;
    let (e, decompressed, taken) = read_until_refused(&gz, &[("a", 1)]);
    assert!(matches!(e, ReadError::TotalLimit { .. }), "{e:?}");
    assert!(decompressed <= limit, "{decompressed} > {limit}");
    // One 256 KiB fill of the input buffer, plus the little deflate needs for a MiB of
    // zeros, of an input well past that.
    let bound = (256 + 64) << 10;
    assert!(gz.len() as u64 > bound, "{} bytes", gz.len());
    assert!(
        taken <= bound,
        "took {taken} of {} bytes to decompress {decompressed}",
        gz.len()
    );

    // The limit also holds for a file within its declared size.
    let tar = Tar::default().file("a", &[0u8; 100_000]).end();
    let tmp = tempfile::tempdir().expect("tempdir");
    let res = unpack_to_dir(
        &gzip_fast(&tar)[..],
        tmp.path(),
        &|_| Some(1 << 20),
        ReadLimits {
            max_total_bytes: 50_000,
            max_entries: 10,
        },
    );
    assert!(
        matches!(res, Err(ReadError::TotalLimit { limit: 50_000 })),
        "{res:?}"
    );
}

#[test]
fn bundle_refuses_truncation_and_trailing_data() {
    let files = sample_files();
    let (out, _, _) = build(&files, 2);
    let declared = declared_of(&files);
    let lookup = |p: &str| declared.get(p).copied();
    for cut in [
        0,
        5,
        10,
        11,
        100,
        out.len() / 3,
        out.len() / 2,
        out.len() - 9,
        out.len() - 1,
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let res = unpack_to_dir(&out[..cut], tmp.path(), &lookup, limits_of(&files));
        assert!(
            matches!(
                res,
                Err(ReadError::Truncated { .. }) | Err(ReadError::Stream { .. })
            ),
            "cut {cut}: {res:?}"
        );
    }
    // Garbage after the gzip member.
    let mut garbage = out.clone();
    garbage.extend_from_slice(b"trailing");
    let tmp = tempfile::tempdir().expect("tempdir");
    let res = unpack_to_dir(&garbage[..], tmp.path(), &lookup, limits_of(&files));
    assert!(
        matches!(res, Err(ReadError::TrailingData { .. })),
        "{res:?}"
    );

    // Non-zero data after the end-of-archive marker, inside the gzip member.
    let mut tar = Tar::default().file("a", b"x").end();
    tar.extend_from_slice(b"hidden payload");
    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("a", 1)]);
    assert!(
        matches!(res, Err(ReadError::TrailingData { .. })),
        "{res:?}"
    );

    // No end marker at all.
    let tar = Tar::default().file("a", b"x").buf;
    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("a", 1)]);
    assert!(
        matches!(res, Err(ReadError::Truncated { entry: None, .. })),
        "{res:?}"
    );

    // A corrupted byte in the middle: deflate or CRC error.
    let mut flipped = out.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let tmp = tempfile::tempdir().expect("tempdir");
    let res = unpack_to_dir(&flipped[..], tmp.path(), &lookup, limits_of(&files));
    assert!(res.is_err(), "bit flip accepted");
}

#[test]
fn bundle_pax_headers_only_for_names() {
    let long = format!("{}/x.txt", "p".repeat(180));
    let rec = |k: &str, v: &str| {
        let body = format!(" {k}={v}\n");
        let mut n = body.len() + 1;
        if (n + body.len()).to_string().len() > n.to_string().len() {
            n += 1;
        }
        let len = body.len() + n.to_string().len();
        format!("{len}{body}")
    };
    let pax = format!("{}{}", rec("path", &long), rec("mtime", "1700000000.5"));
    let tar = Tar::default()
        .entry("PaxHeaders/x", b'x', 0o644, pax.as_bytes(), "")
        .file("short-name", b"hello")
        .end();
    let (res, t) = unpack_hostile(&gzip_fast(&tar), &[(long.as_str(), 5)]);
    assert_eq!(res.expect("pax path").len(), 1);
    assert_eq!(
        fs::read(t.path().join("stage").join(&long)).expect("read"),
        b"hello"
    );

    for (k, v) in [
        ("linkpath", "/etc/passwd"),
        ("uid", "0"),
        ("SCHILY.xattr.security.capability", "x"),
    ] {
        let pax = rec(k, v);
        let tar = Tar::default()
            .entry("PaxHeaders/x", b'x', 0o644, pax.as_bytes(), "")
            .file("a", b"hello")
            .end();
        let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("a", 5)]);
        assert!(
            matches!(res, Err(ReadError::PaxKey { ref key, .. }) if key == k),
            "{k}: {res:?}"
        );
    }
}

#[test]
fn bundle_refuses_special_modes_and_bad_headers() {
    let tar = Tar::default().entry("suid", b'0', 0o4755, b"x", "").end();
    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("suid", 1)]);
    assert!(matches!(res, Err(ReadError::UnsafeMode { .. })), "{res:?}");

    let mut tar = Tar::default().file("a", b"x").end();
    tar[0] = b'b'; // checksum no longer matches
    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("b", 1)]);
    assert!(
        matches!(res, Err(ReadError::Checksum { offset: 0 })),
        "{res:?}"
    );

    let mut tar = Tar::default().file("a", b"x").end();
    tar.truncate(512 + 512 + 512); // one zero block, then more data follows
    tar.extend_from_slice(&Tar::header(b"b", b'0', 0o644, 0, b""));
    tar.resize(tar.len() + 1024, 0);
    let (res, _t) = unpack_hostile(&gzip_fast(&tar), &[("a", 1), ("b", 0)]);
    assert!(matches!(res, Err(ReadError::BadHeader { .. })), "{res:?}");
}

#[test]
fn bundle_reader_streams_entries_and_skips_unread() {
    let files = sample_files();
    let (out, _, _) = build(&files, 2);
    let declared = declared_of(&files);
    let mut reader = BundleReader::new(
        &out[..],
        |p: &str| declared.get(p).copied(),
        limits_of(&files),
    );
    let mut seen = 0;
    while let Some(mut e) = reader.next_entry().expect("entry") {
        if e.kind == EntryKind::File {
            seen += 1;
            // Read only part of every other file; the reader skips the rest.
            if seen % 2 == 0 {
                let mut all = Vec::new();
                e.read_to_end(&mut all).expect("read");
                assert_eq!(all, files.iter().find(|f| f.0 == e.path).expect("known").2);
            } else {
                let mut b = [0u8; 3];
                let _ = e.read(&mut b).expect("read");
            }
        }
    }
    assert_eq!(seen, files.len());
    assert!(reader.next_entry().expect("after end").is_none());
}

// ---------------------------------------------------------------------------------------
// no panic on any input

fn small_bundle() -> Vec<u8> {
    let files = vec![
        ("a/b".to_string(), 0o644, text(1, 1500)),
        (format!("{}/c", "l".repeat(120)), 0o600, text(2, 10)),
    ];
    build(&files, 1).0
}

fn small_tar() -> Vec<u8> {
    gunzip(&small_bundle())
}

/// Reads everything, declaring every name with a modest size; must never panic.
fn read_all(gz: &[u8]) {
    let mut reader = BundleReader::new(
        gz,
        |_: &str| Some(1 << 16),
        ReadLimits::for_declared(16, 1 << 20),
    );
    let mut buf = [0u8; 4096];
    while let Ok(Some(mut e)) = reader.next_entry() {
        while matches!(e.read_chunk(&mut buf), Ok(n) if n > 0) {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn bundle_reader_never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_all(&data);
        read_all(&gzip_fast(&data));
    }

    #[test]
    fn bundle_reader_never_panics_on_mutated_tar(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut tar = small_tar();
        for (i, b) in &edits {
            let i = i.index(tar.len());
            tar[i] = *b;
        }
        // Fix header checksums half of the time so that the parser goes past them.
        if edits.len() % 2 == 0 {
            for start in (0..tar.len()).step_by(512) {
                let block = &mut tar[start..start + 512];
                if block[257..262] == *b"ustar" {
                    block[148..156].copy_from_slice(b"        ");
                    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
                    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                }
            }
        }
        read_all(&gzip_fast(&tar));
        let keep = cut.index(tar.len() + 1);
        read_all(&gzip_fast(&tar[..keep]));
    }

    #[test]
    fn bundle_reader_never_panics_on_mutated_gzip(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut gz = small_bundle();
        for (i, b) in &edits {
            let i = i.index(gz.len());
            gz[i] = *b;
        }
        read_all(&gz);
    }
}
