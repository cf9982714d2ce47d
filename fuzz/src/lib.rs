//! The bodies of the `ouk` fuzz targets.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling the function of the same name here, so
//! the same code also runs under plain `cargo test` (`tests/replay.rs` feeds it every file
//! of `corpus/<name>/` and `../testdata/fuzz-regressions/<name>/`), on stable, without
//! libFuzzer.
//!
//! Every function takes arbitrary bytes, calls the public API of the `ouk` crates that
//! parses untrusted input, and checks what the API promises about its result. It never
//! panics unless the library does, or a promise is broken (then it panics on purpose with
//! a message saying which).

use std::borrow::Cow;
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::sync::OnceLock;

use ouk_kit::bundle::{BundleReader, EntryKind, ReadError, ReadLimits};
use ouk_kit::sign::VerifyingKey;
use sha2::{Digest, Sha256};

/// The cosign fixture public key every signature target verifies against.
pub const FIXTURE_PUB: &str = include_str!("../../testdata/cosign/fixture.pub");
/// Password of `testdata/cosign/fixture.key` (and of the small-scrypt seed keys).
pub const FIXTURE_PASSWORD: &[u8] = b"hello";
/// The blob digest `cosign_sig` verifies signatures over: SHA-256 of this text.
pub const COSIGN_BLOB: &[u8] = b"ouk fuzz: the blob signed by the cosign_sig seeds\n";

fn fixture_key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| VerifyingKey::from_pem(FIXTURE_PUB).expect("testdata/cosign/fixture.pub"))
}

fn cosign_digest() -> [u8; 32] {
    Sha256::digest(COSIGN_BLOB).into()
}

// ---------------------------------------------------------------------------------------
// Known library bugs
// ---------------------------------------------------------------------------------------
//
// A bug the fuzzers found and that is not fixed yet would stop every later run at the same
// crash. While its flag is set (none is now: the three found so far are fixed) the harness steps around exactly that crash (checked
// before the call, with the library's own rule), so fuzzing goes on; its minimized input
// is in testdata/fuzz-regressions/<target>/. Once the library is fixed, set the flag to
// false: `cargo test` in fuzz/ then replays the input with nothing in the way.
// `OUK_FUZZ_NO_GUARDS=1` turns every guard off (to check whether a bug is still there).

/// `OfflineManifest::total_bytes` summed `u64` sizes unchecked: "attempt to add with
/// overflow" in debug builds on a manifest whose sizes sum past `u64::MAX`. Fixed in
/// e83d81f (saturating sum).
pub const KNOWN_BUG_MANIFEST_TOTAL_OVERFLOW: bool = false;

/// `ouk_delta::patch::bsdiff_decode` handed the patch to `qbsdiff::Bspatch::new`, whose
/// header check `32 + csize + dsize > patch.len()` overflows on negative/huge
/// sign-magnitude sizes: a panic in debug builds ("attempt to add with overflow",
/// qbsdiff-1.4.4/src/bspatch.rs:133) and in release builds (the sum wraps, then
/// `split_at(csize)` panics, bspatch.rs:138). Fixed in e83d81f (header checked first).
pub const KNOWN_BUG_BSDIFF_HEADER_OVERFLOW: bool = false;

/// `ChunkSetManifest::decode` promised to refuse anything not exactly canonical, but
/// postcard accepts over-long varints (`e8 00` for 104), so two byte strings decoded to
/// the same manifest. Fixed in e83d81f (decode re-encodes and compares).
pub const KNOWN_BUG_MANIFEST_NOT_CANONICAL: bool = false;

/// Whether the harness should step around a known bug (see above).
pub fn guard(flag: bool) -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    flag && !*OFF.get_or_init(|| std::env::var_os("OUK_FUZZ_NO_GUARDS").is_some())
}

