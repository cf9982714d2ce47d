//! The row parser's fast path: parse a row into a borrowed tree and hash its canonical
//! JSON without building a `serde_json::Value`.
//!
//! Strings without escapes stay borrowed from the input, and are written back as they
//! came: JSON forbids raw control characters, `"` and `\` inside a string, so an
//! unescaped string's raw bytes are exactly what serde_json would write for it. Strings
//! with escapes are decoded and written by serde_json. Objects are vectors sorted by key
//! bytes, duplicates keeping their last value, as in [`super::canonical`].
//!
//! Invariant: for every input, [`parse`] + [`write`] give the same bytes as
//! `serde_json::from_slice::<Value>` + [`super::canonical::write_canonical`] (a proptest
//! checks both paths agree), and the same inputs are refused.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON value that borrows from its input where it can.
#[derive(Debug)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json parsed it.
    Num(serde_json::Number),
    /// A string; `Borrowed` means the input had no escapes in it.
    Str(Cow<'a, str>),
    /// An array.
    Arr(Vec<Node<'a>>),
    /// An object, sorted by key bytes, one member per key.
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Obj(members) => members
                .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
                .ok()
                .map(|i| &members[i].1),
            _ => None,
        }
    }
}

/// Parse `bytes` as one JSON value (serde_json's grammar, limits and errors).
pub fn parse(bytes: &[u8]) -> Result<Node<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let node = Node::deserialize(&mut de)?;
    de.end()?;
    Ok(node)
}

/// Append the canonical JSON of `node` to `out`.
pub fn write(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Num(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Node::Str(s) => write_str(s, out),
        Node::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Node::Obj(members) => {
            out.push(b'{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
    }
}

// The `Cow` variant is the information here (borrowed = no escapes), so not `&str`.
#[allow(clippy::ptr_arg)]
fn write_str(s: &Cow<'_, str>, out: &mut Vec<u8>) {
    match s {
        // No escapes in the input: its raw bytes need none (see the module doc).
        Cow::Borrowed(raw) => {
            out.push(b'"');
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(decoded) => {
            let _ = serde_json::to_writer(&mut *out, decoded.as_str());
        }
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Node::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Node::Num(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Node::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                // serde_json only parses finite numbers; a non-finite one is null, as in
                // `Value`.
                Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Num))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Node::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Node::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Node::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
                while let Some(CowStr(k)) = map.next_key()? {
                    let v = map.next_value()?;
                    members.push((k, v));
                }
                // Stable: among equal keys the last one given ends up last; keep it.
                members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let mut out: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(members.len());
                for m in members {
                    match out.last_mut() {
                        Some(last) if last.0 == m.0 => *last = m,
                        _ => out.push(m),
                    }
                }
                Ok(Node::Obj(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(text: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let slow = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| super::super::canonical::canonical_bytes(&v));
        let fast = parse(text.as_bytes()).ok().map(|n| {
            let mut out = Vec::new();
            write(&n, &mut out);
            out
        });
        (slow, fast)
    }

    #[test]
    fn agrees_with_the_value_path() {
        for text in [
            r#" {"b":1,"a":[1,-0,1.5e3,{"z":"\u00e9\n","y":null}],"a":"last","\u0061b":true} "#,
            r#""\/\ud83d\ude00\u007f""#,
            "[18446744073709551616, -9223372036854775809, 1e400]",
            "{\"\":{}, \"\\\"\":[]}",
            "{\"a\":1} x",
            "[1,]",
            "{\"a\" 1}",
        ] {
            let (slow, fast) = both(text);
            assert_eq!(slow, fast, "{text}");
        }
    }

    proptest! {
        #[test]
        fn agrees_on_arbitrary_text(text in r#"[\[\]{}",:a-c0-9.eE+\- \\u\n]{0,40}"#) {
            let (slow, fast) = both(&text);
            prop_assert_eq!(slow, fast);
        }

        #[test]
        fn agrees_on_json_with_escapes(keys in prop::collection::vec("[a-c\"\\\\/\\n\u{1}é]{0,3}", 0..6), n in any::<f64>()) {
            let mut text = String::from("{");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 { text.push(','); }
                text.push_str(&serde_json::to_string(k).unwrap());
                text.push(':');
                text.push_str(&serde_json::to_string(&serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)).unwrap());
            }
            text.push('}');
            let (slow, fast) = both(&text);
            prop_assert!(slow.is_some());
            prop_assert_eq!(slow, fast);
        }
    }
}
