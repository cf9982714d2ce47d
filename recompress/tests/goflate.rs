//! The Go deflate port against real Go output, byte for byte.
//!
//! Fixtures: `testdata/recompress/goflate/` (written by `gen.go` there, with the Go version
//! named in `manifest.tsv`). Each manifest row names an input by generator (rebuilt here
//! with the same deterministic generators), a level and how Go was called, and the stream
//! Go wrote (a file, or only its length and SHA-256 for the large inputs).
//!
//! `OUK_LONG_TESTS=1` also reruns `gen.go -long` with the local Go, 1.7 to 1.26 (`GO=` picks
//! the binary): large inputs that pass Go's 16 MiB hash-offset rebase, every stream compared
//! in full, and a 2.3 GB level 1 stream past the 2 GiB offset rebase, compared by digest.
//! `OUK_GOFLATE_BENCH=1` prints the port's throughput (run with `--release`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ouk_recompress::goflate::{GoDeflater, deflate, find_level, gzip};
use sha2::{Digest, Sha256};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/recompress/goflate")
}

// ---- The generators of gen.go, mirrored. ----

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "delta",
    "chunk",
    "store",
    "kit",
    "import",
    "verify",
    "signed",
    "offline",
    "update",
    "host",
    "generation",
    "layer",
    "image",
    "registry",
    "manifest",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "for",
    "with",
    "on",
    "as",
    "recipe",
    "plain",
    "bytes",
    "compressed",
    "window",
    "match",
    "literal",
    "Huffman",
    "block",
];

fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut b = Vec::with_capacity(n + 32);
    while b.len() < n {
        b.extend_from_slice(WORDS[r.below(WORDS.len())].as_bytes());
        match r.below(16) {
            0 => b.extend_from_slice(b".\n"),
            1 => b.extend_from_slice(b", "),
            _ => b.push(b' '),
        }
    }
    b.truncate(n);
    b
}

fn json_rows(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut b = Vec::with_capacity(n + 200);
    let mut i = 0;
    while b.len() < n {
        let name = WORDS[r.below(WORDS.len())];
        let score = r.below(100000);
        let active = r.below(2) == 1;
        let t1 = WORDS[r.below(WORDS.len())];
        let t2 = WORDS[r.below(WORDS.len())];
        b.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"{name}\",\"score\":{score},\"active\":{active},\"tags\":[\"{t1}\",\"{t2}\"]}}\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    b.truncate(n);
    b
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut b = Vec::with_capacity(n + 8);
    while b.len() < n {
        b.extend_from_slice(&r.next().to_le_bytes());
    }
    b.truncate(n);
    b
}

fn repetitive(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let pattern = b"ouk-delta-chunk|";
    let mut b = Vec::with_capacity(n + 20000);
    while b.len() < n {
        match r.below(4) {
            0 => {
                let m = r.below(4000) + 1;
                b.resize(b.len() + m, 0);
            }
            1 => {
                let m = r.below(200) + 1;
                for _ in 0..m {
                    b.extend_from_slice(pattern);
                }
            }
            2 => {
                let c = r.below(256) as u8;
                let m = r.below(1000) + 1;
                b.resize(b.len() + m, c);
            }
            _ => {
                let mut p = *pattern;
                let i = r.below(p.len());
                p[i] = r.below(256) as u8;
                b.extend_from_slice(&p);
            }
        }
    }
    b.truncate(n);
    b
}

fn mix(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut b: Vec<u8> = Vec::with_capacity(n + 30000);
    while b.len() < n {
        match r.below(5) {
            0 => {
                let m = r.below(20000) + 100;
                let s = r.next();
                b.extend_from_slice(&text(m, s));
            }
            1 => {
                let m = r.below(20000) + 100;
                let s = r.next();
                b.extend_from_slice(&json_rows(m, s));
            }
            2 => {
                let m = r.below(3000) + 50;
                let s = r.next();
                b.extend_from_slice(&random(m, s));
            }
            3 => {
                let m = r.below(8000) + 10;
                let s = r.next();
                b.extend_from_slice(&repetitive(m, s));
            }
            _ => {
                if b.is_empty() {
                    continue;
                }
                let start = r.below(b.len());
                let m = r.below(2000) + 1;
                let end = (start + m).min(b.len());
                b.extend_from_within(start..end);
            }
        }
    }
    b.truncate(n);
    b
}

fn tar_input(dir: &Path) -> Vec<u8> {
    let gz = std::fs::read(dir.join("tar.gz")).expect("tar.gz fixture");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("tar.gz decodes");
    tar
}

// ---- The manifest. ----

struct Row {
    name: String,
    kind: String,
    size: usize,
    seed: u64,
    level: i32,
    /// 0: one write; N: flush after every N bytes.
    flush_every: usize,
    length: usize,
    sha256: String,
    file: Option<String>,
}

fn manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 9, "manifest line {l:?}");
            let flush_every = match f[5] {
                "all" => 0,
                w => w
                    .strip_prefix("flush:")
                    .and_then(|n| n.parse().ok())
                    .expect("writes column"),
            };
            Row {
                name: f[0].into(),
                kind: f[1].into(),
                size: f[2].parse().expect("size"),
                seed: f[3].parse().expect("seed"),
                level: f[4].parse().expect("level"),
                flush_every,
                length: f[6].parse().expect("length"),
                sha256: f[7].into(),
                file: (f[8] != "-").then(|| f[8].to_string()),
            }
        })
        .collect()
}

