//! `chronos2.calibrate()`: measures this machine for the `auto` backend and writes the profile
//! it reads (as `chronos2 calibrate`).

use std::path::PathBuf;

use chronos2::calibrate::CalibrateOptions;
use chronos2::Chronos2;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::guarded;

/// Measures every usable backend, compile switch and precision over the profile's shapes (the
/// small ones unless `full`) with `model` (default: the bundled chronos2-mini) and writes the
/// profile (default: `$XDG_CONFIG_HOME/chronos2/profile.json`). Returns `path`, `seconds`,
/// `machine` and `source`.
#[pyfunction]
#[pyo3(signature = (model=None, full=false, output=None))]
pub fn calibrate<'py>(
    py: Python<'py>,
    model: Option<String>,
    full: bool,
    output: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    let options = CalibrateOptions { full, output };
    let done = py.allow_threads(|| guarded(|| Chronos2::calibrate(model.as_deref(), &options, &mut |_| {})))?;
    let out = PyDict::new(py);
    out.set_item("path", done.path.display().to_string())?;
    out.set_item("seconds", done.seconds)?;
    out.set_item("machine", done.machine.to_string())?;
    out.set_item("source", done.profile.source)?;
    Ok(out)
}
