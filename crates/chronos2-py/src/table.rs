//! Column buffers from the Python layer (`chronos2/_frames.py`, which reads pandas, polars and
//! pyarrow tables through Arrow) -> the facade's [`Frame`], column by column, never row by row
//! in Python.
//!
//! A column is `(name, kind, values, extra)`:
//! - `"f64"` / `"f32"` / `"i64"`: a numpy array of that type;
//! - `"bool"`: a bool array, `extra` = validity mask (or `None`);
//! - `"str"`: int32 dictionary codes (-1 = missing), `extra` = the dictionary (list of str);
//! - `"ts"`: int64 nanoseconds, `extra` = `(validity mask or None, time zone name or None)`: UTC
//!   instants of a zoned column (`Europe/Paris`, `UTC`, `+05:30`), wall-clock times of a naive one.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime};
use chronos2::data::{parse_timestamp, ColumnData, Frame, Zone};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::value_error;

pub type RawColumn<'py> = (String, String, Bound<'py, PyAny>, Option<Bound<'py, PyAny>>);

/// A table converted for the facade, with the first row of each id (in first-appearance order).
pub struct Table {
    pub frame: Frame,
    pub id_first_rows: Vec<usize>,
}

fn array<'py, T: numpy::Element>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray1<'py, T>> {
    obj.extract().map_err(|_| value_error(format!("column '{name}': unexpected buffer type")))
}

fn mask(extra: &Option<Bound<'_, PyAny>>, name: &str, n: usize) -> PyResult<Option<Vec<bool>>> {
    match extra {
        None => Ok(None),
        Some(m) if m.is_none() => Ok(None),
        Some(m) => {
            let m = array::<bool>(m, name)?.as_array().to_vec();
            if m.len() != n {
                return Err(value_error(format!("column '{name}': validity mask of the wrong length")));
            }
            Ok(Some(m))
        }
    }
}

fn naive_from_ns(ns: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32).map(|d| d.naive_utc())
}

/// Nanoseconds since the epoch of a wall-clock time (`None` when out of the i64 range).
pub fn ns_from_naive(t: NaiveDateTime) -> Option<i64> {
    t.and_utc().timestamp_nanos_opt()
}

/// A timestamp column given as text: each distinct label parsed once. `None` when a label does
/// not parse or the labels mix UTC offsets (the facade then reports the row, as the CLI does).
fn parse_labelled_timestamps(codes: &[i32], labels: &[String]) -> Option<ColumnData> {
    let mut parsed = Vec::with_capacity(labels.len());
    let mut offset = None;
    for (i, label) in labels.iter().enumerate() {
        let (t, off) = parse_timestamp(label)?;
        if i > 0 && off != offset {
            return None;
        }
        offset = off;
        parsed.push(t);
    }
    // A zoned column holds UTC instants (the frame's convention).
    let to_instant = |t: NaiveDateTime| t - chrono::TimeDelta::seconds(offset.unwrap_or(0) as i64);
    let values =
        codes.iter().map(|&c| usize::try_from(c).ok().map(|c| to_instant(parsed[c]))).collect::<Option<Vec<_>>>()?;
    Some(ColumnData::Timestamp(values.into_iter().map(Some).collect(), offset.map(Zone::Fixed)))
}

/// The validity mask and the zone of a `"ts"` column's `extra` (`(mask, tz name)`).
fn timestamp_extra<'py>(
    extra: &Option<Bound<'py, PyAny>>,
    name: &str,
) -> PyResult<(Option<Bound<'py, PyAny>>, Option<Zone>)> {
    let Some(extra) = extra else { return Ok((None, None)) };
    let pair = extra
        .downcast::<PyTuple>()
        .map_err(|_| value_error(format!("column '{name}': expected (mask, time zone) with the timestamps")))?;
    let (valid, tz): (Bound<'py, PyAny>, Option<String>) = pair.extract()?;
    let zone = tz
        .map(|tz| {
            Zone::from_name(&tz)
                .ok_or_else(|| value_error(format!("column '{name}': unknown time zone '{tz}' (expected UTC, an offset such as +05:30 or an IANA name such as Europe/Paris)")))
        })
        .transpose()?;
    Ok(((!valid.is_none()).then_some(valid), zone))
}

/// The first row of each distinct key (missing keys skipped), in row order.
fn first_rows_by<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = Option<K>>) -> Vec<usize> {
    let mut seen = HashMap::new();
    for (row, key) in keys.enumerate() {
        if let Some(key) = key {
            seen.entry(key).or_insert(row);
        }
    }
    let mut rows: Vec<usize> = seen.into_values().collect();
    rows.sort_unstable();
    rows
}

/// Builds the frame; `timestamp` names the timestamp column (text is parsed here) and `id`
/// the id column (whose first rows are recorded, `None` for a table without one).
pub fn table(columns: Vec<RawColumn<'_>>, timestamp: &str, id: Option<&str>) -> PyResult<Table> {
    let mut frame = Frame::new();
    let mut id_first_rows = Vec::new();
    for (name, kind, values, extra) in columns {
        let is_id = id == Some(name.as_str());
        let data = match kind.as_str() {
            "f64" => ColumnData::Float(array::<f64>(&values, &name)?.as_array().to_vec()),
            "f32" => ColumnData::Float32(array::<f32>(&values, &name)?.as_array().to_vec()),
            "i64" => ColumnData::Int(array::<i64>(&values, &name)?.as_array().to_vec()),
            "bool" => {
                let v = array::<bool>(&values, &name)?.as_array().to_vec();
                let valid = mask(&extra, &name, v.len())?;
                ColumnData::Bool(
                    v.iter().enumerate().map(|(i, &b)| valid.as_ref().is_none_or(|m| m[i]).then_some(b)).collect(),
                )
            }
            "ts" => {
                let v = array::<i64>(&values, &name)?.as_array().to_vec();
                let (valid, zone) = timestamp_extra(&extra, &name)?;
                let valid = mask(&valid, &name, v.len())?;
                let times = v
                    .iter()
                    .enumerate()
                    .map(|(i, &ns)| if valid.as_ref().is_none_or(|m| m[i]) { naive_from_ns(ns) } else { None })
                    .collect();
                ColumnData::Timestamp(times, zone)
            }
            "str" => {
                let codes = array::<i32>(&values, &name)?.as_array().to_vec();
                let labels: Vec<String> =
                    extra.as_ref().ok_or_else(|| value_error(format!("column '{name}': no dictionary")))?.extract()?;
                if codes.iter().any(|&c| c >= labels.len() as i32) {
                    return Err(value_error(format!("column '{name}': dictionary code out of range")));
                }
                if is_id {
                    id_first_rows = first_rows_by(codes.iter().map(|&c| (c >= 0).then_some(c)));
                }
                let parsed = if name == timestamp { parse_labelled_timestamps(&codes, &labels) } else { None };
                parsed.unwrap_or_else(|| {
                    ColumnData::Str(codes.iter().map(|&c| usize::try_from(c).ok().map(|c| labels[c].clone())).collect())
                })
            }
            other => return Err(value_error(format!("column '{name}': unknown buffer kind '{other}'"))),
        };
        if is_id && kind != "str" {
            id_first_rows = match &data {
                ColumnData::Int(v) => first_rows_by(v.iter().copied().map(Some)),
                other => first_rows_by((0..other.len()).map(|i| other.label_at(i))),
            };
        }
        frame.push(name, data);
    }
    Ok(Table { frame, id_first_rows })
}
