//! Corrupted and hostile bundles (issue 6, suite 2).
//!
//! Every input is thrown at `ouk kit import` on a root whose active generation is the
//! day-0 kit; see `common/hostile/` (`mutants/` for the generator, `sandbox.rs` for the
//! checks made after each import: exit code, message, nothing written outside `staging/`
//! and `quarantine/`, `current` unchanged, staging empty, refusal quarantined with a
//! matching `reason.json`, and an accepted input activating exactly the genuine day-1
//! generation).
//!
//! Short form (`cargo test`): every structured attack once, 40 seeded random mutations, the
//! bombs and a million-entry manifest. `OUK_LONG_TESTS=1`: 10,000 random mutations (seed
//! `OUK_HOSTILE_SEED`, default 6) and a two-million-entry manifest; the outcome table is
//! printed (run with `--nocapture`).

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use common::hostile::*;
use rand::SeedableRng;

fn long() -> bool {
    std::env::var_os("OUK_LONG_TESTS").is_some()
}

fn corpus() -> &'static Corpus {
    small_corpus()
}

fn report(name: &str, tally: &Tally, started: Instant) {
    eprintln!(
        "{name}: {} inputs in {:.1} s\n{}",
        tally.total,
        started.elapsed().as_secs_f64(),
        tally.table()
    );
    assert!(
        tally.failures.is_empty(),
        "{} failure(s); first:\n{}",
        tally.failures.len(),
        tally.failures.join("\n\n")
    );
}

#[test]
fn every_structured_attack_is_refused_with_its_code() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let mut sb = Sandbox::new(
        &tmp.path().join("work"),
        &c.k0,
        &[c.k1.generation.as_str(), c.k2.generation.as_str()],
    );
    let started = Instant::now();
    let mut tally = Tally::default();
    for m in structured_mutants(c) {
        let r = sb.run(&m);
        tally.add(m.family, &r);
    }
    report("structured attacks", &tally, started);
    assert!(tally.total >= 100, "only {} structured cases", tally.total);
}

