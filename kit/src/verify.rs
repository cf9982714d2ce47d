//! Verifying a bundle before anything is unpacked, and checking its content against its
//! manifest: what `ouk kit verify` runs and what the importer runs first.
//!
//! Checks, in order, each with its own error (and so exit code):
//! 1. the bundle's SHA-256 against its `.sha256` sidecar and `.metadata.json` (digest, 2);
//! 2. the cosign blob signature against the trusted keys (signature, 5);
//! 3. the manifest's detached JWS against the trusted keys (signature, 5);
//! 4. every bundle entry against the manifest: declared size (the reader refuses to read
//!    past it), SHA-256, nothing missing, nothing extra (digest 2 / validation 11).
//!
//! Sidecars are found next to the bundle when not named: `<bundle>.sha256`, `.sig`,
//! `.metadata.json`, and `manifest/offline-manifest.json` (+ `.jws`) in the same directory.
//! A split kit ([`crate::split`]) is read through its parts, every part checked against its
//! index on the way, and its sidecars are found where the whole bundle would be.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::KitMetadata;
use crate::bundle::{BundleReader, ReadLimits};
use crate::error::{IoContext, KitError, Result};
use crate::manifest::{MANIFEST_PATH, MAX_MANIFEST_BYTES, OfflineManifest};
use crate::sign::VerifyingKey;
use crate::split::BundleInput;

/// Files that accompany a bundle.
#[derive(Debug, Clone, Default)]
pub struct Sidecars {
    /// `<hex>  <name>` digest file.
    pub sha256: Option<PathBuf>,
    /// cosign signature.
    pub signature: Option<PathBuf>,
    /// descriptor.
    pub metadata: Option<PathBuf>,
    /// offline manifest.
    pub manifest: Option<PathBuf>,
    /// manifest JWS.
    pub manifest_signature: Option<PathBuf>,
}

fn existing(p: PathBuf) -> Option<PathBuf> {
    p.is_file().then_some(p)
}

impl Sidecars {
    /// Find sidecars next to `bundle`; explicit paths win.
    pub fn discover(bundle: &Path, explicit: Sidecars) -> Sidecars {
        let name = bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = bundle.parent().unwrap_or(Path::new("."));
        let beside = |ext: &str| existing(dir.join(format!("{name}.{ext}")));
        let metadata = explicit.metadata.or_else(|| beside("metadata.json"));
        // A discovered manifest is used only when it is this bundle's: several kits built
        // into one directory share `manifest/offline-manifest.json`, and the descriptor
        // records which manifest belongs to the bundle. Otherwise the bundle's own copy is
        // used.
        // The bundle's own copy beside it wins (build writes one; see
        // [`crate::build::own_manifest_name`]).
        let discovered = existing(dir.join(crate::build::own_manifest_name(&name))).or_else(|| {
            existing(dir.join(MANIFEST_PATH)).filter(|m| manifest_belongs(m, metadata.as_deref()))
        });
        let manifest = explicit.manifest.or(discovered);
        let manifest_signature = explicit.manifest_signature.or_else(|| {
            manifest
                .as_ref()
                .and_then(|m| existing(PathBuf::from(format!("{}.jws", m.display()))))
        });
        Sidecars {
            sha256: explicit.sha256.or_else(|| beside("sha256")),
            signature: explicit.signature.or_else(|| beside("sig")),
            metadata,

            manifest,
            manifest_signature,
        }
    }
}

/// Whether `manifest` is the one the descriptor at `metadata` names (true when there is no
/// descriptor to say otherwise).
fn manifest_belongs(manifest: &Path, metadata: Option<&Path>) -> bool {
    let Some(meta_path) = metadata else {
        return true;
    };
    let Ok(bytes) = std::fs::read(meta_path) else {
        return true;
    };
    let Ok(meta) = serde_json::from_slice::<KitMetadata>(&bytes) else {
        return true;
    };
    // A delta has no offline manifest of its own: the one its descriptor names is the
    // target kit's, which describes the rebuilt tree, not the delta's entries.
    if meta.kind == "delta" {
        return false;
    }
    match sha256_file(manifest) {
        Ok((digest, _)) => hex::encode(digest) == meta.manifest.sha256,
        Err(_) => false,
    }
}