/// The header check qbsdiff should make: a bsdiff 4 patch whose control and diff block
/// sizes are non-negative and fit the patch.
pub fn bsdiff_header_sane(patch: &[u8]) -> bool {
    if patch.len() < 32 || &patch[..8] != b"BSDIFF40" {
        return true; // refused by qbsdiff before the sum
    }
    let int = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&patch[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let (c, d) = (int(8), int(16));
    // Sign-magnitude: a set top bit is negative (or -0), i.e. huge as u64.
    c >> 63 == 0
        && d >> 63 == 0
        && 32u64.checked_add(c).and_then(|x| x.checked_add(d)).is_some()
}

// ---------------------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------------------

/// Bound on the decompressed tar stream in the bundle targets.
pub const BUNDLE_MAX_TOTAL: u64 = 1 << 20;
/// Bound on header blocks in the bundle targets.
pub const BUNDLE_MAX_ENTRIES: u64 = 64;
/// Largest declared file size in the bundle targets.
pub const BUNDLE_MAX_DECLARED: u64 = 64 << 10;

/// The fuzz input as the gzip bytes of a bundle. First byte, bit 0: clear, the rest is fed
/// as is (the gzip layer is fuzzed); set, the rest is a tar stream that is gzip-compressed
/// here first (the tar layer is fuzzed behind a valid gzip member). Bit 1 set (with bit 0)
/// appends one byte after the gzip member (trailing garbage).
pub fn bundle_gzip(data: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 0 {
        return Some(Cow::Borrowed(rest));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(rest).ok()?;
    let mut out = gz.finish().ok()?;
    if mode & 2 != 0 {
        out.push(mode);
    }
    Some(Cow::Owned(out))
}

/// The manifest lookup of the bundle targets: names starting with `undeclared` are not in
/// the manifest; every other name is declared with a size that depends on the name, so that
/// both "fits" and "exceeds the declared size" are reachable.
pub fn bundle_declared(path: &str) -> Option<u64> {
    if path.starts_with("undeclared") {
        return None;
    }
    let h = path.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Some(if h % 4 == 0 { 0 } else { BUNDLE_MAX_DECLARED >> (h % 8) })
}

fn bundle_limits() -> ReadLimits {
    ReadLimits {
        max_total_bytes: BUNDLE_MAX_TOTAL,
        max_entries: BUNDLE_MAX_ENTRIES,
    }
}

/// `tar_entries`: [`BundleReader`] over the input, every entry checked against what the
/// reader promises (canonical name, mode, declared size, exact content length), content
/// read in full, in part or not at all (skipped by the reader), and the reader poisoned
/// after an error.
pub fn tar_entries(data: &[u8]) {
    let Some(gz) = bundle_gzip(data) else { return };
    // The read pattern comes from the input too, so the skip path is covered.
    let pattern = data.get(1).copied().unwrap_or(0);
    let mut reader = BundleReader::new(Cursor::new(&gz[..]), bundle_declared, bundle_limits());
    let mut buf = [0u8; 3000];
    let mut index = 0u32;
    let mut header_failed = false;
    let result = loop {
        let mut entry = match reader.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break Ok(()),
            Err(e) => {
                header_failed = true;
                break Err(e);
            }
        };
        index += 1;
        assert!(
            index as u64 <= BUNDLE_MAX_ENTRIES,
            "more entries than max_entries"
        );
        assert!(
            ouk_kit::bundle::path::check(&entry.path).is_ok(),
            "reader yielded a non-canonical name {:?}",
            entry.path
        );
        assert!(entry.mode & !0o777 == 0, "mode {:o} past 0o777", entry.mode);
        match entry.kind {
            EntryKind::Directory => assert_eq!(entry.size, 0, "directory with data"),
            EntryKind::File => {
                let declared = bundle_declared(&entry.path);
                assert!(
                    declared.is_some_and(|d| entry.size <= d),
                    "{:?}: size {} not within declared {declared:?}",
                    entry.path,
                    entry.size
                );
            }
        }
        assert_eq!(entry.remaining(), entry.size);
        // Per entry: read all of it in large reads, or part of it in odd-sized reads and
        // leave the rest for `next_entry` to skip.
        let partial = (pattern >> (index % 8)) & 1 == 1;
        let mut got = 0u64;
        let mut failed = None;
        loop {
            let want = if partial {
                1 + (index as usize * 37) % 700
            } else {
                buf.len()
            };
            match entry.read_chunk(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n as u64;
                    assert!(got <= entry.size, "read past the entry size");
                    if partial && got >= entry.size / 2 {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        assert_eq!(entry.remaining(), entry.size - got);
        if let Some(e) = failed {
            break Err(e);
        }
        if !partial {
            assert_eq!(got, entry.size, "{:?}: short content without error", entry.path);
        }
    };
    assert!(
        reader.position() <= BUNDLE_MAX_TOTAL,
        "read past max_total_bytes"
    );
    match result {
        // A whole bundle stays whole.
        Ok(()) => assert!(matches!(reader.next_entry(), Ok(None))),
        // After a failed header read the reader is poisoned.
        Err(_) if header_failed => assert!(reader.next_entry().is_err(), "not poisoned"),
        Err(_) => {}
    }
}

fn scratch_parent() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("OUK_FUZZ_TMP")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                let shm = Path::new("/dev/shm");
                if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
            });
        let dir = base.join(format!("ouk-fuzz-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Makes everything under `dir` writable and removes it.
fn force_remove(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn walk(p: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(p) else { return };
        if meta.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path());
                }
            }
        }
    }
    walk(dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every path under `dir` (relative), failing on anything that is not a file or directory.
fn walk_tree(dir: &Path, rel: &str, out: &mut Vec<(String, std::fs::Metadata)>) {
    let rd = std::fs::read_dir(dir.join(rel)).expect("read_dir of the unpack tree");
    for e in rd {
        let e = e.expect("dir entry");
        let name = e.file_name().into_string().expect("unpack wrote a non-UTF-8 name");
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = std::fs::symlink_metadata(dir.join(&r)).expect("stat");
        let ft = meta.file_type();
        assert!(ft.is_file() || ft.is_dir(), "unpack created {r:?} of type {ft:?}");
        let is_dir = ft.is_dir();
        out.push((r.clone(), meta));
        if is_dir {
            walk_tree(dir, &r, out);
        }
    }
}

/// `unpack`: [`ouk_kit::bundle::unpack_to_dir`] into a fresh directory; afterwards the
/// scratch parent holds only that directory, the tree holds only files and directories,
/// and on success every file reported is on disk with the reported mode, size and SHA-256.
pub fn unpack(data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let Some(gz) = bundle_gzip(data) else { return };
    let parent = scratch_parent();
    let dir = parent.join("out");
    force_remove(&dir);
    std::fs::create_dir(&dir).expect("create the unpack dir");
    let result = ouk_kit::bundle::unpack_to_dir(
        Cursor::new(&gz[..]),
        &dir,
        &bundle_declared,
        bundle_limits(),
    );
    let names: Vec<_> = std::fs::read_dir(parent)
        .expect("read the scratch parent")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out")], "unpack wrote outside its dir");
    let mut tree = Vec::new();
    walk_tree(&dir, "", &mut tree);
    match result {
        Ok(files) => {
            let on_disk: std::collections::HashMap<&str, &std::fs::Metadata> =
                tree.iter().map(|(p, m)| (p.as_str(), m)).collect();
            for f in &files {
                let meta = on_disk
                    .get(f.path.as_str())
                    .unwrap_or_else(|| panic!("{:?} reported but not on disk", f.path));
                assert!(meta.is_file());
                assert_eq!(meta.len(), f.size, "{:?}: size", f.path);
                assert_eq!(meta.permissions().mode() & 0o7777, f.mode, "{:?}: mode", f.path);
                let bytes = std::fs::read(dir.join(&f.path)).expect("read back");
                assert_eq!(
                    <[u8; 32]>::from(Sha256::digest(&bytes)),
                    f.sha256,
                    "{:?}: sha256",
                    f.path
                );
            }
            let regular = tree.iter().filter(|(_, m)| m.is_file()).count();
            assert_eq!(regular, files.len(), "files on disk that unpack did not report");
        }
        Err(ReadError::Output { .. }) => {}
        Err(_) => {}
    }
    force_remove(&dir);
}

// ---------------------------------------------------------------------------------------
// Kit manifest and metadata
// ---------------------------------------------------------------------------------------

/// `offline_manifest`: [`ouk_kit::manifest::OfflineManifest::parse`]; an accepted
/// manifest is sorted, re-serializes to bytes that parse to the same value, and answers
/// `get` for each of its names.
pub fn offline_manifest(data: &[u8]) {
    use ouk_kit::manifest::OfflineManifest;
    let Ok(m) = OfflineManifest::parse(data) else { return };
    for w in m.artifacts.windows(2) {
        assert!(w[0].name < w[1].name, "accepted unsorted artifacts");
    }
    for a in &m.artifacts {
        assert_eq!(m.get(&a.name), Some(a));
    }
    let again = OfflineManifest::parse(&m.to_bytes()).expect("re-serialized manifest parses");
    assert_eq!(again, m);
    // `total_bytes` is what the verifier sizes its read limits from (kit/src/verify.rs).
    if !guard(KNOWN_BUG_MANIFEST_TOTAL_OVERFLOW)
        || m.artifacts.iter().try_fold(0u64, |s, a| s.checked_add(a.size)).is_some()
    {
        let _ = m.total_bytes();
    }
}

/// `metadata_json`: `<bundle>.metadata.json` ([`ouk_kit::build::KitMetadata`]); an
/// accepted value round-trips through JSON.
pub fn metadata_json(data: &[u8]) {
    use ouk_kit::build::KitMetadata;
    let Ok(m) = serde_json::from_slice::<KitMetadata>(data) else { return };
    let text = serde_json::to_vec(&m).expect("serialize metadata");
    let again: KitMetadata = serde_json::from_slice(&text).expect("re-parse metadata");
    assert_eq!(again, m);
    // The importer orders kit versions from this file (rollback refusal).
    use ouk_kit::import::policy::compare_versions;
    use std::cmp::Ordering;
    let versions = [m.version.as_str(), m.channel.as_str(), "2025.10.0", "2025.10.10", "1.0.0-rc1", ""];
    for a in versions {
        assert_eq!(compare_versions(a, a), Ordering::Equal, "{a:?} not equal to itself");
        for b in versions {
            assert_eq!(
                compare_versions(a, b),
                compare_versions(b, a).reverse(),
                "{a:?} vs {b:?} not antisymmetric"
            );
        }
    }
}

/// `parts_index`: `<bundle>.parts.json` of a split kit
/// ([`ouk_kit::split::PartsIndex::parse`], and [`ouk_kit::split::PartName::of`] on the input
/// as a file name). An accepted index re-encodes to bytes that parse to the same value; its
/// part sizes follow `maxPartSize` and add up to the bundle's size; its part names and its
/// own name classify back to the bundle and the part numbers.
pub fn parts_index(data: &[u8]) {
    use ouk_kit::split::{PartName, PartsIndex, index_name};
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(n) = PartName::of(text) {
            assert!(!n.bundle().is_empty(), "{text:?}: a part name of an empty bundle name");
        }
    }
    let Ok(index) = PartsIndex::parse(data) else { return };
    let again = PartsIndex::parse(&index.to_bytes()).expect("re-parse an accepted index");
    assert_eq!(again, index, "an accepted index round-trips");
    let mut total = 0u64;
    let count = index.parts.len();
    for (i, p) in index.parts.iter().enumerate() {
        assert_eq!(
            PartName::of(&p.name),
            Some(PartName::Part { bundle: &index.bundle.name, number: i + 1 }),
            "part {} name {:?}",
            i + 1,
            p.name
        );
        assert!(p.size >= 1 && p.size <= index.max_part_size, "{} size {}", p.name, p.size);
        assert!(i + 1 == count || p.size == index.max_part_size, "{} is short", p.name);
        total = total.checked_add(p.size).expect("accepted sizes do not overflow");
    }
    assert_eq!(total, index.bundle.size, "accepted sizes add up");
    assert_eq!(
        PartName::of(&index_name(&index.bundle.name)),
        Some(PartName::Index { bundle: &index.bundle.name })
    );
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

/// `jws`: the input is `token NUL payload` (no NUL: all token, empty payload).
/// [`ouk_kit::sign::parse_jws_header`] and [`ouk_kit::sign::verify_detached_jws`] with the
/// fixture key; a verified token has a header that parses and names the key.
pub fn jws(data: &[u8]) {
    let (token, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let token = String::from_utf8_lossy(token);
    let header = ouk_kit::sign::parse_jws_header(&token);
    let keys = std::slice::from_ref(fixture_key());
    let verified = ouk_kit::sign::verify_detached_jws(keys, &token, payload);
    if let Ok(k) = verified {
        let h = header.expect("a verified JWS has a parsable header");
        assert_eq!(h.kid, k.kid());
        assert_eq!(h.alg, "ES256");
        // Streaming gives the same answer.
        ouk_kit::sign::verify_detached_jws_reader(keys, &token, payload)
            .expect("streamed verification agrees");
    }
}

/// Largest scrypt work (`N * r * p`) the harness lets through to the key loader; above it
/// one execution would take from milliseconds (cosign's own N=32768, r=8: ~0.1 s) to
/// minutes (the crate accepts up to 128*N*r = 1 GiB with p = 64).
pub const MAX_HARNESS_SCRYPT_WORK: u64 = 1 << 13;

/// True when every cosign-encrypted PEM block of `text` is decodable here and asks for
/// scrypt work within [`MAX_HARNESS_SCRYPT_WORK`] (or there is no such block).
pub fn scrypt_is_cheap(text: &str) -> bool {
    const BEGIN: &str = "-----BEGIN ";
    let mut rest = text;
    while let Some(i) = rest.find(BEGIN) {
        let after = &rest[i + BEGIN.len()..];
        let Some(label_end) = after.find("-----") else { return true };
        let label = &after[..label_end];
        let body = &after[label_end + 5..];
        rest = body;
        if !label.contains("ENCRYPTED") {
            continue;
        }
        // Whatever the label, anything that might reach scrypt must be proven cheap.
        let end = body.find("-----END ").unwrap_or(body.len());
        let b64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let Ok(json) = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&b64) else {
            // Not strict base64: try to be safe anyway with the lenient unpadded form.
            match <base64ct::Base64Unpadded as base64ct::Encoding>::decode_vec(
                b64.trim_end_matches('='),
            ) {
                Ok(j) => {
                    if !params_cheap(&j) {
                        return false;
                    }
                    continue;
                }
                Err(_) => continue, // the crate's PEM decoder refuses it too
            }
        };
        if !params_cheap(&json) {
            return false;
        }
    }
    true
}

fn params_cheap(json: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        // Not JSON: the crate fails before scrypt. Unless it is JSON with a duplicate
        // key that `Value` takes differently... `Value` keeps the last; serde's derive
        // refuses duplicates, so no scrypt either way.
        return true;
    };
    let p = &v["kdf"]["params"];
    let get = |k: &str| p[k].as_u64();
    match (get("N"), get("r"), get("p")) {
        (Some(n), Some(r), Some(pp)) => n
            .checked_mul(r)
            .and_then(|x| x.checked_mul(pp))
            .is_some_and(|w| w <= MAX_HARNESS_SCRYPT_WORK),
        // Missing or not integers: the crate's typed parse fails before scrypt.
        _ => true,
    }
}

/// `cosign_sig`: first byte picks the API, the rest is text.
/// 0: [`ouk_kit::sign::cosign::verify_blob_sha256`] with the fixture key and a fixed
/// digest; 1: `SigningKey::from_pem` with the fixture password (inputs whose encrypted
/// container asks for slow scrypt are skipped, see [`MAX_HARNESS_SCRYPT_WORK`]); 2:
/// `SigningKey::from_pem` without a password; 3: `VerifyingKey::from_pem`.
pub fn cosign_sig(data: &[u8]) {
    use ouk_kit::sign::{SigningKey, cosign};
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            if cosign::verify_blob_sha256(fixture_key(), &cosign_digest(), &text).is_ok() {
                // Verification is over the digest: the same text verifies again.
                cosign::verify_blob(fixture_key(), COSIGN_BLOB, &text)
                    .expect("streamed verification agrees");
            }
        }
        1 => {
            if !scrypt_is_cheap(&text) {
                return;
            }
            if let Ok(k) = SigningKey::from_pem(&text, Some(FIXTURE_PASSWORD)) {
                // A loaded key signs, and verifies its own signature.
                let sig = cosign::sign_blob_sha256(&k, &cosign_digest()).expect("sign");
                cosign::verify_blob_sha256(&k.verifying_key(), &cosign_digest(), &sig)
                    .expect("own signature verifies");
                assert_eq!(k.kid(), k.verifying_key().kid());
            }
        }
        2 => {
            if let Ok(k) = SigningKey::from_pem(&text, None) {
                let _ = k.kid();
            }
        }
        _ => {
            if let Ok(k) = VerifyingKey::from_pem(&text) {
                let pem = k.to_pem().expect("a loaded key encodes");
                assert_eq!(VerifyingKey::from_pem(&pem).expect("round trip"), k);
                let _ = k.kid();
            }
        }
    }
}

