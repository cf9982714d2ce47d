//! An OSV-like archive for the zip tests: many small JSON members, about one in a hundred
//! revised on day 1, written by the `zip` crate, and its uncompressed twin.

use std::io::{Cursor, Write};

use super::Rng;

const WORDS: [&str; 16] = [
    "buffer",
    "overflow",
    "parser",
    "allows",
    "remote",
    "attackers",
    "execute",
    "arbitrary",
    "code",
    "crafted",
    "request",
    "denial",
    "service",
    "component",
    "improper",
    "validation",
];

/// The members of an OSV-like archive: (name, JSON row); on `day` 1 about one member in
/// a hundred is revised (its row changes length, so every later member moves).
pub fn members(n: usize, day: u32) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x05f1);
    (0..n)
        .map(|i| {
            let a = rng.next();
            let revised = day > 0 && a % 100 == 7;
            let words: Vec<&str> = (0..6 + (a >> 50) % 12)
                .map(|_| WORDS[(rng.next() % WORDS.len() as u64) as usize])
                .collect();
            let extra = if revised { " (revised upstream)" } else { "" };
            let row = format!(
                "{{\"id\": \"GHSA-{i:05}\", \"summary\": \"{}{extra}\", \"modified\": \"2025-10-{:02}T00:00:00Z\"}}\n",
                words.join(" "),
                if revised { 24 } else { 1 + (a >> 40) % 22 },
            );
            (format!("GHSA-{i:05}.json"), row.into_bytes())
        })
        .collect()
}

/// The archive as the `zip` crate writes it (deflate level 6, a fixed time).
pub fn zip_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2025, 10, 23, 0, 0, 0).unwrap();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(time);
    for (name, row) in members {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(row).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// The plain twin: each member's name and row back to back.
pub fn twin_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, row) in members {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(row);
    }
    out
}