/// Inputs by (kind, size, seed), built once each.
struct Inputs {
    tar: Vec<u8>,
    cache: Vec<((String, usize, u64), Vec<u8>)>,
}

impl Inputs {
    fn new(dir: &Path) -> Self {
        Inputs {
            tar: tar_input(dir),
            cache: Vec::new(),
        }
    }

    fn get(&mut self, kind: &str, size: usize, seed: u64) -> &[u8] {
        let key = (kind.to_string(), size, seed);
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == key) {
            return &self.cache[i].1;
        }
        let data = match kind {
            "text" => text(size, seed),
            "json" => json_rows(size, seed),
            "random" => random(size, seed),
            "repetitive" => repetitive(size, seed),
            "mix" => mix(size, seed),
            "zeros" => vec![0; size],
            "tar" => self.tar.clone(),
            other => panic!("unknown input kind {other}"),
        };
        // Large inputs are used for a few rows in a row; keep memory small.
        if data.len() > 8 << 20 {
            self.cache.clear();
        }
        self.cache.push((key, data));
        &self.cache[self.cache.len() - 1].1
    }
}

/// The port's stream for a manifest row.
fn port_stream(input: &[u8], level: i32, flush_every: usize) -> Vec<u8> {
    if flush_every == 0 {
        return deflate(input, level).expect("valid level");
    }
    let mut out = Vec::new();
    let mut d = GoDeflater::new(level).expect("valid level");
    for piece in input.chunks(flush_every) {
        d.write(piece, &mut out).expect("write");
        d.flush(&mut out).expect("flush");
    }
    d.finish(&mut out).expect("finish");
    out
}

/// Counts and hashes what is written to it.
struct HashWriter(Sha256, usize);

