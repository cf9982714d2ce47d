//! Writes the synthetic seed inputs of every fuzz target into `CORPUS_DIR/<target>/`.
//!
//! `cargo run --example gen_seeds -- CORPUS_DIR [PACK_FILE]` (run by `seeds.sh`, which also
//! adds files of a real kit). PACK_FILE, when given, is a store pack whose first frames
//! become `pack_frames` seeds. Deterministic: the same sources give the same bytes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::{Aead, KeyInit};
use ouk_delta::content::{DirContent, TreeFile};
use ouk_delta::format::GenerationRef;
use ouk_delta::patch::{ZstdTuning, bsdiff_encode, zstd_encode};
use ouk_delta::plan::{MakeOptions, make_delta};
use ouk_delta::{ChunkSetManifest, GenerationId, ManifestEntry};
use ouk_kit::bundle::{EntrySource, EntrySpec, WriterOptions, write_bundle};
use ouk_kit::manifest::{Artifact, OfflineManifest, SCHEMA};
use ouk_kit::sign::{SigningKey, cosign, dsse_sign, sign_detached_jws};
use ouk_store::{ChunkId, FileDigest};
use sha2::{Digest, Sha256};

struct Out {
    root: PathBuf,
}

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(name), bytes).expect("write seed");
    }
}

fn with_prefix(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(rest);
    v
}

// ----- tar -------------------------------------------------------------------------------

/// One tar header block, ustar (`gnu == false`, with `prefix`) or GNU.
fn tar_header(name: &[u8], prefix: &[u8], typeflag: u8, mode: u32, size: u64, link: &[u8], gnu: bool) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let octal = |field: &mut [u8], v: u64| {
        let w = field.len() - 1;
        let s = format!("{v:0w$o}");
        field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    };
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = typeflag;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    if gnu {
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
    } else {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len().min(155)].copy_from_slice(&prefix[..prefix.len().min(155)]);
    }
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn tar_entry(out: &mut Vec<u8>, h: [u8; 512], data: &[u8]) {
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_end(out: &mut Vec<u8>) {
    out.resize(out.len() + 1024, 0);
}

fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

/// A name the fuzz targets declare with room for `len` bytes.
fn declared_name(stem: &str, len: usize) -> String {
    (0..)
        .map(|i| format!("{stem}{i}.txt"))
        .find(|n| ouk_fuzz::bundle_declared(n).is_some_and(|d| d >= len as u64 && d > 0))
        .expect("some name fits")
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out).expect("gunzip");
    out
}

