//! End-to-end: `ouk delta make|show`, `ouk inventory export`, and deltas through `ouk kit import`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hostile::fixture;
use common::*;

fn kit(dir: &Path, day: u32) -> PathBuf {
    build_signed_kit(
        &small_tree(dir, day),
        &format!("2025.10.{day}"),
        &dir.join("kits"),
    )
}

fn delta(dir: &Path, from: &Path, to: &Path, name: &str) -> PathBuf {
    let out = dir.join("deltas").join(name);
    let o = Command::new(ouk())
        .args(["delta", "make", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .arg("--output")
        .arg(&out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn host(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    assert_eq!(
        code(&run(
            &root,
            &["trust", "add", fixture("fixture.pub").to_str().unwrap()]
        )),
        0
    );
    root
}

fn import(root: &Path, bundle: &Path) -> (i32, serde_json::Value) {
    run_json(
        root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--free-margin",
            "0",
            "--max-kit-age",
            "0",
        ],
    )
}

#[test]
fn a_delta_lands_on_the_same_generation_as_the_full_kit_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let (k0, k1) = (kit(tmp.path(), 0), kit(tmp.path(), 1));
    let d01 = delta(tmp.path(), &k0, &k1, "stella-ouk-2025-10-24.delta.tgz");
    // The operator can look inside before carrying it.
    let o = Command::new("tar")
        .arg("-tzf")
        .arg(&d01)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains("delta/delta.json") && listing.contains("delta/payload.bin"),
        "{listing}"
    );
    let (rc, shown) = run_json(tmp.path(), &["delta", "show", d01.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(shown["target"]["version"], "2025.10.1");
    // `ouk delta show D | head`: a reader that went away is not a crash.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(ouk())
        .args(["delta", "show"])
        .arg(&d01)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Small: the delta is a few percent of the kit.
    let (kit_len, delta_len) = (
        std::fs::metadata(&k1).unwrap().len(),
        std::fs::metadata(&d01).unwrap().len(),
    );
    assert!(
        delta_len * 20 < kit_len,
        "delta {delta_len} vs kit {kit_len}"
    );

    let via_kit = host(tmp.path(), "via-kit");
    let via_delta = host(tmp.path(), "via-delta");
    assert_eq!(import(&via_kit, &k0).0, 0);
    let (rc, full) = import(&via_kit, &k1);
    assert_eq!(rc, 0, "{full}");
    assert_eq!(import(&via_delta, &k0).0, 0);
    let (rc, applied) = import(&via_delta, &d01);
    assert_eq!(rc, 0, "{applied}");
    assert_eq!(
        applied["generation"], full["generation"],
        "same generation id as the full kit"
    );
    let a = check_current_complete(&via_kit).unwrap();
    let b = check_current_complete(&via_delta).unwrap();
    assert_eq!(a, b);
    for (rel, _, _) in ouk_delta::tree::list_tree(&via_kit.join("current")).unwrap() {
        assert_eq!(
            sha256_file(&via_kit.join("current").join(&rel)),
            sha256_file(&via_delta.join("current").join(&rel)),
            "{rel}"
        );
    }
    // Applying it twice is a no-op; replaying it on the full-kit host too.
    let (rc, again) = import(&via_delta, &d01);
    assert_eq!(rc, 0);
    assert_eq!(again["outcome"], "already-active");
    assert_eq!(import(&via_kit, &d01).1["outcome"], "already-active");
}

#[test]
fn an_edited_baseline_generation_does_not_leak_into_the_applied_one() {
    // Apply reads reference bytes from the baseline generation's files when they still
    // hash right, and publishing hard-links unchanged files from it when they are still
    // what was published: edit every file of the baseline (changed, unchanged and removed
    // by the delta) and the result must still be exactly the target's bytes.
    let tmp = tempfile::tempdir().unwrap();
    let (k0, k1) = (kit(tmp.path(), 0), kit(tmp.path(), 1));
    let d01 = delta(tmp.path(), &k0, &k1, "d01.delta.tgz");
    let via_kit = host(tmp.path(), "via-kit");
    let via_delta = host(tmp.path(), "via-delta");
    assert_eq!(import(&via_kit, &k0).0, 0);
    assert_eq!(import(&via_kit, &k1).0, 0);
    assert_eq!(import(&via_delta, &k0).0, 0);
    let (old, new) = (via_delta.join("current"), via_kit.join("current"));
    let mut edited = std::collections::BTreeMap::new();
    for (rel, _, _) in ouk_delta::tree::list_tree(&old).unwrap() {
        let (a, b) = (old.join(&rel), new.join(&rel));
        // The feed step reads the baseline's feed index from the generation directory
        // itself (not a reference read); it is left intact here.
        if rel == "metadata/feeds-index.jsonl" {
            continue;
        }
        let kind = match b.is_file() {
            false => "removed",
            true if sha256_file(&a) == sha256_file(&b) => "unchanged",
            true => "changed",
        };
        if edit_in_place(&a) {
            *edited.entry(kind).or_insert(0) += 1;
        }
    }
    for kind in ["changed", "unchanged", "removed"] {
        assert!(
            edited.get(kind).is_some_and(|n| *n > 0),
            "{kind} files edited: {edited:?}"
        );
    }
    let (rc, applied) = import(&via_delta, &d01);
    assert_eq!(rc, 0, "{applied}");
    for (rel, _, _) in ouk_delta::tree::list_tree(&new).unwrap() {
        assert_eq!(
            sha256_file(&new.join(&rel)),
            sha256_file(&via_delta.join("current").join(&rel)),
            "{rel}"
        );
    }
}

/// Flip a bit of the first byte of `path` in place (the generation is read-only: the write
/// bit is set first, as an operator with a text editor would). False for an empty file.
fn edit_in_place(path: &Path) -> bool {
    let mut bytes = std::fs::read(path).unwrap();
    let Some(first) = bytes.first_mut() else {
        return false;
    };
    *first ^= 0x20;
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(path, perm).unwrap();
    std::fs::write(path, &bytes).unwrap();
    true
}

#[test]
fn an_edited_active_generation_does_not_leak_into_the_next_kit() {
    // Publishing a kit hard-links the files it shares with the active generation: an
    // edited one must not be carried over.
    let tmp = tempfile::tempdir().unwrap();
    let (k0, k1) = (kit(tmp.path(), 0), kit(tmp.path(), 1));
    let root = host(tmp.path(), "edited");
    assert_eq!(import(&root, &k0).0, 0);
    let cur = root.join("current");
    let mut edited = 0;
    for (rel, _, _) in ouk_delta::tree::list_tree(&cur).unwrap() {
        if rel != "metadata/feeds-index.jsonl" && edit_in_place(&cur.join(&rel)) {
            edited += 1;
        }
    }
    assert!(edited > 10, "{edited}");
    let (rc, r) = import(&root, &k1);
    assert_eq!(rc, 0, "{r}");
    // Every file of the new generation is what its manifest names.
    assert!(check_current_complete(&root).is_some());
}

#[test]
fn deltas_chain_and_skip_and_refuse_a_missing_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let kits: Vec<PathBuf> = (0..4).map(|d| kit(tmp.path(), d)).collect();
    let d01 = delta(tmp.path(), &kits[0], &kits[1], "d01.delta.tgz");
    let d12 = delta(tmp.path(), &kits[1], &kits[2], "d12.delta.tgz");
    let d23 = delta(tmp.path(), &kits[2], &kits[3], "d23.delta.tgz");
    let d03 = delta(tmp.path(), &kits[0], &kits[3], "d03.delta.tgz");
    let chained = host(tmp.path(), "chained");
    assert_eq!(import(&chained, &kits[0]).0, 0);
    for d in [&d01, &d12, &d23] {
        let (rc, r) = import(&chained, d);
        assert_eq!(rc, 0, "{r}");
    }
    let skipping = host(tmp.path(), "skipping");
    assert_eq!(import(&skipping, &kits[0]).0, 0);
    let (rc, r) = import(&skipping, &d03);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(
        check_current_complete(&chained),
        check_current_complete(&skipping)
    );
    // A host that never had 2025.10.1 cannot take d12: exit 11 naming what it needs.
    let fresh = host(tmp.path(), "fresh");
    assert_eq!(import(&fresh, &kits[0]).0, 0);
    let (rc, e) = import(&fresh, &d12);
    assert_eq!(rc, 11, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("2025.10.1") && msg.contains("does not have"),
        "{msg}"
    );
    // An old delta replayed after a newer kit: version not newer.
    let (rc, e) = import(&chained, &d12);
    assert_eq!(rc, 8, "{e}");
}

#[test]
fn the_inventory_path_makes_the_delta_a_host_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let kits: Vec<PathBuf> = (0..3).map(|d| kit(tmp.path(), d)).collect();
    let root = host(tmp.path(), "host");
    assert_eq!(import(&root, &kits[1]).0, 0);
    let inv = tmp.path().join("host-inventory.json");
    let (rc, _) = run_json(
        &root,
        &["inventory", "export", "--output", inv.to_str().unwrap()],
    );
    assert_eq!(rc, 0);
    assert!(
        std::fs::metadata(&inv).unwrap().len() < 4096,
        "the inventory is small"
    );
    let out = tmp.path().join("for-host.delta.tgz");
    let o = Command::new(ouk())
        .args(["delta", "make", "--from-inventory"])
        .arg(&inv)
        .arg("--kits")
        .arg(tmp.path().join("kits"))
        .arg("--to")
        .arg(&kits[2])
        .arg("--output")
        .arg(&out)
        .arg("--signing-key")
        .arg(fixture("fixture.key"))
        .env("COSIGN_PASSWORD", "hello")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let (rc, r) = import(&root, &out);
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["version"], "2025.10.2");
}