/// `dsse`: an envelope from JSON, verified with the fixture key; a verified payload is the
/// envelope's payload decoded.
pub fn dsse(data: &[u8]) {
    use ouk_kit::sign::{Envelope, dsse_verify};
    let Ok(env) = serde_json::from_slice::<Envelope>(data) else { return };
    let keys = std::slice::from_ref(fixture_key());
    if let Ok(v) = dsse_verify(keys, &env) {
        assert_eq!(v.payload_type, env.payload_type);
        assert_eq!(v.key, fixture_key());
    }
}

// ---------------------------------------------------------------------------------------
// Deltas
// ---------------------------------------------------------------------------------------

/// `delta_header`: `delta/delta.json` ([`ouk_delta::format::DeltaHeader`]): parse,
/// `validate(1 GiB)`, then on success `target_files` (an empty baseline, and one holding
/// the removed paths, with every rebuilt file's digest known, and with none known),
/// `summary`, `block_members`, `block_references`, both blocks' dictionaries, and a JSON
/// round trip.
pub fn delta_header(data: &[u8]) {
    use ouk_delta::format::{Block, DeltaFile, DeltaHeader};
    use ouk_store::FileDigest;
    let Ok(h) = serde_json::from_slice::<DeltaHeader>(data) else { return };
    if h.validate(1 << 30).is_err() {
        return;
    }
    let rebuilt: std::collections::HashMap<String, FileDigest> = h
        .files
        .iter()
        .filter(|f| !f.source.declares_digest())
        .map(|f| (f.path.clone(), FileDigest([7; 32])))
        .collect();
    match h.target_files(&[], &rebuilt) {
        Ok(files) => {
            assert!(h.removed.is_empty(), "removed paths the baseline does not have");
            assert_eq!(files.len(), h.files.len());
        }
        Err(_) => assert!(!h.removed.is_empty()),
    }
    if h.removed.is_empty() && !rebuilt.is_empty() {
        assert!(h.target_files(&[], &Default::default()).is_err(), "a rebuilt file without a digest");
    }
    let s = h.summary();
    assert_eq!(s.files, h.files.len() as u64);
    // What apply derives from the header before decoding each block: its members and its
    // reference prefix (against an empty baseline and one with every removed path).
    let baseline: Vec<_> = h
        .removed
        .iter()
        .map(|p| ouk_delta::content::TreeFile {
            path: p.clone(),
            mode: 0o644,
            size: p.len() as u64,
            sha256: FileDigest([0; 32]),
        })
        .collect();
    for block in [Block::Solid, Block::Trailer] {
        let members = h.block_members(block);
        let mut at = 0u64;
        for (f, off) in &members {
            assert_eq!(*off, at);
            at = at.saturating_add(f.size);
        }
        if let Some(b) = h.block(block) {
            assert_eq!(at, b.size, "validated block size differs from its members");
        }
        let _ = h.block_references(block, &[]);
        let _ = h.block_references(block, &baseline);
        let known = |f: &DeltaFile| rebuilt.get(&f.path).copied();
        assert!(h.dictionary(block, &known).is_ok(), "dictionary with every digest known");
    }
    if let Ok(t) = h.target_files(&baseline, &rebuilt) {
        assert_eq!(t.len(), h.files.len());
    }
    let text = serde_json::to_vec(&h).expect("serialize header");
    let again: DeltaHeader = serde_json::from_slice(&text).expect("re-parse header");
    assert_eq!(again, h);
}

