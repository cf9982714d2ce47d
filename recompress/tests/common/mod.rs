//! Helpers shared by the recompress test files.
#![allow(dead_code)]

use ouk_recompress::{Analysis, Format, Limits, RecompressError, analyze, decode, rebuild};

/// Analyze `input`, check the plain form equals `decode`'s, rebuild it and check it gives
/// `input` byte for byte. Returns the analysis.
pub fn round_trip(input: &[u8]) -> Analysis {
    try_round_trip(input).unwrap_or_else(|e| panic!("analyze failed: {e}"))
}

/// Like [`round_trip`], but a `NotExact` (or other) error from analyze is returned instead
/// of failing; when analyze succeeds, the rebuild must be exact.
pub fn try_round_trip(input: &[u8]) -> Result<Analysis, RecompressError> {
    try_round_trip_with(input, &Limits::default())
}

/// [`try_round_trip`] under other limits.
pub fn try_round_trip_with(input: &[u8], limits: &Limits) -> Result<Analysis, RecompressError> {
    let limits = limits.clone();
    let mut plain = Vec::new();
    let a = analyze(&mut &input[..], &mut plain, &limits)?;
    assert_eq!(a.plain_size, plain.len() as u64);
    let mut decoded = Vec::new();
    let (format, size) = decode(&mut &input[..], &mut decoded, &limits).expect("decode");
    assert_eq!(format, a.format);
    assert_eq!(size, decoded.len() as u64);
    assert!(
        decoded == plain,
        "decode's plain form differs from analyze's"
    );
    let mut out = Vec::new();
    let n = rebuild(&a.recipe, &mut &plain[..], &mut out, &limits).expect("rebuild");
    assert_eq!(n, out.len() as u64);
    assert!(
        out == input,
        "rebuild is not the original ({} vs {} bytes)",
        out.len(),
        input.len()
    );
    Ok(a)
}

/// Deterministic text-like data: words from a small vocabulary (compresses like source).
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn",
        "let",
        "mut",
        "impl",
        "struct",
        "self",
        "return",
        "match",
        "Some",
        "None",
        "delta",
        "chunk",
        "store",
        "kit",
        "import",
        "verify",
        "signature",
        "{",
        "}",
        "(",
        ")",
        ";",
        "\n",
        "    ",
        "0x1f",
        "42",
        "recipe",
        "plain",
        "=>",
        "&mut",
    ];
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[((s >> 33) % WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// The format of a gzip, zip or zstd file.
pub fn format_of(a: &Analysis) -> Format {
    a.format
}