fn bundles(out: &Out) {
    let small = |path: &str, mode, bytes: &[u8]| EntrySpec {
        path: path.to_owned(),
        mode,
        source: EntrySource::Bytes(bytes.to_vec()),
    };
    let f1 = declared_name("etc/conf", 40);
    let f2 = declared_name("bin/tool", 700);
    let f3 = declared_name("secrets/key", 10);
    let long = declared_name(&format!("{}/", "d".repeat(120)), 5);
    let entries = vec![
        small(&f1, 0o644, b"listen = 127.0.0.1:8080\nworkers = 4\n"),
        small(&f2, 0o755, &[0x7f; 700]),
        small(&f3, 0o600, b"s3cret\n"),
        small(&long, 0o644, b"long\n"),
        small("empty/dir-only-file-is-fine-when-declared-0", 0o644, b""),
    ];
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| ouk_fuzz::bundle_declared(&e.path).is_some())
        .collect();
    let (_, _, gz) = write_bundle(Vec::new(), entries, WriterOptions::default()).expect("bundle");
    let tar = gunzip(&gz);
    for target in ["tar_entries", "unpack"] {
        out.put(target, "bundle-writer.gz", &with_prefix(&[0x00], &gz));
        out.put(target, "bundle-writer.tar", &with_prefix(&[0x01], &tar));
    }

    // Hand-made tars behind valid gzip (mode byte 1): the header features the writer
    // never emits, and each refusal.
    let name = declared_name("pax/", 30);
    let mut pax = Vec::new();
    let recs = format!(
        "{}{}{}",
        pax_record("path", &name),
        pax_record("size", "12"),
        pax_record("mtime", "1700000000.5")
    );
    tar_entry(&mut pax, tar_header(b"PaxHeaders/x", b"", b'x', 0o644, recs.len() as u64, b"", false), recs.as_bytes());
    tar_entry(&mut pax, tar_header(b"placeholder", b"", b'0', 0o640, 0, b"", false), b"hello world\n");
    tar_end(&mut pax);
    let mut ustar = Vec::new();
    let full = declared_name("usr/share/prefix/", 3);
    let leaf = full.trim_start_matches("usr/share/prefix/").to_owned();
    tar_entry(&mut ustar, tar_header(b"usr/", b"", b'5', 0o755, 0, b"", false), b"");
    tar_entry(&mut ustar, tar_header(leaf.as_bytes(), b"usr/share/prefix", b'0', 0o644, 3, b"", false), b"abc");
    tar_end(&mut ustar);
    let mut gnu_long = Vec::new();
    let lname = declared_name(&format!("{}/", "n".repeat(150)), 4);
    let mut ldata = lname.as_bytes().to_vec();
    ldata.push(0);
    tar_entry(&mut gnu_long, tar_header(b"././@LongLink", b"", b'L', 0o644, ldata.len() as u64, b"", true), &ldata);
    tar_entry(&mut gnu_long, tar_header(&lname.as_bytes()[..100], b"", b'0', 0o644, 4, b"", true), b"data");
    tar_end(&mut gnu_long);
    let mut hostile = Vec::new();
    tar_entry(&mut hostile, tar_header(b"dir/", b"", b'5', 0o755, 0, b"", true), b"");
    tar_entry(&mut hostile, tar_header(b"dir/link", b"", b'2', 0o777, 0, b"../../etc/passwd", true), b"");
    tar_end(&mut hostile);
    let mut hardlink = Vec::new();
    tar_entry(&mut hardlink, tar_header(b"hard", b"", b'1', 0o644, 0, b"/etc/shadow", true), b"");
    tar_end(&mut hardlink);
    let mut dotdot = Vec::new();
    tar_entry(&mut dotdot, tar_header(b"../escape.txt", b"", b'0', 0o644, 4, b"", true), b"evil");
    tar_end(&mut dotdot);
    let mut dup = Vec::new();
    let d = declared_name("dup", 2);
    tar_entry(&mut dup, tar_header(d.as_bytes(), b"", b'0', 0o644, 2, b"", true), b"aa");
    tar_entry(&mut dup, tar_header(d.as_bytes(), b"", b'0', 0o644, 2, b"", true), b"bb");
    tar_end(&mut dup);
    let mut setuid = Vec::new();
    let s = declared_name("suid", 1);
    tar_entry(&mut setuid, tar_header(s.as_bytes(), b"", b'0', 0o4755, 1, b"", true), b"x");
    tar_end(&mut setuid);
    for target in ["tar_entries", "unpack"] {
        out.put(target, "pax.tar", &with_prefix(&[0x01], &pax));
        out.put(target, "ustar-prefix.tar", &with_prefix(&[0x01], &ustar));
        out.put(target, "gnu-longname.tar", &with_prefix(&[0x01], &gnu_long));
        out.put(target, "symlink-out.tar", &with_prefix(&[0x01], &hostile));
        out.put(target, "hardlink.tar", &with_prefix(&[0x01], &hardlink));
        out.put(target, "dotdot.tar", &with_prefix(&[0x01], &dotdot));
        out.put(target, "duplicate.tar", &with_prefix(&[0x01], &dup));
        out.put(target, "setuid.tar", &with_prefix(&[0x01], &setuid));
        out.put(target, "trailing-after-gzip.tar", &with_prefix(&[0x03], &ustar));
    }
}

// ----- kit metadata and signatures -------------------------------------------------------

