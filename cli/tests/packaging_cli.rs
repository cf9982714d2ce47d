//! What the packages need from the `ouk` binary (issue 27, and issue 21's points the packages
//! carry): `--version` with commit and build date, shell completions and man pages generated
//! from the clap definitions, global flags under their own help heading, the build-time
//! default root, and that a package signature never authorizes a kit.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::hostile::{fixture, import, signing_key};
use common::*;

/// `ouk ARGS` with no root given (nothing here may need one), in `cwd`.
fn ouk_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(ouk())
        .args(args)
        .current_dir(cwd)
        .env_remove("OUK_ROOT")
        .output()
        .expect("run ouk")
}

fn stdout(o: &std::process::Output) -> String {
    assert_eq!(code(o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

/// `git ARGS` in the repository, when git and the repository are there.
fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TZ", "UTC")
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn version_prints_the_version_commit_and_build_date() {
    let tmp = tempfile::tempdir().unwrap();
    let short = stdout(&ouk_in(tmp.path(), &["-V"]));
    let long = stdout(&ouk_in(tmp.path(), &["--version"]));
    let version = env!("CARGO_PKG_VERSION");
    for text in [&short, &long] {
        assert!(
            text.starts_with(&format!("ouk {version} (commit ")),
            "{text}"
        );
        assert!(text.contains(", built "), "{text}");
    }
    assert!(long.contains("\ncommit: "), "{long}");
    assert!(long.contains("\nbuilt: "), "{long}");
    assert!(long.contains("\ndefault root: ouk-root\n"), "{long}");
    assert!(long.contains("\nobject storage: "), "{long}");
    // From a checkout the commit is HEAD's and the date is HEAD's committer time (not the
    // clock: the same commit builds the same bytes), unless SOURCE_DATE_EPOCH overrode it.
    if let Some(head) = git(&["rev-parse", "HEAD"]) {
        assert!(
            long.contains(&format!("commit: {head}\n")),
            "{long} vs {head}"
        );
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let date = git(&[
                "log",
                "-1",
                "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
                "--format=%cd",
            ])
            .expect("git log");
            assert!(long.contains(&format!("built: {date}")), "{long} vs {date}");
        }
    }
}

#[test]
fn bash_zsh_and_fish_completions_are_generated_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&ouk_in(tmp.path(), &["completions", shell]));
        assert!(script.contains("ouk"), "{shell}: {script}");
        // Every subcommand is offered (generated from the definitions, so none is missing).
        for sub in ["kit", "import", "trust", "serve", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // bash loads it and registers a completion function for `ouk`.
    if require_tool("bash", &["-c", "true"]) {
        let file = tmp.path().join("ouk.bash");
        fs::write(&file, stdout(&ouk_in(tmp.path(), &["completions", "bash"]))).unwrap();
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && complete -p ouk", file.display()))
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && shown.contains("ouk"), "{shown} {o:?}");
    }
    // An unknown shell is a usage error.
    assert_ne!(code(&ouk_in(tmp.path(), &["completions", "tcsh"])), 0);
    // Nothing was created where it ran (no root).
    assert!(!tmp.path().join("ouk-root").exists());
}

#[test]
fn man_pages_are_generated_for_every_command_and_render() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let (rc, doc) = json_output(
        &["man"],
        &ouk_in(
            tmp.path(),
            &["--json", "man", "--output-dir", dir.to_str().unwrap()],
        ),
    );
    assert_eq!(rc, 0, "{doc}");
    let pages: Vec<&str> = doc["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for page in [
        "ouk.1",
        "ouk-kit-import.1",
        "ouk-serve.1",
        "ouk-trust-add.1",
        "ouk-completions.1",
    ] {
        assert!(pages.contains(&page), "{page} missing from {pages:?}");
        assert!(dir.join(page).is_file());
    }
    // The page describes the command and its global options.
    let top = fs::read_to_string(dir.join("ouk.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH ouk 1"), "{top}");
    assert!(top.contains("\\-\\-root"), "{top}");
    // `ouk man` alone prints ouk.1, the same page.
    assert_eq!(stdout(&ouk_in(tmp.path(), &["man"])), top);
    // groff renders it without warnings (what `man` runs).
    if require_tool("groff", &["-v"]) {
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.join("ouk-kit-import.1"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(!tmp.path().join("ouk-root").exists());
}

#[test]
fn global_flags_are_under_their_own_help_heading() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["kit", "import", "--help"][..]] {
        let help = stdout(&ouk_in(tmp.path(), args));
        let (own, global) = help
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("no Global options heading in {args:?}: {help}"));
        for flag in ["--root", "--json", "--quiet", "--wait"] {
            assert!(
                global.contains(flag),
                "{flag} not under Global options ({args:?})"
            );
            assert!(
                !own.contains(flag),
                "{flag} also above the heading ({args:?})"
            );
        }
    }
    // The command's own options stay above it.
    let help = stdout(&ouk_in(tmp.path(), &["kit", "import", "--help"]));
    let (own, _) = help.split_once("Global options:").unwrap();
    assert!(own.contains("--trust-key"), "{help}");
}

