//! Long-format tables -> pipeline items and back: validation, grouping, frequency inference,
//! future timestamps, covariates, and the forecast table. This is the reference's `predict_df`
//! (`chronos/df_utils.py` + `preprocess.from_data_frame`) without the model call.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDateTime};
use chronos2_core::pipeline::{Covariate, CovariateValues, FutureValues, ItemEmbedding, ItemForecast, SeriesInput};

use super::caller::Caller;
use super::frame::{
    offset_text, parse_timestamp, python_float_str, zoned_text, Column, ColumnData, Frame, TzOffset, Zone,
};
use super::freq::{infer_freq_zoned, Freq};
use crate::error::{invalid, Error, Result};

/// The last year a forecast timestamp may fall in (four-digit ISO-8601 years).
const MAX_YEAR: i32 = 9999;

/// Which columns hold what.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    pub id: String,
    pub timestamp: String,
    pub targets: Vec<String>,
}

impl Default for Columns {
    /// The reference's defaults: `item_id`, `timestamp`, `target`.
    fn default() -> Self {
        Columns { id: "item_id".into(), timestamp: "timestamp".into(), targets: vec!["target".into()] }
    }
}

/// Items of a table, ready for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedFrame {
    pub columns: Columns,
    /// One id per item, in first-appearance order (keeps the id column's type).
    pub item_ids: ColumnData,
    /// The same ids as text (for messages and JSON).
    pub item_labels: Vec<String>,
    pub inputs: Vec<SeriesInput>,
    /// Per item, the forecast timestamps (empty for embeddings): UTC instants when `zone` is set,
    /// else wall-clock times.
    pub future_timestamps: Vec<Vec<NaiveDateTime>>,
    /// Time zone of the timestamp column (`None` = naive). [`Zone::PerValue`] holds one offset per
    /// item: its last observed one, which its forecast timestamps keep.
    pub zone: Option<Zone>,
    /// The frequency used for the forecast timestamps (`None` for embeddings).
    pub freq: Option<Freq>,
    /// What was done with the input that the user should know (the CLI prints them on stderr).
    pub notes: Vec<String>,
}

/// One item's rows of a table, sorted by timestamp.
struct Grouped {
    labels: Vec<String>,
    /// First row of each item (for the id value).
    first_rows: Vec<usize>,
    /// Row indices per item, sorted by timestamp.
    rows: Vec<Vec<usize>>,
    /// Per row: the instant (UTC when `zone` is set, else the wall-clock time).
    timestamps: Vec<NaiveDateTime>,
    /// Per row: the wall-clock time.
    local: Vec<NaiveDateTime>,
    /// `None` = naive; [`Zone::PerValue`] holds one offset per row.
    zone: Option<Zone>,
}

impl Grouped {
    /// The zone of the items' forecast timestamps: the column's, or with per-row offsets each
    /// item's last observed offset (one per item).
    fn item_zone(&self) -> Option<Zone> {
        match &self.zone {
            Some(Zone::PerValue(offsets)) => {
                Some(Zone::PerValue(self.rows.iter().map(|rows| rows.last().map_or(0, |&r| offsets[r])).collect()))
            }
            other => other.clone(),
        }
    }
}

fn quote_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

fn check_columns(df: &Frame, cols: &Columns, caller: Caller) -> Result<()> {
    let what = caller.input();
    let mut required: Vec<&str> = vec![&cols.id, &cols.timestamp];
    required.extend(cols.targets.iter().map(String::as_str));
    let missing: Vec<&str> = required.iter().copied().filter(|c| !df.has_column(c)).collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "{what} does not contain all expected columns. Missing columns: {} (columns found: {}; {})",
            quote_list(&missing),
            quote_list(&df.names()),
            caller.columns_hint()
        )));
    }
    for (i, t) in cols.targets.iter().enumerate() {
        if cols.targets[..i].contains(t) {
            return Err(invalid(format!("target column '{t}' is given twice")));
        }
        if t == &cols.id || t == &cols.timestamp {
            return Err(invalid(format!("target column '{t}' is also the id or timestamp column")));
        }
    }
    if cols.id == cols.timestamp {
        return Err(invalid(format!("the id and timestamp columns are the same column '{}'", cols.id)));
    }
    for t in &cols.targets {
        let data = &df.column(t).expect("checked").data;
        if !data.is_numeric() {
            // The first value that is not a number (pandas would keep the column as text).
            let example = (0..data.len())
                .find_map(|i| data.label_at(i).filter(|v| v.trim().parse::<f64>().is_err()).map(|v| (i, v)))
                .map(|(i, v)| format!(" (e.g. '{v}' in row {})", caller.row(i)))
                .unwrap_or_default();
            return Err(invalid(format!(
                "target column '{t}' must be numeric, found {} values{example}",
                data.type_name()
            )));
        }
    }
    if df.num_rows() == 0 {
        return Err(invalid(format!("{what} has no rows")));
    }
    Ok(())
}

/// A parsed timestamp column.
struct Stamps {
    /// Per row: the instant (UTC when `zone` is set, else the wall-clock time).
    instants: Vec<NaiveDateTime>,
    /// Per row: the wall-clock time.
    local: Vec<NaiveDateTime>,
    /// `None` = naive; [`Zone::PerValue`] holds one offset per row.
    zone: Option<Zone>,
}