fn small_manifest() -> OfflineManifest {
    let art = |name: &str, body: &[u8]| Artifact {
        name: name.to_owned(),
        sha256: hex::encode(Sha256::digest(body)),
        size: body.len() as u64,
        captured_at: "2025-10-23T00:00:00Z".to_owned(),
    };
    OfflineManifest {
        schema: SCHEMA.to_owned(),
        version: "2025.10.0".to_owned(),
        channel: "edge".to_owned(),
        created_at: "2025-10-23T00:00:00Z".to_owned(),
        generation_id: "f4827148ca77e17f44fd3afdaeccea12a361df39dce68bc268ff127abe84764b".to_owned(),
        notes: Vec::new(),
        artifacts: vec![
            art("config/app.yaml", b"a: 1\n"),
            art("feeds/osv.jsonl", b"{}\n"),
            art("provenance/provenance.intoto.json", b"{}"),
        ],
    }
}

/// A cosign-format encrypted key with cheap scrypt parameters (cosign writes N=32768).
fn cheap_cosign_pem(key: &SigningKey, password: &[u8], log_n: u8) -> String {
    let salt = [7u8; 32];
    let nonce = [9u8; 24];
    let params = scrypt::Params::new(log_n, 8, 1).expect("params");
    let mut k = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut k).expect("scrypt");
    let der = key.to_pkcs8_der().expect("der");
    let ct = XSalsa20Poly1305::new(GenericArray::from_slice(&k))
        .encrypt(GenericArray::from_slice(&nonce), der.as_slice())
        .expect("seal");
    let json = format!(
        r#"{{"kdf":{{"name":"scrypt","params":{{"N":{},"r":8,"p":1}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
        1u64 << log_n,
        Base64::encode_string(&salt),
        Base64::encode_string(&nonce),
        Base64::encode_string(&ct)
    );
    let b64 = Base64::encode_string(json.as_bytes());
    let mut pem = String::from("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    pem
}

fn signatures(out: &Out, fixture: &SigningKey) {
    let m = small_manifest();
    let mbytes = m.to_bytes();
    out.put("offline_manifest", "small.json", &mbytes);
    let mut overflow = m.clone();
    overflow.artifacts[0].size = u64::MAX - 2;
    overflow.artifacts[1].size = 1 << 40;
    out.put("offline_manifest", "huge-sizes.json", &overflow.to_bytes());
    let mut noted = m.clone();
    noted.notes.push(ouk_kit::manifest::Note {
        topic: "policy-gateway".to_owned(),
        path: Some("config/app.yaml".to_owned()),
        text: "Policy Gateway configuration".to_owned(),
    });
    out.put("offline_manifest", "with-notes.json", &noted.to_bytes());

    let meta = format!(
        r#"{{"name":"stella-ops-offline-kit-2025.10.0-edge.tar.gz","kind":"kit","version":"2025.10.0","channel":"edge","sha256":"{}","size":1234,"manifest":{{"name":"manifest/offline-manifest.json","sha256":"{}","size":{}}},"createdAt":"2025-10-23T00:00:00Z","generationId":"{}","signed":false}}"#,
        "ab".repeat(32),
        hex::encode(Sha256::digest(&mbytes)),
        mbytes.len(),
        m.generation_id
    );
    out.put("metadata_json", "unsigned.json", meta.as_bytes());

    let jws = sign_detached_jws(fixture, &mbytes).expect("jws");
    out.put("jws", "small-manifest.jws", &[jws.as_bytes(), b"\0", &mbytes].concat());
    out.put("jws", "empty-payload.jws", &[sign_detached_jws(fixture, b"").expect("jws").as_bytes(), b"\0"].concat());

    let digest: [u8; 32] = Sha256::digest(ouk_fuzz::COSIGN_BLOB).into();
    let sig = cosign::sign_blob_sha256(fixture, &digest).expect("sig");
    out.put("cosign_sig", "sig-valid.txt", &with_prefix(&[0], format!("{sig}\n").as_bytes()));
    out.put("cosign_sig", "pub.pem", &with_prefix(&[3], ouk_fuzz::FIXTURE_PUB.as_bytes()));
    let pkcs8 = fixture.to_pkcs8_pem().expect("pkcs8");
    // Not the fixture: a throwaway key derived deterministically would be nicer, but the
    // fixture's private half is already public test data (testdata/cosign/fixture.key).
    out.put("cosign_sig", "pkcs8.pem", &with_prefix(&[2], pkcs8.as_bytes()));
    out.put(
        "cosign_sig",
        "cosign-cheap-scrypt.key",
        &with_prefix(&[1], cheap_cosign_pem(fixture, ouk_fuzz::FIXTURE_PASSWORD, 4).as_bytes()),
    );
    out.put(
        "cosign_sig",
        "cosign-fixture.key",
        &with_prefix(&[1], include_bytes!("../../testdata/cosign/fixture.key")),
    );

    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"kit.tar.gz","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;
    let env = dsse_sign(fixture, "application/vnd.in-toto+json", statement).expect("dsse");
    out.put("dsse", "statement.json", &serde_json::to_vec(&env).expect("json"));
    let mut two = env.clone();
    two.signatures.insert(0, ouk_kit::sign::EnvelopeSignature { keyid: String::new(), sig: "AAAA".into() });
    out.put("dsse", "two-signatures.json", &serde_json::to_vec_pretty(&two).expect("json"));
}