/// A delta bundle of `delta/delta.json` declaring `declared` payload bytes and a payload of
/// `actual` zero bytes (a sparse file: nothing of it is on disk), gzip-compressed ~1000:1.
fn zero_payload_delta(dir: &Path, declared: u64, actual: u64) -> PathBuf {
    use ouk_kit::bundle::{EntrySource, EntrySpec, write_bundle};
    let zeros = dir.join("zeros");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(actual)
        .unwrap();
    let header = serde_json::json!({
        "format": "ouk-delta/2",
        "baseline": {"generation": "00".repeat(32), "version": "2025.10.0"},
        "target": {"generation": "11".repeat(32), "version": "2025.10.1"},
        "files": [],
        "payloadSize": declared,
    });
    let bundle = dir.join("huge.delta.tgz");
    let out = std::io::BufWriter::new(std::fs::File::create(&bundle).unwrap());
    write_bundle(
        out,
        vec![
            EntrySpec {
                path: "delta/delta.json".into(),
                mode: 0o644,
                source: EntrySource::Bytes(header.to_string().into_bytes()),
            },
            EntrySpec {
                path: "delta/payload.bin".into(),
                mode: 0o644,
                source: EntrySource::File(zeros.clone()),
            },
        ],
        Default::default(),
    )
    .unwrap();
    std::fs::remove_file(&zeros).unwrap();
    bundle
}

