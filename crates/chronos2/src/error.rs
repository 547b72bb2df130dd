//! The error type of the `chronos2` library.

use std::path::PathBuf;

use chronos2_core::dispatch::{DispatchError, RouteKey};
use chronos2_core::Precision;

use crate::kind::{BackendKind, Unavailable};

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
    #[error("backend '{backend}' is not available here (usable backends: {available})")]
    BackendUnavailable {
        backend: BackendKind,
        #[source]
        reason: Unavailable,
        available: String,
    },
    /// `--compile` with a forced backend that does not compile its forward.
    #[error("--compile applies to backends that compile their forward ({compiling}); backend here: {backend}")]
    CompileUnsupported { backend: BackendKind, compiling: String },
    /// `--compile` with `auto`, and no usable backend compiles its forward.
    #[error(
        "--compile compiles the forward of {compiling}, and no usable backend compiles its forward (usable backends: {available})"
    )]
    CompileUnavailable { compiling: String, available: String },
    /// A backend's model was loaded in one precision and a route asked for another.
    #[error("backend '{backend}' holds its model in {loaded}, not {requested}")]
    PrecisionMismatch { backend: BackendKind, loaded: Precision, requested: Precision },
    /// The dispatch profile could not be used.
    #[error("dispatch profile {path}")]
    Profile {
        path: PathBuf,
        #[source]
        source: ProfileError,
    },
    /// The route choice could not be made.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// The bundled model could not be extracted.
    #[error("cannot prepare the bundled model in {path}: {message}")]
    BundledModel { path: PathBuf, message: String },
    /// Model loading or inference failed.
    #[error(transparent)]
    Core(#[from] chronos2_core::Error),
}

/// Why a dispatch profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read it")]
    Io(#[source] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] DispatchError),
    /// The profile names a route that is not one of the registry's (a typo, or a backend of
    /// another build): never read as some other route.
    #[error("unknown route '{key}' (routes: {known})")]
    UnknownRoute { key: RouteKey, known: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidData(message.into())
}
