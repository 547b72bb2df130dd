//! Frequencies: pandas-style aliases (`h`, `D`, `15min`, `W-SUN`, `MS`, `QE-DEC`, ...), inference
//! from timestamps (a port of `pandas.infer_freq`), and forecast timestamps `last + k * offset`.
//!
//! Anchored offsets (weeks, months, quarters, years, business days) follow pandas' rule for a
//! positive multiple: `t + k * offset` is the `k`-th anchor date strictly after `t`'s date, with
//! `t`'s time of day kept.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};

const NS_PER_US: i128 = 1_000;
const NS_PER_MS: i128 = 1_000_000;
const NS_PER_S: i128 = 1_000_000_000;
const NS_PER_MIN: i128 = 60 * NS_PER_S;
const NS_PER_H: i128 = 60 * NS_PER_MIN;
const NS_PER_DAY: i128 = 24 * NS_PER_H;

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Which day of a month an anchored monthly/quarterly/yearly offset sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthDay {
    /// First calendar day (`MS`, `QS`, `YS`).
    Start,
    /// Last calendar day (`ME`, `QE`, `YE`).
    End,
    /// First weekday (`BMS`, `BQS`, `BYS`).
    BusinessStart,
    /// Last weekday (`BME`, `BQE`, `BYE`).
    BusinessEnd,
}

/// The base unit of a frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetKind {
    /// A fixed duration in nanoseconds (`ns`, `us`, `ms`, `s`, `min`, `h`, `D`).
    Tick(i128),
    /// Business days (`B`): Monday to Friday.
    BusinessDay,
    /// Weeks anchored on a weekday (`W-SUN`; `W` is `W-SUN`).
    Week(Weekday),
    /// Months in a period of `period` months starting at `first_month` (1-12): monthly (period 1),
    /// quarterly (period 3, anchored on the quarter's start or end month) or yearly (period 12).
    Month { period: u32, anchor_month: u32, day: MonthDay },
    /// The `week`-th (1-4) `weekday` of every month (`WOM-1MON`).
    WeekOfMonth { week: u32, weekday: Weekday },
}

/// A frequency: a multiple of a base unit, as pandas' `DateOffset`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freq {
    pub n: i64,
    pub kind: OffsetKind,
}

/// Error for an alias that is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreqParseError(pub String);

impl fmt::Display for FreqParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown frequency '{}' (use a pandas alias such as h, D, 15min, W, W-MON, B, MS, ME, QS, QE, YS, YE, 30s, 500ms)",
            self.0
        )
    }
}

impl std::error::Error for FreqParseError {}

fn month_number(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s)).map(|i| i as u32 + 1)
}

fn weekday_from(s: &str) -> Option<Weekday> {
    WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(s)).map(|i| weekday_at(i as u32))
}

fn weekday_at(i: u32) -> Weekday {
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun][i as usize % 7]
}

impl std::str::FromStr for Freq {
    type Err = FreqParseError;