/// The fixed reference of `patch_decoders` (also used to make its seeds).
pub fn patch_reference() -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i / 64) as u8)
        .collect()
}

/// Bound on the expected length in `patch_decoders`.
pub const PATCH_MAX_EXPECTED: u64 = 64 << 10;

/// `patch_decoders`: input is `u16 LE expected length | payload`; the payload goes to
/// `zstd_decode` without and with the reference, to `bsdiff_decode` and to
/// `bsdiffx::decode` (bsdiff-lzma). A success is exactly `expected` bytes.
pub fn patch_decoders(data: &[u8]) {
    use ouk_delta::patch::{bsdiff_decode, zstd_decode};
    let [a, b, payload @ ..] = data else { return };
    let expected = u64::from(u16::from_le_bytes([*a, *b])).min(PATCH_MAX_EXPECTED);
    static REF: OnceLock<Vec<u8>> = OnceLock::new();
    let reference = REF.get_or_init(patch_reference);
    if let Ok(out) = zstd_decode(None, payload, expected) {
        assert_eq!(out.len() as u64, expected);
    }
    if let Ok(out) = zstd_decode(Some(reference), payload, expected) {
        assert_eq!(out.len() as u64, expected);
    }
    if guard(KNOWN_BUG_BSDIFF_HEADER_OVERFLOW) && !bsdiff_header_sane(payload) {
        return;
    }
    if let Ok(out) = bsdiff_decode(reference, payload, expected) {
        assert_eq!(out.len() as u64, expected);
    }
    if let Ok(out) = ouk_delta::bsdiffx::decode(reference, payload, expected) {
        assert_eq!(out.len() as u64, expected);
    }
}

