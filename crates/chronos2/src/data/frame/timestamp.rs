//! Timestamp text: parsing the forms `pandas.to_datetime` reads in practice, ISO-8601 output.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// A fixed UTC offset in seconds east of UTC (`+01:00` = 3600).
pub type TzOffset = i32;

/// Parses a timestamp: `2024-01-03`, `2024-01-03 12:00`, `2024-01-03T12:00:00`,
/// `2024-01-03 12:00:00.250`, `2024/01/03`, `01/03/2024` (month first, as pandas),
/// `20240103`, `2024-01` and `2024` (first day), each optionally followed by `Z` or an offset
/// (`+01:00`, `+0100`, `-05`). Returns the wall-clock time and the offset, if any.
pub fn parse_timestamp(text: &str) -> Option<(NaiveDateTime, Option<TzOffset>)> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    let (date_part, rest) = split_date(s)?;
    let date = parse_date(date_part)?;
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    let (time_part, offset) = split_offset(rest)?;
    let time = if time_part.is_empty() {
        // A date followed directly by an offset: `2024-01-03Z`.
        NaiveTime::MIN
    } else {
        parse_time(time_part)?
    };
    Some((date.and_time(time), offset))
}

/// Splits off the date: everything before the first `T` or space that follows a digit.
fn split_date(s: &str) -> Option<(&str, &str)> {
    for (i, c) in s.char_indices() {
        if (c == 'T' || c == ' ') && i > 0 {
            return Some((&s[..i], &s[i + 1..]));
        }
        if (c == 'Z' || c == '+') && i > 0 {
            return Some((&s[..i], &s[i..]));
        }
    }
    Some((s, ""))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let all_digits = s.bytes().all(|b| b.is_ascii_digit());
    if all_digits {
        return match s.len() {
            4 => NaiveDate::from_ymd_opt(s.parse().ok()?, 1, 1),
            8 => NaiveDate::parse_from_str(s, "%Y%m%d").ok(),
            _ => None,
        };
    }
    for fmt in ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%Y.%m.%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Some(d);
        }
    }
    // `2024-01` -> first of the month.
    let (y, m) = s.split_once(['-', '/'])?;
    if y.len() == 4 && (1..=2).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1);
    }
    None
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    for fmt in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    None
}

/// Splits a trailing `Z` / `+HH:MM` / `-HH:MM` / `+HHMM` / `+HH` off the time.
fn split_offset(s: &str) -> Option<(&str, Option<TzOffset>)> {
    if let Some(t) = s.strip_suffix('Z').or_else(|| s.strip_suffix(" UTC")).or_else(|| s.strip_suffix("UTC")) {
        return Some((t.trim_end(), Some(0)));
    }
    // The offset sign comes after the time (`12:00:00-05:00`), never at position 0.
    let pos = s.rfind(['+', '-']).filter(|&p| p > 0);
    let Some(pos) = pos else { return Some((s, None)) };
    let (time, off) = (&s[..pos], &s[pos..]);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some((time.trim_end(), Some(sign * (h * 3600 + m * 60))))
}

/// ISO-8601 text: `2024-01-03T12:00:00`, fractional seconds when present
/// (`2024-01-03T12:00:00.500`), and the offset for timezone-aware columns (`+00:00`).
pub fn format_timestamp(t: NaiveDateTime, offset: Option<TzOffset>) -> String {
    format_timestamp_with(t, offset, fraction_digits(std::iter::once(t)))
}

/// Fractional-second digits (0, 3, 6 or 9) that represent every timestamp exactly, so that a
/// column is written in one format.
pub fn fraction_digits(values: impl IntoIterator<Item = NaiveDateTime>) -> usize {
    use chrono::Timelike;
    values
        .into_iter()
        .map(|t| match t.nanosecond() % 1_000_000_000 {
            0 => 0,
            n if n % 1_000_000 == 0 => 3,
            n if n % 1_000 == 0 => 6,
            _ => 9,
        })
        .max()
        .unwrap_or(0)
}

/// [`format_timestamp`] with a fixed number of fractional digits (0, 3, 6 or 9).
pub fn format_timestamp_with(t: NaiveDateTime, offset: Option<TzOffset>, digits: usize) -> String {
    let fmt = match digits {
        0 => "%Y-%m-%dT%H:%M:%S",
        3 => "%Y-%m-%dT%H:%M:%S%.3f",
        6 => "%Y-%m-%dT%H:%M:%S%.6f",
        _ => "%Y-%m-%dT%H:%M:%S%.9f",
    };
    let mut s = t.format(fmt).to_string();
    if let Some(off) = offset {
        let sign = if off < 0 { '-' } else { '+' };
        let abs = off.abs();
        s.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        let (t, off) = parse_timestamp(s).unwrap_or_else(|| panic!("{s}"));
        format_timestamp(t, off)
    }

    // Expected values: `pd.Timestamp(pd.to_datetime(s)).isoformat()` (pandas 3.1.1).
    #[test]
    fn parses_common_forms() {
        assert_eq!(p("2024-01-03"), "2024-01-03T00:00:00");
        assert_eq!(p("2024-01-03 12:00:00"), "2024-01-03T12:00:00");
        assert_eq!(p("2024-01-03T12:00:00"), "2024-01-03T12:00:00");
        assert_eq!(p("2024-01-03 12:30"), "2024-01-03T12:30:00");
        assert_eq!(p("2024-01-03T12:00:00.5"), "2024-01-03T12:00:00.500");
        assert_eq!(p("2024-01-03T12:00:00Z"), "2024-01-03T12:00:00+00:00");
        assert_eq!(p("2024-01-03T12:00:00+01:00"), "2024-01-03T12:00:00+01:00");
        assert_eq!(p("2024-01-03 12:00:00-0530"), "2024-01-03T12:00:00-05:30");
        assert_eq!(p("2024/01/03"), "2024-01-03T00:00:00");
        assert_eq!(p("01/03/2024"), "2024-01-03T00:00:00");
        assert_eq!(p("20240103"), "2024-01-03T00:00:00");
        assert_eq!(p("2024-01"), "2024-01-01T00:00:00");
        assert_eq!(p("1949"), "1949-01-01T00:00:00");
        assert_eq!(p(" 2024-02-29 "), "2024-02-29T00:00:00");
    }

    #[test]
    fn one_format_per_column() {
        let a = parse_timestamp("2024-01-03T12:00:00").unwrap().0;
        let b = parse_timestamp("2024-01-03T12:00:00.5").unwrap().0;
        let digits = fraction_digits([a, b]);
        assert_eq!(format_timestamp_with(a, None, digits), "2024-01-03T12:00:00.000");
        assert_eq!(format_timestamp_with(b, None, digits), "2024-01-03T12:00:00.500");
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "2024-13-01", "2024-02-30", "2024-01-03 25:00", "yesterday", "2024-01-03T12:00:00+99:00"] {
            assert!(parse_timestamp(s).is_none(), "{s}");
        }
    }
}
