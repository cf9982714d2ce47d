//! zip round trips: archives from Python's zipfile (seekable, unseekable with data
//! descriptors, zip64), the `zip` CLI, and the empty archive.

mod common;

use std::process::Command;

use common::{round_trip, text};

/// Run python3 with `script`, which gets a scratch directory as argv[1] and writes
/// `out.zip` there. A missing python3 fails unless OUK_SKIP_PYTHON3 is set.
fn python_zip(script: &str) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), text(120_000, 21)).unwrap();
    std::fs::write(dir.path().join("b.bin"), text(40_000, 22)).unwrap();
    let status = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .status()
    {
        Ok(s) => s,
        Err(e) if std::env::var_os("OUK_SKIP_PYTHON3").is_some() => {
            eprintln!("python3 not run ({e})");
            return None;
        }
        Err(e) => panic!("python3 is needed by this test ({e}); or set OUK_SKIP_PYTHON3=1"),
    };
    assert!(status.success());
    Some(std::fs::read(dir.path().join("out.zip")).unwrap())
}

const PY_SEEKABLE: &str = r#"
import sys, zipfile, os
d = sys.argv[1]
with zipfile.ZipFile(os.path.join(d, "out.zip"), "w") as z:
    z.write(os.path.join(d, "a.txt"), "pkg/a.txt", compress_type=zipfile.ZIP_DEFLATED)
    z.write(os.path.join(d, "b.bin"), "pkg/b.bin", compress_type=zipfile.ZIP_STORED)
    z.writestr("pkg/c.txt", b"small " * 300, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    z.writestr("pkg/empty", b"", compress_type=zipfile.ZIP_DEFLATED)
"#;

/// Written to a pipe-like object that cannot seek: every member gets a data descriptor
/// and zero sizes in its local header (stored members too).
const PY_UNSEEKABLE: &str = r#"
import sys, zipfile, os, io
class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def seekable(self): return False
    def write(self, b): return self.f.write(b)
d = sys.argv[1]
with open(os.path.join(d, "out.zip"), "wb") as f:
    with zipfile.ZipFile(Unseekable(f), "w") as z:
        for name, ct in [("a.txt", zipfile.ZIP_DEFLATED), ("b.bin", zipfile.ZIP_STORED)]:
            with z.open(zipfile.ZipInfo(name), "w") as w:
                pass
        z.writestr(zipfile.ZipInfo("x"), b"")
        zi = zipfile.ZipInfo("pkg/a.txt"); zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, "w") as w: w.write(open(os.path.join(d, "a.txt"), "rb").read())
        zi = zipfile.ZipInfo("pkg/b.bin"); zi.compress_type = zipfile.ZIP_STORED
        with z.open(zi, "w") as w: w.write(open(os.path.join(d, "b.bin"), "rb").read())
        zi = zipfile.ZipInfo("pkg/a2.txt"); zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, "w", force_zip64=True) as w: w.write(b"zip64 " * 5000)
        zi = zipfile.ZipInfo("pkg/b2.bin"); zi.compress_type = zipfile.ZIP_STORED
        with z.open(zi, "w", force_zip64=True) as w: w.write(b"stored zip64 " * 500)
"#;

const PY_ZIP64: &str = r#"
import sys, zipfile, os
d = sys.argv[1]
with zipfile.ZipFile(os.path.join(d, "out.zip"), "w", allowZip64=True) as z:
    zi = zipfile.ZipInfo("big.txt"); zi.compress_type = zipfile.ZIP_DEFLATED
    with z.open(zi, "w", force_zip64=True) as w: w.write(open(os.path.join(d, "a.txt"), "rb").read())
    zi = zipfile.ZipInfo("big.bin"); zi.compress_type = zipfile.ZIP_STORED
    with z.open(zi, "w", force_zip64=True) as w: w.write(open(os.path.join(d, "b.bin"), "rb").read())
"#;

const PY_EMPTY: &str = r#"
import sys, zipfile, os
zipfile.ZipFile(os.path.join(sys.argv[1], "out.zip"), "w").close()
"#;

/// The plain form must contain the members' decoded text (it was seen through).
fn assert_sees_through(zip: &[u8], needle: &[u8]) {
    let mut plain = Vec::new();
    ouk_recompress::decode(&mut &zip[..], &mut plain, &Default::default()).unwrap();
    assert!(
        plain.windows(needle.len()).filter(|w| *w == needle).count() > 0,
        "the deflated member was not decoded into the plain form"
    );
}

#[test]
fn python_zipfile_stored_and_deflated() {
    let Some(z) = python_zip(PY_SEEKABLE) else {
        return;
    };
    let a = round_trip(&z);
    assert_eq!(a.format, ouk_recompress::Format::Zip);
    assert_sees_through(&z, &b"small ".repeat(50));
    eprintln!("python zip: {} -> recipe {}", z.len(), a.recipe.len());
}

#[test]
fn python_zipfile_unseekable_with_data_descriptors() {
    let Some(z) = python_zip(PY_UNSEEKABLE) else {
        return;
    };
    assert!(
        z.windows(4).any(|w| w == b"PK\x07\x08"),
        "no data descriptors written"
    );
    let a = round_trip(&z);
    assert_sees_through(&z, &b"zip64 ".repeat(50));
    // every deflated member after the stored ones was seen through too
    let mut plain = Vec::new();
    ouk_recompress::decode(&mut &z[..], &mut plain, &Default::default()).unwrap();
    assert!(plain.len() > 120_000 + 40_000 + 30_000, "{}", plain.len());
    eprintln!(
        "python unseekable zip: {} -> recipe {}",
        z.len(),
        a.recipe.len()
    );
}

#[test]
fn python_zipfile_zip64() {
    let Some(z) = python_zip(PY_ZIP64) else {
        return;
    };
    round_trip(&z);
    let mut plain = Vec::new();
    ouk_recompress::decode(&mut &z[..], &mut plain, &Default::default()).unwrap();
    assert!(plain.len() > 160_000, "{}", plain.len());
}

#[test]
fn empty_zip() {
    let Some(z) = python_zip(PY_EMPTY) else {
        return;
    };
    assert_eq!(z.len(), 22);
    let a = round_trip(&z);
    assert_eq!(a.plain_size, 22);
}

#[test]
fn zip_cli() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), text(90_000, 23)).unwrap();
    std::fs::write(dir.path().join("b.txt"), b"tiny").unwrap();
    let out = match Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "-9", "-X", "out.zip", "a.txt", "b.txt"])
        .status()
    {
        Ok(s) => s,
        Err(e) if std::env::var_os("OUK_SKIP_ZIP").is_some() => {
            eprintln!("zip not run ({e})");
            return;
        }
        Err(e) => panic!("zip is needed by this test ({e}); or set OUK_SKIP_ZIP=1"),
    };
    assert!(out.success());
    let z = std::fs::read(dir.path().join("out.zip")).unwrap();
    round_trip(&z);
    // and streamed from stdin (`zip -` writes data descriptors)
    let out = Command::new("sh")
        .current_dir(dir.path())
        .args(["-c", "cat a.txt | zip -q -6 - - > piped.zip"])
        .status()
        .unwrap();
    assert!(out.success());
    let z = std::fs::read(dir.path().join("piped.zip")).unwrap();
    round_trip(&z);
    assert_sees_through(&z, &text(90_000, 23)[..2000]);
}