// ---------------------------------------------------------------------------------------
// Store records
// ---------------------------------------------------------------------------------------

/// `pack_frames`: the input as a frame (`decode_frame`), as a pack (`scan_pack`, then
/// `decode_frame` at every offset the scan found), and as a postcard envelope of each
/// record kind ouk persists (`envelope::open`, `ChunkSetManifest::decode`).
pub fn pack_frames(data: &[u8]) {
    use ouk_store::envelope;
    use ouk_store::frame::{HEADER_LEN, decode_frame, decode_header};
    use ouk_store::pack::scan_pack;

    let mut out = vec![7u8];
    match decode_frame(data, &mut out) {
        Ok(h) => {
            assert_eq!(out.len() - 1, h.raw_len as usize);
            assert_eq!(ouk_store::ChunkId::of(&out[1..]), h.id);
        }
        Err(_) => assert_eq!(out, [7u8], "a failed decode left bytes in the output"),
    }

    let mut prev_end = ouk_store::pack::PACK_HEADER_LEN;
    for (pos, h) in scan_pack(data) {
        assert!(pos >= prev_end, "scan went backwards");
        let Ok(h) = h else { break };
        assert!(pos as usize + HEADER_LEN <= data.len());
        assert_eq!(decode_header(&data[pos as usize..]).ok(), Some(h));
        prev_end = pos + h.frame_len();
        let mut raw = Vec::new();
        if decode_frame(&data[pos as usize..], &mut raw).is_ok() {
            assert_eq!(raw.len(), h.raw_len as usize);
        }
    }

    if let Ok(m) = ouk_delta::ChunkSetManifest::decode(data) {
        // Canonical: exactly one encoding per manifest.
        if !guard(KNOWN_BUG_MANIFEST_NOT_CANONICAL) {
            assert_eq!(m.encode(), data, "a decoded manifest re-encodes to other bytes");
        }
    }
    let kind: [u8; 4] = data.get(..4).and_then(|k| k.try_into().ok()).unwrap_or_default();
    match &kind {
        b"OKSH" => {
            let _ = envelope::open::<ouk_store::StoreHeader>(kind, 1, data);
        }
        b"OKFR" => {
            let _ = envelope::open::<ouk_store::FileRecord>(kind, 1, data);
        }
        b"OKGR" => {
            let _ = envelope::open::<ouk_root::GenerationRecord>(kind, 1, data);
        }
        b"OKAC" => {
            let _ = envelope::open::<ouk_root::Activation>(kind, 1, data);
        }
        _ => {
            let _ = envelope::open::<Vec<ouk_delta::ManifestEntry>>(*b"OKCM", 1, data);
        }
    }
}

/// Reads a whole file of at most `max` bytes (for tests and tools).
pub fn read_small(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// `pack_index`: a pack-index object (`OKPI` envelope) of an object-storage store, read
/// from a bucket that anyone with write access to it may have filled. An accepted object
/// lists only distinct chunks inside its pack (past the pack header, frames no longer than
/// a frame can be) and round-trips; the object-key parsers accept only the names the
/// store writes (the input as text).
pub fn pack_index(data: &[u8]) {
    use ouk_store::pack_index::{
        PackIndex, parse_index_key, parse_pack_key, parse_record_key, record_key,
    };
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(n) = parse_pack_key(text) {
            assert_eq!(n.pack_key(), text, "a pack key parses back to itself");
        }
        if let Some(n) = parse_index_key(text) {
            assert_eq!(n.index_key(), text, "an index key parses back to itself");
        }
        if let Some(k) = parse_record_key("mirror", text) {
            assert_eq!(record_key("mirror", &k), text, "a record key parses back to itself");
        }
    }
    let Ok(index) = PackIndex::decode(data) else { return };
    let mut ids = std::collections::HashSet::new();
    for c in &index.chunks {
        let end = c.offset.checked_add(u64::from(c.frame_len)).expect("no overflow past validate");
        assert!(c.offset >= ouk_store::pack::PACK_HEADER_LEN && end <= index.pack_len);
        assert!(u64::from(c.frame_len) <= ouk_store::frame::MAX_FRAME_LEN);
        assert!(ids.insert(c.id), "chunk {} twice", c.id);
    }
    assert!(index.pack.is_some() || index.chunks.is_empty());
    let again = PackIndex::decode(&index.encode()).expect("a re-encoded index decodes");
    assert_eq!(again, index);
}

