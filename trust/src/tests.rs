//! TUF's attack list against the trust logic, one named test each, plus property tests of
//! the canonical encoding and the chain rules.

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use crate::*;

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

fn key(n: u8) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[31] = n;
    bytes[0] = 1;
    SigningKey::from_slice(&bytes).expect("valid scalar")
}

fn public(k: &SigningKey) -> PublicKey {
    PublicKey::from_p256(*k.verifying_key())
}

/// Version `v`: kits and trust roles with the given keys and thresholds.
fn doc(v: u64, kits: &[&SigningKey], kt: u32, trust: &[&SigningKey], tt: u32) -> TrustDocument {
    let mut d = TrustDocument::new(v, T0 + v as i64 * DAY, T0 + (v as i64 + 365) * DAY);
    let pubs = |ks: &[&SigningKey]| ks.iter().map(|k| public(k)).collect::<Vec<_>>();
    d.set_role(Role::Kits, &pubs(kits), kt);
    d.set_role(Role::Trust, &pubs(trust), tt);
    d
}

fn signed(d: &TrustDocument, by: &[&SigningKey]) -> SignedDocument {
    SignedDocument::signed(d, by).expect("sign")
}

fn kit_sig(k: &SigningKey, digest: &[u8; 32]) -> KitSignature {
    let sig: p256::ecdsa::DerSignature = k.sign_prehash(digest).expect("sign");
    KitSignature {
        keyid: Some(public(k).kid()),
        sig: <base64ct::Base64 as base64ct::Encoding>::encode_string(sig.as_bytes()),
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// v1 (a), v2 (b, signed by a and b), v3 (c, signed by b and c), v4 (d, by c and d).
fn rotations() -> (Vec<SigningKey>, Vec<TrustDocument>, Vec<SignedDocument>) {
    let ks: Vec<SigningKey> = (1..=4).map(key).collect();
    let mut docs = Vec::new();
    let mut envs = Vec::new();
    for (i, k) in ks.iter().enumerate() {
        let d = doc(i as u64 + 1, &[k], 1, &[k], 1);
        let prev = if i == 0 { k } else { &ks[i - 1] };
        envs.push(signed(&d, &[prev, k]));
        docs.push(d);
    }
    (ks, docs, envs)
}

#[test]
fn a_host_three_rotations_behind_catches_up_from_one_chain() {
    let (ks, docs, envs) = rotations();
    let first = verify_first(&envs[0]).expect("v1");
    assert_eq!(first.document, docs[0]);
    let out = apply_chain(&docs[0], &envs).expect("chain");
    assert_eq!(out.skipped, 1);
    assert_eq!(out.latest().map(|v| v.document.version), Some(4));
    let latest = &out.latest().expect("latest").document;
    let d = digest("kit");
    authorize_digest(latest, Role::Kits, &d, &[kit_sig(&ks[3], &d)], "kit").expect("new key");
    // The old key no longer signs kits.
    let e = authorize_digest(latest, Role::Kits, &d, &[kit_sig(&ks[0], &d)], "kit");
    assert!(
        matches!(e, Err(TrustError::Unauthorized { have: 0, .. })),
        "{e:?}"
    );
}

#[test]
fn chain_with_a_missing_link_is_refused() {
    let (_, docs, envs) = rotations();
    let e = apply_chain(&docs[0], &[envs[1].clone(), envs[3].clone()]);
    assert!(
        matches!(
            e,
            Err(TrustError::MissingLink {
                current: 2,
                found: 4
            })
        ),
        "{e:?}"
    );
    let e = verify_next(&docs[0], &envs[2]);
    assert!(
        matches!(
            e,
            Err(TrustError::MissingLink {
                current: 1,
                found: 3
            })
        ),
        "{e:?}"
    );
}

#[test]
fn chain_signed_by_the_old_key_only_is_refused() {
    // v2 names new key b but only a (the old key) signed it: the new keys must hold too.
    let (a, b) = (key(1), key(2));
    let v1 = doc(1, &[&a], 1, &[&a], 1);
    let v2 = doc(2, &[&b], 1, &[&b], 1);
    let e = verify_next(&v1, &signed(&v2, &[&a]));
    assert!(
        matches!(
            &e,
            Err(TrustError::BelowThreshold {
                by_version: 2,
                have: 0,
                ..
            })
        ),
        "{e:?}"
    );
    // And signed by the new key only: the host's current keys did not agree.
    let e = verify_next(&v1, &signed(&v2, &[&b]));
    assert!(
        matches!(
            &e,
            Err(TrustError::BelowThreshold {
                by_version: 1,
                have: 0,
                ..
            })
        ),
        "{e:?}"
    );
    verify_next(&v1, &signed(&v2, &[&a, &b])).expect("both sign");
}

#[test]
fn chain_below_threshold_is_refused() {
    let (a, b, c) = (key(1), key(2), key(3));
    let v1 = doc(1, &[&a], 1, &[&a, &b, &c], 2);
    let mut v2 = v1.clone();
    v2.version = 2;
    let e = verify_next(&v1, &signed(&v2, &[&a]));
    assert!(
        matches!(
            &e,
            Err(TrustError::BelowThreshold {
                have: 1,
                need: 2,
                ..
            })
        ),
        "{e:?}"
    );
    // The same signature twice is one signer.
    let mut twice = signed(&v2, &[&a]);
    twice.signatures.push(twice.signatures[0].clone());
    assert!(verify_next(&v1, &twice).is_err());
    verify_next(&v1, &signed(&v2, &[&a, &c])).expect("two of three");
}

#[test]
fn replay_of_an_old_trust_document_is_refused() {
    let (_, docs, envs) = rotations();
    let e = verify_next(&docs[2], &envs[1]);
    assert!(
        matches!(
            e,
            Err(TrustError::Rollback {
                current: 3,
                found: 2
            })
        ),
        "{e:?}"
    );
    let e = verify_next(&docs[2], &envs[2]);
    assert!(
        matches!(
            e,
            Err(TrustError::Rollback {
                current: 3,
                found: 3
            })
        ),
        "{e:?}"
    );
    // Carried in a chain, an old document is passed over: it never replaces the current.
    let out = apply_chain(&docs[2], &envs[..2]).expect("old links skipped");
    assert!(out.applied.is_empty());
    assert_eq!(out.skipped, 2);
    // Out of order (newer first) is a rollback.
    let e = apply_chain(&docs[0], &[envs[2].clone(), envs[1].clone()]);
    assert!(e.is_err());
}

#[test]
fn expired_root_fails_closed_and_a_newer_one_reopens() {
    let (_, docs, envs) = rotations();
    let expires = docs[0].expires_unix().expect("time");
    check_expiry(&docs[0], expires - 1).expect("valid before");
    let e = check_expiry(&docs[0], expires);
    assert!(
        matches!(e, Err(TrustError::Expired { version: 1, .. })),
        "{e:?}"
    );
    assert!(e.unwrap_err().to_string().contains("carry a kit"));
    // An intermediate document may have expired; the newest decides.
    let out = apply_chain(&docs[0], &envs).expect("chain");
    let latest = &out.latest().expect("latest").document;
    check_expiry(latest, expires + 1).expect("v4 still valid");
}

#[test]
fn revoked_key_signing_a_new_kit_or_an_old_kit_is_refused() {
    let (a, b) = (key(1), key(2));
    let v1 = doc(1, &[&a, &b], 1, &[&b], 1);
    let old_kit = digest("old kit");
    let sig_a = kit_sig(&a, &old_kit);
    authorize_digest(
        &v1,
        Role::Kits,
        &old_kit,
        std::slice::from_ref(&sig_a),
        "kit",
    )
    .expect("before");
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.remove_key(None, &public(&a).kid(), true);
    let v2 = verify_next(&v1, &signed(&v2, &[&b]))
        .expect("revocation")
        .document;
    // The old kit, signed before the revocation, no longer imports.
    let e = authorize_digest(&v2, Role::Kits, &old_kit, &[sig_a], "kit");
    let msg = format!("{e:?}");
    assert!(matches!(e, Err(TrustError::Unauthorized { .. })), "{msg}");
    assert!(msg.contains("revoked"), "{msg}");
    // Nor does a new kit signed by the stolen key.
    let new_kit = digest("new kit");
    let e = authorize_digest(&v2, Role::Kits, &new_kit, &[kit_sig(&a, &new_kit)], "kit");
    assert!(e.is_err());
    // Nor can a later version bring the key back or drop the revocation.
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.revoked.keys.clear();
    v3.add_key(Role::Kits, &public(&a));
    assert!(matches!(
        verify_next(&v2, &signed(&v3, &[&b])),
        Err(TrustError::RevocationDropped { .. })
    ));
    // A revoked key listed in a role is invalid.
    let mut bad = v2.clone();
    bad.version = 3;
    bad.add_key(Role::Kits, &public(&a));
    assert!(bad.validate().is_err());
}

#[test]
fn revoked_kit_digest_is_refused_whoever_signed_it() {
    let a = key(1);
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    let d = digest("kit");
    v.revoke_kit(&d.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let e = authorize_digest(&v, Role::Kits, &d, &[kit_sig(&a, &d)], "kit");
    assert!(matches!(e, Err(TrustError::RevokedKit { .. })), "{e:?}");
}

#[test]
fn one_compromised_key_in_a_threshold_of_two_authorizes_nothing() {
    let (a, b, stolen) = (key(1), key(2), key(3));
    let v1 = doc(1, &[&a, &stolen], 2, &[&a, &b, &stolen], 2);
    let d = digest("evil kit");
    let e = authorize_digest(&v1, Role::Kits, &d, &[kit_sig(&stolen, &d)], "kit");
    assert!(
        matches!(
            e,
            Err(TrustError::Unauthorized {
                have: 1,
                need: 2,
                ..
            })
        ),
        "{e:?}"
    );
    // Duplicating the thief's signature (with or without keyid) does not reach two.
    let mut dup = kit_sig(&stolen, &d);
    dup.keyid = None;
    assert!(authorize_digest(&v1, Role::Kits, &d, &[kit_sig(&stolen, &d), dup], "kit").is_err());
    // Nor can the thief rotate trust alone.
    let mut v2 = doc(2, &[&stolen], 1, &[&stolen], 1);
    v2.version = 2;
    assert!(matches!(
        verify_next(&v1, &signed(&v2, &[&stolen])),
        Err(TrustError::BelowThreshold {
            have: 1,
            need: 2,
            ..
        })
    ));
    // Two honest keys agree.
    authorize_digest(
        &v1,
        Role::Kits,
        &d,
        &[kit_sig(&a, &d), kit_sig(&stolen, &d)],
        "kit",
    )
    .expect("two of two");
}

#[test]
fn a_package_or_plugin_key_never_authorizes_a_kit() {
    let (a, p) = (key(1), key(2));
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    v.set_role(Role::Packages, &[public(&p)], 1);
    v.set_role(Role::Plugins, &[public(&p)], 1);
    v.validate().expect("valid");
    let d = digest("kit");
    assert!(authorize_digest(&v, Role::Kits, &d, &[kit_sig(&p, &d)], "kit").is_err());
    authorize_digest(&v, Role::Packages, &d, &[kit_sig(&p, &d)], "package").expect("package");
}

#[test]
fn a_trust_signature_is_not_a_kit_signature() {
    // The envelope signs DSSE's PAE, never the bare payload's SHA-256: a trust document's
    // signature cannot be lifted onto a bundle with the same bytes.
    let a = key(1);
    let v = doc(1, &[&a], 1, &[&a], 1);
    let env = signed(&v, &[&a]);
    let bytes = v.to_canonical_bytes();
    let d: [u8; 32] = Sha256::digest(&bytes).into();
    let lifted = KitSignature {
        keyid: None,
        sig: env.signatures[0].sig.clone(),
    };
    assert!(authorize_digest(&v, Role::Kits, &d, &[lifted], "kit").is_err());
}

#[test]
fn non_canonical_or_unknown_members_are_refused() {
    let a = key(1);
    let v = doc(1, &[&a], 1, &[&a], 1);
    let bytes = v.to_canonical_bytes();
    assert_eq!(TrustDocument::from_canonical_bytes(&bytes).expect("ok"), v);
    let pretty = serde_json::to_vec_pretty(&v).expect("json");
    assert!(matches!(
        TrustDocument::from_canonical_bytes(&pretty),
        Err(TrustError::NonCanonical)
    ));
    let text = String::from_utf8(bytes).expect("utf8");
    let extra = text.replacen("{", "{\"admin\":true,", 1);
    assert!(TrustDocument::from_canonical_bytes(extra.as_bytes()).is_err());
    // A tampered payload no longer verifies.
    let mut env = signed(&v, &[&a]);
    let mut tampered = v.clone();
    tampered.add_key(Role::Kits, &public(&key(9)));
    env.payload = SignedDocument::unsigned(&tampered).expect("env").payload;
    assert!(verify_first(&env).is_err());
}

#[test]
fn invalid_documents_are_refused() {
    let a = key(1);
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    v.roles.get_mut("kits").expect("kits").threshold = 2;
    assert!(v.validate().is_err());
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    v.roles.remove("trust");
    assert!(v.validate().is_err());
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    v.version = 0;
    assert!(v.validate().is_err());
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    v.expires = v.issued.clone();
    assert!(v.validate().is_err());
    // A key under another key's name.
    let mut v = doc(1, &[&a], 1, &[&a], 1);
    let entry = v.keys.values().next().cloned().expect("key");
    let b = public(&key(2)).kid();
    v.keys.insert(b.clone(), entry);
    v.roles.get_mut("kits").expect("kits").keyids = vec![b];
    assert!(v.validate().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any valid document round-trips through its canonical bytes, and an envelope
    /// survives JSON.
    #[test]
    fn canonical_round_trip(
        version in 1u64..1_000_000,
        nkits in 1u8..4, kt in 1u32..4,
        ntrust in 1u8..4, tt in 1u32..4,
        revoked in proptest::collection::btree_set("[0-9a-f]{64}", 0..4),
    ) {
        let ks: Vec<SigningKey> = (1..=6).map(key).collect();
        let kits: Vec<&SigningKey> = ks.iter().take(nkits as usize).collect();
        let trust: Vec<&SigningKey> = ks.iter().skip(3).take(ntrust as usize).collect();
        let mut d = doc(version, &kits, kt.min(nkits as u32), &trust, tt.min(ntrust as u32));
        for r in &revoked { d.revoke_kit(r); }
        let bytes = d.to_canonical_bytes();
        prop_assert_eq!(TrustDocument::from_canonical_bytes(&bytes).expect("parse"), d.clone());
        let env = SignedDocument::signed(&d, &trust).expect("sign");
        let back = SignedDocument::parse(&env.to_json()).expect("envelope");
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(verify_first(&back).expect("self-signed").document, d);
    }

    /// A chain applies exactly when it is contiguous from the host's version.
    #[test]
    fn chains_apply_only_when_contiguous(host in 1usize..5, picks in proptest::collection::vec(0usize..4, 0..6)) {
        let (_, docs, envs) = rotations();
        let host = host.min(4);
        let links: Vec<SignedDocument> = picks.iter().map(|&i| envs[i].clone()).collect();
        let versions: Vec<u64> = picks.iter().map(|&i| i as u64 + 1).collect();
        let newer: Vec<u64> = versions.iter().copied().filter(|&v| v > host as u64).collect();
        let contiguous = newer.iter().enumerate().all(|(i, &v)| v == host as u64 + 1 + i as u64);
        let r = apply_chain(&docs[host - 1], &links);
        prop_assert_eq!(r.is_ok(), contiguous, "{:?} from {}", versions, host);
        if let Ok(out) = r {
            prop_assert_eq!(out.applied.len(), newer.len());
        }
    }

    /// Parsing arbitrary bytes never panics.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = TrustDocument::from_canonical_bytes(&bytes);
        if let Ok(env) = SignedDocument::parse(&bytes) {
            let _ = verify_first(&env);
        }
    }
}

/// The cosign fixture's public key (written by cosign itself).
fn cosign_fixture_pub() -> String {
    let p =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/cosign/fixture.pub");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn pem_public_key_round_trips_byte_for_byte_with_cosign() {
    let text = cosign_fixture_pub();
    let k = PublicKey::from_pem(&text).expect("cosign's public key reads");
    assert_eq!(k.to_pem().expect("encode"), text);
    let made = public(&key(7));
    let again = PublicKey::from_pem(&made.to_pem().expect("encode")).expect("reads back");
    assert_eq!(again, made);
    assert_eq!(again.kid(), made.kid());
}

#[test]
fn pem_refusals_say_what_is_wrong() {
    let msg = |t: &str| PublicKey::from_pem(t).expect_err("refused").to_string();
    assert_eq!(
        msg("hello"),
        "no PEM block found (expected -----BEGIN ...-----)"
    );
    assert_eq!(
        msg("-----BEGIN PUBLIC KEY-----\nAAAA\n"),
        "malformed PEM block \"PUBLIC KEY\": missing END line"
    );
    assert_eq!(
        msg("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
        "no PUBLIC KEY PEM block found (found: EC PRIVATE KEY)"
    );
    let not_p256 = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(msg(not_p256).starts_with("not an ECDSA P-256 PKIX public key: "));
    // Text around the block (a comment line) is skipped, as cosign's reader does.
    let text = format!("comment\n{}", cosign_fixture_pub());
    assert!(PublicKey::from_pem(&text).is_ok());
}
