//! What the user asks for ([`Backend`]) and where a call runs ([`Route`]). The backends
//! themselves are known only to the [`crate::registry`].

use std::fmt;
use std::str::FromStr;

use chronos2_core::dispatch::RouteKey;
use chronos2_core::Precision;

use crate::error::{Error, Result};
pub use crate::kind::BackendKind;

/// Environment variable read when no `--backend` flag is given.
pub const BACKEND_ENV: &str = "CHRONOS2_BACKEND";

/// The suffix of a compiled route's key (`mlx+compile`).
const COMPILE_SUFFIX: &str = "+compile";

/// The backend requested by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Per call, the route expected to be fastest for the call's shape (see [`crate::engine`]).
    #[default]
    Auto,
    /// Exactly this backend, or an error.
    Forced(BackendKind),
}

/// Every request: `auto`, then each backend of the registry.
pub const REQUESTS: [Backend; BackendKind::ALL.len() + 1] = {
    let mut out = [Backend::Auto; BackendKind::ALL.len() + 1];
    let mut i = 0;
    while i < BackendKind::ALL.len() {
        out[i + 1] = Backend::Forced(BackendKind::ALL[i]);
        i += 1;
    }
    out
};

impl Backend {
    /// The name used by `--backend` and `CHRONOS2_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Forced(kind) => kind.name(),
        }
    }

    /// The backend that trains for this request: the forced one, else the registry's default.
    pub fn training_backend(self) -> BackendKind {
        match self {
            Backend::Forced(kind) => kind,
            Backend::Auto => BackendKind::DEFAULT,
        }
    }

    /// The backend from a `--backend` flag, else from `CHRONOS2_BACKEND`, else [`Backend::Auto`].
    pub fn from_flag_or_env(flag: Option<Backend>) -> Result<Backend> {
        match flag {
            Some(b) => Ok(b),
            None => match std::env::var(BACKEND_ENV) {
                Ok(v) if !v.trim().is_empty() => {
                    v.parse().map_err(|e: UnknownBackend| Error::InvalidArgument(format!("{BACKEND_ENV}: {e}")))
                }
                _ => Ok(Backend::Auto),
            },
        }
    }
}

/// A backend name that is not one of [`REQUESTS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{name}' (expected {})", REQUESTS.map(Backend::name).join(", "))]
pub struct UnknownBackend {
    pub name: String,
}

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> std::result::Result<Self, UnknownBackend> {
        let wanted = s.trim().to_ascii_lowercase();
        REQUESTS.into_iter().find(|b| b.name() == wanted).ok_or(UnknownBackend { name: s.trim().to_string() })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a call runs: a backend, whether its forward is compiled (a per-call choice on the one
/// model of the backend), and the precision of the model's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub backend: BackendKind,
    pub compile: bool,
    pub precision: Precision,
}

impl Route {
    pub fn new(backend: BackendKind, compile: bool, precision: Precision) -> Self {
        Route { backend, compile, precision }
    }

    /// The route's key in profiles (`cpu`, `mlx`, `mlx+compile`); the precision is recorded
    /// per profile entry, not in the key.
    pub fn key(&self) -> RouteKey {
        RouteKey::new(format!("{}{}", self.backend.name(), if self.compile { COMPILE_SUFFIX } else { "" }))
    }

    /// The route a profile key names, in `precision`; `None` for a key that names no backend of
    /// the registry or compiles one that does not compile its forward.
    pub fn from_key(key: &RouteKey, precision: Precision) -> Option<Route> {
        let (name, compile) = match key.as_str().strip_suffix(COMPILE_SUFFIX) {
            Some(name) => (name, true),
            None => (key.as_str(), false),
        };
        let backend = BackendKind::from_name(name)?;
        (!compile || backend.compiles_forward()).then_some(Route { backend, compile, precision })
    }

    /// Every route key of the registry's backends (compiled in or not), for messages.
    pub fn all_keys() -> Vec<RouteKey> {
        BackendKind::ALL
            .into_iter()
            .flat_map(|k| [false, true].into_iter().filter(move |&c| !c || k.compiles_forward()).map(move |c| (k, c)))
            .map(|(k, c)| Route::new(k, c, Precision::Fp32).key())
            .collect()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key())?;
        if self.precision != Precision::Fp32 {
            write!(f, " {}", self.precision)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> BackendKind {
        BackendKind::from_name("cpu").unwrap()
    }

    fn mlx() -> BackendKind {
        BackendKind::from_name("mlx").unwrap()
    }

    #[test]
    fn parses_names() {
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert_eq!("CPU".parse::<Backend>().unwrap(), Backend::Forced(cpu()));
        assert_eq!("mlx".parse::<Backend>().unwrap(), Backend::Forced(mlx()));
        let e = "tpu".parse::<Backend>().unwrap_err().to_string();
        let all = crate::registry::names(&BackendKind::ALL);
        assert_eq!(e, format!("unknown backend 'tpu' (expected auto, {all})"));
        assert!(all.starts_with("cpu, mlx"), "{all}");
    }

    #[test]
    fn route_keys_round_trip_and_unknown_keys_name_no_route() {
        for key in Route::all_keys() {
            let route = Route::from_key(&key, Precision::Int8).unwrap();
            assert_eq!(route.key(), key);
            assert_eq!(route.precision, Precision::Int8);
        }
        assert_eq!(Route::all_keys()[..3], [RouteKey::new("cpu"), RouteKey::new("mlx"), RouteKey::new("mlx+compile")]);
        for unknown in ["tpu", "cpu+compile", "mlx+fast", "", "CPU"] {
            assert_eq!(Route::from_key(&RouteKey::new(unknown), Precision::Fp32), None, "{unknown}");
        }
    }

    /// Runs [`env_child`] in a child process of this test binary with `CHRONOS2_BACKEND` set: the
    /// environment is process-global, so it is never changed in this (multi-threaded) process.
    #[test]
    fn flag_wins_over_env() {
        for (env, child) in [("mlx", "backend::tests::env_child"), ("bogus", "backend::tests::bad_env_child")] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", child, "--ignored", "--test-threads", "1"])
                .env(BACKEND_ENV, env)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{child}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Run by [`flag_wins_over_env`] with `CHRONOS2_BACKEND=mlx`.
    #[test]
    #[ignore = "run by flag_wins_over_env in a child process with CHRONOS2_BACKEND set"]
    fn env_child() {
        assert_eq!(std::env::var(BACKEND_ENV).as_deref(), Ok("mlx"));
        assert_eq!(Backend::from_flag_or_env(None).unwrap(), Backend::Forced(mlx()));
        let flag = Some(Backend::Forced(cpu()));
        assert_eq!(Backend::from_flag_or_env(flag).unwrap(), Backend::Forced(cpu()));
    }

    /// Run by [`flag_wins_over_env`] with `CHRONOS2_BACKEND=bogus`.
    #[test]
    #[ignore = "run by flag_wins_over_env in a child process with CHRONOS2_BACKEND set"]
    fn bad_env_child() {
        let e = Backend::from_flag_or_env(None).unwrap_err().to_string();
        assert!(e.starts_with("CHRONOS2_BACKEND: unknown backend 'bogus' (expected auto, cpu, mlx"), "{e}");
        assert_eq!(Backend::from_flag_or_env(Some(Backend::Auto)).unwrap(), Backend::Auto);
    }
}