/// `mirror_record`: a mirror catalog record (`OKMB` envelope) read back from a root's
/// index, which may be damaged. An accepted record names only safe paths (export writes
/// them under `--output-dir`), carries a usable recipe, and re-encodes to the same bytes.
pub fn mirror_record(data: &[u8]) {
    use ouk_kit::mirror::{MirroredBundle, StoredContent};
    let Ok(r) = MirroredBundle::decode(data) else { return };
    assert!(!r.name.contains('/') && r.name != "." && r.name != "..", "unsafe name {:?}", r.name);
    for s in &r.sidecars {
        assert!(
            !s.path.starts_with('/') && s.path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "unsafe sidecar path {:?}",
            s.path
        );
    }
    if let StoredContent::Tar { recipe, .. } = &r.content {
        assert!(recipe.validate().is_ok());
        // The recipe's compressor starts on any accepted recipe.
        let mut c = recipe.compressor(Vec::new(), 1).expect("an accepted recipe compresses");
        c.write_all(b"ouk").expect("compress");
        c.finish().expect("finish");
    }
    if let StoredContent::SeeThrough { recipe, members, size, .. } = &r.content {
        assert!(recipe.validate().is_ok());
        // Accepted members are sorted, disjoint and inside the stored stream.
        assert!(ouk_kit::mirror::seethrough::validate_members(members, *size).is_ok());
        let mut end = 0u64;
        for m in members {
            assert!(m.offset >= end && m.plain_len > 0, "member at {} after {end}", m.offset);
            end = m.offset + m.plain_len;
            assert!(end <= *size);
        }
    }
    if let StoredContent::Delta { base, target, .. } = &r.content {
        // An accepted delta record is never its own base and rebuilds a tar or
        // see-through stream.
        assert_ne!(*base, r.sha256);
        assert!(matches!(**target, StoredContent::Tar { .. } | StoredContent::SeeThrough { .. }));
    }
    assert_eq!(MirroredBundle::decode(&r.encode()).expect("re-decode"), r);
}

/// `mirror_stream_delta`: a mirror stream delta (`OKMD`, `ouk_kit::mirror::streamdelta`) read
/// back from the store, which may be damaged, applied to a base. Input: byte 0 = `n`, the
/// next `16 n` bytes the base, the rest the patch. Applying never panics, and what it
/// rebuilds has the length its checked header declares.
pub fn mirror_stream_delta(data: &[u8]) {
    use ouk_kit::mirror::streamdelta;
    use std::io::Write;
    let Some((&n, rest)) = data.split_first() else { return };
    let (base, patch) = rest.split_at((usize::from(n) * 16).min(rest.len()));
    let file = |bytes: &[u8]| {
        let mut f = tempfile::tempfile().expect("scratch file");
        f.write_all(bytes).expect("write scratch");
        f
    };
    let (b, p) = (file(base), file(patch));
    let mut out = Vec::new();
    if let Ok(len) = streamdelta::apply(&b, base.len() as u64, &p, patch.len() as u64, &mut out) {
        assert_eq!(out.len() as u64, len);
        let (header, _) = streamdelta::read_header(&p, patch.len() as u64).expect("header re-reads");
        assert_eq!(header.target_len, len);
    }
}

/// `published_index`: the `index.json` a server sends to `ouk kit pull`
/// ([`ouk_transport::index::PublishedIndex::parse`]). An accepted index names only plain
/// relative paths (so a pull cannot write outside its destination), lists each bundle
/// first among its own files with the bundle's digest and size, round-trips through JSON,
/// and `select` / `file` answer without panicking.
pub fn published_index(data: &[u8]) {
    use ouk_transport::index::{PublishedIndex, is_plain_path};
    let Ok(index) = PublishedIndex::parse(data) else { return };
    for b in &index.bundles {
        assert!(is_plain_path(&b.name) && !b.name.contains('/'), "bundle name {:?}", b.name);
        let first = b.files.first().expect("an accepted bundle lists itself");
        assert_eq!((&first.path, &first.sha256, first.size), (&b.name, &b.sha256, b.size));
        for f in &b.files {
            assert!(is_plain_path(&f.path), "path {:?}", f.path);
            assert!(!f.path.split('/').any(|s| s == ".." || s == "."), "path {:?}", f.path);
            assert_eq!(index.file(&f.path).map(|g| &g.path), Some(&f.path));
        }
    }
    for kind in ["kit", "delta"] {
        let _ = index.select("latest", kind, None);
        if let Some(b) = index.bundles.first() {
            let _ = index.select(&b.version, kind, Some(&b.channel));
        }
    }
    let text = serde_json::to_vec(&index).expect("serialize index");
    let again = PublishedIndex::parse(&text).expect("re-parse an accepted index");
    assert_eq!(again, index, "an accepted index round-trips");
}

/// `ouk quota consume --subject ...`: the subject parser and the offline JWT verifier,
/// against the cosign fixture key (the trust store of the seeds), at a fixed clock
/// (2025-10-24T23:59:50Z). Promises: nothing panics; a token that verifies names the
/// fixture key and is not expired at the clock; a subject that resolves to anonymous
/// says why when it was a token; the resolved subject's Debug form never shows the token.
pub fn quota_subject(data: &[u8]) {
    use ouk_kit::quota::{SubjectArg, SubjectClass, parse_subject, resolve, verify_token};
    const NOW: i64 = 1_761_350_390;
    let text = String::from_utf8_lossy(data);
    let keys = std::slice::from_ref(fixture_key());
    let Ok(arg) = parse_subject(&text) else { return };
    let resolved = resolve(&arg, None, Ok(keys), NOW);
    if let SubjectArg::Token(token) = &arg {
        match verify_token(keys, token, NOW) {
            Ok(v) => {
                assert_eq!(v.kid, fixture_key().kid());
                assert!(v.exp.is_none_or(|exp| NOW < exp), "an expired token verified");
                assert_eq!(resolved.class, SubjectClass::Token);
            }
            Err(_) => {
                assert_eq!(resolved.class, SubjectClass::Anonymous);
                assert!(resolved.fallback_reason.is_some(), "a refused token without a reason");
            }
        }
        if token.len() >= 8 {
            assert!(!format!("{resolved:?}").contains(token.as_str()), "Debug shows the token");
        }
    }
}

