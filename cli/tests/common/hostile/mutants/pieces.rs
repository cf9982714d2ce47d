//! Attacks on the patch pieces of a delta: bits flipped inside each piece's encoded bytes
//! and edits of each piece's header.

use super::*;

/// An edit of a JSON value.
type JsonEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// Attacks on the patch pieces of a delta (`zstd-ref`, `bsdiff` and plain `zstd`): bits
/// flipped inside each piece's encoded bytes, and header edits of each piece (encoding
/// swapped, reference moved, lengths changed). Each must be refused with 2 or 11. Each
/// mutant comes with the encoding of the piece it attacks.
pub fn piece_mutants(d: &Kit, rng: &mut ChaCha8Rng) -> Vec<(String, Mutant)> {
    let h = d.member("delta/delta.json").unwrap();
    let header: serde_json::Value = serde_json::from_slice(d.data(h)).unwrap();
    let p = d.member("delta/payload.bin").unwrap();
    let mut out = Vec::new();
    let files = header["files"].as_array().unwrap();
    for (fi, f) in files.iter().enumerate() {
        let Some(pieces) = f["source"]["pieces"].as_array() else {
            continue;
        };
        for (pi, piece) in pieces.iter().enumerate() {
            let enc = piece["encoding"].as_str().unwrap().to_string();
            let (off, len) = (
                piece["offset"].as_u64().unwrap() as usize,
                piece["length"].as_u64().unwrap() as usize,
            );
            let what = format!(
                "{} piece {pi} ({enc}, {len} bytes)",
                f["path"].as_str().unwrap()
            );
            for k in 0..6 {
                let mut t = d.tar.clone();
                let at = match k {
                    0 => 0,
                    1 => len - 1,
                    _ => rng.random_range(0..len),
                };
                t[p.data + off + at] ^= 1 << rng.random_range(0..8);
                out.push((
                    enc.clone(),
                    Mutant::new(
                        "piece-bytes",
                        format!("{what}: bit flipped at {at}"),
                        d,
                        gzip(&t),
                    )
                    .expect(&[2, 11]),
                ));
            }
            let edits: Vec<(&str, JsonEdit)> = vec![
                (
                    "encoding swapped",
                    Box::new(|v: &mut serde_json::Value| {
                        let e = v["encoding"].as_str().unwrap_or("zstd").to_string();
                        v["encoding"] = match e.as_str() {
                            "zstd-ref" => "bsdiff",
                            "zstd" => "zstd-ref",
                            _ => "zstd-ref",
                        }
                        .into();
                    }),
                ),
                (
                    "encoding zstd without its reference",
                    Box::new(|v: &mut serde_json::Value| {
                        v["encoding"] = "zstd".into();
                    }),
                ),
                (
                    "size one byte more",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["size"].as_u64().unwrap();
                        v["size"] = (s + 1).into();
                    }),
                ),
                (
                    "length one byte less",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["length"].as_u64().unwrap();
                        v["length"] = s.saturating_sub(1).into();
                    }),
                ),
                (
                    "offset one byte on",
                    Box::new(|v: &mut serde_json::Value| {
                        let s = v["offset"].as_u64().unwrap();
                        v["offset"] = (s + 1).into();
                    }),
                ),
                (
                    "reference shifted",
                    Box::new(|v: &mut serde_json::Value| {
                        if let Some(o) = v["reference"]["offset"].as_u64() {
                            v["reference"]["offset"] = (o + 7).into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference past its file",
                    Box::new(|v: &mut serde_json::Value| {
                        if v["reference"].is_object() {
                            v["reference"]["offset"] = (1u64 << 40).into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference to another file",
                    Box::new(|v: &mut serde_json::Value| {
                        if v["reference"].is_object() {
                            v["reference"]["path"] = "manifest/offline-manifest.json".into();
                        } else {
                            v["size"] = 0.into();
                        }
                    }),
                ),
                (
                    "reference to a missing file",
                    Box::new(|v: &mut serde_json::Value| {
                        v["reference"] =
                            serde_json::json!({"path": "no/such/file", "offset": 0, "length": 10});
                        v["encoding"] = "zstd-ref".into();
                    }),
                ),
            ];
            for (label, edit) in edits {
                out.push((
                    enc.clone(),
                    delta_header_mutant(d, &format!("{what}: {label}"), |v| {
                        edit(&mut v["files"][fi]["source"]["pieces"][pi])
                    })
                    .expect(&[2, 11]),
                ));
            }
        }
    }
    out
}