#[test]
fn random_mutations_are_refused_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let seed: u64 = std::env::var("OUK_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    // Long form: 10,000 inputs on two workers (one sandbox and one RNG stream each).
    let (workers, per) = if long() { (2u64, 5_000) } else { (1, 40) };
    let per = std::env::var("OUK_HOSTILE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(per);
    let started = Instant::now();
    let results: Vec<(Tally, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let dir = tmp.path().join(format!("work{w}"));
                s.spawn(move || {
                    let mut sb = Sandbox::new(&dir, &c.k0, &[c.k1.generation.as_str()]);
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 1000 + w);
                    let mut tally = Tally::default();
                    for i in 0..per {
                        let m = random_mutant(c, &mut rng);
                        let r = sb.run(&m);
                        tally.add(m.family, &r);
                        if std::env::var_os("OUK_HOSTILE_VERBOSE").is_some() {
                            eprintln!("{r:?} [{}] {}", m.family, m.detail);
                        }
                        if long() && (i + 1) % 500 == 0 {
                            eprintln!(
                                "worker {w}: {} / {per} ({:.0} s)",
                                i + 1,
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    (tally, format!("{:?} {}", sb.slowest.0, sb.slowest.1))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut tally = Tally::default();
    for (t, slowest) in results {
        eprintln!("case that used the most CPU: {slowest}");
        tally.merge(t);
    }
    report(&format!("random mutations (seed {seed})"), &tally, started);
}

/// Gzip bombs: gigabytes of zeros (about 1 MiB compressed per 95 MiB) where the archive
/// ends, and as the data of a member whose header claims them. Short form 256 MiB, long 8 GiB.
///
/// - after the end marker: the unpack reads zeros (allowed as tar padding) only up to the
///   limit derived from the manifest, then refuses ("limit");
/// - in a member after the in-bundle manifest: refused at that member's header, before its
///   data ("more than ... the manifest declares");
/// - in a member before the in-bundle manifest: the manifest is not known yet, so the
///   search for it inflates the member (CPU, no disk: nothing is written); the unpack then
///   refuses the member at its header ("more than ... the manifest declares"), like the
///   one after the manifest.
///
/// Every case runs under the sandbox's CPU bound (a blowup fails it, named); the CPU each
/// used is printed (see docs/reliability.md for measured times).
#[test]
fn gzip_bombs_stop_at_the_declared_size() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let mut sb = Sandbox::new(&tmp.path().join("work"), &c.k0, &[]);
    // MiB of zeros: far past the limit (the bundle's size plus 16 KiB per file plus 1 MiB).
    let mib: u64 = if long() { 8 << 10 } else { 256 };
    let manifest_at =
        c.k1.members
            .iter()
            .position(|m| m.name == "manifest/offline-manifest.json")
            .unwrap();
    let files = c.k1.files();
    let before = files[0];
    let after = *files.iter().find(|&&i| i > manifest_at).unwrap();
    for (what, victim, want) in [
        (
            "after the end marker",
            None,
            "bundle decompresses to more than the limit",
        ),
        (
            "in a member after the manifest",
            Some(after),
            "bytes the manifest declares",
        ),
        (
            "in a member before the manifest",
            Some(before),
            "bytes the manifest declares",
        ),
    ] {
        let path = tmp.path().join("bomb.tar.gz");
        {
            let mut w = gz_writer(std::io::BufWriter::new(fs::File::create(&path).unwrap()));
            let zeros = vec![0u8; 1 << 20];
            for (i, part) in c.k1.parts().iter().enumerate() {
                if Some(i) == victim {
                    let m = &c.k1.members[i];
                    w.write_all(&tar::header(m.name.as_bytes(), b'0', 0o644, mib << 20, b""))
                        .unwrap();
                    for _ in 0..mib {
                        w.write_all(&zeros).unwrap();
                    }
                } else {
                    w.write_all(part).unwrap();
                }
            }
            w.write_all(&tar::end()).unwrap();
            if victim.is_none() {
                for _ in 0..mib {
                    w.write_all(&zeros).unwrap();
                }
            }
            w.finish()
                .unwrap()
                .0
                .into_inner()
                .unwrap()
                .sync_all()
                .unwrap();
        }
        let size = fs::metadata(&path).unwrap().len();
        let m = Mutant {
            family: "bomb",
            detail: format!("{mib} MiB of zeros {what} ({size} bytes compressed)"),
            name: c
                .k1
                .bundle
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            bundle: Payload::File(path),
            sidecars: Vec::new(),
            args: vec!["--allow-unsigned".into()],
            expect: vec![11],
            message: None,
        };
        let started = Instant::now();
        let r = sb.run(&m);
        let took = started.elapsed();
        eprintln!(
            "{}: {r:?} in {took:?} ({:?} CPU): {}",
            m.detail, sb.last_cpu, sb.last_message
        );
        assert_eq!(r, Ok(11), "{}", m.detail);
        assert!(
            sb.last_message.contains(want),
            "{}: {:?} lacks {want:?}",
            m.detail,
            sb.last_message
        );
    }
}

/// Write a bundle: the day-1 kit whose manifest lists `entries` artifacts, streamed.
fn huge_manifest_kit(c: &Corpus, path: &Path, entries: u64) -> u64 {
    let mut w = gz_writer(std::io::BufWriter::new(fs::File::create(path).unwrap()));
    // Compact JSON, one artifact per line, names sorted.
    let head = format!(
        "{{\"schema\":\"stella-ops/offline-manifest@1\",\"version\":\"2025.10.7\",\"channel\":\"edge\",\"createdAt\":\"2025-10-24T00:00:00Z\",\"generationId\":\"{}\",\"artifacts\":[\n",
        "ab".repeat(32)
    );
    let line = |i: u64| {
        format!(
            "{}{{\"name\":\"f/{i:08}\",\"sha256\":\"{}\",\"size\":1,\"capturedAt\":\"2025-10-24T00:00:00Z\"}}\n",
            if i == 0 { "" } else { "," },
            "0".repeat(64)
        )
    };
    let tail = "]}\n";
    let size: u64 = head.len() as u64
        + (0..entries).map(|i| line(i).len() as u64).sum::<u64>()
        + tail.len() as u64;
    for (i, part) in c.k1.parts().iter().enumerate() {
        if c.k1.members[i].name == "manifest/offline-manifest.json" {
            w.write_all(&tar::header(
                b"manifest/offline-manifest.json",
                b'0',
                0o644,
                size,
                b"",
            ))
            .unwrap();
            w.write_all(head.as_bytes()).unwrap();
            let mut buf = Vec::with_capacity(1 << 20);
            for i in 0..entries {
                buf.extend_from_slice(line(i).as_bytes());
                if buf.len() > (1 << 20) - 200 {
                    w.write_all(&buf).unwrap();
                    buf.clear();
                }
            }
            buf.extend_from_slice(tail.as_bytes());
            buf.resize(buf.len() + tar::padding(size), 0);
            w.write_all(&buf).unwrap();
        } else {
            w.write_all(part).unwrap();
        }
    }
    w.write_all(&tar::end()).unwrap();
    w.finish().unwrap();
    size
}

#[test]
fn a_manifest_with_millions_of_entries_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let mut sb = Sandbox::new(&tmp.path().join("work"), &c.k0, &[]);
    let big = if long() { 2_000_000 } else { 1_000_000 };
    // Past the 64 MiB manifest limit: refused at its tar header, inside the bundle or as a
    // sidecar. Under the limit (450,000 entries, about 60 MiB): parsed, then refused
    // because the bundle does not hold those files.
    for (entries, sidecar) in [(big, false), (big, true), (450_000, false)] {
        let path = tmp.path().join("huge.tar.gz");
        let started = Instant::now();
        let size = huge_manifest_kit(c, &path, entries);
        let made = started.elapsed();
        let mut m = Mutant {
            family: "huge-manifest",
            detail: format!("{entries} entries ({size} bytes), sidecar: {sidecar}"),
            name: c
                .k1
                .bundle
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            bundle: Payload::File(path.clone()),
            sidecars: Vec::new(),
            args: vec!["--allow-unsigned".into()],
            expect: vec![11],
            message: Some("limit|more than|larger than|not declared|lacks"),
        };
        if sidecar {
            // The kit itself is genuine; only the sidecar manifest is huge.
            let tar = gunzip(&path);
            let (members, _) = tar::parse(&tar);
            let man = members
                .iter()
                .find(|m| m.name == "manifest/offline-manifest.json")
                .unwrap();
            m.sidecars.push((
                "m.json".into(),
                tar[man.data..man.data + man.size as usize].to_vec(),
            ));
            m.bundle = Payload::Bytes(c.k1.gz.clone());
            m.args.extend(["--manifest".into(), "{dir}/m.json".into()]);
            fs::remove_file(&path).unwrap();
        }
        let started = Instant::now();
        let r = sb.run(&m);
        let took = started.elapsed();
        eprintln!("{} (made in {made:?}): {r:?} in {took:?}", m.detail);
        assert_eq!(r, Ok(11), "{}", m.detail);
    }
}

/// The patch decoders under attack: deltas whose large files are shipped as `records`,
/// `zstd-ref`, `bsdiff` and `bsdiff-lzma` pieces (a 20 MiB tree: feeds past the 4 MiB solid-block
/// cut), every piece's bytes flipped and every piece's header fields edited; in the long
/// form also 1,000 random mutations of that delta. Each of the four patch decoders must
/// have been attacked (15 cases per piece), and every case refused (2 or 11).
#[test]
fn patched_delta_pieces_are_refused_when_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Corpus::build_days(
        &tmp.path().join("corpus"),
        ouk_testdata::TreeSpec::with_total_bytes(7, 20 << 20),
        2,
    );
    let mut sb = Sandbox::new(&tmp.path().join("work"), &c.k0, &[c.k1.generation.as_str()]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(66);
    // The record tier takes the feeds in the default delta; the same pair made without it
    // ships the classic pieces, so every decoder is attacked: records from the first,
    // bsdiff, bsdiff-lzma and zstd-ref from the second.
    let classic = Kit::load(&make_delta_with(
        &c.k0.bundle,
        &c.k1.bundle,
        &tmp.path().join("stella-ouk-2025-10-24-classic.delta.tgz"),
        &["--no-record-tier"],
    ));
    let mut mutants = piece_mutants(&c.d01, &mut rng);
    mutants.extend(piece_mutants(&classic, &mut rng));
    // The decoders this test exists for: a delta that shipped none of their pieces (a
    // planner change, a smaller tree) would leave them untested while the test passed.
    let wanted = ["bsdiff", "bsdiff-lzma", "zstd-ref", "records"];
    for enc in wanted {
        let n = mutants.iter().filter(|(e, _)| e == enc).count();
        assert!(
            n >= 15,
            "{n} attacks on {enc} pieces (15 per piece expected); the delta's pieces: {:?}",
            mutants
                .iter()
                .map(|(e, _)| e.as_str())
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    if long() {
        for _ in 0..1000 {
            mutants.push(("random".into(), random_mutant_of(&c.d01, &mut rng)));
        }
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    // Outcomes per encoding: every attack on every decoder refused with 2 or 11.
    let mut by_encoding: std::collections::BTreeMap<String, Tally> = Default::default();
    for (enc, m) in &mutants {
        let r = sb.run(m);
        tally.add(m.family, &r);
        by_encoding
            .entry(enc.clone())
            .or_default()
            .add(m.family, &r);
    }
    report("patched delta", &tally, started);
    for enc in wanted {
        let t = &by_encoding[enc];
        let refused: u64 = t
            .counts
            .values()
            .flat_map(|m| m.iter())
            .filter(|(k, _)| *k == "exit 2" || *k == "exit 11")
            .map(|(_, v)| v)
            .sum();
        assert_eq!(
            refused,
            t.total,
            "{enc}: not every attack refused with 2 or 11:\n{}",
            t.table()
        );
    }
}

/// The bounds every case above runs under fail loudly, naming what overran them:
/// - CPU: a busy loop under a 1 s bound is killed by the kernel (`SIGXCPU`) and reported;
/// - wall: an import blocked for good (`--wait` on a root whose lock this test holds) is
///   killed at the sandbox's deadline (here 3 s instead of 600) and the case fails with its
///   name.
#[test]
fn a_case_that_spins_or_hangs_fails_naming_it() {
    let mut spin = std::process::Command::new("sh");
    spin.args(["-c", "while :; do :; done"]);
    let e = common::bounded::Bounded::spawn_with(
        &mut spin,
        "a busy loop",
        1,
        std::time::Duration::from_secs(600),
    )
    .wait()
    .expect_err("a busy loop ran past its CPU bound");
    assert!(
        e.contains("a busy loop") && e.contains("past its 1 s bound"),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let mut sb = Sandbox::new(&tmp.path().join("work"), &c.k0, &[c.k1.generation.as_str()]);
    sb.wall = std::time::Duration::from_secs(3);
    let lock = ouk_root::Root::open(
        &sb.root,
        ouk_root::LockWait::Fail,
        ouk_store::StoreOptions::default(),
    )
    .unwrap();
    let m = Mutant {
        family: "harness",
        detail: "the genuine day-1 kit on a root whose lock is held".into(),
        name: c
            .k1
            .bundle
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        bundle: Payload::Bytes(c.k1.gz.clone()),
        sidecars: Vec::new(),
        args: vec!["--allow-unsigned".into()],
        expect: vec![0],
        message: None,
    };
    let r = sb.run(&m);
    drop(lock);
    let e = r.expect_err("the import waited for the lock past the deadline");
    assert!(
        e.contains("the genuine day-1 kit on a root whose lock is held")
            && e.contains("still running after 3s"),
        "{e}"
    );
}
