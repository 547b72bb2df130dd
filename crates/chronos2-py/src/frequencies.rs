//! Per-series frequencies of a long-format table, for splitting tables whose series have
//! different frequencies (`chronos2.ray`): `predict_df` needs one frequency per call.

use std::collections::HashMap;

use chronos2::data::{infer_freq_zoned, ColumnData};
use numpy::PyArray1;
use pyo3::prelude::*;

use crate::errors::value_error;
use crate::table::{table, RawColumn};

/// `(codes, aliases)`: per row, the index in `aliases` of its series' inferred frequency
/// (`pandas.infer_freq` of the series' sorted timestamps; zoned ones on their UTC instants for
/// steps shorter than a day and in local time otherwise, as pandas), or -1 when it cannot be inferred
/// (fewer than 3 rows, irregular, missing id or timestamp).
#[pyfunction]
pub fn item_frequencies<'py>(
    py: Python<'py>,
    columns: Vec<RawColumn<'py>>,
    id_column: String,
    timestamp_column: String,
) -> PyResult<(Bound<'py, PyArray1<i32>>, Vec<String>)> {
    let frame = table(columns, &timestamp_column, Some(&id_column))?.frame;
    let column =
        |name: &str| frame.column(name).map(|c| &c.data).ok_or_else(|| value_error(format!("no column '{name}'")));
    let (ids, ts) = (column(&id_column)?, column(&timestamp_column)?);
    let ColumnData::Timestamp(times, zone) = ts else {
        return Err(value_error(format!("column '{timestamp_column}' does not hold timestamps")));
    };
    let codes = py.allow_threads(|| {
        let mut items: HashMap<String, Vec<usize>> = HashMap::new();
        for (row, time) in times.iter().enumerate() {
            if let (Some(label), Some(_)) = (ids.label_at(row), time) {
                items.entry(label).or_default().push(row);
            }
        }
        let mut aliases: Vec<String> = Vec::new();
        let mut codes = vec![-1i32; ids.len()];
        for rows in items.values() {
            let mut stamps: Vec<_> = rows.iter().filter_map(|&r| times[r].map(|t| (t, r))).collect();
            stamps.sort_unstable();
            let instants: Vec<_> = stamps.iter().map(|&(t, _)| t).collect();
            let local: Vec<_> = match zone {
                Some(z) => stamps.iter().map(|&(t, r)| z.local(t, r)).collect(),
                None => instants.clone(),
            };
            let Some(alias) = infer_freq_zoned(&local, &instants) else { continue };
            let code = match aliases.iter().position(|a| *a == alias) {
                Some(c) => c,
                None => {
                    aliases.push(alias);
                    aliases.len() - 1
                }
            };
            for &r in rows {
                codes[r] = code as i32;
            }
        }
        (codes, aliases)
    });
    Ok((PyArray1::from_vec(py, codes.0), codes.1))
}
