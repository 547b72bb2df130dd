//! The one error type of the core library.

use std::path::PathBuf;

use crate::precision::Precision;

/// Errors raised while loading a model or preparing and running a forecast.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing an output failed (`message` holds the cause, once).
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("model not found: {0}")]
    ModelNotFound(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("backend error: {0}")]
    Backend(String),
    /// The backend cannot run the linear layers in this precision (not implemented there).
    #[error("backend '{backend}' cannot run {precision} (it runs: {supported})")]
    UnsupportedPrecision { backend: String, precision: Precision, supported: String },
    /// The model's linear layers are already quantized: a precision is set once, on the float
    /// model as loaded.
    #[error("cannot set {requested}: the model is already quantized (load it again for another precision)")]
    PrecisionAlreadySet { requested: Precision },
    /// The caller's check ([`crate::interrupt`]) asked to stop between batches or steps.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps any backend-specific error (candle, MLX) into [`Error::Backend`].
    pub fn backend(err: impl std::fmt::Display) -> Self {
        Error::Backend(err.to_string())
    }
}
