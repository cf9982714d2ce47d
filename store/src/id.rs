//! Identifiers: [`ChunkId`] (BLAKE3-256 of a raw chunk) and [`FileDigest`] (SHA-256 of a
//! whole file, the digest users see in manifests, `sha256sum` and cosign).
//!
//! Both are plain 32-byte values; their text form is lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serialize a 32-byte digest: lowercase hex in human-readable formats (JSON), the raw 32
/// bytes in binary ones (postcard), where it is part of a canonical encoding.
pub fn serialize_digest<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(bytes))
    } else {
        bytes.serialize(s)
    }
}

/// The inverse of [`serialize_digest`].
pub fn deserialize_digest<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    if d.is_human_readable() {
        let text = String::deserialize(d)?;
        parse_hex32(&text).map_err(serde::de::Error::custom)
    } else {
        <[u8; 32]>::deserialize(d)
    }
}

/// Error parsing a hex digest.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {text:?}: expected 64 lowercase hex characters")]
pub struct ParseDigestError {
    /// The text that did not parse (cut to 80 characters).
    pub text: String,
}

impl ParseDigestError {
    /// Always [`crate::ErrorClass::Validation`]: the text given is not a digest.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Validation
    }
}

fn parse_hex32(s: &str) -> Result<[u8; 32], ParseDigestError> {
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(ParseDigestError {
            text: s.chars().take(80).collect(),
        });
    }
    Ok(out)
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_digest(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_digest(d).map($name)
            }
        }

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..16])
            }
        }

        impl FromStr for $name {
            type Err = ParseDigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map($name)
            }
        }
    };
}

digest_type!(
    /// BLAKE3-256 of a chunk's raw (uncompressed) bytes: the chunk's name in the store.
    ChunkId
);
digest_type!(
    /// SHA-256 of a whole file's bytes.
    FileDigest
);

impl ChunkId {
    /// The id of `data`.
    pub fn of(data: &[u8]) -> Self {
        ChunkId(*blake3::hash(data).as_bytes())
    }
}

impl FileDigest {
    /// The SHA-256 of `data` (for small in-memory values; files are hashed while streaming).
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        FileDigest(sha2::Sha256::digest(data).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_values() {
        let id = ChunkId::of(b"");
        assert_eq!(
            id.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        let d = FileDigest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!("xyz".parse::<FileDigest>().is_err());
        assert!("AF".repeat(32).parse::<FileDigest>().is_ok());
    }

    #[test]
    fn json_is_hex_and_postcard_is_raw() {
        let id = ChunkId([0xab; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        let bin = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<ChunkId>(&bin).unwrap(), id);
    }
}
