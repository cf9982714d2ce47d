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

/// Raw deflate from madler zlib (the libz-sys build the crate links), as Python's zlib,
/// Node and Java write it: one deflateInit2 / deflate(Z_FINISH) / deflateEnd.
pub fn zlib_deflate(
    data: &[u8],
    level: i32,
    mem_level: i32,
    window_bits: i32,
    strategy: i32,
) -> Vec<u8> {
    use libz_sys as z;
    use std::os::raw::{c_int, c_uint, c_void};
    extern "C" fn zalloc(_: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
        // SAFETY: calloc has no preconditions.
        unsafe { libc::calloc(items as libc::size_t, size as libc::size_t) }
    }
    extern "C" fn zfree(_: *mut c_void, p: *mut c_void) {
        // SAFETY: zlib frees only what zalloc returned.
        unsafe { libc::free(p) }
    }
    let mut strm = Box::new(z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    });
    // SAFETY: a valid z_stream; the buffers outlive the calls; deflateEnd runs once.
    unsafe {
        let rc = z::deflateInit2_(
            &mut *strm,
            level,
            z::Z_DEFLATED,
            -window_bits,
            mem_level,
            strategy,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as c_int,
        );
        assert_eq!(rc, z::Z_OK);
        let mut out = vec![0u8; z::deflateBound(&mut *strm, data.len() as _) as usize + 64];
        strm.next_in = data.as_ptr().cast_mut();
        strm.avail_in = data.len() as c_uint;
        strm.next_out = out.as_mut_ptr();
        strm.avail_out = out.len() as c_uint;
        assert_eq!(z::deflate(&mut *strm, z::Z_FINISH), z::Z_STREAM_END);
        out.truncate(out.len() - strm.avail_out as usize);
        z::deflateEnd(&mut *strm);
        out
    }
}

/// A gzip member around `deflate` (of `data`), with the XFL byte Python's gzip writes.
pub fn gzip_member(data: &[u8], deflate: &[u8], level: i32) -> Vec<u8> {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0x5c, 0x2d, 0x8f, 0x68, xfl, 255];
    gz.extend_from_slice(deflate);
    gz.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    gz.extend_from_slice(&(data.len() as u32).to_le_bytes());
    gz
}

/// A gzip member of `data` as Go's HuffmanOnly writes it with a `Flush` after 10000 bytes:
/// no tier re-creates it (preflate refuses Go's incomplete Huffman codes, zlib does not
/// write them, and the Go tier re-creates single writes only), so it is carried verbatim.
pub fn go_huffman_only_flushed(data: &[u8]) -> Vec<u8> {
    use ouk_recompress::goflate::{GoDeflater, HUFFMAN_ONLY};
    let mut stream = Vec::new();
    let mut d = GoDeflater::new(HUFFMAN_ONLY).expect("level");
    let cut = data.len().min(10_000);
    d.write(&data[..cut], &mut stream).expect("write");
    d.flush(&mut stream).expect("flush");
    d.write(&data[cut..], &mut stream).expect("write");
    d.finish(&mut stream).expect("finish");
    gzip_member(data, &stream, 0)
}

/// A feed-like JSON document (vulnerability rows with random fields), deterministic.
pub fn feed_json(rows: usize, seed: u64) -> Vec<u8> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let mut out = b"[".to_vec();
    for _ in 0..rows {
        let row = format!(
            "{{\"id\":\"CVE-2025-{:05}\",\"score\":{}.{},\"vendor\":\"v{}\",\"summary\":\"issue {:04x}{:04x} in component {}\",\"modified\":\"2025-{:02}-{:02}\"}},",
            next() % 100_000,
            next() % 10,
            next() % 10,
            next() % 50,
            next() % 0x10000,
            next() % 0x10000,
            next() % 40,
            1 + next() % 12,
            1 + next() % 28
        );
        out.extend_from_slice(row.as_bytes());
    }
    out.push(b']');
    out
}

/// Random bytes from a small alphabet with zeros and an ELF magic (binary-ish data).
pub fn binaryish(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefgh\0\0\0\0\x7fELF";
    let mut s = seed ^ 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[((s >> 33) % ALPHABET.len() as u64) as usize]
        })
        .collect()
}
