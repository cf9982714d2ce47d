//! What the binary adds to a library's message: how to override a refusal, or give what is
//! missing, with this binary's flags.
//!
//! Libraries say what is wrong and never name a flag (the same error reaches `reason.json`
//! and the import API, which have none); the hint for the command line lives here, next to
//! the flags it names, and completes the message the user sees on stderr. A hint either
//! follows the message ([`Hint::After`]) or, where the sentence opens with the flag that
//! gave the input (`--max-size N would cut ...`), rewords the hinted error's own text
//! ([`Hint::Reword`]).
//!
//! Invariant: a hint completes only a message whose error ends with the hinted error's own
//! text (a transparent wrapper, or a `"...: {inner}"` prefix), so the sentence it completes
//! is the one it belongs to; a reworded text replaces that ending and nothing before it.

use ouk_delta::DeltaError;
use ouk_kit::feeds::FeedError;
use ouk_kit::import::policy::PolicyRefusal;
use ouk_kit::layout::Warning;
use ouk_kit::split::PartError;
use ouk_kit::{GivenTime, KitError, MissingSignature};
use ouk_root::trust::TrustRefusal;
use ouk_store::StoreError;
use ouk_transport::error::shown;
use ouk_transport::{PullRefusal, RefusalReason, TransportError};

/// How the binary completes a library's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Text added after the message.
    After(String),
    /// The hinted error's own text (`own`, the end of the message) said with the flag.
    Reword {
        /// The hinted error's message.
        own: String,
        /// What the user reads instead.
        with: String,
    },
}

fn after(text: &str) -> Option<Hint> {
    Some(Hint::After(text.to_string()))
}

/// The hint for a kit error, if its refusal can be overridden or fixed by a flag.
pub fn for_kit(e: &KitError) -> Option<Hint> {
    match e {
        KitError::Policy(PolicyRefusal::NotNewer { .. }) => {
            after("; use --force-activate --force-reason to override")
        }
        KitError::Policy(PolicyRefusal::Stale { .. }) => {
            after("; use --max-kit-age DAYS (0 = no limit) or --force-activate to accept it")
        }
        KitError::Policy(PolicyRefusal::FutureDated { .. }) => after(
            "; check both clocks, widen --max-clock-skew SECONDS, or use --force-activate --force-reason to accept it",
        ),
        KitError::BundleExists { .. } => after(" (--force replaces it)"),
        KitError::Unsigned { missing, .. } => after(match missing {
            MissingSignature::BundleSig => " (give --bundle-signature)",
            MissingSignature::ManifestJws => " (give --manifest-signature)",
            MissingSignature::KeyToVerify => {
                ": trust one with `ouk trust add PUB` (or give the key), or pass --allow-unsigned to accept the bundle unchecked"
            }
            MissingSignature::KeyToImport => {
                ": add one with `ouk trust add PUB` or give --trust-key (or --allow-unsigned)"
            }
        }),
        KitError::NoTrust => after(" (ouk trust init --from)"),
        KitError::BadTime { what, value } => Some(Hint::Reword {
            own: e.to_string(),
            with: format!(
                "{} {value:?} is not an RFC 3339 time",
                match what {
                    GivenTime::CreatedAt => "--created-at",
                    GivenTime::CapturedAt => "--captured-at",
                }
            ),
        }),
        KitError::ClockOutOfRange { .. } => after("; give --created-at"),
        KitError::CacheCollides { file, kit_path } => Some(Hint::Reword {
            own: e.to_string(),
            with: format!(
                "--cold-start-cache {}: the kit already has {kit_path}",
                file.display()
            ),
        }),
        KitError::Cache(c @ ouk_kit::caches::CacheError::Unusable { file, reason }) => {
            Some(Hint::Reword {
                own: c.to_string(),
                with: format!("--cold-start-cache {}: {reason}", file.display()),
            })
        }
        KitError::FeedConflicts(_) => {
            after("\n(fix the feeds, or build anyway with --allow-feed-conflicts)")
        }
        KitError::AmbiguousBundle { .. } => after(", or give --channel / --kind"),
        KitError::Part(p) => for_part(p),
        KitError::Feeds(f) => for_feed(f),
        KitError::Delta(d) => for_delta(d),
        KitError::Store(s) => for_store(s),
        KitError::TrustRefused(r) => for_trust(r),
        _ => None,
    }
}

