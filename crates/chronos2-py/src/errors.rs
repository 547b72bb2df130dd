//! Library errors as Python exceptions, and a guard so that no panic crosses the FFI boundary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use chronos2::chronos2_core;
use chronos2::Error;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyKeyboardInterrupt, PyNotADirectoryError, PyOSError, PyPermissionError,
    PyRuntimeError, PyValueError,
};
use pyo3::PyErr;

/// The `OSError` subclass of an I/O error's kind (as Python's own `open` raises).
fn os_error(kind: std::io::ErrorKind, message: String) -> PyErr {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        ErrorKind::NotADirectory => PyNotADirectoryError::new_err(message),
        ErrorKind::IsADirectory => PyIsADirectoryError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}

/// `ValueError` for bad input, arguments and backends; `OSError` subclasses for models and files
/// that cannot be found or read (`FileNotFoundError` for a model that is not there or not a
/// model directory, `OSError` for a corrupt `config.json` or weights file: as the reference's
/// `from_pretrained`) and for files that cannot be written; `RuntimeError` for everything else.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::InvalidData(_)
        | Error::InvalidArgument(_)
        | Error::BackendUnavailable { .. }
        | Error::CompileUnsupported { .. }
        | Error::CompileUnavailable { .. }
        | Error::PrecisionMismatch { .. } => PyValueError::new_err(message),
        Error::Core(chronos2_core::Error::InvalidInput(_)) => PyValueError::new_err(message),
        Error::Core(chronos2_core::Error::ModelNotFound(_)) => PyFileNotFoundError::new_err(message),
        Error::Core(chronos2_core::Error::Config { .. } | chronos2_core::Error::Weights { .. }) => {
            PyOSError::new_err(message)
        }
        Error::Read { .. } | Error::Write { .. } | Error::BundledModel { .. } | Error::Profile { .. } => {
            PyOSError::new_err(message)
        }
        Error::Dispatch(_) => PyRuntimeError::new_err(message),
        Error::Core(chronos2_core::Error::Io { source, .. }) => os_error(source.kind(), message),
        Error::Core(chronos2_core::Error::Interrupted) => PyKeyboardInterrupt::new_err(message),
        Error::Core(_) => PyRuntimeError::new_err(message),
    }
}

/// Runs `f`, mapping its error with [`to_py`] and a panic to a `RuntimeError`.
pub fn guarded<T>(f: impl FnOnce() -> chronos2::Result<T>) -> Result<T, PyErr> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_py),
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(PyRuntimeError::new_err(format!("internal error in chronos2 (please report it): {what}")))
        }
    }
}

/// A `ValueError` with `message`.
pub fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
