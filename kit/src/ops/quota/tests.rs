//! Tests of the quota ledger: thresholds, day rollover with an injected clock, subject
//! parsing and hashing, token verification (accepted, expired, not yet valid, wrong key,
//! unknown kid, garbage -> anonymous), and that the ledger file holds no subject in clear.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::sign::SigningKey;

/// 2025-10-24T23:59:50Z.
const BEFORE_MIDNIGHT: i64 = 1_761_350_390;

fn anon(ip: &str) -> ResolvedSubject {
    let arg = parse_subject(&format!("anon:{ip}")).expect("subject");
    resolve(&arg, None, Ok(&[]), BEFORE_MIDNIGHT)
}

fn token_subject(keys: &[crate::sign::VerifyingKey], token: &str, now: i64) -> ResolvedSubject {
    let arg = parse_subject(&format!("token:{token}")).expect("subject");
    resolve(&arg, None, Ok(keys), now)
}

fn es256_token(key: &SigningKey, claims: &str) -> String {
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid());
    sign_token(key, &header, claims).expect("sign")
}

#[test]
fn the_clock_label_and_reset_time() {
    assert_eq!(day_label(utc_day(BEFORE_MIDNIGHT)), "2025-10-24");
    assert_eq!(resets_at(BEFORE_MIDNIGHT), "2025-10-25T00:00:00Z");
    assert_eq!(day_label(utc_day(BEFORE_MIDNIGHT + 10)), "2025-10-25");
    assert_eq!(utc_day(-1), -1);
}

#[test]
fn thresholds_33_333_200_and_30() {
    let l = QuotaLimits::default();
    let a = |n| l.assess(SubjectClass::Anonymous, n);
    let t = |n| l.assess(SubjectClass::Token, n);
    assert_eq!(a(33).delay_seconds, 0);
    assert!(!a(33).over_limit);
    assert_eq!(a(33).remaining, 0);
    assert!(a(34).over_limit);
    assert_eq!(a(34).over_limit_scans, 1);
    assert_eq!(a(34).delay_seconds, 5);
    assert!(a(34).message.contains(LIMIT_REACHED), "{}", a(34).message);
    assert!(a(34).message.contains("load a JWT"));
    assert_eq!(a(33 + 30).delay_seconds, 5);
    assert_eq!(a(33 + 31).delay_seconds, 60);
    assert_eq!(t(333).delay_seconds, 0);
    assert_eq!(t(334).delay_seconds, 5);
    assert_eq!(t(363).delay_seconds, 5);
    assert_eq!(t(364).delay_seconds, 60);
    assert!(t(364).message.contains(LIMIT_REACHED));
    assert!(!t(364).message.contains("load a JWT"));
    assert!(!t(199).reminder);
    assert!(t(200).reminder);
    assert!(t(200).message.contains("reminder"), "{}", t(200).message);
    assert!(!t(200).over_limit);
    assert!(t(201).reminder);
    assert!(a(200).reminder && a(200).over_limit);
    assert_eq!(t(u64::MAX).delay_seconds, 60);
}

proptest! {
    #[test]
    fn delay_never_refuses_and_only_grows(n in 0u64..10_000, anonymous: bool) {
        let l = QuotaLimits::default();
        let class = if anonymous { SubjectClass::Anonymous } else { SubjectClass::Token };
        let (now, next) = (l.assess(class, n), l.assess(class, n + 1));
        prop_assert!(next.delay_seconds >= now.delay_seconds);
        prop_assert!([0, 5, 60].contains(&now.delay_seconds));
        prop_assert_eq!(now.over_limit, n > l.limit(class));
        prop_assert_eq!(now.over_limit, now.message.contains(LIMIT_REACHED));
    }

    #[test]
    fn subject_parser_never_panics(text in ".{0,64}") {
        let _ = parse_subject(&text);
        let _ = parse_ip(&text);
        let _ = verify_token(&[], &text, 0);
    }
}