    /// Parses a pandas alias, old spellings included (`H`, `T`, `S`, `L`, `U`, `N`, `M`, `Q`, `A`,
    /// `Y`, `AS`, `BM`, `BQ`, `BA`, `BY`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || FreqParseError(text.to_string());
        let s = text.trim();
        let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: i64 = if digits == 0 { 1 } else { s[..digits].parse().map_err(|_| err())? };
        if n <= 0 {
            return Err(err());
        }
        let rest = &s[digits..];
        let (base, anchor) = match rest.split_once('-') {
            Some((b, a)) => (b, Some(a)),
            None => (rest, None),
        };
        let tick = |unit: i128| Ok(OffsetKind::Tick(unit));
        let kind = match (base, anchor) {
            ("ns" | "N", None) => tick(1),
            ("us" | "U" | "µs", None) => tick(NS_PER_US),
            ("ms" | "L", None) => tick(NS_PER_MS),
            ("s" | "S", None) => tick(NS_PER_S),
            ("min" | "T" | "Min", None) => tick(NS_PER_MIN),
            ("h" | "H", None) => tick(NS_PER_H),
            ("D" | "d", None) => tick(NS_PER_DAY),
            ("B" | "b", None) => Ok(OffsetKind::BusinessDay),
            ("W" | "w", None) => Ok(OffsetKind::Week(Weekday::Sun)),
            ("W" | "w", Some(a)) => weekday_from(a).map(OffsetKind::Week).ok_or_else(err),
            ("WOM", Some(a)) if a.len() == 4 => {
                let week = a[..1].parse::<u32>().ok().filter(|w| (1..=4).contains(w)).ok_or_else(err)?;
                let weekday = weekday_from(&a[1..]).ok_or_else(err)?;
                Ok(OffsetKind::WeekOfMonth { week, weekday })
            }
            (base, anchor) => {
                let upper = base.to_ascii_uppercase();
                let (period, day, default_month) = match upper.as_str() {
                    "MS" => (1, MonthDay::Start, 1),
                    "M" | "ME" => (1, MonthDay::End, 12),
                    "BMS" => (1, MonthDay::BusinessStart, 1),
                    "BM" | "BME" => (1, MonthDay::BusinessEnd, 12),
                    "QS" => (3, MonthDay::Start, 1),
                    "Q" | "QE" => (3, MonthDay::End, 12),
                    "BQS" => (3, MonthDay::BusinessStart, 1),
                    "BQ" | "BQE" => (3, MonthDay::BusinessEnd, 12),
                    "YS" | "AS" => (12, MonthDay::Start, 1),
                    "Y" | "YE" | "A" => (12, MonthDay::End, 12),
                    "BYS" | "BAS" => (12, MonthDay::BusinessStart, 1),
                    "BY" | "BYE" | "BA" => (12, MonthDay::BusinessEnd, 12),
                    _ => return Err(err()),
                };
                let anchor_month = match anchor {
                    None => default_month,
                    Some(_) if period == 1 => return Err(err()),
                    Some(a) => month_number(a).ok_or_else(err)?,
                };
                Ok(OffsetKind::Month { period, anchor_month, day })
            }
        }?;
        Ok(Freq { n, kind })
    }
}

impl fmt::Display for Freq {
    /// The pandas alias (`15min`, `W-SUN`, `QE-DEC`, `2MS`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n != 1 {
            write!(f, "{}", self.n)?;
        }
        match self.kind {
            OffsetKind::Tick(ns) => {
                let (count, unit) = tick_alias(ns);
                if count != 1 {
                    // Only reachable for ticks that are not a whole unit multiple; fold the count in.
                    write!(f, "{count}")?;
                }
                write!(f, "{unit}")
            }
            OffsetKind::BusinessDay => write!(f, "B"),
            OffsetKind::Week(wd) => write!(f, "W-{}", WEEKDAYS[wd.num_days_from_monday() as usize]),
            OffsetKind::WeekOfMonth { week, weekday } => {
                write!(f, "WOM-{week}{}", WEEKDAYS[weekday.num_days_from_monday() as usize])
            }
            OffsetKind::Month { period, anchor_month, day } => {
                let prefix = match day {
                    MonthDay::Start | MonthDay::End => "",
                    MonthDay::BusinessStart | MonthDay::BusinessEnd => "B",
                };
                let unit = match period {
                    1 => "M",
                    3 => "Q",
                    _ => "Y",
                };
                let suffix = match day {
                    MonthDay::Start | MonthDay::BusinessStart => "S",
                    MonthDay::End | MonthDay::BusinessEnd => "E",
                };
                write!(f, "{prefix}{unit}{suffix}")?;
                if period > 1 {
                    write!(f, "-{}", MONTHS[anchor_month as usize - 1])?;
                }
                Ok(())
            }
        }
    }
}

/// Largest pandas unit dividing `ns`, with the count.
fn tick_alias(ns: i128) -> (i128, &'static str) {
    for (unit, name) in
        [(NS_PER_DAY, "D"), (NS_PER_H, "h"), (NS_PER_MIN, "min"), (NS_PER_S, "s"), (NS_PER_MS, "ms"), (NS_PER_US, "us")]
    {
        if ns % unit == 0 {
            return (ns / unit, name);
        }
    }
    (ns, "ns")
}

