//! Durations (`30s`, `90m`, `1h`, `7d`) and points in time (RFC 3339, or a duration ago), as
//! the HTTP query parameters and the CLI's `--since`/`--until`/`--older-than` take them.

use std::time::Duration;

/// A duration or a point in time that could not be parsed; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeError(String);

const DURATION_HELP: &str =
    "a whole number followed by a unit: ms, s, m, h, d or w (e.g. `30s`, `90m`, `1h`, `7d`)";

/// Parse a duration: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` (24 h) or `w` (7 d).
/// Several parts add up (`1h30m`). Surrounding whitespace is ignored; a bare number, an empty
/// string, a sign or a fraction is refused.
///
/// ```
/// use std::time::Duration;
/// use tiered_storage_server::time::parse_duration;
/// assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert!(parse_duration("7").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(TimeError(format!(
            "empty duration: expected {DURATION_HELP}"
        )));
    }
    let bad = || TimeError(format!("invalid duration `{s}`: expected {DURATION_HELP}"));
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let number: u64 = s[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: u64 = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        let part = number
            .checked_mul(unit_ms)
            .ok_or_else(|| TimeError(format!("duration `{s}` is too large")))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| TimeError(format!("duration `{s}` is too large")))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parse a point in time into Unix ms: an RFC 3339 timestamp (`2026-11-30T12:00:00Z`,
/// `2026-11-30T13:00:00.250+01:00`), or a duration (see [`parse_duration`]) meaning that long
/// before `now_ms`.
///
/// ```
/// use tiered_storage_server::time::parse_since;
/// let now = 1_764_504_000_000; // 2025-11-30T12:00:00Z
/// assert_eq!(parse_since("1h", now).unwrap(), now - 3_600_000);
/// assert_eq!(parse_since("2025-11-30T12:00:00Z", now).unwrap(), now);
/// assert!(parse_since("yesterday", now).is_err());
/// ```
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    let s = text.trim();
    if s.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) && s.contains('-') {
        return parse_rfc3339(s);
    }
    match parse_duration(s) {
        Ok(d) => {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            Ok(now_ms.saturating_sub(ms))
        }
        Err(_) => Err(TimeError(format!(
            "invalid time `{s}`: expected RFC 3339 (e.g. `2026-11-30T12:00:00Z`) or a duration ago (e.g. `1h`, `7d`)"
        ))),
    }
}

/// Parse an RFC 3339 timestamp (`T` or a space between date and time; `Z` or a `±HH:MM`
/// offset; optional fraction of a second, kept to the millisecond) into Unix ms.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    let s = text.trim();
    let bad = |why: &str| {
        TimeError(format!(
            "invalid RFC 3339 time `{s}`: {why} (expected e.g. `2026-11-30T12:00:00Z`)"
        ))
    };
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(bad("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = &s[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad("not a number"))
        } else {
            Err(bad("not a number"))
        }
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad("wrong layout"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad("empty fraction"));
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().map_err(|_| bad("not a number"))?
            * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_secs = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(bad("no such offset"));
            }
            let sign = if rest.as_bytes()[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad("missing or bad offset (`Z` or `+HH:MM`)")),
    };
    // A leap second (:60) counts as the next second, as most systems do.
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Ok(secs * 1000 + millis)
}

/// Format Unix ms as RFC 3339 in UTC with milliseconds: `2026-11-30T12:00:00.000Z`.
pub fn format_rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_and_compound() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration(" 90m ").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            Duration::from_secs(129_600)
        );
    }

    #[test]
    fn bad_durations_are_refused_with_the_accepted_form() {
        for bad in [
            "",
            "7",
            "h",
            "-1h",
            "1.5h",
            "1y",
            "1 h",
            "99999999999999999999d",
            "1h-",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.contains("duration"), "{bad}: {err}");
        }
        assert!(
            parse_duration("30000000000000d").is_err(),
            "overflow is an error"
        );
    }

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        let t = parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
        assert_eq!(t, 1_796_040_000_000);
        assert_eq!(format_rfc3339(t), "2026-11-30T12:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-11-30T13:00:00+01:00").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-11-30T11:30:00-00:30").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-11-30 12:00:00.25Z").unwrap(), t + 250);
        assert_eq!(
            parse_rfc3339("2026-11-30T12:00:00.123456789Z").unwrap(),
            t + 123
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z").unwrap(), -1000);
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").unwrap(),
            1_709_164_800_000
        );
        for bad in [
            "2026-11-30",
            "2026-11-30T12:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T12:00:00+1:00",
            "2026-11-30T12:00:00.Z",
            "2026-1a-30T12:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since_takes_either_form() {
        let now = 1_796_040_000_000;
        assert_eq!(parse_since("30s", now).unwrap(), now - 30_000);
        assert_eq!(parse_since("7d", now).unwrap(), now - 604_800_000);
        assert_eq!(parse_since("2026-11-30T12:00:00Z", now).unwrap(), now);
        let err = parse_since("last tuesday", now).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(parse_since("2026-11-30", now).is_err());
    }

    #[test]
    fn civil_conversion_matches_over_four_centuries() {
        for days in (-200_000..200_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