#[test]
fn subjects_parse_canonically() {
    assert_eq!(
        parse_subject("anon:10.0.0.1").expect("v4"),
        SubjectArg::Anonymous(Some("10.0.0.1".parse().expect("ip")))
    );
    // An IPv4-mapped address is the IPv4 host.
    assert_eq!(
        parse_subject("anon:::ffff:10.0.0.1").expect("mapped"),
        parse_subject("anon:10.0.0.1").expect("v4")
    );
    assert_eq!(
        parse_subject("anon:[2001:db8::1]").expect("bracketed"),
        parse_subject("anon:2001:DB8:0::1").expect("v6")
    );
    assert_eq!(
        parse_subject("anon:unknown").expect("unknown"),
        SubjectArg::Anonymous(None)
    );
    for bad in [
        "",
        "anon:",
        "anon:10.0.0.256",
        "token:",
        "bearer:abc",
        "10.0.0.1",
    ] {
        assert!(
            matches!(parse_subject(bad), Err(QuotaError::Subject(_))),
            "{bad:?}"
        );
    }
    // A mistyped token is not echoed in the error.
    let err = parse_subject("tokn:eyJsecret")
        .expect_err("bad kind")
        .to_string();
    assert!(!err.contains("eyJsecret"), "{err}");
    assert!(!format!("{:?}", parse_subject("token:eyJsecret")).contains("eyJsecret"));
}

#[test]
fn hashing_is_keyed_and_separates_subjects() {
    let (s1, s2) = ([1u8; 32], [2u8; 32]);
    let a = anon("10.0.0.1");
    assert_eq!(subject_hash(&s1, &a), subject_hash(&s1, &anon("10.0.0.1")));
    assert_ne!(subject_hash(&s1, &a), subject_hash(&s2, &a));
    assert_ne!(subject_hash(&s1, &a), subject_hash(&s1, &anon("10.0.0.2")));
    assert_ne!(subject_hash(&s1, &a), subject_hash(&s1, &anon("unknown")));
    // Not a plain (unkeyed) digest of the identity: without the salt nothing matches.
    let unsalted: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(b"ouk quota subject v1\0anon:10.0.0.1").into()
    };
    assert_ne!(subject_hash(&s1, &a), unsalted);
}

