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

/// Whether this build can compile the MLX forward (`--compile`).
pub const MLX_COMPILE_SUPPORTED: bool = cfg!(feature = "mlx");

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
            return Err(format!("not compiled in (rebuild with `--features {}`)", self.name()));
        }
        match self {
            BackendKind::Cpu => Ok(()),
            #[cfg(feature = "mlx")]
            BackendKind::Mlx => chronos2_mlx::check_available().map(|_| ()),
            #[cfg(not(feature = "mlx"))]
            BackendKind::Mlx => unreachable!("checked by compiled()"),
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
    /// Per call, the backend expected to be fastest for the call's shape (see [`crate::engine`]).
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
    pub fn from_flag_or_env(flag: Option<Backend>) -> Result<Backend> {
        match flag {
            Some(b) => Ok(b),
            None => match std::env::var(BACKEND_ENV) {
                Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::InvalidArgument(format!("{BACKEND_ENV}: {m}")),
                    other => other,
                }),
                _ => Ok(Backend::Auto),
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

/// Names of the backends usable here, comma separated.
pub fn usable_names() -> String {
    let names: Vec<&str> = BackendKind::ALL.into_iter().filter(|k| k.usable().is_ok()).map(|k| k.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Loads the model in `model_dir` on `kind` (`compile`: compile the MLX forward).
pub fn load_backend(kind: BackendKind, model_dir: &Path, compile: bool) -> Result<Box<dyn Forecaster>> {
    kind.usable().map_err(|why| {
        Error::BackendUnavailable(format!(
            "backend '{kind}' is not available: {why}. Available backends: {}",
            usable_names()
        ))
    })?;
    if compile && !(kind == BackendKind::Mlx && MLX_COMPILE_SUPPORTED) {
        return Err(Error::InvalidArgument(format!(
            "--compile applies to the MLX backend only (backend here: {kind})"
        )));
    }
    match kind {
        BackendKind::Cpu => Ok(chronos2_candle_cpu::load(model_dir)?),
        #[cfg(feature = "mlx")]
        BackendKind::Mlx => Ok(chronos2_mlx::load_with(model_dir, chronos2_mlx::MlxOptions { compile })?),
        #[cfg(not(feature = "mlx"))]
        BackendKind::Mlx => unreachable!("checked by usable()"),
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

    /// Runs [`env_child`] in a child process of this test binary with `CHRONOS2_BACKEND` set: the
    /// environment is process-global, so it is never changed in this (multi-threaded) process.
    #[test]
    fn flag_wins_over_env() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "backend::tests::env_child", "--ignored", "--test-threads", "1"])
            .env(BACKEND_ENV, "mlx")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run by [`flag_wins_over_env`] with `CHRONOS2_BACKEND=mlx`.
    #[test]
    #[ignore = "run by flag_wins_over_env in a child process with CHRONOS2_BACKEND set"]
    fn env_child() {
        assert_eq!(std::env::var(BACKEND_ENV).as_deref(), Ok("mlx"));
        assert_eq!(Backend::from_flag_or_env(None).unwrap(), Backend::Forced(BackendKind::Mlx));
        let flag = Some(Backend::Forced(BackendKind::Cpu));
        assert_eq!(Backend::from_flag_or_env(flag).unwrap(), Backend::Forced(BackendKind::Cpu));
    }

    #[test]
    #[cfg(not(feature = "mlx"))]
    fn forcing_mlx_without_it_names_available_backends() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/chronos2-mini");
        let e = load_backend(BackendKind::Mlx, &dir, false).err().expect("mlx is not compiled in").to_string();
        assert!(e.contains("'mlx' is not available") && e.contains("Available backends: cpu"), "{e}");
    }

    #[test]
    fn compile_on_cpu_is_a_clear_error() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/chronos2-mini");
        let e = load_backend(BackendKind::Cpu, &dir, true).err().expect("compile needs MLX").to_string();
        assert!(e.contains("--compile applies to the MLX backend only"), "{e}");
    }
}