// ----- deltas ----------------------------------------------------------------------------

fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) -> (Vec<TreeFile>, DirContent) {
    let mut list = Vec::new();
    let mut content = Vec::new();
    for (rel, bytes) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, bytes).expect("write");
        let sha256 = FileDigest::of(bytes);
        list.push(TreeFile { path: (*rel).to_owned(), mode: 0o644, size: bytes.len() as u64, sha256 });
        content.push((sha256, p));
    }
    list.sort_by(|a, b| a.path.cmp(&b.path));
    (list, DirContent::new(content))
}

fn deltas(out: &Out) {
    let reference = ouk_fuzz::patch_reference();
    let mut target = reference.clone();
    for i in (0..target.len()).step_by(300) {
        target[i] ^= 0x5a;
    }
    target.splice(100..100, b"inserted bytes".iter().copied());
    let len = (target.len() as u16).to_le_bytes();
    let fast = ZstdTuning { level: 19, long: false };
    out.put("patch_decoders", "zstd.bin", &with_prefix(&len, &zstd_encode(None, &target, fast).expect("zstd")));
    out.put("patch_decoders", "zstd-ref.bin", &with_prefix(&len, &zstd_encode(Some(&reference), &target, fast).expect("zstd")));
    out.put("patch_decoders", "bsdiff.bin", &with_prefix(&len, &bsdiff_encode(&reference, &target).expect("bsdiff")));
    let (_, x) = ouk_delta::bsdiffx::encode(&reference, &target).expect("bsdiff-lzma");
    out.put("patch_decoders", "bsdiff-lzma.bin", &with_prefix(&len, &x));
    out.put("patch_decoders", "zstd-empty.bin", &with_prefix(&[0, 0], &zstd_encode(None, b"", fast).expect("zstd")));

    // A real delta between two small trees: literal (solid), zstd-ref/bsdiff, baseline.
    let tmp = tempfile::tempdir().expect("tempdir");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i / 1000) as u8).collect();
    let mut big2 = big.clone();
    big2[5000..5100].fill(0);
    let (a_files, a) = write_tree(
        &tmp.path().join("a"),
        &[("bin/app", big.clone()), ("etc/old.conf", b"x = 1\n".to_vec()), ("docs/readme", b"read me\n".to_vec())],
    );
    let (b_files, b) = write_tree(
        &tmp.path().join("b"),
        &[("bin/app", big2), ("etc/new.conf", b"x = 2\ny = 3\n".to_vec()), ("docs/README", b"read me\n".to_vec())],
    );
    let g = |n| GenerationRef { generation: GenerationId([n; 32]), version: Some(format!("2025.10.{n}")) };
    let opts = MakeOptions { level: 3, ..MakeOptions::default() };
    let mut payload = Vec::new();
    let header = make_delta(g(0), &a_files, &a, g(1), &b_files, &b, &opts, &mut payload).expect("make_delta");
    out.put("delta_header", "made.json", &serde_json::to_vec_pretty(&header).expect("json"));
    let hand = format!(
        r#"{{"format":"ouk-delta/2","baseline":{{"generation":"{z}"}},"target":{{"generation":"{o}","version":"2025.10.1"}},"removed":["a/gone"],"files":[{{"path":"a/b","size":3,"sha256":"{z}","source":{{"kind":"baseline"}}}},{{"path":"c","mode":493,"size":5,"source":{{"kind":"pieces","pieces":[{{"size":2,"encoding":"zstd","offset":0,"length":4}},{{"size":3,"encoding":"bsdiff-lzma","reference":{{"path":"a/gone","offset":0,"length":9}},"offset":4,"length":6}}]}}}},{{"path":"d","mode":384,"size":1,"source":{{"kind":"solid"}}}},{{"path":"e","size":2,"source":{{"kind":"trailer"}}}}],"solid":{{"references":[{{"path":"a/gone","offset":1,"length":4}}],"offset":10,"length":2,"size":1}},"trailer":{{"offset":12,"length":2,"size":2}},"payloadSize":14}}"#,
        z = "00".repeat(32),
        o = "11".repeat(32)
    );
    out.put("delta_header", "hand.json", hand.as_bytes());
    let no_removed = hand.replace(r#""removed":["a/gone"],"#, "");
    out.put("delta_header", "hand-no-removed.json", no_removed.as_bytes());
    // Payload pieces of the real delta as patch seeds.
    if let Some(f) = header.files.iter().find(|f| f.path == "bin/app") {
        if let ouk_delta::format::Source::Pieces { pieces } = &f.source {
            for (i, p) in pieces.iter().enumerate() {
                if p.size <= u64::from(u16::MAX) && p.reference.is_none() {
                    let bytes = &payload[p.offset as usize..(p.offset + p.length) as usize];
                    out.put("patch_decoders", &format!("delta-piece-{i}.bin"), &with_prefix(&(p.size as u16).to_le_bytes(), bytes));
                }
            }
        }
    }
}

