//! Python bindings of chronos2: the extension module `chronos2._native`, used by the
//! pure-Python package `chronos2` (`python/chronos2`: `Chronos2Pipeline`, `chronos2.ray`).

mod calibrate;
mod errors;
mod fit;
mod frequencies;
mod interrupt;
mod items;
mod model;
mod table;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::NativeModel>()?;
    // The library's defaults and the forecast table's layout, so that the package has no copy.
    m.add("DEFAULT_QUANTILE_LEVELS", chronos2::DEFAULT_QUANTILE_LEVELS.to_vec())?;
    m.add("TARGET_NAME_COLUMN", chronos2::data::TARGET_NAME_COLUMN)?;
    m.add("PREDICTIONS_COLUMN", chronos2::data::PREDICTIONS_COLUMN)?;
    m.add_function(wrap_pyfunction!(frequencies::item_frequencies, m)?)?;
    m.add_function(wrap_pyfunction!(calibrate::calibrate, m)?)?;
    Ok(())
}
