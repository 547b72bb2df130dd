//! Time zones of timestamp columns: a fixed UTC offset, an IANA zone (`Europe/Paris`, as pandas
//! stores tz-aware columns in Parquet), or per-value ISO offsets (text across a DST change).
//!
//! The values of a zoned column are UTC instants; the zone gives each value's offset, hence its
//! local wall-clock time.

use chrono::{NaiveDateTime, TimeDelta};

use super::timestamp::{format_timestamp_with, TzOffset};

/// How the timestamps of a column relate to UTC.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// One fixed offset, in seconds east of UTC (`Z` = 0, `+01:00` = 3600).
    Fixed(TzOffset),
    /// An IANA time zone: each value's offset follows the zone's rules.
    Named(chrono_tz::Tz),
    /// ISO offsets that differ between values (e.g. CSV text across a DST change), one per value.
    PerValue(Vec<TzOffset>),
}

impl Zone {
    /// A zone from its pandas name: `UTC`, `+05:30` (a fixed offset) or an IANA name.
    pub fn from_name(name: &str) -> Option<Zone> {
        // dateutil zones are stored by file path (`dateutil//usr/share/zoneinfo/Europe/Paris`).
        let name = name.rsplit_once("zoneinfo/").map_or(name, |(_, zone)| zone);
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Some(Zone::Fixed(0));
        }
        if let Some(offset) = parse_offset(name) {
            return Some(Zone::Fixed(offset));
        }
        name.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// The name pandas gives the zone (`UTC`, `+05:30`, `Europe/Paris`); per-value offsets have none.
    pub fn name(&self) -> Option<String> {
        match self {
            Zone::Fixed(0) => Some("UTC".into()),
            Zone::Fixed(offset) => Some(offset_text(*offset)),
            Zone::Named(tz) => Some(tz.name().to_string()),
            Zone::PerValue(_) => None,
        }
    }

    /// The offset of value `i`, the UTC instant `utc`.
    pub fn offset(&self, utc: NaiveDateTime, i: usize) -> TzOffset {
        use chrono::{Offset, TimeZone};
        match self {
            Zone::Fixed(offset) => *offset,
            Zone::Named(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
            Zone::PerValue(offsets) => offsets[i],
        }
    }

    /// The wall-clock time of value `i`, the UTC instant `utc`.
    pub fn local(&self, utc: NaiveDateTime, i: usize) -> NaiveDateTime {
        utc + TimeDelta::seconds(self.offset(utc, i) as i64)
    }

    /// The UTC instant of the wall-clock time `local`, with `fallback` as the offset when the zone
    /// has no rules (per-value offsets). A time a DST change skips or repeats is an error, as in
    /// pandas (`nonexistent` / `ambiguous`).
    pub fn instant(&self, local: NaiveDateTime, fallback: TzOffset) -> Result<NaiveDateTime, String> {
        use chrono::{LocalResult, TimeZone};
        let fixed = |offset: TzOffset| Ok(local - TimeDelta::seconds(offset as i64));
        match self {
            Zone::Fixed(offset) => fixed(*offset),
            Zone::PerValue(_) => fixed(fallback),
            Zone::Named(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => Ok(t.naive_utc()),
                LocalResult::Ambiguous(..) => Err(format!(
                    "{} happens twice in {} (a DST change repeats it)",
                    local.format("%Y-%m-%dT%H:%M:%S"),
                    tz.name()
                )),
                LocalResult::None => Err(format!(
                    "{} does not exist in {} (a DST change skips it)",
                    local.format("%Y-%m-%dT%H:%M:%S"),
                    tz.name()
                )),
            },
        }
    }

    /// The zone of rows `indices` (per-value offsets are picked; other zones are shared).
    pub fn take(&self, indices: &[usize]) -> Zone {
        match self {
            Zone::PerValue(offsets) => Zone::PerValue(indices.iter().map(|&i| offsets[i]).collect()),
            other => other.clone(),
        }
    }
}

/// `+01:00` for 3600.
pub fn offset_text(offset: TzOffset) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// `+05:30` / `-0800` / `+01` -> seconds east of UTC.
fn parse_offset(text: &str) -> Option<TzOffset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = match digits.len() {
        2 => (digits.parse().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

/// ISO-8601 text of value `i` of a column (`t` is UTC when `zone` is set, else wall-clock).
pub fn zoned_text(t: NaiveDateTime, zone: Option<&Zone>, i: usize, digits: usize) -> String {
    match zone {
        None => format_timestamp_with(t, None, digits),
        Some(z) => {
            let offset = z.offset(t, i);
            format_timestamp_with(t + TimeDelta::seconds(offset as i64), Some(offset), digits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    // pandas: pd.Timestamp("2024-03-31 00:00", tz="UTC").tz_convert("Europe/Paris").isoformat()
    #[test]
    fn named_zone_follows_dst() {
        let paris = Zone::from_name("Europe/Paris").unwrap();
        assert_eq!(zoned_text(t("2024-03-31T00:00:00"), Some(&paris), 0, 0), "2024-03-31T01:00:00+01:00");
        assert_eq!(zoned_text(t("2024-03-31T01:00:00"), Some(&paris), 0, 0), "2024-03-31T03:00:00+02:00");
        assert_eq!(paris.instant(t("2024-04-01T00:00:00"), 0).unwrap(), t("2024-03-31T22:00:00"));
        assert!(paris.instant(t("2024-03-31T02:30:00"), 0).unwrap_err().contains("does not exist"));
        assert!(paris.instant(t("2024-10-27T02:30:00"), 0).unwrap_err().contains("happens twice"));
    }

    #[test]
    fn names_round_trip() {
        for name in ["UTC", "+05:30", "-08:00", "Europe/Paris", "America/New_York"] {
            assert_eq!(Zone::from_name(name).unwrap().name().unwrap(), name);
        }
        assert!(Zone::from_name("Mars/Olympus").is_none());
        let dateutil = Zone::from_name("dateutil//usr/share/zoneinfo/Europe/Paris").unwrap();
        assert_eq!(dateutil.name().unwrap(), "Europe/Paris");
    }
}