/// Parses the timestamp column (strings or timestamps). Text with ISO offsets becomes UTC
/// instants with one fixed offset, or per-row offsets when they differ (e.g. across a DST change).
fn timestamps_of(df: &Frame, name: &str, what: &str, caller: Caller) -> Result<Stamps> {
    let data = &df.column(name).expect("checked").data;
    let n = data.len();
    let missing = |i: usize| invalid(format!("{what}: row {} has no timestamp in column '{name}'", caller.row(i)));
    if let ColumnData::Timestamp(v, zone) = data {
        let instants: Vec<NaiveDateTime> =
            v.iter().enumerate().map(|(i, t)| t.ok_or_else(|| missing(i))).collect::<Result<_>>()?;
        let local = match zone {
            Some(z) => instants.iter().enumerate().map(|(i, &t)| z.local(t, i)).collect(),
            None => instants.clone(),
        };
        return Ok(Stamps { instants, local, zone: zone.clone() });
    }
    let mut local = Vec::with_capacity(n);
    let mut offsets: Vec<Option<TzOffset>> = Vec::with_capacity(n);
    for i in 0..n {
        let (t, off) = match data {
            ColumnData::Str(v) => {
                let text = v[i].as_deref().ok_or_else(|| missing(i))?;
                parse_timestamp(text).ok_or_else(|| {
                    invalid(format!(
                        "{what}: cannot parse '{text}' in row {} of column '{name}' as a timestamp \
                         (expected e.g. 2024-01-03, 2024-01-03 12:00:00 or 2024-01-03T12:00:00)",
                        caller.row(i)
                    ))
                })?
            }
            ColumnData::Int(v) => {
                // A column of years (`1949`) or compact dates (`20240103`) read as integers.
                let text = v[i].to_string();
                parse_timestamp(&text).ok_or_else(|| {
                    invalid(format!(
                        "{what}: column '{name}' holds numbers ({text} in row {}), not timestamps",
                        caller.row(i)
                    ))
                })?
            }
            other => {
                return Err(invalid(format!(
                    "{what}: column '{name}' holds {} values, not timestamps",
                    other.type_name()
                )))
            }
        };
        if i > 0 && offsets[0].is_some() != off.is_some() {
            return Err(invalid(format!(
                "{what}: timestamps in column '{name}' mix times with and without a UTC offset ({} in row {}, {} in \
                 row {}); give every timestamp an offset, or none",
                offsets[0].map_or("no offset".into(), offset_text),
                caller.row(0),
                off.map_or("no offset".into(), offset_text),
                caller.row(i)
            )));
        }
        local.push(t);
        offsets.push(off);
    }
    let offsets: Option<Vec<TzOffset>> = offsets.into_iter().collect();
    let Some(offsets) = offsets.filter(|o| !o.is_empty()) else {
        return Ok(Stamps { instants: local.clone(), local, zone: None });
    };
    let instants = local.iter().zip(&offsets).map(|(&t, &o)| t - chrono::TimeDelta::seconds(o as i64)).collect();
    let zone = if offsets.iter().all(|&o| o == offsets[0]) { Zone::Fixed(offsets[0]) } else { Zone::PerValue(offsets) };
    Ok(Stamps { instants, local, zone: Some(zone) })
}

/// Groups rows by item (first-appearance order) and sorts each item's rows by timestamp.
fn group(
    df: &Frame,
    cols: &Columns,
    what: &str,
    caller: Caller,
    order: Option<&HashMap<String, usize>>,
) -> Result<Grouped> {
    let ids = &df.column(&cols.id).expect("checked").data;
    let Stamps { instants: timestamps, local, zone } = timestamps_of(df, &cols.timestamp, what, caller)?;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut labels = Vec::new();
    let mut first_rows = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    if let Some(order) = order {
        labels = vec![String::new(); order.len()];
        for (label, &i) in order {
            labels[i] = label.clone();
        }
        first_rows = vec![usize::MAX; order.len()];
        rows = vec![Vec::new(); order.len()];
        index = order.clone();
    }
    for r in 0..df.num_rows() {
        let label = ids.label_at(r).ok_or_else(|| {
            invalid(format!("{what}: row {} has no value in the id column '{}'", caller.row(r), cols.id))
        })?;
        let i = match index.get(&label) {
            Some(&i) => i,
            None if order.is_some() => {
                return Err(invalid(format!(
                    "{what} has item '{label}' (row {}) which is not in {}",
                    caller.row(r),
                    caller.the_input()
                )))
            }
            None => {
                let i = labels.len();
                index.insert(label.clone(), i);
                labels.push(label);
                first_rows.push(r);
                rows.push(Vec::new());
                i
            }
        };
        if first_rows[i] == usize::MAX {
            first_rows[i] = r;
        }
        rows[i].push(r);
    }
    for (i, item_rows) in rows.iter_mut().enumerate() {
        item_rows.sort_by_key(|&r| timestamps[r]);
        if let Some(w) = item_rows.windows(2).find(|w| timestamps[w[0]] == timestamps[w[1]]) {
            return Err(invalid(format!(
                "{what}: item '{}' has duplicate timestamp {} (rows {} and {})",
                labels[i],
                zoned_text(timestamps[w[0]], zone.as_ref(), w[0], 0),
                caller.row(w[0].min(w[1])),
                caller.row(w[0].max(w[1]))
            )));
        }
    }
    Ok(Grouped { labels, first_rows, rows, timestamps, local, zone })
}