/// `--store-url` is an option of the commands that take it (issue 21), not a global one:
/// listed in their help only, refused elsewhere as a usage error that says where it goes.
#[test]
fn store_url_appears_only_on_the_commands_that_take_it() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["mirror", "add", "--help"][..],
        &["mirror", "list", "--help"][..],
        &["serve", "--help"][..],
        &["delta", "make", "--help"][..],
        &["store", "stats", "--help"][..],
        &["store", "reindex", "--help"][..],
        &["store", "fsck", "--help"][..],
    ] {
        let help = stdout(&ouk_in(tmp.path(), args));
        assert!(help.contains("--store-url"), "{args:?}: {help}");
    }
    for args in [
        &["--help"][..],
        &["kit", "import", "--help"][..],
        &["status", "--help"][..],
        &["store", "gc", "--help"][..],
        &["delta", "--help"][..],
    ] {
        let help = stdout(&ouk_in(tmp.path(), args));
        assert!(!help.contains("--store-url"), "{args:?}: {help}");
    }
    let o = ouk_in(tmp.path(), &["status", "--store-url", "s3://bucket/prefix"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 64, "{err}");
    assert!(
        err.contains("--store-url is for the mirror commands"),
        "{err}"
    );
}

#[test]
fn the_default_root_is_ouk_root_in_the_working_directory_for_a_source_build() {
    // The packages build with OUK_DEFAULT_ROOT=/var/lib/ouk/root (checked by the
    // installed-package test); `--root` and OUK_ROOT still win over it.
    let tmp = tempfile::tempdir().unwrap();
    let o = ouk_in(
        tmp.path(),
        &["trust", "add", fixture("fixture.pub").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("ouk-root").is_dir());
    let help = stdout(&ouk_in(tmp.path(), &["--help"]));
    assert!(help.contains("[default: ouk-root]"), "{help}");
}

#[test]
fn a_package_signature_is_never_accepted_as_a_kit_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let release = small_tree(tmp.path(), 0);
    let bundle = build_signed_kit(&release, "2025.10.0", &tmp.path().join("dist"));
    // What the package role of the same release key signs: the bundle's bytes, offered as
    // the bundle's cosign signature. (`ouk-package sign` refuses to sign a bundle at all;
    // this is the signature it would make.)
    let package_key = signing_key().derive_for_role(ouk_kit::sign::KeyRole::Package);
    let package_sig =
        ouk_kit::sign::sign_blob(&package_key, fs::File::open(&bundle).unwrap()).unwrap();
    let alone = |dir: &str, sig: &[u8]| {
        let d = tmp.path().join(dir);
        fs::create_dir_all(&d).unwrap();
        let b = d.join(bundle.file_name().unwrap());
        fs::copy(&bundle, &b).unwrap();
        fs::write(format!("{}.sig", b.display()), sig).unwrap();
        b
    };
    let forged = alone("forged", format!("{package_sig}\n").as_bytes());
    let root = trusted_root(tmp.path(), "root");
    let (rc, doc) = import(&root, &forged, &[]);
    assert_eq!(rc, 5, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid"),
        "{doc}"
    );
    assert_eq!(check_current_complete(&root), None);
    // Control: the kit's own signature, alone the same way, is accepted.
    let real = fs::read(format!("{}.sig", bundle.display())).unwrap();
    let genuine = alone("genuine", &real);
    let (rc, doc) = import(&root, &genuine, &[]);
    assert_eq!(rc, 0, "{doc}");
}