// ----- store records ---------------------------------------------------------------------

fn store(out: &Out, pack: Option<&Path>) {
    let mut c = zstd::bulk::Compressor::new(3).expect("zstd");
    let text = b"the quick brown fox jumps over the lazy dog; ".repeat(40);
    let noise: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut pack_bytes = b"OUKPACK1\x07\0\0\0\0\0\0\0".to_vec();
    for (name, raw) in [("frame-zstd.bin", &text[..]), ("frame-raw.bin", &noise[..])] {
        let mut f = Vec::new();
        ouk_store::frame::encode_frame(&mut c, &ChunkId::of(raw), raw, &mut f).expect("frame");
        out.put("pack_frames", name, &f);
        pack_bytes.extend_from_slice(&f);
    }
    out.put("pack_frames", "pack-two-frames.bin", &pack_bytes);
    if let Some(p) = pack {
        let bytes = fs::read(p).expect("read pack");
        let frames = ouk_store::pack::scan_pack(&bytes);
        // The pack header and up to three frames, kept under 64 KiB.
        let mut end = ouk_store::pack::PACK_HEADER_LEN as usize;
        for (pos, h) in frames.iter().take(3) {
            let Ok(h) = h else { break };
            let e = *pos as usize + h.frame_len() as usize;
            if e > 64 << 10 {
                break;
            }
            end = e;
        }
        out.put("pack_frames", "real-pack-prefix.bin", &bytes[..end]);
    }

    let entry = |path: &str, n: u8| ManifestEntry {
        path: path.into(),
        mode: 0o644,
        size: u64::from(n) * 1000,
        sha256: FileDigest([n; 32]),
        chunks: vec![ChunkId([n; 32]), ChunkId([n ^ 1; 32])],
    };
    let m = ChunkSetManifest::new(vec![entry("a/b", 1), entry("a/c", 2), entry("z", 3)]).expect("manifest");
    out.put("pack_frames", "okcm-manifest.bin", &m.encode());
    let fr = ouk_store::FileRecord { size: 70_000, chunks: vec![ChunkId([4; 32]), ChunkId([5; 32])] };
    out.put("pack_frames", "okfr-file-record.bin", &ouk_store::envelope::seal(*b"OKFR", 1, &fr));
    let sh = ouk_store::StoreHeader { chunker: ouk_store::ChunkerParams::V1, zstd_level: 3 };
    out.put("pack_frames", "oksh-store-header.bin", &ouk_store::envelope::seal(*b"OKSH", 1, &sh));
    let mut labels = ouk_root::Labels::new();
    labels.insert("version".into(), "2025.10.0".into());
    let gr = ouk_root::GenerationRecord { created_at: 1_700_000_000, files: 3, bytes: 6000, labels };
    out.put("pack_frames", "okgr-generation.bin", &ouk_store::envelope::seal(*b"OKGR", 1, &gr));
}

