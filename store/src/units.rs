//! Byte sizes as people write them: `4GiB`, `700MiB`, `500MB`, `64 KiB`, `1000000`.
//!
//! The one parser of size arguments (the `ouk` flags `--part-size`, `--free-margin`, the
//! serve quotas, and `ouk-testdata --size/--bytes`), so every tool accepts the same
//! grammar:
//!
//! - a decimal integer (no sign, no fraction), optionally followed by blanks and a unit;
//! - units, case-insensitive: none or `b` (bytes); `k`/`kb`, `m`/`mb`, `g`/`gb`, `t`/`tb`
//!   (powers of 1000); `kib`, `mib`, `gib`, `tib` (powers of 1024);
//! - blanks around the whole text are ignored.
//!
//! Invariants: the value is exactly number x unit or an error (an overflow of u64 is
//! [`SizeError::TooLarge`], never a wrapped value); [`format_size`] writes text that
//! [`parse_size_or_zero`] reads back to the same number.

use thiserror::Error;

/// Why a size text was refused. The messages are the ones `ouk` has always printed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// The text does not start with a decimal integer.
    #[error("invalid size {text:?} (examples: 4GiB, 700MiB, 1000000)")]
    Number {
        /// The text as given.
        text: String,
    },
    /// The integer is followed by something that is not a known unit.
    #[error("invalid size unit in {text:?} (use KiB, MiB, GiB, ...)")]
    Unit {
        /// The text as given.
        text: String,
    },
    /// Number x unit does not fit in 64 bits.
    #[error("size {text:?} is too large")]
    TooLarge {
        /// The text as given.
        text: String,
    },
    /// 0 where at least one byte is needed (see [`parse_size`]).
    #[error("the size must be at least 1 byte")]
    Zero,
}

/// The units, lower case, with their multipliers. Binary units first: [`format_size`] takes
/// the first (largest) that divides a value exactly, and binary ones read better for sizes
/// that are powers of two.
const UNITS: [(&str, u64); 8] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

/// The multiplier of a unit (already trimmed), or `None` when it is not one.
fn multiplier(unit: &str) -> Option<u64> {
    match unit.to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "k" => Some(1_000),
        "m" => Some(1_000_000),
        "g" => Some(1_000_000_000),
        "t" => Some(1_000_000_000_000),
        lower => UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(lower))
            .map(|&(_, mult)| mult),
    }
}

/// Parses a size in the grammar of the module docs; 0 is a valid answer (a margin, a
/// count of bytes to write).
pub fn parse_size_or_zero(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    // Only digits reach `parse`, so its one failure besides "empty" is an overflow; both
    // read as a bad number, as they always have.
    let n: u64 = number.parse().map_err(|_| SizeError::Number {
        text: text.to_string(),
    })?;
    let mult = multiplier(unit.trim()).ok_or_else(|| SizeError::Unit {
        text: text.to_string(),
    })?;
    n.checked_mul(mult).ok_or_else(|| SizeError::TooLarge {
        text: text.to_string(),
    })
}

/// [`parse_size_or_zero`] for sizes that must hold at least one byte (a part size, a quota).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    match parse_size_or_zero(text)? {
        0 => Err(SizeError::Zero),
        v => Ok(v),
    }
}

/// `bytes` in the largest unit that divides it exactly (`4GiB`, `500MB`, `1234`): exact,
/// never rounded, so [`parse_size_or_zero`] reads it back to `bytes`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    match UNITS.iter().find(|&&(_, mult)| bytes.is_multiple_of(mult)) {
        Some(&(name, mult)) => format!("{}{name}", bytes / mult),
        None => bytes.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_grammar_of_both_former_parsers() {
        // Examples of the CLI's parser.
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("700MiB"), Ok(700 << 20));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2tib"), Ok(2 << 40));
        assert_eq!(parse_size("3T"), Ok(3_000_000_000_000));
        assert_eq!(parse_size("3tb"), Ok(3_000_000_000_000));
        // Examples of ouk-testdata's parser.
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1234"), Ok(1234));
        // Every unit, any case, blanks around.
        for (text, want) in [
            ("7b", 7),
            ("7B", 7),
            ("7k", 7_000),
            ("7kb", 7_000),
            ("7KiB", 7 << 10),
            ("7m", 7_000_000),
            ("7Mb", 7_000_000),
            ("7mib", 7 << 20),
            ("7g", 7_000_000_000),
            ("7GB", 7_000_000_000),
            ("7GIB", 7 << 30),
            ("  7 MiB  ", 7 << 20),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_size_or_zero("0"), Ok(0));
        assert_eq!(parse_size_or_zero("0GiB"), Ok(0));
        for bad in ["", "GiB", "MiB", "-1", " ", "+5"] {
            assert!(
                matches!(parse_size_or_zero(bad), Err(SizeError::Number { .. })),
                "{bad:?}"
            );
        }
        for bad in ["12XB", "1.5GiB", "5 Gi B", "5PiB", "5 bytes"] {
            assert!(
                matches!(parse_size_or_zero(bad), Err(SizeError::Unit { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_size("99999999999GiB"),
            Err(SizeError::TooLarge { .. })
        ));
        // More digits than u64 holds: a bad number, as before.
        assert!(matches!(
            parse_size("99999999999999999999999"),
            Err(SizeError::Number { .. })
        ));
    }

    #[test]
    fn messages_are_the_ones_ouk_printed() {
        let msg = |s: &str| parse_size(s).unwrap_err().to_string();
        assert_eq!(
            msg("x"),
            "invalid size \"x\" (examples: 4GiB, 700MiB, 1000000)"
        );
        assert_eq!(
            msg("12XB"),
            "invalid size unit in \"12XB\" (use KiB, MiB, GiB, ...)"
        );
        assert_eq!(
            msg("99999999999TiB"),
            "size \"99999999999TiB\" is too large"
        );
        assert_eq!(msg("0"), "the size must be at least 1 byte");
    }

    #[test]
    fn formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(4 << 30), "4GiB");
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(500_000_000), "500MB");
        assert_eq!(format_size(1234), "1234");
        assert_eq!(format_size(u64::MAX), u64::MAX.to_string());
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_round_trips(bytes in any::<u64>()) {
            prop_assert_eq!(parse_size_or_zero(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn unit_multiples_round_trip(n in 0u64..1 << 20, unit in 0usize..UNITS.len()) {
            let bytes = n * UNITS[unit].1;
            prop_assert_eq!(parse_size_or_zero(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,24}") {
            let _ = parse_size_or_zero(&text);
        }
    }
}
