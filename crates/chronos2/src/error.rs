//! The error type of the `chronos2` library.

use std::path::PathBuf;

/// Errors of loading, reading/validating tables, predicting and writing results.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A table could not be read or parsed.
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// A result could not be written.
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    /// The input tables do not have the expected structure or content.
    #[error("{0}")]
    InvalidData(String),
    /// An argument (option value) is not valid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The requested backend is not available in this build or on this machine.
    #[error("{0}")]
    BackendUnavailable(String),
    /// The bundled model could not be extracted.
    #[error("cannot prepare the bundled model in {path}: {message}")]
    BundledModel { path: PathBuf, message: String },
    /// Model loading or inference failed.
    #[error(transparent)]
    Core(#[from] chronos2_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidData(message.into())
}