/// Parts indexes of split kits: valid ones (four parts, one part) and refused ones.
fn parts(out: &Out) {
    use ouk_kit::split::{BundleRef, INDEX_FORMAT, PartRef, PartsIndex, part_name};
    let index = |name: &str, data: &[u8], max: u64| {
        let parts = data
            .chunks(max as usize)
            .enumerate()
            .map(|(i, p)| PartRef {
                name: part_name(name, i + 1),
                size: p.len() as u64,
                sha256: hex::encode(Sha256::digest(p)),
            })
            .collect();
        PartsIndex {
            format: INDEX_FORMAT.to_owned(),
            bundle: BundleRef {
                name: name.to_owned(),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
            },
            max_part_size: max,
            parts,
        }
    };
    let kit = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";
    let data: Vec<u8> = (0..3_011_701u64).map(|i| ((i * 7 + 3) % 256) as u8).collect();
    let four = index(kit, &data, 752_926);
    out.put("parts_index", "four-parts.json", &four.to_bytes());
    let one = index("stella-ouk-2025-10-24.delta.tgz", &[b'x'; 100], 100);
    let mut one = one;
    one.max_part_size = 4_294_967_295;
    out.put("parts_index", "one-part.json", &one.to_bytes());
    let mut overflow = four.clone();
    overflow.max_part_size = u64::MAX;
    overflow.bundle.size = u64::MAX;
    for p in &mut overflow.parts {
        p.size = u64::MAX;
    }
    out.put("parts_index", "overflow.json", &overflow.to_bytes());
    let mut traversal = four;
    traversal.parts[1].name = "../../etc/passwd".to_owned();
    out.put("parts_index", "traversal.json", &traversal.to_bytes());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(root) = args.get(1) else {
        eprintln!("usage: gen_seeds CORPUS_DIR [PACK_FILE]");
        std::process::exit(2);
    };
    let out = Out { root: PathBuf::from(root) };
    let key_pem = include_str!("../../testdata/cosign/fixture.key");
    let fixture = SigningKey::from_pem(key_pem, Some(ouk_fuzz::FIXTURE_PASSWORD)).expect("fixture key");
    bundles(&out);
    signatures(&out, &fixture);
    deltas(&out);
    store(&out, args.get(2).map(Path::new));
    parts(&out);
    mirror(&out);
    pack_index(&out);
    published(&out);
    trust(&out, &fixture);
    let _ = std::io::stdout().flush();
}