/// What verification established.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Bundle SHA-256.
    pub sha256: String,
    /// Bundle size.
    pub size: u64,
    /// Checked against a `.sha256` or `.metadata.json`.
    pub digest_checked: bool,
    /// Key id that verified the bundle signature, if checked (`signedBy`, the name every
    /// JSON output of ouk gives the signer).
    #[serde(rename = "signedBy")]
    pub signature_kid: Option<String>,
    /// Key id that verified the manifest JWS, if checked.
    #[serde(rename = "manifestSignedBy")]
    pub manifest_kid: Option<String>,
    /// Entries checked against the manifest, if a manifest was checked.
    pub files_checked: Option<u64>,
}

/// SHA-256 and size of a file, streamed ([`ouk_store::fsutil::sha256_file`], the one
/// file hasher, with the kit's error).
pub fn sha256_file(path: &Path) -> Result<([u8; 32], u64)> {
    Ok(ouk_store::fsutil::sha256_file(path)?)
}

fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .ctx(|| format!("read {}", path.display()))?;
    if out.len() as u64 > limit {
        return Err(KitError::Validation(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(out)
}

/// Parse a `sha256sum` line's digest.
pub fn parse_sha256_line(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let hex = text.split_whitespace().next()?.to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Step 1: the bundle's digest against its sidecars. Returns (sha256, size, checked?).
pub fn check_digest(bundle: &Path, sidecars: &Sidecars) -> Result<([u8; 32], u64, bool)> {
    check_input_digest(&BundleInput::File(bundle.to_path_buf()), sidecars)
}

/// Step 1 for a bundle or a split kit (every part checked against its index on the way).
pub fn check_input_digest(
    input: &BundleInput,
    sidecars: &Sidecars,
) -> Result<([u8; 32], u64, bool)> {
    let (digest, size) = input.digest()?;
    let checked = check_recorded_digest(&input.path(), &digest, size, sidecars).map_err(|e| {
        match (e, input.parts()) {
            // Every part matched its index, but the whole is not the signed bundle:
            // say where the bytes came from (the bundle path itself does not exist).
            (
                KitError::DigestMismatch {
                    what,
                    expected,
                    actual,
                },
                Some(set),
            ) => KitError::DigestMismatch {
                what: format!(
                    "{what}, reassembled from the {} parts {} lists",
                    set.index().parts.len(),
                    set.index_path().display()
                ),
                expected,
                actual,
            },
            (e, _) => e,
        }
    })?;
    Ok((digest, size, checked))
}

/// The `what` of a file in a bundle that does not match the manifest, worded as the seed's
/// troubleshooting table has it ("could not verify SBOM hash"): the bundle was damaged in
/// transit, so the fix is to copy it again.
pub(crate) fn could_not_verify_file(path: &str) -> String {
    let label = if path == crate::provenance::SBOM_PATH {
        "SBOM"
    } else {
        path
    };
    format!("could not verify {label} hash: re-copy the kit ({path} in the bundle)")
}

/// The digest and size of `bundle`'s bytes (computed by the caller) against its `.sha256`
/// and `.metadata.json`. Returns whether anything was checked.
pub fn check_recorded_digest(
    bundle: &Path,
    digest: &[u8; 32],
    size: u64,
    sidecars: &Sidecars,
) -> Result<bool> {
    let actual = hex::encode(digest);
    let mismatch = |expected: String| KitError::DigestMismatch {
        what: format!(
            "could not verify bundle hash: re-copy the kit ({})",
            bundle.display()
        ),
        expected,
        actual: actual.clone(),
    };
    let mut checked = false;
    if let Some(p) = &sidecars.sha256 {
        let expected = parse_sha256_line(&read_small(p, 4096)?).ok_or_else(|| {
            KitError::Validation(format!("{}: not a sha256sum line", p.display()))
        })?;
        if expected != actual {
            return Err(mismatch(expected));
        }
        checked = true;
    }
    if let Some(p) = &sidecars.metadata {
        let meta: KitMetadata = serde_json::from_slice(&read_small(p, 1 << 20)?)
            .map_err(|e| KitError::Validation(format!("{}: {e}", p.display())))?;
        if meta.sha256 != actual || meta.size != size {
            return Err(mismatch(meta.sha256));
        }
        checked = true;
    }
    Ok(checked)
}

/// Step 2: the bundle signature. `Ok(None)` when no keys were given (not checked).
pub fn check_signature(
    sha256: &[u8; 32],
    sidecars: &Sidecars,
    keys: &[VerifyingKey],
) -> Result<Option<String>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let path = sidecars
        .signature
        .as_ref()
        .ok_or_else(|| KitError::Unsigned {
            what: "bundle".into(),
            missing: crate::MissingSignature::BundleSig,
        })?;
    let sig = String::from_utf8_lossy(&read_small(path, 64 << 10)?)
        .trim()
        .to_string();
    let mut last = String::new();
    for k in keys {
        match crate::sign::cosign::verify_blob_sha256(k, sha256, &sig) {
            Ok(()) => return Ok(Some(k.kid())),
            Err(e) => last = e.to_string(),
        }
    }
    Err(KitError::Signature {
        what: format!("bundle signature {}", path.display()),
        message: format!("not valid under any trusted key: {last}"),
    })
}

/// Largest total of artifact sizes accepted (4 EiB: more than any disk, and far enough
/// from `u64::MAX` that adding the manifest and headroom to it cannot overflow).
const MAX_TOTAL_BYTES: u64 = 1 << 62;

/// Parse untrusted manifest bytes, also refusing artifact sizes whose sum passes
/// [`MAX_TOTAL_BYTES`]: every consumer adds them up (free-space check, read limits,
/// reports), and an overflowing sum panicked there.
fn parse_manifest(bytes: &[u8]) -> Result<OfflineManifest> {
    let m = OfflineManifest::parse(bytes)?;
    let total = m
        .artifacts
        .iter()
        .try_fold(0u64, |sum, a| sum.checked_add(a.size));
    if total.is_none_or(|t| t > MAX_TOTAL_BYTES) {
        return Err(KitError::InvalidManifest(format!(
            "the artifact sizes add up to more than {MAX_TOTAL_BYTES} bytes"
        )));
    }
    Ok(m)
}

/// Step 3: read and parse the manifest, checking its JWS when keys are given.
pub fn load_manifest(
    path: &Path,
    jws: Option<&Path>,
    keys: &[VerifyingKey],
) -> Result<(OfflineManifest, Vec<u8>, Option<String>)> {
    let bytes = read_small(path, MAX_MANIFEST_BYTES)?;
    let kid = if keys.is_empty() {
        None
    } else {
        let jws_path = jws.ok_or_else(|| KitError::Unsigned {
            what: "manifest".into(),
            missing: crate::MissingSignature::ManifestJws,
        })?;
        let token = String::from_utf8_lossy(&read_small(jws_path, 64 << 10)?)
            .trim()
            .to_string();
        let k = crate::sign::verify_detached_jws(keys, &token, &bytes).map_err(|e| {
            KitError::Signature {
                what: format!("manifest signature {}", jws_path.display()),
                message: e.to_string(),
            }
        })?;
        Some(k.kid())
    };
    Ok((parse_manifest(&bytes)?, bytes, kid))
}

/// Step 4: stream the bundle and check every entry against `manifest`. The bundle's own
/// copy of the manifest must equal `manifest_bytes`. Returns the files checked.
pub fn check_content(
    bundle: &Path,
    manifest: &OfflineManifest,
    manifest_bytes: &[u8],
) -> Result<u64> {
    check_input_content(
        &BundleInput::File(bundle.to_path_buf()),
        manifest,
        manifest_bytes,
    )
}

/// The manifest-gated reading of a kit bundle, one type for every reader of a kit's
/// content (import's unpack, `kit verify`'s content check, `delta make`'s unpack): each
/// entry is let through only at the size the manifest declares (the manifest entry itself
/// at the size of the manifest bytes already verified), the whole read is bounded by the
/// declared totals, and each file is matched against its declared size and digest. Callers
/// keep their own I/O (staging and store, hashing only, a temporary directory) and their
/// own messages; the rules live here.
pub(crate) struct ManifestGate<'m> {
    declared: HashMap<&'m str, (u64, &'m str)>,
    manifest_len: u64,
    manifest_sha: String,
    limits: ReadLimits,
}

