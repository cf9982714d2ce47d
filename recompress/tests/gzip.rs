//! gzip round trips: analyze -> rebuild is the input, decode is analyze's plain form, for
//! deflate from many producers.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{round_trip, text};

fn flate2_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Run a compressor CLI over `data` (stdin to stdout). A missing tool fails the test
/// unless OUK_SKIP_<TOOL> is set.
pub fn cli(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let skip = format!("OUK_SKIP_{}", tool.to_uppercase());
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if std::env::var_os(&skip).is_some() => {
            eprintln!("{tool} not run ({e}); {skip} is set");
            return None;
        }
        Err(e) => panic!("{tool} is needed by this test ({e}); install it or set {skip}=1"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    Some(out.stdout)
}

#[test]
fn flate2_zlib_rs_levels() {
    let data = text(300_000, 1);
    for level in [1, 6, 9] {
        let gz = flate2_gzip(&data, level);
        let a = round_trip(&gz);
        eprintln!("flate2 -{level}: {} -> recipe {}", gz.len(), a.recipe.len());
    }
}