/// The `steps` forecast timestamps after an item's last one (`last_instant`, wall-clock
/// `last_local`), as pandas' `last + k * offset`: naive times step in wall-clock time; zoned ones
/// step in absolute time for frequencies shorter than a day and in local calendar time otherwise
/// (a local time that a DST change skips or repeats is an error, as in pandas). `item` indexes
/// per-item offsets of `zone`. Returns UTC instants for zoned items.
fn future_instants(
    freq: &Freq,
    zone: Option<&Zone>,
    item: usize,
    last_instant: NaiveDateTime,
    last_local: NaiveDateTime,
    steps: usize,
) -> std::result::Result<Vec<NaiveDateTime>, String> {
    let overflow = || format!("they go past the year {MAX_YEAR}, which ISO-8601 text and pandas cannot represent");
    let out = match zone {
        None => freq.future(last_local, steps).ok_or_else(overflow)?,
        Some(_) if freq.is_absolute() => freq.future(last_instant, steps).ok_or_else(overflow)?,
        Some(z) => {
            let fallback = z.offset(last_instant, item);
            let local = freq.future(last_local, steps).ok_or_else(overflow)?;
            local.into_iter().map(|t| z.instant(t, fallback)).collect::<std::result::Result<_, _>>()?
        }
    };
    let local_of = |t: NaiveDateTime| zone.map_or(t, |z| z.local(t, item));
    if out.iter().any(|&t| local_of(t).year() > MAX_YEAR) {
        return Err(overflow());
    }
    Ok(out)
}

/// A description of why an item's timestamps are irregular: its most common step and the first
/// step that differs.
fn irregularity(ts: &[NaiveDateTime]) -> String {
    let steps: Vec<chrono::TimeDelta> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut counts: HashMap<chrono::TimeDelta, usize> = HashMap::new();
    for s in &steps {
        *counts.entry(*s).or_default() += 1;
    }
    let Some((&common, _)) = counts.iter().max_by_key(|(d, c)| (**c, std::cmp::Reverse(**d))) else {
        return String::new();
    };
    match steps.iter().position(|s| *s != common) {
        Some(k) => format!(
            ": most steps are {}, but {} -> {} is {}",
            human_delta(common),
            ts[k].format("%Y-%m-%dT%H:%M:%S"),
            ts[k + 1].format("%Y-%m-%dT%H:%M:%S"),
            human_delta(steps[k])
        ),
        None => String::new(),
    }
}

fn human_delta(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    if d.subsec_nanos() != 0 {
        format!("{} ms", d.num_milliseconds())
    } else if secs % 86400 == 0 {
        format!("{} day(s)", secs / 86400)
    } else if secs % 3600 == 0 {
        format!("{} hour(s)", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} minute(s)", secs / 60)
    } else {
        format!("{secs} second(s)")
    }
}

/// `infer_freq_from_df`: every item with at least 3 rows must have an inferable frequency, and
/// all must agree.
fn infer_frequency(g: &Grouped, caller: Caller) -> Result<Freq> {
    let mut found: Option<(String, usize)> = None;
    for (i, rows) in g.rows.iter().enumerate() {
        if rows.len() < 3 {
            continue;
        }
        let ts: Vec<NaiveDateTime> = rows.iter().map(|&r| g.local[r]).collect();
        let instants: Vec<NaiveDateTime> = rows.iter().map(|&r| g.timestamps[r]).collect();
        let Some(alias) = infer_freq_zoned(&ts, &instants) else {
            return Err(invalid(format!(
                "could not infer the frequency of item '{}': its timestamps are not regularly spaced{} \
                 (fill the gaps, or pass {} to use a frequency as-is)",
                g.labels[i],
                irregularity(&ts),
                caller.freq_hint("")
            )));
        };
        match &found {
            None => found = Some((alias, i)),
            Some((first, j)) if *first != alias => {
                return Err(invalid(format!(
                    "all items must have the same frequency, but item '{}' has {first} and item '{}' has {alias}",
                    g.labels[*j], g.labels[i]
                )))
            }
            _ => {}
        }
    }
    let (alias, _) = found.ok_or_else(|| {
        invalid(format!(
            "could not infer the frequency: no item has at least 3 timestamps; pass {}",
            caller.freq_hint("D")
        ))
    })?;
    alias.parse::<Freq>().map_err(|_| {
        invalid(format!(
            "the inferred frequency '{alias}' is not supported for forecast timestamps; pass {}",
            caller.freq_hint("")
        ))
    })
}

fn item_ids_of(df: &Frame, cols: &Columns, g: &Grouped) -> ColumnData {
    df.column(&cols.id).expect("checked").data.take(&g.first_rows)
}

fn target_values(df: &Frame, cols: &Columns, g: &Grouped, caller: Caller) -> Result<Vec<Vec<Vec<f32>>>> {
    let what = caller.input();
    let mut out = Vec::with_capacity(g.rows.len());
    for (i, rows) in g.rows.iter().enumerate() {
        let mut targets = Vec::with_capacity(cols.targets.len());
        for t in &cols.targets {
            let data = &df.column(t).expect("checked").data;
            check_finite(data, rows, &Place { what, caller, kind: "target", column: t, item: &g.labels[i] })?;
            let values: Vec<f32> = rows.iter().map(|&r| data.f64_at(r) as f32).collect();
            if caller.refuses_unobserved_items() && values.iter().all(|v| v.is_nan()) {
                return Err(invalid(format!(
                    "{what}: item '{}' has no observed value in target column '{t}' (all {} values are missing)",
                    g.labels[i],
                    values.len()
                )));
            }
            targets.push(values);
        }
        out.push(targets);
    }
    Ok(out)
}