/// `feed_rows`: the feed row scanner (`kit::feeds::scan::RowSplitter`, JSON lines or a
/// JSON array, told apart by the first byte) and the row parser (`indexer::parse_row`).
/// Promises: no panic; rows come out with non-decreasing 1-based line numbers no larger
/// than the input's line count; a row cut out is at most `MAX_ROW_BYTES`; a parsed row has
/// a non-empty id within its bound and a hash equal to the canonical hash of the row
/// reparsed from its own canonical JSON (canonical form is a fixed point).
pub fn feed_rows(data: &[u8]) {
    use ouk_kit::feeds::canonical::{canonical_bytes, row_hash};
    use ouk_kit::feeds::indexer::{MAX_ID_BYTES, parse_row};
    use ouk_kit::feeds::scan::{Batch, MAX_ROW_BYTES, RowSplitter};
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let id_fields = ouk_kit::feeds::IndexOptions::default().id_fields;
    let mut s = RowSplitter::new(std::io::BufReader::with_capacity(7, data));
    let mut batch = Batch::default();
    let mut last_line = 0u64;
    let mut scratch = ouk_kit::feeds::indexer::RowScratch::default();
    loop {
        let more = match s.next_batch(&mut batch, 64) {
            Ok(m) => m,
            Err(_) => return,
        };
        for (i, (raw, range)) in batch.rows.iter().enumerate() {
            assert!(raw.line >= last_line && raw.line >= 1 && raw.line <= lines, "line {} after {last_line} (of {lines})", raw.line);
            last_line = raw.line;
            assert!(range.len() <= MAX_ROW_BYTES + 1);
            if raw.bad.is_some() {
                assert!(range.is_empty(), "a bad row kept bytes");
                continue;
            }
            if let Ok(row) = parse_row(batch.bytes(i), &id_fields, &mut scratch) {
                assert!(!row.id.is_empty() && row.id.len() <= MAX_ID_BYTES);
                let v: serde_json::Value = serde_json::from_slice(batch.bytes(i)).expect("parsed once");
                let canon = canonical_bytes(&v);
                let again: serde_json::Value = serde_json::from_slice(&canon).expect("canonical JSON parses");
                assert_eq!(canonical_bytes(&again), canon, "canonical form is not a fixed point");
                assert_eq!(row_hash(&again), row.hash);
            }
        }
        if !more {
            return;
        }
    }
}

/// `feed_index`: `kit::feeds::FeedIndexReader` over untrusted bytes, and the audit.
/// Promises: no panic; what the reader accepts, the writer accepts item by item and the
/// rewritten index reads back to the same items; the audit of an accepted index counts
/// every feed and row and never more conflicts than rows.
pub fn feed_index(data: &[u8]) {
    use ouk_kit::feeds::{FeedIndexReader, FeedIndexWriter, IndexItem};
    let read = |bytes: &[u8]| -> Option<Vec<IndexItem>> {
        let mut r = FeedIndexReader::new(bytes).ok()?;
        let mut items = Vec::new();
        loop {
            match r.next_item() {
                Ok(Some(i)) => items.push(i),
                Ok(None) => return Some(items),
                Err(_) => return None,
            }
        }
    };
    let Some(items) = read(data) else { return };
    let mut w = FeedIndexWriter::new(Vec::new()).expect("writer");
    for item in &items {
        match item {
            IndexItem::Feed(h) => w.begin_feed(h).expect("the writer refuses a header the reader accepted"),
            IndexItem::Row(r) => w.push_row(r).expect("the writer refuses a row the reader accepted"),
        }
    }
    let bytes = w.finish().expect("the writer refuses an end the reader accepted");
    assert_eq!(read(&bytes).as_ref(), Some(&items), "rewritten index reads differently");
    let report = ouk_kit::feeds::audit(|| Ok(data), 4).expect("audit of an accepted index");
    let rows = items.iter().filter(|i| matches!(i, IndexItem::Row(_))).count() as u64;
    assert_eq!(report.rows, rows);
    assert_eq!(report.feeds, items.len() as u64 - rows);
    assert!(report.conflicts <= rows && report.first.len() <= 4);
}

// ---------------------------------------------------------------------------------------
// Recompression (ouk-recompress)
// ---------------------------------------------------------------------------------------

/// Limits of the recompress targets: small, so a bomb is found in microseconds.
const RECOMPRESS_LIMITS: ouk_recompress::Limits = ouk_recompress::Limits {
    max_plain: 1 << 20,
    max_ratio: 256,
};

/// A writer that counts and drops (the bound on what rebuild writes is the promise).
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `recompress_rebuild`: input is `u16 LE recipe length | recipe | plain form`. `rebuild`
/// must not panic and never write more than the limits allow (the plain bound plus the
/// room left for incompressible data); a success wrote what it says.
pub fn recompress_rebuild(data: &[u8]) {
    let [a, b, rest @ ..] = data else { return };
    let n = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (recipe, plain) = rest.split_at(n);
    let mut out = CountingSink(0);
    let l = &RECOMPRESS_LIMITS;
    let result = ouk_recompress::rebuild(recipe, &mut &plain[..], &mut out, l);
    let bound = l.max_plain + l.max_plain / 16 + (1 << 20);
    assert!(
        out.0 <= bound,
        "rebuild wrote {} bytes, past {bound}",
        out.0
    );
    if let Ok(written) = result {
        assert_eq!(written, out.0, "rebuild's count differs from what it wrote");
    }
}