/// The hint for a trust change the root's document refuses: the command that does it.
pub fn for_trust(e: &TrustRefusal) -> Option<Hint> {
    after(match e {
        TrustRefusal::InitOverSigned { .. } => {
            ": change it with `ouk trust add/remove/revoke/renew --signing-key`"
        }
        TrustRefusal::InstallOverSigned => " (or `ouk trust update --chain FILE`)",
        TrustRefusal::NoDocument => ": make one with `ouk trust init --signing-key KEY`",
        TrustRefusal::UnsignedChange { .. } => "; give --signing-key",
    })
}

/// The hint for a split kit's error (`kit split`'s output directory and part size).
fn for_part(e: &PartError) -> Option<Hint> {
    match e {
        PartError::PartsInTheWay { .. } => after(": remove them or choose another --output-dir"),
        PartError::TooManyParts { max_part_size, .. } => {
            let own = e.to_string();
            // The library's sentence with the flag as its subject: same figures, same limit.
            let with = own.replacen(
                &format!("a part size of {max_part_size} bytes"),
                &format!("--max-size {max_part_size}"),
                1,
            );
            Some(Hint::Reword {
                own,
                with: format!("{with}: use a larger --max-size"),
            })
        }
        _ => None,
    }
}

/// The hint for a feed indexing error.
pub fn for_feed(e: &FeedError) -> Option<Hint> {
    match e {
        FeedError::BadRow(_) => after(" (use --skip-bad-rows to leave bad rows out)"),
        _ => None,
    }
}

/// The hint for a generation-layer error.
pub fn for_delta(e: &DeltaError) -> Option<Hint> {
    match e {
        DeltaError::NoRoot { .. } => after(" (check --root or OUK_ROOT)"),
        DeltaError::Store(s) => for_store(s),
        _ => None,
    }
}

/// The hint for a store opened with the wrong backend.
pub fn for_store(e: &StoreError) -> Option<Hint> {
    match e {
        StoreError::PacksElsewhere { url, .. } => {
            Some(Hint::After(format!(": give --store-url {url}")))
        }
        StoreError::LocalPacks { .. } => after("; use another --root for an object-storage store"),
        _ => None,
    }
}

/// The hint for a transport error: a pull the server refused, a bundle pulled with no key
/// to check it, a kit refused after a pull.
pub fn for_transport(e: &TransportError) -> Option<Hint> {
    match e {
        TransportError::Kit(k) => for_kit(k),
        TransportError::NotADirectory { .. } => after(" (give --kits DIR)"),
        TransportError::NoKeyToVerify { .. } => {
            after(": give --key PUB (or add one to the root's trust store), or --allow-unsigned")
        }
        TransportError::Refused {
            message,
            reason,
            refusal,
            ..
        } => Some(Hint::Reword {
            own: format!("{message}; {refusal}"),
            with: format!(
                "{}; {}",
                server_said(message, *reason),
                match refusal {
                    PullRefusal::TokenRejected => {
                        "the server did not accept the pull token given (--token-file or OUK_PULL_TOKEN): ask its operator for the right one"
                    }
                    PullRefusal::ServerHasNoToken => {
                        "the server has no pull token configured: its operator must start `ouk serve` with --pull-token-file FILE (or --public-secrets)"
                    }
                    PullRefusal::TokenNeeded => {
                        "a bundle that holds secrets needs the pull token: give --token-file FILE (or OUK_PULL_TOKEN)"
                    }
                }
            ),
        }),
        _ => None,
    }
}