impl<'m> ManifestGate<'m> {
    /// The gate of the kit `manifest` describes (`manifest_bytes` are its verified bytes).
    pub(crate) fn new(manifest: &'m OfflineManifest, manifest_bytes: &[u8]) -> Self {
        let manifest_len = manifest_bytes.len() as u64;
        ManifestGate {
            declared: manifest
                .artifacts
                .iter()
                .map(|a| (a.name.as_str(), (a.size, a.sha256.as_str())))
                .collect(),
            manifest_len,
            manifest_sha: ouk_store::FileDigest::of(manifest_bytes).to_hex(),
            limits: ReadLimits::for_declared(
                manifest.artifacts.len() as u64 + 1,
                manifest.total_bytes() + manifest_len,
            ),
        }
    }

    /// The size an entry may have (`None`: not in the kit, refused by the reader).
    pub(crate) fn size_of(&self, path: &str) -> Option<u64> {
        if path == MANIFEST_PATH {
            Some(self.manifest_len)
        } else {
            self.declared.get(path).map(|d| d.0)
        }
    }

    /// The reader's bounds: the declared entries and bytes.
    pub(crate) fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// The declared size and SHA-256 (hex) of `path` (`(0, "")` for a path the manifest
    /// does not list, which then matches nothing real).
    pub(crate) fn expected(&self, path: &str) -> (u64, &str) {
        if path == MANIFEST_PATH {
            (self.manifest_len, &self.manifest_sha)
        } else {
            self.declared.get(path).copied().unwrap_or((0, ""))
        }
    }

