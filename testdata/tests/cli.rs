//! `ouk-testdata` as a developer or a bench script runs it: `--help` on every command (it
//! failed before the command line moved to clap), usage errors exit 2, generation exit 0.

use std::path::PathBuf;
use std::process::{Command, Output};

fn testdata(args: &[&str]) -> Output {
    Command::new(PathBuf::from(env!("CARGO_BIN_EXE_ouk-testdata")))
        .args(args)
        .output()
        .expect("run ouk-testdata")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_works_on_every_command() {
    for (args, wants) in [
        (&["--help"][..], &["tree", "feed"][..]),
        (
            &["tree", "--help"][..],
            &["--seed", "--day", "--size", "--compressed", "OUT_DIR"][..],
        ),
        (
            &["feed", "--help"][..],
            &["--seed", "--bytes", "OUT_FILE"][..],
        ),
        (&["help", "tree"][..], &["--seed"][..]),
    ] {
        let o = testdata(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        for w in wants {
            assert!(text(&o).contains(w), "{args:?} lacks {w}: {}", text(&o));
        }
    }
}

#[test]
fn usage_errors_exit_2_and_a_tree_is_written() {
    for args in [
        &["tree", "--seed", "1", "out"][..],
        &["tree", "--seed", "1", "--day", "1", "--size", "12XB", "out"][..],
        &["frob"][..],
    ] {
        let o = testdata(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("error:"), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("--help"),
            "points at --help: {}",
            text(&o)
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tree");
    let o = testdata(&["tree", "--seed", "3", "--day", "0", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("wrote "));
    assert!(std::fs::read_dir(&out).unwrap().count() > 0);
}