/// Where a value sits, for messages.
struct Place<'a> {
    what: &'a str,
    caller: Caller,
    kind: &'a str,
    column: &'a str,
    item: &'a str,
}

/// Refuses a value the model cannot use: infinite, or finite but beyond the float32 range (the
/// model computes in float32). Either would make every forecast of the item NaN.
fn check_finite(data: &ColumnData, rows: &[usize], place: &Place) -> Result<()> {
    for &r in rows {
        let x = data.f64_at(r);
        if x.is_nan() || (x as f32).is_finite() {
            continue;
        }
        let why = if x.is_infinite() { "is infinite" } else { "is beyond the float32 range (about 3.4e38)" };
        return Err(invalid(format!(
            "{}: item '{}' has the value {} in {} column '{}' (row {}), which {why}: the model cannot use it \
             (every forecast of the item would be NaN); remove the value, or leave the cell empty to mark it missing",
            place.what,
            place.item,
            python_float_str(x),
            place.kind,
            place.column,
            place.caller.row(r)
        )));
    }
    Ok(())
}

fn covariate_values(data: &ColumnData, rows: &[usize], numeric: bool, place: &Place) -> Result<CovariateValues> {
    Ok(if numeric {
        check_finite(data, rows, place)?;
        CovariateValues::Numeric(rows.iter().map(|&r| data.f64_at(r) as f32).collect())
    } else {
        CovariateValues::Categorical(rows.iter().map(|&r| data.label_at(r)).collect())
    })
}

/// Numeric covariates (pandas: numeric, not bool) become float rows; the rest are categories.
fn is_numeric_covariate(data: &ColumnData) -> bool {
    matches!(data, ColumnData::Int(_) | ColumnData::Float(_) | ColumnData::Float32(_))
}

/// Validates `df` (and `future`) and builds the pipeline items, as the reference `predict_df`:
/// targets = `columns.targets`; every other column is a covariate (numeric -> numeric, otherwise
/// categorical), known-future when `future` has it; item order = first appearance; rows sorted
/// by timestamp; forecast timestamps = last + k * freq (`freq` or inferred). Messages are the
/// CLI's ([`prepare_predict_for`] words them for another caller).
pub fn prepare_predict(
    df: &Frame,
    future: Option<&Frame>,
    cols: &Columns,
    prediction_length: usize,
    freq: Option<Freq>,
) -> Result<PreparedFrame> {
    prepare_predict_for(Caller::Cli, df, future, cols, prediction_length, freq)
}

/// [`prepare_predict`] with the messages and rules of `caller`.
pub fn prepare_predict_for(
    caller: Caller,
    df: &Frame,
    future: Option<&Frame>,
    cols: &Columns,
    prediction_length: usize,
    freq: Option<Freq>,
) -> Result<PreparedFrame> {
    if prediction_length == 0 {
        return Err(Error::InvalidArgument("prediction length must be at least 1".into()));
    }
    check_columns(df, cols, caller)?;
    if let Some(fut) = future {
        validate_future(df, fut, cols, prediction_length, caller)?;
    }
    let (input, future_name) = (caller.input(), caller.future());
    let g = group(df, cols, input, caller, None)?;
    let mut notes = Vec::new();
    if let Some(Zone::PerValue(offsets)) = &g.zone {
        let mut distinct: Vec<TzOffset> = offsets.clone();
        distinct.sort_unstable();
        distinct.dedup();
        notes.push(format!(
            "the timestamps have several UTC offsets ({}) and no time-zone name: frequencies of a day or longer \
             are inferred and stepped in local time, and each item's forecast timestamps keep its last offset",
            distinct.iter().map(|&o| offset_text(o)).collect::<Vec<_>>().join(", ")
        ));
    }
    let targets = target_values(df, cols, &g, caller)?;
    let freq = match freq {
        Some(f) => f,
        None => infer_frequency(&g, caller)?,
    };
    let zone = g.item_zone();
    let mut future_timestamps = Vec::with_capacity(g.rows.len());
    for (i, rows) in g.rows.iter().enumerate() {
        let last = *rows.last().expect("items have rows");
        let last_text = zoned_text(g.timestamps[last], g.zone.as_ref(), last, 0);
        let ts = future_instants(&freq, zone.as_ref(), i, g.timestamps[last], g.local[last], prediction_length)
            .map_err(|why| {
                invalid(format!(
                    "forecast timestamps of item '{}' (last observed {last_text}, frequency {freq}): {why}",
                    g.labels[i]
                ))
            })?;
        future_timestamps.push(ts);
    }

    // Future covariates, grouped in the input's item order.
    let future_grouped = match future {
        Some(fut) => {
            let order: HashMap<String, usize> = g.labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
            let fg = group(fut, cols, future_name, caller, Some(&order))?;
            if fg.zone.is_some() != g.zone.is_some() {
                let has = |z: &Option<Zone>| if z.is_some() { "a UTC offset or time zone" } else { "no time zone" };
                return Err(invalid(format!(
                    "{future_name} timestamps have {} but {}'s have {}",
                    has(&fg.zone),
                    caller.the_input(),
                    has(&g.zone)
                )));
            }
            for (i, rows) in fg.rows.iter().enumerate() {
                for (k, &r) in rows.iter().enumerate() {
                    let expected = future_timestamps[i][k];
                    // Zoned timestamps compare as instants, whatever offsets they are written with.
                    if fg.timestamps[r] != expected {
                        return Err(invalid(format!(
                            "{future_name} timestamps do not match the expected forecast timestamps: item '{}' step {} \
                             is {} but {}'s frequency {freq} gives {}",
                            g.labels[i],
                            k + 1,
                            zoned_text(fg.timestamps[r], fg.zone.as_ref(), r, 0),
                            caller.the_input(),
                            zoned_text(expected, zone.as_ref(), i, 0)
                        )));
                    }
                }
            }
            Some((fut, fg))
        }
        None => None,
    };

    let covariate_columns: Vec<&Column> = df
        .columns
        .iter()
        .filter(|c| c.name != cols.id && c.name != cols.timestamp && !cols.targets.contains(&c.name))
        .collect();
    let known: Vec<bool> = covariate_columns
        .iter()
        .map(|c| future_grouped.as_ref().is_some_and(|(fut, _)| fut.has_column(&c.name)))
        .collect();
    for (c, &is_known) in covariate_columns.iter().zip(&known) {
        if is_known && is_numeric_covariate(&c.data) {
            let (fut, _) = future_grouped.as_ref().expect("known");
            let fdata = &fut.column(&c.name).expect("checked").data;
            if !(is_numeric_covariate(fdata) || fdata.iter_all_missing()) {
                return Err(invalid(format!(
                    "covariate '{}' is numeric in {} but holds {} values in {}",
                    c.name,
                    caller.the_input(),
                    fdata.type_name(),
                    caller.the_future()
                )));
            }
        }
    }

    let mut inputs = Vec::with_capacity(g.rows.len());
    for (i, rows) in g.rows.iter().enumerate() {
        let mut covariates = Vec::with_capacity(covariate_columns.len());
        // Past-only first, then known-future, each in column order (the reference's row order).
        for pass_known in [false, true] {
            for (c, &is_known) in covariate_columns.iter().zip(&known) {
                if is_known != pass_known {
                    continue;
                }
                let numeric = is_numeric_covariate(&c.data);
                let place = Place { what: input, caller, kind: "covariate", column: &c.name, item: &g.labels[i] };
                let past = covariate_values(&c.data, rows, numeric, &place)?;
                let future = if is_known {
                    let (fut, fg) = future_grouped.as_ref().expect("known");
                    let fdata = &fut.column(&c.name).expect("checked").data;
                    let place = Place { what: future_name, ..place };
                    FutureValues::Known(covariate_values(fdata, &fg.rows[i], numeric, &place)?)
                } else {
                    FutureValues::PastOnly
                };
                covariates.push(Covariate { name: c.name.clone(), past, future });
            }
        }
        inputs.push(SeriesInput { targets: targets[i].clone(), covariates });
    }

    Ok(PreparedFrame {
        columns: cols.clone(),
        item_ids: item_ids_of(df, cols, &g),
        item_labels: g.labels.clone(),
        inputs,
        future_timestamps,
        zone,
        freq: Some(freq),
        notes,
    })
}

