//! zstd round trips: frames from the bundled libzstd at several levels and flags, several
//! frames with skippable frames between them, and the `zstd` CLI (whose libzstd may be
//! another version: then analyze must say NotExact, never give a wrong recipe).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{round_trip, text, try_round_trip};
use ouk_recompress::RecompressError;

fn frame(data: &[u8], level: i32, checksum: bool, pledged: bool) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), level).unwrap();
    e.include_checksum(checksum).unwrap();
    e.include_contentsize(pledged).unwrap();
    if pledged {
        e.set_pledged_src_size(Some(data.len() as u64)).unwrap();
    }
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn library_levels_and_flags() {
    let data = text(400_000, 31);
    for level in [1, 3, 9, 19, -3] {
        for (checksum, pledged) in [(false, false), (true, true), (true, false)] {
            let z = frame(&data, level, checksum, pledged);
            let a = round_trip(&z);
            assert_eq!(a.plain_size, data.len() as u64);
        }
    }
    // and the one-shot API (content size always known)
    let z = zstd::bulk::compress(&data, 7).unwrap();
    round_trip(&z);
}

#[test]
fn frames_skippable_frames_and_trailing_bytes() {
    let mut z = frame(&text(70_000, 32), 3, true, true);
    z.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5]);
    z.extend(frame(b"", 3, false, true));
    z.extend(frame(&text(10_000, 33), 19, false, false));
    z.extend_from_slice(b"not a frame");
    round_trip(&z);
}

#[test]
fn zstd_cli_is_exact_or_not_exact() {
    let data = text(500_000, 34);
    for level in ["-3", "-19"] {
        let child = Command::new("zstd")
            .args([level, "-c", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if std::env::var_os("OUK_SKIP_ZSTD").is_some() => {
                eprintln!("zstd not run ({e})");
                return;
            }
            Err(e) => panic!("zstd is needed by this test ({e}); or set OUK_SKIP_ZSTD=1"),
        };
        let mut stdin = child.stdin.take().unwrap();
        let d = data.clone();
        let w = std::thread::spawn(move || stdin.write_all(&d));
        let out = child.wait_with_output().unwrap();
        w.join().unwrap().unwrap();
        assert!(out.status.success());
        match try_round_trip(&out.stdout) {
            Ok(a) => eprintln!("zstd {level}: exact, recipe {} bytes", a.recipe.len()),
            Err(RecompressError::NotExact(m)) => eprintln!("zstd {level}: not exact ({m})"),
            Err(e) => panic!("zstd {level}: {e}"),
        }
    }
}

#[test]
fn other_libzstd_version_is_refused_by_name() {
    let z = frame(&text(5_000, 35), 3, true, true);
    let mut plain = Vec::new();
    let a = ouk_recompress::analyze(&mut &z[..], &mut plain, &Default::default()).unwrap();
    // The version is the varint before the zigzag level; rewrite it to 1.4.0 (10400).
    let mut recipe = a.recipe.clone();
    let v = zstd_safe::version_number();
    let mut enc = Vec::new();
    let mut x = v as u64;
    loop {
        let b = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            enc.push(b);
            break;
        }
        enc.push(b | 0x80);
    }
    let at = recipe.windows(enc.len()).rposition(|w| w == enc).unwrap();
    recipe.splice(at..at + enc.len(), [0xa0, 0x51]); // 10400
    let err = ouk_recompress::rebuild(
        &recipe,
        &mut &plain[..],
        &mut Vec::new(),
        &Default::default(),
    )
    .unwrap_err();
    match err {
        RecompressError::Unsupported(m) => assert!(m.contains("1.4.0"), "{m}"),
        e => panic!("{e}"),
    }
}
