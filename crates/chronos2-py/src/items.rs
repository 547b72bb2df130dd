//! Items built by the Python layer (`chronos2/_inputs.py`) -> pipeline [`SeriesInput`]s.
//!
//! An item is `(targets, covariates)`: `targets` a C-contiguous float32 array
//! `(n_targets, T)`, read in place; `covariates` a list of `(name, past, future_kind, future)`
//! where values are a float32 array (numeric) or a list of `str | None` (categorical), and
//! `future_kind` is 0 (past-only), 1 (known, values unavailable) or 2 (known, `future` given).

use chronos2::chronos2_core::pipeline::{Covariate, CovariateValues, FutureValues, SeriesInput};
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::value_error;

type RawCovariate<'py> = (String, Bound<'py, PyAny>, u8, Option<Bound<'py, PyAny>>);

fn values(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<CovariateValues> {
    if let Ok(array) = obj.extract::<PyReadonlyArray1<f32>>() {
        return Ok(CovariateValues::Numeric(array.as_array().to_vec()));
    }
    let labels: Vec<Option<String>> =
        obj.extract().map_err(|_| value_error(format!("{what}: expected a float32 array or a list of strings")))?;
    Ok(CovariateValues::Categorical(labels))
}

fn covariate(raw: RawCovariate<'_>) -> PyResult<Covariate> {
    let (name, past, kind, future) = raw;
    let past = values(&past, &format!("past covariate '{name}'"))?;
    let future = match (kind, future) {
        (0, _) => FutureValues::PastOnly,
        (1, _) => FutureValues::KnownUnavailable,
        (2, Some(f)) => FutureValues::Known(values(&f, &format!("future covariate '{name}'"))?),
        (k, _) => return Err(value_error(format!("covariate '{name}': bad future kind {k}"))),
    };
    Ok(Covariate { name, past, future })
}

/// The items of a `predict` / `embed` call.
pub fn series_inputs(items: &Bound<'_, PyList>) -> PyResult<Vec<SeriesInput>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let (targets, covariates): (PyReadonlyArray2<f32>, Vec<RawCovariate<'_>>) = item.extract()?;
        let view = targets.as_array();
        let targets: Vec<Vec<f32>> = match targets.as_slice() {
            Ok(flat) if view.ncols() > 0 => flat.chunks_exact(view.ncols()).map(<[f32]>::to_vec).collect(),
            _ => view.rows().into_iter().map(|r| r.to_vec()).collect(),
        };
        let covariates = covariates.into_iter().map(covariate).collect::<PyResult<Vec<_>>>()?;
        out.push(SeriesInput { targets, covariates });
    }
    Ok(out)
}
