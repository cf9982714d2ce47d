//! Deterministic hashing and byte generation: every value in a generated tree is a pure
//! function of the seed and a few integers, computed with these primitives.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finalizer: a fast, well-mixed bijection on `u64`.
#[inline]
pub const fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a tuple of integers into one well-mixed `u64`.
#[inline]
pub fn h(parts: &[u64]) -> u64 {
    let mut acc: u64 = 0x5851_F42D_4C95_7F2D;
    for &p in parts {
        acc = splitmix(acc ^ splitmix(p));
    }
    acc
}

/// Hashes a string into a `u64` (FNV-1a, then mixed), for domain keys such as names.
pub fn hs(s: &str) -> u64 {
    let mut acc: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        acc ^= u64::from(b);
        acc = acc.wrapping_mul(0x0100_0000_01B3);
    }
    splitmix(acc)
}

/// A tiny counter-based generator (SplitMix64 stream) for per-record draws.
#[derive(Clone, Debug)]
pub struct Sm(u64);

impl Sm {
    pub fn new(key: u64) -> Self {
        Sm(key)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n == 0` yields 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Picks one element of a non-empty slice.
    #[inline]
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent / 100`.
    #[inline]
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `(0, 1]`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Number of Bernoulli(`p`) trials up to and including the first success (>= 1).
    #[inline]
    pub fn geometric(&mut self, ln_one_minus_p: f64) -> u64 {
        let g = (self.unit().ln() / ln_one_minus_p).floor();
        if g >= 1.0e15 {
            1_000_000_000_000_000
        } else {
            g as u64 + 1
        }
    }
}

/// Skewed byte alphabet: squaring a uniform byte concentrates values near zero, giving
/// roughly 5.5 bits of entropy per byte (compressible, but not trivially).
const fn skew_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ((i * i) >> 10) as u8;
        i += 1;
    }
    t
}
static SKEW: [u8; 256] = skew_table();

const FILL_PAGE: usize = 4096;

/// Fills `buf` with "binary-looking" bytes that compress about 2:1: a page-by-page mix of
/// random bytes, skewed-entropy bytes, string tables, sparse tables and near-repeats.
/// The content is a pure function of `key` and `buf.len()`.
pub fn fill_binary(buf: &mut [u8], key: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut sm = Sm::new(splitmix(key ^ 0xB1A5_B1A5));
    let len = buf.len();
    let mut off = 0;
    while off < len {
        let end = (off + FILL_PAGE).min(len);
        let kind = sm.below(100);
        if kind < 25 {
            rng.fill_bytes(&mut buf[off..end]);
        } else if kind < 60 {
            rng.fill_bytes(&mut buf[off..end]);
            let x = (sm.next() & 0x3f) as u8;
            for b in &mut buf[off..end] {
                *b = SKEW[*b as usize] ^ x;
            }
        } else if kind < 80 {
            fill_strings(&mut buf[off..end], &mut sm);
        } else if kind < 90 || off < FILL_PAGE {
            let page = &mut buf[off..end];
            page.fill(0);
            let stride = 4 + sm.below(13) as usize;
            let mut p = sm.below(stride as u64) as usize;
            while p < page.len() {
                page[p] = sm.next() as u8;
                p += stride;
            }
        } else {
            // A near-repeat of an earlier page, with a few bytes changed.
            let pages_before = off / FILL_PAGE;
            let src = sm.below(pages_before as u64) as usize * FILL_PAGE;
            let n = end - off;
            buf.copy_within(src..src + n, off);
            for _ in 0..8 {
                let p = off + sm.below(n as u64) as usize;
                buf[p] = sm.next() as u8;
            }
        }
        off = end;
    }
}

fn fill_strings(page: &mut [u8], sm: &mut Sm) {
    let words = crate::words::WORDS;
    let mut p = 0;
    while p < page.len() {
        let w = sm.pick(words).as_bytes();
        let n = w.len().min(page.len() - p);
        page[p..p + n].copy_from_slice(&w[..n]);
        p += n;
        if p < page.len() {
            page[p] = if sm.chance(30) { 0 } else { b'.' };
            p += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_deterministic_and_key_sensitive() {
        let mut a = vec![0u8; 50_000];
        let mut b = vec![0u8; 50_000];
        fill_binary(&mut a, 7);
        fill_binary(&mut b, 7);
        assert_eq!(a, b);
        fill_binary(&mut b, 8);
        assert_ne!(a, b);
    }

    #[test]
    fn geometric_mean_is_about_one_over_p() {
        let mut sm = Sm::new(1);
        let lp = (1.0f64 - 0.01).ln();
        let n = 20_000;
        let total: u64 = (0..n).map(|_| sm.geometric(lp)).sum();
        let mean = total as f64 / n as f64;
        assert!((90.0..110.0).contains(&mean), "mean {mean}");
    }
}
