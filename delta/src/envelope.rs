//! The plain form of a DSSE envelope: a solid or trailer block member shipped with its
//! base64 `payload` decoded, re-encoded on the host (format `ouk-delta/6`).
//!
//! Why: a kit's `provenance/provenance.intoto.json` is a DSSE envelope whose payload, an
//! in-toto statement, lists the SHA-256 of every file of the kit. Base64 re-codes those
//! hex digests at every alignment, so neither the baseline's envelope (the block's
//! reference) nor the digest dictionary (the rebuilt files' digests, [`crate::format`])
//! can match them: each changed file costs its digest in entropy, and the unchanged part of
//! the statement matches the baseline's only in runs broken by the base64 realignment. In
//! the plain form the statement is JSON text again, matched against the baseline's
//! envelope in the same plain form and against the dictionary; only what is new (the
//! signature, a version, digests of files decoded in the same block) is shipped.
//!
//! Why this design and not a derivation that rebuilds the statement from the rebuilt
//! manifest (shipping only the signature): that needs the kit builder's exact statement
//! serialization on the host (builder id, parameters, times, subject order), a second
//! implementation that must stay byte-identical with every past and future builder or the
//! delta fails to apply. The plain form knows nothing of in-toto: it is a splice of a
//! base64 string, so it works for any envelope (or any JSON with a `"payload"` string
//! member in base64), and the host's new code is a length check and a base64 encoder. The
//! bytes left after it are what a derivation would leave too (the signature, the version,
//! the new digests of the SBOM and other files decoded in the same block), plus a few
//! bytes of framing.
//!
//! Plain form layout: `head_len` (u32 LE), `payload_len` (u32 LE), then `head` (the file up
//! to and including the opening quote of the payload string), the decoded payload, and
//! the tail (the file from the closing quote on). The file is `head`, the payload in
//! standard padded base64, then the tail.
//!
//! Invariants:
//! - the make side uses the plain form only when re-encoding it gives the file's exact
//!   bytes ([`to_plain`] checks); the host re-encodes into exactly the declared size and
//!   checks that size before allocating ([`from_plain`]); the rebuilt file is then hashed
//!   and checked against the rebuilt manifest like every other file (nothing is trusted
//!   less);
//! - the plain form is never larger than the file (a payload shorter than
//!   [`MIN_PAYLOAD`] is left as it is), so the block bounds (`MAX_SOLID`,
//!   `MAX_SOLID_REFERENCE`) keep bounding memory on both sides;
//! - a block's reference for such a member is the baseline file at its path in the same
//!   plain form when it has one, else its bytes: a pure function of verified baseline
//!   bytes, computed the same way on both sides ([`block_prefix`]).

use std::borrow::Cow;

use base64ct::{Base64, Encoding as _};

use crate::content::TreeFile;
use crate::error::{DeltaError, Result};
use crate::format::{Block, DeltaFile, DeltaHeader, MemberForm, ReferenceRange};

/// Payloads shorter than this stay base64 (the 8 bytes of framing would not pay).
pub const MIN_PAYLOAD: usize = 48;

/// The framing before `head`: two u32 lengths.
const FRAMING: usize = 8;

/// Where the payload's base64 string is in `file`: the range of its characters (between
/// the quotes) of the first `"payload"` member, JSON whitespace allowed around the colon.
fn payload_span(file: &[u8]) -> Option<(usize, usize)> {
    const KEY: &[u8] = b"\"payload\"";
    let key = file.windows(KEY.len()).position(|w| w == KEY)?;
    let mut at = key + KEY.len();
    let skip_ws = |at: &mut usize| {
        while file
            .get(*at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *at += 1;
        }
    };
    skip_ws(&mut at);
    if file.get(at) != Some(&b':') {
        return None;
    }
    at += 1;
    skip_ws(&mut at);
    if file.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = file.get(start..)?.iter().position(|&b| b == b'"')?;
    Some((start, start + len))
}

/// The plain form of `file`, when it has a base64 `"payload"` string of at least
/// [`MIN_PAYLOAD`] decoded bytes whose re-encoding gives `file` back byte for byte.
pub fn to_plain(file: &[u8]) -> Option<Vec<u8>> {
    let (start, end) = payload_span(file)?;
    let text = std::str::from_utf8(&file[start..end]).ok()?;
    let payload = Base64::decode_vec(text).ok()?;
    // Exactness: only a canonical encoding (padding, zero trailing bits) is spliced out.
    if payload.len() < MIN_PAYLOAD || Base64::encode_string(&payload).as_bytes() != text.as_bytes()
    {
        return None;
    }
    let head_len = u32::try_from(start).ok()?;
    let payload_len = u32::try_from(payload.len()).ok()?;
    let tail = &file[end..];
    let mut out = Vec::with_capacity(FRAMING + start + payload.len() + tail.len());
    out.extend_from_slice(&head_len.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&file[..start]);
    out.extend_from_slice(&payload);
    out.extend_from_slice(tail);
    Some(out)
}