/// `pack_index`: index objects (a pack with chunks and a file record, a records-only one)
/// and the object keys the store writes.
fn pack_index(out: &Out) {
    use ouk_store::pack_index::{IndexedChunk, PackIndex, PackName, record_key};
    let pack = PackName::of(b"pack bytes");
    let chunks: Vec<IndexedChunk> = (0..3u8)
        .map(|i| IndexedChunk {
            id: ChunkId::of(&[i]),
            offset: 16 + u64::from(i) * 100,
            frame_len: 100,
            raw_len: 1000,
        })
        .collect();
    let files = vec![(
        FileDigest(Sha256::digest(b"file").into()),
        ouk_store::FileRecord { size: 3000, chunks: chunks.iter().map(|c| c.id).collect() },
    )];
    let with_pack = PackIndex {
        chunker: ouk_store::ChunkerParams::V1,
        pack: Some(pack),
        pack_len: 316,
        chunks,
        files: files.clone(),
    };
    out.put("pack_index", "pack.okpi", &with_pack.encode());
    let records_only = PackIndex { pack: None, pack_len: 0, chunks: Vec::new(), files, ..with_pack };
    out.put("pack_index", "records-only.okpi", &records_only.encode());
    out.put("pack_index", "pack-key.txt", pack.pack_key().as_bytes());
    out.put("pack_index", "index-key.txt", pack.index_key().as_bytes());
    out.put("pack_index", "record-key.txt", record_key("mirror", &[7; 32]).as_bytes());
}

/// `mirror_record`: catalog records, one of each content kind.
fn mirror(out: &Out) {
    use ouk_kit::mirror::{Deflate, GzipRecipe, MirroredBundle, SidecarFile, StoredContent};
    let name = "stella-ops-offline-kit-2025.10.0-edge.tar.gz";
    let tar = MirroredBundle {
        name: name.into(),
        kind: "kit".into(),
        version: "2025.10.0".into(),
        channel: "edge".into(),
        sha256: FileDigest(Sha256::digest(b"bundle").into()),
        size: 1234,
        added_at: 1_760_000_000,
        signed_by: Some("kid".into()),
        content: StoredContent::Tar {
            sha256: FileDigest(Sha256::digest(b"tar").into()),
            size: 10240,
            recipe: GzipRecipe {
                header: ouk_kit::bundle::pgzip::GZIP_HEADER.to_vec(),
                deflate: Deflate::Pgzip { level: 6, block_size: 1 << 20 },
            },
        },
        sidecars: vec![
            SidecarFile {
                path: format!("{name}.sha256"),
                sha256: FileDigest(Sha256::digest(b"sha").into()),
                size: 3,
            },
            SidecarFile {
                path: "manifest/offline-manifest.json".into(),
                sha256: FileDigest(Sha256::digest(b"m").into()),
                size: 1,
            },
        ],
    };
    out.put("mirror_record", "kit-record.bin", &tar.encode());
    let named = b"\x1f\x8b\x08\x08\0\0\0\0\x02\x03kit.tar\0".to_vec();
    let zlib = MirroredBundle {
        content: StoredContent::Tar {
            sha256: FileDigest(Sha256::digest(b"tar").into()),
            size: 10240,
            recipe: GzipRecipe { header: named, deflate: Deflate::Zlib { level: 9 } },
        },
        ..tar.clone()
    };
    out.put("mirror_record", "zlib-record.bin", &zlib.encode());
    // See-through (version 2): one member with a real recipe, as `mirror add` makes it.
    let plain: Vec<u8> = (0..5000u32).flat_map(|i| format!("row {i}\n").into_bytes()).collect();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&plain).unwrap();
    let gz = e.finish().unwrap();
    let mut sink = Vec::new();
    let a = ouk_recompress::analyze(&mut &gz[..], &mut sink, &ouk_recompress::Limits::default()).unwrap();
    let see_through = MirroredBundle {
        content: StoredContent::SeeThrough {
            sha256: FileDigest(Sha256::digest(b"stream").into()),
            size: 10240 + a.plain_size,
            recipe: GzipRecipe {
                header: ouk_kit::bundle::pgzip::GZIP_HEADER.to_vec(),
                deflate: Deflate::Pgzip { level: 6, block_size: 1 << 20 },
            },
            members: vec![ouk_kit::mirror::MemberRecipe {
                offset: 512,
                plain_len: a.plain_size,
                original_len: gz.len() as u64,
                recipe: a.recipe,
            }],
        },
        ..tar.clone()
    };
    out.put("mirror_record", "see-through-record.bin", &see_through.encode());
    let compressed = MirroredBundle { content: StoredContent::Compressed, kind: "delta".into(), ..tar };
    out.put("mirror_record", "compressed-record.bin", &compressed.encode());
}

