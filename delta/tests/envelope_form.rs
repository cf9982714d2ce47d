//! DSSE envelopes in their plain form (`ouk-delta/6`): a provenance envelope whose payload
//! lists the tree's digests travels with the payload decoded, matched against the baseline
//! envelope's plain form and the rebuilt files' digests; the host re-encodes the exact
//! bytes; hosts that predate the format refuse it by name; turning the form off gives the
//! format of before.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding as _};
use ouk_delta::format::{FORMAT_DERIVED, FORMAT_PLAIN_MEMBERS, MemberForm, Source};
use ouk_delta::plan::MakeOptions;
use ouk_store::FileDigest;

use common::{Rng, make};

const ENVELOPE: &str = "provenance/provenance.intoto.json";

/// A DSSE envelope as the kit writes it (pretty JSON, base64 payload) over a statement
/// naming every file with its SHA-256, and a fresh random signature.
fn envelope(files: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    let subjects: Vec<String> = files
        .iter()
        .map(|(name, bytes)| {
            format!(
                r#"{{"name":"{name}","digest":{{"sha256":"{}"}}}}"#,
                FileDigest::of(bytes).to_hex()
            )
        })
        .collect();
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{}],"predicateType":"https://slsa.dev/provenance/v1"}}"#,
        subjects.join(",")
    );
    let sig: Vec<u8> = (0..9).flat_map(|_| rng.next().to_le_bytes()).collect();
    format!(
        "{{\n  \"payload\": \"{}\",\n  \"payloadType\": \"application/vnd.in-toto+json\",\n  \
         \"signatures\": [\n    {{\n      \"keyid\": \"k\",\n      \"sig\": \"{}\"\n    }}\n  ]\n}}",
        Base64::encode_string(statement.as_bytes()),
        Base64::encode_string(&sig)
    )
    .into_bytes()
}

/// Two releases of a tree of 40 data files, 6 of which change, and the envelope over them.
fn trees(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rng = Rng(11);
    let base: Vec<Vec<u8>> = (0..40)
        .map(|_| {
            (0..64)
                .flat_map(|_| rng.next().to_le_bytes())
                .collect::<Vec<u8>>()
        })
        .collect();
    for day in 0..2usize {
        let t = dir.join(format!("d{day}"));
        fs::create_dir_all(t.join("data")).unwrap();
        fs::create_dir_all(t.join("provenance")).unwrap();
        let mut files = Vec::new();
        for (i, b) in base.iter().enumerate() {
            let mut b = b.clone();
            if day == 1 && i % 7 == 0 {
                b[100] ^= 0xff;
            }
            let name = format!("data/f{i:02}.bin");
            fs::write(t.join(&name), &b).unwrap();
            files.push((name, b));
        }
        fs::write(t.join(ENVELOPE), envelope(&files, &mut rng)).unwrap();
    }
    (dir.join("d0"), dir.join("d1"))
}

#[test]
fn an_envelope_travels_decoded_and_is_rebuilt_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = trees(tmp.path());
    let plain = make(&d0, &d1, &MakeOptions::default());
    assert_eq!(plain.header.format, FORMAT_PLAIN_MEMBERS);
    let f = plain
        .header
        .files
        .iter()
        .find(|f| f.path == ENVELOPE)
        .unwrap();
    assert!(
        matches!(f.form, Some(MemberForm::DssePayload(n)) if n < f.size),
        "{f:?}"
    );
    // Its plain form repeats the rebuilt files' digests: it joins the trailer block.
    assert_eq!(f.source, Source::Trailer);

    let bytes = make(
        &d0,
        &d1,
        &MakeOptions {
            plain_members: false,
            ..MakeOptions::default()
        },
    );
    assert_ne!(bytes.header.format, FORMAT_PLAIN_MEMBERS);
    assert!(bytes.header.files.iter().all(|f| f.form.is_none()));
    // Six changed digests, re-coded in base64, are about 6 x 32 B of entropy the plain
    // form lets the dictionary match.
    assert!(
        plain.payload.len() + 150 < bytes.payload.len(),
        "plain {} vs bytes {}",
        plain.payload.len(),
        bytes.payload.len()
    );

    let (out, written) = plain.apply(tmp.path());
    let want = fs::read(d1.join(ENVELOPE)).unwrap();
    assert_eq!(fs::read(out.join(ENVELOPE)).unwrap(), want);
    assert_eq!(written[ENVELOPE], FileDigest::of(&want));
    let target = plain
        .header
        .target_files(&plain.base_files, &written)
        .unwrap();
    assert_eq!(target, plain.target_files);
}

#[test]
fn hosts_that_predate_plain_members_refuse_them_by_name_and_forged_forms_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = trees(tmp.path());
    let made = make(&d0, &d1, &MakeOptions::default());
    let mut header = made.header.clone();
    header.format = "ouk-delta/7".into();
    let e = header.validate(u64::MAX).unwrap_err().to_string();
    assert!(e.contains("made by a newer ouk"), "{e}");
    header.format = FORMAT_DERIVED.into();
    let e = header.validate(u64::MAX).unwrap_err().to_string();
    assert!(
        e.contains("cannot hold block members in a plain form"),
        "{e}"
    );

    // A declared size the plain form does not re-encode to fails the apply, naming the
    // file, before anything is written for it.
    let mut header = made.header.clone();
    let i = header
        .files
        .iter()
        .position(|f| f.path == ENVELOPE)
        .unwrap();
    header.files[i].size += 1;
    header.validate(u64::MAX).unwrap();
    let (out, written) = made.apply_with(&header, tmp.path());
    let e = written.unwrap_err().to_string();
    assert!(e.contains(ENVELOPE) && e.contains("re-encodes to"), "{e}");
    assert!(!out.join(ENVELOPE).exists());

    // A plain form on a file outside the blocks, or larger than its file, is refused.
    let mut header = made.header.clone();
    header.files[i].form = Some(MemberForm::DssePayload(header.files[i].size + 1));
    assert!(header.validate(u64::MAX).is_err());
}

#[test]
fn a_delta_of_the_format_before_still_applies_to_the_same_bytes() {
    // The envelope shipped as bytes, a file derived: what `ouk-delta/5` makers wrote for
    // this tree. This ouk applies it as before.
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = trees(tmp.path());
    let made = make(
        &d0,
        &d1,
        &MakeOptions {
            plain_members: false,
            derived: [(
                "data/f07.bin".to_string(),
                ouk_delta::format::Derivation::FeedsIndex,
            )]
            .into(),
            ..MakeOptions::default()
        },
    );
    assert_eq!(made.header.format, FORMAT_DERIVED);
    let (out, written) = made.apply(tmp.path());
    assert_eq!(
        fs::read(out.join(ENVELOPE)).unwrap(),
        fs::read(d1.join(ENVELOPE)).unwrap()
    );
    let target = made
        .header
        .target_files(&made.base_files, &written)
        .unwrap();
    assert_eq!(target, made.target_files);
}
