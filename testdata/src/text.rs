//! Fast text building for generated records: appending JSON strings, numbers, hex and
//! timestamps to a byte buffer without going through `fmt` on the hot path.

/// Start of the synthetic release calendar: day 0 is 2025-10-23T00:00:00Z.
pub const T0: i64 = 1_761_177_600;
/// Seconds per day.
pub const DAY: i64 = 86_400;

/// The instant (Unix seconds) at which the tree of `day` is cut.
pub fn day_start(day: u32) -> i64 {
    T0 + i64::from(day) * DAY
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Converts a civil date to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append helpers for byte buffers holding generated text.
pub trait Push {
    /// Raw text.
    fn s(&mut self, s: &str);
    /// A JSON string literal (quoted and escaped).
    fn q(&mut self, s: &str);
    /// An unsigned decimal.
    fn u(&mut self, v: u64);
    /// An unsigned decimal, zero-padded to `width` digits.
    fn u0(&mut self, v: u64, width: usize);
    /// `v / 10` with one decimal, e.g. 75 -> "7.5".
    fn tenth(&mut self, v: u32);
    /// `n` lowercase hex digits of `v` (most significant first, n <= 16).
    fn hexn(&mut self, v: u64, n: usize);
    /// RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SSZ`.
    fn ts(&mut self, secs: i64);
    /// NVD 2.0 style timestamp, `YYYY-MM-DDTHH:MM:SS.mmm`.
    fn ts_nvd(&mut self, secs: i64, millis: u32);
    /// Date only, `YYYY-MM-DD`.
    fn date(&mut self, secs: i64);
}

impl Push for Vec<u8> {
    #[inline]
    fn s(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn q(&mut self, s: &str) {
        self.push(b'"');
        for &b in s.as_bytes() {
            match b {
                b'"' => self.extend_from_slice(b"\\\""),
                b'\\' => self.extend_from_slice(b"\\\\"),
                b'\n' => self.extend_from_slice(b"\\n"),
                0..=0x1f => {
                    self.extend_from_slice(b"\\u00");
                    self.push(HEX[(b >> 4) as usize]);
                    self.push(HEX[(b & 15) as usize]);
                }
                _ => self.push(b),
            }
        }
        self.push(b'"');
    }

    #[inline]
    fn u(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.extend_from_slice(&tmp[i..]);
    }

    #[inline]
    fn u0(&mut self, v: u64, width: usize) {
        let mut tmp = [b'0'; 20];
        let mut i = tmp.len();
        let mut x = v;
        loop {
            i -= 1;
            tmp[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        let start = i.min(tmp.len().saturating_sub(width));
        self.extend_from_slice(&tmp[start..]);
    }

    #[inline]
    fn tenth(&mut self, v: u32) {
        self.u(u64::from(v / 10));
        self.push(b'.');
        self.push(b'0' + (v % 10) as u8);
    }

    #[inline]
    fn hexn(&mut self, v: u64, n: usize) {
        for k in (0..n.min(16)).rev() {
            self.push(HEX[((v >> (4 * k)) & 15) as usize]);
        }
    }

    fn ts(&mut self, secs: i64) {
        self.date(secs);
        hms(self, secs);
        self.push(b'Z');
    }

    fn ts_nvd(&mut self, secs: i64, millis: u32) {
        self.date(secs);
        hms(self, secs);
        self.push(b'.');
        self.u0(u64::from(millis % 1000), 3);
    }

    fn date(&mut self, secs: i64) {
        let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
        self.u0(y.max(0) as u64, 4);
        self.push(b'-');
        self.u0(u64::from(m), 2);
        self.push(b'-');
        self.u0(u64::from(d), 2);
    }
}

fn hms(out: &mut Vec<u8>, secs: i64) {
    let sod = secs.rem_euclid(DAY) as u64;
    out.push(b'T');
    out.u0(sod / 3600, 2);
    out.push(b':');
    out.u0(sod / 60 % 60, 2);
    out.push(b':');
    out.u0(sod % 60, 2);
}

/// RFC 3339 timestamp as an owned string.
pub fn rfc3339(secs: i64) -> String {
    let mut v = Vec::with_capacity(20);
    v.ts(secs);
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(T0), "2025-10-23T00:00:00Z");
        assert_eq!(rfc3339(day_start(9) + 3661), "2025-11-01T01:01:01Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(days_from_civil(2025, 10, 23) * DAY, T0);
        assert_eq!(days_from_civil(2000, 2, 29) * DAY, 951_782_400);
        for z in [-1000, 0, 59, 60, 11_016, 20_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let mut v = Vec::new();
        v.ts_nvd(T0 + 59, 7);
        assert_eq!(v, b"2025-10-23T00:00:59.007");
    }

    #[test]
    fn numbers_and_strings() {
        let mut v = Vec::new();
        v.u(0);
        v.s(" ");
        v.u(18_446_744_073_709_551_615);
        v.s(" ");
        v.u0(42, 5);
        v.s(" ");
        v.tenth(75);
        v.s(" ");
        v.hexn(0xabc, 4);
        v.s(" ");
        v.q("a\"b\\c\n\u{1}");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "0 18446744073709551615 00042 7.5 0abc \"a\\\"b\\\\c\\n\\u0001\""
        );
    }
}