/// Nanoseconds since the epoch.
pub fn to_ns(t: NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    utc.timestamp() as i128 * NS_PER_S + utc.timestamp_subsec_nanos() as i128
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map(|d| d.day()).unwrap_or(31)
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The anchor date of an anchored monthly offset in a given month.
fn month_anchor(year: i32, month: u32, day: MonthDay) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = NaiveDate::from_ymd_opt(year, month, days_in_month(year, month))?;
    Some(match day {
        MonthDay::Start => first,
        MonthDay::End => last,
        MonthDay::BusinessStart => {
            let mut d = first;
            while is_weekend(d) {
                d = d.succ_opt()?;
            }
            d
        }
        MonthDay::BusinessEnd => {
            let mut d = last;
            while is_weekend(d) {
                d = d.pred_opt()?;
            }
            d
        }
    })
}

fn week_of_month_anchor(year: i32, month: u32, week: u32, weekday: Weekday) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, week as u8)
}

fn add_months(year: i32, month: u32, months: i64) -> Option<(i32, u32)> {
    let index = year as i64 * 12 + (month as i64 - 1) + months;
    let y = i32::try_from(index.div_euclid(12)).ok()?;
    Some((y, index.rem_euclid(12) as u32 + 1))
}

impl Freq {
    /// `t + steps * self` for `steps >= 1`, as pandas `Timestamp + steps * offset`; `None` on overflow.
    pub fn advance(&self, t: NaiveDateTime, steps: i64) -> Option<NaiveDateTime> {
        let count = self.n.checked_mul(steps)?;
        let date = t.date();
        let time = t.time();
        match self.kind {
            OffsetKind::Tick(ns) => {
                let total = ns.checked_mul(count as i128)?;
                let delta = Duration::nanoseconds(i64::try_from(total).ok()?);
                t.checked_add_signed(delta)
            }
            OffsetKind::BusinessDay => {
                // Whole weeks first, then the remainder day by day.
                let mut d = date;
                let mut left = count;
                // Roll a weekend date back to Friday so that the next business day counts as one.
                while is_weekend(d) {
                    d = d.pred_opt()?;
                }
                let weeks = (left - 1).max(0) / 5;
                d = d.checked_add_signed(Duration::days(weeks * 7))?;
                left -= weeks * 5;
                while left > 0 {
                    d = d.succ_opt()?;
                    if !is_weekend(d) {
                        left -= 1;
                    }
                }
                Some(d.and_time(time))
            }
            OffsetKind::Week(wd) => {
                let ahead =
                    (wd.num_days_from_monday() as i64 - date.weekday().num_days_from_monday() as i64).rem_euclid(7);
                let first = if ahead == 0 { 7 } else { ahead };
                let days = first.checked_add((count - 1).checked_mul(7)?)?;
                Some(date.checked_add_signed(Duration::days(days))?.and_time(time))
            }
            OffsetKind::Month { period, anchor_month, day } => {
                // First anchor month >= t's month, then step back if its anchor date is not after t.
                let month0 = date.month() as i64 - 1;
                let offset_in_period = (month0 - (anchor_month as i64 - 1)).rem_euclid(period as i64);
                let mut months_ahead = if offset_in_period == 0 { 0 } else { period as i64 - offset_in_period };
                let (y, m) = add_months(date.year(), date.month(), months_ahead)?;
                if month_anchor(y, m, day)? <= date {
                    months_ahead += period as i64;
                }
                months_ahead = months_ahead.checked_add((count - 1).checked_mul(period as i64)?)?;
                let (y, m) = add_months(date.year(), date.month(), months_ahead)?;
                Some(month_anchor(y, m, day)?.and_time(time))
            }
            OffsetKind::WeekOfMonth { week, weekday } => {
                let mut months_ahead = 0i64;
                if week_of_month_anchor(date.year(), date.month(), week, weekday)? <= date {
                    months_ahead = 1;
                }
                months_ahead = months_ahead.checked_add(count - 1)?;
                let (y, m) = add_months(date.year(), date.month(), months_ahead)?;
                Some(week_of_month_anchor(y, m, week, weekday)?.and_time(time))
            }
        }
    }

    /// True for fixed durations shorter than calendar days (`h`, `15min`, `24h`, ...), which step
    /// timezone-aware times in absolute time; days and anchored offsets step in local time.
    pub fn is_absolute(&self) -> bool {
        matches!(self.kind, OffsetKind::Tick(ns) if ns != NS_PER_DAY)
    }

