//! RFC 3339 timestamps, normalized to the one form SPDX 2.3 accepts and the provenance
//! uses: `YYYY-MM-DDThh:mm:ssZ` (UTC, whole seconds).
//!
//! Accepted input: `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)` (`T`/`Z` in either case).
//! Offsets are applied; fractions are dropped (truncated toward the earlier second);
//! leap seconds (`:60`) are refused. Times are always passed in by the caller: nothing here
//! reads the clock, so outputs stay reproducible.

/// Normalizes an RFC 3339 timestamp to `YYYY-MM-DDThh:mm:ssZ`; `None` if it is not one
/// or falls outside years 0001..=9999 after applying the offset.
pub fn normalize_rfc3339(s: &str) -> Option<String> {
    let secs = parse_rfc3339(s)?;
    format_utc(secs)
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at).is_some_and(|&x| x == c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && (sep(10, b'T') || sep(10, b't'))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(&c @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Serializes Unix seconds as RFC 3339 (`#[serde(serialize_with = ...)]`): JSON outputs give
/// times as RFC 3339 strings while the records they come from keep seconds. A time outside
/// years 0001..=9999 is written as its number of seconds rather than failing the output.
pub fn serialize_unix_as_rfc3339<S: serde::Serializer>(
    secs: &i64,
    s: S,
) -> Result<S::Ok, S::Error> {
    match format_utc(*secs) {
        Some(t) => s.serialize_str(&t),
        None => s.serialize_i64(*secs),
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` of Unix seconds, for years 0001..=9999.
pub fn format_utc(secs: i64) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_valid_timestamps() {
        for (input, want) in [
            ("2025-10-23T00:00:00Z", "2025-10-23T00:00:00Z"),
            ("2025-10-23t12:34:56z", "2025-10-23T12:34:56Z"),
            ("2025-10-23T00:00:00.999Z", "2025-10-23T00:00:00Z"),
            ("2025-10-23T02:30:00+02:30", "2025-10-23T00:00:00Z"),
            ("2025-12-31T23:00:00-01:00", "2026-01-01T00:00:00Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
            ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(normalize_rfc3339(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86_400));
        assert_eq!(parse_rfc3339("2025-10-23T00:00:00Z"), Some(1_761_177_600));
    }

    #[test]
    fn refuses_invalid_timestamps() {
        for input in [
            "",
            "2025-10-23",
            "2025-10-23 00:00:00Z",
            "2025-10-23T00:00:00",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-10-23T24:00:00Z",
            "2025-10-23T00:00:60Z",
            "2025-10-23T00:00:00.Z",
            "2025-10-23T00:00:00+0200",
            "2025-10-23T00:00:00Zjunk",
            "２０２５-10-23T00:00:00Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(normalize_rfc3339(input), None, "{input}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