/// Re-encode a plain form (untrusted: decoded from a delta) into the file of exactly
/// `size` bytes; `path` names it in errors. Every length is checked against the plain
/// form and `size` before anything is allocated.
pub fn from_plain(plain: &[u8], size: u64, path: &str) -> Result<Vec<u8>> {
    let bad = |why: String| DeltaError::BadDelta(format!("{path}: plain envelope: {why}"));
    let (lengths, body) = plain
        .split_at_checked(FRAMING)
        .ok_or_else(|| bad(format!("{} bytes, shorter than its framing", plain.len())))?;
    let read_u32 = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&lengths[at..at + 4]);
        u32::from_le_bytes(b) as usize
    };
    let (head_len, payload_len) = (read_u32(0), read_u32(4));
    let tail_start = head_len
        .checked_add(payload_len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            bad(format!(
                "head {head_len} and payload {payload_len} bytes past its {} bytes",
                body.len()
            ))
        })?;
    let encoded_len = payload_len.div_ceil(3) * 4;
    let total = head_len as u64 + encoded_len as u64 + (body.len() - tail_start) as u64;
    if total != size {
        return Err(bad(format!(
            "re-encodes to {total} bytes, the file has {size}"
        )));
    }
    let mut out = vec![0u8; body.len() - payload_len + encoded_len];
    out[..head_len].copy_from_slice(&body[..head_len]);
    let encoded_end = head_len + encoded_len;
    Base64::encode(&body[head_len..tail_start], &mut out[head_len..encoded_end])
        .map_err(|e| bad(format!("base64: {e}")))?;
    out[encoded_end..].copy_from_slice(&body[tail_start..]);
    Ok(out)
}

/// A block member's file bytes from its bytes in the decoded block: re-encoded when the
/// member is in a plain form, else as they are.
pub fn member_bytes<'a>(f: &DeltaFile, in_block: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    match f.form {
        None => Ok(Cow::Borrowed(in_block)),
        Some(MemberForm::DssePayload(_)) => from_plain(in_block, f.size, &f.path).map(Cow::Owned),
    }
}

/// A block's prefix: its references in order ([`DeltaHeader::block_reference_forms`]),
/// each appended by `read`, a plain-form member's same-path baseline file turned into the
/// same plain form when it has one, then the block's digest `dictionary`.
pub fn block_prefix(
    header: &DeltaHeader,
    block: Block,
    baseline_files: &[TreeFile],
    read: &mut dyn FnMut(&ReferenceRange, &mut Vec<u8>) -> Result<()>,
    dictionary: &[u8],
) -> Result<Vec<u8>> {
    let mut prefix = Vec::new();
    for (r, form) in header.block_reference_forms(block, baseline_files) {
        match form {
            None => read(&r, &mut prefix)?,
            Some(MemberForm::DssePayload(_)) => {
                let mut bytes = Vec::new();
                read(&r, &mut bytes)?;
                match to_plain(&bytes) {
                    Some(plain) => prefix.extend_from_slice(&plain),
                    None => prefix.extend_from_slice(&bytes),
                }
            }
        }
    }
    prefix.extend_from_slice(dictionary);
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope_text(b64: &str, sig: &str) -> Vec<u8> {
        format!(
            "{{\n  \"payloadType\": \"application/vnd.in-toto+json\",\n  \"payload\": \"{b64}\",\n  \
             \"signatures\": [\n    {{\n      \"keyid\": \"k\",\n      \"sig\": \"{sig}\"\n    }}\n  ]\n}}\n"
        )
        .into_bytes()
    }

    fn envelope(payload: &[u8], sig: &str) -> Vec<u8> {
        envelope_text(&Base64::encode_string(payload), sig)
    }

    #[test]
    fn an_envelope_round_trips_and_its_payload_is_plain_text() {
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"00ff"}}]}"#;
        let file = envelope(statement, "MEUCIQ==");
        let plain = to_plain(&file).expect("a plain form");
        assert!(plain.len() < file.len());
        assert!(plain.windows(statement.len()).any(|w| w == statement));
        assert_eq!(from_plain(&plain, file.len() as u64, "p").unwrap(), file);
    }

    #[test]
    fn files_that_would_not_round_trip_keep_their_bytes() {
        // Not canonical: trailing bits set ("eB==" decodes to the byte of "eA==").
        let good = Base64::encode_string(&[b'x'; 61]);
        assert!(good.ends_with("eA=="), "{good}");
        let odd = envelope_text(&format!("{}eB==", &good[..good.len() - 4]), "s");
        assert_eq!(to_plain(&odd), None, "non-canonical base64");
        assert_eq!(to_plain(&envelope(b"short", "s")), None, "too short to pay");
        assert_eq!(to_plain(b"{\"payload\": 3}"), None);
        assert_eq!(to_plain(b"{\"payloadType\": \"eA==\"}"), None);
        assert_eq!(to_plain(b"no json at all"), None);
    }

    #[test]
    fn a_forged_plain_form_is_refused_before_allocating() {
        let file = envelope(&[7u8; 100], "s");
        let plain = to_plain(&file).unwrap();
        // Wrong declared size.
        assert!(from_plain(&plain, file.len() as u64 + 1, "p").is_err());
        // Lengths past the body.
        let mut huge = plain.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(from_plain(&huge, u64::MAX, "p").is_err());
        let mut huge = plain.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(from_plain(&huge, u64::MAX, "p").is_err());
        assert!(from_plain(&plain[..7], 0, "p").is_err());
    }

    proptest! {
        #[test]
        fn plain_forms_round_trip(
            head in "[ !#-~]{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            tail in "[ -~\n]{0,40}",
        ) {
            let file = format!(
                "{head}\"payload\" : \"{}\"{tail}",
                Base64::encode_string(&payload)
            )
            .into_bytes();
            if let Some(plain) = to_plain(&file) {
                prop_assert!(plain.len() <= file.len());
                prop_assert_eq!(from_plain(&plain, file.len() as u64, "p").unwrap(), file);
            } else {
                // Only a payload too short to pay declines.
                prop_assert!(payload.len() < MIN_PAYLOAD);
            }
        }

        #[test]
        fn any_plain_form_decodes_within_its_bounds(
            plain in proptest::collection::vec(any::<u8>(), 0..200),
            size in 0u64..400,
        ) {
            if let Ok(out) = from_plain(&plain, size, "p") {
                prop_assert_eq!(out.len() as u64, size);
            }
        }
    }
}