/// `recompress_decode`: the input as a compressed file. `decode` and `analyze` must not
/// panic, must stay within the limits, must agree on the plain form, and a recipe from
/// `analyze` must rebuild the input byte for byte (that is what `Ok` promises).
pub fn recompress_decode(data: &[u8]) {
    let l = &RECOMPRESS_LIMITS;
    let mut decoded = Vec::new();
    let d = ouk_recompress::decode(&mut &data[..], &mut decoded, l);
    assert!(
        decoded.len() as u64 <= l.max_plain + (256 << 10),
        "decode passed max_plain"
    );
    let mut plain = Vec::new();
    let Ok(a) = ouk_recompress::analyze(&mut &data[..], &mut plain, l) else {
        return;
    };
    assert!(d.is_ok(), "analyze accepted what decode refused");
    assert!(
        plain == decoded,
        "analyze and decode give different plain forms"
    );
    let mut out = Vec::new();
    ouk_recompress::rebuild(&a.recipe, &mut &plain[..], &mut out, l)
        .expect("rebuild of analyze's own recipe");
    assert!(
        out == data,
        "rebuild of analyze's own recipe is not the input"
    );
}

// ---------------------------------------------------------------------------------------
// Trust documents
// ---------------------------------------------------------------------------------------

/// `trust_document`: a trust document as a host receives it (ouk-trust). Byte 0 selects
/// the reading of the rest: 0, canonical document bytes
/// ([`ouk_trust::TrustDocument::from_canonical_bytes`]); 1, one DSSE envelope
/// ([`ouk_trust::SignedDocument::parse`], [`ouk_trust::verify_first`], and
/// [`ouk_trust::verify_next`] from a version-1 document trusting the fixture key); other, a
/// JSON array of envelopes applied as a chain to that document. An accepted document
/// re-encodes to exactly its bytes and validates; an accepted chain moves one version per
/// link, and never to a document the fixture key did not sign.
pub fn trust_document(data: &[u8]) {
    use ouk_trust::{Role, SignedDocument, TrustDocument, apply_chain, verify_first, verify_next};
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = ouk_trust::PublicKey::from_p256(
        *fixture_key().as_p256(),
    );
    let mut current = TrustDocument::new(1, 1_700_000_000, 1_900_000_000);
    current.set_role(Role::Kits, std::slice::from_ref(&fixture), 1);
    current.set_role(Role::Trust, std::slice::from_ref(&fixture), 1);
    match mode {
        0 => {
            if let Ok(doc) = TrustDocument::from_canonical_bytes(rest) {
                assert_eq!(doc.to_canonical_bytes(), rest);
                doc.validate().expect("an accepted document is valid");
            }
        }
        1 => {
            let Ok(env) = SignedDocument::parse(rest) else { return };
            if let Ok(v) = verify_first(&env) {
                v.document.validate().expect("valid");
            }
            if let Ok(v) = verify_next(&current, &env) {
                assert_eq!(v.document.version, 2);
                assert!(env.signatures.iter().any(|s| s.keyid == fixture.kid()));
            }
        }
        _ => {
            let Ok(links) = serde_json::from_slice::<Vec<SignedDocument>>(rest) else { return };
            if let Ok(out) = apply_chain(&current, &links) {
                for (i, v) in out.applied.iter().enumerate() {
                    assert_eq!(v.document.version, i as u64 + 2);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The delta's record tier
// ---------------------------------------------------------------------------------------

/// `record_cutter`: byte 0 even: the rest is cut by `delta::records::cut`, whose segments
/// must tile it. Odd: bytes 1-2 (u16 LE) split the rest into reference and target; the
/// record patch between them (when the tier applies) must rebuild the target exactly, and
/// the rest read as a hostile patch against the reference must decode to the declared
/// length or be refused, never panic.
pub fn record_cutter(data: &[u8]) {
    use ouk_delta::patch::ZstdTuning;
    use ouk_delta::records::{cut, decode, encode};
    let [mode, rest @ ..] = data else { return };
    if mode & 1 == 0 {
        let mut at = 0;
        for s in cut(rest) {
            assert_eq!(s.start, at);
            assert!(s.end >= s.start && s.end <= rest.len());
            at = s.end;
        }
        assert_eq!(at, rest.len());
        return;
    }
    let [a, b, body @ ..] = rest else { return };
    let split = usize::from(u16::from_le_bytes([*a, *b])).min(body.len());
    let (reference, target) = body.split_at(split);
    let fast = ZstdTuning {
        level: 1,
        long: false,
    };
    if let Ok(Some(patch)) = encode(reference, target, fast) {
        let out = decode(reference, &patch, target.len() as u64).expect("own patch decodes");
        assert!(out == target, "record patch rebuilt other bytes");
    }
    let expected = (target.len() as u64).min(PATCH_MAX_EXPECTED);
    if let Ok(out) = decode(reference, target, expected) {
        assert_eq!(out.len() as u64, expected);
    }
}

/// `dsse_plain`: the plain form of a DSSE envelope in a delta block
/// (`ouk_delta::envelope`). Byte 0 even: the rest is a file; when it has a plain form, that
/// form re-encodes to the file byte for byte. Odd: `u16 LE` declared size, then a hostile
/// plain form; a re-encoding that succeeds has exactly the declared size.
pub fn dsse_plain(data: &[u8]) {
    use ouk_delta::envelope::{from_plain, to_plain};
    let [mode, rest @ ..] = data else { return };
    if mode & 1 == 0 {
        if let Some(plain) = to_plain(rest) {
            assert!(plain.len() <= rest.len(), "plain form larger than its file");
            let out = from_plain(&plain, rest.len() as u64, "f").expect("own plain form");
            assert!(out == rest, "plain form re-encoded to other bytes");
        }
        return;
    }
    let [a, b, plain @ ..] = rest else { return };
    let size = u64::from(u16::from_le_bytes([*a, *b]));
    if let Ok(out) = from_plain(plain, size, "f") {
        assert_eq!(out.len() as u64, size);
    }
}