impl ColumnData {
    /// True when every value is missing (a column pandas would read as all-NaN float).
    fn iter_all_missing(&self) -> bool {
        (0..self.len()).all(|i| self.label_at(i).is_none())
    }
}

/// The reference `validate_df` checks on the future table.
fn validate_future(df: &Frame, fut: &Frame, cols: &Columns, prediction_length: usize, caller: Caller) -> Result<()> {
    let future_name = caller.future();
    let missing: Vec<&str> =
        [cols.id.as_str(), cols.timestamp.as_str()].into_iter().filter(|c| !fut.has_column(c)).collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "{future_name} does not contain all expected columns. Missing columns: {} (columns found: {})",
            quote_list(&missing),
            quote_list(&fut.names())
        )));
    }
    let targets: Vec<&str> = fut.names().into_iter().filter(|c| cols.targets.iter().any(|t| t == c)).collect();
    if !targets.is_empty() {
        return Err(invalid(format!(
            "{future_name} cannot contain target columns. Target columns found: {}",
            quote_list(&targets)
        )));
    }
    let extra: Vec<&str> = fut.names().into_iter().filter(|c| !df.has_column(c)).collect();
    if !extra.is_empty() {
        return Err(invalid(format!(
            "{future_name} cannot contain columns not present in {}. Extra columns: {}",
            caller.the_input(),
            quote_list(&extra)
        )));
    }
    let count_items = |f: &Frame| -> Result<(Vec<String>, HashMap<String, usize>)> {
        let ids = &f.column(&cols.id).expect("checked").data;
        let mut order = Vec::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for r in 0..f.num_rows() {
            let Some(label) = ids.label_at(r) else { continue };
            let c = counts.entry(label.clone()).or_default();
            if *c == 0 {
                order.push(label);
            }
            *c += 1;
        }
        Ok((order, counts))
    };
    let (df_items, _) = count_items(df)?;
    let (fut_items, fut_counts) = count_items(fut)?;
    let only_df: Vec<&str> = df_items.iter().filter(|i| !fut_counts.contains_key(*i)).map(String::as_str).collect();
    let df_set: std::collections::HashSet<&String> = df_items.iter().collect();
    let only_fut: Vec<&str> = fut_items.iter().filter(|i| !df_set.contains(i)).map(String::as_str).collect();
    if !only_df.is_empty() || !only_fut.is_empty() {
        let mut parts = Vec::new();
        if !only_df.is_empty() {
            parts.push(format!(
                "missing from {}: {}",
                caller.the_future(),
                quote_list(&only_df[..only_df.len().min(5)])
            ));
        }
        if !only_fut.is_empty() {
            parts.push(format!("not in {}: {}", caller.the_input(), quote_list(&only_fut[..only_fut.len().min(5)])));
        }
        return Err(invalid(format!(
            "{} must have the same items as {} ({})",
            caller.the_future(),
            caller.the_input(),
            parts.join("; ")
        )));
    }
    let wrong: Vec<String> = fut_items
        .iter()
        .filter(|i| fut_counts[*i] != prediction_length)
        .map(|i| format!("'{i}' has {}", fut_counts[i]))
        .collect();
    if !wrong.is_empty() {
        return Err(invalid(format!(
            "{} must contain prediction_length={prediction_length} rows per item; {} item(s) differ: {}",
            caller.the_future(),
            wrong.len(),
            wrong[..wrong.len().min(5)].join(", ")
        )));
    }
    Ok(())
}

