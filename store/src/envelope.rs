//! Versioned envelope around postcard-encoded records.
//!
//! Every structured record ouk persists (store header, file records, chunk-set manifests,
//! generation records) is `magic (4) | version (u16 LE) | postcard payload`. postcard has a
//! documented, stable wire format, but no schema evolution of its own: the envelope's
//! version is how a reader tells which struct layout follows and refuses what it does not
//! know, instead of mis-decoding it. (bincode is not used: its newest release is an empty
//! crate and the line is unmaintained; see `docs/architecture.md`.)

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an envelope did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than the envelope header.
    #[error("record truncated")]
    Truncated,
    /// Another record kind.
    #[error("record kind {found:?}, expected {expected:?}")]
    WrongKind {
        /// Magic found.
        found: [u8; 4],
        /// Magic expected.
        expected: [u8; 4],
    },
    /// A version this build does not read.
    #[error("record version {found} is newer than this ouk reads (up to {supported})")]
    UnsupportedVersion {
        /// Version found.
        found: u16,
        /// Highest supported.
        supported: u16,
    },
    /// The payload did not decode.
    #[error("record payload: {0}")]
    Payload(String),
}

impl EnvelopeError {
    /// Always [`crate::ErrorClass::Digest`]: a record that does not open is damaged data.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Digest
    }
}

/// Encode `value` as an envelope of `kind` at `version`.
pub fn seal<T: Serialize>(kind: [u8; 4], version: u16, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&kind);
    out.extend_from_slice(&version.to_le_bytes());
    // Serializing our own structs into a Vec cannot fail (no maps with non-string keys,
    // no unsupported types); a failure would be a programming error caught by tests.
    postcard::to_io(value, &mut out).expect("postcard encodes ouk records");
    out
}

/// Decode an envelope of `kind`, accepting versions up to `supported`. Returns the version
/// found with the payload, so a caller can pick the struct for older versions.
pub fn open<T: DeserializeOwned>(
    kind: [u8; 4],
    supported: u16,
    bytes: &[u8],
) -> Result<(u16, T), EnvelopeError> {
    if bytes.len() < 6 {
        return Err(EnvelopeError::Truncated);
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&bytes[..4]);
    if found != kind {
        return Err(EnvelopeError::WrongKind {
            found,
            expected: kind,
        });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version == 0 || version > supported {
        return Err(EnvelopeError::UnsupportedVersion {
            found: version,
            supported,
        });
    }
    let (value, rest) = postcard::take_from_bytes(&bytes[6..])
        .map_err(|e| EnvelopeError::Payload(e.to_string()))?;
    if !rest.is_empty() {
        return Err(EnvelopeError::Payload(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok((version, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        a: u64,
        b: Vec<String>,
    }

    proptest! {
        #[test]
        fn round_trip(a: u64, b: Vec<String>) {
            let r = Rec { a, b };
            let bytes = seal(*b"TEST", 1, &r);
            prop_assert_eq!(open::<Rec>(*b"TEST", 1, &bytes).unwrap(), (1, r));
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = open::<Rec>(*b"TEST", 1, &bytes);
        }
    }

    #[test]
    fn refuses_other_kind_newer_version_and_trailing_bytes() {
        let r = Rec { a: 1, b: vec![] };
        let bytes = seal(*b"TEST", 2, &r);
        assert!(matches!(
            open::<Rec>(*b"TEST", 1, &bytes),
            Err(EnvelopeError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            open::<Rec>(*b"OTHR", 2, &bytes),
            Err(EnvelopeError::WrongKind { .. })
        ));
        let mut long = seal(*b"TEST", 1, &r);
        long.push(0);
        assert!(matches!(
            open::<Rec>(*b"TEST", 1, &long),
            Err(EnvelopeError::Payload(_))
        ));
    }
}
