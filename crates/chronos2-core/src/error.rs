//! The one error type of the core library.

use std::path::PathBuf;

/// Errors raised while loading a model or preparing and running a forecast.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps any backend-specific error (candle, MLX) into [`Error::Backend`].
    pub fn backend(err: impl std::fmt::Display) -> Self {
        Error::Backend(err.to_string())
    }
}