impl std::io::Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        self.1 += b.len();
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// gen.go's `cycleStream`: `size` bytes of `mix(3 MiB, seed)` repeated, streamed.
fn cycle_stream(size: usize, seed: u64, level: i32) -> (usize, String) {
    let base = mix(3 << 20, seed);
    let mut out = HashWriter(Sha256::new(), 0);
    let mut d = GoDeflater::new(level).expect("valid level");
    let mut left = size;
    while left > 0 {
        let n = base.len().min(left);
        d.write(&base[..n], &mut out).expect("write");
        left -= n;
    }
    d.finish(&mut out).expect("finish");
    (out.1, hex::encode(out.0.finalize()))
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Compares every manifest row in `dir`; returns the mismatches, described.
fn check_dir(dir: &Path, inputs_dir: &Path) -> (usize, Vec<String>) {
    let rows = manifest(dir);
    let mut inputs = Inputs::new(inputs_dir);
    let mut bad = Vec::new();
    for row in &rows {
        if row.kind == "cycle" {
            let (len, sum) = cycle_stream(row.size, row.seed, row.level);
            if len != row.length || sum != row.sha256 {
                bad.push(format!(
                    "{} level {}: {len} bytes, Go wrote {} (digests differ)",
                    row.name, row.level, row.length
                ));
            }
            continue;
        }
        let input = inputs.get(&row.kind, row.size, row.seed);
        let got = port_stream(input, row.level, row.flush_every);
        let what = format!(
            "{} level {} (flush every {})",
            row.name, row.level, row.flush_every
        );
        if let Some(file) = &row.file {
            let want = std::fs::read(dir.join(file)).expect("fixture stream");
            if got != want {
                let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
                bad.push(format!(
                    "{what}: {} bytes, Go wrote {}; first difference at byte {at}",
                    got.len(),
                    want.len()
                ));
            }
        } else if got.len() != row.length || sha256_hex(&got) != row.sha256 {
            bad.push(format!(
                "{what}: {} bytes, Go wrote {} (digests differ)",
                got.len(),
                row.length
            ));
        }
    }
    (rows.len(), bad)
}

#[test]
fn every_level_matches_go_on_every_fixture() {
    let dir = fixture_dir();
    let (n, bad) = check_dir(&dir, &dir);
    assert!(n > 150, "the manifest lists {n} streams");
    assert!(
        bad.is_empty(),
        "{} of {n} streams differ from Go's:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn output_does_not_depend_on_write_sizes() {
    let dir = fixture_dir();
    let rows = manifest(&dir);
    let mut inputs = Inputs::new(&dir);
    let mut checked = 0;
    for row in rows
        .iter()
        .filter(|r| r.flush_every == 0 && r.file.is_some())
        .filter(|r| ["text", "mix-65537", "tar", "text-300", "zeros"].contains(&r.name.as_str()))
    {
        let want = std::fs::read(dir.join(row.file.as_ref().unwrap())).unwrap();
        let input = inputs.get(&row.kind, row.size, row.seed).to_vec();
        let mut r = Rng((row.level + 100) as u64);
        let splits: Vec<Vec<usize>> = vec![
            vec![1],
            vec![7],
            vec![4095],
            vec![65535],
            vec![65536],
            vec![65537],
            (0..64).map(|_| r.below(20000)).collect(),
        ];
        for sizes in splits {
            let mut out = Vec::new();
            let mut d = GoDeflater::new(row.level).unwrap();
            let mut rest = &input[..];
            let mut i = 0;
            while !rest.is_empty() {
                // Empty writes are allowed and change nothing.
                let n = sizes[i % sizes.len()].min(rest.len());
                d.write(&rest[..n], &mut out).unwrap();
                rest = &rest[n..];
                i += 1;
            }
            d.finish(&mut out).unwrap();
            assert!(
                out == want,
                "{} level {}: writes of {:?} bytes change the output",
                row.name,
                row.level,
                &sizes[..sizes.len().min(4)]
            );
            checked += 1;
        }
    }
    assert!(checked >= 5 * 11 * 7, "checked {checked}");
}

#[test]
fn find_level_names_a_level_that_recreates_each_go_stream() {
    let dir = fixture_dir();
    let mut inputs = Inputs::new(&dir);
    for row in manifest(&dir)
        .iter()
        .filter(|r| r.flush_every == 0 && r.file.is_some())
    {
        let stream = std::fs::read(dir.join(row.file.as_ref().unwrap())).unwrap();
        let input = inputs.get(&row.kind, row.size, row.seed);
        // Several levels can write the same stream (tiny inputs): any of them will do.
        let level = find_level(input, &stream);
        assert!(
            level.is_some_and(|l| deflate(input, l).unwrap() == stream),
            "{} level {}: found {level:?}",
            row.name,
            row.level
        );
    }
    // A stream Go did not write (zlib's level 6) has no Go level.
    let plain = text(48000, 3);
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut z, &plain).unwrap();
    assert_eq!(find_level(&plain, &z.finish().unwrap()), None);
    // Nor does a Go stream cut short or extended.
    let go = deflate(&plain, 6).unwrap();
    assert_eq!(find_level(&plain, &go[..go.len() - 1]), None);
    assert_eq!(find_level(&plain, &[&go[..], b"x"].concat()), None);
}

#[test]
fn gzip_matches_go_gzip() {
    let dir = fixture_dir();
    let plain = text(48000, 3);
    for (level, name) in [(-1, "m1"), (1, "1"), (9, "9")] {
        let want = std::fs::read(dir.join(format!("out/text.{name}.gz"))).unwrap();
        assert!(gzip(&plain, level).unwrap() == want, "gzip level {level}");
    }
    // The older Go gzip fixtures beside this directory name their file ("data.txt"): the
    // deflate stream between that header and the trailer is what the port must match.
    let words = [
        "fn", "let", "mut", "impl", "struct", "self", "return", "match", "Some", "None", "delta",
        "chunk", "store", "kit", "import", "verify", "{", "}", "(", ")", ";", "\n", "    ", "0x1f",
        "42", "recipe", "plain", "=>",
    ];
    let mut data = Vec::new();
    let mut s: u64 = 11u64
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while data.len() < 60000 {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        data.extend_from_slice(words[((s >> 33) % words.len() as u64) as usize].as_bytes());
        data.push(b' ');
    }
    data.truncate(60000);
    for level in [1, -1, 9, -2] {
        let gz = std::fs::read(dir.join(format!("../go-level{level}.gz"))).unwrap();
        let header = 10 + b"data.txt\0".len();
        let stream = &gz[header..gz.len() - 8];
        assert!(
            deflate(&data, level).unwrap() == stream,
            "go-level{level}.gz"
        );
    }
}

#[test]
fn long_go_regenerated_streams_match() {
    if std::env::var_os("OUK_LONG_TESTS").is_none_or(|v| v != "1") {
        eprintln!("skipped: set OUK_LONG_TESTS=1 (needs Go)");
        return;
    }
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let have_go = Command::new(&go)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_go,
        "OUK_LONG_TESTS=1 needs Go 1.7 to 1.26 (`{go}` not found; set GO=/path/to/go or install golang-go)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_dir();
    let status = Command::new(&go)
        .args(["run", "gen.go", "-long", "-out"])
        .arg(tmp.path())
        .current_dir(&dir)
        .status()
        .expect("go run gen.go");
    assert!(
        status.success(),
        "go run gen.go -long failed (it needs Go 1.7 to 1.26: see its message above)"
    );
    let rows = manifest(tmp.path());
    assert!(
        rows.iter().any(|r| r.kind == "cycle") && rows.iter().any(|r| r.size >= 40 << 20),
        "gen.go -long wrote no large streams"
    );
    let (n, bad) = check_dir(tmp.path(), &dir);
    assert!(
        bad.is_empty(),
        "{} of {n} streams differ from Go's:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn throughput() {
    if std::env::var_os("OUK_GOFLATE_BENCH").is_none() {
        eprintln!("skipped: set OUK_GOFLATE_BENCH=1 and run with --release");
        return;
    }
    for (name, data) in [("mix-3m", mix(3 << 20, 8)), ("text-3m", text(3 << 20, 3))] {
        for level in [1, 6, 9] {
            let rounds = 5;
            let start = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(deflate(&data, level).unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "port {name} level {level}: {:.1} MB/s",
                (data.len() * rounds) as f64 / secs / 1e6
            );
        }
        // find_level on a level 9 stream: levels 6 then 9 are tried.
        let stream = deflate(&data, 9).unwrap();
        let start = Instant::now();
        assert_eq!(find_level(&data, &stream), Some(9));
        let full9 = start.elapsed().as_secs_f64();
        println!("port {name} find_level (level 9 stream, 6 tried first): {full9:.2} s");
    }
}

fn inflate(stream: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .read_to_end(&mut plain)
        .expect("the port writes valid deflate");
    plain
}

/// Inputs mixing noise, small alphabets (long hash chains), runs and repeats.
fn inputs_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            proptest::collection::vec(0u8..4, 0..6000),
            (any::<u8>(), 0usize..4000).prop_map(|(b, n)| vec![b; n]),
            (1usize..300, 1usize..200).prop_map(|(period, times)| {
                (0..period * times).map(|i| (i % period) as u8).collect()
            }),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any input at any level: a valid stream of the input, the same for any write split,
    /// and flushes keep it decodable.
    #[test]
    fn streams_decode_and_ignore_write_sizes(
        input in inputs_strategy(),
        level in -2i32..=9,
        split in 1usize..70000,
        flush_at in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let whole = deflate(&input, level).unwrap();
        prop_assert_eq!(inflate(&whole), &input[..]);

        let mut out = Vec::new();
        let mut d = GoDeflater::new(level).unwrap();
        for piece in input.chunks(split) {
            d.write(piece, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        prop_assert!(out == whole, "split {} changes the output", split);

        let mut cuts: Vec<usize> = flush_at.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut d = GoDeflater::new(level).unwrap();
        let mut at = 0;
        for cut in cuts {
            d.write(&input[at..cut], &mut out).unwrap();
            d.flush(&mut out).unwrap();
            at = cut;
        }
        d.write(&input[at..], &mut out).unwrap();
        d.finish(&mut out).unwrap();
        prop_assert_eq!(inflate(&out), &input[..]);
    }
}