    /// The `steps` timestamps after `last`: `last + k * self` for `k = 1..=steps`.
    pub fn future(&self, last: NaiveDateTime, steps: usize) -> Option<Vec<NaiveDateTime>> {
        (1..=steps as i64).map(|k| self.advance(last, k)).collect()
    }
}

fn maybe_count(base: String, count: i128) -> String {
    if count == 1 {
        base
    } else {
        format!("{count}{base}")
    }
}

/// Sorted unique consecutive differences.
fn unique_deltas(values: &[i128]) -> Vec<i128> {
    let mut d: Vec<i128> = values.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// pandas' `month_position_check`: are all dates calendar/business month starts/ends?
fn month_position_check(dates: &[NaiveDate]) -> Option<&'static str> {
    let (mut cal_end, mut bus_end, mut cal_start, mut bus_start) = (true, true, true, true);
    for d in dates {
        let (day, wd) = (d.day(), d.weekday().num_days_from_monday());
        if cal_start {
            cal_start &= day == 1;
        }
        if bus_start {
            bus_start &= day == 1 || (day <= 3 && wd == 0);
        }
        if cal_end || bus_end {
            let dim = days_in_month(d.year(), d.month());
            let cal = day == dim;
            if cal_end {
                cal_end &= cal;
            }
            if bus_end {
                bus_end &= cal || (dim - day < 3 && wd == 4);
            }
        } else if !cal_start && !bus_start {
            break;
        }
    }
    if cal_end {
        Some("ce")
    } else if bus_end {
        Some("be")
    } else if cal_start {
        Some("cs")
    } else if bus_start {
        Some("bs")
    } else {
        None
    }
}

/// A port of `pandas.infer_freq` for timezone-naive timestamps: the alias pandas returns, or
/// `None` when the timestamps have no regular frequency. Needs at least 3 timestamps.
pub fn infer_freq(timestamps: &[NaiveDateTime]) -> Option<String> {
    infer_freq_zoned(timestamps, timestamps)
}

/// `pandas.infer_freq` of a timezone-aware index: `local` holds the wall-clock times and
/// `instants` the same moments in UTC. As pandas (`_FrequencyInferer` converts to local time),
/// daily and longer rules and the business-hour check use local time, so a daily series keeps
/// its frequency across a DST change; shorter steps are measured in absolute time.
pub fn infer_freq_zoned(local: &[NaiveDateTime], instants: &[NaiveDateTime]) -> Option<String> {
    if local.len() < 3 || local.len() != instants.len() {
        return None;
    }
    let absolute: Vec<i128> = instants.iter().map(|&t| to_ns(t)).collect();
    let increasing = absolute.windows(2).all(|w| w[0] <= w[1]);
    let decreasing = absolute.windows(2).all(|w| w[0] >= w[1]);
    if !increasing && !decreasing {
        return None;
    }
    let absolute_deltas = unique_deltas(&absolute);
    if absolute_deltas.contains(&0) {
        // Duplicates (not unique).
        return None;
    }
    let values: Vec<i128> = local.iter().map(|&t| to_ns(t)).collect();
    let deltas = unique_deltas(&values);
    let delta = deltas[0];
    if delta != 0 && delta % NS_PER_DAY == 0 {
        return infer_daily_rule(local, &values, &deltas);
    }
    // Business hourly: gaps of 1 hour, one night (17h) and/or one weekend (65h).
    let hour_deltas: Vec<f64> = deltas.iter().map(|&d| d as f64 / NS_PER_H as f64).collect();
    if [vec![1.0, 17.0], vec![1.0, 65.0], vec![1.0, 17.0, 65.0]].contains(&hour_deltas) {
        return Some("bh".to_string());
    }
    // Shorter steps: in absolute time (local time jumps at DST changes).
    let [delta] = absolute_deltas[..] else {
        return None;
    };
    for (unit, name) in [(NS_PER_H, "h"), (NS_PER_MIN, "min"), (NS_PER_S, "s"), (NS_PER_MS, "ms"), (NS_PER_US, "us")] {
        if delta % unit == 0 {
            return Some(maybe_count(name.to_string(), delta / unit));
        }
    }
    Some(maybe_count("ns".to_string(), delta))
}

