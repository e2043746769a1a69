//! Parsing of the two unit-bearing value kinds in the config file: sizes
//! (`1048576`, `"512KiB"`, `"1MiB"`) and durations (`"250ms"`, `"10s"`,
//! `"5m"`, `"24h"`).
//!
//! These are user interface, so the errors say what was found and what is
//! allowed rather than echoing a parser's internals.

use std::time::Duration;

/// Units accepted for sizes, with their multipliers. Decimal (`KB`) and
/// binary (`KiB`) spellings are both accepted because users type both; `K`
/// alone is deliberately not, since it is ambiguous.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Units accepted for durations, with their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a size string such as `"512KiB"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text).ok_or_else(|| {
        format!(
            "{text:?} is not a size: use bytes (1048576) or a number with a unit (512KiB, 1MiB)"
        )
    })?;
    let unit = if unit.is_empty() { "B" } else { unit };
    let multiplier = SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            format!(
                "{text:?} has unknown size unit {unit:?}: use one of B, KiB, MiB, GiB, KB, MB, GB"
            )
        })?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration string such as `"250ms"` or `"5m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text).ok_or_else(|| {
        format!("{text:?} is not a duration: use a number with a unit (250ms, 10s, 5m, 24h)")
    })?;
    if unit.is_empty() {
        return Err(format!(
            "{text:?} has no unit: write it as 250ms, 10s, 5m or 24h"
        ));
    }
    let millis = DURATION_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            format!("{text:?} has unknown duration unit {unit:?}: use one of ms, s, m, h, d")
        })?;
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Splits `"512KiB"` into `(512, "KiB")`; `None` when there is no leading
/// integer. Surrounding white space is tolerated, white space between the
/// number and the unit too (`"10 s"`).
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_bytes_and_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn sizes_refuse_unknown_units_and_garbage_with_a_hint() {
        let err = parse_size("1mb").unwrap_err();
        assert!(err.contains("unknown size unit \"mb\""), "{err}");
        let err = parse_size("lots").unwrap_err();
        assert!(err.contains("not a size"), "{err}");
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn durations_accept_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_require_a_known_unit() {
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10y")
            .unwrap_err()
            .contains("unknown duration unit \"y\""));
        assert!(parse_duration("ms").unwrap_err().contains("not a duration"));
        assert!(parse_duration("1.5s").is_err());
    }
}