/// `published_index`: an index as `ouk serve` sends it, and hostile variants.
fn published(out: &Out) {
    let d = "ab".repeat(32);
    let good = serde_json::json!({
        "schema": "ouk-index/1",
        "channels": ["edge"],
        "bundles": [{
            "name": "stella-ops-offline-kit-2025.10.1-edge.tar.gz", "kind": "kit",
            "version": "2025.10.1", "channel": "edge", "createdAt": "2025-10-23T00:00:00Z",
            "generationId": "cd".repeat(32), "sha256": d, "size": 3463358,
            "files": [
                {"path": "stella-ops-offline-kit-2025.10.1-edge.tar.gz", "size": 3463358, "sha256": d},
                {"path": "stella-ops-offline-kit-2025.10.1-edge.tar.gz.sig", "size": 96, "sha256": "01".repeat(32)},
                {"path": "manifest/offline-manifest.json", "size": 900, "sha256": "02".repeat(32)}
            ]
        }, {
            "name": "stella-ouk-2025-10-24.delta.tgz", "kind": "delta",
            "version": "2025.10.2", "channel": "edge", "createdAt": "2025-10-24T00:00:00Z",
            "generationId": "ef".repeat(32), "sha256": "03".repeat(32), "size": 1234,
            "files": [{"path": "stella-ouk-2025-10-24.delta.tgz", "size": 1234, "sha256": "03".repeat(32)}]
        }]
    });
    out.put("published_index", "index.json", &serde_json::to_vec_pretty(&good).expect("json"));
    let mut escape = good.clone();
    escape["bundles"][0]["files"][2]["path"] = "../../etc/cron.d/x".into();
    out.put("published_index", "escape.json", &serde_json::to_vec(&escape).expect("json"));
    let mut absolute = good.clone();
    absolute["bundles"][1]["name"] = "/tmp/x.tgz".into();
    out.put("published_index", "absolute.json", &serde_json::to_vec(&absolute).expect("json"));
}


/// `trust_document`: a canonical version-1 document (mode 0), the fixture-signed version 2
/// that follows the harness's version 1 (mode 1), and the chain 2, 3 (mode 2), version 3
/// rotating to a second key signed by both.
fn trust(out: &Out, fixture: &SigningKey) {
    use ouk_trust::{PublicKey, Role, SignedDocument, TrustDocument};
    let second = fixture.derive_for_role(ouk_kit::sign::KeyRole::Plugin);
    let fixture_pub = PublicKey::from_p256(*fixture.verifying_key().as_p256());
    let second_pub = PublicKey::from_p256(*second.verifying_key().as_p256());
    let doc = |version: u64, key: &PublicKey| {
        let mut d = TrustDocument::new(version, 1_700_000_000 + version as i64, 1_900_000_000);
        d.set_role(Role::Kits, std::slice::from_ref(key), 1);
        d.set_role(Role::Trust, std::slice::from_ref(key), 1);
        d
    };
    let v1 = doc(1, &fixture_pub);
    out.put("trust_document", "v1.json", &with_prefix(&[0], &v1.to_canonical_bytes()));
    let v2 = SignedDocument::signed(&doc(2, &fixture_pub), &[fixture.as_p256()]).expect("v2");
    out.put("trust_document", "v2-envelope.json", &with_prefix(&[1], &v2.to_json()));
    let v3 = SignedDocument::signed(&doc(3, &second_pub), &[fixture.as_p256(), second.as_p256()]).expect("v3");
    let chain = serde_json::to_vec(&vec![v2, v3]).expect("json");
    out.put("trust_document", "chain-2-3.json", &with_prefix(&[2], &chain));
}