/// What an `ouk serve` refusal says, as the user reads it: the server's flag-free text for
/// a known `reason` said with the flags that lift it (as the server once sent it); any
/// other text (another server, a proxy) as the server sent it.
fn server_said(message: &str, reason: Option<RefusalReason>) -> String {
    // Reworded only when the server said this build's text for the reason it names.
    let with_flags = match reason.filter(|r| message == shown(r.message())) {
        Some(RefusalReason::SecretsNotServed) => {
            "this bundle holds secrets (files under secrets/, such as the Policy Gateway's DPoP key) and this server hands them to nobody: start `ouk serve` with --pull-token-file FILE (or OUK_PULL_TOKEN) and pull with `ouk kit pull --token-file FILE` (or OUK_PULL_TOKEN), or start it with --public-secrets to hand them to anyone who can reach it"
        }
        Some(RefusalReason::SecretsNeedToken) => {
            "this bundle holds secrets (files under secrets/): the pull token is required (`ouk kit pull --token-file FILE`, or OUK_PULL_TOKEN)"
        }
        _ => return message.to_string(),
    };
    shown(with_flags)
}

/// A layout warning said with the flag that allowed it. Only the build that was given the
/// flag prints it (an import checks the layout too, but keeps no warning).
pub fn for_layout_warning(w: &Warning) -> Option<Hint> {
    match w {
        Warning::DebugStoreMissingAllowed => Some(Hint::Reword {
            own: w.to_string(),
            with: "debug/: no debug store in the release tree (allowed by --allow-missing-debug); symbol lookup will not work offline".into(),
        }),
        Warning::DebugUnlisted { .. } => None,
    }
}

/// A built kit's warning as its user reads it. `kit build` reports its warnings as text
/// (the layout's, the content's, the feeds'); a layout warning that has a hint is matched
/// by its own text, which is the library's `Display` of it, so the two cannot drift.
pub fn build_warning(text: String) -> String {
    let hinted = [Warning::DebugStoreMissingAllowed];
    for w in &hinted {
        if text == w.to_string() {
            return message(w, for_layout_warning(w));
        }
    }
    text
}

