use super::*;

const FIXTURE_KEY: &str = include_str!("../../testdata/cosign/fixture.key");

fn release_key() -> SigningKey {
    SigningKey::from_pem(FIXTURE_KEY, Some(b"hello")).expect("fixture key")
}

/// A file that starts like a .deb (what dpkg-deb writes first).
fn fake_deb(dir: &Path) -> PathBuf {
    let p = dir.join("ouk_0.1.0-1_amd64.deb");
    let mut bytes =
        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n".to_vec();
    bytes.extend_from_slice(&[0x5a; 1000]);
    fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_signed_package_verifies_under_the_package_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let deb = fake_deb(dir.path());
    let release = release_key();
    let signer = package_key(&release);
    let signed = sign_package(&signer, &deb).unwrap();
    let line = fs::read_to_string(&signed.digest_file).unwrap();
    assert_eq!(line, format!("{}  ouk_0.1.0-1_amd64.deb\n", signed.sha256));
    assert_eq!(
        verify_package(&signer.verifying_key(), &deb).unwrap(),
        signed.sha256
    );
    // The release key (the one hosts trust for kits) does not accept it.
    assert!(matches!(
        verify_package(&release.verifying_key(), &deb),
        Err(PackageError::Signature { .. })
    ));
    assert_ne!(signer.kid(), release.kid());
}

#[test]
fn the_package_key_signs_nothing_but_packages() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir
        .path()
        .join("stella-ops-offline-kit-2025.10.0-edge.tar.gz");
    fs::write(&bundle, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let err = sign_package(&package_key(&release_key()), &bundle).unwrap_err();
    assert!(matches!(err, PackageError::NotAPackage { .. }), "{err}");
    assert!(!sidecar(&bundle, ".sig").exists());
    // An RPM lead is a package.
    let rpm = dir.path().join("ouk-0.1.0-1.x86_64.rpm");
    fs::write(&rpm, [0xed, 0xab, 0xee, 0xdb, 3, 0]).unwrap();
    assert!(sign_package(&package_key(&release_key()), &rpm).is_ok());
}

#[test]
fn a_changed_package_or_sidecar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let deb = fake_deb(dir.path());
    let signer = package_key(&release_key());
    sign_package(&signer, &deb).unwrap();
    let public = signer.verifying_key();
    // One byte of the package changed.
    let mut bytes = fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&deb, &bytes).unwrap();
    assert!(matches!(
        verify_package(&public, &deb),
        Err(PackageError::DigestMismatch { .. })
    ));
    // A digest line naming another file.
    sign_package(&signer, &deb).unwrap();
    let sums = sidecar(&deb, ".sha256");
    let text = fs::read_to_string(&sums).unwrap();
    fs::write(&sums, text.replace("amd64.deb", "arm64.deb")).unwrap();
    assert!(matches!(
        verify_package(&public, &deb),
        Err(PackageError::DigestSidecar { .. })
    ));
}

#[test]
fn digest_lines_are_parsed_strictly() {
    let h = "ab".repeat(32);
    assert_eq!(
        parse_digest_line(&format!("{h}  f.deb\n"), "f.deb"),
        Some(h.clone())
    );
    assert_eq!(
        parse_digest_line(&format!("{h} *f.deb"), "f.deb"),
        Some(h.clone())
    );
    assert_eq!(parse_digest_line(&format!("{h}  g.deb\n"), "f.deb"), None);
    assert_eq!(parse_digest_line(&format!("{h} f.deb\n"), "f.deb"), None);
    assert_eq!(
        parse_digest_line(&format!("{}  f.deb", "zz".repeat(32)), "f.deb"),
        None
    );
    assert_eq!(parse_digest_line("short  f.deb", "f.deb"), None);
    assert_eq!(parse_digest_line("é".repeat(40).as_str(), "f.deb"), None);
}

proptest::proptest! {
    /// The .sha256 sidecar is untrusted: any text parses without panicking, and a line is
    /// accepted only when it is exactly a digest and this file's name.
    #[test]
    fn any_sidecar_text_is_parsed_without_panicking(text in ".{0,200}", name in "[a-z0-9._-]{1,20}") {
        let parsed = parse_digest_line(&text, &name);
        if let Some(hex) = parsed {
            proptest::prop_assert_eq!(hex.len(), 64);
            proptest::prop_assert!(text.contains(&name));
        }
    }

    #[test]
    fn a_written_line_parses_back(digest in proptest::array::uniform32(0u8..), name in "[a-z0-9._-]{1,20}") {
        let hex = hex::encode(digest);
        let line = format!("{hex}  {name}\n");
        proptest::prop_assert_eq!(parse_digest_line(&line, &name), Some(hex));
    }
}
