//! Replays every committed input through its fuzz target body, on stable, without
//! libFuzzer: the seed corpora (`fuzz/corpus/<target>/`) and the crash regressions
//! (`testdata/fuzz-regressions/<target>/`). `cd fuzz && cargo test`.
//!
//! Regressions of library bugs that are not fixed yet pass because the harness steps
//! around them (the `KNOWN_BUG_*` flags in src/lib.rs); `OUK_FUZZ_NO_GUARDS=1 cargo test`
//! shows which of them still crash.

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("tar_entries", ouk_fuzz::tar_entries),
    ("unpack", ouk_fuzz::unpack),
    ("offline_manifest", ouk_fuzz::offline_manifest),
    ("metadata_json", ouk_fuzz::metadata_json),
    ("jws", ouk_fuzz::jws),
    ("cosign_sig", ouk_fuzz::cosign_sig),
    ("dsse", ouk_fuzz::dsse),
    ("delta_header", ouk_fuzz::delta_header),
    ("patch_decoders", ouk_fuzz::patch_decoders),
    ("pack_frames", ouk_fuzz::pack_frames),
    ("parts_index", ouk_fuzz::parts_index),
    ("mirror_record", ouk_fuzz::mirror_record),
    ("mirror_stream_delta", ouk_fuzz::mirror_stream_delta),
    ("pack_index", ouk_fuzz::pack_index),
    ("published_index", ouk_fuzz::published_index),
    ("quota_subject", ouk_fuzz::quota_subject),
    ("feed_rows", ouk_fuzz::feed_rows),
    ("feed_index", ouk_fuzz::feed_index),
    ("recompress_rebuild", ouk_fuzz::recompress_rebuild),
    ("recompress_decode", ouk_fuzz::recompress_decode),
    ("trust_document", ouk_fuzz::trust_document),
    ("record_cutter", ouk_fuzz::record_cutter),
    ("dsse_plain", ouk_fuzz::dsse_plain),
];

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    v.sort();
    v
}

#[test]
fn replay_seed_corpora() {
    let mut total = 0;
    for (name, run) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let inputs = files(&dir);
        assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
        for p in inputs {
            let bytes = std::fs::read(&p).expect("read seed");
            run(&bytes);
            total += 1;
        }
    }
    eprintln!("replayed {total} seeds");
}

#[test]
fn replay_crash_regressions() {
    let root = fuzz_dir().join("../testdata/fuzz-regressions");
    let mut failed = Vec::new();
    for (name, run) in TARGETS {
        for p in files(&root.join(name)) {
            let bytes = std::fs::read(&p).expect("read regression");
            eprintln!("{name}: {}", p.display());
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                failed.push(format!("{name}: {}", p.display()));
            }
        }
    }
    assert!(failed.is_empty(), "crashing regressions:\n{}", failed.join("\n"));
}

fn seed(target: &str, file: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join("corpus").join(target).join(file))
        .unwrap_or_else(|e| panic!("{target}/{file}: {e} (run fuzz/seeds.sh)"))
}