/// Validates `df` and builds items for embedding: targets and every other column as a past-only
/// covariate; no frequency is needed. Messages are the CLI's ([`prepare_embed_for`]).
pub fn prepare_embed(df: &Frame, cols: &Columns) -> Result<PreparedFrame> {
    prepare_embed_for(Caller::Cli, df, cols)
}

/// [`prepare_embed`] with the messages and rules of `caller`.
pub fn prepare_embed_for(caller: Caller, df: &Frame, cols: &Columns) -> Result<PreparedFrame> {
    check_columns(df, cols, caller)?;
    let g = group(df, cols, caller.input(), caller, None)?;
    let targets = target_values(df, cols, &g, caller)?;
    let covariate_columns: Vec<&Column> = df
        .columns
        .iter()
        .filter(|c| c.name != cols.id && c.name != cols.timestamp && !cols.targets.contains(&c.name))
        .collect();
    let mut inputs = Vec::with_capacity(g.rows.len());
    for ((rows, targets), label) in g.rows.iter().zip(targets).zip(&g.labels) {
        let mut covariates = Vec::with_capacity(covariate_columns.len());
        for c in &covariate_columns {
            let place = Place { what: caller.input(), caller, kind: "covariate", column: &c.name, item: label };
            let past = covariate_values(&c.data, rows, is_numeric_covariate(&c.data), &place)?;
            covariates.push(Covariate { name: c.name.clone(), past, future: FutureValues::PastOnly });
        }
        inputs.push(SeriesInput { targets, covariates });
    }
    Ok(PreparedFrame {
        columns: cols.clone(),
        item_ids: item_ids_of(df, cols, &g),
        item_labels: g.labels.clone(),
        inputs,
        future_timestamps: vec![Vec::new(); g.rows.len()],
        zone: g.item_zone(),
        freq: None,
        notes: Vec::new(),
    })
}

/// The forecast table's column naming each row's target (after the id and timestamp columns).
pub const TARGET_NAME_COLUMN: &str = "target_name";
/// The forecast table's column of the median (after [`TARGET_NAME_COLUMN`]).
pub const PREDICTIONS_COLUMN: &str = "predictions";

/// The forecast table's column of a quantile level: `str(level)` as Python prints the float
/// (`0.1`, `0.05`, `1e-05`); these follow [`PREDICTIONS_COLUMN`], in the order asked.
pub fn level_column(level: f64) -> String {
    python_float_str(level)
}

/// The forecast table: `<id>, <timestamp>, target_name, predictions, <str(level)>...`, rows
/// ordered (item, target, step); `predictions` is the median.
pub fn forecast_frame(prepared: &PreparedFrame, forecasts: &[ItemForecast], levels: &[f64]) -> Result<Frame> {
    if forecasts.len() != prepared.inputs.len() {
        return Err(invalid(format!("{} forecasts for {} items", forecasts.len(), prepared.inputs.len())));
    }
    let n_targets = prepared.columns.targets.len();
    let mut id_rows = Vec::new();
    let mut timestamps = Vec::new();
    let mut target_names = Vec::new();
    let mut median = Vec::new();
    let mut quantiles: Vec<Vec<f32>> = vec![Vec::new(); levels.len()];
    for (i, f) in forecasts.iter().enumerate() {
        let h = f.prediction_length;
        let q = f.quantile_levels.len();
        if f.n_targets != n_targets || q != levels.len() || prepared.future_timestamps[i].len() != h {
            return Err(invalid(format!("forecast of item '{}' has an unexpected shape", prepared.item_labels[i])));
        }
        for t in 0..n_targets {
            for s in 0..h {
                id_rows.push(i);
                timestamps.push(Some(prepared.future_timestamps[i][s]));
                target_names.push(Some(prepared.columns.targets[t].clone()));
                median.push(f.median[t * h + s]);
                for (k, col) in quantiles.iter_mut().enumerate() {
                    col.push(f.quantiles[(t * h + s) * q + k]);
                }
            }
        }
    }
    let mut frame = Frame::new();
    frame.push(prepared.columns.id.clone(), prepared.item_ids.take(&id_rows));
    let zone = prepared.zone.as_ref().map(|z| z.take(&id_rows));
    frame.push(prepared.columns.timestamp.clone(), ColumnData::Timestamp(timestamps, zone));
    frame.push(TARGET_NAME_COLUMN, ColumnData::Str(target_names));
    frame.push(PREDICTIONS_COLUMN, ColumnData::Float32(median));
    for (k, (level, col)) in levels.iter().zip(quantiles).enumerate() {
        // A level given twice is one column, at its first place (as the reference's DataFrame).
        if !levels[..k].contains(level) {
            frame.push(level_column(*level), ColumnData::Float32(col));
        }
    }
    Ok(frame)
}

