//! Shared inputs for the criterion benches: deterministic feed-like data.

/// `len` bytes of feed-like JSON lines (the synthetic vulnerability feed), for seed `seed`.
pub fn feed_like(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 4096);
    // Writing into a Vec cannot fail.
    let _ = ouk_testdata::write_feed_like(&mut out, seed, len as u64);
    out.truncate(len);
    out
}