/// The seeds reach the deep paths: the valid ones are accepted by the library.
#[test]
fn valid_seeds_are_accepted() {
    use ouk_kit::bundle::{BundleReader, ReadLimits};
    use std::io::Read;

    let index = ouk_transport::index::PublishedIndex::parse(&seed("published_index", "index.json"))
        .expect("published_index/index.json");
    assert_eq!(index.bundles.len(), 2);
    for hostile in ["escape.json", "absolute.json"] {
        assert!(ouk_transport::index::PublishedIndex::parse(&seed("published_index", hostile)).is_err(), "{hostile}");
    }

    // The see-through mirror record (OKMB v2) decodes, so the fuzzer starts past its member checks.
    let record = ouk_kit::mirror::MirroredBundle::decode(&seed("mirror_record", "see-through-record.bin"))
        .expect("mirror_record/see-through-record.bin");
    assert!(matches!(record.content, ouk_kit::mirror::StoredContent::SeeThrough { .. }));

    for file in ["bundle-writer.gz", "bundle-writer.tar", "pax.tar", "ustar-prefix.tar", "gnu-longname.tar"] {
        let data = seed("tar_entries", file);
        let gz = ouk_fuzz::bundle_gzip(&data).expect("gzip");
        let limits = ReadLimits { max_total_bytes: ouk_fuzz::BUNDLE_MAX_TOTAL, max_entries: ouk_fuzz::BUNDLE_MAX_ENTRIES };
        let mut r = BundleReader::new(&gz[..], ouk_fuzz::bundle_declared, limits);
        let mut n = 0;
        while let Some(mut e) = r.next_entry().unwrap_or_else(|e| panic!("{file}: {e}")) {
            let mut v = Vec::new();
            e.read_to_end(&mut v).expect("content");
            n += 1;
        }
        assert!(n > 0, "{file}: no entries");
    }
    for file in ["symlink-out.tar", "hardlink.tar", "dotdot.tar", "duplicate.tar", "setuid.tar", "trailing-after-gzip.tar"] {
        let data = seed("tar_entries", file);
        let gz = ouk_fuzz::bundle_gzip(&data).expect("gzip");
        let limits = ReadLimits { max_total_bytes: 1 << 20, max_entries: 64 };
        let mut r = BundleReader::new(&gz[..], ouk_fuzz::bundle_declared, limits);
        let refused = loop {
            match r.next_entry() {
                Ok(Some(mut e)) => {
                    let _ = std::io::copy(&mut e, &mut std::io::sink());
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert!(refused, "{file} was accepted");
    }

    for file in ["small.json", "kit-manifest.json"] {
        ouk_kit::manifest::OfflineManifest::parse(&seed("offline_manifest", file)).expect(file);
    }
    for file in ["unsigned.json", "kit.metadata.json"] {
        serde_json::from_slice::<ouk_kit::build::KitMetadata>(&seed("metadata_json", file)).expect(file);
    }
    let key = ouk_kit::sign::VerifyingKey::from_pem(ouk_fuzz::FIXTURE_PUB).expect("pub");
    for file in ["small-manifest.jws", "empty-payload.jws", "kit-manifest.jws"] {
        let data = seed("jws", file);
        let i = data.iter().position(|&b| b == 0).expect("NUL");
        let token = std::str::from_utf8(&data[..i]).expect("utf8");
        ouk_kit::sign::verify_detached_jws(std::slice::from_ref(&key), token, &data[i + 1..]).expect(file);
    }
    let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), ouk_fuzz::COSIGN_BLOB)).into();
    let sig = seed("cosign_sig", "sig-valid.txt");
    ouk_kit::sign::cosign::verify_blob_sha256(&key, &digest, std::str::from_utf8(&sig[1..]).expect("utf8")).expect("sig");
    let cheap = seed("cosign_sig", "cosign-cheap-scrypt.key");
    let text = std::str::from_utf8(&cheap[1..]).expect("utf8");
    assert!(ouk_fuzz::scrypt_is_cheap(text));
    let k = ouk_kit::sign::SigningKey::from_pem(text, Some(ouk_fuzz::FIXTURE_PASSWORD)).expect("cheap key");
    assert_eq!(k.verifying_key(), key);
    let fixture = seed("cosign_sig", "cosign-fixture.key");
    assert!(!ouk_fuzz::scrypt_is_cheap(std::str::from_utf8(&fixture[1..]).expect("utf8")));
    for file in ["pkcs8.pem"] {
        let d = seed("cosign_sig", file);
        ouk_kit::sign::SigningKey::from_pem(std::str::from_utf8(&d[1..]).expect("utf8"), None).expect(file);
    }
    let envs = ["statement.json", "two-signatures.json"];
    for file in envs {
        let env: ouk_kit::sign::Envelope = serde_json::from_slice(&seed("dsse", file)).expect(file);
        ouk_kit::sign::dsse_verify(std::slice::from_ref(&key), &env).expect(file);
    }
    for file in ["made.json", "hand.json", "hand-no-removed.json", "hand-feed-changes.json", "hand-feed-changes-none.json"] {
        let h: ouk_delta::format::DeltaHeader = serde_json::from_slice(&seed("delta_header", file)).expect(file);
        h.validate(1 << 30).expect(file);
    }
    // A size without a row (a kept file "no row changed" does not need) is refused.
    let h: ouk_delta::format::DeltaHeader = serde_json::from_slice(&seed("delta_header", "hand-feed-changes-bad.json")).expect("parses");
    assert!(h.validate(1 << 30).is_err());
    let reference = ouk_fuzz::patch_reference();
    for file in ["zstd.bin", "zstd-ref.bin", "bsdiff.bin", "bsdiff-lzma.bin", "zstd-empty.bin"] {
        let d = seed("patch_decoders", file);
        let n = u64::from(u16::from_le_bytes([d[0], d[1]]));
        let ok = match file {
            "zstd-ref.bin" => ouk_delta::patch::zstd_decode(Some(&reference), &d[2..], n).is_ok(),
            "bsdiff.bin" => ouk_delta::patch::bsdiff_decode(&reference, &d[2..], n).is_ok(),
            "bsdiff-lzma.bin" => ouk_delta::bsdiffx::decode(&reference, &d[2..], n).is_ok(),
            _ => ouk_delta::patch::zstd_decode(None, &d[2..], n).is_ok(),
        };
        assert!(ok, "{file}");
    }
    for file in ["frame-zstd.bin", "frame-raw.bin"] {
        ouk_store::frame::decode_frame(&seed("pack_frames", file), &mut Vec::new()).expect(file);
    }
    for file in ["pack-two-frames.bin", "real-pack-prefix.bin"] {
        let d = seed("pack_frames", file);
        let scan = ouk_store::pack::scan_pack(&d);
        assert!(!scan.is_empty() && scan.iter().all(|(_, h)| h.is_ok()), "{file}");
    }
    ouk_delta::ChunkSetManifest::decode(&seed("pack_frames", "okcm-manifest.bin")).expect("okcm");
    for file in ["four-parts.json", "one-part.json"] {
        ouk_kit::split::PartsIndex::parse(&seed("parts_index", file)).expect(file);
    }
    for file in ["kit-index.jsonl", "empty.jsonl", "conflicts.jsonl"] {
        let d = seed("feed_index", file);
        let r = ouk_kit::feeds::audit(|| Ok(&d[..]), 10).expect(file);
        if file == "conflicts.jsonl" {
            assert_eq!((r.duplicates, r.divergent), (1, 1), "{file}");
        }
    }
    for file in ["overflow.json", "traversal.json"] {
        assert!(ouk_kit::split::PartsIndex::parse(&seed("parts_index", file)).is_err(), "{file} was accepted");
    }
}