fn infer_daily_rule(timestamps: &[NaiveDateTime], values: &[i128], deltas: &[i128]) -> Option<String> {
    let dates: Vec<NaiveDate> = timestamps.iter().map(|t| t.date()).collect();
    let rep = dates[0];
    let years: Vec<i128> = dates.iter().map(|d| d.year() as i128).collect();
    let months: Vec<i128> = dates.iter().map(|d| d.year() as i128 * 12 + d.month() as i128).collect();
    let ydiffs = unique_deltas(&years);
    let mdiffs = unique_deltas(&months);

    // Annual.
    let same_month = dates.iter().all(|d| d.month() == rep.month());
    if ydiffs.len() == 1 && same_month {
        let rule = match month_position_check(&dates) {
            Some("cs") => Some("YS"),
            Some("bs") => Some("BYS"),
            Some("ce") => Some("YE"),
            Some("be") => Some("BYE"),
            _ => None,
        };
        if let Some(rule) = rule {
            return Some(maybe_count(format!("{rule}-{}", MONTHS[rep.month() as usize - 1]), ydiffs[0]));
        }
    }
    // Quarterly.
    if mdiffs.len() == 1 && mdiffs[0] % 3 == 0 {
        let rule = match month_position_check(&dates) {
            Some("cs") => Some("QS"),
            Some("bs") => Some("BQS"),
            Some("ce") => Some("QE"),
            Some("be") => Some("BQE"),
            _ => None,
        };
        if let Some(rule) = rule {
            let m = rep.month() % 3;
            let month = if rule == "QS" || rule == "BQS" { [3, 1, 2][m as usize] } else { [12, 10, 11][m as usize] };
            return Some(maybe_count(format!("{rule}-{}", MONTHS[month - 1]), mdiffs[0] / 3));
        }
    }
    // Monthly.
    if mdiffs.len() == 1 {
        let rule = match month_position_check(&dates) {
            Some("cs") => Some("MS"),
            Some("bs") => Some("BMS"),
            Some("ce") => Some("ME"),
            Some("be") => Some("BME"),
            _ => None,
        };
        if let Some(rule) = rule {
            return Some(maybe_count(rule.to_string(), mdiffs[0]));
        }
    }
    // Daily / weekly.
    if deltas.len() == 1 {
        let days = deltas[0] / NS_PER_DAY;
        if days % 7 == 0 {
            let wd = WEEKDAYS[timestamps[0].weekday().num_days_from_monday() as usize];
            return Some(maybe_count(format!("W-{wd}"), days / 7));
        }
        return Some(maybe_count("D".to_string(), days));
    }
    // Business daily.
    if deltas.len() == 2 && deltas[0] == NS_PER_DAY && deltas[1] == 3 * NS_PER_DAY {
        let mut weekday = rep.weekday().num_days_from_monday() as i128;
        let business = values.windows(2).all(|w| {
            let shift = (w[1] - w[0]).div_euclid(NS_PER_DAY);
            weekday = (weekday + shift).rem_euclid(7);
            (weekday == 0 && shift == 3) || ((1..=4).contains(&weekday) && shift == 1)
        });
        if business {
            return Some("B".to_string());
        }
    }
    // Week of month.
    let wd = rep.weekday();
    if dates.iter().all(|d| d.weekday() == wd) {
        let mut weeks: Vec<u32> = dates.iter().map(|d| (d.day() - 1) / 7).filter(|&w| w < 4).collect();
        weeks.sort_unstable();
        weeks.dedup();
        if weeks.len() == 1 {
            return Some(format!("WOM-{}{}", weeks[0] + 1, WEEKDAYS[wd.num_days_from_monday() as usize]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap()))
            .unwrap()
    }

    fn fmt(t: NaiveDateTime) -> String {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// `n` consecutive on-offset timestamps after `start`.
    fn range(start: &str, n: usize, f: &str) -> Vec<NaiveDateTime> {
        let freq: Freq = f.parse().unwrap();
        let first = freq.advance(ts(start), 1).unwrap();
        let mut out = vec![first];
        out.extend(freq.future(first, n - 1).unwrap());
        out
    }

    // Each expected value is `pd.infer_freq(pd.DatetimeIndex(values))` with pandas 3.1.1.
    #[test]
    fn infer_matches_pandas() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["2024-01-01", "2024-01-02", "2024-01-03"], Some("D")),
            (&["2024-01-01", "2024-01-03", "2024-01-05"], Some("2D")),
            (&["2024-01-01", "2024-01-02", "2024-01-04"], None),
            (&["2024-01-01 00:00:00", "2024-01-01 01:00:00", "2024-01-01 02:00:00"], Some("h")),
            (&["2024-01-01 00:00:00", "2024-01-01 00:15:00", "2024-01-01 00:30:00"], Some("15min")),
            (&["2024-01-01 00:00:00", "2024-01-01 00:30:00", "2024-01-01 01:00:00"], Some("30min")),
            (&["2024-01-01 00:00:00", "2024-01-01 06:00:00", "2024-01-01 12:00:00"], Some("6h")),
            (&["2024-01-01 00:00:00", "2024-01-01 00:00:10", "2024-01-01 00:00:20"], Some("10s")),
            (&["2024-01-01 00:00:00", "2024-01-01 00:00:00.5", "2024-01-01 00:00:01"], Some("500ms")),
            (&["2024-01-07", "2024-01-14", "2024-01-21"], Some("W-SUN")),
            (&["2024-01-06", "2024-01-13", "2024-01-20"], Some("W-SAT")),
            (&["2024-01-01", "2024-01-15", "2024-01-29"], Some("2W-MON")),
            (&["2024-01-01", "2024-02-01", "2024-03-01"], Some("MS")),
            (&["2024-01-31", "2024-02-29", "2024-03-31"], Some("ME")),
            (&["2024-01-01", "2024-03-01", "2024-05-01"], Some("2MS")),
            (&["2024-01-01", "2024-04-01", "2024-07-01"], Some("QS-JAN")),
            (&["2024-02-01", "2024-05-01", "2024-08-01"], Some("QS-FEB")),
            (&["2024-03-31", "2024-06-30", "2024-09-30"], Some("QE-DEC")),
            (&["2024-01-31", "2024-04-30", "2024-07-31"], Some("QE-OCT")),
            (&["2020-01-01", "2021-01-01", "2022-01-01"], Some("YS-JAN")),
            (&["2020-12-31", "2021-12-31", "2022-12-31"], Some("YE-DEC")),
            (&["2020-06-30", "2021-06-30", "2022-06-30"], Some("YE-JUN")),
            (&["2020-01-01", "2022-01-01", "2024-01-01"], Some("2YS-JAN")),
            (&["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"], Some("B")),
            (&["2024-01-31", "2024-02-29", "2024-03-29", "2024-04-30"], Some("BME")),
            (&["2024-06-03", "2024-07-01", "2024-08-01"], Some("BMS")),
            (&["2024-01-01", "2024-02-05", "2024-03-04"], Some("WOM-1MON")),
            (&["2024-01-01 00:00:00", "2024-01-01 01:00:00", "2024-01-01 03:00:00"], None),
            (&["2024-01-05 16:00:00", "2024-01-05 17:00:00", "2024-01-08 10:00:00", "2024-01-08 11:00:00"], Some("bh")),
            (&["2024-01-01 12:00:00", "2024-01-02 12:00:00", "2024-01-03 12:00:00"], Some("D")),
            (&["2024-01-31 12:00:00", "2024-02-29 12:00:00", "2024-03-31 12:00:00"], Some("ME")),
            (&["2024-01-01", "2024-01-01", "2024-01-02"], None),
        ];
        for (values, expected) in cases {
            let t: Vec<NaiveDateTime> = values.iter().map(|s| ts(s)).collect();
            assert_eq!(infer_freq(&t).as_deref(), *expected, "{values:?}");
        }
    }

    // Each expected list is `[str(pd.Timestamp(t) + k * to_offset(f)) for k in (1, 2, 3)]`, pandas 3.1.1.
    #[test]
    fn advance_matches_pandas() {
        let cases: &[(&str, &str, [&str; 3])] = &[
            ("2024-01-06 10:00:00", "B", ["2024-01-08 10:00:00", "2024-01-09 10:00:00", "2024-01-10 10:00:00"]),
            ("2024-01-05", "B", ["2024-01-08 00:00:00", "2024-01-09 00:00:00", "2024-01-10 00:00:00"]),
            ("2024-01-07", "B", ["2024-01-08 00:00:00", "2024-01-09 00:00:00", "2024-01-10 00:00:00"]),
            ("2024-01-03", "W-SUN", ["2024-01-07 00:00:00", "2024-01-14 00:00:00", "2024-01-21 00:00:00"]),
            ("2024-01-07", "W", ["2024-01-14 00:00:00", "2024-01-21 00:00:00", "2024-01-28 00:00:00"]),
            ("2024-02-15 12:00:00", "QS", ["2024-04-01 12:00:00", "2024-07-01 12:00:00", "2024-10-01 12:00:00"]),
            ("2024-01-01", "QS-JAN", ["2024-04-01 00:00:00", "2024-07-01 00:00:00", "2024-10-01 00:00:00"]),
            ("2024-02-15", "QE-DEC", ["2024-03-31 00:00:00", "2024-06-30 00:00:00", "2024-09-30 00:00:00"]),
            ("2024-03-31", "Q", ["2024-06-30 00:00:00", "2024-09-30 00:00:00", "2024-12-31 00:00:00"]),
            ("2024-01-15", "ME", ["2024-01-31 00:00:00", "2024-02-29 00:00:00", "2024-03-31 00:00:00"]),
            ("2024-01-31 10:00:00", "M", ["2024-02-29 10:00:00", "2024-03-31 10:00:00", "2024-04-30 10:00:00"]),
            ("2024-01-15", "MS", ["2024-02-01 00:00:00", "2024-03-01 00:00:00", "2024-04-01 00:00:00"]),
            ("2024-06-15", "YS-JAN", ["2025-01-01 00:00:00", "2026-01-01 00:00:00", "2027-01-01 00:00:00"]),
            ("2024-06-15", "YE-DEC", ["2024-12-31 00:00:00", "2025-12-31 00:00:00", "2026-12-31 00:00:00"]),
            ("2024-01-31", "BME", ["2024-02-29 00:00:00", "2024-03-29 00:00:00", "2024-04-30 00:00:00"]),
            ("2024-03-29", "BME", ["2024-04-30 00:00:00", "2024-05-31 00:00:00", "2024-06-28 00:00:00"]),
            ("2024-03-30", "BME", ["2024-04-30 00:00:00", "2024-05-31 00:00:00", "2024-06-28 00:00:00"]),
            ("2024-06-01", "BMS", ["2024-06-03 00:00:00", "2024-07-01 00:00:00", "2024-08-01 00:00:00"]),
            ("2024-06-03", "BMS", ["2024-07-01 00:00:00", "2024-08-01 00:00:00", "2024-09-02 00:00:00"]),
            ("2024-01-01", "WOM-1MON", ["2024-02-05 00:00:00", "2024-03-04 00:00:00", "2024-04-01 00:00:00"]),
            ("2024-01-08", "WOM-1MON", ["2024-02-05 00:00:00", "2024-03-04 00:00:00", "2024-04-01 00:00:00"]),
            ("2024-03-15", "QS-FEB", ["2024-05-01 00:00:00", "2024-08-01 00:00:00", "2024-11-01 00:00:00"]),
            ("2024-03-15", "2MS", ["2024-05-01 00:00:00", "2024-07-01 00:00:00", "2024-09-01 00:00:00"]),
            ("2024-03-30", "BQE-DEC", ["2024-06-28 00:00:00", "2024-09-30 00:00:00", "2024-12-31 00:00:00"]),
            ("2024-01-15", "BYS-JAN", ["2025-01-01 00:00:00", "2026-01-01 00:00:00", "2027-01-01 00:00:00"]),
            ("2024-01-01", "YS-MAR", ["2024-03-01 00:00:00", "2025-03-01 00:00:00", "2026-03-01 00:00:00"]),
            ("2024-01-01 23:00:00", "H", ["2024-01-02 00:00:00", "2024-01-02 01:00:00", "2024-01-02 02:00:00"]),
            ("2024-01-01 23:45:00", "15T", ["2024-01-02 00:00:00", "2024-01-02 00:15:00", "2024-01-02 00:30:00"]),
            ("2024-02-28", "D", ["2024-02-29 00:00:00", "2024-03-01 00:00:00", "2024-03-02 00:00:00"]),
        ];
        for (start, f, expected) in cases {
            let freq: Freq = f.parse().unwrap();
            let got: Vec<String> = freq.future(ts(start), 3).unwrap().into_iter().map(fmt).collect();
            assert_eq!(got, expected.to_vec(), "{start} + k*{f}");
        }
    }

    // pandas 3.1.1: pd.infer_freq(pd.date_range("2024-03-29", periods=5, freq="D", tz="Europe/Paris"))
    // == "D" and pd.infer_freq(pd.date_range("2024-03-30 22:00", periods=6, freq="h",
    // tz="Europe/Paris")) == "h": both cross the DST change of 2024-03-31 (+01:00 -> +02:00).
    #[test]
    fn infer_zoned_uses_local_days_and_absolute_hours() {
        let paris = |t: NaiveDateTime| if t < ts("2024-03-31 01:00:00") { 3600 } else { 7200 };
        let local: Vec<NaiveDateTime> = range("2024-03-28", 5, "D");
        let instants: Vec<NaiveDateTime> = local
            .iter()
            .map(|&l| l - Duration::seconds(if l < ts("2024-03-31 02:00:00") { 3600 } else { 7200 }))
            .collect();
        assert_eq!(infer_freq(&instants), None, "24h and 23h steps in UTC");
        assert_eq!(infer_freq_zoned(&local, &instants).as_deref(), Some("D"));
        let instants: Vec<NaiveDateTime> = range("2024-03-30 20:00:00", 6, "h");
        let local: Vec<NaiveDateTime> = instants.iter().map(|&t| t + Duration::seconds(paris(t))).collect();
        assert_eq!(infer_freq(&local), None, "local time jumps an hour");
        assert_eq!(infer_freq_zoned(&local, &instants).as_deref(), Some("h"));
    }

    #[test]
    fn business_day_long_horizon() {
        // pd.date_range("2024-01-05", periods=13, freq="B")[-1] == 2024-01-23
        let freq: Freq = "B".parse().unwrap();
        assert_eq!(fmt(freq.advance(ts("2024-01-05"), 12).unwrap()), "2024-01-23 00:00:00");
        // Timestamp("2024-01-06") + 10 * BDay() == 2024-01-19
        assert_eq!(fmt(freq.advance(ts("2024-01-06"), 10).unwrap()), "2024-01-19 00:00:00");
    }

    #[test]
    fn roundtrip_inferred_ranges() {
        for f in [
            "D", "h", "15min", "W-SUN", "W-WED", "MS", "ME", "QS-JAN", "QE-DEC", "YS-JAN", "YE-DEC", "B", "2MS", "3D",
            "500ms",
        ] {
            let t = range("2023-01-02", 40, f);
            let inferred = infer_freq(&t).unwrap_or_default();
            let canonical = f.parse::<Freq>().unwrap().to_string();
            assert_eq!(inferred, canonical, "{f}");
        }
    }

    #[test]
    fn parse_aliases() {
        for (alias, canonical) in [
            ("H", "h"),
            ("h", "h"),
            ("15T", "15min"),
            ("15min", "15min"),
            ("D", "D"),
            ("W", "W-SUN"),
            ("M", "ME"),
            ("Q", "QE-DEC"),
            ("QS", "QS-JAN"),
            ("A", "YE-DEC"),
            ("Y", "YE-DEC"),
            ("YS", "YS-JAN"),
            ("AS-JUL", "YS-JUL"),
            ("30S", "30s"),
            ("2W-MON", "2W-MON"),
        ] {
            assert_eq!(alias.parse::<Freq>().unwrap().to_string(), canonical, "{alias}");
        }
        for bad in ["", "X", "15", "0D", "MS-JAN", "W-XYZ", "-1D", "bh"] {
            assert!(bad.parse::<Freq>().is_err(), "{bad}");
        }
    }
}