#[test]
fn hmac_matches_rfc_4231() {
    use hmac::{Hmac, KeyInit, Mac};
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("key");
    mac.update(b"what do ya want for nothing?");
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn jwt_accepted_expired_wrong_key_garbage() {
    let key = SigningKey::generate().expect("key");
    let other = SigningKey::generate().expect("key");
    let keys = [other.verifying_key(), key.verifying_key()];
    let now = BEFORE_MIDNIGHT;

    let good = es256_token(&key, &format!(r#"{{"sub":"alice","exp":{}}}"#, now + 60));
    let v = verify_token(&keys, &good, now).expect("verifies");
    assert_eq!(v.kid, key.kid());
    assert_eq!(v.sub.as_deref(), Some("alice"));
    let s = token_subject(&keys, &good, now);
    assert_eq!(s.class, SubjectClass::Token);
    assert!(s.fallback_reason.is_none());

    // The same holder with a fresh token is the same subject; another holder is not.
    let again = es256_token(&key, &format!(r#"{{"sub":"alice","exp":{}}}"#, now + 3600));
    let bob = es256_token(&key, r#"{"sub":"bob"}"#);
    let salt = [7u8; 32];
    assert_eq!(
        subject_hash(&salt, &s),
        subject_hash(&salt, &token_subject(&keys, &again, now))
    );
    assert_ne!(
        subject_hash(&salt, &s),
        subject_hash(&salt, &token_subject(&keys, &bob, now))
    );

    // No kid: every trusted key is tried.
    let no_kid = sign_token(&key, r#"{"alg":"ES256"}"#, r#"{"sub":"carol"}"#).expect("sign");
    assert_eq!(
        verify_token(&keys, &no_kid, now).expect("no kid").kid,
        key.kid()
    );

    // Expired exactly at exp; not valid before nbf.
    let exp = es256_token(&key, &format!(r#"{{"sub":"a","exp":{now}}}"#));
    assert!(matches!(
        verify_token(&keys, &exp, now),
        Err(TokenError::Expired { .. })
    ));
    verify_token(&keys, &exp, now - 1).expect("valid a second before exp");
    let nbf = es256_token(&key, &format!(r#"{{"sub":"a","nbf":{}}}"#, now + 1));
    assert!(matches!(
        verify_token(&keys, &nbf, now),
        Err(TokenError::NotYetValid { .. })
    ));
    verify_token(&keys, &nbf, now + 1).expect("valid from nbf");

    // Signed by a key the root does not trust.
    let stranger = SigningKey::generate().expect("key");
    let foreign = es256_token(&stranger, r#"{"sub":"a"}"#);
    assert!(matches!(
        verify_token(&keys, &foreign, now),
        Err(TokenError::UnknownKid(_))
    ));
    let foreign_no_kid =
        sign_token(&stranger, r#"{"alg":"ES256"}"#, r#"{"sub":"a"}"#).expect("sign");
    assert_eq!(
        verify_token(&keys, &foreign_no_kid, now),
        Err(TokenError::BadSignature)
    );
    // A trusted kid over another key's signature.
    let lying = sign_token(
        &stranger,
        &format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid()),
        r#"{"sub":"a"}"#,
    )
    .expect("sign");
    assert_eq!(
        verify_token(&keys, &lying, now),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify_token(&[], &good, now),
        Err(TokenError::NoTrustedKeys)
    );

    // Header rules.
    for (header, what) in [
        (r#"{"alg":"none"}"#, "alg none"),
        (r#"{"alg":"HS256"}"#, "alg HS256"),
        (r#"{"typ":"JWT"}"#, "no alg"),
        (r#"{"alg":"ES256","crit":["exp"]}"#, "crit"),
        (r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#, "b64"),
        (r#"{"alg":"ES256","kid":7}"#, "kid type"),
        (r#"[1]"#, "not an object"),
    ] {
        let t = sign_token(&key, header, r#"{"sub":"a"}"#).expect("sign");
        assert!(verify_token(&keys, &t, now).is_err(), "{what}");
    }
    // Claim rules.
    for claims in [r#"{"exp":"soon"}"#, r#"{"sub":1}"#, r#""text""#, "{"] {
        let t = es256_token(&key, claims);
        assert!(
            matches!(verify_token(&keys, &t, now), Err(TokenError::Claims(_))),
            "{claims}"
        );
    }

    // Garbage and tampering.
    let mut tampered = good.clone().into_bytes();
    let mid = good.find('.').expect("dot") + 3;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for garbage in [
        "",
        "x",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        tampered.as_str(),
        &format!("{good}="),
        &"A".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert!(verify_token(&keys, garbage, now).is_err(), "{garbage:.40}");
    }

    // Every failure counts as anonymous, against the caller's IP when given.
    let ip: IpAddr = "192.0.2.7".parse().expect("ip");
    for bad in [&exp, &foreign, &tampered, &"junk".to_owned()] {
        let arg = parse_subject(&format!("token:{bad}")).expect("subject");
        let with_ip = resolve(&arg, Some(ip), Ok(&keys), now);
        assert_eq!(with_ip.class, SubjectClass::Anonymous);
        assert!(
            with_ip
                .fallback_reason
                .as_deref()
                .is_some_and(|r| r.contains("counted as anonymous")),
            "{with_ip:?}"
        );
        assert_eq!(
            subject_hash(&salt, &with_ip),
            subject_hash(&salt, &anon("192.0.2.7"))
        );
        let without_ip = resolve(&arg, None, Ok(&keys), now);
        assert_eq!(
            subject_hash(&salt, &without_ip),
            subject_hash(&salt, &anon("unknown"))
        );
    }
    // An unreadable trust store is "unverifiable": anonymous too.
    let arg = parse_subject(&format!("token:{good}")).expect("subject");
    let r = resolve(&arg, None, Err("damaged".into()), now);
    assert_eq!(r.class, SubjectClass::Anonymous);
}

#[test]
fn counts_roll_over_at_utc_midnight_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = QuotaLimits::default();
    let ledger = Ledger::open(dir.path()).expect("open");
    let who = anon("10.0.0.1");
    let mut last = None;
    for i in 1..=40u64 {
        let r = ledger
            .consume(&who, BEFORE_MIDNIGHT + (i as i64 % 9), &limits)
            .expect("consume");
        assert_eq!(r.scans_today, i);
        assert_eq!(r.day, "2025-10-24");
        last = Some(r);
    }
    let last = last.expect("consumed");
    assert!(last.assessment.over_limit);
    assert_eq!(last.assessment.delay_seconds, 5);
    // Other subjects are counted apart.
    assert_eq!(
        ledger
            .consume(&anon("10.0.0.2"), BEFORE_MIDNIGHT, &limits)
            .expect("other")
            .scans_today,
        1
    );
    let status = ledger
        .status(&who, BEFORE_MIDNIGHT + 9, &limits)
        .expect("status");
    assert_eq!(status.scans_today, 40);
    assert_eq!(status.assessment.delay_seconds, 5);
    let summary = ledger.summary(BEFORE_MIDNIGHT, &limits).expect("summary");
    assert_eq!((summary.subjects, summary.scans), (2, 41));
    assert_eq!(summary.throttled_subjects, 1);

    // 00:00:00 UTC: a new day, from zero.
    let after = BEFORE_MIDNIGHT + 10;
    let r = ledger.consume(&who, after, &limits).expect("consume");
    assert_eq!((r.scans_today, r.day.as_str()), (1, "2025-10-25"));
    assert_eq!(r.assessment.delay_seconds, 0);
    assert_eq!(r.resets_at, "2025-10-26T00:00:00Z");
    // Reopening changes nothing.
    drop(ledger);
    let ledger = Ledger::open(dir.path()).expect("reopen");
    assert_eq!(
        ledger
            .consume(&who, after, &limits)
            .expect("consume")
            .scans_today,
        2
    );
    // Old days are pruned once they leave the retention window.
    let later = after + RETAINED_DAYS * SECONDS_PER_DAY;
    ledger.consume(&who, later, &limits).expect("consume");
    let old = ledger.summary(BEFORE_MIDNIGHT, &limits).expect("summary");
    assert_eq!(old.subjects, 0, "{old:?}");
}

#[test]
fn token_subject_gets_333_and_the_reminder_at_200() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let key = SigningKey::generate().expect("key");
    let keys = [key.verifying_key()];
    let t = es256_token(&key, r#"{"sub":"scanner-1"}"#);
    let who = token_subject(&keys, &t, BEFORE_MIDNIGHT);
    let limits = QuotaLimits::default();
    let mut seen = Vec::new();
    for _ in 0..365 {
        seen.push(
            ledger
                .consume(&who, BEFORE_MIDNIGHT, &limits)
                .expect("consume"),
        );
    }
    let at = |n: usize| &seen[n - 1];
    assert!(!at(199).assessment.reminder);
    assert!(at(200).assessment.reminder);
    assert_eq!(at(333).assessment.delay_seconds, 0);
    assert_eq!(at(334).assessment.delay_seconds, 5);
    assert_eq!(at(363).assessment.delay_seconds, 5);
    assert_eq!(at(364).assessment.delay_seconds, 60);
    assert_eq!(at(364).class, SubjectClass::Token);
    assert_eq!(at(364).kid.as_deref(), Some(key.kid().as_str()));
}

#[test]
fn the_ledger_file_holds_no_subject_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let key = SigningKey::generate().expect("key");
    let keys = [key.verifying_key()];
    let token = es256_token(&key, r#"{"sub":"holder-secret-name"}"#);
    let limits = QuotaLimits::default();
    ledger
        .consume(&anon("203.0.113.99"), BEFORE_MIDNIGHT, &limits)
        .expect("anon");
    ledger
        .consume(
            &token_subject(&keys, &token, BEFORE_MIDNIGHT),
            BEFORE_MIDNIGHT,
            &limits,
        )
        .expect("token");
    drop(ledger);
    for path in [ledger_path(dir.path()), salt_path(dir.path())] {
        let bytes = std::fs::read(&path).expect("read");
        for needle in [
            "203.0.113.99".as_bytes(),
            token.as_bytes(),
            b"holder-secret-name",
            &[203, 0, 113, 99],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a subject in clear",
                path.display()
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(salt_path(dir.path()))
        .expect("salt")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_damaged_salt_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(salt_path(dir.path()), b"short").expect("write");
    let err = Ledger::open(dir.path()).expect_err("refused");
    assert!(err.is_damage(), "{err}");
}
