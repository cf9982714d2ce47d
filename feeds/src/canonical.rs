//! Canonical JSON of a feed row, and its SHA-256 (the index's [`RowHash`]).
//!
//! The canonical form of a parsed JSON value is:
//!
//! - no whitespace anywhere outside strings;
//! - object members sorted by key, comparing the keys' UTF-8 bytes (so `"B" < "a"`); a key
//!   that appears twice in the input keeps its last value (serde_json's rule) and is
//!   written once;
//! - strings as serde_json writes them: `"` and `\` escaped, the control characters
//!   U+0000..U+001F as `\b \t \n \f \r` or `\u00XX` (lowercase hex), everything else
//!   (including `/`, non-ASCII and U+007F) as raw UTF-8 — so `"\u00e9"` and `"é"` are the
//!   same string, and so are `"\/"` and `"/"`;
//! - numbers as serde_json writes them after parsing (with its `float_roundtrip` feature,
//!   so a number parses to the correctly rounded `f64`): an integer without fraction or
//!   exponent that fits `u64`/`i64` in decimal (`-5`, `18446744073709551615`); every other
//!   number (fractions, exponents, `-0`, integers too large) as the shortest text that
//!   reads back as the same `f64`, with a `.0` or an exponent (`1.0`, `1e+300`, `100.0` for
//!   `1e2`, `-0.0` for `-0`); so `1.0`, `1.00` and `1e0` are one number, and `1` is
//!   another;
//! - arrays in their given order; `true`, `false`, `null` as themselves.
//!
//! Invariant: two inputs that parse to the same value (whatever their key order,
//! whitespace, escapes or number spelling as above) have the same canonical bytes and so
//! the same hash; the key order never depends on serde_json's map type (keys are sorted
//! here, not by the map).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::index::RowHash;

/// Append the canonical JSON of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_json(n, out),
        Value::String(s) => write_json(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

/// A number or string exactly as serde_json writes it (writing to a `Vec` cannot fail).
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The canonical JSON of `value`.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// SHA-256 of the canonical JSON of `value`, using `scratch` as the buffer.
pub fn row_hash_with(value: &Value, scratch: &mut Vec<u8>) -> RowHash {
    scratch.clear();
    write_canonical(value, scratch);
    RowHash(Sha256::digest(&scratch[..]).into())
}

/// SHA-256 of the canonical JSON of `value`.
pub fn row_hash(value: &Value) -> RowHash {
    row_hash_with(value, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(canonical_bytes(&v)).unwrap()
    }

    #[test]
    fn keys_are_sorted_by_bytes_and_whitespace_goes() {
        assert_eq!(
            canon(" { \"b\" : 1 ,\n\t\"a\" : [ 1 , { \"z\":null, \"B\":true } ] , \"é\":\"x\" } "),
            r#"{"a":[1,{"B":true,"z":null}],"b":1,"é":"x"}"#
        );
        assert_eq!(
            canon("{\"a\":1,\"a\":2}"),
            r#"{"a":2}"#,
            "last duplicate wins"
        );
    }

    #[test]
    fn escapes_are_normalized() {
        assert_eq!(canon(r#""\u00e9\/\u0041""#), "\"é/A\"");
        assert_eq!(
            canon(r#""\u0001\n\t\"\\\u007f""#),
            "\"\\u0001\\n\\t\\\"\\\\\u{7f}\""
        );
        assert_eq!(canon(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(canon(r#"{"\u0061":1}"#), r#"{"a":1}"#);
    }

    #[test]
    fn number_forms() {
        assert_eq!(
            canon("[1, -0, 1.0, 1.00, 1e0, 1e2, 1E+2, 0.1, -5, 18446744073709551615]"),
            "[1,-0.0,1.0,1.0,1.0,100.0,100.0,0.1,-5,18446744073709551615]"
        );
        assert_eq!(
            canon("[1e300, 123456789012345678901234567890]"),
            "[1e+300,1.2345678901234568e+29]"
        );
        assert_ne!(
            canon("1"),
            canon("1.0"),
            "an integer and a float are different numbers"
        );
    }

    #[test]
    fn hash_is_sha256_of_the_canonical_bytes() {
        let v: Value = serde_json::from_str("{\"b\":2, \"a\":1}").unwrap();
        let expected: [u8; 32] = Sha256::digest(br#"{"a":1,"b":2}"#).into();
        assert_eq!(row_hash(&v).0, expected);
    }

    /// A JSON value with its keys in some order, written with some whitespace.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-zA-Z0-9 é\"\\\\/\\n\\u{1}]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-dA-D_é]{0,4}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Write `v` with members in an order given by `seed` and whitespace everywhere.
    fn reformat(v: &Value, seed: u64, out: &mut String) {
        let ws = |out: &mut String, n: u64| {
            out.push_str(["", " ", "\n", "\t ", "\r\n"][(n % 5) as usize])
        };
        ws(out, seed);
        match v {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reformat(item, seed.wrapping_mul(31).wrapping_add(i as u64), out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                members.sort_by_key(|(k, _)| {
                    let mut h = seed;
                    for b in k.bytes() {
                        h = h.wrapping_mul(0x100000001b3) ^ u64::from(b);
                    }
                    h
                });
                out.push('{');
                for (i, (k, item)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Escape every key character as \uXXXX half the time.
                    if seed.is_multiple_of(2) {
                        out.push('"');
                        for u in k.encode_utf16() {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                        out.push('"');
                    } else {
                        out.push_str(&serde_json::to_string(k).unwrap());
                    }
                    ws(out, seed >> 3);
                    out.push(':');
                    reformat(item, seed.wrapping_mul(17).wrapping_add(i as u64), out);
                }
                out.push('}');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
        ws(out, seed >> 5);
    }

    proptest! {
        #[test]
        fn reformatting_and_reordering_keeps_the_hash(v in arb_json(), seed in any::<u64>()) {
            let mut text = String::new();
            reformat(&v, seed, &mut text);
            let reparsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(row_hash(&reparsed), row_hash(&v));
            let compact = serde_json::to_string(&v).unwrap();
            let again: Value = serde_json::from_str(&compact).unwrap();
            prop_assert_eq!(canonical_bytes(&again), canonical_bytes(&v));
        }
    }
}