    /// Whether a file read as `size` bytes hashing to `sha256_hex` is what was declared.
    pub(crate) fn matches(&self, path: &str, size: u64, sha256_hex: &str) -> bool {
        let (want_size, want_sha) = self.expected(path);
        size == want_size && sha256_hex == want_sha
    }
}

/// Step 4 for a bundle or a split kit.
pub fn check_input_content(
    input: &BundleInput,
    manifest: &OfflineManifest,
    manifest_bytes: &[u8],
) -> Result<u64> {
    check_content_of(input.reader()?, manifest, manifest_bytes)
}

/// Step 4 over one read of the bundle's bytes.
fn check_content_of(
    file: impl Read,
    manifest: &OfflineManifest,
    manifest_bytes: &[u8],
) -> Result<u64> {
    let gate = ManifestGate::new(manifest, manifest_bytes);
    let lookup = |p: &str| gate.size_of(p);
    let limits = gate.limits();
    let mut reader = BundleReader::new(file, lookup, limits);
    let mut seen = 0u64;
    let mut saw_manifest = false;
    let mut buf = vec![0u8; 256 << 10];
    while let Some(mut entry) = reader.next_entry()? {
        if entry.kind != crate::bundle::EntryKind::File {
            continue;
        }
        let path = entry.path.clone();
        // The entry's read errors are its `ReadError`s, wrapped; unwrapped as they were.
        let (digest, size) = ouk_store::fsutil::sha256_reader_with(&mut entry, &mut buf)
            .map_err(|e| crate::bundle::ReadError::from_io(e, 0, Some(&path)))?;
        let actual = hex::encode(digest);
        if path == MANIFEST_PATH {
            saw_manifest = true;
        } else {
            seen += 1;
        }
        if !gate.matches(&path, size, &actual) {
            return Err(KitError::DigestMismatch {
                what: could_not_verify_file(&path),
                expected: gate.expected(&path).1.to_string(),
                actual,
            });
        }
    }
    if !saw_manifest {
        return Err(KitError::Validation(format!(
            "the bundle has no {MANIFEST_PATH}"
        )));
    }
    if seen != manifest.artifacts.len() as u64 {
        return Err(KitError::Validation(format!(
            "the manifest lists {} files but the bundle has {seen} of them",
            manifest.artifacts.len()
        )));
    }
    Ok(seen + 1)
}

/// Fail closed on an empty key set: a caller with no key to check a signature with must
/// not report the bundle verified ("signature not checked" read as "OK") unless it was
/// told to accept that (`allow_unsigned`, the user's `--allow-unsigned`).
pub fn require_keys(keys: &[VerifyingKey], allow_unsigned: bool) -> Result<()> {
    if keys.is_empty() && !allow_unsigned {
        return Err(KitError::Unsigned {
            what: "bundle".into(),
            missing: crate::MissingSignature::KeyToVerify,
        });
    }
    Ok(())
}

/// Steps 1-4 as far as the given material allows, with no key meaning "signature not
/// checked" (`signature_kid: None`); callers that must fail closed use
/// [`verify_bundle_trusted`]. `bundle` may be a part or the index of a split kit (see
/// [`BundleInput::open`]).
pub fn verify_bundle(
    bundle: &Path,
    explicit: Sidecars,
    keys: &[VerifyingKey],
) -> Result<VerifyReport> {
    verify_bundle_trusted(bundle, explicit, keys, true)
}