/// `ouk delta show` with TMPDIR at `tmpdir` and files limited to `max_file` bytes
/// (RLIMIT_FSIZE: writing past it kills the process with SIGXFSZ).
fn show_with_file_limit(bundle: &Path, tmpdir: &Path, max_file: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(ouk());
    cmd.args(["--json", "delta", "show"])
        .arg(bundle)
        .env("TMPDIR", tmpdir);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: max_file,
                rlim_max: max_file,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// The review's attack on `delta show`: an unsigned file of about a MB whose header
/// declares (and whose tar holds) a GiB of payload. `show` checks no signature, so anyone
/// can hand it such a file; it used to unpack the whole payload into the temporary
/// directory (4 GiB for a 4 MB file). It reads only what it shows now: run under a 16 MiB
/// file-size limit, it shows the delta and leaves its temporary directory empty.
#[test]
fn delta_show_of_a_huge_declared_payload_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gib = 1u64 << 30;
    let bundle = zero_payload_delta(tmp.path(), gib, gib);
    let size = std::fs::metadata(&bundle).unwrap().len();
    assert!(size < 4 << 20, "{size} bytes");
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let out = show_with_file_limit(&bundle, &scratch, 16 << 20);
    let (rc, shown) = json_output(&["delta", "show"], &out);
    assert_eq!(rc, 0, "{shown}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(shown["summary"]["payloadBytes"], gib, "{shown}");
    assert_eq!(shown["target"]["version"], "2025.10.1");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    // A payload longer than its header declares is refused at the declared size, clearly.
    let dir = tmp.path().join("lying");
    std::fs::create_dir(&dir).unwrap();
    let bundle = zero_payload_delta(&dir, 1 << 20, 64 << 20);
    let out = show_with_file_limit(&bundle, &scratch, 16 << 20);
    let (rc, e) = json_output(&["delta", "show"], &out);
    assert_eq!(rc, 11, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(msg.contains("delta/payload.bin"), "{msg}");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}

/// The compressed variant of the testdata tree (gzip layers from two producers, NVD-style
/// `.json.gz` feeds, an OSV `all.zip`, a wheel, a zstd file): the delta sees through the
/// compression, `delta show` says so per file, and the host re-creates every compressed
/// file bit for bit, landing on the full kit's generation.
#[test]
fn a_delta_sees_through_compressed_content_and_lands_on_the_full_kits_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = |day: u32| {
        let out = tmp.path().join(format!("compressed-day{day}"));
        let spec = ouk_testdata::TreeSpec::small(7)
            .with_compressed(true)
            .on_day(day);
        ouk_testdata::generate(&spec, &out).expect("generate tree");
        build_signed_kit(&out, &format!("2025.10.{day}"), &tmp.path().join("kits"))
    };
    let (k0, k1) = (tree(0), tree(1));
    let d01 = delta(tmp.path(), &k0, &k1, "stella-ouk-2025-10-24.delta.tgz");
    let (rc, shown) = run_json(tmp.path(), &["delta", "show", d01.to_str().unwrap()]);
    assert_eq!(rc, 0, "{shown}");
    let files = shown["files"].as_array().unwrap();
    let recompressed: Vec<&serde_json::Value> = files
        .iter()
        .filter(|f| f["tier"] == "recompressed")
        .collect();
    assert!(
        !recompressed.is_empty(),
        "some compressed file travels through its plain form: {files:#?}"
    );
    for f in &recompressed {
        assert!(
            f["decodedSize"].as_u64().unwrap() > 0 && f["format"].is_string(),
            "{f}"
        );
    }
    let o = Command::new(ouk())
        .args(["delta", "show"])
        .arg(&d01)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("recompressed "),
        "the text form names the tier"
    );

    let via_kit = host(tmp.path(), "via-kit");
    let via_delta = host(tmp.path(), "via-delta");
    assert_eq!(import(&via_kit, &k0).0, 0);
    let (rc, full) = import(&via_kit, &k1);
    assert_eq!(rc, 0, "{full}");
    assert_eq!(import(&via_delta, &k0).0, 0);
    let (rc, applied) = import(&via_delta, &d01);
    assert_eq!(rc, 0, "{applied}");
    assert_eq!(applied["generation"], full["generation"]);
    assert_eq!(
        check_current_complete(&via_kit).unwrap(),
        check_current_complete(&via_delta).unwrap()
    );
    let staging = via_delta.join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left in staging: {left:?}");
}