/// One embedding entry: an (item, target) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingEntry {
    /// Index of the item in [`PreparedFrame::item_labels`].
    pub item: usize,
    pub target_name: String,
    pub loc: f32,
    pub scale: f32,
    /// One vector (pooled) or `N + 2` vectors ([`Pooling::All`](chronos2_core::pipeline::Pooling)).
    pub vectors: Vec<Vec<f32>>,
}

/// Flattens item embeddings into one entry per (item, target).
pub fn embedding_entries(prepared: &PreparedFrame, embeddings: &[ItemEmbedding]) -> Result<Vec<EmbeddingEntry>> {
    if embeddings.len() != prepared.inputs.len() {
        return Err(invalid(format!("{} embeddings for {} items", embeddings.len(), prepared.inputs.len())));
    }
    let mut out = Vec::new();
    for (i, e) in embeddings.iter().enumerate() {
        if e.n_variates != prepared.columns.targets.len() || e.values.len() != e.n_variates * e.tokens * e.d_model {
            return Err(invalid(format!("embedding of item '{}' has an unexpected shape", prepared.item_labels[i])));
        }
        for (v, target) in prepared.columns.targets.iter().enumerate() {
            let block = &e.values[v * e.tokens * e.d_model..(v + 1) * e.tokens * e.d_model];
            out.push(EmbeddingEntry {
                item: i,
                target_name: target.clone(),
                loc: e.loc[v],
                scale: e.scale[v],
                vectors: block.chunks(e.d_model).map(<[f32]>::to_vec).collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::format_timestamp;

    fn csv(text: &str) -> Frame {
        Frame::from_csv_str(text, "test.csv").unwrap()
    }

    fn cols() -> Columns {
        Columns::default()
    }

    fn err(df: &str, fut: Option<&str>, h: usize) -> String {
        let df = csv(df);
        let fut = fut.map(csv);
        prepare_predict(&df, fut.as_ref(), &cols(), h, None).unwrap_err().to_string()
    }

    const DAILY: &str = "item_id,timestamp,target,price\nA,2024-01-01,1,5\nA,2024-01-02,2,6\nA,2024-01-03,3,7\nB,2024-01-01,4,8\nB,2024-01-02,5,9\nB,2024-01-03,6,10\n";

    #[test]
    fn groups_sorts_and_builds_future_timestamps() {
        let df = csv("item_id,timestamp,target\nB,2024-01-03,3\nA,2024-01-02,1\nB,2024-01-01,1\nB,2024-01-02,2\nA,2024-01-01,0\nA,2024-01-03,2\n");
        let p = prepare_predict(&df, None, &cols(), 2, None).unwrap();
        assert_eq!(p.item_labels, vec!["B", "A"]);
        assert_eq!(p.inputs[0].targets, vec![vec![1.0, 2.0, 3.0]]);
        assert_eq!(p.inputs[1].targets, vec![vec![0.0, 1.0, 2.0]]);
        assert_eq!(p.freq.unwrap().to_string(), "D");
        let ts: Vec<String> = p.future_timestamps[0].iter().map(|t| format_timestamp(*t, None)).collect();
        assert_eq!(ts, vec!["2024-01-04T00:00:00", "2024-01-05T00:00:00"]);
    }

    #[test]
    fn covariate_order_past_only_then_known_future() {
        let df =
            csv("item_id,timestamp,target,k,p,c\nA,2024-01-01,1,1,5,x\nA,2024-01-02,2,0,6,y\nA,2024-01-03,3,1,7,\n");
        let fut = csv("item_id,timestamp,k\nA,2024-01-04,0\nA,2024-01-05,1\n");
        let p = prepare_predict(&df, Some(&fut), &cols(), 2, None).unwrap();
        let names: Vec<&str> = p.inputs[0].covariates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["p", "c", "k"]);
        let c = &p.inputs[0].covariates;
        assert_eq!(c[1].past, CovariateValues::Categorical(vec![Some("x".into()), Some("y".into()), None]));
        assert_eq!(c[2].future, FutureValues::Known(CovariateValues::Numeric(vec![0.0, 1.0])));
        assert_eq!(c[0].future, FutureValues::PastOnly);
    }

    #[test]
    fn validation_errors_name_the_problem() {
        let e = err("item_id,timestamp,value\nA,2024-01-01,1\n", None, 2);
        assert!(e.contains("Missing columns: 'target'") && e.contains("'value'"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,x\n", None, 2);
        assert!(e.contains("target column 'target' must be numeric") && e.contains("'x'"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-01,2\nA,2024-01-02,2\n", None, 2);
        assert!(e.contains("item 'A' has duplicate timestamp 2024-01-01T00:00:00"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-04,2\n", None, 2);
        assert!(e.contains("could not infer the frequency of item 'A'") && e.contains("--freq"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-03,3\nB,2024-01-01,1\nB,2024-01-08,1\nB,2024-01-15,1\n", None, 2);
        assert!(e.contains("same frequency") && e.contains("'A' has D") && e.contains("'B' has W-MON"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\n", None, 2);
        assert!(e.contains("no item has at least 3 timestamps"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,\nA,2024-01-02,\nA,2024-01-03,\nB,2024-01-01,1\n", None, 2);
        assert!(e.contains("item 'A' has no observed value in target column 'target'"), "{e}");
        let e = err("item_id,timestamp,target\nA,yesterday,1\n", None, 2);
        assert!(e.contains("cannot parse 'yesterday' in row 1"), "{e}");
        let e = err("item_id,timestamp,target\nA,2024-01-01,1\n", None, 0);
        assert!(e.contains("at least 1"), "{e}");
    }

    #[test]
    fn future_file_errors() {
        let e = err(DAILY, Some("item_id,timestamp,price\nA,2024-01-04,1\n"), 1);
        assert!(e.contains("same items") && e.contains("'B'"), "{e}");
        let e = err(DAILY, Some("item_id,timestamp,price\nA,2024-01-04,1\nB,2024-01-04,1\nB,2024-01-05,1\n"), 1);
        assert!(e.contains("prediction_length=1 rows per item") && e.contains("'B' has 2"), "{e}");
        let e = err(DAILY, Some("item_id,timestamp,target\nA,2024-01-04,1\nB,2024-01-04,1\n"), 1);
        assert!(e.contains("cannot contain target columns") && e.contains("'target'"), "{e}");
        let e = err(DAILY, Some("item_id,timestamp,promo\nA,2024-01-04,1\nB,2024-01-04,1\n"), 1);
        assert!(e.contains("Extra columns: 'promo'"), "{e}");
        let e = err(DAILY, Some("item_id,price\nA,1\nB,1\n"), 1);
        assert!(e.contains("future file does not contain all expected columns") && e.contains("'timestamp'"), "{e}");
        let e = err(DAILY, Some("item_id,timestamp,price\nA,2024-01-04,1\nB,2024-01-05,1\n"), 1);
        assert!(e.contains("do not match") && e.contains("item 'B'") && e.contains("2024-01-04T00:00:00"), "{e}");
        let e = err(DAILY, Some("item_id,timestamp,price\nA,2024-01-04,x\nB,2024-01-04,1\n"), 1);
        assert!(e.contains("covariate 'price' is numeric"), "{e}");
        let ok = prepare_predict(
            &csv(DAILY),
            Some(&csv("item_id,timestamp,price\nB,2024-01-04,1\nA,2024-01-04,2\n")),
            &cols(),
            1,
            None,
        )
        .unwrap();
        assert_eq!(ok.inputs[0].covariates[0].future, FutureValues::Known(CovariateValues::Numeric(vec![2.0])));
    }

    #[test]
    fn explicit_freq_is_used_as_is() {
        let df = csv("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\n");
        let p = prepare_predict(&df, None, &cols(), 2, Some("h".parse().unwrap())).unwrap();
        assert_eq!(format_timestamp(p.future_timestamps[0][1], None), "2024-01-02T02:00:00");
    }

    /// Hourly text with ISO offsets across the spring DST change (the CLI's CSV path) is regular
    /// in absolute time, as pandas infers it; forecasts step in absolute time.
    #[test]
    fn hourly_offsets_across_dst_are_regular() {
        let mut text = String::from("item_id,timestamp,target\n");
        for (k, stamp) in ["00:00:00+01:00", "01:00:00+01:00", "03:00:00+02:00", "04:00:00+02:00"].iter().enumerate() {
            text.push_str(&format!("A,2024-03-31T{stamp},{k}\n"));
        }
        let p = prepare_predict(&csv(&text), None, &cols(), 2, None).unwrap();
        assert_eq!(p.freq.unwrap().to_string(), "h");
        let zone = p.zone.as_ref().unwrap();
        let local: Vec<String> =
            p.future_timestamps[0].iter().map(|&t| zone.local(t, 0).format("%H:%M").to_string()).collect();
        assert_eq!(local, ["05:00", "06:00"]);
    }

    /// The Python package's wording: its argument names and 0-based rows; an all-missing item is
    /// forecast (as the reference's `predict_df`), where the CLI refuses it.
    #[test]
    fn python_caller_words_and_rules() {
        let df = csv("item_id,timestamp,target\nA,2024-01-01,1\nA,soon,2\n");
        let e = prepare_predict_for(Caller::Python, &df, None, &cols(), 2, None).unwrap_err().to_string();
        assert!(e.starts_with("df: cannot parse 'soon' in row 1 "), "{e}");
        let e = prepare_predict(&df, None, &cols(), 2, None).unwrap_err().to_string();
        assert!(e.starts_with("input: cannot parse 'soon' in row 2 "), "{e}");
        let text =
            "item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-03,3\nB,2024-01-01,\nB,2024-01-02,\n";
        let p = prepare_predict_for(Caller::Python, &csv(text), None, &cols(), 2, None).unwrap();
        assert!(p.inputs[1].targets[0].iter().all(|v| v.is_nan()));
        let e = prepare_predict(&csv(text), None, &cols(), 2, None).unwrap_err().to_string();
        assert!(e.contains("item 'B' has no observed value"), "{e}");
        let e = prepare_predict_for(Caller::Python, &csv(DAILY), None, &Columns { id: "x".into(), ..cols() }, 2, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("df does not contain") && e.contains("id_column=") && !e.contains("--"), "{e}");
    }

    #[test]
    fn integer_ids_keep_their_type() {
        let df = csv("item_id,timestamp,target\n7,2024-01-01,1\n7,2024-01-02,2\n7,2024-01-03,3\n");
        let p = prepare_predict(&df, None, &cols(), 1, None).unwrap();
        assert_eq!(p.item_ids, ColumnData::Int(vec![7]));
    }
}