/// `ouk kit verify` and `ouk mirror add`: [`verify_bundle`], but with no keys the bundle is
/// refused (exit 5, after its digest was checked, so damage still reads as damage) unless
/// `allow_unsigned`. With keys, the signature must verify under one of them whatever
/// `allow_unsigned` says: a key is there to check with.
pub fn verify_bundle_trusted(
    bundle: &Path,
    explicit: Sidecars,
    keys: &[VerifyingKey],
    allow_unsigned: bool,
) -> Result<VerifyReport> {
    verify_input(&BundleInput::open(bundle)?, explicit, keys, allow_unsigned)
}

/// [`verify_bundle_trusted`] for an opened input (a private copy reads the copy; sidecars
/// are found beside the original).
pub fn verify_input(
    input: &BundleInput,
    explicit: Sidecars,
    keys: &[VerifyingKey],
    allow_unsigned: bool,
) -> Result<VerifyReport> {
    let sidecars = Sidecars::discover(&input.path(), explicit);
    let Some(manifest_path) = &sidecars.manifest else {
        let (sha, size, digest_checked) = check_input_digest(input, &sidecars)?;
        require_keys(keys, allow_unsigned)?;
        let signature_kid = check_signature(&sha, &sidecars, keys)?;
        return Ok(VerifyReport {
            sha256: hex::encode(sha),
            size,
            digest_checked,
            signature_kid,
            manifest_kid: None,
            files_checked: None,
        });
    };
    let (manifest, bytes, manifest_kid) =
        load_manifest(manifest_path, sidecars.manifest_signature.as_deref(), keys)?;
    // One read: the content check and the digest the signature is checked against see the
    // same bytes (a second open could return others). The digest and signature refusals
    // come first, as in the import, then the content's.
    // A private copy was hashed when it was taken: its digest is reused, not computed again.
    let (content, sha, size) = if matches!(input, BundleInput::Private { .. }) {
        let (sha, size) = input.digest()?;
        (check_input_content(input, &manifest, &bytes), sha, size)
    } else {
        let mut reader = crate::read_once::HashingReader::new(input.reader()?);
        let content = check_content_of(&mut reader, &manifest, &bytes);
        let (sha, size) = reader
            .finish()
            .map_err(|e| crate::read_once::input_error(e, &input.path().display().to_string()))?;
        if let Some(set) = input.parts() {
            set.check_whole(sha, size)?;
        }
        (content, sha, size)
    };
    let digest_checked = check_recorded_digest(&input.path(), &sha, size, &sidecars)?;
    require_keys(keys, allow_unsigned)?;
    let signature_kid = check_signature(&sha, &sidecars, keys)?;
    let files_checked = Some(content?);
    Ok(VerifyReport {
        sha256: hex::encode(sha),
        size,
        digest_checked,
        signature_kid,
        manifest_kid,
        files_checked,
    })
}

/// The manifest inside a bundle (reads only up to its entry).
pub fn manifest_from_bundle(bundle: &Path) -> Result<(OfflineManifest, Vec<u8>)> {
    manifest_from_input(&BundleInput::File(bundle.to_path_buf()))
}

/// The manifest inside a bundle or a split kit (reads only up to its entry).
pub fn manifest_from_input(input: &BundleInput) -> Result<(OfflineManifest, Vec<u8>)> {
    let bundle = &input.path();
    let file = input.reader()?;
    // Sizes are not known yet: allow anything, bounded by the manifest limit for the
    // manifest itself; other entries are skipped without being read.
    let lookup = |p: &str| {
        if p == MANIFEST_PATH {
            Some(MAX_MANIFEST_BYTES)
        } else {
            Some(u64::MAX)
        }
    };
    let mut reader = BundleReader::new(
        file,
        lookup,
        ReadLimits {
            max_total_bytes: u64::MAX,
            max_entries: 10_000_000,
        },
    );
    while let Some(mut entry) = reader.next_entry()? {
        if entry.path == MANIFEST_PATH {
            let mut bytes = Vec::new();
            // A read error here is the bundle's fault (truncated or corrupt inside the
            // manifest entry): keep it a bundle refusal (exit 11), not a local I/O error.
            entry.read_to_end(&mut bytes).map_err(|e| {
                KitError::Read(crate::bundle::ReadError::from_io(e, 0, Some(MANIFEST_PATH)))
            })?;
            return Ok((parse_manifest(&bytes)?, bytes));
        }
    }
    Err(KitError::Validation(format!(
        "{}: no {MANIFEST_PATH} inside",
        bundle.display()
    )))
}
