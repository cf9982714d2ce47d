//! `docs/operations.md` runs as written: every `sh` block, in order, in one bash session
//! (`set -euo pipefail`), in a scratch directory holding two synthetic release trees. A
//! runbook command that no longer works (a renamed flag, a changed path, a new refusal)
//! fails this test.

mod common;

use std::path::Path;
use std::process::Command;

fn sh_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(b) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an sh block is not closed");
    blocks
}

#[test]
fn the_operations_runbook_runs_as_written() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read docs/operations.md");
    let blocks = sh_blocks(&doc);
    assert!(blocks.len() >= 8, "the runbook has its command blocks");

    let tmp = tempfile::tempdir().unwrap();
    let spec = ouk_testdata::TreeSpec::small(7);
    ouk_testdata::generate(&spec, &tmp.path().join("out/release")).unwrap();
    ouk_testdata::generate(&spec.on_day(1), &tmp.path().join("out/release-next")).unwrap();

    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '### runbook block {}' >&2\n{b}", i + 1));
    }
    std::fs::write(tmp.path().join("runbook.sh"), &script).unwrap();
    let bin_dir = common::ouk().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("runbook.sh")
        .current_dir(tmp.path())
        .env("PATH", path)
        .env_remove("OUK_ROOT")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("JWT")
        .output()
        .expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    assert!(
        out.status.success(),
        "the runbook failed ({}):\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // What the runbook claims it leaves behind.
    let t = tmp.path();
    assert!(
        t.join("usb/stella-ops-offline-kit-2025.10.0-edge.tar.gz")
            .is_file()
    );
    assert!(
        t.join("usb-small/stella-ops-offline-kit-2025.10.1-edge.tar.gz.parts.json")
            .is_file()
    );
    assert!(
        t.join("offline-kit/stella-ouk-2025-10-24.delta.tgz")
            .is_file()
    );
    assert!(t.join("for-host-7.delta.tgz").is_file());
    assert!(t.join("host/current").exists());
    for d in ["queue", "plans", "outputs"] {
        assert!(t.join("advisory-ai-volume").join(d).is_dir(), "{d}");
    }
}
