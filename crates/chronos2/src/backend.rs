//! Backend selection: which implementation of [`Forecaster`] runs the model.
//!
//! Backends are compiled in by cargo features. Adding one (e.g. MLX behind the `mlx` feature)
//! means: a `BackendKind` variant (already there for MLX), its arm in [`BackendKind::compiled`],
//! [`BackendKind::usable`] and [`load_backend`], and its place in [`AUTO_ORDER`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use chronos2_core::Forecaster;

use crate::error::{Error, Result};

/// Environment variable read when no `--backend` flag is given.
pub const BACKEND_ENV: &str = "CHRONOS2_BACKEND";

/// A concrete backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// candle on the CPU (always compiled in).
    Cpu,
    /// Apple MLX (Apple silicon GPU), behind the `mlx` cargo feature.
    Mlx,
}

/// Preference order of [`Backend::Auto`]: the first compiled-in and usable backend wins.
pub const AUTO_ORDER: [BackendKind; 2] = [BackendKind::Mlx, BackendKind::Cpu];

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::Cpu, BackendKind::Mlx];

    /// The name used by `--backend` and `CHRONOS2_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Mlx => "mlx",
        }
    }

    /// Whether this build contains the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Mlx => cfg!(feature = "mlx"),
        }
    }

    /// Whether the backend can run on this machine: `Err` says why not.
    pub fn usable(self) -> std::result::Result<(), String> {
        if !self.compiled() {
            return Err(format!(
                "not compiled in (rebuild with `--features {}`)",
                self.name()
            ));
        }
        match self {
            BackendKind::Cpu => Ok(()),
            // With the `mlx` feature: `chronos2_mlx::check_available()` or similar goes here.
            BackendKind::Mlx => Err("MLX support is not implemented in this build".into()),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backend requested by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The best compiled-in backend that works here ([`AUTO_ORDER`]).
    #[default]
    Auto,
    /// Exactly this backend, or an error.
    Forced(BackendKind),
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Forced(BackendKind::Cpu)),
            "mlx" => Ok(Backend::Forced(BackendKind::Mlx)),
            other => Err(Error::InvalidArgument(format!(
                "unknown backend '{other}' (expected auto, cpu or mlx; compiled in: {})",
                compiled_names()
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Auto => f.write_str("auto"),
            Backend::Forced(k) => f.write_str(k.name()),
        }
    }
}

impl Backend {
    /// The backend from a `--backend` flag, else from `CHRONOS2_BACKEND`, else [`Backend::Auto`].
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Backend> {
        match flag {
            Some(f) => f.parse(),
            None => match std::env::var(BACKEND_ENV) {
                Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::InvalidArgument(format!("{BACKEND_ENV}: {m}")),
                    other => other,
                }),
                _ => Ok(Backend::Auto),
            },
        }
    }

    /// The concrete backend to use, or an error naming what is available.
    pub fn resolve(self) -> Result<BackendKind> {
        match self {
            Backend::Auto => AUTO_ORDER.into_iter().find(|k| k.usable().is_ok()).ok_or_else(|| {
                Error::BackendUnavailable("no usable backend in this build".into())
            }),
            Backend::Forced(kind) => match kind.usable() {
                Ok(()) => Ok(kind),
                Err(why) => Err(Error::BackendUnavailable(format!(
                    "backend '{kind}' is not available: {why}. Available backends: {}",
                    usable_names()
                ))),
            },
        }
    }
}

/// Backends compiled into this build.
pub fn compiled_backends() -> Vec<BackendKind> {
    BackendKind::ALL.into_iter().filter(|k| k.compiled()).collect()
}

fn compiled_names() -> String {
    compiled_backends().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

fn usable_names() -> String {
    let names: Vec<&str> = BackendKind::ALL.into_iter().filter(|k| k.usable().is_ok()).map(|k| k.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Loads the model in `model_dir` on `kind`.
pub fn load_backend(kind: BackendKind, model_dir: &Path) -> Result<Box<dyn Forecaster>> {
    kind.usable().map_err(|why| Error::BackendUnavailable(format!("backend '{kind}' is not available: {why}")))?;
    match kind {
        BackendKind::Cpu => Ok(chronos2_candle_cpu::load(model_dir)?),
        // With the `mlx` feature: `BackendKind::Mlx => Ok(chronos2_mlx::load(model_dir)?),`
        BackendKind::Mlx => Err(Error::BackendUnavailable(format!("backend '{kind}' is not available"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert_eq!("CPU".parse::<Backend>().unwrap(), Backend::Forced(BackendKind::Cpu));
        assert_eq!("mlx".parse::<Backend>().unwrap(), Backend::Forced(BackendKind::Mlx));
        let e = "cuda".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("unknown backend 'cuda'") && e.contains("cpu"), "{e}");
    }

    #[test]
    fn flag_wins_over_env() {
        // Only the flag path is tested here: the environment is process-global.
        assert_eq!(Backend::from_flag_or_env(Some("cpu")).unwrap(), Backend::Forced(BackendKind::Cpu));
    }

    #[test]
    fn auto_resolves_to_cpu_without_mlx() {
        assert_eq!(Backend::Auto.resolve().unwrap(), BackendKind::Cpu);
        #[cfg(not(feature = "mlx"))]
        {
            let e = Backend::Forced(BackendKind::Mlx).resolve().unwrap_err().to_string();
            assert!(e.contains("'mlx' is not available") && e.contains("Available backends: cpu"), "{e}");
        }
    }
}
