//! What the binary adds to a library's message: how to override a refusal with this
//! binary's flags.
//!
//! Libraries say what is wrong and never name a flag (the same error reaches `reason.json`
//! and the import API, which have none); the hint for the command line lives here, next to
//! the flags it names, and is appended to the message the user sees on stderr.
//!
//! Invariant: a hint is appended only after a message whose error ends with the hinted
//! error's own text (a transparent wrapper, or a `"...: {inner}"` prefix), so the sentence
//! it completes is the one it belongs to.

use ouk_delta::DeltaError;
use ouk_kit::KitError;
use ouk_kit::feeds::FeedError;
use ouk_kit::import::policy::PolicyRefusal;
use ouk_transport::TransportError;

/// The hint for a kit error, if its refusal can be overridden or fixed by a flag.
pub fn for_kit(e: &KitError) -> Option<&'static str> {
    match e {
        KitError::Policy(PolicyRefusal::NotNewer { .. }) => {
            Some("; use --force-activate --force-reason to override")
        }
        KitError::Policy(PolicyRefusal::Stale { .. }) => {
            Some("; use --max-kit-age DAYS (0 = no limit) or --force-activate to accept it")
        }
        KitError::Policy(PolicyRefusal::FutureDated { .. }) => Some(
            "; check both clocks, widen --max-clock-skew SECONDS, or use --force-activate --force-reason to accept it",
        ),
        KitError::BundleExists { .. } => Some(" (--force replaces it)"),
        KitError::Feeds(f) => for_feed(f),
        KitError::Delta(d) => for_delta(d),
        _ => None,
    }
}

/// The hint for a feed indexing error.
pub fn for_feed(e: &FeedError) -> Option<&'static str> {
    match e {
        FeedError::BadRow(_) => Some(" (use --skip-bad-rows to leave bad rows out)"),
        _ => None,
    }
}

/// The hint for a generation-layer error.
pub fn for_delta(e: &DeltaError) -> Option<&'static str> {
    match e {
        DeltaError::NoRoot { .. } => Some(" (check --root or OUK_ROOT)"),
        _ => None,
    }
}

/// The hint for a transport error (a kit refused after a pull).
pub fn for_transport(e: &TransportError) -> Option<&'static str> {
    match e {
        TransportError::Kit(k) => for_kit(k),
        _ => None,
    }
}

/// `error`'s message with its hint, if any.
pub fn message(error: &impl std::fmt::Display, hint: Option<&'static str>) -> String {
    match hint {
        Some(h) => format!("{error}{h}"),
        None => error.to_string(),
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
}