/// `error`'s message completed by its hint, if any.
pub fn message(error: &impl std::fmt::Display, hint: Option<Hint>) -> String {
    let text = error.to_string();
    match hint {
        None => text,
        Some(Hint::After(h)) => format!("{text}{h}"),
        Some(Hint::Reword { own, with }) => match text.strip_suffix(own.as_str()) {
            Some(before) => format!("{before}{with}"),
            // Not the error's own ending (a wrapper that reformats it): leave it as is.
            None => text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user sees the same sentence as when the library wrote the hint itself.
    #[test]
    fn hinted_messages_read_as_before() {
        let e = KitError::Policy(PolicyRefusal::NotNewer {
            kit: "1.0.0".into(),
            active: "2.0.0".into(),
        });
        assert_eq!(
            message(&e, for_kit(&e)),
            "version not newer: kit 1.0.0 is not newer than the active 2.0.0; use --force-activate --force-reason to override"
        );
        let e = KitError::Policy(PolicyRefusal::Stale {
            created_at: "2026-01-01T00:00:00Z".into(),
            max_days: 30,
        });
        assert_eq!(
            message(&e, for_kit(&e)),
            "kit is stale: created 2026-01-01T00:00:00Z, more than 30 days ago; use --max-kit-age DAYS (0 = no limit) or --force-activate to accept it"
        );
        let e = KitError::Policy(PolicyRefusal::FutureDated {
            created_at: "2030-01-01T00:00:00Z".into(),
            now: "2026-01-01T00:00:00Z".into(),
            max_skew_secs: 300,
        });
        assert_eq!(
            message(&e, for_kit(&e)),
            "kit is dated in the future: created 2030-01-01T00:00:00Z, more than 300 s ahead of this host's clock (2026-01-01T00:00:00Z); check both clocks, widen --max-clock-skew SECONDS, or use --force-activate --force-reason to accept it"
        );
        let e = DeltaError::NoRoot {
            path: "/var/lib/ouk".into(),
        };
        assert_eq!(
            message(&e, for_delta(&e)),
            "no ouk root at /var/lib/ouk: nothing was imported here (check --root or OUK_ROOT)"
        );
        let e = KitError::Feeds(FeedError::BadRow(ouk_kit::feeds::BadRow {
            file: "feeds/a.jsonl".into(),
            line: 3,
            reason: "not JSON".into(),
        }));
        assert_eq!(
            message(&e, for_kit(&e)),
            "feeds: bad feed row feeds/a.jsonl:3: not JSON (use --skip-bad-rows to leave bad rows out)"
        );
        let e = TransportError::Kit(Box::new(KitError::Policy(PolicyRefusal::NotNewer {
            kit: "1".into(),
            active: "2".into(),
        })));
        assert!(message(&e, for_transport(&e)).ends_with("--force-reason to override"));
    }

    /// Each refusal that once named its flag in the library reads exactly as it did.
    #[test]
    fn flag_free_library_messages_read_as_before_on_stderr() {
        use std::path::PathBuf;
        let unsigned = |what: &str, missing| KitError::Unsigned {
            what: what.into(),
            missing,
        };
        let cases: Vec<(KitError, &str)> = vec![
            (
                unsigned("bundle", MissingSignature::BundleSig),
                "bundle: unsigned: no .sig found next to the bundle (give --bundle-signature)",
            ),
            (
                unsigned("manifest", MissingSignature::ManifestJws),
                "manifest: no .jws found for the manifest (give --manifest-signature)",
            ),
            (
                unsigned("bundle", MissingSignature::KeyToVerify),
                "bundle: no trusted keys to check its signature with: trust one with `ouk trust add PUB` (or give the key), or pass --allow-unsigned to accept the bundle unchecked",
            ),
            (
                unsigned("bundle", MissingSignature::KeyToImport),
                "bundle: no trusted keys: add one with `ouk trust add PUB` or give --trust-key (or --allow-unsigned)",
            ),
            (
                KitError::NoTrust,
                "no trust on this root to verify a chain against (ouk trust init --from)",
            ),
            (
                KitError::BadTime {
                    what: GivenTime::CreatedAt,
                    value: "yesterday".into(),
                },
                "--created-at \"yesterday\" is not an RFC 3339 time",
            ),
            (
                KitError::BadTime {
                    what: GivenTime::CapturedAt,
                    value: "2026-13-01".into(),
                },
                "--captured-at \"2026-13-01\" is not an RFC 3339 time",
            ),
            (
                KitError::ClockOutOfRange { now: -1 << 60 },
                "the clock (-1152921504606846976 s since the epoch) is not a time a kit can carry; give --created-at",
            ),
            (
                KitError::CacheCollides {
                    file: PathBuf::from("/tmp/vulxml.zip"),
                    kit_path: "caches/vulxml.zip".into(),
                },
                "--cold-start-cache /tmp/vulxml.zip: the kit already has caches/vulxml.zip",
            ),
            (
                KitError::Cache(ouk_kit::caches::CacheError::Unusable {
                    file: PathBuf::from("/tmp/x.zip"),
                    reason: "not a regular file".into(),
                }),
                "cold-start cache: --cold-start-cache /tmp/x.zip: not a regular file",
            ),
            (
                KitError::FeedConflicts(
                    "the kit's feeds conflict: 1 duplicate and 0 divergent row groups".into(),
                ),
                "the kit's feeds conflict: 1 duplicate and 0 divergent row groups\n(fix the feeds, or build anyway with --allow-feed-conflicts)",
            ),
            (
                KitError::AmbiguousBundle {
                    what: "1.0.0".into(),
                    names: vec!["a.tar.gz".into(), "b.tar.gz".into()],
                },
                "\"1.0.0\" matches 2 bundles (a.tar.gz, b.tar.gz): name one by file name or sha256, or give --channel / --kind",
            ),
            (
                KitError::Part(PartError::PartsInTheWay {
                    path: PathBuf::from("/usb/k.tar.gz.part0001"),
                    dir: PathBuf::from("/usb"),
                    count: 3,
                    bundle: "k.tar.gz".into(),
                }),
                "/usb/k.tar.gz.part0001 exists: /usb already holds 3 part file(s) of k.tar.gz: remove them or choose another --output-dir",
            ),
            (
                KitError::Part(PartError::TooManyParts {
                    max_part_size: 1,
                    size: 10_000,
                    count: 10_000,
                }),
                "--max-size 1 would cut 10000 bytes into 10000 parts, more than 9999: use a larger --max-size",
            ),
            (
                KitError::Store(StoreError::PacksElsewhere {
                    path: PathBuf::from("/r/store"),
                    url: "s3://b/p".into(),
                }),
                "store /r/store: its packs are in s3://b/p: give --store-url s3://b/p",
            ),
            (
                KitError::Delta(DeltaError::Store(StoreError::LocalPacks {
                    path: PathBuf::from("/r/store"),
                })),
                "store /r/store: it is a local store with packs of its own; use another --root for an object-storage store",
            ),
            (
                KitError::TrustRefused(TrustRefusal::InitOverSigned {
                    file: PathBuf::from("/r/trust/root.json"),
                }),
                "/r/trust/root.json already holds a signed trust document: change it with `ouk trust add/remove/revoke/renew --signing-key`",
            ),
            (
                KitError::TrustRefused(TrustRefusal::InstallOverSigned),
                "this root already holds a signed trust document: newer versions come in a kit (or `ouk trust update --chain FILE`)",
            ),
            (
                KitError::TrustRefused(TrustRefusal::NoDocument),
                "no trust document: make one with `ouk trust init --signing-key KEY`",
            ),
            (
                KitError::TrustRefused(TrustRefusal::UnsignedChange { version: 3 }),
                "trust change: this root's trust is signed (version 3): a change is a next version signed by a threshold of its trust keys; give --signing-key",
            ),
        ];
        for (e, before) in cases {
            assert_eq!(message(&e, for_kit(&e)), before);
            // The library's own message, which reason.json and the API carry, names none.
            assert!(!e.to_string().contains("--"), "{e}");
            assert!(!e.to_string().contains("ouk trust"), "{e}");
        }
        let e = StoreError::PacksElsewhere {
            path: PathBuf::from("/r/store"),
            url: "s3://b/p".into(),
        };
        assert!(message(&e, for_store(&e)).ends_with(": give --store-url s3://b/p"));
    }

    /// A layout warning the build allowed by a flag reads as it did when the library named it.
    #[test]
    fn an_allowed_missing_debug_store_names_its_flag_on_the_build_output() {
        let w = Warning::DebugStoreMissingAllowed;
        let before = "debug/: no debug store in the release tree (allowed by --allow-missing-debug); symbol lookup will not work offline";
        assert!(!w.to_string().contains("--"), "{w}");
        assert_eq!(message(&w, for_layout_warning(&w)), before);
        assert_eq!(build_warning(w.to_string()), before);
        // Any other warning text is left as it is.
        let other = "feeds/a.jsonl: 3 bad rows skipped".to_string();
        assert_eq!(build_warning(other.clone()), other);
        let unlisted = Warning::DebugUnlisted {
            path: "debug/x.debug".into(),
        };
        assert_eq!(build_warning(unlisted.to_string()), unlisted.to_string());
    }

    /// A pull the server refused reads as it did when the server's text and the client's
    /// hint named the flags (stderr captured from the binary before the change).
    #[test]
    fn a_refused_pull_reads_as_before() {
        let url = "http://h:1/ouk/k.tar.gz";
        let refused = |status, reason: RefusalReason, refusal| TransportError::Refused {
            url: url.into(),
            status,
            message: shown(reason.message()),
            reason: Some(reason),
            refusal,
        };
        let closed = "this bundle holds secrets (files under secrets/, such as the Policy Gateway\\'s DPoP key) and this server hands them to nobody: start `ouk serve` with --pull-token-file FILE (or OUK_PULL_TOKEN) and pull with `ouk kit pull --token-file FILE` (or OUK_PULL_TOKEN), or start it with --public-secrets to hand them to anyone who can reach it";
        let token = "this bundle holds secrets (files under secrets/): the pull token is required (`ouk kit pull --token-file FILE`, or OUK_PULL_TOKEN)";
        let cases = [
            (
                refused(403, RefusalReason::SecretsNotServed, PullRefusal::TokenNeeded),
                format!(
                    "{url}: the server refused the download (403): {closed}; a bundle that holds secrets needs the pull token: give --token-file FILE (or OUK_PULL_TOKEN)"
                ),
            ),
            (
                refused(403, RefusalReason::SecretsNotServed, PullRefusal::ServerHasNoToken),
                format!(
                    "{url}: the server refused the download (403): {closed}; the server has no pull token configured: its operator must start `ouk serve` with --pull-token-file FILE (or --public-secrets)"
                ),
            ),
            (
                refused(401, RefusalReason::SecretsNeedToken, PullRefusal::TokenNeeded),
                format!(
                    "{url}: the server refused the download (401): {token}; a bundle that holds secrets needs the pull token: give --token-file FILE (or OUK_PULL_TOKEN)"
                ),
            ),
            (
                refused(401, RefusalReason::SecretsNeedToken, PullRefusal::TokenRejected),
                format!(
                    "{url}: the server refused the download (401): {token}; the server did not accept the pull token given (--token-file or OUK_PULL_TOKEN): ask its operator for the right one"
                ),
            ),
            (
                TransportError::NotADirectory {
                    path: "/srv/kits".into(),
                },
                "serve: /srv/kits is not a directory (give --kits DIR)".into(),
            ),
            (
                TransportError::NoKeyToVerify {
                    bundle: "k.tar.gz".into(),
                },
                "k.tar.gz: no trusted key to check the signature with: give --key PUB (or add one to the root's trust store), or --allow-unsigned".into(),
            ),
        ];
        for (e, before) in cases {
            assert_eq!(message(&e, for_transport(&e)), before);
            assert!(!e.to_string().contains("--"), "{e}");
        }
        // A server that sent another text (an older ouk, a proxy) is quoted as it said it;
        // only the client's own ending is worded with the flag.
        let e = TransportError::Refused {
            url: url.into(),
            status: 403,
            message: "forbidden by policy".into(),
            reason: Some(RefusalReason::SecretsNotServed),
            refusal: PullRefusal::TokenNeeded,
        };
        assert_eq!(
            message(&e, for_transport(&e)),
            format!(
                "{url}: the server refused the download (403): forbidden by policy; a bundle that holds secrets needs the pull token: give --token-file FILE (or OUK_PULL_TOKEN)"
            )
        );
        // Every refusal body a server sends names no flag.
        for r in RefusalReason::ALL {
            assert!(!r.message().contains("--"), "{r:?}");
            assert_eq!(RefusalReason::parse(r.as_str()), Some(r));
        }
    }

    /// A reworded hint replaces only the hinted error's own ending.
    #[test]
    fn a_reword_keeps_the_wrappers_prefix() {
        let hint = Hint::Reword {
            own: "b".into(),
            with: "--flag b".into(),
        };
        assert_eq!(message(&"a: b", Some(hint.clone())), "a: --flag b");
        assert_eq!(message(&"a: c", Some(hint)), "a: c");
    }
}
