//! End to end through the `ouk` binary: the advisory AI volume primer (built into a kit
//! with its configured owner and mode, extracted idempotently, hostile primers refused),
//! the telemetry collector bundle (reproducible packaging, carried by a build, a tampered
//! sidecar failing it), and the troubleshooting table's messages for a corrupted bundle
//! and for low disk space.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::hostile::{Kit, fixture, gzip, tar};
use common::{code, require_tool, run, run_json, sha256_file, small_tree};

const PRIMER: &str = "advisory-ai/volume-primer.tar.gz";
const TELEMETRY: &str = "telemetry/telemetry-offline-bundle.tar.gz";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ouk kit build` of `release` into `out` (unsigned), with `extra` options.
fn build(release: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "kit",
        "build",
        "--version",
        "2025.10.0",
        "--channel",
        "edge",
        "--release-dir",
        release.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // Created at the tree's time, as before the build time became the default: the same
    // options still give the same kit.
    std::process::Command::new(common::ouk())
        .arg("--root")
        .arg(out)
        .args(&args)
        .env_remove("OUK_ROOT")
        .env("SOURCE_DATE_EPOCH", common::tree_epoch(release))
        .output()
        .expect("run ouk kit build")
}

fn bundle_in(out: &Path) -> PathBuf {
    out.join("stella-ops-offline-kit-2025.10.0-edge.tar.gz")
}

/// The release tree copied to `dir/name` (so tests can add files to it).
fn tree_copy(tmp: &Path, name: &str) -> PathBuf {
    let release = small_tree(tmp, 0);
    let copy = tmp.join(name);
    common::hostile::copy_tree(&release, &copy);
    copy
}

/// The member `name` of the bundle's decompressed archive.
fn member_bytes(bundle: &Path, name: &str) -> Vec<u8> {
    let kit = Kit::load(bundle);
    let m = kit
        .member(name)
        .unwrap_or_else(|| panic!("{name} in the kit"));
    kit.data(m).to_vec()
}

#[test]
fn build_carries_the_primer_with_its_metadata_and_extract_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let out = tmp.path().join("dist");
    fs::create_dir_all(&out).unwrap();
    let o = build(
        &release,
        &out,
        &[
            "--primer-uid",
            "4242",
            "--primer-gid",
            "4343",
            "--primer-mode",
            "0750",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = bundle_in(&out);

    // The primer in the kit: three directories with the configured metadata.
    let primer = tmp.path().join("volume-primer.tar.gz");
    fs::write(&primer, member_bytes(&bundle, PRIMER)).unwrap();
    let inner = common::hostile::gunzip(&primer);
    let (members, _) = tar::parse(&inner);
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["outputs/", "plans/", "queue/"]);
    for m in &members {
        let h = &inner[m.header..m.header + 512];
        assert_eq!(m.typeflag, b'5');
        assert_eq!(&h[100..107], b"0000750", "{}", m.name);
        assert_eq!(&h[108..115], b"0010222", "uid 4242 of {}", m.name);
        assert_eq!(&h[116..123], b"0010367", "gid 4343 of {}", m.name);
    }
    // GNU tar lists it with the numeric owners.
    if require_tool("tar", &["--version"]) {
        let o = std::process::Command::new("tar")
            .args(["--numeric-owner", "-tvzf"])
            .arg(&primer)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tar -tvzf: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(listing.contains("4242/4343"), "{listing}");
        assert!(listing.contains("drwxr-x---"), "{listing}");
    }
    // The same options give the same kit.
    let again = tmp.path().join("dist2");
    fs::create_dir_all(&again).unwrap();
    let o = build(
        &release,
        &again,
        &[
            "--primer-uid",
            "4242",
            "--primer-gid",
            "4343",
            "--primer-mode",
            "0750",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(sha256_file(&bundle), sha256_file(&bundle_in(&again)));

    // Extract from the kit, twice: the second run changes nothing and says so.
    let volume = tmp.path().join("rwx");
    fs::create_dir_all(&volume).unwrap();
    let root = tmp.path().join("root");
    let extract = |from: &Path| {
        run_json(
            &root,
            &[
                "primer",
                "extract",
                "--volume",
                volume.to_str().unwrap(),
                "--from",
                from.to_str().unwrap(),
            ],
        )
    };
    let (rc, first) = extract(&bundle);
    assert_eq!(rc, 0, "{first}");
    assert_eq!(first["source"], "kit");
    assert_eq!(first["report"]["changed"], true);
    let as_root = unsafe { libc::geteuid() } == 0;
    for name in ["outputs", "plans", "queue"] {
        let m = fs::symlink_metadata(volume.join(name)).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o750, "{name}");
        if as_root {
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{name}");
        }
    }
    assert_eq!(first["report"]["ownershipApplied"], as_root);
    let (rc, second) = extract(&bundle);
    assert_eq!(rc, 0, "{second}");
    assert_eq!(second["report"]["changed"], false, "{second}");
    for d in second["report"]["directories"].as_array().unwrap() {
        assert_eq!(d["action"], "unchanged", "{second}");
    }
    // In text: says there was nothing to do.
    let o = run(
        &root,
        &[
            "primer",
            "extract",
            "--volume",
            volume.to_str().unwrap(),
            "--from",
            primer.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("nothing to do"), "{text}");

    // A directory with another mode (and owner) is corrected.
    fs::set_permissions(
        volume.join("queue"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    if as_root {
        std::os::unix::fs::chown(volume.join("plans"), Some(1), Some(1)).unwrap();
    }
    let (rc, third) = extract(&primer);
    assert_eq!(rc, 0, "{third}");
    assert_eq!(third["source"], "primer");
    assert_eq!(third["report"]["changed"], true);
    let actions: Vec<&str> = third["report"]["directories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    if as_root {
        assert_eq!(actions, ["unchanged", "corrected", "corrected"]);
        let plans = fs::metadata(volume.join("plans")).unwrap();
        assert_eq!((plans.uid(), plans.gid()), (4242, 4343));
    } else {
        assert_eq!(actions, ["unchanged", "unchanged", "corrected"]);
    }
    assert_eq!(
        fs::metadata(volume.join("queue")).unwrap().mode() & 0o777,
        0o750
    );
}

#[test]
fn extract_defaults_to_the_primer_of_the_active_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let out = tmp.path().join("dist");
    let bundle = common::build_signed_kit(&release, "2025.10.0", &out);
    let root = tmp.path().join("root");
    let (rc, r) = common::hostile::import(
        &root,
        &bundle,
        &["--trust-key", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{r}");
    let volume = tmp.path().join("vol");
    fs::create_dir_all(&volume).unwrap();
    let (rc, r) = run_json(
        &root,
        &["primer", "extract", "--volume", volume.to_str().unwrap()],
    );
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["source"], "primer");
    // The documented defaults: 1654:1654, 0770.
    for d in r["report"]["directories"].as_array().unwrap() {
        assert_eq!(
            (d["uid"].as_u64(), d["gid"].as_u64()),
            (Some(1654), Some(1654))
        );
        assert_eq!(d["mode"], "0770");
    }
    assert_eq!(
        fs::metadata(volume.join("outputs")).unwrap().mode() & 0o777,
        0o770
    );
    // A kit built with --no-primer has none: extract says so (exit 1).
    let plain = tmp.path().join("plain");
    fs::create_dir_all(&plain).unwrap();
    let o = build(&release, &plain, &["--no-primer"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(Kit::load(&bundle_in(&plain)).member(PRIMER).is_none());
    let o = run(
        &root,
        &[
            "primer",
            "extract",
            "--volume",
            volume.to_str().unwrap(),
            "--from",
            bundle_in(&plain).to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no advisory-ai/volume-primer.tar.gz"),
        "{}",
        stderr(&o)
    );
}

/// A directory member with the owner fields set to 1654.
fn dir(name: &str) -> Vec<u8> {
    let mut h = tar::header(name.as_bytes(), b'5', 0o770, 0, b"");
    h[108..116].copy_from_slice(b"0003166\0");
    h[116..124].copy_from_slice(b"0003166\0");
    tar::set_checksum(&mut h);
    h.to_vec()
}

#[test]
fn hostile_primers_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let link = {
        let mut v = dir("outputs/");
        v.extend(tar::header(b"plans", b'2', 0o777, 0, b"/etc").to_vec());
        v
    };
    let hard = {
        let mut v = dir("outputs/");
        v.extend(tar::header(b"plans/x", b'1', 0o644, 0, b"/etc/shadow").to_vec());
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a file",
            [
                dir("outputs/"),
                tar::file("outputs/run.sh", 0o755, b"#!/bin/sh\n"),
            ]
            .concat(),
            "is a file",
        ),
        ("a symlink", link, "symbolic link"),
        ("a hard link", hard, "hard link"),
        (
            "a .. path",
            [dir("outputs/"), dir("../etc/")].concat(),
            "`..`",
        ),
        (
            "an absolute path",
            [dir("outputs/"), dir("/queue/")].concat(),
            "absolute",
        ),
        (
            "an unknown directory",
            [dir("outputs/"), dir("tmp/")].concat(),
            "not one of",
        ),
        (
            "a nested directory",
            [dir("outputs/"), dir("outputs/x/")].concat(),
            "not one of",
        ),
        (
            "a missing directory",
            [dir("outputs/"), dir("queue/")].concat(),
            "no plans/",
        ),
    ];
    let volume = tmp.path().join("vol");
    fs::create_dir_all(&volume).unwrap();
    for (what, raw, want) in cases {
        let mut raw = raw;
        raw.extend(tar::end());
        let path = tmp.path().join("hostile-primer.tar.gz");
        fs::write(&path, gzip(&raw)).unwrap();
        let (rc, e) = run_json(
            tmp.path(),
            &[
                "primer",
                "extract",
                "--volume",
                volume.to_str().unwrap(),
                "--from",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(rc, 11, "{what}: {e}");
        let msg = e["error"].as_str().unwrap();
        assert!(msg.contains(want), "{what}: {msg}");
        assert_eq!(
            fs::read_dir(&volume).unwrap().count(),
            0,
            "{what}: nothing may be written"
        );
    }
    // A symbolic link on the volume where a directory goes is refused, not followed.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, volume.join("queue")).unwrap();
    let good = [dir("outputs/"), dir("plans/"), dir("queue/"), tar::end()].concat();
    let path = tmp.path().join("good-primer.tar.gz");
    fs::write(&path, gzip(&good)).unwrap();
    let (rc, e) = run_json(
        tmp.path(),
        &[
            "primer",
            "extract",
            "--volume",
            volume.to_str().unwrap(),
            "--from",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 11, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("symbolic links are not followed")
    );
    assert_eq!(fs::metadata(&elsewhere).unwrap().mode() & 0o777, 0o755);
}

fn telemetry_input(dir: &Path) -> PathBuf {
    let input = dir.join("telemetry-src");
    fs::create_dir_all(input.join("overlays/compose")).unwrap();
    fs::create_dir_all(input.join("overlays/helm")).unwrap();
    fs::write(
        input.join("otel-collector-config.yaml"),
        b"receivers:\n  otlp:\n    protocols: {grpc: {}, http: {}}\n",
    )
    .unwrap();
    fs::write(
        input.join("overlays/compose/docker-compose.telemetry.yml"),
        b"services: {}\n",
    )
    .unwrap();
    fs::write(
        input.join("overlays/helm/values-telemetry.yaml"),
        b"collector: {enabled: true}\n",
    )
    .unwrap();
    fs::write(input.join("README.md"), b"# Operator instructions\n").unwrap();
    input
}

fn package(tmp: &Path, input: &Path, output: &Path) -> (i32, serde_json::Value) {
    run_json(
        tmp,
        &[
            "telemetry",
            "package",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
    )
}

#[test]
fn telemetry_package_is_reproducible_and_the_build_carries_and_checks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = telemetry_input(tmp.path());
    let release = tree_copy(tmp.path(), "release");
    let output = release.join(TELEMETRY);

    let (rc, first) = package(tmp.path(), &input, &output);
    assert_eq!(rc, 0, "{first}");
    let first_bytes = fs::read(&output).unwrap();
    let (rc, second) = package(tmp.path(), &input, &output);
    assert_eq!(rc, 0, "{second}");
    assert_eq!(
        first_bytes,
        fs::read(&output).unwrap(),
        "same input, same bytes"
    );
    assert_eq!(first["sha256"], second["sha256"]);
    assert_eq!(first["files"], 4);
    let sidecar = fs::read_to_string(release.join(format!("{TELEMETRY}.sha256"))).unwrap();
    assert_eq!(
        sidecar,
        format!(
            "{}  telemetry-offline-bundle.tar.gz\n",
            sha256_file(&output)
        )
    );
    // sha256sum -c agrees (a missing sha256sum fails the test unless OUK_SKIP_SHA256SUM).
    if require_tool("sha256sum", &["--version"]) {
        let o = std::process::Command::new("sha256sum")
            .arg("-c")
            .arg("telemetry-offline-bundle.tar.gz.sha256")
            .current_dir(release.join("telemetry"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }

    // The build carries it (and its sidecar) unchanged.
    let out = tmp.path().join("dist");
    fs::create_dir_all(&out).unwrap();
    let o = build(&release, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bundle = bundle_in(&out);
    assert_eq!(member_bytes(&bundle, TELEMETRY), first_bytes);
    assert_eq!(
        member_bytes(&bundle, &format!("{TELEMETRY}.sha256")),
        sidecar.as_bytes()
    );

    // A tampered sidecar fails the build: exit 2, naming the file.
    fs::write(
        release.join(format!("{TELEMETRY}.sha256")),
        format!("{}  telemetry-offline-bundle.tar.gz\n", "ab".repeat(32)),
    )
    .unwrap();
    let bad = tmp.path().join("dist-bad");
    fs::create_dir_all(&bad).unwrap();
    let o = build(&release, &bad, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains(TELEMETRY), "{}", stderr(&o));
    assert!(stderr(&o).contains("digest mismatch"), "{}", stderr(&o));
    assert!(!bundle_in(&bad).exists());

    // A tarball that does not read cleanly (with a matching sidecar) fails it: exit 11.
    fs::write(&output, b"this is not a gzip stream").unwrap();
    fs::write(
        release.join(format!("{TELEMETRY}.sha256")),
        format!(
            "{}  telemetry-offline-bundle.tar.gz\n",
            sha256_file(&output)
        ),
    )
    .unwrap();
    let o = build(&release, &bad, &[]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a clean telemetry bundle"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn troubleshooting_messages_for_a_corrupted_bundle_and_low_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let bundle = common::build_signed_kit(&release, "2025.10.0", &tmp.path().join("dist"));
    let trust = fixture("fixture.pub");
    let root = tmp.path().join("root");

    // "could not verify SBOM hash": the SBOM damaged in transit inside a bundle that came
    // without its .sha256 (the bytes are re-compressed, so the gzip stream is sound).
    let mut kit = Kit::load(&bundle);
    let m = kit.member("provenance/sbom.spdx.json").unwrap().clone();
    kit.tar[m.data + 10] ^= 0x20;
    let copy_dir = tmp.path().join("usb");
    fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join(bundle.file_name().unwrap());
    fs::write(&copy, gzip(&kit.tar)).unwrap();
    let (rc, e) = common::hostile::import(&root, &copy, &["--allow-unsigned"]);
    assert_eq!(rc, 2, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("could not verify SBOM hash: re-copy the kit"),
        "{msg}"
    );
    assert!(msg.contains("expected ") && msg.contains(", got "), "{msg}");

    // "could not verify bundle hash": the bundle does not match its .sha256.
    fs::copy(
        format!("{}.sha256", bundle.display()),
        format!("{}.sha256", copy.display()),
    )
    .unwrap();
    let (rc, e) = common::hostile::import(&root, &copy, &["--allow-unsigned"]);
    assert_eq!(rc, 2, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("could not verify bundle hash: re-copy the kit"),
        "{msg}"
    );
    assert!(
        msg.contains(&sha256_file(&copy)),
        "the actual digest: {msg}"
    );

    // Low disk: "free >= N GiB in PATH before retrying".
    let (rc, e) = run_json(
        &root,
        &[
            "kit",
            "import",
            bundle.to_str().unwrap(),
            "--trust-key",
            trust.to_str().unwrap(),
            "--free-margin",
            "1000000000000000",
        ],
    );
    assert_eq!(rc, 12, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(msg.contains("free >= "), "{msg}");
    assert!(
        msg.contains(&format!("GiB in {} before retrying", root.display())),
        "{msg}"
    );
}
